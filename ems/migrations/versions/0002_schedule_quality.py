"""Schedule quality of parents and the display size of children.

Parents gain ``maker_qty``, ``market_volume``, ``tracking_samples``, ``tracking_abs_sum`` and
``tracking_max``; each is NOT NULL with a server default of 0, so parents stored before this
revision read as "nothing measured yet". Children gain ``display_qty`` (nullable: only native
iceberg children have one).

Downgrading drops the columns and the figures in them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-01 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: spelled out so this revision never changes with the code.
EXACT = sa.Numeric(38, 18).with_variant(sa.Text(), "sqlite")

_PARENT_FIGURES = (
    ("maker_qty", EXACT),
    ("market_volume", EXACT),
    ("tracking_samples", sa.Integer()),
    ("tracking_abs_sum", EXACT),
    ("tracking_max", EXACT),
)


def upgrade() -> None:
    # SQLite and PostgreSQL both add a NOT NULL column with a constant default in place,
    # filling existing rows with the default; no table is rebuilt.
    for name, type_ in _PARENT_FIGURES:
        op.add_column(
            "parent_orders",
            sa.Column(name, type_, nullable=False, server_default="0"),
        )
    op.add_column("child_orders", sa.Column("display_qty", EXACT, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 does it in place): rebuilding
    # parent_orders instead would trip the foreign keys of its children, fills and events.
    op.drop_column("child_orders", "display_qty")
    for name, _type in reversed(_PARENT_FIGURES):
        op.drop_column("parent_orders", name)
