"""The parent-order manager: lifecycle of parents and scheduling of their children.

Each ``step()``:
1. applies order updates pushed by the venues and reconciles children whose outcome is unknown;
2. advances parent lifecycles (start, completion, expiry, wind-down);
3. asks each working parent's algorithm for a plan, persists the new children (status
   ``pending_submit``, deterministic client ids) and only then sends them and the cancels.

Every change goes to the store as one batch per phase. If a write fails, in-memory state is
thrown away and rebuilt from the store and the venues on the next step (the same path as a
restart), so memory never runs ahead of what is durable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from algos import registry
from algos.base import MarketView, ParentView, SliceIntent, VolumeCurve, WorkingChild
from ems.clock import Clock
from ems.domain import (
    Instrument,
    OrderBook,
    OrderRequest,
    OrderType,
    Side,
    ensure_utc,
    strictest_instrument,
)
from ems.errors import (
    Conflict,
    EmsError,
    InvalidOrder,
    InvalidTransition,
    NotFound,
    OrderNotFoundAtVenue,
    RetryableVenueError,
    SubmitOutcomeUnknown,
    VenueError,
    VenueRejected,
)
from ems.events import (
    ChildCancelRequested,
    ChildEvent,
    ChildFilled,
    ChildRejected,
    ChildSubmitted,
    ParentAccepted,
    ParentAmended,
    ParentCancelRequested,
    ParentCompleted,
    ParentEvent,
    ParentExpiring,
    ParentFillApplied,
    ParentNote,
    ParentPaused,
    ParentResumed,
    ParentStarted,
    ParentWoundDown,
)
from ems.hedge_link import HedgeLink, plain_break_record
from ems.hedging import HedgeConfig, HedgeDesk, HedgeExposure
from ems.intake import (
    IntakeLimits,
    NewParent,
    check_amendment,
    check_parent,
    consensus_mid,
    request_hash,
    resolve_venues,
)
from ems.orders import (
    PARENT_TRANSITIONS,
    ChildOrder,
    ChildStatus,
    ParentOrder,
    ParentStatus,
)
from ems.ports import AuditRecord, Batch, CoverageKind, CoverageRecord, StorePort, VenuePort
from ems.positions import PositionCheck, PositionReconciler
from ems.preview import PreviewResult, VenuePreview
from ems.reconcile import events_from_venue_state, reconcile_child
from ems.risk_desk import RiskDesk, limits_from_json, limits_to_json
from ems.routing import RoutingConfig, RoutingDesk
from risk.basis import FundingAccrual
from risk.limits import RiskLimits
from risk.types import Denied, DenyCode, MarketPhase, TradingState
from risk.vol_surface import VolSurface
from routers.basic import choose_venue
from routers.sor import consolidated_book, expected_cost_bps, route
from routers.types import RouteRequest, VenueState

log = logging.getLogger(__name__)


DESK_LIMITS = RiskLimits(
    max_child_notional=Decimal(2_000_000),
    max_parent_notional=Decimal(100_000_000),
    max_daily_notional=Decimal(250_000_000),
    max_position={"BTC": Decimal(1_000), "ETH": Decimal(20_000), "SOL": Decimal(500_000)},
    price_collar_bps=Decimal(100),
    max_book_age=timedelta(seconds=5),
    max_orders_per_window=100,
    order_window=timedelta(seconds=10),
)
"""Default limits for a desk accumulating hundreds of BTC (quote amounts in USDT)."""


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    in_flight_grace: timedelta = timedelta(seconds=10)
    book_depth: int = 50
    intake: IntakeLimits = field(default_factory=IntakeLimits)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    risk_limits: RiskLimits = field(default_factory=lambda: DESK_LIMITS)
    hedging: HedgeConfig | None = None  # None: no hedge legs are kept
    position_check_interval: timedelta = timedelta(seconds=30)


def new_parent_id() -> str:
    return "P" + secrets.token_hex(6).upper()


class _Changes:
    """Entities and events touched during one phase of a step, deduplicated by identity."""

    def __init__(self) -> None:
        self.parents: dict[str, ParentOrder] = {}
        self.children: dict[str, ChildOrder] = {}
        self.batch = Batch()

    def parent_event(self, parent: ParentOrder, event: ParentEvent) -> bool:
        applied = parent.apply(event)
        if applied:
            self.parents[parent.id] = parent
            self.batch.events.append((parent.id, event))
        return applied

    def to_batch(self) -> Batch:
        self.batch.parents = list(self.parents.values())
        self.batch.children = list(self.children.values())
        return self.batch


class ParentOrderManager:
    """Owns every non-terminal parent and its children; the only orchestrator."""

    def __init__(
        self,
        store: StorePort,
        venues: Mapping[str, VenuePort],
        clock: Clock,
        *,
        config: ManagerConfig | None = None,
        id_factory: Callable[[], str] = new_parent_id,
        volume_profile: VolumeCurve | None = None,
        surface: VolSurface | None = None,
    ) -> None:
        self.store = store
        self.venues = venues
        self.clock = clock
        self.config = config or ManagerConfig()
        self._id_factory = id_factory
        self.volume_profile = volume_profile
        self.routing = RoutingDesk(venues, store, self.config.routing)
        self.risk = RiskDesk(self.config.risk_limits)
        hedging = self.config.hedging
        self.hedge = HedgeDesk(hedging, surface) if hedging is not None else None
        self._hedging = HedgeLink(self.hedge, venues, self.risk) if self.hedge else None
        self.positions = PositionReconciler(self.config.position_check_interval)
        self._replan: set[str] = set()
        self._parents: dict[str, ParentOrder] = {}
        self._children: dict[str, dict[str, ChildOrder]] = {}
        self._child_index: dict[str, ChildOrder] = {}
        self._holds: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._needs_recovery = True

    # --- reads of live state ------------------------------------------------------------------

    def parent(self, parent_id: str) -> ParentOrder | None:
        """The in-memory parent if it is active, else the stored one."""
        return self._parents.get(parent_id) or self.store.get_parent(parent_id)

    def live_children(self, parent_id: str) -> list[ChildOrder]:
        return [c for c in self._children.get(parent_id, {}).values() if not c.is_terminal]

    def active_parent_ids(self) -> list[str]:
        return list(self._parents)

    # --- commands -----------------------------------------------------------------------------

    async def submit(self, new: NewParent) -> tuple[ParentOrder, bool]:
        """Validate and durably accept a parent; idempotent on ``client_id``.

        Returns ``(parent, created)``. The same ``client_id`` with the same body returns the
        stored parent; with a different body raises ``Conflict``.
        """
        digest = request_hash(new)
        existing = self.store.get_parent_by_client_id(new.client_id)
        if existing is not None:
            return self._same_request(existing, digest), False
        parent = await self._new_parent(new, digest)
        stored, created = self.store.create_parent(
            parent, ParentAccepted(ts=parent.created_at, parent_id=parent.id)
        )
        if not created:
            return self._same_request(stored, digest), False
        self._track(stored, [])
        log.info(
            "parent %s accepted: %s %s %s", stored.id, stored.side, stored.quantity, stored.symbol
        )
        return stored, True

    async def _new_parent(self, new: NewParent, digest: str) -> ParentOrder:
        """A validated parent for ``new`` (``InvalidOrder`` naming the field), not yet stored."""
        listings = {name: venue.instruments() for name, venue in self.venues.items()}
        venue_names = resolve_venues(new, listings)
        books = await self._books(new.symbol, venue_names)
        now = self.clock.now()
        instruments = [listings[name][new.symbol] for name in venue_names]
        start, mid = check_parent(new, instruments, list(books.values()), now, self.config.intake)
        return ParentOrder(
            id=self._id_factory(),
            client_id=new.client_id,
            symbol=new.symbol,
            side=new.side,
            quantity=new.quantity,
            algo=new.algo,
            venues=venue_names,
            start_at=start,
            end_at=ensure_utc(new.end_at),
            created_at=now,
            updated_at=now,
            limit_price=new.limit_price,
            algo_params=dict(new.algo_params),
            request_hash=digest,
            arrival_mid=mid,
            role=new.role,
            reduce_only=new.reduce_only,
        )

    async def preview(self, new: NewParent) -> PreviewResult:
        """Expected all-in cost of a proposed parent, per venue alone and routed; stores nothing.

        Validated like ``submit`` (same ``InvalidOrder`` naming the field).
        """
        listings = {name: venue.instruments() for name, venue in self.venues.items()}
        venue_names = resolve_venues(new, listings)
        now = self.clock.now()
        states = await self.routing.venue_states(new.symbol, new.side, venue_names, now)
        instruments = [listings[name][new.symbol] for name in venue_names]
        _, mid = check_parent(new, instruments, [s.book for s in states], now, self.config.intake)
        if mid is None:
            return PreviewResult(new.symbol, new.side, new.quantity, None, None, None, ())
        collar = mid * self.config.intake.limit_collar
        cap = new.limit_price or (mid + collar if new.side is Side.BUY else mid - collar)
        tradable = [s for s in states if s.health.tradable]
        request = RouteRequest(
            new.side, new.quantity, cap, True, self.config.routing.max_venue_share
        )
        decision = route(request, tradable) if tradable else None
        allocated = {a.venue: a.qty for a in decision.allocations} if decision else {}
        venues = []
        for state in states:
            alone = expected_cost_bps(new.side, new.quantity, state, mid, limit=cap)
            venues.append(
                VenuePreview(
                    venue=state.venue,
                    tradable=state.health.tradable,
                    reason=state.health.reason.value,
                    best_bid=state.book.best_bid,
                    best_ask=state.book.best_ask,
                    expected_cost_bps=_as_bps(alone),
                    expected_cost=_cost(alone, new.quantity, mid),
                    allocated_qty=allocated.get(state.venue, Decimal(0)),
                )
            )
        total = decision.expected_cost_bps if decision and decision.allocations else None
        routed = sum(allocated.values(), Decimal(0))
        return PreviewResult(
            symbol=new.symbol,
            side=new.side,
            quantity=new.quantity,
            mid=mid,
            total_expected_cost_bps=_as_bps(total),
            total_expected_cost=_cost(total, routed, mid),
            venues=tuple(venues),
        )

    async def cancel(self, parent_id: str, reason: str = "cancelled by user") -> ParentOrder:
        """Stop a parent: no new children; working ones are cancelled on the next step."""
        return self._command(parent_id, lambda now: ParentCancelRequested(now, parent_id, reason))

    async def pause(self, parent_id: str, reason: str = "paused by user") -> ParentOrder:
        """Hold a parent: working children are cancelled, the schedule resumes on ``resume``."""
        return self._command(parent_id, lambda now: ParentPaused(now, parent_id, reason))

    async def resume(self, parent_id: str) -> ParentOrder:
        return self._command(parent_id, lambda now: ParentResumed(now, parent_id))

    # --- risk administration -------------------------------------------------------------

    async def set_trading_state(
        self, state: TradingState, *, venue: str | None, actor: str, reason: str
    ) -> AuditRecord:
        """Set the desk's (``venue`` None) or one venue's trading state; durable and audited.

        HALTED also trips the venue's kill switch in routing, so it receives nothing at all.
        """
        if venue is not None and venue not in self.venues:
            known = ", ".join(sorted(self.venues))
            raise InvalidOrder(
                f"unknown venue {venue!r}; configured venues: {known}", field="venue"
            )
        async with self._lock:
            before = self.risk.global_state if venue is None else self.risk.state_of(venue)
            record = AuditRecord(
                ts=self.clock.now(),
                actor=actor,
                action="trading_state",
                scope=venue or "global",
                before=json.dumps(before.value),
                after=json.dumps(state.value),
                reason=reason,
            )
            self.store.add_audit(record)
            self._apply_trading_state(state, venue)
            return record

    async def set_risk_limits(self, limits: RiskLimits, *, actor: str, reason: str) -> AuditRecord:
        """Replace the pre-trade limits; durable and audited (before and after are recorded)."""
        async with self._lock:
            record = AuditRecord(
                ts=self.clock.now(),
                actor=actor,
                action="risk_limits",
                scope="global",
                before=limits_to_json(self.risk.limits),
                after=limits_to_json(limits),
                reason=reason,
            )
            self.store.add_audit(record)
            self.risk.limits = limits
            return record

    def _apply_trading_state(self, state: TradingState, venue: str | None) -> None:
        self.risk.set_state(state, venue)
        for name in [venue] if venue is not None else list(self.venues):
            halted = state is TradingState.HALTED or self.risk.state_of(name) is TradingState.HALTED
            self.routing.set_kill_switch(name, halted)

    def _restore_risk_settings(self) -> None:
        """Re-apply the audited trading states and limits after a restart, oldest first."""
        for record in self.store.audit_log():
            if record.action == "trading_state":
                scope = None if record.scope == "global" else record.scope
                if scope is None or scope in self.venues:
                    self._apply_trading_state(TradingState(json.loads(record.after)), scope)
            elif record.action == "risk_limits":
                self.risk.limits = limits_from_json(record.after)

    # --- hedge coverage ------------------------------------------------------------------

    def _hedge_link(self) -> HedgeLink:
        if self._hedging is None:
            raise InvalidOrder(
                "hedging is not configured on this desk: add a [hedging] section to the settings",
                field="hedging",
            )
        return self._hedging

    async def set_market_phase(
        self, phase: MarketPhase, *, evidence: str, actor: str
    ) -> CoverageRecord:
        """Enter a market phase with its evidence; CONFIRMED starts the gated unwind, falling
        back from it pauses the unwind. Durable and audited as a coverage decision."""
        link = self._hedge_link()
        if not evidence.strip():
            raise InvalidOrder(
                "evidence is required: name the signals that put the market in this phase",
                field="evidence",
            )
        async with self._lock:
            now = self.clock.now()
            exposure = await self._exposure_or_raise(link, now)
            record = link.desk.set_phase(phase, evidence, exposure, now, actor)
            self.store.add_coverage(record)
            return record

    async def request_unwind(self, *, actor: str) -> CoverageRecord:
        """Ask for the next hedge unwind step now; refused (``Conflict`` with the risk code)
        unless the confirmation state holds and the plan's interval has passed."""
        link = self._hedge_link()
        async with self._lock:
            now = self.clock.now()
            exposure = await self._exposure_or_raise(link, now)
            denial = link.desk.check_unwind_request(exposure, now)
            kind = CoverageKind.UNWIND_REQUESTED if denial is None else CoverageKind.UNWIND_REFUSED
            detail = "next unwind step requested" if denial is None else denial.detail
            code = None if denial is None else denial.code
            record = link.desk.record(kind, exposure, now, detail, code=code, actor=actor)
            self.store.add_coverage(record)
            if denial is not None:
                raise Conflict(f"{denial.code.value}: {denial.detail}")
            link.desk.unwind_requested = True
            return record

    async def coverage_exposure(self) -> HedgeExposure | None:
        """The hedged asset's exposure now (``None`` without hedging or a spot price)."""
        if self._hedging is None:
            return None
        async with self._lock:
            return await self._hedge_exposure(self._hedging, self.clock.now())

    def funding(self) -> Mapping[str, FundingAccrual]:
        """Funding received (+) or paid (−) on the hedge, per venue."""
        return {} if self._hedging is None else dict(self._hedging.funding)

    async def _hedge_exposure(self, link: HedgeLink, now: datetime) -> HedgeExposure | None:
        books = await self._books(link.spot_symbol, link.spot_venues())
        mid = consensus_mid(list(books.values()))
        return None if mid is None else link.exposure(mid, now)

    async def _exposure_or_raise(self, link: HedgeLink, now: datetime) -> HedgeExposure:
        exposure = await self._hedge_exposure(link, now)
        if exposure is None:
            raise RetryableVenueError("spot", "no spot price to value the hedge against")
        return exposure

    async def _plan_hedges(self, now: datetime, changes: _Changes) -> None:
        """Keep the hedge legs at what the phase requires (see ``ems.hedging``): hedge orders
        become ordinary parents, submitted like a trader's."""
        link = self._hedging
        if link is None:
            return
        exposure = await self._hedge_exposure(link, now)
        if exposure is None:
            return
        plan = link.plan(exposure, self._parents, self._child_index.values(), now)
        changes.batch.coverage.extend(plan.records)
        for order in plan.orders:
            new = link.new_parent(order, now)
            try:
                parent = await self._new_parent(new, request_hash(new))
            except EmsError as exc:
                kind = CoverageKind.HEDGE_REFUSED
                detail = f"hedge {order.side} {order.qty} {order.symbol} not placed: {exc}"
                changes.batch.coverage.append(link.desk.record(kind, exposure, now, detail))
                continue
            # The hedge parent, its acceptance and the decision behind it are one transaction
            # (with the children planned for it this step).
            changes.parents[parent.id] = parent
            changes.batch.events.append((parent.id, ParentAccepted(now, parent.id)))
            self._track(parent, [])
            record = link.desk.record(
                CoverageKind.HEDGE_ORDER, exposure, now, order.reason, parent_id=parent.id
            )
            changes.batch.coverage.append(record)

    def _gate_spot(
        self,
        parent: ParentOrder,
        intent: SliceIntent,
        instrument: Instrument,
        now: datetime,
        changes: _Changes,
    ) -> SliceIntent | None:
        """Size a spot buy to what the filled hedge covers, or hold it (noted once)."""
        link = self._hedging
        if link is None:
            return intent
        working = link.working_spot_buys(self._parents, self._child_index.values())
        gated = link.gate(parent, intent, instrument, working, now)
        if gated.note is not None:
            changes.parent_event(parent, gated.note)
        if gated.record is not None:
            changes.batch.coverage.append(gated.record)
        return gated.intent

    @property
    def position_checks(self) -> Mapping[tuple[str, str], PositionCheck]:
        """The last reconciliation of our holdings with each venue, by (venue, item)."""
        return self.positions.checks

    async def check_positions(self) -> list[PositionCheck]:
        """Reconcile our holdings with every venue's balances and positions now."""
        async with self._lock:
            changes = _Changes()
            checks = await self._check_positions(self.clock.now(), changes)
            self._commit(changes)
            return checks

    async def _check_positions(self, now: datetime, changes: _Changes) -> list[PositionCheck]:
        checks, breaks = await self.positions.run(self.venues, self.risk.holdings, now)
        link = self._hedging
        for detail in breaks:
            log.error("position break: %s", detail)
            if link is None:
                changes.batch.coverage.append(plain_break_record(now, detail))
            else:
                changes.batch.coverage.append(link.break_record(now, detail))
        return checks

    async def amend(
        self,
        parent_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        end_at: datetime | None = None,
        clear_limit: bool = False,
    ) -> ParentOrder:
        """Change quantity, limit price or end time of a live parent.

        Working children are cancelled and the schedule re-plans from what is filled and
        working. Raises ``InvalidOrder`` naming the field, ``NotFound``, ``InvalidTransition``.
        """
        async with self._lock:
            parent = self._parents.get(parent_id) or self.store.get_parent(parent_id)
            if parent is None:
                raise NotFound(f"parent {parent_id} does not exist")
            if (parent.status, ParentAmended) not in PARENT_TRANSITIONS:
                raise InvalidTransition(parent.id, parent.status.value, ParentAmended.kind)
            nothing = quantity is None and limit_price is None and end_at is None
            if nothing and not clear_limit:
                raise InvalidOrder(
                    "nothing to amend: give quantity, limit_price or end_at", field="body"
                )
            instruments = [self.venues[v].instruments()[parent.symbol] for v in parent.venues]
            books = await self._books(parent.symbol, parent.venues)
            check_amendment(
                parent,
                instruments,
                list(books.values()),
                self.clock.now(),
                self.config.intake,
                quantity=quantity,
                limit_price=limit_price,
                end_at=ensure_utc(end_at) if end_at else None,
            )
            if quantity is not None:
                self._check_working_fits(parent, quantity)
            event = ParentAmended(
                self.clock.now(), parent_id, quantity, limit_price, end_at, clear_limit
            )
            amended = self._command(parent_id, lambda now: event)
            self._replan.add(parent_id)
            return amended

    # --- the engine ---------------------------------------------------------------------------

    async def recover(self) -> None:
        """Rebuild state from the store and reconcile every live child with its venue."""
        async with self._lock:
            await self._recover()

    async def step(self) -> None:
        """Run one scheduling step at ``clock.now()``."""
        async with self._lock:
            if self._needs_recovery:
                await self._recover()
            await self._step()

    async def _recover(self) -> None:
        self._parents.clear()
        self._children.clear()
        self._child_index.clear()
        for parent in self.store.active_parents():
            parent.last_fill_at = max((f.ts for f in self.store.fills(parent.id)), default=None)
            self._track(parent, self.store.children(parent.id))
        self.routing.load_fits()
        self._restore_risk_settings()
        self.risk.rebuild(self.store.fills_since(None), self._instruments(), self.clock.now())
        if self.hedge is not None:
            self.hedge.restore(self.store.coverage_log(limit=1))
        changes = _Changes()
        await self._reconcile(self._child_index.values(), self.clock.now(), changes)
        self._needs_recovery = False
        self._commit(changes)
        log.info("recovered %d active parents", len(self._parents))

    async def _step(self) -> None:
        now = self.clock.now()
        changes = _Changes()
        await self._collect_venue_updates(now, changes)
        for parent in list(self._parents.values()):
            self._advance_lifecycle(parent, now, changes)
        if self.positions.due(now):
            await self._check_positions(now, changes)
        self._commit(changes)

        changes = _Changes()
        cancels: list[ChildOrder] = []
        new_children: list[ChildOrder] = []
        await self._plan_hedges(now, changes)
        for parent in list(self._parents.values()):
            if parent.is_terminal:
                continue
            if parent.status.may_send:
                await self._plan_parent(parent, now, changes, cancels, new_children)
            else:
                cancels.extend(self._cancellable(parent.id))
        self._commit(changes)  # new children are durable before anything is sent

        changes = _Changes()
        for child in cancels:
            await self._send_cancel(child, now, changes)
        for child in new_children:
            await self._send(child, changes)
        self._commit(changes)
        self._forget_terminal()
        if self.routing.refit_due(now):
            symbols = {symbol for venue in self.venues.values() for symbol in venue.instruments()}
            self.routing.refit(symbols, now)

    async def _collect_venue_updates(self, now: datetime, changes: _Changes) -> None:
        for venue in self.venues.values():
            for state in venue.drain_updates():
                child = self._child_index.get(state.client_order_id)
                if child is not None and not child.is_terminal:
                    self._apply_child_events(
                        child, events_from_venue_state(child, state, now), changes
                    )
        in_flight = [c for c in self._child_index.values() if c.status.outcome_unknown]
        await self._reconcile(in_flight, now, changes)

    async def _reconcile(
        self, children: Iterable[ChildOrder], now: datetime, changes: _Changes
    ) -> None:
        """Bring each child to what its venue says about it (looked up by client order id)."""
        for child in list(children):
            venue = self.venues.get(child.venue)
            if venue is None or child.is_terminal:
                continue
            events = await reconcile_child(child, venue, now, self.config.in_flight_grace)
            self._apply_child_events(child, events, changes)

    def _advance_lifecycle(self, parent: ParentOrder, now: datetime, changes: _Changes) -> None:
        live = self.live_children(parent.id)
        if parent.is_terminal:
            return
        if parent.filled_qty == parent.quantity and not live:
            changes.parent_event(parent, ParentCompleted(now, parent.id, "filled"))
            return
        status = parent.status
        if status is ParentStatus.ACCEPTED and now >= parent.start_at:
            changes.parent_event(parent, ParentStarted(now, parent.id))
        startable = (ParentStatus.ACCEPTED, ParentStatus.WORKING, ParentStatus.PAUSED)
        if status in startable and now >= parent.end_at:
            changes.parent_event(parent, ParentExpiring(now, parent.id))
        if parent.status in (ParentStatus.CANCELLING, ParentStatus.EXPIRING) and not live:
            changes.parent_event(parent, ParentWoundDown(now, parent.id))

    async def _plan_parent(
        self,
        parent: ParentOrder,
        now: datetime,
        changes: _Changes,
        cancels: list[ChildOrder],
        new_children: list[ChildOrder],
    ) -> None:
        live = self.live_children(parent.id)
        states = await self.routing.venue_states(parent.symbol, parent.side, parent.venues, now)
        tradable = [s for s in states if s.health.tradable]
        if not tradable:
            self._explain_no_venue(parent, states, now, changes)
            return
        book = consolidated_book([s.book for s in tradable])
        instrument = strictest_instrument([s.instrument for s in tradable])
        view = _parent_view(parent, live)
        market = MarketView(
            book=book,
            instrument=instrument,
            volume_since_start=await self._volume_since(parent, now),
            volume_profile=self.volume_profile,
            native_iceberg=any(
                getattr(self.venues[s.venue], "native_iceberg", False) for s in tradable
            ),
        )
        try:
            algo = registry.get(parent.algo)
            params = algo.parse(parent.algo_params)
            plan = algo.plan(view, market, params, now)
            parent.record_tracking(
                algo.target(view, market, params, now), market.volume_since_start
            )
        except EmsError as exc:
            self._hold(parent, now, f"algorithm error: {exc}", changes)
            return
        if parent.id in self._replan:
            self._replan.discard(parent.id)
            cancels.extend(self._cancellable(parent.id))
            return
        cancels.extend(c for c in live if c.client_order_id in plan.cancel)
        if plan.hold_reason:
            if book.mid is not None:
                minimum = instrument.min_tradable_qty(book.mid)
                self._maybe_finish_dust(parent, view, minimum, now, changes)
            if not parent.is_terminal:
                self._hold(parent, now, plan.hold_reason, changes)
            return
        for intent in plan.slices:
            await self._route_slice(parent, intent, tradable, now, changes, new_children)

    async def _route_slice(
        self,
        parent: ParentOrder,
        intent: SliceIntent,
        tradable: list[VenueState],
        now: datetime,
        changes: _Changes,
        new_children: list[ChildOrder],
    ) -> None:
        """Split one slice across venues with the router; one child per allocation."""
        gated = self._gate_spot(parent, intent, tradable[0].instrument, now, changes)
        if gated is None:
            return
        intent = gated
        states = tradable
        max_share = self.config.routing.max_venue_share
        if intent.display_qty is not None:  # a native iceberg lives on one venue
            natives = [
                s for s in tradable if getattr(self.venues[s.venue], "native_iceberg", False)
            ]
            best = choose_venue(parent.side, {s.venue: s.book for s in natives})
            states = [s for s in natives if s.venue == best]
            max_share = Decimal(1)
        request = RouteRequest(parent.side, intent.qty, intent.price, intent.aggressive, max_share)
        decision = route(request, states)
        by_venue = {s.venue: s for s in states}
        made: list[ChildOrder] = []
        for allocation in decision.allocations:
            state = by_venue[allocation.venue]
            verdict = self.risk.check(
                state.instrument,
                parent.side,
                allocation.qty,
                allocation.price,
                state.book,
                decision.mid,
                now,
                reduce_only=parent.reduce_only,
                is_hedge=parent.role.is_hedge,
            )
            if isinstance(verdict, Denied):
                self._deny(parent, now, allocation.venue, verdict, changes)
                continue
            recent = await self._recent_volume(allocation.venue, parent.symbol, now)
            mid, x_depth, x_volume = self.routing.routing_context(
                state, parent.side, allocation.qty, recent
            )
            child = self._new_child(
                parent,
                allocation.venue,
                dataclasses.replace(intent, qty=allocation.qty, price=allocation.price),
                now,
                changes,
            )
            child.decision_mid = mid
            child.expected_cost_bps = Decimal(str(allocation.expected_cost_bps)).quantize(
                Decimal("0.000001")
            )
            child.x_depth, child.x_volume = x_depth, x_volume
            self.risk.order_sent(allocation.venue, now)
            made.append(child)
        new_children.extend(made)
        changes.batch.routes.append(
            self.routing.route_record(parent.id, now, request, decision, made)
        )
        if not made:
            notes = "; ".join(decision.notes) or "no venue could take the slice"
            self._hold(parent, now, f"slice not routed: {notes}", changes)

    async def _recent_volume(self, venue: str, symbol: str, now: datetime) -> Decimal:
        since = now - self.config.routing.recent_volume_window
        try:
            return await self.venues[venue].traded_volume(symbol, since)
        except VenueError:
            return Decimal(0)

    async def _volume_since(self, parent: ParentOrder, now: datetime) -> Decimal:
        """Market volume traded on the parent's venues since it started (unreachable: skipped)."""
        if now <= parent.start_at:
            return Decimal(0)
        total = Decimal(0)
        for name in parent.venues:
            try:
                total += await self.venues[name].traded_volume(parent.symbol, parent.start_at)
            except VenueError as exc:
                log.warning("no traded volume for %s on %s: %s", parent.symbol, name, exc)
        return total

    def _maybe_finish_dust(
        self,
        parent: ParentOrder,
        view: ParentView,
        minimum: Decimal,
        now: datetime,
        changes: _Changes,
    ) -> None:
        """A residual smaller than the venue's minimum, with nothing working, can never trade."""
        if view.working == 0 and 0 < view.unallocated < minimum and now >= parent.start_at:
            reason = f"residual {view.unallocated} is below the venue minimum {minimum}"
            changes.parent_event(parent, ParentCompleted(now, parent.id, reason))

    def _new_child(
        self, parent: ParentOrder, venue: str, intent: SliceIntent, now: datetime, changes: _Changes
    ) -> ChildOrder:
        seq = parent.next_child_seq
        child = ChildOrder(
            client_order_id=parent.next_client_order_id(),
            parent_id=parent.id,
            seq=seq,
            venue=venue,
            symbol=parent.symbol,
            side=parent.side,
            order_type=OrderType.LIMIT,
            qty=intent.qty,
            price=intent.price,
            time_in_force=intent.time_in_force,
            created_at=now,
            updated_at=now,
            reason=intent.reason,
            display_qty=intent.display_qty,
            reduce_only=parent.reduce_only,
        )
        self._children.setdefault(parent.id, {})[child.client_order_id] = child
        self._child_index[child.client_order_id] = child
        changes.children[child.client_order_id] = child
        changes.parents[parent.id] = parent
        self._holds.pop(parent.id, None)
        return child

    async def _send(self, child: ChildOrder, changes: _Changes) -> None:
        venue = self.venues[child.venue]
        request = OrderRequest(
            client_order_id=child.client_order_id,
            venue=child.venue,
            symbol=child.symbol,
            side=child.side,
            qty=child.qty,
            order_type=child.order_type,
            price=child.price,
            time_in_force=child.time_in_force,
            display_qty=child.display_qty,
            reduce_only=child.reduce_only,
        )
        now = self.clock.now()
        cid = child.client_order_id
        try:
            state = await venue.submit(request)
        except VenueRejected as exc:
            self.routing.succeeded(child.venue, now)
            self._apply_child_events(child, [ChildRejected(now, cid, str(exc))], changes)
        except RetryableVenueError as exc:
            self.routing.failed(child.venue, now)
            self._apply_child_events(child, [ChildRejected(now, cid, f"not sent: {exc}")], changes)
        except SubmitOutcomeUnknown:
            self.routing.failed(child.venue, now)
            log.warning("submit of %s timed out; in flight until reconciled", cid)
            self._apply_child_events(child, [ChildSubmitted(now, cid)], changes)
        else:
            self.routing.succeeded(child.venue, now)
            self._apply_child_events(child, [ChildSubmitted(now, cid)], changes)
            self._apply_child_events(child, events_from_venue_state(child, state, now), changes)

    async def _send_cancel(self, child: ChildOrder, now: datetime, changes: _Changes) -> None:
        try:
            await self.venues[child.venue].cancel(child.client_order_id, child.symbol)
        except OrderNotFoundAtVenue:
            log.warning("cancel of %s: unknown at the venue; reconciling", child.client_order_id)
            events = await reconcile_child(
                child, self.venues[child.venue], now, self.config.in_flight_grace
            )
            self._apply_child_events(child, events, changes)
            return
        except VenueError as exc:
            log.warning("cancel of %s failed, will retry: %s", child.client_order_id, exc)
            return
        if not child.is_terminal and child.status is not ChildStatus.PENDING_CANCEL:
            self._apply_child_events(
                child, [ChildCancelRequested(now, child.client_order_id)], changes
            )

    # --- helpers ------------------------------------------------------------------------------

    def _apply_child_events(
        self, child: ChildOrder, events: Iterable[ChildEvent], changes: _Changes
    ) -> None:
        parent = self._parents.get(child.parent_id)
        for event in events:
            try:
                applied = child.apply(event)
            except EmsError as exc:
                # A venue report that contradicts our books (e.g. an overfill) must not stop
                # the engine: record it against the parent for a human to look at.
                log.error("cannot apply %s to %s: %s", event.kind, child.client_order_id, exc)
                if parent is not None:
                    changes.parent_event(
                        parent, ParentNote(event.ts, parent.id, "integrity", str(exc))
                    )
                continue
            if not applied:
                continue
            changes.children[child.client_order_id] = child
            changes.batch.events.append((child.parent_id, event))
            if child.is_terminal:
                point = RoutingDesk.impact_point(child, event.ts)
                if point is not None:
                    changes.batch.impact_points.append(point)
            if isinstance(event, ChildFilled):
                instrument = self.venues[child.venue].instruments().get(child.symbol)
                if instrument is not None:
                    self.risk.on_fill(event.fill, instrument)
            if isinstance(event, ChildFilled) and parent is not None:
                changes.batch.fills.append((parent.id, event.fill))
                self._roll_up(parent, event, changes)
                if self._hedging is not None:
                    record = self._hedging.fill_record(parent, child, event)
                    if record is not None:
                        changes.batch.coverage.append(record)

    def _roll_up(self, parent: ParentOrder, event: ChildFilled, changes: _Changes) -> None:
        """Add a child fill to its parent; a fill the parent cannot absorb is kept and flagged."""
        try:
            changes.parent_event(
                parent,
                ParentFillApplied(
                    ts=event.ts,
                    parent_id=parent.id,
                    trade_id=event.trade_id,
                    venue=event.venue,
                    price=event.price,
                    qty=event.qty,
                    fee=event.fee,
                    liquidity=event.liquidity,
                ),
            )
        except EmsError as exc:
            log.error("fill %s of %s: %s", event.trade_id, parent.id, exc)
            changes.parent_event(parent, ParentNote(event.ts, parent.id, "integrity", str(exc)))

    def _check_working_fits(self, parent: ParentOrder, quantity: Decimal) -> None:
        """Fills cannot be undone: children still working could overfill a smaller quantity
        before their cancels are confirmed, so filled + working must fit it."""
        working = sum((c.working_qty for c in self.live_children(parent.id)), Decimal(0))
        if quantity < parent.filled_qty + working:
            raise InvalidOrder(
                f"quantity {quantity} is below the {parent.filled_qty} already filled plus the "
                f"{working} still working at the venues; amend to at least "
                f"{parent.filled_qty + working}, or pause the order first (its working children "
                "are then cancelled) and amend once they are done",
                field="quantity",
            )

    def _cancellable(self, parent_id: str) -> list[ChildOrder]:
        return [
            c
            for c in self.live_children(parent_id)
            if not c.status.outcome_unknown and c.status is not ChildStatus.PENDING_CANCEL
        ]

    def _explain_no_venue(
        self, parent: ParentOrder, states: list[VenueState], now: datetime, changes: _Changes
    ) -> None:
        """Say why nothing can be sent: a halt with its risk code, else each venue's health."""
        halted = [s.venue for s in states if self.risk.state_of(s.venue) is TradingState.HALTED]
        if self.risk.global_state is TradingState.HALTED:
            verdict = Denied(DenyCode.GLOBAL_HALTED, "the desk is halted: nothing is sent")
            self._deny(parent, now, "desk", verdict, changes)
        elif states and len(halted) == len(states):
            verdict = Denied(DenyCode.VENUE_HALTED, "halted: nothing is sent there")
            self._deny(parent, now, ", ".join(halted), verdict, changes)
        else:
            why = "; ".join(f"{s.venue} {s.health.reason.value}" for s in states)
            self._hold(parent, now, f"no venue can take orders ({why or 'none answered'})", changes)

    def _deny(
        self, parent: ParentOrder, now: datetime, venue: str, verdict: Denied, changes: _Changes
    ) -> None:
        """Record a risk denial against the parent with its reason code (once per reason)."""
        detail = f"{venue}: {verdict.detail}"
        if self._holds.get(parent.id) == detail:
            return
        self._holds[parent.id] = detail
        changes.parent_event(parent, ParentNote(now, parent.id, verdict.code.value, detail))

    def _instruments(self) -> dict[tuple[str, str], Instrument]:
        return {
            (name, symbol): instrument
            for name, venue in self.venues.items()
            for symbol, instrument in venue.instruments().items()
        }

    def _hold(self, parent: ParentOrder, now: datetime, reason: str, changes: _Changes) -> None:
        """Record why a parent sends nothing, once per distinct reason."""
        if self._holds.get(parent.id) == reason:
            return
        self._holds[parent.id] = reason
        changes.parent_event(parent, ParentNote(now, parent.id, "held", reason))

    async def _books(self, symbol: str, venue_names: Iterable[str]) -> dict[str, OrderBook]:
        books: dict[str, OrderBook] = {}
        for name in venue_names:
            try:
                books[name] = await self.venues[name].order_book(symbol, self.config.book_depth)
            except VenueError as exc:
                log.warning("no book for %s on %s: %s", symbol, name, exc)
        return books

    def _command(self, parent_id: str, make: Callable[[datetime], ParentEvent]) -> ParentOrder:
        parent = self._parents.get(parent_id) or self.store.get_parent(parent_id)
        if parent is None:
            raise NotFound(f"parent {parent_id} does not exist")
        changes = _Changes()
        changes.parent_event(parent, make(self.clock.now()))
        self._commit(changes)
        return parent

    def _same_request(self, existing: ParentOrder, digest: str) -> ParentOrder:
        if existing.request_hash != digest:
            raise Conflict(
                f"client_id {existing.client_id!r} was already used for parent {existing.id} "
                "with a different request"
            )
        return existing

    def _track(self, parent: ParentOrder, children: Iterable[ChildOrder]) -> None:
        self._parents[parent.id] = parent
        kids = self._children.setdefault(parent.id, {})
        for child in children:
            kids[child.client_order_id] = child
            self._child_index[child.client_order_id] = child

    def _forget_terminal(self) -> None:
        for parent_id in [p.id for p in self._parents.values() if p.is_terminal]:
            if self.live_children(parent_id):
                continue
            del self._parents[parent_id]
            self._holds.pop(parent_id, None)
            for cid in self._children.pop(parent_id, {}):
                self._child_index.pop(cid, None)

    def _commit(self, changes: _Changes) -> None:
        batch = changes.to_batch()
        if not batch:
            return
        try:
            self.store.commit(batch)
        except Exception:
            self._needs_recovery = True
            log.exception("store write failed; state will be rebuilt from the store")
            raise


def _parent_view(parent: ParentOrder, live: list[ChildOrder]) -> ParentView:
    return ParentView(
        side=parent.side,
        quantity=parent.quantity,
        filled=parent.filled_qty,
        working=sum((c.working_qty for c in live), Decimal(0)),
        start_at=parent.start_at,
        end_at=parent.end_at,
        limit_price=parent.limit_price,
        children=tuple(_working_view(c) for c in live),
        last_fill_at=parent.last_fill_at,
    )


def _working_view(child: ChildOrder) -> WorkingChild:
    return WorkingChild(
        client_order_id=child.client_order_id,
        price=child.price,
        working_qty=child.working_qty,
        time_in_force=child.time_in_force,
        created_at=child.created_at,
        cancel_pending=child.status is ChildStatus.PENDING_CANCEL,
    )


def _as_bps(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.0001"))


def _cost(bps: float | None, qty: Decimal, mid: Decimal) -> Decimal | None:
    """A cost in bps of ``mid`` as an amount of quote currency for ``qty``."""
    if bps is None:
        return None
    return (Decimal(str(bps)) * qty * mid / 10_000).quantize(Decimal("0.01"))
