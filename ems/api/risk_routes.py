"""Risk routes (mounted under ``/v1``): the desk's risk state, the trading-state switch (the
kill switch, per venue or for the whole desk), the pre-trade limits and their audit trail.

Reads are open to viewers; changes need an admin key and are made through the order manager,
which records each one in the audit trail with the key that made it and the reason given.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from ems.api.auth import Principal
from ems.api.deps import Admin, ManagerDep, StoreDep, Viewer
from ems.api.risk_schemas import (
    AuditPublic,
    HoldingView,
    LimitsUpdate,
    PositionCheckView,
    RiskLimitsBody,
    RiskView,
    TradingStateUpdate,
    VenueRisk,
    positions_view,
)
from ems.api.routes import _AUTH_ERRORS
from ems.errors import InvalidOrder

router = APIRouter(tags=["risk"])

TAG: dict[str, Any] = {
    "name": "risk",
    "description": (
        "The risk desk: trading states (halt a venue or the whole desk), pre-trade limits, "
        "positions and the audit trail of every change. Changes need an admin key."
    ),
}


def actor_of(principal: Principal) -> str:
    """How a key is named in the audit trail: its name and its public key id."""
    return f"{principal.name} ({principal.key_id})"


def _refuse(field: str, rule: str, message: str, value: object) -> RequestValidationError:
    """A 422 in the API's usual shape, naming ``field`` of the body."""
    return RequestValidationError(
        [{"type": rule, "loc": ("body", field), "msg": message, "input": value}]
    )


_LEADING_NAME = re.compile(r"^([a-z_]+)")


def _field_of(message: str) -> str:
    """The limits field a ``RiskLimits`` error message starts with, else ``body``."""
    match = _LEADING_NAME.match(message)
    name = match.group(1) if match else ""
    if name in RiskLimitsBody.model_fields:
        return name
    renamed = {"max_book_age": "max_book_age_s", "order_window": "order_window_s"}
    return renamed.get(name, "body")


@router.get("/risk", response_model=RiskView, summary="Risk state", responses=_AUTH_ERRORS)
async def risk_state(manager: ManagerDep, _caller: Viewer) -> Any:
    """The desk's trading state, each venue's trading state and routing health, the current
    pre-trade limits, signed positions per asset and the notional traded today (UTC)."""
    now = manager.clock.now()
    desk = manager.risk
    venues = []
    for name in sorted(manager.venues):
        # Book freshness is per symbol and judged when a slice is routed; here: kill switch,
        # circuit breaker and error rate.
        health = manager.routing.health(name, now, now)
        venues.append(
            VenueRisk(
                venue=name,
                state=desk.state_of(name),
                tradable=health.tradable,
                reason=health.reason.value,
                detail=health.detail,
            )
        )
    return RiskView(
        as_of=now,
        global_state=desk.global_state,
        venues=venues,
        limits=RiskLimitsBody.of(desk.limits),
        positions=positions_view(desk.positions),
        day_notional=desk.day_notional(now),
        holdings=[
            HoldingView(venue=i.venue, symbol=i.symbol, kind=i.kind.value, qty=qty)
            for i, qty in sorted(desk.holdings, key=lambda h: h[0].key)
        ],
        reconciliation=[
            PositionCheckView.model_validate(
                {
                    "venue": c.venue,
                    "item": c.item,
                    "kind": c.kind,
                    "ours": c.ours,
                    "reported": c.reported,
                    "offset": c.offset,
                    "difference": c.difference,
                    "matched": not c.suspect,
                    "break": c.is_break,
                    "checked_at": c.checked_at,
                }
            )
            for _, c in sorted(manager.position_checks.items())
        ],
    )


@router.put(
    "/risk/state",
    response_model=AuditPublic,
    summary="Set a trading state (kill switch)",
    responses=_AUTH_ERRORS,
)
async def set_trading_state(body: TradingStateUpdate, manager: ManagerDep, caller: Admin) -> Any:
    """Set the trading state of one venue (`scope`: its name) or of the whole desk
    (`scope: "global"`). `halted` is the kill switch: no new child order is sent there, and
    working parents record a `venue_halted` (or `global_halted`) note instead. `reducing`
    allows only orders that reduce exposure; `active` trades normally again.

    Admin only. The change is durable (it survives a restart) and is returned as the audit
    record written for it. An unknown venue is refused with 422 naming `scope`.
    """
    try:
        record = await manager.set_trading_state(
            body.state, venue=body.venue, actor=actor_of(caller), reason=body.reason
        )
    except InvalidOrder as exc:
        raise _refuse("scope", "unknown_venue", str(exc), body.scope) from None
    return AuditPublic.of(record)


@router.put(
    "/risk/limits",
    response_model=AuditPublic,
    summary="Replace the pre-trade limits",
    responses=_AUTH_ERRORS,
)
async def set_risk_limits(body: LimitsUpdate, manager: ManagerDep, caller: Admin) -> Any:
    """Replace every pre-trade limit at once (send the full set, as `GET /v1/risk` shows it,
    plus a `reason`). Notionals are positive with child ≤ parent ≤ daily, position limits are
    zero or more, the price collar lies strictly between 0 and 10000 bps and durations are
    positive seconds; a refusal is 422 naming the field and changes nothing.

    Admin only. Returns the audit record, whose `before` and `after` hold the old and new limits.
    """
    try:
        limits = body.to_limits()
    except (ValueError, TypeError) as exc:
        raise _refuse(_field_of(str(exc)), "risk_limits", str(exc), None) from None
    record = await manager.set_risk_limits(limits, actor=actor_of(caller), reason=body.reason)
    return AuditPublic.of(record)


@router.get(
    "/risk/audit",
    response_model=list[AuditPublic],
    summary="Audit trail of risk changes",
    responses=_AUTH_ERRORS,
)
async def audit_trail(
    store: StoreDep,
    _caller: Viewer,
    action: Annotated[
        Literal["trading_state", "risk_limits"] | None,
        Query(description="Only this kind of change."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="The most recent changes to return, 1..1000.")
    ] = 200,
) -> Any:
    """Every trading-state and limits change, oldest first (newest last): when, by which key,
    the value before and after, and the reason given."""
    return [AuditPublic.of(r) for r in store.audit_log(action=action, limit=limit)]
