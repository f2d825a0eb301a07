"""Initial schema: parent and child orders, fills, the event log, API keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The store's column types spelled out, so this revision never changes with the code:
# exact decimals are NUMERIC(38, 18) on PostgreSQL and canonical text on SQLite; timestamps are
# timestamptz on PostgreSQL and ISO-8601 text with offset on SQLite.
EXACT = sa.Numeric(38, 18).with_variant(sa.Text(), "sqlite")
UTC_TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "parent_orders",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", EXACT, nullable=False),
        sa.Column("algo", sa.String(), nullable=False),
        sa.Column("venues", sa.Text(), nullable=False),
        sa.Column("start_at", UTC_TS, nullable=False),
        sa.Column("end_at", UTC_TS, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("limit_price", EXACT, nullable=True),
        sa.Column("algo_params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("filled_qty", EXACT, nullable=False),
        sa.Column("filled_notional", EXACT, nullable=False),
        sa.Column("fees", EXACT, nullable=False),
        sa.Column("next_child_seq", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("arrival_mid", EXACT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_parent_orders"),
    )
    op.create_index("ix_parent_orders_client_id", "parent_orders", ["client_id"], unique=True)
    op.create_index("ix_parent_orders_symbol", "parent_orders", ["symbol"])
    op.create_index("ix_parent_orders_status", "parent_orders", ["status"])
    op.create_index("ix_parent_orders_created_at", "parent_orders", ["created_at"])

    op.create_table(
        "child_orders",
        sa.Column("client_order_id", sa.String(), nullable=False),
        sa.Column("parent_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("qty", EXACT, nullable=False),
        sa.Column("price", EXACT, nullable=True),
        sa.Column("time_in_force", sa.String(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("filled_qty", EXACT, nullable=False),
        sa.Column("filled_notional", EXACT, nullable=False),
        sa.Column("fees", EXACT, nullable=False),
        sa.Column("venue_order_id", sa.String(), nullable=True),
        sa.Column("submitted_at", UTC_TS, nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["parent_orders.id"], name="fk_child_orders_parent_id_parent_orders"
        ),
        sa.PrimaryKeyConstraint("client_order_id", name="pk_child_orders"),
    )
    op.create_index("ix_child_orders_parent_id", "child_orders", ["parent_id"])

    op.create_table(
        "fills",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.String(), nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("trade_id", sa.String(), nullable=False),
        sa.Column("client_order_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("price", EXACT, nullable=False),
        sa.Column("qty", EXACT, nullable=False),
        sa.Column("fee", EXACT, nullable=False),
        sa.Column("fee_currency", sa.String(), nullable=False),
        sa.Column("liquidity", sa.String(), nullable=False),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["parent_orders.id"], name="fk_fills_parent_id_parent_orders"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("venue", "trade_id", name="uq_fills_venue_trade_id"),
    )
    op.create_index("ix_fills_parent_id", "fills", ["parent_id"])
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])

    op.create_table(
        "events",
        sa.Column("seq", SERIAL, autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["parent_orders.id"], name="fk_events_parent_id_parent_orders"
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_parent_id", "events", ["parent_id"])

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("events")
    op.drop_table("fills")
    op.drop_table("child_orders")
    op.drop_table("parent_orders")
