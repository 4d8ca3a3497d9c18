"""operations: a unique (run_id, seq) index, and the status index narrowed to the
operations a later run looks back at

The journal moves operations by (run, seq) before and after every request. With the
(run_id, seq) index not known to be unique, and an index on status beside it, the
planners preferred the status index for `run_id = ? AND seq IN (...) AND status IN
(...)`: SQLite scanned every pending operation of the run per batch (a first load was
quadratic in its size), and PostgreSQL took it for the outcomes' `status = 'started'`.
Now (run_id, seq) is unique, and the only status index is partial: it holds just the
failed and abandoned operations, which a later run reads back (`sent_unanswered`,
`status`), and which no move ever asks for, so no planner can choose it for one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LOOKED_BACK = sa.text("status IN ('failed', 'abandoned')")


def upgrade() -> None:
    op.drop_index("ix_operations_run_seq", table_name="operations")
    op.drop_index("ix_operations_status", table_name="operations")
    op.create_index("ix_operations_run_seq", "operations", ["run_id", "seq"], unique=True)
    op.create_index(
        "ix_operations_looked_back",
        "operations",
        ["kind", "status"],
        sqlite_where=LOOKED_BACK,
        postgresql_where=LOOKED_BACK,
    )


def downgrade() -> None:
    op.drop_index("ix_operations_looked_back", table_name="operations")
    op.drop_index("ix_operations_run_seq", table_name="operations")
    op.create_index("ix_operations_run_seq", "operations", ["run_id", "seq"], unique=False)
    op.create_index("ix_operations_status", "operations", ["status"], unique=False)
