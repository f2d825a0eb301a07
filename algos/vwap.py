"""VWAP: follow where volume trades, by an intraday profile blended with the live tape.

Schedule. Slices fire on the TWAP grid (``start + k * interval`` moved by a seeded jitter).
When ``fired`` slices have fired, the target is ``quantity * s(t_fired)`` with
``t_fired = start + fired * interval`` (nominal, capped at the end): each slice covers the volume
expected up to the next one, as a TWAP slice covers its interval. The last interval targets the
whole quantity. With no profile configured, ``p`` below is the elapsed fraction (TWAP-like).

Blended share. ``p(t)`` is the profile's expected share of the window's volume by ``t``,
``V`` the market volume observed since the start (``MarketView.volume_since_start``) and ``V0``
the desk's forecast of the window's volume (``expected_volume``, base units). The expected total
volume of the window blends the live extrapolation ``V / p(now)`` with the forecast, weighting the
live evidence by how much of the window's volume should have traded already::

    V_hat = p(now) * (V / p(now)) + (1 - p(now)) * V0  =  V + (1 - p(now)) * V0
    k     = (V / p(now)) / V_hat            # live volume ratio; 1 when the day trades as forecast
    s(t)  = clamp(p(t) * k,  p(t) - max_deviation,  p(t) + max_deviation,  0,  1)

so at ``t = now`` the share is ``V / V_hat`` (observed over expected total). A busy tape pulls the
target ahead of the profile, a quiet one holds it back, both by at most ``max_deviation``, and by
the end of the window the live volume dominates. Without ``V0`` the tape alone carries no
information about the share (``V / (V / p) = p``), so ``k = 1`` and the target follows the
profile; likewise ``k = 1`` before any volume is expected (``p(now) = 0``).

Slicing and pricing are those of TWAP: ``size_slice`` sizing, the remainder stays with the parent,
the final interval completes, and the shared pricing of :mod:`algos.pricing` (urgency measured in
slices behind, not counting the slice now due).
"""

from __future__ import annotations

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
    elapsed_fraction,
    param_decimal,
    param_float,
    param_int,
    refuse_unknown,
    slices_fired,
)
from algos.pricing import MUST_COMPLETE, STYLE_KEYS, ExecutionStyle, lag_urgency, plan_step
from algos.twap import slice_count
from ems.domain import ZERO
from ems.errors import InvalidOrder

NAME = "vwap"
KEYS = (
    frozenset({"slice_interval_s", "jitter_pct", "seed", "expected_volume", "max_deviation"})
    | STYLE_KEYS
)


@dataclass(frozen=True, slots=True)
class VwapParams:
    """VWAP parameters.

    ``slice_interval_s`` (1..3600, default 30), ``jitter_pct`` (0..0.5, default 0.2), ``seed``
    (default 0): the slice grid, as TWAP. ``expected_volume`` (optional, > 0): forecast market
    volume of the window in base units, which lets live volume move the target.
    ``max_deviation`` (0..1, default 0.2): most the target share may stray from the profile.
    Plus the shared pricing keys.
    """

    slice_interval_s: int = 30
    jitter_pct: float = 0.2
    seed: int = 0
    expected_volume: Decimal | None = None
    max_deviation: float = 0.2
    style: ExecutionStyle = field(default_factory=ExecutionStyle)

    def __post_init__(self) -> None:
        check_slice_grid(self.slice_interval_s, self.jitter_pct)
        if self.expected_volume is not None and self.expected_volume <= 0:
            raise InvalidOrder(
                f"expected_volume must be positive, got {self.expected_volume}",
                field="algo_params.expected_volume",
            )
        if not 0 <= self.max_deviation <= 1:
            raise InvalidOrder(
                f"max_deviation must be between 0 and 1, got {self.max_deviation}",
                field="algo_params.max_deviation",
            )

    @property
    def interval(self) -> timedelta:
        """The slice interval as a duration."""
        return timedelta(seconds=self.slice_interval_s)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> VwapParams:
        """Build from the parent's ``algo_params``; unknown keys are refused."""
        refuse_unknown(raw, KEYS, "VWAP")
        return cls(
            slice_interval_s=param_int(raw, "slice_interval_s", 30),
            jitter_pct=param_float(raw, "jitter_pct", 0.2),
            seed=param_int(raw, "seed", 0),
            expected_volume=param_decimal(raw, "expected_volume", None),
            max_deviation=param_float(raw, "max_deviation", 0.2),
            style=ExecutionStyle.from_mapping(raw),
        )


