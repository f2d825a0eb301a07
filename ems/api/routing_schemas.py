"""Response bodies of the routing routes: impact-cost curves, routing decisions and pre-trade
cost previews (pydantic v2, frozen and strict like the rest of the API).

Every decimal is returned as an exact string. Costs are in basis points of the decision mid
(positive is a cost for the order's side) or in quote currency; estimates from the cost model
are rounded half-even to :data:`COST_BPS_PLACES` and :data:`COST_PLACES` places for display.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal

from pydantic import BaseModel, ConfigDict, Field

from ems.api.schemas import DecimalStr, UtcDatetime
from ems.domain import Side
from ems.ports import ImpactFitRecord, ImpactPoint, RouteRecord
from ems.preview import PreviewResult, VenuePreview
from ems.routing import fit_from_record

_STRICT = ConfigDict(extra="forbid", frozen=True)

COST_BPS_PLACES = 6
"""Decimal places of a cost in basis points as shown by the API."""
COST_PLACES = 8
"""Decimal places of a cost in quote currency as shown by the API."""

CURVE_GRID: tuple[str, ...] = (
    "0.01",
    "0.02",
    "0.05",
    "0.1",
    "0.2",
    "0.3",
    "0.5",
    "0.75",
    "1",
)
"""Relative sizes (share of the displayed depth) at which a fitted curve is evaluated."""


_WIDE = Context(prec=80)  # quantize never runs out of digits


def _rounded(value: Decimal | None, places: int) -> Decimal | None:
    """``value`` rounded half-even to ``places`` for display; None stays None (and so does a
    non-finite value, which no JSON string could carry honestly)."""
    if value is None or not value.is_finite():
        return None
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=_WIDE)


def _bps(value: float) -> Decimal | None:
    """A model figure in bps as a rounded decimal; None when the model gives no finite value."""
    if not math.isfinite(value):
        return None
    return _rounded(Decimal(repr(value)), COST_BPS_PLACES)


# --- impact curves -------------------------------------------------------------------------------


class ImpactFitPublic(BaseModel):
    """The current fitted impact curve ``cost_bps = a * x ** b`` of a venue and symbol.

    ``x`` is a child's size relative to the displayed depth on the side it takes.
    """

    model_config = _STRICT

    a: DecimalStr = Field(description="Scale: the expected cost in bps when x = 1.")
    b: DecimalStr = Field(description="Exponent: how fast the cost grows with size.")
    a_low: DecimalStr = Field(description="Lower confidence bound of `a`.")
    a_high: DecimalStr = Field(description="Upper confidence bound of `a`.")
    b_low: DecimalStr = Field(description="Lower confidence bound of `b`.")
    b_high: DecimalStr = Field(description="Upper confidence bound of `b`.")
    n: int = Field(description="Points behind the fit; 0 means the prior alone.")
    fitted_at: UtcDatetime

    @classmethod
    def of(cls, fit: ImpactFitRecord) -> ImpactFitPublic:
        """The public view of a stored fit."""
        return cls(
            a=fit.a,
            b=fit.b,
            a_low=fit.a_low,
            a_high=fit.a_high,
            b_low=fit.b_low,
            b_high=fit.b_high,
            n=fit.n,
            fitted_at=fit.fitted_at,
        )


class ImpactPointPublic(BaseModel):
    """One finished child: its size relative to the market and what it cost against what was
    expected when it was routed."""

    model_config = _STRICT

    client_order_id: str
    parent_id: str
    side: Side
    ts: UtcDatetime = Field(description="When the child was routed.")
    qty: DecimalStr = Field(description="The child's quantity (base units).")
    filled_qty: DecimalStr
    aggressive: bool = Field(description="True if it took liquidity, false if it rested.")
    decision_mid: DecimalStr = Field(description="The mid the costs are measured from.")
    x_depth: DecimalStr = Field(description="Size relative to the displayed depth it could take.")
    x_volume: DecimalStr = Field(description="Size relative to the recent market volume.")
    expected_cost_bps: DecimalStr = Field(description="All-in cost expected when routed, in bps.")
    realised_cost_bps: DecimalStr = Field(
        description="Cost realised against the decision mid, fees excluded, in bps."
    )
    fee_bps: DecimalStr = Field(description="Fees paid, in bps of the filled notional.")

    @classmethod
    def of(cls, point: ImpactPoint) -> ImpactPointPublic:
        """The public view of a recorded impact point."""
        return cls(
            client_order_id=point.client_order_id,
            parent_id=point.parent_id,
            side=point.side,
            ts=point.ts,
            qty=point.qty,
            filled_qty=point.filled_qty,
            aggressive=point.aggressive,
            decision_mid=point.decision_mid,
            x_depth=point.x_depth,
            x_volume=point.x_volume,
            expected_cost_bps=point.expected_cost_bps,
            realised_cost_bps=point.realised_cost_bps,
            fee_bps=point.fee_bps,
        )


class CurvePoint(BaseModel):
    """The fitted curve at one relative size, with the band its confidence bounds allow."""

    model_config = _STRICT

    x: DecimalStr = Field(description="Size relative to the displayed depth.")
    cost_bps: DecimalStr = Field(description="Expected impact cost at x, in bps.")
    cost_bps_low: DecimalStr = Field(description="Lowest cost the bounds of a and b allow.")
    cost_bps_high: DecimalStr = Field(description="Highest cost the bounds of a and b allow.")


def curve_points(fit: ImpactFitRecord, grid: tuple[str, ...] = CURVE_GRID) -> list[CurvePoint]:
    """``fit`` evaluated on ``grid`` for charting, with its confidence band.

    The band is the least and greatest value of ``a * x ** b`` over the corners of the bounds:
    for a fixed ``x`` the curve is monotone in ``a`` and in ``b``, so the corners hold the
    extremes. Sizes where the model gives no finite cost are left out.
    """
    model = fit_from_record(fit)
    points: list[CurvePoint] = []
    for text in grid:
        x = float(text)
        try:
            central = model.predict_bps(x)
            corners = [
                a * x**b for a in (model.a_low, model.a_high) for b in (model.b_low, model.b_high)
            ]
        except OverflowError:
            continue
        cost, low, high = _bps(central), _bps(min(corners)), _bps(max(corners))
        if cost is None or low is None or high is None:
            continue
        points.append(
            CurvePoint(x=Decimal(text), cost_bps=cost, cost_bps_low=low, cost_bps_high=high)
        )
    return points


class ImpactCurve(BaseModel):
    """What is known of one venue's impact cost on one symbol."""

    model_config = _STRICT

    venue: str
    symbol: str
    fit: ImpactFitPublic | None = Field(
        description="The current fit; null until the first fit of this venue and symbol."
    )
    points: list[ImpactPointPublic] = Field(description="Recent impact points, newest first.")
    curve: list[CurvePoint] = Field(
        description="The current fit evaluated at a few relative sizes (0.01..1) for charting; "
        "empty without a fit."
    )


