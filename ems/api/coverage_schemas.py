"""Request and response bodies of the hedge-coverage routes (``/v1/coverage``): the coverage
view (exposure by leg, ratios against the phase's requirement, drift, the put book with its
greeks, funding), the coverage decisions, the market-phase switch and the unwind request.

Like :mod:`ems.api.risk_schemas`, requests are strict and frozen, decimals travel as JSON
strings and every validation error names the field it is about. Greeks are model outputs
(floats in the engine) and travel as JSON numbers; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ems.api.schemas import DecimalStr, UtcDatetime
from ems.hedging import HedgeDesk, HedgeExposure, HeldPut
from ems.ports import CoverageKind, CoverageRecord
from risk.basis import FundingAccrual
from risk.coverage import basis_coverage, coverage_shortfall, drift_exceeded, put_coverage
from risk.types import MarketPhase
from risk.unwind import UnwindStatus, next_step_at

_OUT = ConfigDict(frozen=True)
_PLACES = Decimal("0.000001")
_NEVER = datetime.max.replace(tzinfo=UTC)

DecisionKind = CoverageKind
"""What a coverage decision records."""

DECISION_KINDS: tuple[str, ...] = tuple(kind.value for kind in CoverageKind)

EVIDENCE_MAX = 2000
REASON_MAX = 500

Evidence = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=EVIDENCE_MAX),
    Field(
        description=(
            "The signals that put the market in this phase (1..2000 characters, surrounding "
            "spaces removed); stored with the decision and shown with the unwind state."
        ),
        examples=["funding positive 3 days, reclaim of the 200-day average, ETF inflows"],
    ),
]

Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX),
    Field(
        description=(
            "Why the change is made now (1..500 characters), if it adds to the evidence; "
            "stored after the evidence as `(reason: …)`."
        ),
        examples=["weekly risk committee"],
    ),
]


def floor_ratio(value: Decimal) -> Decimal:
    """A coverage ratio to 6 places, rounded down: never shown above what is held."""
    return value.quantize(_PLACES, rounding=ROUND_FLOOR)


def ceil_share(value: Decimal) -> Decimal:
    """A shortfall share to 6 places, rounded up: never shown below what is missing."""
    return value.quantize(_PLACES, rounding=ROUND_CEILING)


# --- requests ------------------------------------------------------------------------------


class PhaseBase(BaseModel):
    """A market phase and the evidence for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: MarketPhase = Field(
        description=(
            "stress, clearing, repair or confirmed. Entering `confirmed` starts (or resumes) "
            "the gated hedge unwind; leaving it pauses the unwind with the remaining hedge held."
        )
    )
    evidence: Evidence


