"""The hedge desk: keeps the basis short and the protective puts at what the market phase requires.

It is the manager's bookkeeper and planner for the hedge invariant (DESIGN.md §3): spot
accumulation never runs ahead of the hedge the current phase requires. Every step the manager
gives it the holdings (from our own fills), the spot price and the hedge parents still working;
it answers with hedge orders to place (ordinary parents with the ``hedge`` algorithm, routed like
any other, reduce-only when they reduce) and with coverage decisions to store.

**The hedge leads.** Coverage is measured on *filled* quantities, so a hedge that only followed
spot fills would deadlock the first buy (coverage of the first lot is 0). The desk therefore
hedges the *committed* spot: filled spot + spot buys working at the venues + spot slices held
for coverage (the demand). Spot children are sized by :func:`risk.coverage.max_spot_buy` against
the filled hedge, so after any fill ``filled hedge ≥ phase minimum × filled spot``.

**Unwinding.** A hedge above its target is reduced only through the confirmation-gated unwind
(:mod:`risk.unwind`): in steps, at least the plan's interval apart, paused when the phase falls
back from CONFIRMED. Puts due for a roll are replaced and sold without waiting (cover is kept).

Pure apart from its own state: no I/O, time and market data are arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ems.domain import (
    ZERO,
    Instrument,
    InstrumentKind,
    OptionRight,
    Rounding,
    Side,
    round_to_step,
    strictest_instrument,
)
from ems.orders import ParentRole
from ems.ports import CoverageKind, CoverageRecord
from risk.basis import BPS, annualised_basis
from risk.coverage import (
    CoveragePolicy,
    CoverageRequirement,
    Exposure,
    basis_coverage,
    coverage_shortfall,
    drift_exceeded,
    max_spot_buy,
    put_coverage,
)
from risk.greeks import OptionGreeks
from risk.put_policy import PutPolicy, choose_put, needs_roll, put_delta
from risk.types import Denied, DenyCode, MarketPhase
from risk.unwind import (
    ConfirmationChanged,
    StepDue,
    UnwindPlan,
    UnwindState,
    UnwindStatus,
    apply,
    next_step,
)
from risk.vol_surface import VolSurface

_QTY = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    """What the desk hedges and how (built from the ``[hedging]`` settings).

    - ``asset``: the base asset accumulated (``BTC``); ``spot_symbol`` prices it.
    - ``hedge_symbol``: the perpetual or dated future shorted against it, on every venue listing it.
    - ``policy``: coverage per market phase; ``unwind``: the confirmation-gated release plan.
    - ``puts``: the put policy, or ``None`` for no put leg (its ratios then must be 0).
    - ``auto_unwind``: take unwind steps as soon as allowed; when false only on request.
    - ``hedge_window``: the end of each hedge parent (it is worked at once, the window only
      bounds how long a blocked hedge stays live).
    - ``basis_params`` / ``put_params``: pricing keys for the hedge algorithm on each leg.
    """

    asset: str
    spot_symbol: str
    hedge_symbol: str
    policy: CoveragePolicy
    unwind: UnwindPlan = field(default_factory=UnwindPlan)
    puts: PutPolicy | None = None
    initial_phase: MarketPhase = MarketPhase.STRESS
    auto_unwind: bool = True
    hedge_window: timedelta = timedelta(minutes=10)
    basis_params: Mapping[str, Any] = field(default_factory=dict)
    put_params: Mapping[str, Any] = field(
        default_factory=lambda: {"max_gap_bps": 2000, "max_depth_bps": 3000}
    )

    def __post_init__(self) -> None:
        if self.puts is None:
            needing = [
                phase.value
                for phase, req in self.policy.requirements.items()
                if req.min_put_ratio > 0 or req.target_put_ratio > 0
            ]
            if needing:
                raise ValueError(
                    f"the coverage policy asks for put cover in {', '.join(needing)} but no put "
                    "policy is configured: add [hedging.puts] or set the put ratios to 0"
                )


@dataclass(frozen=True, slots=True)
class HeldPut:
    """A protective put held, with its cover and greeks at the current spot."""

    instrument: Instrument
    contracts: Decimal
    rolling: bool
    cover_qty: Decimal  # base units it covers, by the policy's mode
    greeks: OptionGreeks | None


@dataclass(frozen=True, slots=True)
class HedgeExposure:
    """The desk's position in the hedged asset, by leg, in base units."""

    spot_qty: Decimal
    perp_short_qty: Decimal
    put_cover_qty: Decimal
    puts: tuple[HeldPut, ...]
    spot_price: Decimal

    def as_exposure(self, spot_qty: Decimal | None = None) -> Exposure:
        spot = self.spot_qty if spot_qty is None else spot_qty
        return Exposure(max(spot, ZERO), self.perp_short_qty, self.put_cover_qty, self.spot_price)


