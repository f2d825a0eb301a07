"""Routes of the REST API, version 1 (mounted under ``/v1``).

Commands go to the order manager; reads go straight to the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response, status

from ems.api.deps import ManagerDep, StoreDep, Trader, Viewer
from ems.api.schemas import (
    SUBMIT_EXAMPLES,
    CancelRequest,
    ChildPublic,
    ErrorResponse,
    EventPublic,
    FillPublic,
    Health,
    ParentAmend,
    ParentCreate,
    ParentPage,
    ParentPublic,
    ParentRequest,
)
from ems.errors import InvalidTransition, NotFound
from ems.events import ParentAmended
from ems.intake import NewParent
from ems.orders import PARENT_TRANSITIONS, ParentOrder, ParentStatus
from ems.ports import StorePort

API_VERSION = "0.1.0"

TAGS: list[dict[str, Any]] = [
    {"name": "parents", "description": "Submit parent orders and follow their execution."},
    {
        "name": "actions",
        "description": "Amend, pause, resume and cancel a working parent order.",
    },
    {
        "name": "routing",
        "description": "Impact-cost curves per venue and pre-trade cost previews.",
    },
    {"name": "system", "description": "Service health (no API key needed)."},
]

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "API key missing, unknown or revoked"},
    403: {"model": ErrorResponse, "description": "The key's role may not do this"},
    422: {"model": ErrorResponse, "description": "Invalid request: names the field and rule"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No parent order with this id"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The order's state does not allow this"}
}

router = APIRouter()

ParentId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Parent order id, as returned on submission.",
        examples=["P01HZX3Q8V2"],
    ),
]


def _parent_or_404(store: StorePort, parent_id: str) -> ParentOrder:
    parent = store.get_parent(parent_id)
    if parent is None:
        raise NotFound(f"parent {parent_id} does not exist")
    return parent


PREVIEW_CLIENT_ID = "preview"
"""The client id given to the manager for a preview sent without one (nothing is stored)."""


def to_new_parent(body: ParentRequest) -> NewParent:
    """The manager's request type for a validated API body (a submission or a preview)."""
    return NewParent(
        client_id=body.client_id or PREVIEW_CLIENT_ID,
        symbol=body.symbol,
        side=body.side,
        quantity=body.quantity,
        algo=body.algo,
        end_at=body.end_at,
        start_at=body.start_at,
        limit_price=body.limit_price,
        venues=body.venues,
        algo_params=body.algo_parameters(),
    )


class ActionRefused(Exception):
    """An order action that the parent's status does not allow, worded for the caller."""


_VERB = {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "amend": "amended"}


async def _act(action: str, parent_id: str, call: Callable[[], Awaitable[ParentOrder]]) -> Any:
    try:
        parent = await call()
    except InvalidTransition as exc:
        raise ActionRefused(
            f"parent {parent_id} is {exc.state}; it cannot be {_VERB[action]}"
        ) from exc
    return ParentPublic.of(parent)


_EXAMPLE_TITLES = {
    "twap": "TWAP: 0.5 BTC evenly over an hour",
    "vwap": "VWAP: 5 BTC along the day's volume",
    "pov": "POV: 2 BTC at 10% of the traded volume",
    "iceberg": "Iceberg: 3 BTC showing 0.2 at a time",
}
_SUBMIT_OPENAPI_EXAMPLES: dict[str, Any] = {
    algo: {"summary": _EXAMPLE_TITLES[algo], "value": body}
    for algo, body in SUBMIT_EXAMPLES.items()
}


@router.get("/health", tags=["system"], response_model=Health, summary="Service health")
async def health(manager: ManagerDep) -> Health:
    """Liveness probe; needs no API key."""
    return Health(version=API_VERSION, time=manager.clock.now())


@router.post(
    "/parents",
    tags=["parents"],
    response_model=ParentPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Submit a parent order",
    responses={
        200: {"model": ParentPublic, "description": "Replay of an earlier identical request"},
        409: {"model": ErrorResponse, "description": "client_id already used for another body"},
        **_AUTH_ERRORS,
    },
)
async def submit_parent(
    body: Annotated[ParentCreate, Body(openapi_examples=_SUBMIT_OPENAPI_EXAMPLES)],
    response: Response,
    manager: ManagerDep,
    _caller: Trader,
) -> Any:
    """Validate the order against the markets and accept it durably.

    Answers 201 with the new order, or 200 with the stored one when the same `client_id` is
    sent again with the same body (a safe retry). The same `client_id` with a different body is
    refused with 409.
    """
    parent, created = await manager.submit(to_new_parent(body))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/parents/{parent.id}"
    return ParentPublic.of(parent)


