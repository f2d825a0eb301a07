"""Iceberg: show only a small clip of the parent at a time.

**Native** (``native="auto"`` and the venue supports it, ``MarketView.native_iceberg``): one
resting child for the whole unallocated quantity with ``display_qty`` set to the clip size; the
venue hides the rest and refreshes the display itself.

**Synthetic** (otherwise): at most ONE child is live at any moment, of at most the clip size. A
new clip is sent only when no child is live (filled, cancelled or expired, as the manager reports
it) and the refresh delay has passed since the parent's last fill (``ParentView.last_fill_at``;
when the caller does not supply it the delay cannot be measured and the next clip goes at once).

Seeded randomness, stateless: the clip size and the refresh delay of the next clip are drawn from
``random.Random`` seeded by ``seed`` and the quantity filled so far, so they change after every
fill, are the same after a restart, and a clip that is re-priced without a fill keeps its size.

* clip size  = ``display_qty × (1 + u)``, ``u`` uniform in ``±display_jitter_pct``, rounded down
  to the lot and raised to the venue minimum;
* refresh    = ``refresh_delay_s × (1 + v)``, ``v`` uniform in ``±refresh_jitter_pct``.

Pace and pricing: the iceberg works its whole quantity clip by clip; its urgency is how far fills
lag a linear pace over the window, in clips (``(quantity × elapsed − filled) / clip``), fed to the
shared pricing of :mod:`algos.pricing`: join, then improve, then cross with an IOC of at most one
clip (a resting native child is cancelled first). An i-would acceleration also takes one clip.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from algos.base import (
    MarketView,
    ParentView,
    Plan,
    SliceIntent,
    elapsed_fraction,
    param_choice,
    param_decimal,
    param_float,
    param_int,
    refuse_unknown,
    size_slice,
)
from algos.pricing import (
    STYLE_KEYS,
    ExecutionStyle,
    children_to_reprice,
    crossable,
    decide,
)
from ems.domain import Instrument
from ems.errors import InvalidOrder

NAME = "iceberg"
KEYS = (
    frozenset(
        {
            "display_qty",
            "display_jitter_pct",
            "refresh_delay_s",
            "refresh_jitter_pct",
            "seed",
            "native",
        }
    )
    | STYLE_KEYS
)
NATIVE_CHOICES = ("auto", "never")


@dataclass(frozen=True, slots=True)
class IcebergParams:
    """Iceberg parameters.

    ``display_qty`` (required, > 0): the size shown. ``display_jitter_pct`` (0..0.5, default
    0.2): seeded randomisation of each clip. ``refresh_delay_s`` (0..3600, default 1) and
    ``refresh_jitter_pct`` (0..1, default 0.5): pause after a fill before the next clip.
    ``seed`` (default 0). ``native`` ("auto" | "never", default "auto"): use the venue's own
    iceberg when it has one. Plus the shared pricing keys.
    """

    display_qty: Decimal
    display_jitter_pct: float = 0.2
    refresh_delay_s: float = 1.0
    refresh_jitter_pct: float = 0.5
    seed: int = 0
    native: str = "auto"
    style: ExecutionStyle = field(default_factory=ExecutionStyle)

    def __post_init__(self) -> None:
        if self.display_qty <= 0:
            raise InvalidOrder(
                f"display_qty must be positive, got {self.display_qty}",
                field="algo_params.display_qty",
            )
        if not 0 <= self.display_jitter_pct <= 0.5:
            raise InvalidOrder(
                f"display_jitter_pct must be between 0 and 0.5, got {self.display_jitter_pct}",
                field="algo_params.display_jitter_pct",
            )
        if not 0 <= self.refresh_delay_s <= 3600:
            raise InvalidOrder(
                f"refresh_delay_s must be between 0 and 3600 seconds, got {self.refresh_delay_s}",
                field="algo_params.refresh_delay_s",
            )
        if not 0 <= self.refresh_jitter_pct <= 1:
            raise InvalidOrder(
                f"refresh_jitter_pct must be between 0 and 1, got {self.refresh_jitter_pct}",
                field="algo_params.refresh_jitter_pct",
            )
        if self.native not in NATIVE_CHOICES:
            raise InvalidOrder(
                f"native must be 'auto' or 'never', got {self.native!r}",
                field="algo_params.native",
            )

    @property
    def max_display(self) -> Decimal:
        """The largest clip the jitter can draw (before lot rounding)."""
        return self.display_qty * (1 + Decimal(str(self.display_jitter_pct)))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> IcebergParams:
        """Build from the parent's ``algo_params``; unknown keys are refused."""
        refuse_unknown(raw, KEYS, "iceberg")
        display = param_decimal(raw, "display_qty", None)
        if display is None:
            raise InvalidOrder(
                "display_qty is required: the quantity the iceberg shows at a time",
                field="algo_params.display_qty",
            )
        return cls(
            display_qty=display,
            display_jitter_pct=param_float(raw, "display_jitter_pct", 0.2),
            refresh_delay_s=param_float(raw, "refresh_delay_s", 1.0),
            refresh_jitter_pct=param_float(raw, "refresh_jitter_pct", 0.5),
            seed=param_int(raw, "seed", 0),
            native=param_choice(raw, "native", NATIVE_CHOICES, "auto"),
            style=ExecutionStyle.from_mapping(raw),
        )


