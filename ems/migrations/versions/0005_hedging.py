"""Hedge legs: parent role and reduce-only flags, and the history of coverage decisions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 14:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: spelled out so this revision never changes with the code.
UTC_TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EXACT = sa.Numeric(38, 18).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    # As in 0002: constant defaults, added in place on both databases (no table rebuilt).
    op.add_column(
        "parent_orders", sa.Column("role", sa.String(), nullable=False, server_default="trade")
    )
    for table in ("parent_orders", "child_orders"):
        op.add_column(
            table,
            sa.Column("reduce_only", sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    op.create_table(
        "coverage_decisions",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.Column("unwind_status", sa.String(), nullable=False),
        sa.Column("spot_qty", EXACT, nullable=False),
        sa.Column("perp_short_qty", EXACT, nullable=False),
        sa.Column("put_cover_qty", EXACT, nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("code", sa.String(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("parent_id", sa.String(), nullable=True),
        sa.Column("basis_bps", EXACT, nullable=True),
        sa.Column("basis_annualised", EXACT, nullable=True),
    )
    op.create_index("ix_coverage_decisions_kind", "coverage_decisions", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_coverage_decisions_kind", table_name="coverage_decisions")
    op.drop_table("coverage_decisions")
    # Plain DROP COLUMN, as in 0002: rebuilding parent_orders would trip its foreign keys.
    op.drop_column("child_orders", "reduce_only")
    op.drop_column("parent_orders", "reduce_only")
    op.drop_column("parent_orders", "role")
