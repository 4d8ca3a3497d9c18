"""held: risky changes the safety policy holds for an explicit release

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("group_ref", sa.String(length=255), nullable=False),
        sa.Column("risk", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operation", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_by_run", sa.String(length=40), nullable=False),
        sa.Column("planned_by_run", sa.String(length=40), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_run", sa.String(length=40), nullable=True),
        sa.Column("closed_by", sa.String(length=255), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held")),
    )
    op.create_index("ix_held_status", "held", ["status"])
    op.create_index("ix_held_ref", "held", ["ref"])


def downgrade() -> None:
    op.drop_index("ix_held_ref", table_name="held")
    op.drop_index("ix_held_status", table_name="held")
    op.drop_table("held")
