"""held: a discard stands until the sources stop asking or ask for something else

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("held") as batch:
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ended_by_run", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("end_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("held") as batch:
        batch.drop_column("end_reason")
        batch.drop_column("ended_by_run")
        batch.drop_column("ended_at")