def _draw(params: IcebergParams, what: str, filled: Decimal, spread: float) -> float:
    return random.Random(f"iceberg:{what}:{params.seed}:{filled.normalize()}").uniform(
        -spread, spread
    )


def clip_size(params: IcebergParams, filled: Decimal, instrument: Instrument) -> Decimal:
    """Seeded display size of the next clip after ``filled`` has traded: lot-rounded and at
    least one lot (:func:`plan` also raises it to the venue minimum)."""
    jitter = Decimal(str(_draw(params, "size", filled, params.display_jitter_pct)))
    clip = instrument.round_qty(params.display_qty * (1 + jitter))
    return max(clip, instrument.lot_size)


def refresh_delay(params: IcebergParams, filled: Decimal) -> timedelta:
    """Seeded pause between the fill that emptied the book and the next clip."""
    jitter = _draw(params, "delay", filled, params.refresh_jitter_pct)
    return timedelta(seconds=max(0.0, params.refresh_delay_s * (1 + jitter)))


def target(view: ParentView, market: MarketView, params: IcebergParams, now: datetime) -> Decimal:
    """The pace the iceberg's urgency is measured against: linear over the window."""
    return view.quantity * elapsed_fraction(view.start_at, view.end_at, now)


def plan(view: ParentView, market: MarketView, params: IcebergParams, now: datetime) -> Plan:
    """Decide this step's cancels and new clip for an iceberg parent."""
    if now < view.start_at:
        return Plan()
    style, instrument = params.style, market.instrument
    reference = market.book.far_touch(view.side) or market.book.touch(view.side)
    minimum = instrument.min_tradable_qty(reference) if reference else instrument.lot_size
    clip = max(clip_size(params, view.filled, instrument), minimum)
    lag = target(view, market, params, now) - view.filled
    urgency = max(0.0, float(lag / clip))
    if view.children:
        escalate = urgency >= 1 and crossable(view, market, style)
        return Plan(cancel=children_to_reprice(view, market, style, now, escalate=escalate))
    native = market.native_iceberg and params.native == "auto"
    if (
        not native
        and view.filled > 0
        and view.last_fill_at is not None
        and now < view.last_fill_at + refresh_delay(params, view.filled)
    ):
        return Plan()
    unallocated = view.unallocated
    cap = clip
    unsplittable = 2 * minimum - instrument.lot_size
    if unallocated <= max(instrument.round_qty(params.max_display), unsplittable):
        cap = unallocated  # the tail fits under the largest display (or can never be split)
    decision = decide(
        view,
        market,
        style,
        wanted=unallocated,
        urgency=urgency,
        reason="iceberg clip",
        cross_reason="behind pace",
        max_child=cap,
        accelerate_max=cap,
    )
    intent = decision.intent
    if intent is None:
        return Plan(hold_reason=decision.hold_reason)
    if native and not intent.aggressive:
        qty = size_slice(unallocated, unallocated, instrument, intent.price)
        if qty <= 0:
            return Plan(hold_reason="slice below the venue minimum; waiting for it to grow")
        display = min(clip, qty)
        intent = SliceIntent(
            qty, intent.price, intent.time_in_force, False, "native iceberg", display_qty=display
        )
    return Plan(slices=(intent,))
