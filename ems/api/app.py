"""The FastAPI application factory.

``create_app(manager, store)`` builds an app with no module state: the manager and the store
live on ``app.state`` and reach the routes through dependencies (``ems.api.deps``). Every error
response has the same shape (:class:`ems.api.schemas.ErrorResponse`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ems.api.coverage_routes import router as coverage_router
from ems.api.deps import OrderManager
from ems.api.risk_routes import TAG as RISK_TAG
from ems.api.risk_routes import router as risk_router
from ems.api.routes import API_VERSION, TAGS, ActionRefused, router
from ems.api.routing_routes import router as routing_router
from ems.api.schemas import ErrorResponse, FieldProblem, describe_errors
from ems.errors import Conflict, InvalidOrder, InvalidTransition, NotFound
from ems.ports import StorePort

log = logging.getLogger(__name__)

DESCRIPTION = """\
Execution management for staged crypto accumulation.

Submit **parent orders** (e.g. buy 0.5 BTC over an hour with TWAP); the engine slices them into
child orders across venues and records every fill. Algorithms: `twap`, `vwap`, `pov` and
`iceberg`, each with its own `algo_params` plus shared execution-style guards (see the request
examples of `POST /v1/parents`). Follow progress and schedule quality (tracking error,
participation, maker share); amend quantity, limit price or end time mid-flight
(`PATCH /v1/parents/{id}`); pause, resume or cancel.

**Routing**: each slice is split across venues by expected all-in cost (fees, walking the book,
impact learned from our own children). Preview what an order would cost before sending it
(`POST /v1/preview`), see how every slice was split (`GET /v1/parents/{id}/routes`) and each
venue's impact-cost curve (`GET /v1/impact-curves`).

**Risk**: see the desk's trading states, limits, positions and today's notional
(`GET /v1/risk`); an admin key halts a venue or the whole desk (`PUT /v1/risk/state`, the kill
switch) and replaces the pre-trade limits (`PUT /v1/risk/limits`); every change is audited
(`GET /v1/risk/audit`).

**Authentication**: every route except `/v1/health` needs an API key, sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys have a role: `viewer` (read),
`trader` (also submit and act on orders) or `admin`. Create one with
`ems api-key create --name NAME --role trader`.

**Numbers**: quantities, prices and fees are decimals sent as JSON strings (numbers are
accepted) and always returned as strings, so no digit is lost. **Times** are ISO-8601 with a
timezone and are returned in UTC.

**Errors** share one shape: `{"error": code, "message": sentence, "errors": [{field, rule,
message}]}`.
"""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _error(
    status_code: int,
    code: str,
    message: str,
    problems: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=code, message=message, errors=problems or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = describe_errors(exc.errors())
    message = "; ".join(p.message for p in problems) or "the request is not valid"
    return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request", message, problems)


async def _on_invalid_order(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidOrder)
    field = exc.field or "body"
    text = str(exc)
    message = text if exc.field is None or text.startswith(exc.field) else f"{field}: {text}"
    problem = FieldProblem(field=field, rule="order_rule", message=message)
    return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_order", message, [problem])


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return _error(status.HTTP_404_NOT_FOUND, "not_found", str(exc) or "not found")


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return _error(status.HTTP_409_CONFLICT, "conflict", str(exc) or "conflict")


async def _on_action_refused(request: Request, exc: Exception) -> JSONResponse:
    return _error(status.HTTP_409_CONFLICT, "invalid_transition", str(exc))


async def _on_invalid_transition(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidTransition)
    message = f"{exc.entity} is {exc.state}; {exc.event} is not allowed now"
    return _error(status.HTTP_409_CONFLICT, "invalid_transition", message)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == status.HTTP_404_NOT_FOUND and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs"
    elif exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs"
    headers = dict(exc.headers) if exc.headers else None
    return _error(exc.status_code, code, message, headers=headers)


def create_app(
    manager: OrderManager,
    store: StorePort,
    *,
    title: str = "Staged EMS",
    version: str = API_VERSION,
    lifespan: Lifespan | None = None,
    root_path: str = "",
) -> FastAPI:
    """Build the REST API around ``manager`` (commands) and ``store`` (reads, API keys).

    Routes are under ``/v1``; the OpenAPI document is at ``/openapi.json`` and the interactive
    docs at ``/docs``. ``lifespan`` lets the composition root run the manager's loop for as long
    as the app is served; ``root_path`` is for serving behind a proxy prefix.
    """
    app = FastAPI(
        title=title,
        description=DESCRIPTION,
        version=version,
        openapi_tags=[*TAGS, RISK_TAG],
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        root_path=root_path,
    )
    app.state.manager = manager
    app.state.store = store
    app.include_router(router, prefix="/v1")
    app.include_router(routing_router, prefix="/v1")
    app.include_router(risk_router, prefix="/v1")
    app.include_router(coverage_router, prefix="/v1")
    handlers: dict[Any, Any] = {
        RequestValidationError: _on_validation_error,
        InvalidOrder: _on_invalid_order,
        NotFound: _on_not_found,
        Conflict: _on_conflict,
        ActionRefused: _on_action_refused,
        InvalidTransition: _on_invalid_transition,
        StarletteHTTPException: _on_http_error,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    return app
