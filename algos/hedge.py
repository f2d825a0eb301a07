"""Hedge: complete the whole quantity now, crossing within the void guard.

The risk module's hedge legs (a perpetual short against spot, protective puts) are not worked
over a schedule: a hedge that lags leaves spot uncovered, so every step it wants all that is not
yet filled or working, with the urgency "complete now" of :mod:`algos.pricing`. The void guard
still holds (never through a gap or deeper than the style allows, never past the limit); when it
blocks crossing, the child rests at the touch, improving it, and is re-priced as the book moves.
Options books are wide: their hedge parents carry wider ``max_gap_bps`` / ``max_depth_bps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from algos.base import MarketView, ParentView, Plan, refuse_unknown
from algos.pricing import MUST_COMPLETE, STYLE_KEYS, ExecutionStyle, plan_step

NAME = "hedge"


@dataclass(frozen=True, slots=True)
class HedgeParams:
    """Only the shared pricing keys (``max_gap_bps``, ``max_depth_bps``, …)."""

    style: ExecutionStyle = field(default_factory=ExecutionStyle)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> HedgeParams:
        """Build from the parent's ``algo_params``; unknown keys are refused."""
        refuse_unknown(raw, STYLE_KEYS, "hedge")
        return cls(style=ExecutionStyle.from_mapping(raw))


def target(view: ParentView, market: MarketView, params: HedgeParams, now: datetime) -> Decimal:
    """Everything, from the start."""
    return view.quantity if now >= view.start_at else Decimal(0)


def plan(view: ParentView, market: MarketView, params: HedgeParams, now: datetime) -> Plan:
    """Cross for all that is not filled or working (passive when the void guard blocks)."""
    if now < view.start_at:
        return Plan()
    return plan_step(
        view,
        market,
        params.style,
        now,
        wanted=view.unallocated,
        urgency=MUST_COMPLETE,
        reason="hedge",
        cross_reason="hedge",
    )
