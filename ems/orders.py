"""Parent and child order state machines.

Status changes only by ``apply(event)``; the allowed moves are the transition tables below and
anything else raises ``InvalidTransition``. Fills are deduplicated by venue trade id and can
never take an order past its quantity.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ems.domain import ZERO, Liquidity, OrderType, Side, TimeInForce
from ems.errors import InvalidOrder, InvalidTransition, Overfill
from ems.events import (
    ChildAccepted,
    ChildCancelled,
    ChildCancelRequested,
    ChildEvent,
    ChildExpired,
    ChildFilled,
    ChildRejected,
    ChildSubmitted,
    ParentAccepted,
    ParentAmended,
    ParentCancelRequested,
    ParentCompleted,
    ParentEvent,
    ParentExpiring,
    ParentFillApplied,
    ParentNote,
    ParentPaused,
    ParentRejected,
    ParentResumed,
    ParentStarted,
    ParentWoundDown,
)


class ChildStatus(enum.StrEnum):
    PENDING_SUBMIT = "pending_submit"  # persisted, maybe not yet sent
    SUBMITTED = "submitted"  # sent, no acknowledgement yet (in flight)
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in CHILD_TERMINAL

    @property
    def outcome_unknown(self) -> bool:
        """The venue may or may not hold this order: reconcile before acting."""
        return self in (ChildStatus.PENDING_SUBMIT, ChildStatus.SUBMITTED)


class ParentRole(enum.StrEnum):
    """Why a parent exists: a trader's order, or a hedge leg the risk module keeps."""

    TRADE = "trade"
    BASIS_HEDGE = "basis_hedge"  # perpetual/future short against the spot
    PUT_HEDGE = "put_hedge"  # protective puts bought, rolled or released

    @property
    def is_hedge(self) -> bool:
        return self is not ParentRole.TRADE


CHILD_TERMINAL = frozenset(
    {ChildStatus.FILLED, ChildStatus.CANCELLED, ChildStatus.REJECTED, ChildStatus.EXPIRED}
)

_FILL = "fill"  # marker: the target depends on the filled quantity
_CS = ChildStatus
_LIVE = (_CS.SUBMITTED, _CS.OPEN, _CS.PARTIALLY_FILLED, _CS.PENDING_CANCEL)

CHILD_TRANSITIONS: dict[tuple[ChildStatus, type[ChildEvent]], ChildStatus | str] = {
    (_CS.PENDING_SUBMIT, ChildSubmitted): _CS.SUBMITTED,
    # Reconciliation may learn of acceptance, fills or the end of an order it never saw sent.
    **{(s, ChildAccepted): _CS.OPEN for s in (_CS.PENDING_SUBMIT, _CS.SUBMITTED)},
    **{(s, ChildRejected): _CS.REJECTED for s in (_CS.PENDING_SUBMIT, _CS.SUBMITTED)},
    **{(s, ChildFilled): _FILL for s in (_CS.PENDING_SUBMIT, *_LIVE)},
    **{(s, ChildCancelRequested): _CS.PENDING_CANCEL for s in _LIVE},
    **{(s, ChildCancelled): _CS.CANCELLED for s in (_CS.PENDING_SUBMIT, *_LIVE)},
    **{(s, ChildExpired): _CS.EXPIRED for s in (_CS.PENDING_SUBMIT, *_LIVE)},
}
# An acknowledgement that arrives after the first fill or a cancel request changes nothing.
for _s in (_CS.OPEN, _CS.PARTIALLY_FILLED, _CS.PENDING_CANCEL):
    CHILD_TRANSITIONS[(_s, ChildAccepted)] = _s
CHILD_TRANSITIONS[(_CS.PENDING_CANCEL, ChildCancelRequested)] = _CS.PENDING_CANCEL


