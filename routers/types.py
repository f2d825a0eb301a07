"""Inputs and outputs of the smart order router and the impact-cost model (pure values).

The manager gathers one ``VenueState`` per venue (book, instrument, what the balance allows, the
venue's health, its learned impact fit and passive fill probability), asks ``routers.sor.route``
to split a slice, stores the returned ``RouteDecision`` with its inputs, and sends one child per
``Allocation``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ems.domain import Instrument, OrderBook, Side


class HealthReason(enum.StrEnum):
    OK = "ok"
    STALE_BOOK = "stale_book"
    ERROR_RATE = "error_rate"
    CIRCUIT_OPEN = "circuit_open"
    KILL_SWITCH = "kill_switch"
    NO_BOOK = "no_book"


@dataclass(frozen=True, slots=True)
class VenueHealth:
    """Whether a venue may receive new orders now, and why not."""

    venue: str
    tradable: bool
    reason: HealthReason = HealthReason.OK
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ImpactFit:
    """A fitted impact curve ``cost_bps = a * x ** b`` for one venue and symbol.

    ``x`` is the child size relative to the displayed depth on the side it takes (see
    ``routers.impact.relative_size``). ``a_low..a_high`` and ``b_low..b_high`` are confidence
    bounds; ``n`` the number of points behind the fit (0: the prior alone).
    """

    venue: str
    symbol: str
    a: float
    b: float
    a_low: float
    a_high: float
    b_low: float
    b_high: float
    n: int
    fitted_at: datetime

    def predict_bps(self, x: float) -> float:
        """Expected impact cost in bps for relative size ``x`` (0 for x <= 0)."""
        return self.a * x**self.b if x > 0 else 0.0


@dataclass(frozen=True, slots=True)
class VenueState:
    """Everything the router knows about one venue for one slice."""

    venue: str
    book: OrderBook
    instrument: Instrument
    health: VenueHealth
    available_qty: Decimal  # most this venue can take on our side given balances (base units)
    impact: ImpactFit | None = None
    fill_probability: float = 0.5  # learned share of passive quantity that fills


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """A slice to split: ``aggressive`` takes liquidity (priced up to ``price``), otherwise it
    rests passively at each venue's own touch, never beyond ``price``."""

    side: Side
    qty: Decimal
    price: Decimal
    aggressive: bool
    max_share: Decimal = Decimal(1)  # dispersion: most of the slice one venue may get (0..1]


@dataclass(frozen=True, slots=True)
class VenueQuote:
    """The router's view of one venue for this slice (stored for review)."""

    venue: str
    best_bid: Decimal | None
    best_ask: Decimal | None
    tradable: bool
    reason: str
    expected_cost_bps: float | None  # all-in (fees + walk + impact) to do the whole slice here
    capacity: Decimal  # most quantity this venue could take under the constraints


@dataclass(frozen=True, slots=True)
class Allocation:
    """One child: this quantity at this limit price on this venue."""

    venue: str
    qty: Decimal
    price: Decimal
    expected_cost_bps: float  # all-in, bps of the decision mid
    fee_bps: float
    impact_bps: float


@dataclass(frozen=True, slots=True)
class RouteDecision:
    allocations: tuple[Allocation, ...]
    quotes: tuple[VenueQuote, ...]
    expected_cost_bps: float | None  # quantity-weighted over allocations
    mid: Decimal | None  # consolidated decision mid
    unrouted: Decimal = Decimal(0)  # what no venue could take under the constraints
    notes: tuple[str, ...] = field(default_factory=tuple)
