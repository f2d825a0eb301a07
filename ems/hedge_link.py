"""The manager's link to the hedge desk: what it measures, gates and records for hedging.

:class:`ems.hedging.HedgeDesk` decides; this module feeds it from the manager's live state (the
holdings of the risk desk, the parents and children in flight, the venues' listings and funding
reports) and turns its answers into things the manager persists: hedge parents to submit,
notes on held spot parents and coverage decisions. No I/O here: the manager fetches books and
submits parents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from algos.base import SliceIntent
from ems.domain import ZERO, Instrument, InstrumentKind, Side
from ems.events import ChildFilled, ParentNote
from ems.hedging import HedgeDesk, HedgeExposure, HedgeOrder, HedgePlan, PendingHedge
from ems.intake import NewParent
from ems.orders import ChildOrder, ParentOrder, ParentRole
from ems.ports import CoverageKind, CoverageRecord, VenuePort
from ems.risk_desk import RiskDesk
from risk.basis import FundingAccrual, annualised_funding


@dataclass(frozen=True, slots=True)
class GateResult:
    """A spot slice after the coverage gate: the slice to route (``None``: held), the note to
    put on the parent and the decision to store, when either is due."""

    intent: SliceIntent | None
    note: ParentNote | None = None
    record: CoverageRecord | None = None


class HedgeLink:
    """Hedging as the manager sees it: one per manager with a hedge desk."""

    def __init__(self, desk: HedgeDesk, venues: Mapping[str, VenuePort], risk: RiskDesk) -> None:
        self.desk = desk
        self.venues = venues
        self.risk = risk
        self.funding: dict[str, FundingAccrual] = {}
        self._hedge_seq = 0
        self._held: set[str] = set()  # spot parents held for coverage

    @property
    def spot_symbol(self) -> str:
        return self.desk.config.spot_symbol

    def spot_venues(self) -> list[str]:
        """The venues whose books price the hedged spot."""
        return [n for n, v in self.venues.items() if self.spot_symbol in v.instruments()]

    def exposure(self, spot_price: Decimal, now: datetime) -> HedgeExposure:
        return self.desk.exposure(self.risk.holdings, spot_price, now)

    def working_spot_buys(
        self, parents: Mapping[str, ParentOrder], children: Iterable[ChildOrder]
    ) -> Decimal:
        """Spot of the hedged asset bought by live trade children (it may still fill)."""
        total = ZERO
        for child in children:
            if child.is_terminal or child.side is not Side.BUY:
                continue
            parent = parents.get(child.parent_id)
            if parent is None or parent.role is not ParentRole.TRADE:
                continue
            instrument = self.venues[child.venue].instruments().get(child.symbol)
            if instrument is not None and self._is_hedged_spot(instrument):
                total += child.working_qty
        return total

    def _is_hedged_spot(self, instrument: Instrument) -> bool:
        return instrument.kind is InstrumentKind.SPOT and instrument.base == self.desk.config.asset

    def plan(
        self,
        exposure: HedgeExposure,
        parents: Mapping[str, ParentOrder],
        children: Iterable[ChildOrder],
        now: datetime,
    ) -> HedgePlan:
        """This step's hedge orders and decisions (see ``HedgeDesk.plan``)."""
        desk = self.desk
        self._accrue_funding()
        active = {p.id for p in parents.values() if not p.is_terminal}
        desk.forget_demand(active)
        self._held &= active
        committed = exposure.spot_qty + self.working_spot_buys(parents, children) + desk.demand
        pending = [
            PendingHedge(
                parent.id,
                parent.role,
                self.venues[parent.venues[0]].instruments()[parent.symbol],
                parent.side,
                parent.remaining_qty,
                parent.reduce_only,
            )
            for parent in parents.values()
            if parent.role.is_hedge and not parent.is_terminal
        ]
        symbol = desk.config.hedge_symbol
        hedge_venues = {
            name: venue.instruments()[symbol]
            for name, venue in self.venues.items()
            if symbol in venue.instruments()
        }
        listing = [
            instrument
            for venue in self.venues.values()
            for instrument in venue.instruments().values()
            if instrument.kind is InstrumentKind.OPTION and instrument.base == desk.config.asset
        ]
        return desk.plan(exposure, committed, pending, hedge_venues, listing, now)

    def new_parent(self, order: HedgeOrder, now: datetime) -> NewParent:
        """The parent request of a hedge order (algorithm ``hedge``, unique client id)."""
        config = self.desk.config
        self._hedge_seq += 1
        params = config.put_params if order.role is ParentRole.PUT_HEDGE else config.basis_params
        return NewParent(
            client_id=f"{order.role.value}-{now:%Y%m%dT%H%M%S%f}-{self._hedge_seq}",
            symbol=order.symbol,
            side=order.side,
            quantity=order.qty,
            algo="hedge",
            end_at=now + config.hedge_window,
            venues=order.venues,
            algo_params=dict(params),
            role=order.role,
            reduce_only=order.reduce_only,
        )

    def _accrue_funding(self) -> None:
        """Funding settled on the hedge venues since the last step, from their reports."""
        for name, venue in self.venues.items():
            payments = getattr(venue, "funding", None)
            if self.desk.config.hedge_symbol not in venue.instruments():
                continue
            if not isinstance(payments, list):
                continue
            accrual = self.funding.get(name, FundingAccrual())
            for payment in payments:
                if accrual.last_at is None or payment.at > accrual.last_at:
                    accrual = accrual.accrue(
                        payment.position, payment.mark_price, payment.rate, payment.at
                    )
            self.funding[name] = accrual

    def gate(
        self,
        parent: ParentOrder,
        intent: SliceIntent,
        instrument: Instrument,
        working_spot_buys: Decimal,
        now: datetime,
    ) -> GateResult:
        """Size a spot buy of the hedged asset to what the filled hedge covers (or hold it).

        The parent is noted and the decision recorded once when it is first held, and once
        when it resumes.
        """
        if (
            parent.role is not ParentRole.TRADE
            or parent.side is not Side.BUY
            or not self._is_hedged_spot(instrument)
        ):
            return GateResult(intent)
        exposure = self.exposure(intent.price, now)
        allowed, denial = self.desk.gate_spot_buy(
            parent.id, exposure, working_spot_buys, intent.qty, instrument, intent.price
        )
        if denial is not None:
            if parent.id in self._held:
                return GateResult(None)
            self._held.add(parent.id)
            record = self.desk.record(
                CoverageKind.SPOT_HELD,
                exposure,
                now,
                denial.detail,
                code=denial.code,
                parent_id=parent.id,
            )
            note = ParentNote(now, parent.id, denial.code.value, denial.detail)
            return GateResult(None, note, record)
        resized = dataclasses.replace(intent, qty=allowed)
        if parent.id not in self._held:
            return GateResult(resized)
        self._held.discard(parent.id)
        detail = f"hedge caught up: spot buy of {allowed} {instrument.base} resumes"
        record = self.desk.record(
            CoverageKind.SPOT_RESUMED, exposure, now, detail, parent_id=parent.id
        )
        return GateResult(resized, record=record)

    def fill_record(
        self, parent: ParentOrder, child: ChildOrder, event: ChildFilled
    ) -> CoverageRecord | None:
        """The basis captured by one fill of the basis hedge."""
        if parent.role is not ParentRole.BASIS_HEDGE:
            return None
        venue = self.venues[child.venue]
        instrument = venue.instruments().get(child.symbol)
        if instrument is None:
            return None
        spot = self.desk.last_spot_price
        exposure = self.exposure(spot, event.ts) if spot else None
        rate = getattr(venue, "funding_rate", None)
        annual = annualised_funding(rate, 8) if isinstance(rate, Decimal) else None
        return self.desk.hedge_fill_record(
            instrument, event.price, event.qty, event.side, exposure, event.ts, parent.id, annual
        )

    def break_record(self, now: datetime, detail: str) -> CoverageRecord:
        """A position break as a coverage decision, with the exposure when a price is known."""
        spot = self.desk.last_spot_price
        if spot is not None:
            return self.desk.record(
                CoverageKind.POSITION_BREAK, self.exposure(spot, now), now, detail
            )
        return plain_break_record(now, detail)


def plain_break_record(now: datetime, detail: str) -> CoverageRecord:
    """A position break on a desk without hedging (no phase, no exposure)."""
    return CoverageRecord(
        ts=now,
        kind=CoverageKind.POSITION_BREAK,
        phase="",
        unwind_status="",
        spot_qty=ZERO,
        perp_short_qty=ZERO,
        put_cover_qty=ZERO,
        detail=detail,
        state="{}",
    )