@dataclass(slots=True)
class ChildOrder:
    """One order sent to one venue on behalf of a parent."""

    client_order_id: str
    parent_id: str
    seq: int
    venue: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    time_in_force: TimeInForce
    created_at: datetime
    updated_at: datetime
    status: ChildStatus = ChildStatus.PENDING_SUBMIT
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fees: Decimal = ZERO
    venue_order_id: str | None = None
    submitted_at: datetime | None = None
    reason: str = ""
    display_qty: Decimal | None = None
    reduce_only: bool = False
    # What routing knew when the child was decided, for its impact point once it is done.
    decision_mid: Decimal | None = None
    expected_cost_bps: Decimal | None = None
    x_depth: Decimal | None = None
    x_volume: Decimal | None = None
    trade_ids: set[str] = field(default_factory=set)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def working_qty(self) -> Decimal:
        """Quantity that may still fill: zero once terminal."""
        return ZERO if self.is_terminal else self.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        return self.filled_notional / self.filled_qty if self.filled_qty else None

    def apply(self, event: ChildEvent) -> bool:
        """Apply ``event``; return False for a fill already applied (duplicate trade id)."""
        if event.client_order_id != self.client_order_id:
            raise ValueError(f"event for {event.client_order_id} applied to {self.client_order_id}")
        if isinstance(event, ChildFilled) and event.trade_id in self.trade_ids:
            return False
        target = CHILD_TRANSITIONS.get((self.status, type(event)))
        if target is None:
            raise InvalidTransition(self.client_order_id, self.status.value, event.kind)
        if isinstance(event, ChildFilled):
            target = self._apply_fill(event)
        elif isinstance(event, ChildSubmitted):
            self.submitted_at = event.ts
        elif isinstance(event, ChildAccepted):
            self.venue_order_id = event.venue_order_id
        elif isinstance(event, ChildRejected | ChildCancelled):
            self.reason = event.reason
        assert isinstance(target, ChildStatus)
        self.status = target
        self.updated_at = event.ts
        return True

    def _apply_fill(self, event: ChildFilled) -> ChildStatus:
        if self.filled_qty + event.qty > self.qty:
            raise Overfill(
                f"{self.client_order_id}: fill {event.trade_id} of {event.qty} on top of "
                f"{self.filled_qty} exceeds the order quantity {self.qty}"
            )
        self.trade_ids.add(event.trade_id)
        self.filled_qty += event.qty
        self.filled_notional += event.qty * event.price
        self.fees += event.fee
        if self.filled_qty == self.qty:
            return ChildStatus.FILLED
        if self.status is ChildStatus.PENDING_CANCEL:
            return ChildStatus.PENDING_CANCEL
        return ChildStatus.PARTIALLY_FILLED


class ParentStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    WORKING = "working"
    PAUSED = "paused"
    CANCELLING = "cancelling"  # cancel requested; waiting for children to end
    EXPIRING = "expiring"  # end time passed; waiting for children to end
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in PARENT_TERMINAL

    @property
    def may_send(self) -> bool:
        """New children may be sent only while working."""
        return self is ParentStatus.WORKING


PARENT_TERMINAL = frozenset(
    {ParentStatus.COMPLETED, ParentStatus.CANCELLED, ParentStatus.REJECTED, ParentStatus.EXPIRED}
)

_PS = ParentStatus
_OPEN_PARENT = (_PS.ACCEPTED, _PS.WORKING, _PS.PAUSED, _PS.CANCELLING, _PS.EXPIRING)
_SAME = "same"  # marker: the event does not change the status

PARENT_TRANSITIONS: dict[tuple[ParentStatus, type[ParentEvent]], ParentStatus | str] = {
    (_PS.ACCEPTED, ParentAccepted): _SAME,
    (_PS.ACCEPTED, ParentStarted): _PS.WORKING,
    (_PS.ACCEPTED, ParentRejected): _PS.REJECTED,
    (_PS.ACCEPTED, ParentPaused): _PS.PAUSED,
    (_PS.WORKING, ParentPaused): _PS.PAUSED,
    (_PS.PAUSED, ParentPaused): _PS.PAUSED,
    (_PS.PAUSED, ParentResumed): _PS.WORKING,
    (_PS.WORKING, ParentResumed): _PS.WORKING,
    **{(s, ParentCancelRequested): _PS.CANCELLING for s in (_PS.ACCEPTED, _PS.WORKING, _PS.PAUSED)},
    (_PS.CANCELLING, ParentCancelRequested): _PS.CANCELLING,
    **{(s, ParentExpiring): _PS.EXPIRING for s in (_PS.ACCEPTED, _PS.WORKING, _PS.PAUSED)},
    **{(s, ParentFillApplied): _SAME for s in _OPEN_PARENT},
    **{(s, ParentCompleted): _PS.COMPLETED for s in _OPEN_PARENT},
    # A parent winding down (cancelling, expiring) is no longer amended.
    **{(s, ParentAmended): _SAME for s in (_PS.ACCEPTED, _PS.WORKING, _PS.PAUSED)},
    (_PS.CANCELLING, ParentWoundDown): _PS.CANCELLED,
    (_PS.EXPIRING, ParentWoundDown): _PS.EXPIRED,
    **{(s, ParentNote): _SAME for s in (*_OPEN_PARENT, *PARENT_TERMINAL)},
}