class ImpactCurves(BaseModel):
    """Impact-cost curves per venue and symbol; empty lists when nothing is recorded yet."""

    model_config = _STRICT

    curves: list[ImpactCurve]


# --- routing decisions ---------------------------------------------------------------------------


class RoutePublic(BaseModel):
    """One routing decision: how a slice was split across venues, and what each venue offered."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "parent_id": "P01HZX3Q8V2",
                    "ts": "2026-05-01T12:00:30Z",
                    "side": "buy",
                    "qty": "0.05",
                    "price": "60012.5",
                    "aggressive": True,
                    "mid": "60000.05",
                    "expected_cost_bps": "3.25",
                    "quotes": [
                        {
                            "venue": "binance",
                            "best_bid": "60000",
                            "best_ask": "60000.1",
                            "tradable": "true",
                            "reason": "ok",
                            "expected_cost_bps": "3.25",
                            "capacity": "1.2",
                        }
                    ],
                    "allocations": [
                        {
                            "venue": "binance",
                            "client_order_id": "P01HZX3Q8V2-7",
                            "qty": "0.05",
                            "price": "60012.5",
                            "expected_cost_bps": "3.25",
                        }
                    ],
                    "notes": [],
                }
            ]
        },
    )

    parent_id: str
    ts: UtcDatetime
    side: Side
    qty: DecimalStr = Field(description="The slice quantity that was routed.")
    price: DecimalStr = Field(description="The slice's limit: worst price any child may take.")
    aggressive: bool = Field(description="True if the slice took liquidity, false if it rested.")
    mid: DecimalStr | None = Field(description="Consolidated mid at the decision; null if none.")
    expected_cost_bps: DecimalStr | None = Field(
        description="Quantity-weighted expected all-in cost of the allocations, in bps."
    )
    quotes: list[dict[str, str]] = Field(
        description="Per venue: best bid/ask, tradable and why not, expected cost of the whole "
        "slice there, capacity."
    )
    allocations: list[dict[str, str]] = Field(
        description="The children sent: venue, client order id, qty, price, expected cost."
    )
    notes: list[str]

    @classmethod
    def of(cls, record: RouteRecord) -> RoutePublic:
        """The public view of a stored routing decision."""
        return cls(
            parent_id=record.parent_id,
            ts=record.ts,
            side=record.side,
            qty=record.qty,
            price=record.price,
            aggressive=record.aggressive,
            mid=record.mid,
            expected_cost_bps=record.expected_cost_bps,
            quotes=[dict(q) for q in record.quotes],
            allocations=[dict(a) for a in record.allocations],
            notes=list(record.notes),
        )


# --- pre-trade preview ---------------------------------------------------------------------------


class VenuePreviewPublic(BaseModel):
    """One venue in a preview: the cost of the whole order there alone, and its share of the
    router's split."""

    model_config = _STRICT

    venue: str
    tradable: bool
    reason: str = Field(description="Why the venue cannot take orders now; `ok` when it can.")
    best_bid: DecimalStr | None
    best_ask: DecimalStr | None
    expected_cost_bps: DecimalStr | None = Field(
        description="Expected all-in cost of the whole order on this venue alone, in bps of the "
        "mid; null when the venue cannot take it."
    )
    expected_cost: DecimalStr | None = Field(
        description="The same in quote currency; null when the venue cannot take it."
    )
    allocated_qty: DecimalStr = Field(description="This venue's part of the router's split.")

    @classmethod
    def of(cls, venue: VenuePreview) -> VenuePreviewPublic:
        """The public view of one venue's preview."""
        return cls(
            venue=venue.venue,
            tradable=venue.tradable,
            reason=venue.reason,
            best_bid=venue.best_bid,
            best_ask=venue.best_ask,
            expected_cost_bps=_rounded(venue.expected_cost_bps, COST_BPS_PLACES),
            expected_cost=_rounded(venue.expected_cost, COST_PLACES),
            allocated_qty=venue.allocated_qty,
        )


