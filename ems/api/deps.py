"""FastAPI dependencies: the manager, the store and the caller's identity.

Everything is read from ``app.state`` (set by :func:`ems.api.app.create_app`), so there are no
module globals and tests may swap any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ems.api.auth import Principal, Role, authenticate
from ems.clock import Clock
from ems.hedging import HedgeDesk, HedgeExposure
from ems.intake import NewParent
from ems.orders import ChildOrder, ParentOrder
from ems.ports import AuditRecord, CoverageRecord, StorePort, VenuePort
from ems.positions import PositionCheck
from ems.preview import PreviewResult
from ems.risk_desk import RiskDesk
from ems.routing import RoutingDesk
from risk.basis import FundingAccrual
from risk.limits import RiskLimits
from risk.types import MarketPhase, TradingState


class OrderManager(Protocol):
    """What the API needs from :class:`ems.manager.ParentOrderManager`."""

    @property
    def clock(self) -> Clock:
        """The clock the manager runs on."""
        ...

    async def submit(self, new: NewParent) -> tuple[ParentOrder, bool]:
        """Validate and durably accept a parent; ``(parent, created)``; idempotent by client id."""
        ...

    async def cancel(self, parent_id: str, reason: str = ...) -> ParentOrder:
        """Stop a parent (``NotFound``, ``InvalidTransition``)."""
        ...

    async def pause(self, parent_id: str) -> ParentOrder:
        """Hold a parent (``NotFound``, ``InvalidTransition``)."""
        ...

    async def resume(self, parent_id: str) -> ParentOrder:
        """Continue a paused parent (``NotFound``, ``InvalidTransition``)."""
        ...

    async def amend(
        self,
        parent_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        end_at: datetime | None = None,
        clear_limit: bool = False,
    ) -> ParentOrder:
        """Change a live parent (``InvalidOrder``, ``NotFound``, ``InvalidTransition``)."""
        ...

    async def preview(self, new: NewParent) -> PreviewResult:
        """The expected cost of a proposed parent per venue and in total; stores and sends
        nothing. Raises ``InvalidOrder`` (naming the field) like ``submit``."""
        ...

    def parent(self, parent_id: str) -> ParentOrder | None:
        """The parent as the manager currently holds it, or None."""
        ...

    def live_children(self, parent_id: str) -> list[ChildOrder]:
        """The parent's children that are not terminal (they may still fill)."""
        ...

    @property
    def venues(self) -> Mapping[str, VenuePort]:
        """The configured venues by name."""
        ...

    @property
    def risk(self) -> RiskDesk:
        """Positions, today's notional, trading states and the current limits."""
        ...

    @property
    def routing(self) -> RoutingDesk:
        """Per-venue health (kill switch, circuit breaker, error rate)."""
        ...

    async def set_trading_state(
        self, state: TradingState, *, venue: str | None, actor: str, reason: str
    ) -> AuditRecord:
        """Set the desk's (``venue`` None) or one venue's trading state, audited; raises
        ``InvalidOrder`` for an unknown venue."""
        ...

    async def set_risk_limits(self, limits: RiskLimits, *, actor: str, reason: str) -> AuditRecord:
        """Replace the pre-trade limits, audited with before and after."""
        ...

    @property
    def position_checks(self) -> Mapping[tuple[str, str], PositionCheck]:
        """The last reconciliation of our holdings with each venue, by (venue, item)."""
        ...

    @property
    def hedge(self) -> HedgeDesk | None:
        """The hedge desk (phase, unwind, coverage policy), or None without hedging."""
        ...

    async def set_market_phase(
        self, phase: MarketPhase, *, evidence: str, actor: str
    ) -> CoverageRecord:
        """Enter a market phase with its evidence (``InvalidOrder`` naming the field)."""
        ...

    async def request_unwind(self, *, actor: str) -> CoverageRecord:
        """Ask for the next unwind step (``Conflict`` with the risk code when refused)."""
        ...

    async def coverage_exposure(self) -> HedgeExposure | None:
        """The hedged asset's exposure now (None without hedging or a spot price)."""
        ...

    def funding(self) -> Mapping[str, FundingAccrual]:
        """Funding received or paid on the hedge, per venue."""
        ...


def get_manager(request: Request) -> OrderManager:
    """The order manager the app was created with."""
    manager: OrderManager = request.app.state.manager
    return manager


def get_store(request: Request) -> StorePort:
    """The store the app was created with (reads go straight to it)."""
    store: StorePort = request.app.state.store
    return store


ManagerDep = Annotated[OrderManager, Depends(get_manager)]
StoreDep = Annotated[StorePort, Depends(get_store)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerKey",
    description="`Authorization: Bearer ems_<id>_<secret>`",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyHeader",
    description="`X-API-Key: ems_<id>_<secret>` (alternative to the bearer header)",
)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ems"'}


async def get_principal(
    store: StoreDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Authenticate the caller by API key; 401 when it is missing, unknown or revoked."""
    presented = bearer.credentials if bearer is not None else header_key
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers=_CHALLENGE,
        )
    principal = authenticate(store, presented)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the API key is not valid (unknown or revoked)",
            headers=_CHALLENGE,
        )
    return principal


def require_role(required: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits callers whose role is at least ``required`` (403 otherwise)."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        """The caller, if their role is enough."""
        if not principal.role.allows(required):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this action needs the {required.value} role; "
                f"the key '{principal.name}' has the {principal.role.value} role",
            )
        return principal

    check.__name__ = f"require_{required.value}"
    return check


Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Trader = Annotated[Principal, Depends(require_role(Role.TRADER))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
