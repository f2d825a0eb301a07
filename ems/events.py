"""Events that drive parent and child orders, and their serialisation for the event log.

Every state change of an order is one of these events applied through the order's transition
table (``ems.orders``). The store appends each applied event to an append-only log, so the
state of any order can be rebuilt by replaying its events.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from ems.domain import Fill, Liquidity, Side, ensure_utc


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all order events; ``ts`` is when it happened (aware UTC)."""

    ts: datetime
    kind: ClassVar[str] = "event"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", ensure_utc(self.ts))


# --- child order events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildEvent(Event):
    client_order_id: str


@dataclass(frozen=True, slots=True)
class ChildSubmitted(ChildEvent):
    """The submit request has been handed to the venue adapter."""

    kind: ClassVar[str] = "child_submitted"


@dataclass(frozen=True, slots=True)
class ChildAccepted(ChildEvent):
    venue_order_id: str
    kind: ClassVar[str] = "child_accepted"


@dataclass(frozen=True, slots=True)
class ChildRejected(ChildEvent):
    reason: str
    kind: ClassVar[str] = "child_rejected"


@dataclass(frozen=True, slots=True)
class ChildFilled(ChildEvent):
    """One execution; carries every field of the ``Fill``."""

    venue: str
    trade_id: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    kind: ClassVar[str] = "child_filled"

    @classmethod
    def of(cls, fill: Fill) -> ChildFilled:
        return cls(
            ts=fill.ts,
            client_order_id=fill.client_order_id,
            venue=fill.venue,
            trade_id=fill.trade_id,
            symbol=fill.symbol,
            side=fill.side,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=fill.liquidity,
        )

    @property
    def fill(self) -> Fill:
        return Fill(
            venue=self.venue,
            trade_id=self.trade_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            price=self.price,
            qty=self.qty,
            fee=self.fee,
            fee_currency=self.fee_currency,
            liquidity=self.liquidity,
            ts=self.ts,
        )


@dataclass(frozen=True, slots=True)
class ChildCancelRequested(ChildEvent):
    kind: ClassVar[str] = "child_cancel_requested"


@dataclass(frozen=True, slots=True)
class ChildCancelled(ChildEvent):
    reason: str = ""
    kind: ClassVar[str] = "child_cancelled"


@dataclass(frozen=True, slots=True)
class ChildExpired(ChildEvent):
    kind: ClassVar[str] = "child_expired"


# --- parent order events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParentEvent(Event):
    parent_id: str


@dataclass(frozen=True, slots=True)
class ParentAccepted(ParentEvent):
    kind: ClassVar[str] = "parent_accepted"


@dataclass(frozen=True, slots=True)
class ParentRejected(ParentEvent):
    reason: str
    kind: ClassVar[str] = "parent_rejected"


@dataclass(frozen=True, slots=True)
class ParentStarted(ParentEvent):
    kind: ClassVar[str] = "parent_started"


@dataclass(frozen=True, slots=True)
class ParentPaused(ParentEvent):
    reason: str = ""
    kind: ClassVar[str] = "parent_paused"


@dataclass(frozen=True, slots=True)
class ParentResumed(ParentEvent):
    kind: ClassVar[str] = "parent_resumed"


@dataclass(frozen=True, slots=True)
class ParentCancelRequested(ParentEvent):
    reason: str = ""
    kind: ClassVar[str] = "parent_cancel_requested"


@dataclass(frozen=True, slots=True)
class ParentExpiring(ParentEvent):
    kind: ClassVar[str] = "parent_expiring"


@dataclass(frozen=True, slots=True)
class ParentFillApplied(ParentEvent):
    """A child fill rolled up into the parent's accounting."""

    trade_id: str
    venue: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    liquidity: Liquidity = Liquidity.TAKER
    kind: ClassVar[str] = "parent_fill_applied"


@dataclass(frozen=True, slots=True)
class ParentAmended(ParentEvent):
    """New quantity, limit price or end time of a live parent; ``None`` leaves it unchanged.

    ``clear_limit`` removes the limit price altogether.
    """

    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    end_at: datetime | None = None
    clear_limit: bool = False
    kind: ClassVar[str] = "parent_amended"


@dataclass(frozen=True, slots=True)
class ParentCompleted(ParentEvent):
    reason: str = ""
    kind: ClassVar[str] = "parent_completed"


@dataclass(frozen=True, slots=True)
class ParentWoundDown(ParentEvent):
    """Every child of a cancelling or expiring parent is terminal."""

    kind: ClassVar[str] = "parent_wound_down"


@dataclass(frozen=True, slots=True)
class ParentNote(ParentEvent):
    """An explanation recorded against a parent (a held slice, a risk denial...)."""

    code: str
    detail: str
    kind: ClassVar[str] = "parent_note"


CHILD_EVENTS: tuple[type[ChildEvent], ...] = (
    ChildSubmitted,
    ChildAccepted,
    ChildRejected,
    ChildFilled,
    ChildCancelRequested,
    ChildCancelled,
    ChildExpired,
)
PARENT_EVENTS: tuple[type[ParentEvent], ...] = (
    ParentAccepted,
    ParentRejected,
    ParentStarted,
    ParentPaused,
    ParentResumed,
    ParentCancelRequested,
    ParentExpiring,
    ParentFillApplied,
    ParentAmended,
    ParentCompleted,
    ParentWoundDown,
    ParentNote,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.kind: cls for cls in (*CHILD_EVENTS, *PARENT_EVENTS)}


def to_payload(event: Event) -> dict[str, str]:
    """Serialise an event's fields to strings (exact decimals, ISO-8601 UTC times)."""
    payload: dict[str, str] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, datetime):
            payload[f.name] = value.isoformat()
        elif isinstance(value, enum.Enum):
            payload[f.name] = str(value.value)
        else:
            payload[f.name] = str(value)
    return payload


def from_payload(kind: str, payload: dict[str, str]) -> Event:
    """Rebuild the event ``to_payload`` produced; unknown kinds raise ``KeyError``."""
    cls = EVENT_TYPES[kind]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = payload[f.name]
        target = hints[f.name]
        options = [t for t in typing.get_args(target) if t is not type(None)]
        if options and len(options) < len(typing.get_args(target)):
            if raw == "None":
                kwargs[f.name] = None
                continue
            target = options[0]
        if target is bool:
            kwargs[f.name] = raw == "True"
        elif target is datetime:
            kwargs[f.name] = datetime.fromisoformat(raw)
        elif target is Decimal:
            kwargs[f.name] = Decimal(raw)
        elif isinstance(target, type) and issubclass(target, enum.Enum):
            kwargs[f.name] = target(raw)
        else:
            kwargs[f.name] = raw
    return cls(**kwargs)
