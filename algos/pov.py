"""POV: participate in a fixed share of the market volume traded since the start.

With ``V`` the market volume observed since the parent's start
(``MarketView.volume_since_start``) and ``q`` the parent quantity:

* target  ``T = min(q, rate * V)``: what the schedule wants filled;
* floor   ``F = min(q, min_rate * V)``: fills below it are caught up by crossing the spread;
* ceiling ``C = min(q, max_rate * V)``: filled + working never exceeds it, so the algorithm
  never runs ahead of the market (no child, not even an i-would acceleration, goes past it).

Each step sends ``T - filled - working`` (at most ``max_child_qty`` and the room left under the
ceiling; nothing while that is below ``min_child_qty``, unless it is all that is left), priced by
:mod:`algos.pricing` with urgency ``(T - filled) / (T - F)``: 0 on target, 1 at the floor (join
below 0.5, improve below 1, cross from 1; with ``min_rate = rate`` any shortfall crosses).
Children below the venue minimum wait for volume to grow. The parent
completes once ``rate * V`` reaches its quantity; at its end time the manager expires it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from algos.base import MarketView, ParentView, Plan, param_decimal, refuse_unknown
from algos.pricing import STYLE_KEYS, ExecutionStyle, plan_step
from ems.domain import ZERO
from ems.errors import InvalidOrder

NAME = "pov"
KEYS = frozenset({"rate", "min_rate", "max_rate", "max_child_qty", "min_child_qty"}) | STYLE_KEYS
MAX_RATE = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class PovParams:
    """POV parameters.

    ``rate`` (0 < rate ≤ 0.5, default 0.1): target share of market volume. ``min_rate``
    (0 ≤ min_rate ≤ rate, default rate / 2) and ``max_rate`` (rate ≤ max_rate ≤ 0.5, default
    min(0.5, 1.5 × rate)): the participation band. ``max_child_qty`` (optional, > 0): the most
    one child may carry. ``min_child_qty`` (optional, > 0, at most ``max_child_qty``): a new
    child waits until the shortfall reaches it (unless it is the parent's last piece), so a
    fast tape does not spray venue-minimum orders; default: the venue minimum. Plus the shared
    pricing keys.
    """

    rate: Decimal = Decimal("0.1")
    min_rate: Decimal | None = None
    max_rate: Decimal | None = None
    max_child_qty: Decimal | None = None
    min_child_qty: Decimal | None = None
    style: ExecutionStyle = field(default_factory=ExecutionStyle)

    def __post_init__(self) -> None:
        if not 0 < self.rate <= MAX_RATE:
            raise InvalidOrder(
                f"rate must be above 0 and at most {MAX_RATE}, got {self.rate}",
                field="algo_params.rate",
            )
        if self.min_rate is None:
            object.__setattr__(self, "min_rate", self.rate / 2)
        if self.max_rate is None:
            object.__setattr__(self, "max_rate", min(MAX_RATE, self.rate * Decimal("1.5")))
        assert self.min_rate is not None and self.max_rate is not None
        if not 0 <= self.min_rate <= self.rate:
            raise InvalidOrder(
                f"min_rate must be between 0 and rate ({self.rate}), got {self.min_rate}",
                field="algo_params.min_rate",
            )
        if not self.rate <= self.max_rate <= MAX_RATE:
            raise InvalidOrder(
                f"max_rate must be between rate ({self.rate}) and {MAX_RATE}, got {self.max_rate}",
                field="algo_params.max_rate",
            )
        if self.max_child_qty is not None and self.max_child_qty <= 0:
            raise InvalidOrder(
                f"max_child_qty must be positive, got {self.max_child_qty}",
                field="algo_params.max_child_qty",
            )
        if self.min_child_qty is not None and (
            self.min_child_qty <= 0
            or (self.max_child_qty is not None and self.min_child_qty > self.max_child_qty)
        ):
            raise InvalidOrder(
                "min_child_qty must be positive and at most max_child_qty, "
                f"got {self.min_child_qty}",
                field="algo_params.min_child_qty",
            )

    @property
    def floor_rate(self) -> Decimal:
        """``min_rate`` once defaults are applied."""
        assert self.min_rate is not None
        return self.min_rate

    @property
    def ceiling_rate(self) -> Decimal:
        """``max_rate`` once defaults are applied."""
        assert self.max_rate is not None
        return self.max_rate

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> PovParams:
        """Build from the parent's ``algo_params``; unknown keys are refused."""
        refuse_unknown(raw, KEYS, "POV")
        rate = param_decimal(raw, "rate", Decimal("0.1"))
        assert rate is not None
        return cls(
            rate=rate,
            min_rate=param_decimal(raw, "min_rate", None),
            max_rate=param_decimal(raw, "max_rate", None),
            max_child_qty=param_decimal(raw, "max_child_qty", None),
            min_child_qty=param_decimal(raw, "min_child_qty", None),
            style=ExecutionStyle.from_mapping(raw),
        )


@dataclass(frozen=True, slots=True)
class Band:
    """The participation band at one moment, in base units of the parent."""

    floor: Decimal
    target: Decimal
    ceiling: Decimal


def band(view: ParentView, market: MarketView, params: PovParams) -> Band:
    """Floor, target and ceiling of cumulative fills for the volume observed so far."""
    volume = max(ZERO, market.volume_since_start)
    return Band(
        floor=min(view.quantity, params.floor_rate * volume),
        target=min(view.quantity, params.rate * volume),
        ceiling=min(view.quantity, params.ceiling_rate * volume),
    )


def target(view: ParentView, market: MarketView, params: PovParams, now: datetime) -> Decimal:
    """Cumulative quantity the schedule wants done: ``rate`` × observed volume."""
    if now < view.start_at:
        return ZERO
    return band(view, market, params).target


def urgency(filled: Decimal, limits: Band) -> float:
    """0 on target, 1 at the floor, more below it (see the module docstring)."""
    shortfall = limits.target - filled
    if shortfall <= 0:
        return 0.0
    width = limits.target - limits.floor
    if width <= 0:
        return math.inf
    return float(shortfall / width)


def plan(view: ParentView, market: MarketView, params: PovParams, now: datetime) -> Plan:
    """Decide this step's cancels and new child for a POV parent."""
    if now < view.start_at or now >= view.end_at:
        return Plan()
    limits = band(view, market, params)
    room = max(ZERO, limits.ceiling - view.filled - view.working)
    max_child = room if params.max_child_qty is None else min(room, params.max_child_qty)
    wanted = min(limits.target - view.filled - view.working, room)
    if params.min_child_qty is not None and wanted < min(params.min_child_qty, view.unallocated):
        wanted = ZERO  # batch: wait for the shortfall to reach the minimum child
    return plan_step(
        view,
        market,
        params.style,
        now,
        wanted=wanted,
        urgency=urgency(view.filled, limits),
        reason="participation",
        cross_reason="below min_rate",
        max_child=max_child,
        accelerate_max=max_child,
    )
