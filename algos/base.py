"""What every execution algorithm sees and returns.

Algorithms are pure: given a view of the parent, a market snapshot and ``now`` they return slice
intents. They never read the clock, the network or the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from ems.domain import ZERO, Instrument, OrderBook, Rounding, Side, TimeInForce


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
    """The parent's schedule state: what is asked, filled and working right now."""

    side: Side
    quantity: Decimal
    filled: Decimal
    working: Decimal
    start_at: datetime
    end_at: datetime
    limit_price: Decimal | None
    children: tuple[WorkingChild, ...] = ()

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