class PreviewPublic(BaseModel):
    """The expected cost of a proposed parent order, in total and per venue. Nothing is stored
    and nothing is sent."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": "0.5",
                    "mid": "60000.05",
                    "total_expected_cost_bps": "4.1",
                    "total_expected_cost": "12.30002",
                    "venues": [
                        {
                            "venue": "binance",
                            "tradable": True,
                            "reason": "ok",
                            "best_bid": "60000",
                            "best_ask": "60000.1",
                            "expected_cost_bps": "5.2",
                            "expected_cost": "15.6",
                            "allocated_qty": "0.3",
                        },
                        {
                            "venue": "okx",
                            "tradable": True,
                            "reason": "ok",
                            "best_bid": "59999.9",
                            "best_ask": "60000.2",
                            "expected_cost_bps": "5.9",
                            "expected_cost": "17.7",
                            "allocated_qty": "0.2",
                        },
                    ],
                }
            ]
        },
    )

    symbol: str
    side: Side
    quantity: DecimalStr
    mid: DecimalStr | None = Field(description="The consolidated mid costs are measured from.")
    total_expected_cost_bps: DecimalStr | None = Field(
        description="Expected all-in cost of the router's split across venues, in bps of the "
        "mid; null when no venue can take any of it."
    )
    total_expected_cost: DecimalStr | None = Field(
        description="The same in quote currency; null when no venue can take any of it."
    )
    venues: list[VenuePreviewPublic]

    @classmethod
    def of(cls, result: PreviewResult) -> PreviewPublic:
        """The public view of the manager's preview."""
        return cls(
            symbol=result.symbol,
            side=result.side,
            quantity=result.quantity,
            mid=result.mid,
            total_expected_cost_bps=_rounded(result.total_expected_cost_bps, COST_BPS_PLACES),
            total_expected_cost=_rounded(result.total_expected_cost, COST_PLACES),
            venues=[VenuePreviewPublic.of(v) for v in result.venues],
        )
