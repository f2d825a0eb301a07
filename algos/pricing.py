"""Pricing shared by every algorithm: passive by default, crossing only when behind, never
through a void.

Every algorithm reads the same :class:`ExecutionStyle` keys from its ``algo_params`` and hands
its wanted quantity and urgency to :func:`plan_step`, which decides price, size and time in force
of the step's one child and which resting children to re-plan.

Rules:

* **Urgency** is how far fills lag the schedule, in slices (each algorithm says how it measures
  it; :func:`lag_urgency` is the slice-schedule version). Below 0.5 a child *joins* the best
  price on its own side; from 0.5 it *improves* by one tick when the spread is wider than one
  tick; from 1 it *crosses* the spread with an IOC. ``math.inf`` means "complete now" (e.g. the
  final interval).
* **Void guard.** A crossing child may only take the visible levels of the far side that form a
  *band*: walking from our own touch (so the spread is the first gap) through the far side, stop
  before the first gap between consecutive prices wider than ``max_gap_bps`` or before a level
  deeper than ``max_depth_bps`` from the far touch (both in basis points of the far touch), and
  before the limit price. The child is sized to what the band holds and priced at the band level
  its quantity reaches. When the band holds less than the venue minimum, the child goes passive
  (improving) instead; ``Plan.hold_reason`` says why only when nothing at all is sent.
* **I-would price.** When far-side levels at or better than ``i_would_price`` hold at least the
  venue minimum (inside the band and the limit), the algorithm may accelerate: one IOC takes up to
  all unallocated quantity (or the algorithm's own ceiling) from those levels, even ahead of
  schedule.
* **Limit.** The parent's hard limit caps every price, passive or aggressive.
* **Repricing.** A resting child is cancelled (its quantity re-planned next step) once it has
  rested ``min_rest_s`` and either the price it would be quoted now (the touch, capped at the
  limit) is ``reprice_ticks`` ticks or more away from its price, or the algorithm wants to cross
  and the band allows it (escalation), or it is older than the algorithm's maximum rest time.
  While any cancel is sent no new child is: the next step plans with the released quantity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from algos.base import (
    MarketView,
    ParentView,
    Plan,
    SliceIntent,
    cap_at_limit,
    param_decimal,
    param_float,
    param_int,
    size_slice,
)
from ems.domain import ZERO, BookLevel, Instrument, OrderBook, Rounding, Side, TimeInForce
from ems.errors import InvalidOrder

STYLE_KEYS: frozenset[str] = frozenset(
    {"i_would_price", "max_gap_bps", "max_depth_bps", "min_rest_s", "reprice_ticks"}
)
"""The ``algo_params`` keys every algorithm accepts for its pricing."""

BPS = Decimal(10_000)
JOIN_BELOW = 0.5
CROSS_FROM = 1.0
MUST_COMPLETE = math.inf
"""Urgency meaning "complete now": cross whatever the band allows."""


@dataclass(frozen=True, slots=True)
class ExecutionStyle:
    """How an algorithm prices its children (see the module docstring for the rules)."""

    i_would_price: Decimal | None = None
    max_gap_bps: Decimal = Decimal(20)
    max_depth_bps: Decimal = Decimal(50)
    min_rest_s: float = 5.0
    reprice_ticks: int = 2

    def __post_init__(self) -> None:
        if self.i_would_price is not None and self.i_would_price <= 0:
            raise InvalidOrder(
                f"i_would_price must be positive, got {self.i_would_price}",
                field="algo_params.i_would_price",
            )
        if not 0 < self.max_gap_bps <= BPS:
            raise InvalidOrder(
                f"max_gap_bps must be above 0 and at most 10000, got {self.max_gap_bps}",
                field="algo_params.max_gap_bps",
            )
        if not 0 <= self.max_depth_bps <= BPS:
            raise InvalidOrder(
                f"max_depth_bps must be between 0 and 10000, got {self.max_depth_bps}",
                field="algo_params.max_depth_bps",
            )
        if not 0 <= self.min_rest_s <= 86_400:
            raise InvalidOrder(
                f"min_rest_s must be between 0 and 86400 seconds, got {self.min_rest_s}",
                field="algo_params.min_rest_s",
            )
        if not 1 <= self.reprice_ticks <= 1_000_000:
            raise InvalidOrder(
                f"reprice_ticks must be between 1 and 1000000, got {self.reprice_ticks}",
                field="algo_params.reprice_ticks",
            )

    @property
    def min_rest(self) -> timedelta:
        """The minimum rest time as a duration."""
        return timedelta(seconds=self.min_rest_s)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ExecutionStyle:
        """Read the pricing keys of ``algo_params`` (other keys are the algorithm's business)."""
        default = cls()
        max_gap = param_decimal(raw, "max_gap_bps", default.max_gap_bps)
        max_depth = param_decimal(raw, "max_depth_bps", default.max_depth_bps)
        assert max_gap is not None and max_depth is not None
        return cls(
            i_would_price=param_decimal(raw, "i_would_price", None),
            max_gap_bps=max_gap,
            max_depth_bps=max_depth,
            min_rest_s=param_float(raw, "min_rest_s", default.min_rest_s),
            reprice_ticks=param_int(raw, "reprice_ticks", default.reprice_ticks),
        )


# --- book geometry ---------------------------------------------------------------------------


def _bps(diff: Decimal, ref: Decimal) -> Decimal:
    return abs(diff) / ref * BPS


def _not_beyond(side: Side, price: Decimal, bound: Decimal | None) -> bool:
    """True when ``price`` is at or better than ``bound`` for an order of ``side``."""
    if bound is None:
        return True
    return price <= bound if side is Side.BUY else price >= bound


def crossing_band(
    side: Side,
    book: OrderBook,
    style: ExecutionStyle,
    limit: Decimal | None,
    cap: Decimal | None = None,
) -> tuple[BookLevel, ...]:
    """The far-side levels a crossing child of ``side`` may take (void guard, depth, limit).

    Walks from our own touch (the spread is the first gap) through the far side and stops before
    a gap wider than ``style.max_gap_bps``, a level deeper than ``style.max_depth_bps`` from the
    far touch, or a level beyond ``limit`` or ``cap``. Empty levels are skipped.
    """
    far = book.asks if side is Side.BUY else book.bids
    if not far or far[0].price <= 0:
        return ()
    ref = far[0].price
    previous = book.touch(side)
    band: list[BookLevel] = []
    for level in far:
        if level.qty <= 0:
            continue
        if not (_not_beyond(side, level.price, limit) and _not_beyond(side, level.price, cap)):
            break
        if _bps(level.price - ref, ref) > style.max_depth_bps:
            break
        if previous is not None and _bps(level.price - previous, ref) > style.max_gap_bps:
            break
        band.append(level)
        previous = level.price
    return tuple(band)


def band_qty(levels: tuple[BookLevel, ...]) -> Decimal:
    """Visible quantity on ``levels``."""
    return sum((level.qty for level in levels), ZERO)


def cross_price(
    side: Side, levels: tuple[BookLevel, ...], qty: Decimal, instrument: Instrument
) -> Decimal:
    """Price reaching far enough into ``levels`` (non-empty) to take ``qty``, on the tick."""
    taken = ZERO
    price = levels[-1].price
    for level in levels:
        taken += level.qty
        if taken >= qty:
            price = level.price
            break
    return instrument.round_price(price, Rounding.UP if side is Side.BUY else Rounding.DOWN)


def passive_quote(
    side: Side,
    book: OrderBook,
    instrument: Instrument,
    limit: Decimal | None,
    improve: bool,
) -> Decimal | None:
    """A resting price: join our touch, or improve it by one tick when ``improve`` and the
    spread is wider than one tick; one tick inside the far touch if our side is empty.

    Capped at ``limit`` and rounded so it never becomes more aggressive; None with no book.
    """
    touch, far = book.touch(side), book.far_touch(side)
    tick = instrument.tick_size
    if touch is None:
        if far is None:
            return None
        price = far - side.sign * tick
    else:
        price = touch
        if improve and far is not None and abs(far - touch) > tick:
            price = touch + side.sign * tick
    price = instrument.passive_price(side, cap_at_limit(side, price, limit))
    return price if price > 0 else None


# --- sizing and urgency ----------------------------------------------------------------------


def size_capped(
    wanted: Decimal,
    unallocated: Decimal,
    instrument: Instrument,
    price: Decimal,
    cap: Decimal | None,
) -> Decimal:
    """Like :func:`algos.base.size_slice`, but never more than ``cap`` (None: no cap).

    The tail rule still holds: if what would be left after the child is positive but below the
    venue minimum, the child takes it when that fits under ``cap``, and otherwise shrinks so the
    rest stays tradable. Returns zero when no child of at least the minimum fits.
    """
    if cap is None:
        return size_slice(wanted, unallocated, instrument, price)
    cap = instrument.round_qty(min(cap, unallocated))
    qty = instrument.round_qty(min(wanted, cap))
    minimum = instrument.min_tradable_qty(price)
    rest = instrument.round_qty(unallocated)
    if qty < minimum or qty <= 0:
        return ZERO
    if ZERO < rest - qty < minimum:
        if rest <= cap:
            return rest
        qty = rest - minimum
        if qty < minimum:
            return ZERO
    return qty


def lag_urgency(target: Decimal, filled: Decimal, due_now: Decimal, slice_qty: Decimal) -> float:
    """Urgency of a slice schedule: slices of fills missing *before* the slice now due.

    ``target - filled`` includes the slice the schedule just released (``due_now``); lagging by
    that slice alone is being on schedule (urgency 0). ``slice_qty`` is the normal slice size.
    """
    if slice_qty <= 0:
        return 0.0
    return max(0.0, float((target - filled - due_now) / slice_qty))


# --- the step ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """The child one step would send (or why none), and whether crossing is possible now."""

    intent: SliceIntent | None
    hold_reason: str
    can_cross: bool


def decide(
    view: ParentView,
    market: MarketView,
    style: ExecutionStyle,
    *,
    wanted: Decimal,
    urgency: float,
    reason: str,
    cross_reason: str,
    max_child: Decimal | None = None,
    accelerate_max: Decimal | None = None,
) -> Decision:
    """Price and size this step's child.

    ``wanted``: the schedule's deficit (target − filled − working); ``urgency``: see the module
    docstring; ``max_child``: the most any child may carry (iceberg clip, POV cap);
    ``accelerate_max``: the most an i-would acceleration may take (default: all unallocated).
    """
    side, book, instrument, limit = view.side, market.book, market.instrument, view.limit_price
    band = crossing_band(side, book, style, limit)
    in_band = band_qty(band)
    minimum = _minimum(market, side)
    can_cross = in_band >= minimum
    unallocated = view.unallocated
    if unallocated <= 0:
        return Decision(None, "", can_cross)
    ceiling = unallocated if max_child is None else min(unallocated, max_child)

    best: SliceIntent | None = None
    if style.i_would_price is not None:
        levels = crossing_band(side, book, style, limit, cap=style.i_would_price)
        most = min(ceiling, band_qty(levels))
        if accelerate_max is not None:
            most = min(most, accelerate_max)
        if levels and most > 0:
            qty = size_capped(most, unallocated, instrument, levels[-1].price, most)
            if qty > 0:
                price = cross_price(side, levels, qty, instrument)
                best = SliceIntent(qty, price, TimeInForce.IOC, True, "i-would price")
    if wanted > 0 and urgency >= CROSS_FROM and band:
        most = min(wanted, ceiling, in_band)
        qty = size_capped(most, unallocated, instrument, band[-1].price, min(ceiling, in_band))
        if qty > 0 and (best is None or qty > best.qty):
            price = cross_price(side, band, qty, instrument)
            best = SliceIntent(qty, price, TimeInForce.IOC, True, cross_reason)
    if best is not None:
        return Decision(best, "", can_cross)
    if wanted <= 0:
        return Decision(None, "", can_cross)

    blocked = urgency >= CROSS_FROM and not can_cross
    resting = passive_quote(side, book, instrument, limit, improve=urgency >= JOIN_BELOW)
    if resting is None:
        return Decision(None, "no price on the book", can_cross)
    qty = size_capped(wanted, unallocated, instrument, resting, max_child)
    if qty <= 0:
        why = "slice below the venue minimum; waiting for it to grow"
        if blocked:
            why = f"{_void_note(style)}; passive {why}"
        return Decision(None, why, can_cross)
    passive_reason = reason
    if blocked:
        passive_reason = f"{cross_reason} (passive: {_void_note(style)})"
    return Decision(
        SliceIntent(qty, resting, TimeInForce.GTC, False, passive_reason), "", can_cross
    )


def _minimum(market: MarketView, side: Side) -> Decimal:
    reference = market.book.far_touch(side) or market.book.touch(side)
    if reference is None:
        return market.instrument.lot_size
    return market.instrument.min_tradable_qty(reference)


def crossable(view: ParentView, market: MarketView, style: ExecutionStyle) -> bool:
    """True when the void-guard band holds at least the venue minimum for a crossing child."""
    band = crossing_band(view.side, market.book, style, view.limit_price)
    return band_qty(band) >= _minimum(market, view.side)


def _void_note(style: ExecutionStyle) -> str:
    # Stable wording (no book quantities): the manager records each distinct hold reason once.
    return (
        f"void guard: less than the venue minimum visible within {style.max_gap_bps} bps gaps "
        f"and {style.max_depth_bps} bps of the far touch (and the limit)"
    )


def children_to_reprice(
    view: ParentView,
    market: MarketView,
    style: ExecutionStyle,
    now: datetime,
    *,
    escalate: bool = False,
    max_rest: timedelta | None = None,
) -> tuple[str, ...]:
    """Resting children to cancel so their quantity is re-planned (see the module docstring)."""
    side, instrument = view.side, market.instrument
    touch = market.book.touch(side)
    quote = None if touch is None else cap_at_limit(side, touch, view.limit_price)
    threshold = instrument.tick_size * style.reprice_ticks
    out: list[str] = []
    for child in view.children:
        if child.cancel_pending or child.time_in_force is TimeInForce.IOC or child.price is None:
            continue
        rested = now - child.created_at
        if rested < style.min_rest:
            continue
        moved = quote is not None and abs(quote - child.price) >= threshold
        too_old = max_rest is not None and rested >= max_rest
        if moved or escalate or too_old:
            out.append(child.client_order_id)
    return tuple(out)


def plan_step(
    view: ParentView,
    market: MarketView,
    style: ExecutionStyle,
    now: datetime,
    *,
    wanted: Decimal,
    urgency: float,
    reason: str = "schedule",
    cross_reason: str = "catch-up",
    max_child: Decimal | None = None,
    accelerate_max: Decimal | None = None,
    max_rest: timedelta | None = None,
) -> Plan:
    """One step of any algorithm: re-plan stale resting children, else send one priced child."""
    decision = decide(
        view,
        market,
        style,
        wanted=wanted,
        urgency=urgency,
        reason=reason,
        cross_reason=cross_reason,
        max_child=max_child,
        accelerate_max=accelerate_max,
    )
    escalate = decision.can_cross and urgency >= CROSS_FROM
    cancels = children_to_reprice(view, market, style, now, escalate=escalate, max_rest=max_rest)
    if cancels:
        return Plan(cancel=cancels)
    if decision.intent is not None:
        return Plan(slices=(decision.intent,))
    return Plan(hold_reason=decision.hold_reason)
