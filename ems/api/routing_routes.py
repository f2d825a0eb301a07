"""Routes about routing (mounted under ``/v1``): impact-cost curves, a parent's routing
decisions and the pre-trade cost preview.

Reads go straight to the store; the preview goes to the order manager, which asks the router
without storing or sending anything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from ems.api.deps import ManagerDep, StoreDep, Trader, Viewer
from ems.api.routes import _AUTH_ERRORS, _NOT_FOUND, ParentId, _parent_or_404, to_new_parent
from ems.api.routing_schemas import (
    ImpactCurve,
    ImpactCurves,
    ImpactFitPublic,
    ImpactPointPublic,
    PreviewPublic,
    RoutePublic,
    curve_points,
)
from ems.api.schemas import SUBMIT_EXAMPLES, VENUE_PATTERN, ParentPreview
from ems.ports import ImpactPoint

router = APIRouter()

_PREVIEW_TITLES = {
    "twap": "0.5 BTC with TWAP on one venue",
    "vwap": "5 BTC with VWAP on every venue listing it",
    "pov": "2 BTC at 10% of the volume on two venues",
    "iceberg": "3 BTC as an iceberg",
}
_PREVIEW_OPENAPI_EXAMPLES: dict[str, Any] = {
    algo: {
        "summary": _PREVIEW_TITLES[algo],
        "value": {key: value for key, value in body.items() if key != "client_id"},
    }
    for algo, body in SUBMIT_EXAMPLES.items()
}


@router.get(
    "/impact-curves",
    tags=["routing"],
    response_model=ImpactCurves,
    summary="Impact-cost curves per venue",
    responses=_AUTH_ERRORS,
)
async def impact_curves(
    store: StoreDep,
    _caller: Viewer,
    venue: Annotated[
        str | None,
        Query(min_length=1, max_length=40, pattern=VENUE_PATTERN, description="Only this venue."),
    ] = None,
    symbol: Annotated[
        str | None,
        Query(min_length=3, max_length=64, description="Only this symbol, e.g. BTC/USDT."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=5000, description="Most recent points per venue and symbol, 1..5000.")
    ] = 200,
) -> Any:
    """What each venue's children have cost against their size, per venue and symbol.

    For every venue and symbol with a fit or recorded points: the current fit of
    `cost_bps = a * x ** b` (with confidence bounds; `x` is a child's size relative to the
    displayed depth it could take), its most recent impact points (newest first), and the fit
    evaluated at a few sizes from 0.01 to 1 for charting. Before anything is recorded the lists
    are empty; a venue with points but no fit yet has `fit: null` and an empty `curve`.
    """
    symbol = symbol.strip().upper() if symbol else None
    fits = {(f.venue, f.symbol): f for f in store.impact_fits(venue=venue, symbol=symbol)}
    recent = store.impact_points(venue=venue, symbol=symbol, limit=limit)
    pairs = set(fits) | {(p.venue, p.symbol) for p in recent}
    curves: list[ImpactCurve] = []
    for pair in sorted(pairs):
        points: list[ImpactPoint]
        if venue is not None and symbol is not None:
            points = recent  # already exactly this venue and symbol
        else:
            points = store.impact_points(venue=pair[0], symbol=pair[1], limit=limit)
        fit = fits.get(pair)
        curves.append(
            ImpactCurve(
                venue=pair[0],
                symbol=pair[1],
                fit=ImpactFitPublic.of(fit) if fit is not None else None,
                points=[ImpactPointPublic.of(p) for p in points],
                curve=curve_points(fit) if fit is not None else [],
            )
        )
    return ImpactCurves(curves=curves)


@router.get(
    "/parents/{parent_id}/routes",
    tags=["parents"],
    response_model=list[RoutePublic],
    summary="Routing decisions of a parent",
    responses={**_AUTH_ERRORS, **_NOT_FOUND},
)
async def get_routes(parent_id: ParentId, store: StoreDep, _caller: Viewer) -> Any:
    """How each slice of the parent was split across venues, in time order: the quotes every
    venue offered (and why a venue was left out), the children sent and their expected cost."""
    _parent_or_404(store, parent_id)
    return [RoutePublic.of(r) for r in store.route_decisions(parent_id)]


@router.post(
    "/preview",
    tags=["routing"],
    response_model=PreviewPublic,
    summary="Preview the cost of a parent order",
    responses=_AUTH_ERRORS,
)
async def preview_parent(
    body: Annotated[ParentPreview, Body(openapi_examples=_PREVIEW_OPENAPI_EXAMPLES)],
    manager: ManagerDep,
    _caller: Trader,
) -> Any:
    """The expected cost of a proposed parent order before submitting it.

    Send the body of `POST /v1/parents` (`client_id` may be left out). The answer gives, per
    venue, the expected all-in cost (fees, walking the book, impact) of doing the whole order
    there alone, and in total the cost of the router's split across venues with each venue's
    allocation: in basis points of the current mid and in quote currency. The body is checked
    exactly like a submission (422 naming the field); nothing is stored and no order is sent.
    """
    result = await manager.preview(to_new_parent(body))
    return PreviewPublic.of(result)