class PhaseUpdate(PhaseBase):
    """Enter a market phase: the coverage it requires applies from the next step."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "phase": "confirmed",
                    "evidence": "funding positive 3 days, reclaim of the 200-day average",
                    "reason": "weekly risk committee",
                },
                {"phase": "repair", "evidence": "reclaim of the 200-day average failed"},
            ]
        },
    )

    reason: Reason | None = None

    def stored_evidence(self) -> str:
        """The evidence as stored: with the reason after it when one is given."""
        if self.reason is None:
            return self.evidence
        return f"{self.evidence} (reason: {self.reason})"


# --- responses -----------------------------------------------------------------------------


class UnwindView(BaseModel):
    """Where the confirmation-gated unwind stands, and its plan."""

    model_config = _OUT

    status: UnwindStatus = Field(description="holding, unwinding, paused or done.")
    confirmed: bool = Field(description="Whether the market phase is confirmed.")
    steps_done: int = Field(description="Unwind steps taken so far.")
    steps: int = Field(description="Steps in the plan, each an equal share of the start hedge.")
    min_interval_s: float = Field(description="Least time between two steps, in seconds.")
    scope: str = Field(description="Legs the plan releases: basis, puts or both.")
    auto: bool = Field(description="Steps are taken as soon as allowed (else on request).")
    requested: bool = Field(description="A step was requested and waits for the next step.")
    last_step_at: UtcDatetime | None
    next_step_at: UtcDatetime | None = Field(
        description="Earliest time of the next step (null: nothing holds it back in time)."
    )
    evidence: str = Field(description="The evidence of the latest confirmation change.")
    start_basis: DecimalStr | None = Field(
        description="Perpetual short (base units) when the unwind began."
    )
    start_puts: DecimalStr | None = Field(description="Put contracts held when the unwind began.")


class ExposureView(BaseModel):
    """The hedged asset held, by leg, in base units (from our own fills)."""

    model_config = _OUT

    spot_qty: DecimalStr
    perp_short_qty: DecimalStr = Field(description="Perpetual/future short (positive = short).")
    put_cover_qty: DecimalStr = Field(
        description="Base units the puts cover (puts being rolled excluded)."
    )


class RatiosView(BaseModel):
    """Coverage as a share of spot (6 places, rounded down); null when no spot is held."""

    model_config = _OUT

    basis: DecimalStr | None = Field(description="Perpetual short ÷ spot.")
    put: DecimalStr | None = Field(description="Put cover ÷ spot.")


class RequirementView(BaseModel):
    """The ratios the current phase requires: below `min_*` spot buys are held."""

    model_config = _OUT

    min_basis_ratio: DecimalStr
    target_basis_ratio: DecimalStr
    min_put_ratio: DecimalStr
    target_put_ratio: DecimalStr


class DriftView(BaseModel):
    """How far the hedge sits below target, and for how long."""

    model_config = _OUT

    shortfall_share: DecimalStr = Field(
        description="Worst leg's shortfall below target as a share of spot notional (≥ 0)."
    )
    tolerance: DecimalStr = Field(description="Shortfall share that counts as drift.")
    max_duration_s: float = Field(description="How long drift may last above the minimum.")
    since: UtcDatetime | None = Field(description="When the current drift was first seen.")
    exceeded: bool = Field(
        description="Drift beyond the tolerance and below the minimum, or for too long."
    )


class HeldPutView(BaseModel):
    """One protective put held; greeks per unit of underlying from the volatility surface."""

    model_config = _OUT

    symbol: str
    venue: str
    strike: DecimalStr | None
    expiry: UtcDatetime | None
    contracts: DecimalStr
    contract_size: DecimalStr
    rolling: bool = Field(description="Within the roll window: being replaced, not counted.")
    cover_qty: DecimalStr = Field(description="Base units it covers (by notional or |delta|).")
    price: float | None = Field(description="Model value per unit (quote currency).")
    delta: float | None
    gamma: float | None
    vega: float | None
    theta: float | None

    @classmethod
    def of(cls, held: HeldPut) -> Self:
        """The API view of a held put."""
        instrument, greeks = held.instrument, held.greeks
        return cls(
            symbol=instrument.symbol,
            venue=instrument.venue,
            strike=instrument.strike,
            expiry=instrument.expiry,
            contracts=held.contracts,
            contract_size=instrument.contract_size,
            rolling=held.rolling,
            cover_qty=held.cover_qty,
            price=None if greeks is None else greeks.price,
            delta=None if greeks is None else greeks.delta,
            gamma=None if greeks is None else greeks.gamma,
            vega=None if greeks is None else greeks.vega,
            theta=None if greeks is None else greeks.theta,
        )


class PutTotals(BaseModel):
    """The put book in total: greeks are Σ contracts × contract size × the put's greek
    (puts without greeks, e.g. expired ones, count in contracts and cover only)."""

    model_config = _OUT

    contracts: DecimalStr
    cover_qty: DecimalStr
    value: float
    delta: float
    gamma: float
    vega: float
    theta: float


class PutBook(BaseModel):
    """The protective puts held and their totals."""

    model_config = _OUT

    held: list[HeldPutView]
    totals: PutTotals

    @classmethod
    def of(cls, puts: Sequence[HeldPut]) -> Self:
        """The API view of the held puts, in expiry then symbol order."""
        ordered = sorted(puts, key=lambda p: (p.instrument.expiry or _NEVER, p.instrument.symbol))
        sums = {"value": 0.0, "delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0}
        for held in ordered:
            if held.greeks is None:
                continue
            units = float(held.contracts * held.instrument.contract_size)
            sums["value"] += units * held.greeks.price
            for name in ("delta", "gamma", "vega", "theta"):
                sums[name] += units * getattr(held.greeks, name)
        return cls(
            held=[HeldPutView.of(p) for p in ordered],
            totals=PutTotals(
                contracts=sum((p.contracts for p in ordered), Decimal(0)),
                cover_qty=sum((p.cover_qty for p in ordered if not p.rolling), Decimal(0)),
                **sums,
            ),
        )


class FundingView(BaseModel):
    """Funding on the hedge at one venue (quote currency; positive = income)."""

    model_config = _OUT

    net: DecimalStr
    received: DecimalStr
    paid: DecimalStr
    events: int
    last_at: UtcDatetime | None

    @classmethod
    def of(cls, accrual: FundingAccrual) -> Self:
        """The API view of a funding accrual."""
        return cls(
            net=accrual.net,
            received=accrual.received,
            paid=accrual.paid,
            events=accrual.events,
            last_at=accrual.last_at,
        )


class CoverageView(BaseModel):
    """The hedge coverage now: phase, unwind, exposure, ratios against the phase's
    requirement, drift, spot held for coverage, the put book and funding."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2026-05-01T12:00:00Z",
                    "asset": "BTC",
                    "spot_symbol": "BTC/USDT",
                    "hedge_symbol": "BTC/USDT:USDT",
                    "phase": "stress",
                    "unwind": {
                        "status": "holding",
                        "confirmed": False,
                        "steps_done": 0,
                        "steps": 4,
                        "min_interval_s": 86400.0,
                        "scope": "both",
                        "auto": True,
                        "requested": False,
                        "last_step_at": None,
                        "next_step_at": None,
                        "evidence": "",
                        "start_basis": None,
                        "start_puts": None,
                    },
                    "spot_price": "61250.5",
                    "exposure": {
                        "spot_qty": "1.5",
                        "perp_short_qty": "1.502",
                        "put_cover_qty": "0.76",
                    },
                    "ratios": {"basis": "1.001333", "put": "0.506666"},
                    "required": {
                        "min_basis_ratio": "0.8",
                        "target_basis_ratio": "1",
                        "min_put_ratio": "0.3",
                        "target_put_ratio": "0.5",
                    },
                    "drift": {
                        "shortfall_share": "0",
                        "tolerance": "0.02",
                        "max_duration_s": 900.0,
                        "since": None,
                        "exceeded": False,
                    },
                    "demand": "0",
                    "puts": {
                        "held": [
                            {
                                "symbol": "BTC/USDT:USDT-260626-55000-P",
                                "venue": "deribit",
                                "strike": "55000",
                                "expiry": "2026-06-26T08:00:00Z",
                                "contracts": "0.76",
                                "contract_size": "1",
                                "rolling": False,
                                "cover_qty": "0.76",
                                "price": 1234.5,
                                "delta": -0.21,
                                "gamma": 0.00002,
                                "vega": 85.3,
                                "theta": -31.2,
                            }
                        ],
                        "totals": {
                            "contracts": "0.76",
                            "cover_qty": "0.76",
                            "value": 938.22,
                            "delta": -0.1596,
                            "gamma": 0.0000152,
                            "vega": 64.828,
                            "theta": -23.712,
                        },
                    },
                    "funding": {
                        "binance-usdm": {
                            "net": "12.5",
                            "received": "12.5",
                            "paid": "0",
                            "events": 3,
                            "last_at": "2026-05-01T08:00:00Z",
                        }
                    },
                    "last_basis_bps": "4.2",
                }
            ]
        },
    )

    as_of: UtcDatetime
    asset: str = Field(description="The base asset accumulated and hedged.")
    spot_symbol: str
    hedge_symbol: str = Field(description="The perpetual (or future) shorted against spot.")
    phase: MarketPhase
    unwind: UnwindView
    spot_price: DecimalStr = Field(description="Consensus spot mid the exposure is valued at.")
    exposure: ExposureView
    ratios: RatiosView
    required: RequirementView
    drift: DriftView
    demand: DecimalStr = Field(description="Spot (base units) held back until the hedge leads.")
    puts: PutBook
    funding: dict[str, FundingView] = Field(description="Funding on the hedge, per venue.")
    last_basis_bps: DecimalStr | None = Field(
        description="Basis of the latest hedge fill against spot, in basis points."
    )

    @classmethod
    def of(
        cls,
        hedge: HedgeDesk,
        exposure: HedgeExposure,
        funding: Mapping[str, FundingAccrual],
        now: datetime,
    ) -> Self:
        """The view of the hedge desk's state and ``exposure`` (valued ``now``)."""
        config, state = hedge.config, hedge.unwind
        policy, plan = config.policy, config.unwind
        requirement = policy.requirement(hedge.phase)
        current = exposure.as_exposure()
        held = exposure.spot_qty > 0
        return cls(
            as_of=now,
            asset=config.asset,
            spot_symbol=config.spot_symbol,
            hedge_symbol=config.hedge_symbol,
            phase=hedge.phase,
            unwind=UnwindView(
                status=state.status,
                confirmed=state.confirmed,
                steps_done=state.steps_done,
                steps=plan.steps,
                min_interval_s=plan.min_interval.total_seconds(),
                scope=plan.scope.value,
                auto=config.auto_unwind,
                requested=hedge.unwind_requested,
                last_step_at=state.last_step_at,
                next_step_at=next_step_at(state, plan),
                evidence=state.evidence,
                start_basis=hedge.unwind_start_basis,
                start_puts=hedge.unwind_start_puts,
            ),
            spot_price=exposure.spot_price,
            exposure=ExposureView(
                spot_qty=exposure.spot_qty,
                perp_short_qty=exposure.perp_short_qty,
                put_cover_qty=exposure.put_cover_qty,
            ),
            ratios=RatiosView(
                basis=floor_ratio(basis_coverage(current)) if held else None,
                put=floor_ratio(put_coverage(current)) if held else None,
            ),
            required=RequirementView(
                min_basis_ratio=requirement.min_basis_ratio,
                target_basis_ratio=requirement.target_basis_ratio,
                min_put_ratio=requirement.min_put_ratio,
                target_put_ratio=requirement.target_put_ratio,
            ),
            drift=DriftView(
                shortfall_share=ceil_share(coverage_shortfall(current, hedge.phase, policy)),
                tolerance=policy.drift_tolerance,
                max_duration_s=policy.max_drift_duration.total_seconds(),
                since=hedge.drift_since,
                exceeded=drift_exceeded(current, hedge.phase, policy, hedge.drift_since, now),
            ),
            demand=hedge.demand,
            puts=PutBook.of(exposure.puts),
            funding={venue: FundingView.of(funding[venue]) for venue in sorted(funding)},
            last_basis_bps=hedge.last_basis_bps,
        )


