"""What every execution algorithm sees and returns.

Algorithms are pure: given a view of the parent, a market snapshot and ``now`` they return slice
intents. They never read the clock, the network or the database.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from ems.domain import ZERO, Instrument, OrderBook, Rounding, Side, TimeInForce
from ems.errors import InvalidOrder


@dataclass(frozen=True, slots=True)
class WorkingChild:
    """A live child as an algorithm sees it."""

    client_order_id: str
    price: Decimal | None
    working_qty: Decimal
    time_in_force: TimeInForce
    created_at: datetime
    cancel_pending: bool


@dataclass(frozen=True, slots=True)
class ParentView:
    """The parent's schedule state: what is asked, filled and working right now.

    ``last_fill_at`` is when the parent last received a fill (None: no fill yet, or the caller
    does not track it); the iceberg measures its refresh delay from it.
    """

    side: Side
    quantity: Decimal
    filled: Decimal
    working: Decimal
    start_at: datetime
    end_at: datetime
    limit_price: Decimal | None
    children: tuple[WorkingChild, ...] = ()
    last_fill_at: datetime | None = None

    @property
    def unallocated(self) -> Decimal:
        """Quantity neither filled nor working: the most any new slice may take."""
        return self.quantity - self.filled - self.working


@dataclass(frozen=True, slots=True)
class MarketView:
    """What an algorithm knows of the market at ``now``.

    ``book`` and ``instrument`` are those of the venue a new slice would go to.
    ``volume_since_start`` is the market volume (base units) traded on the parent's venues since
    the parent's start; ``volume_profile`` the desk's intraday volume curve, when configured.
    """

    book: OrderBook
    instrument: Instrument
    volume_since_start: Decimal = ZERO
    volume_profile: VolumeCurve | None = None
    native_iceberg: bool = False


class VolumeCurve(Protocol):
    """An intraday volume profile: share of a window's volume expected by a moment in it."""

    def cumulative_share(self, start: datetime, end: datetime, at: datetime) -> float:
        """Expected share (0..1) of the volume of ``[start, end]`` traded by ``at``."""
        ...


@dataclass(frozen=True, slots=True)
class SliceIntent:
    """One child the algorithm wants sent now.

    ``display_qty`` asks the venue for a native iceberg showing only that much.
    """

    qty: Decimal
    price: Decimal
    time_in_force: TimeInForce
    aggressive: bool
    reason: str
    display_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """An algorithm's decision for one step: children to send and children to cancel."""

    slices: tuple[SliceIntent, ...] = ()
    cancel: tuple[str, ...] = ()
    hold_reason: str = ""


def elapsed_fraction(start: datetime, end: datetime, now: datetime) -> Decimal:
    """Share of the window ``[start, end]`` elapsed at ``now``, clamped to [0, 1]."""
    if now <= start:
        return ZERO
    if now >= end:
        return Decimal(1)
    total = (end - start) / timedelta(microseconds=1)
    done = (now - start) / timedelta(microseconds=1)
    return Decimal(int(done)) / Decimal(int(total))


def cap_at_limit(side: Side, price: Decimal, limit: Decimal | None) -> Decimal:
    """Never pay more (buy) or accept less (sell) than the hard limit."""
    if limit is None:
        return price
    return min(price, limit) if side is Side.BUY else max(price, limit)


def sweep_price(book: OrderBook, side: Side, qty: Decimal) -> Decimal | None:
    """Worst price an order of ``side`` must reach to take ``qty`` from the visible book.

    Returns the last level's price when the book is thinner than ``qty``; None if empty.
    """
    levels = book.asks if side is Side.BUY else book.bids
    if not levels:
        return None
    taken = ZERO
    for level in levels:
        taken += level.qty
        if taken >= qty:
            return level.price
    return levels[-1].price


def size_slice(
    wanted: Decimal, unallocated: Decimal, instrument: Instrument, price: Decimal
) -> Decimal:
    """Turn a wanted quantity into a sendable one.

    Rounds down to the lot (the remainder stays with the parent). A slice below the venue's
    minimum waits (returns zero) unless the whole unallocated rest is below it too. When what
    would be left after the slice could never be traded on its own, the slice takes it along.
    """
    wanted = min(wanted, unallocated)
    qty = instrument.round_qty(wanted)
    minimum = instrument.min_tradable_qty(price)
    rest = instrument.round_qty(unallocated)
    if qty < minimum:
        return ZERO
    if ZERO < rest - qty < minimum:
        qty = rest
    return qty