def profile_share(view: ParentView, market: MarketView, at: datetime) -> float:
    """Expected share of the window's volume by ``at``: the profile, else elapsed time."""
    if at <= view.start_at:
        return 0.0
    if at >= view.end_at:
        return 1.0
    if market.volume_profile is None:
        return float(elapsed_fraction(view.start_at, view.end_at, at))
    return market.volume_profile.cumulative_share(view.start_at, view.end_at, at)


def live_ratio(share_now: float, observed: Decimal, expected_volume: Decimal | None) -> float:
    """``k`` of the module docstring: live extrapolated volume over the blended expectation."""
    if expected_volume is None or share_now <= 0:
        return 1.0
    observed_f, forecast = float(observed), float(expected_volume)
    expected_total = observed_f + (1.0 - share_now) * forecast
    if expected_total <= 0:
        return 1.0
    return (observed_f / share_now) / expected_total


def blended_share(historical: float, ratio: float, max_deviation: float) -> float:
    """The target share: the profile scaled by the live ratio, kept near the profile."""
    share = historical * ratio
    share = min(historical + max_deviation, max(historical - max_deviation, share))
    return min(1.0, max(0.0, share))


def _share_after(
    view: ParentView, market: MarketView, params: VwapParams, fired: int, ratio: float
) -> float:
    nominal = min(view.end_at, view.start_at + params.interval * fired)
    return blended_share(profile_share(view, market, nominal), ratio, params.max_deviation)


def _as_decimal(share: float) -> Decimal:
    return Decimal(f"{share:.12f}")


def _fired(view: ParentView, params: VwapParams, now: datetime) -> int:
    return slices_fired(
        view.start_at, view.end_at, params.interval, params.jitter_pct, params.seed, NAME, now
    )


def target_quantity(
    view: ParentView, market: MarketView, params: VwapParams, now: datetime
) -> Decimal:
    """Cumulative quantity the schedule wants done by ``now`` (a step curve)."""
    if now < view.start_at:
        return ZERO
    if now >= view.end_at - params.interval:
        return view.quantity
    ratio = live_ratio(
        profile_share(view, market, now), market.volume_since_start, params.expected_volume
    )
    share = _share_after(view, market, params, _fired(view, params, now), ratio)
    return min(view.quantity, view.quantity * _as_decimal(share))


def target(view: ParentView, market: MarketView, params: VwapParams, now: datetime) -> Decimal:
    """The registry's view of the VWAP target curve."""
    return target_quantity(view, market, params, now)


def plan(view: ParentView, market: MarketView, params: VwapParams, now: datetime) -> Plan:
    """Decide this step's cancels and new slice for a VWAP parent."""
    if now < view.start_at:
        return Plan()
    goal = target_quantity(view, market, params, now)
    average_slice = view.quantity / slice_count(view.start_at, view.end_at, params.interval)
    if now >= view.end_at - params.interval:
        urgency, reason, cross_reason = MUST_COMPLETE, "final interval", "final interval"
    else:
        ratio = live_ratio(
            profile_share(view, market, now), market.volume_since_start, params.expected_volume
        )
        fired = _fired(view, params, now)
        before = view.quantity * _as_decimal(_share_after(view, market, params, fired - 1, ratio))
        due_now = max(ZERO, goal - before)
        urgency = lag_urgency(goal, view.filled, due_now, max(due_now, average_slice))
        reason, cross_reason = "volume profile", "catch-up"
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