@dataclass(slots=True)
class ParentOrder:
    """A trader's order, worked over time by an algorithm through child orders."""

    id: str
    client_id: str
    symbol: str
    side: Side
    quantity: Decimal
    algo: str
    venues: tuple[str, ...]
    start_at: datetime
    end_at: datetime
    created_at: datetime
    updated_at: datetime
    limit_price: Decimal | None = None
    algo_params: dict[str, Any] = field(default_factory=dict)
    status: ParentStatus = ParentStatus.ACCEPTED
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fees: Decimal = ZERO
    next_child_seq: int = 1
    request_hash: str = ""
    reason: str = ""
    arrival_mid: Decimal | None = None
    maker_qty: Decimal = ZERO
    market_volume: Decimal = ZERO  # traded on the parent's venues since its start
    tracking_samples: int = 0
    tracking_abs_sum: Decimal = ZERO  # sum of |filled - target| / quantity over samples
    tracking_max: Decimal = ZERO
    last_fill_at: datetime | None = None
    role: ParentRole = ParentRole.TRADE
    reduce_only: bool = False  # every child may only reduce the position (hedge reductions)
    trade_ids: set[str] = field(default_factory=set)

    @property
    def tracking_error_mean(self) -> Decimal | None:
        """Mean absolute gap between cumulative fills and the target curve, as a share."""
        return self.tracking_abs_sum / self.tracking_samples if self.tracking_samples else None

    @property
    def participation_rate(self) -> Decimal | None:
        """Filled quantity as a share of the market volume traded since the start."""
        return self.filled_qty / self.market_volume if self.market_volume else None

    @property
    def maker_share(self) -> Decimal | None:
        return self.maker_qty / self.filled_qty if self.filled_qty else None

    def record_tracking(self, target: Decimal, market_volume: Decimal) -> None:
        """Add one schedule-quality sample: fills against the target curve, market volume."""
        gap = abs(self.filled_qty - target) / self.quantity
        self.tracking_samples += 1
        self.tracking_abs_sum += gap
        self.tracking_max = max(self.tracking_max, gap)
        self.market_volume = max(self.market_volume, market_volume)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def remaining_qty(self) -> Decimal:
        return self.quantity - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        return self.filled_notional / self.filled_qty if self.filled_qty else None

    def next_client_order_id(self) -> str:
        """Deterministic id of the next child, ``{parent}-{n}``; advances the counter."""
        client_order_id = f"{self.id}-{self.next_child_seq}"
        self.next_child_seq += 1
        return client_order_id

    def apply(self, event: ParentEvent) -> bool:
        """Apply ``event``; return False for a fill already rolled up (duplicate trade id)."""
        if event.parent_id != self.id:
            raise ValueError(f"event for {event.parent_id} applied to {self.id}")
        if isinstance(event, ParentFillApplied) and event.trade_id in self.trade_ids:
            return False
        target = PARENT_TRANSITIONS.get((self.status, type(event)))
        if target is None:
            raise InvalidTransition(self.id, self.status.value, event.kind)
        if isinstance(event, ParentFillApplied):
            if self.filled_qty + event.qty > self.quantity:
                raise Overfill(
                    f"{self.id}: fill {event.trade_id} of {event.qty} on top of "
                    f"{self.filled_qty} exceeds the parent quantity {self.quantity}"
                )
            self.trade_ids.add(event.trade_id)
            self.filled_qty += event.qty
            self.filled_notional += event.qty * event.price
            self.fees += event.fee
            if event.liquidity is Liquidity.MAKER:
                self.maker_qty += event.qty
            if self.last_fill_at is None or event.ts > self.last_fill_at:
                self.last_fill_at = event.ts
        elif isinstance(event, ParentAmended):
            self._amend(event)
        elif isinstance(
            event, ParentRejected | ParentPaused | ParentCancelRequested | ParentCompleted
        ):
            self.reason = event.reason
        if target != _SAME:
            assert isinstance(target, ParentStatus)
            self.status = target
        self.updated_at = event.ts
        return True

    def _amend(self, event: ParentAmended) -> None:
        if event.quantity is not None:
            if event.quantity < self.filled_qty:
                raise InvalidOrder(
                    f"quantity {event.quantity} is below the {self.filled_qty} already filled",
                    field="quantity",
                )
            self.quantity = event.quantity
        if event.clear_limit:
            self.limit_price = None
        elif event.limit_price is not None:
            self.limit_price = event.limit_price
        if event.end_at is not None:
            self.end_at = event.end_at
