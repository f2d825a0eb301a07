"""The manager's routing desk: what the pure router needs, gathered from venues and the store.

It keeps, per venue, a health state fed by the outcome of every venue call; per venue and
symbol, the current impact fit and the passive fill probability learned from our own children.
It builds the ``VenueState`` of each venue for a slice, turns finished children into impact
points, and refits the impact curves on a schedule.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from ems.domain import ZERO, Instrument, InstrumentKind, OrderBook, Side
from ems.errors import VenueError
from ems.orders import ChildOrder
from ems.ports import ImpactFitRecord, ImpactPoint, RouteRecord, StorePort, VenuePort
from routers import health as health_model
from routers.impact import fill_probability, fit_power_law, prior_fit, relative_size
from routers.types import ImpactFit, RouteDecision, RouteRequest, VenueState

log = logging.getLogger(__name__)

BPS = Decimal(10_000)
RATIO_PLACES = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    max_venue_share: Decimal = Decimal(1)
    book_depth: int = 50
    refit_interval: timedelta = timedelta(minutes=1)
    fit_window_points: int = 500
    recent_volume_window: timedelta = timedelta(minutes=1)
    health: health_model.HealthConfig = dataclasses.field(default_factory=health_model.HealthConfig)


class RoutingDesk:
    """Per-venue health, learned impact fits and fill probabilities; venue states for a slice."""

    def __init__(
        self, venues: Mapping[str, VenuePort], store: StorePort, config: RoutingConfig
    ) -> None:
        self.venues = venues
        self.store = store
        self.config = config
        self._health = {name: health_model.VenueHealthState(venue=name) for name in venues}
        self._fits: dict[tuple[str, str], ImpactFit] = {}
        self._fill_probability: dict[tuple[str, str], float] = {}
        self._last_refit: datetime | None = None

    # --- health --------------------------------------------------------------------------

    def succeeded(self, venue: str, now: datetime) -> None:
        self._health[venue] = health_model.record_success(
            self._health[venue], now, self.config.health
        )

    def failed(self, venue: str, now: datetime) -> None:
        self._health[venue] = health_model.record_error(
            self._health[venue], now, self.config.health
        )

    def set_kill_switch(self, venue: str, on: bool) -> None:
        """Stop (or allow again) new orders to one venue."""
        self._health[venue] = health_model.set_kill_switch(self._health[venue], on)

    def health(
        self, venue: str, book_ts: datetime | None, now: datetime
    ) -> health_model.VenueHealth:
        return health_model.assess(
            self._health[venue], book_ts, now, self.config.health, venue=venue
        )

    # --- venue states ----------------------------------------------------------------------

    async def venue_states(
        self, symbol: str, side: Side, venue_names: Iterable[str], now: datetime
    ) -> list[VenueState]:
        """The state of every listed venue that answered with a book."""
        states: list[VenueState] = []
        for name in venue_names:
            venue = self.venues[name]
            try:
                book = await venue.order_book(symbol, self.config.book_depth)
                balances = await venue.balances()
            except VenueError as exc:
                log.warning("%s unavailable for routing: %s", name, exc)
                self.failed(name, now)
                continue
            self.succeeded(name, now)
            instrument = venue.instruments()[symbol]
            states.append(
                VenueState(
                    venue=name,
                    book=book,
                    instrument=instrument,
                    health=self.health(name, book.ts, now),
                    available_qty=available_qty(side, book, instrument, balances),
                    impact=self._fits.get((name, symbol)) or prior_fit(name, symbol, now),
                    fill_probability=self._fill_probability.get((name, symbol), 0.5),
                )
            )
        return states

    # --- records -----------------------------------------------------------------------------

    def route_record(
        self,
        parent_id: str,
        now: datetime,
        request: RouteRequest,
        decision: RouteDecision,
        children: Sequence[ChildOrder],
    ) -> RouteRecord:
        """The stored form of a routing decision with its inputs and the children it made."""
        quotes = tuple(
            {
                "venue": q.venue,
                "best_bid": _text(q.best_bid),
                "best_ask": _text(q.best_ask),
                "tradable": str(q.tradable).lower(),
                "reason": q.reason,
                "expected_cost_bps": _text(q.expected_cost_bps),
                "capacity": str(q.capacity),
            }
            for q in decision.quotes
        )
        allocations = tuple(
            {
                "venue": child.venue,
                "client_order_id": child.client_order_id,
                "qty": str(child.qty),
                "price": _text(child.price),
                "expected_cost_bps": _text(child.expected_cost_bps),
            }
            for child in children
        )
        return RouteRecord(
            parent_id=parent_id,
            ts=now,
            side=request.side,
            qty=request.qty,
            price=request.price,
            aggressive=request.aggressive,
            mid=decision.mid,
            expected_cost_bps=_bps(decision.expected_cost_bps),
            quotes=quotes,
            allocations=allocations,
            notes=decision.notes,
        )

    def routing_context(
        self, state: VenueState, side: Side, qty: Decimal, recent_volume: Decimal
    ) -> tuple[Decimal | None, Decimal, Decimal]:
        """Decision mid, size relative to displayed depth and to recent market volume."""
        x_depth = relative_size(qty, state.book, side)
        x_volume = qty / recent_volume if recent_volume > 0 else ZERO
        return (
            state.book.mid,
            Decimal(str(x_depth)).quantize(RATIO_PLACES),
            x_volume.quantize(RATIO_PLACES),
        )

    @staticmethod
    def impact_point(child: ChildOrder, now: datetime) -> ImpactPoint | None:
        """The realised cost of a finished child that was routed (None if it was not)."""
        if child.decision_mid is None or child.expected_cost_bps is None:
            return None
        realised = fee_bps = ZERO
        if child.filled_qty > 0:
            assert child.avg_price is not None
            move = (child.avg_price - child.decision_mid) / child.decision_mid
            realised = (child.side.sign * move * BPS).quantize(RATIO_PLACES)
            fee_bps = (child.fees / child.filled_notional * BPS).quantize(RATIO_PLACES)
        return ImpactPoint(
            client_order_id=child.client_order_id,
            parent_id=child.parent_id,
            venue=child.venue,
            symbol=child.symbol,
            side=child.side,
            ts=child.created_at,
            qty=child.qty,
            filled_qty=child.filled_qty,
            aggressive=child.time_in_force.value == "ioc",
            decision_mid=child.decision_mid,
            x_depth=child.x_depth or ZERO,
            x_volume=child.x_volume or ZERO,
            expected_cost_bps=child.expected_cost_bps,
            realised_cost_bps=realised,
            fee_bps=fee_bps,
        )

    # --- learning ------------------------------------------------------------------------

    def load_fits(self) -> None:
        """Start from the stored fits (after a restart)."""
        for record in self.store.impact_fits():
            self._fits[(record.venue, record.symbol)] = fit_from_record(record)

    def refit_due(self, now: datetime) -> bool:
        return self._last_refit is None or now - self._last_refit >= self.config.refit_interval

    def refit(self, symbols: Iterable[str], now: datetime) -> list[ImpactFitRecord]:
        """Refit every venue's impact curve and fill probability from recorded points."""
        self._last_refit = now
        saved: list[ImpactFitRecord] = []
        for symbol in set(symbols):
            for venue in self.venues:
                points = self.store.impact_points(
                    venue=venue, symbol=symbol, limit=self.config.fit_window_points
                )
                if not points:
                    continue
                taken = [
                    (float(p.x_depth), float(p.realised_cost_bps))
                    for p in points
                    if p.aggressive and p.filled_qty > 0
                ]
                passive = [p for p in points if not p.aggressive]
                posted = sum((p.qty for p in passive), ZERO)
                filled = sum((p.filled_qty for p in passive), ZERO)
                self._fill_probability[(venue, symbol)] = fill_probability(
                    float(posted), float(filled)
                )
                if not taken:  # nothing learned about impact yet: the prior stays in force
                    continue
                fit = fit_power_law(taken, venue, symbol, now)
                self._fits[(venue, symbol)] = fit
                record = _record_from_fit(fit)
                self.store.save_impact_fit(record)
                saved.append(record)
        return saved


