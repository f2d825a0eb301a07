"""Routing: impact points, impact-curve fits, routing decisions and children's routing context.

New tables:

- ``impact_points``: the realised cost of each finished routed child against what was expected
  (one per child: ``client_order_id`` is unique), indexed by (venue, symbol, ts);
- ``impact_fits``: the history of fitted curves ``cost_bps = a * x ** b`` with their bounds,
  indexed by (venue, symbol, fitted_at); the newest per venue and symbol is the current one;
- ``route_decisions``: each routing decision of a parent with its quotes and allocations (JSON
  text), indexed by parent.

Children gain ``decision_mid``, ``expected_cost_bps``, ``x_depth`` and ``x_volume``, all
nullable: children sent before this revision were not routed with a cost model.

Prices and quantities are exact decimals; costs in bps, relative sizes and fit coefficients use
the same column type and are rounded half-even to 18 places by the store before writing.

Downgrading drops the three tables (their history is lost) and the four child columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-08 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: spelled out so this revision never changes with the code.
EXACT = sa.Numeric(38, 18).with_variant(sa.Text(), "sqlite")
UTC_TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_CHILD_CONTEXT = ("decision_mid", "expected_cost_bps", "x_depth", "x_volume")


def upgrade() -> None:
    # Nullable columns without a default: added in place on SQLite and PostgreSQL alike.
    for name in _CHILD_CONTEXT:
        op.add_column("child_orders", sa.Column(name, EXACT, nullable=True))

    op.create_table(
        "impact_points",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("client_order_id", sa.String(), nullable=False),
        sa.Column("parent_id", sa.String(), nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.Column("qty", EXACT, nullable=False),
        sa.Column("filled_qty", EXACT, nullable=False),
        sa.Column("aggressive", sa.Boolean(), nullable=False),
        sa.Column("decision_mid", EXACT, nullable=False),
        sa.Column("x_depth", EXACT, nullable=False),
        sa.Column("x_volume", EXACT, nullable=False),
        sa.Column("expected_cost_bps", EXACT, nullable=False),
        sa.Column("realised_cost_bps", EXACT, nullable=False),
        sa.Column("fee_bps", EXACT, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["parent_orders.id"], name="fk_impact_points_parent_id_parent_orders"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_impact_points"),
        sa.UniqueConstraint("client_order_id", name="uq_impact_points_client_order_id"),
    )
    op.create_index("ix_impact_points_venue_symbol_ts", "impact_points", ["venue", "symbol", "ts"])

    op.create_table(
        "impact_fits",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("a", EXACT, nullable=False),
        sa.Column("b", EXACT, nullable=False),
        sa.Column("a_low", EXACT, nullable=False),
        sa.Column("a_high", EXACT, nullable=False),
        sa.Column("b_low", EXACT, nullable=False),
        sa.Column("b_high", EXACT, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("fitted_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_impact_fits"),
    )
    op.create_index(
        "ix_impact_fits_venue_symbol_fitted_at", "impact_fits", ["venue", "symbol", "fitted_at"]
    )

    op.create_table(
        "route_decisions",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.String(), nullable=False),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("qty", EXACT, nullable=False),
        sa.Column("price", EXACT, nullable=False),
        sa.Column("aggressive", sa.Boolean(), nullable=False),
        sa.Column("mid", EXACT, nullable=True),
        sa.Column("expected_cost_bps", EXACT, nullable=True),
        sa.Column("quotes", sa.Text(), nullable=False),
        sa.Column("allocations", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["parent_orders.id"], name="fk_route_decisions_parent_id_parent_orders"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_route_decisions"),
    )
    op.create_index("ix_route_decisions_parent_id", "route_decisions", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_route_decisions_parent_id", table_name="route_decisions")
    op.drop_table("route_decisions")
    op.drop_index("ix_impact_fits_venue_symbol_fitted_at", table_name="impact_fits")
    op.drop_table("impact_fits")
    op.drop_index("ix_impact_points_venue_symbol_ts", table_name="impact_points")
    op.drop_table("impact_points")
    # Plain DROP COLUMN, as in 0002: rebuilding child_orders is not needed (SQLite >= 3.35).
    for name in reversed(_CHILD_CONTEXT):
        op.drop_column("child_orders", name)
