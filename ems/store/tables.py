"""The store's tables (private SQLModel classes) and their mapping to the domain dataclasses."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ems.domain import Fill, Liquidity, OrderType, Side, TimeInForce
from ems.events import Event, to_payload
from ems.orders import ChildOrder, ChildStatus, ParentOrder, ParentRole, ParentStatus
from ems.ports import EventRecord, ImpactFitRecord, ImpactPoint, RouteRecord
from ems.store.types import ExactDecimal, RoundedDecimal, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _Row(SQLModel, registry=registry(metadata=metadata)):
    """Base of the store's tables: their own metadata, apart from any other SQLModel tables."""


def _serial() -> Any:
    """An autoincrement integer key: BIGSERIAL on PostgreSQL, the rowid alias on SQLite."""
    return BigInteger().with_variant(Integer(), "sqlite")


def _zero() -> dict[str, Any]:
    """Column options of a figure that is 0 in rows written before the column existed."""
    return {"server_default": "0"}


class ParentRow(_Row, table=True):
    __tablename__ = "parent_orders"
    __table_args__ = (Index("ix_parent_orders_client_id", "client_id", unique=True),)

    id: str = Field(primary_key=True)
    client_id: str
    symbol: str = Field(index=True)
    side: str
    quantity: Decimal = Field(sa_type=ExactDecimal)
    algo: str
    venues: str = Field(sa_type=Text)  # JSON list
    start_at: datetime = Field(sa_type=UtcDateTime)
    end_at: datetime = Field(sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime, index=True)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    limit_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    algo_params: str = Field(sa_type=Text)  # JSON object
    status: str = Field(index=True)
    filled_qty: Decimal = Field(sa_type=ExactDecimal)
    filled_notional: Decimal = Field(sa_type=ExactDecimal)
    fees: Decimal = Field(sa_type=ExactDecimal)
    next_child_seq: int
    request_hash: str
    reason: str
    arrival_mid: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    # Schedule quality (revision 0002). Statistics of ratios are rounded to 18 places.
    maker_qty: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal, sa_column_kwargs=_zero())
    market_volume: Decimal = Field(
        default=Decimal(0), sa_type=ExactDecimal, sa_column_kwargs=_zero()
    )
    tracking_samples: int = Field(default=0, sa_column_kwargs=_zero())
    tracking_abs_sum: Decimal = Field(
        default=Decimal(0), sa_type=RoundedDecimal, sa_column_kwargs=_zero()
    )
    tracking_max: Decimal = Field(
        default=Decimal(0), sa_type=RoundedDecimal, sa_column_kwargs=_zero()
    )
    # Hedge legs (revision 0005).
    role: str = Field(default="trade", sa_column_kwargs={"server_default": "trade"})
    reduce_only: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})


class ChildRow(_Row, table=True):
    __tablename__ = "child_orders"

    client_order_id: str = Field(primary_key=True)
    parent_id: str = Field(foreign_key="parent_orders.id", index=True)
    seq: int
    venue: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal = Field(sa_type=ExactDecimal)
    price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    time_in_force: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    status: str
    filled_qty: Decimal = Field(sa_type=ExactDecimal)
    filled_notional: Decimal = Field(sa_type=ExactDecimal)
    fees: Decimal = Field(sa_type=ExactDecimal)
    venue_order_id: str | None = None
    submitted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    reason: str
    display_qty: Decimal | None = Field(default=None, sa_type=ExactDecimal)  # revision 0002
    reduce_only: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # Routing context (revision 0003): the mid is a price, kept exact; the cost in bps and the
    # relative sizes are computed figures, rounded half-even to 18 places.
    decision_mid: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    expected_cost_bps: Decimal | None = Field(default=None, sa_type=RoundedDecimal)
    x_depth: Decimal | None = Field(default=None, sa_type=RoundedDecimal)
    x_volume: Decimal | None = Field(default=None, sa_type=RoundedDecimal)


class FillRow(_Row, table=True):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("venue", "trade_id"),)

    id: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    parent_id: str = Field(foreign_key="parent_orders.id", index=True)
    venue: str
    trade_id: str
    client_order_id: str = Field(index=True)
    symbol: str
    side: str
    price: Decimal = Field(sa_type=ExactDecimal)
    qty: Decimal = Field(sa_type=ExactDecimal)
    fee: Decimal = Field(sa_type=ExactDecimal)
    fee_currency: str
    liquidity: str
    ts: datetime = Field(sa_type=UtcDateTime)


class EventRow(_Row, table=True):
    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}  # never reuse a seq, even after a delete

    seq: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    parent_id: str = Field(foreign_key="parent_orders.id", index=True)
    kind: str
    ts: datetime = Field(sa_type=UtcDateTime)
    payload: str = Field(sa_type=Text)  # JSON object of strings (ems.events.to_payload)