def available_qty(
    side: Side, book: OrderBook, instrument: Instrument, balances: Mapping[str, object]
) -> Decimal:
    """How much this venue's balances let us trade on ``side`` (base units, lot-rounded).

    Spot buys spend the quote and sells the base asset; futures either way post margin in the
    settle asset (counted at 1× leverage, so capacity never overstates it); options bought spend
    the settle asset (the quote on linear options, BTC on Deribit's inverse ones, whose premium
    is quoted in BTC), options sold can only be ones held, which the venue itself enforces.
    """
    derivative = instrument.kind in (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)
    if side is Side.BUY or derivative:
        contract = derivative or instrument.kind is InstrumentKind.OPTION
        asset = (instrument.settle or instrument.quote) if contract else instrument.quote
        balance = balances.get(asset)
        price = (book.best_ask if side is Side.BUY else book.best_bid) or book.mid
        if balance is None or not price:
            return ZERO
        free = getattr(balance, "free", ZERO)
        unit = price * instrument.contract_size * (1 + instrument.taker_fee) * Decimal("1.01")
        return instrument.round_qty(free / unit)
    if instrument.kind is InstrumentKind.OPTION:
        return instrument.round_qty(sum((level.qty for level in book.bids), ZERO))
    balance = balances.get(instrument.base)
    return instrument.round_qty(getattr(balance, "free", ZERO)) if balance is not None else ZERO


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _bps(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(RATIO_PLACES)


def _record_from_fit(fit: ImpactFit) -> ImpactFitRecord:
    def dec(x: float) -> Decimal:
        return Decimal(str(x)).quantize(Decimal("0.000000001"))

    return ImpactFitRecord(
        venue=fit.venue,
        symbol=fit.symbol,
        a=dec(fit.a),
        b=dec(fit.b),
        a_low=dec(fit.a_low),
        a_high=dec(fit.a_high),
        b_low=dec(fit.b_low),
        b_high=dec(fit.b_high),
        n=fit.n,
        fitted_at=fit.fitted_at,
    )


def fit_from_record(record: ImpactFitRecord) -> ImpactFit:
    """The pure fit a stored record describes."""
    return ImpactFit(
        venue=record.venue,
        symbol=record.symbol,
        a=float(record.a),
        b=float(record.b),
        a_low=float(record.a_low),
        a_high=float(record.a_high),
        b_low=float(record.b_low),
        b_high=float(record.b_high),
        n=record.n,
        fitted_at=record.fitted_at,
    )