def passive_price(book: OrderBook, side: Side, instrument: Instrument) -> Decimal | None:
    """Join the best price on our own side of the book."""
    touch = book.touch(side)
    if touch is None:
        return None
    rounding = Rounding.DOWN if side is Side.BUY else Rounding.UP
    return instrument.round_price(touch, rounding)


def jittered_slice_time(
    start: datetime, k: int, interval: timedelta, jitter_pct: float, seed: int, salt: str
) -> datetime:
    """When slice ``k`` (0-based) of a regular grid fires: nominal time plus a seeded jitter.

    Slice 0 fires at ``start``; the jitter (a fraction of ``interval`` drawn uniformly from
    ``[-jitter_pct, jitter_pct]``, seeded by ``salt``, ``seed`` and ``k``) never exceeds half an
    interval, so slices keep their order.
    """
    if k == 0:
        return start
    jitter = random.Random(f"{salt}:{seed}:{k}").uniform(-jitter_pct, jitter_pct)
    return start + interval * (k + jitter)


def slices_fired(
    start: datetime,
    end: datetime,
    interval: timedelta,
    jitter_pct: float,
    seed: int,
    salt: str,
    now: datetime,
) -> int:
    """How many slices of the jittered grid over ``[start, end]`` have fired by ``now``."""
    if now < start:
        return 0
    n = max(1, math.ceil((end - start) / interval))
    # Jitter moves a slice by at most half an interval, so every slice more than one interval
    # before ``now`` has fired: only the last few need their jittered time computed.
    fired = max(0, math.floor((now - start) / interval) - 1)
    while fired < n and jittered_slice_time(start, fired, interval, jitter_pct, seed, salt) <= now:
        fired += 1
    return min(fired, n)


# --- parameter parsing shared by every algorithm ---------------------------------------------


def refuse_unknown(raw: Mapping[str, Any], allowed: Collection[str], algo: str) -> None:
    """Raise ``InvalidOrder`` naming the first key of ``raw`` that ``algo`` does not know."""
    unknown = set(raw) - set(allowed)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidOrder(
            f"unknown {algo} parameter {name!r}; known: {', '.join(sorted(allowed))}",
            field=f"algo_params.{name}",
        )


def _given(raw: Mapping[str, Any], key: str) -> Any:
    value = raw.get(key)
    if isinstance(value, bool):
        raise InvalidOrder(f"{key} must be a number, not a boolean", field=f"algo_params.{key}")
    return value


def param_int(raw: Mapping[str, Any], key: str, default: int) -> int:
    """An integer parameter (``None`` or absent: ``default``)."""
    value = _given(raw, key)
    if value is None:
        return default
    try:
        number = Decimal(str(value))
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(value)
        return int(number)
    except (InvalidOperation, ValueError):
        raise InvalidOrder(
            f"{key} must be a whole number, got {value!r}", field=f"algo_params.{key}"
        ) from None


def param_float(raw: Mapping[str, Any], key: str, default: float) -> float:
    """A finite float parameter (``None`` or absent: ``default``)."""
    value = _given(raw, key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidOrder(
            f"{key} must be a number, got {value!r}", field=f"algo_params.{key}"
        ) from None
    if not math.isfinite(number):
        raise InvalidOrder(f"{key} must be finite, got {value!r}", field=f"algo_params.{key}")
    return number


def param_decimal(raw: Mapping[str, Any], key: str, default: Decimal | None) -> Decimal | None:
    """An exact decimal parameter, read from its text (``None`` or absent: ``default``)."""
    value = _given(raw, key)
    if value is None:
        return default
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidOrder(
            f"{key} must be a decimal number, got {value!r}", field=f"algo_params.{key}"
        ) from None
    if not number.is_finite():
        raise InvalidOrder(f"{key} must be finite, got {value!r}", field=f"algo_params.{key}")
    return number


def param_choice(raw: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    """A parameter taking one of a few words (``None`` or absent: ``default``)."""
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise InvalidOrder(
            f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}",
            field=f"algo_params.{key}",
        )
    return value


def check_slice_grid(slice_interval_s: int, jitter_pct: float) -> None:
    """Validate the slice grid shared by the scheduled algorithms (TWAP, VWAP)."""
    if not 1 <= slice_interval_s <= 3600:
        raise InvalidOrder(
            "slice_interval_s must be between 1 and 3600 seconds",
            field="algo_params.slice_interval_s",
        )
    if not 0 <= jitter_pct <= 0.5:
        raise InvalidOrder(
            "jitter_pct must be between 0 and 0.5 of a slice interval",
            field="algo_params.jitter_pct",
        )
