"""Ports: the small interfaces the manager and the API depend on.

Adapters (``ems.venues.*``, ``ems.store``) implement them; the core never imports an adapter.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from ems.domain import ZERO, Balance, Fill, Instrument, OrderBook, OrderRequest, Side
from ems.events import Event
from ems.orders import ChildOrder, ParentOrder, ParentStatus


class VenueOrderStatus(enum.StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class VenueOrderState:
    """What a venue says about one of our orders: its status and every fill so far."""

    client_order_id: str
    venue_order_id: str
    status: VenueOrderStatus
    filled_qty: Decimal = ZERO
    fills: tuple[Fill, ...] = ()
    reason: str = ""


class VenuePort(Protocol):
    """A trading venue (simulated or real through ccxt)."""

    @property
    def name(self) -> str: ...

    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by unified symbol (``BTC/USDT``)."""
        ...

    async def submit(self, request: OrderRequest) -> VenueOrderState:
        """Send an order. Raises ``VenueRejected``, ``RetryableVenueError`` (nothing sent) or
        ``SubmitOutcomeUnknown`` (maybe sent: reconcile by client id, never re-send)."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        """Ask the venue to cancel; idempotent. Raises ``OrderNotFoundAtVenue`` if unknown."""
        ...

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrderState:
        """The venue's view of an order by client id. Raises ``OrderNotFoundAtVenue``."""
        ...

    async def order_book(self, symbol: str, depth: int = 20) -> OrderBook: ...

    async def traded_volume(self, symbol: str, since: datetime) -> Decimal:
        """Market quantity (base units) traded on ``symbol`` after ``since``."""
        ...

    async def balances(self) -> Mapping[str, Balance]: ...

    def drain_updates(self) -> list[VenueOrderState]:
        """Order updates pushed by the venue since the last call (may be empty)."""
        ...