@dataclass(frozen=True, slots=True)
class PendingHedge:
    """A hedge parent still working: its role, instrument, side and quantity not yet filled."""

    parent_id: str
    role: ParentRole
    instrument: Instrument
    side: Side
    remaining: Decimal
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class HedgeOrder:
    """A hedge parent the desk wants placed."""

    role: ParentRole
    symbol: str
    venues: tuple[str, ...]
    side: Side
    qty: Decimal
    reduce_only: bool
    reason: str


@dataclass(slots=True)
class HedgePlan:
    orders: list[HedgeOrder] = field(default_factory=list)
    records: list[CoverageRecord] = field(default_factory=list)


class HedgeDesk:
    """The hedge state (phase, unwind progress, held demand) and the per-step hedge plan."""

    def __init__(self, config: HedgeConfig, surface: VolSurface | None = None) -> None:
        self.config = config
        self.surface = surface
        self.phase = config.initial_phase
        self.unwind = UnwindState()
        self.unwind_start_basis: Decimal | None = None
        self.unwind_start_puts: Decimal | None = None
        self.unwind_requested = False
        self.drift_since: datetime | None = None
        self.last_basis_bps: Decimal | None = None
        self._demand: dict[str, Decimal] = {}  # spot parent id -> quantity held for coverage
        self._refusal: str | None = None
        self.last_spot_price: Decimal | None = None

    # --- durable state ----------------------------------------------------------------------

    @property
    def confirmed(self) -> bool:
        return self.unwind.confirmed

    def state_json(self) -> str:
        """What must survive a restart, as JSON (stored with every coverage decision)."""
        u = self.unwind
        return json.dumps(
            {
                "phase": self.phase.value,
                "status": u.status.value,
                "confirmed": u.confirmed,
                "steps_done": u.steps_done,
                "last_step_at": u.last_step_at.isoformat() if u.last_step_at else None,
                "updated_at": u.updated_at.isoformat() if u.updated_at else None,
                "evidence": u.evidence,
                "start_basis": _text(self.unwind_start_basis),
                "start_puts": _text(self.unwind_start_puts),
            },
            sort_keys=True,
        )

    def restore(self, records: Sequence[CoverageRecord]) -> None:
        """Take the state of the newest stored decision (nothing stored: the initial state)."""
        if not records:
            return
        raw = json.loads(records[-1].state)
        self.phase = MarketPhase(raw["phase"])
        self.unwind = UnwindState(
            status=UnwindStatus(raw["status"]),
            confirmed=bool(raw["confirmed"]),
            steps_done=int(raw["steps_done"]),
            last_step_at=_when(raw["last_step_at"]),
            updated_at=_when(raw["updated_at"]),
            evidence=raw["evidence"],
        )
        self.unwind_start_basis = _number(raw["start_basis"])
        self.unwind_start_puts = _number(raw["start_puts"])

    # --- measurement --------------------------------------------------------------------------

    def exposure(
        self, holdings: Iterable[tuple[Instrument, Decimal]], spot_price: Decimal, now: datetime
    ) -> HedgeExposure:
        """Spot, hedge short and put cover of the hedged asset from signed holdings."""
        spot = short = ZERO
        puts: list[HeldPut] = []
        for instrument, qty in holdings:
            if instrument.base != self.config.asset or qty == 0:
                continue
            if instrument.kind is InstrumentKind.SPOT:
                spot += qty
            elif instrument.kind in (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE):
                short -= qty * instrument.contract_size
            elif instrument.right is OptionRight.PUT and qty > 0:
                puts.append(self._held_put(instrument, qty, spot_price, now))
        cover = sum((p.cover_qty for p in puts if not p.rolling), ZERO)
        return HedgeExposure(spot, short, cover, tuple(puts), spot_price)

    def _held_put(
        self, instrument: Instrument, contracts: Decimal, spot: Decimal, now: datetime
    ) -> HeldPut:
        policy = self.config.puts
        rolling = policy is not None and needs_roll(instrument, now, policy)
        greeks = None
        if self.surface is not None and instrument.expiry is not None and instrument.expiry > now:
            greeks = self.surface.greeks(instrument, spot, now)
        return HeldPut(
            instrument,
            contracts,
            rolling,
            self._put_cover(instrument, contracts, spot, now),
            greeks,
        )

    def _put_cover(
        self, instrument: Instrument, contracts: Decimal, spot: Decimal, now: datetime
    ) -> Decimal:
        """Base units ``contracts`` of a put cover, by notional or by |delta|."""
        units = contracts * instrument.contract_size
        policy = self.config.puts
        if policy is None or policy.coverage_mode == "notional":
            return units
        if self.surface is None or instrument.expiry is None or instrument.expiry <= now:
            return ZERO
        delta = abs(put_delta(instrument, spot, now, self.surface))
        return (units * Decimal(repr(delta))).quantize(_QTY)

    # --- spot gating ------------------------------------------------------------------------

    def gate_spot_buy(
        self,
        parent_id: str,
        exposure: HedgeExposure,
        working_spot_buys: Decimal,
        qty: Decimal,
        instrument: Instrument,
        price: Decimal,
    ) -> tuple[Decimal, Denied | None]:
        """How much of a spot buy slice of ``qty`` may go now, and the denial if none may.

        Sized against the *filled* hedge and the spot already filled or working, so every fill
        keeps coverage at or above the phase minimum. What is cut is remembered as demand, which
        the hedge leads by.
        """
        committed = exposure.as_exposure(exposure.spot_qty + working_spot_buys)
        room = max_spot_buy(committed, self.phase, self.config.policy)
        allowed = qty if room is None else instrument.round_qty(min(qty, room))
        if allowed >= instrument.min_tradable_qty(price):
            rest = qty - allowed
            if rest > 0:
                self._demand[parent_id] = rest
            else:
                self._demand.pop(parent_id, None)
            return allowed, None
        self._demand[parent_id] = qty
        after = committed.with_spot(committed.spot_qty + qty)
        requirement = self.config.policy.requirement(self.phase)
        detail = (
            f"spot buy of {qty} {self.config.asset} held: basis cover would be "
            f"{_ratio(basis_coverage(after))} and put cover {_ratio(put_coverage(after))} of "
            f"{after.spot_qty} spot, below the {self.phase.value} minimums "
            f"{requirement.min_basis_ratio} / {requirement.min_put_ratio}; "
            "holding until the hedge catches up"
        )
        return ZERO, Denied(DenyCode.COVERAGE_BELOW_MINIMUM, detail)

    def forget_demand(self, active_parent_ids: Iterable[str]) -> None:
        """Drop demand of parents that are no longer active."""
        keep = set(active_parent_ids)
        for parent_id in [p for p in self._demand if p not in keep]:
            del self._demand[parent_id]

    @property
    def demand(self) -> Decimal:
        return sum(self._demand.values(), ZERO)

    # --- confirmation ---------------------------------------------------------------------

    def set_phase(
        self,
        phase: MarketPhase,
        evidence: str,
        exposure: HedgeExposure,
        now: datetime,
        actor: str,
    ) -> CoverageRecord:
        """Enter ``phase``; CONFIRMED starts (or resumes) the unwind, leaving it pauses it."""
        if not evidence.strip():
            raise ValueError("evidence is required: say which signals support the phase")
        before = self.unwind.status
        self.unwind, decision = apply(
            self.unwind,
            ConfirmationChanged(phase is MarketPhase.CONFIRMED, evidence, now),
            self.config.unwind,
        )
        if before is UnwindStatus.HOLDING and self.unwind.status is UnwindStatus.UNWINDING:
            self.unwind_start_basis = max(exposure.perp_short_qty, ZERO)
            self.unwind_start_puts = sum((p.contracts for p in exposure.puts), ZERO)
        previous, self.phase = self.phase, phase
        detail = f"phase {previous.value} → {phase.value}: {decision.reason}"
        self._refusal = None
        return self.record(
            CoverageKind.PHASE, exposure, now, detail, evidence=evidence, actor=actor
        )

    def check_unwind_request(self, exposure: HedgeExposure, now: datetime) -> Denied | None:
        """Why an unwind step may not be taken now (``None``: it may)."""
        start = self.unwind_start_basis or ZERO
        verdict = next_step(
            self.unwind, now, start, max(exposure.perp_short_qty, ZERO), self.config.unwind
        )
        return verdict if isinstance(verdict, Denied) else None

    # --- the step ---------------------------------------------------------------------------

    def plan(
        self,
        exposure: HedgeExposure,
        committed_spot: Decimal,
        pending: Sequence[PendingHedge],
        hedge_venues: Mapping[str, Instrument],
        option_listing: Sequence[Instrument],
        now: datetime,
    ) -> HedgePlan:
        """The hedge orders this step needs and the decisions to store.

        ``committed_spot``: filled spot + spot buys working + held demand; ``hedge_venues``: the
        hedge instrument on each venue listing it; ``option_listing``: puts on offer.
        """
        out = HedgePlan()
        self.last_spot_price = exposure.spot_price
        requirement = self.config.policy.requirement(self.phase)
        reducing = [p for p in pending if p.reduce_only]
        self._plan_basis(exposure, committed_spot, pending, hedge_venues, requirement, out, now)
        if self.config.puts is not None:
            self._plan_puts(exposure, committed_spot, pending, option_listing, out, now)
        if not reducing:
            self._plan_unwind(exposure, committed_spot, hedge_venues, out, now)
        self._track_drift(exposure, out, now)
        return out

    def _plan_basis(
        self,
        exposure: HedgeExposure,
        committed_spot: Decimal,
        pending: Sequence[PendingHedge],
        hedge_venues: Mapping[str, Instrument],
        requirement: CoverageRequirement,
        out: HedgePlan,
        now: datetime,
    ) -> None:
        if not hedge_venues:
            return
        working = sum(
            (
                -p.side.sign * p.remaining * p.instrument.contract_size
                for p in pending
                if p.role is ParentRole.BASIS_HEDGE
            ),
            ZERO,
        )
        gap = requirement.target_basis_ratio * committed_spot - exposure.perp_short_qty - working
        if gap <= 0:
            return
        instrument = strictest_instrument(list(hedge_venues.values()))
        if gap < instrument.min_tradable_qty(exposure.spot_price) and not self._demand:
            return  # below one tradable lot and no spot waiting: within rounding
        qty = _contracts(gap / instrument.contract_size, instrument, exposure.spot_price)
        if qty is None:
            return
        reason = (
            f"basis hedge: target {requirement.target_basis_ratio} × committed spot "
            f"{committed_spot} = {requirement.target_basis_ratio * committed_spot}, short "
            f"{exposure.perp_short_qty} + working {working}"
        )
        out.orders.append(
            HedgeOrder(
                ParentRole.BASIS_HEDGE,
                self.config.hedge_symbol,
                tuple(sorted(hedge_venues)),
                Side.SELL,
                qty,
                False,
                reason,
            )
        )

    def _plan_puts(
        self,
        exposure: HedgeExposure,
        committed_spot: Decimal,
        pending: Sequence[PendingHedge],
        listing: Sequence[Instrument],
        out: HedgePlan,
        now: datetime,
    ) -> None:
        policy = self.config.puts
        assert policy is not None
        requirement = self.config.policy.requirement(self.phase)
        spot = exposure.spot_price
        buying = [p for p in pending if p.role is ParentRole.PUT_HEDGE and p.side is Side.BUY]
        working = sum((self._put_cover(p.instrument, p.remaining, spot, now) for p in buying), ZERO)
        gap = requirement.target_put_ratio * committed_spot - exposure.put_cover_qty - working
        if gap > 0:
            target = choose_put(listing, spot, now, policy, base=self.config.asset)
            if target is None:
                self._refuse(out, exposure, now, "no listed put meets the put policy")
            else:
                per_contract = self._put_cover(target, Decimal(1), spot, now)
                if per_contract > 0:
                    contracts = _contracts(gap / per_contract, target, spot)
                    if contracts is not None:
                        out.orders.append(
                            HedgeOrder(
                                ParentRole.PUT_HEDGE,
                                target.symbol,
                                (target.venue,),
                                Side.BUY,
                                contracts,
                                False,
                                f"put cover: target {requirement.target_put_ratio} × "
                                f"committed spot {committed_spot}; covered "
                                f"{exposure.put_cover_qty} + working {working}",
                            )
                        )
        if working > 0 or gap > 0:
            return  # roll only once the replacement cover is in place
        selling = {p.instrument.symbol for p in pending if p.role is ParentRole.PUT_HEDGE}
        for held in exposure.puts:
            if held.rolling and held.instrument.symbol not in selling:
                out.orders.append(
                    HedgeOrder(
                        ParentRole.PUT_HEDGE,
                        held.instrument.symbol,
                        (held.instrument.venue,),
                        Side.SELL,
                        held.contracts,
                        True,
                        f"roll: {held.instrument.symbol} is within "
                        f"{policy.roll_days_before_expiry} days of expiry",
                    )
                )
                detail = f"rolling {held.contracts} {held.instrument.symbol}"
                out.records.append(self.record(CoverageKind.PUT_ROLL, exposure, now, detail))

    def _plan_unwind(
        self,
        exposure: HedgeExposure,
        committed_spot: Decimal,
        hedge_venues: Mapping[str, Instrument],
        out: HedgePlan,
        now: datetime,
    ) -> None:
        requirement = self.config.policy.requirement(self.phase)
        scope = self.config.unwind.scope
        tolerance = self.config.policy.drift_tolerance * committed_spot
        basis_excess = exposure.perp_short_qty - requirement.target_basis_ratio * committed_spot
        put_excess = exposure.put_cover_qty - requirement.target_put_ratio * committed_spot
        # Lot rounding over-hedges by up to one tradable lot: that is not an excess to unwind.
        basis_slack = tolerance
        if hedge_venues:
            perp = strictest_instrument(list(hedge_venues.values()))
            basis_slack += perp.min_tradable_qty(exposure.spot_price) * perp.contract_size
        put_slack = tolerance + max(
            (p.instrument.min_qty * p.instrument.contract_size for p in exposure.puts), default=ZERO
        )
        wants_basis = scope.covers_basis and basis_excess > basis_slack and hedge_venues
        wants_puts = scope.covers_puts and put_excess > put_slack and exposure.puts
        if not (wants_basis or wants_puts):
            return
        if not self.config.auto_unwind and not self.unwind_requested:
            return
        denial = self.check_unwind_request(exposure, now)
        if denial is not None:
            self._refuse(out, exposure, now, denial.detail, denial.code)
            return
        orders: list[HedgeOrder] = []
        if wants_basis:
            instrument = strictest_instrument(list(hedge_venues.values()))
            step = next_step(
                self.unwind,
                now,
                self.unwind_start_basis or ZERO,
                exposure.perp_short_qty,
                self.config.unwind,
                lot_size=instrument.lot_size,
            )
            qty = min(step, basis_excess) if isinstance(step, Decimal) else ZERO
            qty = instrument.round_qty(qty / instrument.contract_size)
            if qty > 0:
                orders.append(
                    HedgeOrder(
                        ParentRole.BASIS_HEDGE,
                        self.config.hedge_symbol,
                        tuple(sorted(hedge_venues)),
                        Side.BUY,
                        qty,
                        True,
                        f"unwind step {self.unwind.steps_done + 1} of {self.config.unwind.steps}",
                    )
                )
        if wants_puts:
            orders.extend(self._put_unwind(exposure, now))
        self.unwind, decision = apply(self.unwind, StepDue(now), self.config.unwind)
        self.unwind_requested = False
        out.orders.extend(orders)
        sent = "; ".join(f"{o.side} {o.qty} {o.symbol}" for o in orders) or "nothing to trade"
        out.records.append(
            self.record(CoverageKind.UNWIND_STEP, exposure, now, f"{decision.reason}: {sent}")
        )

    def _put_unwind(self, exposure: HedgeExposure, now: datetime) -> list[HedgeOrder]:
        held_total = sum((p.contracts for p in exposure.puts), ZERO)
        step = next_step(
            self.unwind, now, self.unwind_start_puts or ZERO, held_total, self.config.unwind
        )
        if not isinstance(step, Decimal) or step <= 0:
            return []
        orders = []
        for held in sorted(exposure.puts, key=lambda p: p.instrument.expiry or now):
            qty = held.instrument.round_qty(min(step, held.contracts))
            if qty <= 0:
                break
            orders.append(
                HedgeOrder(
                    ParentRole.PUT_HEDGE,
                    held.instrument.symbol,
                    (held.instrument.venue,),
                    Side.SELL,
                    qty,
                    True,
                    f"unwind step {self.unwind.steps_done + 1} of {self.config.unwind.steps}",
                )
            )
            step -= qty
        return orders

    def _track_drift(self, exposure: HedgeExposure, out: HedgePlan, now: datetime) -> None:
        if exposure.spot_qty <= 0:
            self.drift_since = None
            return
        policy, current = self.config.policy, exposure.as_exposure()
        beyond = coverage_shortfall(current, self.phase, policy) > policy.drift_tolerance
        if not beyond:
            self.drift_since = None
            return
        first_seen = self.drift_since is None
        exceeded_before = not first_seen and drift_exceeded(
            current, self.phase, policy, self.drift_since, now - timedelta(microseconds=1)
        )
        self.drift_since = self.drift_since or now
        exceeded = drift_exceeded(current, self.phase, policy, self.drift_since, now)
        if exceeded and not exceeded_before:
            shortfall = coverage_shortfall(current, self.phase, policy)
            out.records.append(
                self.record(
                    CoverageKind.DRIFT,
                    exposure,
                    now,
                    f"hedge {_ratio(shortfall * 100)}% of spot notional below target since "
                    f"{self.drift_since.isoformat()}",
                )
            )

    def _refuse(
        self,
        out: HedgePlan,
        exposure: HedgeExposure,
        now: datetime,
        detail: str,
        code: DenyCode | None = None,
    ) -> None:
        """Record a refusal once per distinct reason (not every step)."""
        key = f"{code}:{detail.split(':')[0]}"
        if self._refusal == key:
            return
        self._refusal = key
        kind = CoverageKind.UNWIND_REFUSED if code is not None else CoverageKind.HEDGE_REFUSED
        out.records.append(self.record(kind, exposure, now, detail, code=code))

    # --- fills ------------------------------------------------------------------------------

    def hedge_fill_record(
        self,
        instrument: Instrument,
        price: Decimal,
        qty: Decimal,
        side: Side,
        exposure: HedgeExposure | None,
        now: datetime,
        parent_id: str,
        funding_rate_annualised: Decimal | None = None,
    ) -> CoverageRecord | None:
        """The basis captured by one fill of the basis hedge, against the last spot price."""
        spot = self.last_spot_price
        if spot is None or spot <= 0:
            return None
        basis = ((price - spot) / spot * BPS).quantize(Decimal("0.0001"))
        annual: Decimal | None = funding_rate_annualised
        expiry = instrument.expiry
        if instrument.kind is InstrumentKind.FUTURE and expiry is not None and expiry > now:
            annual = annualised_basis(price, spot, expiry, now).quantize(Decimal("0.000001"))
        self.last_basis_bps = basis
        snapshot = exposure or HedgeExposure(ZERO, ZERO, ZERO, (), spot)
        record = self.record(
            CoverageKind.HEDGE_FILL,
            snapshot,
            now,
            f"{side} {qty} {instrument.symbol} on {instrument.venue} at {price} against spot "
            f"{spot}: basis {basis} bps",
            parent_id=parent_id,
        )
        return replace(record, basis_bps=basis, basis_annualised=annual)

    def record(
        self,
        kind: CoverageKind,
        exposure: HedgeExposure,
        now: datetime,
        detail: str,
        *,
        code: DenyCode | None = None,
        evidence: str = "",
        actor: str = "system",
        parent_id: str | None = None,
    ) -> CoverageRecord:
        """A coverage decision carrying the exposure and the desk's state after it."""
        return CoverageRecord(
            ts=now,
            kind=kind,
            phase=self.phase.value,
            unwind_status=self.unwind.status.value,
            spot_qty=exposure.spot_qty,
            perp_short_qty=exposure.perp_short_qty,
            put_cover_qty=exposure.put_cover_qty,
            detail=detail,
            state=self.state_json(),
            code=code.value if code is not None else None,
            evidence=evidence,
            actor=actor,
            parent_id=parent_id,
        )


def _contracts(wanted: Decimal, instrument: Instrument, price: Decimal) -> Decimal | None:
    """``wanted`` rounded *up* to the lot and raised to the venue minimum (cover never short)."""
    if wanted <= 0:
        return None
    qty = round_to_step(wanted, instrument.lot_size, Rounding.UP)
    return max(qty, instrument.min_tradable_qty(price)) if price > 0 else qty


def _ratio(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=Rounding.DOWN.value))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _number(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
