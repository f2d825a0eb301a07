"""Hedge-coverage routes (mounted under ``/v1``): the coverage the desk holds against its spot
(basis short and protective puts) measured against the market phase's requirement, the history
of coverage decisions, the market-phase switch and the confirmation-gated unwind request.

Reads are open to viewers; a trader may ask for the next unwind step (the risk module still
decides); only an admin sets the market phase. Changes go through the order manager, which
stores each one as a coverage decision with the key that asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse

from ems.api.coverage_schemas import (
    CoverageView,
    DecisionKind,
    DecisionPublic,
    PhaseUpdate,
)
from ems.api.deps import Admin, ManagerDep, OrderManager, StoreDep, Trader, Viewer
from ems.api.risk_routes import actor_of
from ems.api.routes import _AUTH_ERRORS
from ems.api.schemas import ErrorResponse
from ems.errors import Conflict, RetryableVenueError
from ems.hedging import HedgeDesk

router = APIRouter(tags=["risk"])
"""Hedge coverage is part of the risk desk: its routes are documented under the risk tag."""

NOT_CONFIGURED = (
    "hedging is not configured on this desk: add a [hedging] section to the settings (the "
    "asset, its spot and hedge symbols, and [hedging.coverage] with the ratios per market "
    "phase; see config/ems.example.toml) and restart the server"
)
NO_SPOT_PRICE = (
    "no spot price to value the hedge against: no venue listing the hedged spot symbol has a "
    "two-sided book right now; retry shortly"
)

_NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Hedging is not configured on this desk"}
}
_NO_SPOT: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "No spot price to value the hedge against"}
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorResponse,
        "description": (
            "Refused by the risk module: `error` is `unwind_not_confirmed` or `unwind_too_soon`"
        ),
        "content": {
            "application/json": {
                "example": {
                    "error": "unwind_too_soon",
                    "message": (
                        "unwind_too_soon: next step allowed at 2026-05-02T12:00:00+00:00: step 1 "
                        "of 4 was taken at 2026-05-01T12:00:00+00:00 and steps are at least "
                        "1 day, 0:00:00 apart"
                    ),
                    "errors": [],
                }
            }
        },
    }
}


def _hedge_or_404(manager: OrderManager) -> HedgeDesk:
    hedge = manager.hedge
    if hedge is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_CONFIGURED)
    return hedge


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    """An error response in the API's usual shape."""
    body = ErrorResponse(error=code, message=message)
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)


def _no_spot_price() -> JSONResponse:
    return _error(status.HTTP_503_SERVICE_UNAVAILABLE, "service_unavailable", NO_SPOT_PRICE)


@router.get(
    "/coverage",
    response_model=CoverageView,
    summary="Hedge coverage now",
    responses={**_AUTH_ERRORS, **_NOT_CONFIGURED, **_NO_SPOT},
)
async def coverage(manager: ManagerDep, _caller: Viewer) -> Any:
    """The hedge held against the accumulated spot, valued at the consensus spot mid:

    - the market `phase` and the `unwind` state with its plan (steps, interval, next step time);
    - the `exposure` by leg and the coverage `ratios` (null with no spot held) against what the
      phase `required`s; `drift`: the worst leg's shortfall below target as a share of spot
      notional, the tolerance, since when and whether it is exceeded;
    - `demand`: spot held back until the hedge catches up;
    - the `puts` held with their greeks from the volatility surface, and the book's totals;
    - `funding` received or paid on the hedge per venue and the `last_basis_bps` captured.

    404 when hedging is not configured; 503 while no spot price is available.
    """
    hedge = _hedge_or_404(manager)
    exposure = await manager.coverage_exposure()
    if exposure is None:
        return _no_spot_price()
    return CoverageView.of(hedge, exposure, manager.funding(), manager.clock.now())


@router.get(
    "/coverage/decisions",
    response_model=list[DecisionPublic],
    summary="Coverage decisions",
    responses=_AUTH_ERRORS,
)
async def decisions(
    store: StoreDep,
    _caller: Viewer,
    kind: Annotated[
        DecisionKind | None,
        Query(description="Only decisions of this kind."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="The most recent decisions to return, 1..1000.")
    ] = 200,
) -> Any:
    """Every coverage decision, oldest first (newest last): phase changes with their evidence,
    spot held and resumed, hedge orders and fills (with the basis captured), refusals with
    their risk code, unwind requests and steps, put rolls, drift and position breaks, each
    with the exposure it was taken on."""
    return [DecisionPublic.of(r) for r in store.coverage_log(kind=kind, limit=limit)]


@router.put(
    "/coverage/phase",
    response_model=DecisionPublic,
    summary="Set the market phase",
    responses={**_AUTH_ERRORS, **_NOT_CONFIGURED, **_NO_SPOT},
)
async def set_phase(body: PhaseUpdate, manager: ManagerDep, caller: Admin) -> Any:
    """Enter a market phase (`stress`, `clearing`, `repair` or `confirmed`) with the evidence
    for it; the phase's coverage requirement applies from the next step. Entering `confirmed`
    starts (or resumes) the gated unwind; leaving it pauses the unwind, the remaining hedge
    held.

    Admin only. Durable (it survives a restart); returns the decision stored for it, whose
    `actor` is the key that made the change. A bad phase or empty evidence is 422 naming the
    field.
    """
    _hedge_or_404(manager)
    try:
        record = await manager.set_market_phase(
            body.phase, evidence=body.stored_evidence(), actor=actor_of(caller)
        )
    except RetryableVenueError:
        return _no_spot_price()
    return DecisionPublic.of(record)


@router.post(
    "/coverage/unwind",
    response_model=DecisionPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request the next unwind step",
    responses={**_AUTH_ERRORS, **_NOT_CONFIGURED, **_REFUSED, **_NO_SPOT},
)
async def request_unwind(manager: ManagerDep, caller: Trader) -> Any:
    """Ask for the next step of the hedge unwind. The risk module decides: it is refused with
    409 `unwind_not_confirmed` unless the market phase is confirmed, and `unwind_too_soon`
    within the plan's interval of the last step (the message says when the next is allowed).
    The refusal is stored as a decision too.

    Accepted (202), the step is taken at the desk's next step, as reduce-only hedge orders;
    returns the `unwind_requested` decision.
    """
    _hedge_or_404(manager)
    try:
        record = await manager.request_unwind(actor=actor_of(caller))
    except Conflict as exc:
        message = str(exc)
        code = message.split(":", 1)[0].strip() or "conflict"
        return _error(status.HTTP_409_CONFLICT, code, message)
    except RetryableVenueError:
        return _no_spot_price()
    return DecisionPublic.of(record)
