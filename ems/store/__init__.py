"""SQL store: parents, children, fills, the append-only event log, API keys, and the routing
records (impact points, the history of impact-curve fits, routing decisions).

Implements ``ems.ports.StorePort`` on SQLModel/SQLAlchemy for SQLite (the default) and
PostgreSQL. Money is exact on both (``ExactDecimal``; computed figures such as a sum of ratios,
costs in bps, relative sizes and fit coefficients are rounded half-even to 18 places by
``RoundedDecimal``) and every timestamp is aware UTC (``UtcDateTime``). The schema is owned by
the Alembic migrations packaged in ``ems/migrations``; ``migrate`` brings a database to the
latest revision. The table classes are private: callers only ever see the domain dataclasses.
"""

from ems.store.engine import ALEMBIC_INI, MIGRATIONS_DIR, create_store_engine, migrate
from ems.store.sql_store import SqlStore
from ems.store.tables import metadata
from ems.store.types import (
    ExactDecimal,
    RoundedDecimal,
    UtcDateTime,
    canonical_decimal,
    round_to_scale,
)

__all__ = [
    "ALEMBIC_INI",
    "MIGRATIONS_DIR",
    "ExactDecimal",
    "RoundedDecimal",
    "SqlStore",
    "UtcDateTime",
    "canonical_decimal",
    "create_store_engine",
    "metadata",
    "migrate",
    "round_to_scale",
]