@router.get(
    "/parents",
    tags=["parents"],
    response_model=ParentPage,
    summary="List parent orders",
    responses=_AUTH_ERRORS,
)
async def list_parents(
    store: StoreDep,
    _caller: Viewer,
    status_: Annotated[
        ParentStatus | None, Query(alias="status", description="Only orders in this status.")
    ] = None,
    symbol: Annotated[
        str | None,
        Query(min_length=3, max_length=64, description="Only this symbol, e.g. BTC/USDT."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1..500.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Orders to skip, newest first.")] = 0,
) -> Any:
    """Parent orders, newest first, optionally filtered by status and symbol."""
    items = store.list_parents(
        status=status_,
        symbol=symbol.strip().upper() if symbol else None,
        limit=limit,
        offset=offset,
    )
    return ParentPage(
        items=[ParentPublic.of(p) for p in items],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(items) == limit else None,
    )


@router.get(
    "/parents/{parent_id}",
    tags=["parents"],
    response_model=ParentPublic,
    summary="Get a parent order",
    responses={**_AUTH_ERRORS, **_NOT_FOUND},
)
async def get_parent(parent_id: ParentId, store: StoreDep, _caller: Viewer) -> Any:
    """One parent order with its progress."""
    return ParentPublic.of(_parent_or_404(store, parent_id))


@router.get(
    "/parents/{parent_id}/children",
    tags=["parents"],
    response_model=list[ChildPublic],
    summary="Child orders of a parent",
    responses={**_AUTH_ERRORS, **_NOT_FOUND},
)
async def get_children(parent_id: ParentId, store: StoreDep, _caller: Viewer) -> Any:
    """The child orders sent for a parent, in sequence order."""
    _parent_or_404(store, parent_id)
    return [ChildPublic.of(c) for c in store.children(parent_id)]


@router.get(
    "/parents/{parent_id}/fills",
    tags=["parents"],
    response_model=list[FillPublic],
    summary="Fills of a parent",
    responses={**_AUTH_ERRORS, **_NOT_FOUND},
)
async def get_fills(parent_id: ParentId, store: StoreDep, _caller: Viewer) -> Any:
    """Every execution of the parent's children, in time order."""
    _parent_or_404(store, parent_id)
    return [FillPublic.of(f) for f in store.fills(parent_id)]


@router.get(
    "/parents/{parent_id}/events",
    tags=["parents"],
    response_model=list[EventPublic],
    summary="Event log of a parent",
    responses={**_AUTH_ERRORS, **_NOT_FOUND},
)
async def get_events(parent_id: ParentId, store: StoreDep, _caller: Viewer) -> Any:
    """The parent's append-only event log (its children's events included)."""
    _parent_or_404(store, parent_id)
    return [EventPublic.of(e) for e in store.events(parent_id)]


@router.post(
    "/parents/{parent_id}/cancel",
    tags=["actions"],
    response_model=ParentPublic,
    summary="Cancel a parent order",
    responses={**_AUTH_ERRORS, **_NOT_FOUND, **_CONFLICT},
)
async def cancel_parent(
    parent_id: ParentId,
    manager: ManagerDep,
    caller: Trader,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Any:
    """Stop sending children and cancel the working ones; the order ends as `cancelled`."""
    reason = body.reason if body is not None and body.reason else f"cancelled by {caller.name}"
    return await _act("cancel", parent_id, lambda: manager.cancel(parent_id, reason))


@router.post(
    "/parents/{parent_id}/pause",
    tags=["actions"],
    response_model=ParentPublic,
    summary="Pause a parent order",
    responses={**_AUTH_ERRORS, **_NOT_FOUND, **_CONFLICT},
)
async def pause_parent(parent_id: ParentId, manager: ManagerDep, _caller: Trader) -> Any:
    """Hold the schedule and cancel working children until the order is resumed."""
    return await _act("pause", parent_id, lambda: manager.pause(parent_id))


@router.post(
    "/parents/{parent_id}/resume",
    tags=["actions"],
    response_model=ParentPublic,
    summary="Resume a paused parent order",
    responses={**_AUTH_ERRORS, **_NOT_FOUND, **_CONFLICT},
)
async def resume_parent(parent_id: ParentId, manager: ManagerDep, _caller: Trader) -> Any:
    """Continue a paused order's schedule."""
    return await _act("resume", parent_id, lambda: manager.resume(parent_id))


@router.patch(
    "/parents/{parent_id}",
    tags=["actions"],
    response_model=ParentPublic,
    summary="Amend a parent order",
    responses={**_AUTH_ERRORS, **_NOT_FOUND, **_CONFLICT},
)
async def amend_parent(
    parent_id: ParentId,
    body: Annotated[ParentAmend, Body()],
    manager: ManagerDep,
    _caller: Trader,
) -> Any:
    """Change the quantity, limit price or end time of an accepted, working or paused order.

    The new values are checked like a new order's (lot and tick size, price collar, window).
    The quantity may not go below what is already filled, nor below filled plus what is still
    working at the venues (pause first to amend further down). Working children are cancelled
    and the schedule re-plans from the fills so far. A parent that is winding down (cancelling,
    expiring) or finished cannot be amended (409).
    """
    current = manager.parent(parent_id)
    if current is None:
        raise NotFound(f"parent {parent_id} does not exist")
    if (current.status, ParentAmended) not in PARENT_TRANSITIONS:
        # Refuse before checking the new values against the market: the state is the answer.
        raise ActionRefused(f"parent {parent_id} is {current.status.value}; it cannot be amended")
    return await _act(
        "amend",
        parent_id,
        lambda: manager.amend(
            parent_id,
            quantity=body.quantity,
            limit_price=body.limit_price,
            end_at=body.end_at,
            clear_limit=body.clear_limit,
        ),
    )
