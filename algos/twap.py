"""TWAP: spread a parent evenly over its window, in jittered slices, catching up when behind.

The target curve steps up by ``quantity / n_slices`` at each slice time; slice times are
``start + k * interval`` moved by a seeded jitter, so a restarted manager computes the same
schedule. Each step sends ``target(now) - (filled + working)``, rounded down to the lot.

Pricing is the shared one of :mod:`algos.pricing`: the slice now due joins the best price on its
own side; fills lagging by half a slice more improve it by a tick; a whole slice more, or the last
interval, cross the spread with an IOC sized to what the void guard allows. The parent's limit
price always caps. Resting children are re-planned when the touch moves away from them, when the
schedule wants to cross, or once they are one interval old.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from algos.base import (
    MarketView,
    ParentView,
    Plan,
    check_slice_grid,
    jittered_slice_time,
    param_float,
    param_int,
    refuse_unknown,
    slices_fired,
)
from algos.pricing import MUST_COMPLETE, STYLE_KEYS, ExecutionStyle, lag_urgency, plan_step
from ems.domain import ZERO

NAME = "twap"
KEYS = frozenset({"slice_interval_s", "jitter_pct", "seed"}) | STYLE_KEYS


@dataclass(frozen=True, slots=True)
class TwapParams:
    """TWAP parameters: ``slice_interval_s`` (1..3600, default 30), ``jitter_pct`` (0..0.5 of
    an interval, default 0.2), ``seed`` (default 0) and the shared pricing keys."""

    slice_interval_s: int = 30
    jitter_pct: float = 0.2
    seed: int = 0
    style: ExecutionStyle = field(default_factory=ExecutionStyle)

    def __post_init__(self) -> None:
        check_slice_grid(self.slice_interval_s, self.jitter_pct)

    @property
    def interval(self) -> timedelta:
        """The slice interval as a duration."""
        return timedelta(seconds=self.slice_interval_s)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TwapParams:
        """Build from the parent's ``algo_params``; unknown keys are refused."""
        refuse_unknown(raw, KEYS, "TWAP")
        return cls(
            slice_interval_s=param_int(raw, "slice_interval_s", 30),
            jitter_pct=param_float(raw, "jitter_pct", 0.2),
            seed=param_int(raw, "seed", 0),
            style=ExecutionStyle.from_mapping(raw),
        )


def slice_count(start: datetime, end: datetime, interval: timedelta) -> int:
    """Number of slices in the window: one per started interval, at least one."""
    return max(1, math.ceil((end - start) / interval))


def slice_time(start: datetime, k: int, params: TwapParams) -> datetime:
    """When slice ``k`` (0-based) fires: its nominal time plus a seeded jitter.

    Slice 0 fires at the start; jitter never moves a slice before the previous nominal time.
    """
    return jittered_slice_time(start, k, params.interval, params.jitter_pct, params.seed, NAME)


def target_quantity(view: ParentView, params: TwapParams, now: datetime) -> Decimal:
    """Cumulative quantity the schedule wants done by ``now`` (a step curve)."""
    if now < view.start_at:
        return ZERO
    n = slice_count(view.start_at, view.end_at, params.interval)
    if now >= view.end_at - params.interval:
        return view.quantity
    fired = slices_fired(
        view.start_at, view.end_at, params.interval, params.jitter_pct, params.seed, NAME, now
    )
    return view.quantity * fired / n


def target(view: ParentView, market: MarketView, params: TwapParams, now: datetime) -> Decimal:
    """The registry's view of the TWAP target curve (the market does not move it)."""
    return target_quantity(view, params, now)


def plan(view: ParentView, market: MarketView, params: TwapParams, now: datetime) -> Plan:
    """Decide this step's cancels and new slice for a TWAP parent."""
    if now < view.start_at:
        return Plan()
    goal = target_quantity(view, params, now)
    one_slice = view.quantity / slice_count(view.start_at, view.end_at, params.interval)
    in_last_interval = now >= view.end_at - params.interval
    if in_last_interval:
        urgency, reason, cross_reason = MUST_COMPLETE, "final interval", "final interval"
    else:
        urgency = lag_urgency(goal, view.filled, one_slice, one_slice)
        reason, cross_reason = "schedule", "catch-up"
    return plan_step(
        view,
        market,
        params.style,
        now,
        wanted=goal - view.filled - view.working,
        urgency=urgency,
        reason=reason,
        cross_reason=cross_reason,
        max_rest=max(params.interval, params.style.min_rest),
    )
