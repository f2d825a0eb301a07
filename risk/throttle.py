"""Per-venue order-rate throttle over a sliding time window (pure: ``now`` is always passed in).

An order sent at ``t`` counts against the window while ``now - t < order_window``; at exactly
``t + order_window`` it has slid out. ``allows`` answers whether one more order may go now,
``record`` returns the window with an order sent at ``now`` added.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from ems.domain import ensure_utc
from risk.limits import RiskLimits


@dataclass(frozen=True, slots=True)
class OrderRateWindow:
    """Send times (aware UTC, oldest first) of the recent orders to one venue."""

    venue: str
    times: tuple[datetime, ...] = ()

    def __post_init__(self) -> None:
        if not self.venue:
            raise ValueError("an order-rate window needs a venue name")
        times = tuple(ensure_utc(t) for t in self.times)
        if any(later < earlier for earlier, later in pairwise(times)):
            raise ValueError(f"order times for {self.venue} must be in time order")
        object.__setattr__(self, "times", times)


def recent_orders(window: OrderRateWindow, now: datetime, limits: RiskLimits) -> int:
    """Number of orders in ``window`` that still count against the limit at ``now``."""
    start = ensure_utc(now) - limits.order_window
    return sum(1 for t in window.times if t > start)


def allows(window: OrderRateWindow, now: datetime, limits: RiskLimits) -> bool:
    """True when one more order to the venue at ``now`` stays within the rate limit."""
    return recent_orders(window, now, limits) < limits.max_orders_per_window


def record(window: OrderRateWindow, now: datetime, limits: RiskLimits) -> OrderRateWindow:
    """Return ``window`` with an order sent at ``now`` added and times outside the window dropped.

    ``now`` must not be earlier than the last recorded order: the throttle assumes one monotonic
    clock per venue.
    """
    now = ensure_utc(now)
    if window.times and now < window.times[-1]:
        raise ValueError(
            f"order at {now.isoformat()} is earlier than the last recorded order to "
            f"{window.venue} at {window.times[-1].isoformat()}"
        )
    start = now - limits.order_window
    kept = tuple(t for t in window.times if t > start)
    return OrderRateWindow(venue=window.venue, times=(*kept, now))