@dataclass(frozen=True, slots=True)
class ImpactPoint:
    """The realised cost of one finished child against what was expected when it was routed.

    Costs are in bps of the decision-time mid, signed so that positive is a cost for our side;
    ``realised_cost_bps`` excludes fees (``fee_bps`` separately). ``x_depth`` is the child's
    size relative to the displayed depth it could take, ``x_volume`` relative to the market
    volume of the recent past.
    """

    client_order_id: str
    parent_id: str
    venue: str
    symbol: str
    side: Side
    ts: datetime
    qty: Decimal
    filled_qty: Decimal
    aggressive: bool
    decision_mid: Decimal
    x_depth: Decimal
    x_volume: Decimal
    expected_cost_bps: Decimal
    realised_cost_bps: Decimal
    fee_bps: Decimal


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """One routing decision with its inputs, as stored for review.

    ``quotes`` holds, per venue, its best bid/ask, whether it was tradable and why not, its
    expected all-in cost for the whole slice and its capacity; ``allocations`` the children sent
    (venue, client order id, qty, price, expected cost). Values are strings (exact decimals).
    """

    parent_id: str
    ts: datetime
    side: Side
    qty: Decimal
    price: Decimal
    aggressive: bool
    mid: Decimal | None
    expected_cost_bps: Decimal | None
    quotes: tuple[Mapping[str, str], ...]
    allocations: tuple[Mapping[str, str], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImpactFitRecord:
    """A fitted impact curve ``cost_bps = a * x ** b`` as stored (exact decimals)."""

    venue: str
    symbol: str
    a: Decimal
    b: Decimal
    a_low: Decimal
    a_high: Decimal
    b_low: Decimal
    b_high: Decimal
    n: int
    fitted_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An administrative change (trading state, risk limits) with who made it and why.

    ``before`` and ``after`` are JSON texts of the changed setting.
    """

    ts: datetime
    actor: str
    action: str  # "trading_state" or "risk_limits"
    scope: str  # "global" or a venue name
    before: str
    after: str
    reason: str


class CoverageKind(enum.StrEnum):
    """What a coverage decision records."""

    PHASE = "phase"
    SPOT_HELD = "spot_held"
    SPOT_RESUMED = "spot_resumed"
    HEDGE_ORDER = "hedge_order"
    HEDGE_FILL = "hedge_fill"
    HEDGE_REFUSED = "hedge_refused"
    UNWIND_STEP = "unwind_step"
    UNWIND_REFUSED = "unwind_refused"
    UNWIND_REQUESTED = "unwind_requested"
    PUT_ROLL = "put_roll"
    DRIFT = "drift"
    POSITION_BREAK = "position_break"


@dataclass(frozen=True, slots=True)
class CoverageRecord:
    """One hedge-coverage decision of the risk module, with the exposure it was taken on.

    ``kind`` says what happened (a :class:`CoverageKind` value); ``code`` is the risk reason code
    of a refusal; ``state`` is the JSON of the hedge desk's durable state *after* the decision
    (phase, unwind progress), so the last record restores it after a restart.
    """

    ts: datetime
    kind: str
    phase: str
    unwind_status: str
    spot_qty: Decimal
    perp_short_qty: Decimal
    put_cover_qty: Decimal
    detail: str
    state: str
    code: str | None = None
    evidence: str = ""
    actor: str = "system"
    parent_id: str | None = None
    basis_bps: Decimal | None = None  # hedge fills: (hedge price − spot mid) ÷ spot mid
    basis_annualised: Decimal | None = None  # futures: basis over time to expiry; perps: funding


@dataclass(slots=True)
class Batch:
    """Everything one step changed; the store writes it in a single transaction."""

    parents: list[ParentOrder] = field(default_factory=list)
    children: list[ChildOrder] = field(default_factory=list)
    fills: list[tuple[str, Fill]] = field(default_factory=list)  # (parent_id, fill)
    events: list[tuple[str, Event]] = field(default_factory=list)  # (parent_id, event)
    impact_points: list[ImpactPoint] = field(default_factory=list)
    routes: list[RouteRecord] = field(default_factory=list)
    coverage: list[CoverageRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.parents
            or self.children
            or self.fills
            or self.events
            or self.impact_points
            or self.routes
            or self.coverage
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the append-only event log."""

    seq: int
    parent_id: str
    kind: str
    ts: datetime
    payload: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    name: str
    role: str
    key_hash: str
    created_at: datetime
    revoked: bool = False


class StorePort(Protocol):
    """Durable state: parents, children, fills, the event log and API keys."""

    def create_parent(self, parent: ParentOrder, accepted: Event) -> tuple[ParentOrder, bool]:
        """Insert a parent and its acceptance event in one transaction.

        If a parent with the same ``client_id`` exists, nothing is written and
        ``(existing, False)`` is returned; otherwise ``(parent, True)``.
        """
        ...

    def commit(self, batch: Batch) -> None:
        """Upsert parents and children, insert fills (a fill whose ``(venue, trade_id)`` is
        stored already is skipped), append events; all in one transaction."""
        ...

    def get_parent(self, parent_id: str) -> ParentOrder | None: ...

    def get_parent_by_client_id(self, client_id: str) -> ParentOrder | None: ...

    def list_parents(
        self,
        *,
        status: ParentStatus | None = None,
        symbol: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ParentOrder]:
        """Newest first."""
        ...

    def active_parents(self) -> list[ParentOrder]:
        """Every parent not in a terminal status, with its ``trade_ids`` loaded."""
        ...

    def children(self, parent_id: str) -> list[ChildOrder]:
        """Children of a parent in sequence order, with their ``trade_ids`` loaded."""
        ...

    def fills(self, parent_id: str) -> list[Fill]:
        """Fills of a parent in time order."""
        ...

    def fills_since(self, since: datetime | None = None) -> list[Fill]:
        """Every fill of every parent at or after ``since``, in time order."""
        ...

    def events(self, parent_id: str) -> list[EventRecord]:
        """The event log of a parent (its children's events included) in append order."""
        ...

    def impact_points(
        self,
        *,
        venue: str | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        limit: int = 10_000,
    ) -> list[ImpactPoint]:
        """Recorded impact points, newest first, filtered by venue, symbol and time."""
        ...

    def save_impact_fit(self, fit: ImpactFitRecord) -> None:
        """Append a fit to the history; the newest per (venue, symbol) is the current one."""
        ...

    def impact_fits(
        self, *, venue: str | None = None, symbol: str | None = None
    ) -> list[ImpactFitRecord]:
        """The current (newest) fit of every venue and symbol, filtered."""
        ...

    def route_decisions(self, parent_id: str) -> list[RouteRecord]:
        """Routing decisions of a parent, in time order."""
        ...

    def add_audit(self, record: AuditRecord) -> None:
        """Append an administrative change to the audit log (its own transaction)."""
        ...

    def audit_log(self, *, action: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        """Audit records, oldest first (the newest ``limit``), optionally of one action."""
        ...

    def add_coverage(self, record: CoverageRecord) -> None:
        """Append one coverage decision outside a step's batch (e.g. a phase change)."""
        ...

    def coverage_log(self, *, kind: str | None = None, limit: int = 1000) -> list[CoverageRecord]:
        """The newest ``limit`` coverage decisions (optionally of one kind), oldest first."""
        ...

    def add_api_key(self, record: ApiKeyRecord) -> None: ...

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...


Venues = Mapping[str, VenuePort]
ChildList = Sequence[ChildOrder]