class ImpactPointRow(_Row, table=True):
    """One finished child's realised cost against its expected cost (revision 0003)."""

    __tablename__ = "impact_points"
    __table_args__ = (
        UniqueConstraint("client_order_id"),  # one point per child: a repeat is skipped
        Index("ix_impact_points_venue_symbol_ts", "venue", "symbol", "ts"),
    )

    id: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    client_order_id: str
    parent_id: str = Field(foreign_key="parent_orders.id")
    venue: str
    symbol: str
    side: str
    ts: datetime = Field(sa_type=UtcDateTime)
    qty: Decimal = Field(sa_type=ExactDecimal)
    filled_qty: Decimal = Field(sa_type=ExactDecimal)
    aggressive: bool
    decision_mid: Decimal = Field(sa_type=ExactDecimal)
    x_depth: Decimal = Field(sa_type=RoundedDecimal)
    x_volume: Decimal = Field(sa_type=RoundedDecimal)
    expected_cost_bps: Decimal = Field(sa_type=RoundedDecimal)
    realised_cost_bps: Decimal = Field(sa_type=RoundedDecimal)
    fee_bps: Decimal = Field(sa_type=RoundedDecimal)


class ImpactFitRow(_Row, table=True):
    """The history of fitted impact curves; the newest per venue and symbol is current."""

    __tablename__ = "impact_fits"
    __table_args__ = (
        Index("ix_impact_fits_venue_symbol_fitted_at", "venue", "symbol", "fitted_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    venue: str
    symbol: str
    a: Decimal = Field(sa_type=RoundedDecimal)
    b: Decimal = Field(sa_type=RoundedDecimal)
    a_low: Decimal = Field(sa_type=RoundedDecimal)
    a_high: Decimal = Field(sa_type=RoundedDecimal)
    b_low: Decimal = Field(sa_type=RoundedDecimal)
    b_high: Decimal = Field(sa_type=RoundedDecimal)
    n: int
    fitted_at: datetime = Field(sa_type=UtcDateTime)


class RouteDecisionRow(_Row, table=True):
    """One routing decision of a parent with its inputs (revision 0003)."""

    __tablename__ = "route_decisions"

    id: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    parent_id: str = Field(foreign_key="parent_orders.id", index=True)
    ts: datetime = Field(sa_type=UtcDateTime)
    side: str
    qty: Decimal = Field(sa_type=ExactDecimal)
    price: Decimal = Field(sa_type=ExactDecimal)
    aggressive: bool
    mid: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    expected_cost_bps: Decimal | None = Field(default=None, sa_type=RoundedDecimal)
    quotes: str = Field(sa_type=Text)  # JSON list of objects of strings
    allocations: str = Field(sa_type=Text)  # JSON list of objects of strings
    notes: str = Field(sa_type=Text)  # JSON list of strings


class AuditRow(_Row, table=True):
    """An administrative change: trading state or risk limits (revision 0004)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    ts: datetime = Field(sa_type=UtcDateTime)
    actor: str
    action: str = Field(index=True)
    scope: str
    before: str = Field(sa_type=Text)
    after: str = Field(sa_type=Text)
    reason: str = Field(sa_type=Text)


class CoverageRow(_Row, table=True):
    """A hedge-coverage decision of the risk module (revision 0005)."""

    __tablename__ = "coverage_decisions"

    id: int | None = Field(default=None, sa_column=Column(_serial(), primary_key=True))
    ts: datetime = Field(sa_type=UtcDateTime)
    kind: str = Field(index=True)
    phase: str
    unwind_status: str
    spot_qty: Decimal = Field(sa_type=ExactDecimal)
    perp_short_qty: Decimal = Field(sa_type=ExactDecimal)
    put_cover_qty: Decimal = Field(sa_type=RoundedDecimal)
    detail: str = Field(sa_type=Text)
    state: str = Field(sa_type=Text)
    code: str | None = None
    evidence: str = Field(sa_type=Text)
    actor: str
    parent_id: str | None = None
    basis_bps: Decimal | None = Field(default=None, sa_type=RoundedDecimal)
    basis_annualised: Decimal | None = Field(default=None, sa_type=RoundedDecimal)


class ApiKeyRow(_Row, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_key_hash", "key_hash", unique=True),)

    key_id: str = Field(primary_key=True)
    name: str
    role: str
    key_hash: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    revoked: bool = False


# --- rows <-> domain objects ------------------------------------------------


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"algo parameter {value!r} of type {type(value).__name__} is not JSON")


def plain(obj: object, skip: frozenset[str]) -> dict[str, Any]:
    """The dataclass fields of ``obj`` minus ``skip``, enums as their values."""
    values: dict[str, Any] = {}
    for f in fields(obj):  # type: ignore[arg-type]
        if f.name not in skip:
            value = getattr(obj, f.name)
            values[f.name] = value.value if isinstance(value, enum.Enum) else value
    return values


_PARENT_SKIP = frozenset({"trade_ids", "venues", "algo_params"})


def parent_row(parent: ParentOrder) -> ParentRow:
    """The row of ``parent``; ``algo_params`` must be JSON (Decimals are written as strings)."""
    return ParentRow(
        **plain(parent, _PARENT_SKIP),
        venues=json.dumps(list(parent.venues)),
        algo_params=json.dumps(parent.algo_params, sort_keys=True, default=_json_default),
    )


def parent_from_row(row: ParentRow, trade_ids: Iterable[str]) -> ParentOrder:
    """Rebuild a parent from its row and the trade ids of its fills."""
    values = row.model_dump(exclude={"venues", "algo_params", "side", "status", "role"})
    return ParentOrder(
        **values,
        side=Side(row.side),
        status=ParentStatus(row.status),
        role=ParentRole(row.role),
        venues=tuple(json.loads(row.venues)),
        algo_params=json.loads(row.algo_params),
        trade_ids=set(trade_ids),
    )


def child_row(child: ChildOrder) -> ChildRow:
    """The row of ``child`` (its trade ids live in the fills table)."""
    return ChildRow(**plain(child, frozenset({"trade_ids"})))


def child_from_row(row: ChildRow, trade_ids: Iterable[str]) -> ChildOrder:
    """Rebuild a child from its row and the trade ids of its fills."""
    values = row.model_dump(exclude={"side", "order_type", "time_in_force", "status"})
    return ChildOrder(
        **values,
        side=Side(row.side),
        order_type=OrderType(row.order_type),
        time_in_force=TimeInForce(row.time_in_force),
        status=ChildStatus(row.status),
        trade_ids=set(trade_ids),
    )


def fill_values(parent_id: str, fill: Fill) -> dict[str, Any]:
    """Column values of a fill of ``parent_id``, for a bulk insert."""
    return {**plain(fill, frozenset()), "parent_id": parent_id}


def fill_from_row(row: FillRow) -> Fill:
    """Rebuild a fill from its row."""
    values = row.model_dump(exclude={"id", "parent_id", "side", "liquidity"})
    return Fill(**values, side=Side(row.side), liquidity=Liquidity(row.liquidity))


def event_values(parent_id: str, event: Event) -> dict[str, Any]:
    """Column values of an event-log row (``seq`` is assigned by the database)."""
    payload = json.dumps(to_payload(event))
    return {"parent_id": parent_id, "kind": event.kind, "ts": event.ts, "payload": payload}


def event_from_row(row: EventRow) -> EventRecord:
    """The event-log record of a row."""
    assert row.seq is not None
    return EventRecord(
        seq=row.seq,
        parent_id=row.parent_id,
        kind=row.kind,
        ts=row.ts,
        payload=json.loads(row.payload),
    )


def impact_point_values(point: ImpactPoint) -> dict[str, Any]:
    """Column values of an impact point, for a bulk insert (``id`` is assigned by the database)."""
    return plain(point, frozenset())


def impact_point_from_row(row: ImpactPointRow) -> ImpactPoint:
    """Rebuild an impact point from its row."""
    values = row.model_dump(exclude={"id", "side"})
    return ImpactPoint(**values, side=Side(row.side))


def impact_fit_row(fit: ImpactFitRecord) -> ImpactFitRow:
    """The history row of a fitted impact curve."""
    return ImpactFitRow(**plain(fit, frozenset()))


def impact_fit_from_row(row: ImpactFitRow) -> ImpactFitRecord:
    """Rebuild a fit record from its row."""
    return ImpactFitRecord(**row.model_dump(exclude={"id"}))


def _string_maps_json(items: Iterable[Mapping[str, str]], what: str) -> str:
    """JSON of a list of objects whose keys and values are all strings (their order kept).

    Anything else is refused (``TypeError`` naming it) rather than written in a form that would
    not read back as it was given.
    """
    checked: list[dict[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise TypeError(f"{what}: {item!r} is not a mapping of strings")
        for key, value in item.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"{what}: {key!r} = {value!r} is not a string")
        checked.append(dict(item))
    return json.dumps(checked)


def route_values(record: RouteRecord) -> dict[str, Any]:
    """Column values of a routing decision, for a bulk insert (``id`` is assigned by the
    database). Quotes, allocations and notes must hold strings only (``TypeError`` otherwise)."""
    for note in record.notes:
        if not isinstance(note, str):
            raise TypeError(f"route notes: {note!r} is not a string")
    return {
        **plain(record, frozenset({"quotes", "allocations", "notes"})),
        "quotes": _string_maps_json(record.quotes, "route quotes"),
        "allocations": _string_maps_json(record.allocations, "route allocations"),
        "notes": json.dumps(list(record.notes)),
    }


def route_from_row(row: RouteDecisionRow) -> RouteRecord:
    """Rebuild a routing decision from its row."""
    values = row.model_dump(exclude={"id", "side", "quotes", "allocations", "notes"})
    return RouteRecord(
        **values,
        side=Side(row.side),
        quotes=tuple(json.loads(row.quotes)),
        allocations=tuple(json.loads(row.allocations)),
        notes=tuple(json.loads(row.notes)),
    )