class DecisionPublic(BaseModel):
    """One coverage decision: what happened, on which exposure, in which phase, by whom."""

    model_config = _OUT

    ts: UtcDatetime
    kind: str = Field(description="What happened: " + ", ".join(DECISION_KINDS) + ".")
    phase: MarketPhase = Field(description="The market phase after the decision.")
    unwind_status: UnwindStatus = Field(description="The unwind status after the decision.")
    spot_qty: DecimalStr
    perp_short_qty: DecimalStr
    put_cover_qty: DecimalStr
    detail: str = Field(description="The decision in words.")
    code: str | None = Field(description="The risk code of a refusal, e.g. unwind_too_soon.")
    evidence: str = Field(description="The evidence given with a phase change.")
    actor: str = Field(description="`system`, or the API key that asked: its name and key id.")
    parent_id: str | None = Field(description="The hedge or spot parent concerned, if any.")
    basis_bps: DecimalStr | None = Field(description="Hedge fills: basis against spot, bps.")
    basis_annualised: DecimalStr | None = Field(
        description="Hedge fills: futures basis over time to expiry, or the funding rate."
    )

    @classmethod
    def of(cls, record: CoverageRecord) -> Self:
        """The API view of a stored decision (its raw state JSON left out)."""
        return cls(
            ts=record.ts,
            kind=record.kind,
            phase=MarketPhase(record.phase),
            unwind_status=UnwindStatus(record.unwind_status),
            spot_qty=record.spot_qty,
            perp_short_qty=record.perp_short_qty,
            put_cover_qty=record.put_cover_qty,
            detail=record.detail,
            code=record.code,
            evidence=record.evidence,
            actor=record.actor,
            parent_id=record.parent_id,
            basis_bps=record.basis_bps,
            basis_annualised=record.basis_annualised,
        )
