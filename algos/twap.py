"""TWAP: spread a parent evenly over its window, in jittered slices, catching up when behind.

The target curve steps up by ``quantity / n_slices`` at each slice time; slice times are
``start + k * interval`` moved by a seeded jitter, so a restarted manager computes the same
schedule. Each step sends ``target(now) - (filled + working)``, rounded down to the lot.

Pricing: a slice joins the best price on its own side (passive). When fills lag the curve by more
than one slice, or the last interval has begun, it crosses the spread with an IOC priced to
take the deficit from the visible book. Either way it never goes past the parent's limit price.
Resting children older than one interval are cancelled so their quantity is re-planned.
"""

from __future__ import annotations

import math
import random
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
    passive_price,
    size_slice,
    sweep_price,
)
from ems.domain import ZERO, Instrument, OrderBook, Rounding, Side, TimeInForce
from ems.errors import InvalidOrder

NAME = "twap"


@dataclass(frozen=True, slots=True)
class TwapParams:
    slice_interval_s: int = 30
    jitter_pct: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.slice_interval_s <= 3600:
            raise InvalidOrder(
                "slice_interval_s must be between 1 and 3600 seconds",
                field="algo_params.slice_interval_s",
            )
        if not 0 <= self.jitter_pct <= 0.5:
            raise InvalidOrder(
                "jitter_pct must be between 0 and 0.5 of a slice interval",
                field="algo_params.jitter_pct",
            )

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.slice_interval_s)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TwapParams:
        """Build from the parent's ``algo_params``; unknown keys are refused."""
        unknown = set(raw) - {"slice_interval_s", "jitter_pct", "seed"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidOrder(f"unknown TWAP parameter {name!r}", field=f"algo_params.{name}")
        try:
            return cls(
                slice_interval_s=int(raw.get("slice_interval_s", 30)),
                jitter_pct=float(raw.get("jitter_pct", 0.2)),
                seed=int(raw.get("seed", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidOrder(
                f"TWAP parameters must be numbers: {exc}", field="algo_params"
            ) from exc


def slice_count(start: datetime, end: datetime, interval: timedelta) -> int:
    return max(1, math.ceil((end - start) / interval))


def slice_time(start: datetime, k: int, params: TwapParams) -> datetime:
    """When slice ``k`` (0-based) fires: its nominal time plus a seeded jitter.

    Slice 0 fires at the start; jitter never moves a slice before the previous nominal time.
    """
    if k == 0:
        return start
    jitter = random.Random(f"twap:{params.seed}:{k}").uniform(-params.jitter_pct, params.jitter_pct)
    return start + params.interval * (k + jitter)


def target_quantity(view: ParentView, params: TwapParams, now: datetime) -> Decimal:
    """Cumulative quantity the schedule wants done by ``now`` (a step curve)."""
    if now < view.start_at:
        return ZERO
    n = slice_count(view.start_at, view.end_at, params.interval)
    last_interval_start = view.end_at - params.interval
    if now >= last_interval_start:
        return view.quantity
    # Jitter moves a slice by at most half an interval, so every slice more than one interval
    # before ``now`` has fired: only the last few need their jittered time computed.
    fired = max(0, math.floor((now - view.start_at) / params.interval) - 1)
    while fired < n and slice_time(view.start_at, fired, params) <= now:
        fired += 1
    return view.quantity * fired / n


def target(view: ParentView, market: MarketView, params: TwapParams, now: datetime) -> Decimal:
    """The registry's view of the TWAP target curve (the market does not move it)."""
    return target_quantity(view, params, now)


def plan(view: ParentView, market: MarketView, params: TwapParams, now: datetime) -> Plan:
    """Decide this step's cancels and new slice for a TWAP parent."""
    book, instrument = market.book, market.instrument
    stale = tuple(
        child.client_order_id
        for child in view.children
        if not child.cancel_pending
        and child.time_in_force is not TimeInForce.IOC
        and now - child.created_at >= params.interval
    )
    target = target_quantity(view, params, now)
    deficit = target - view.filled - view.working
    if deficit <= 0 or stale:
        return Plan(cancel=stale)
    behind = target - view.filled
    one_slice = view.quantity / slice_count(view.start_at, view.end_at, params.interval)
    in_last_interval = now >= view.end_at - params.interval
    aggressive = in_last_interval or behind > one_slice
    price = _price(view.side, deficit, book, instrument, aggressive)
    if price is None:
        return Plan(hold_reason="no price on the book")
    price = cap_at_limit(view.side, price, view.limit_price)
    qty = size_slice(deficit, view.unallocated, instrument, price)
    if qty <= 0:
        return Plan(hold_reason="slice below the venue minimum; waiting for it to grow")
    reason = "catch-up" if aggressive and not in_last_interval else "schedule"
    if in_last_interval:
        reason = "final interval"
    tif = TimeInForce.IOC if aggressive else TimeInForce.GTC
    return Plan(slices=(SliceIntent(qty, price, tif, aggressive, reason),))


def _price(
    side: Side, qty: Decimal, book: OrderBook, instrument: Instrument, aggressive: bool
) -> Decimal | None:
    if not aggressive:
        return passive_price(book, side, instrument)
    sweep = sweep_price(book, side, qty)
    if sweep is None:
        return None
    return instrument.round_price(sweep, Rounding.UP if side is Side.BUY else Rounding.DOWN)
