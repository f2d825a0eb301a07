"""Hedge coverage: how much of the spot position is hedged, and whether spot may grow.

The hedge invariant of the desk (DESIGN.md §3): spot accumulation never runs ahead of the hedge
the current market phase requires. Two hedge legs are measured, both as a ratio of the spot
position in base units:

* **basis coverage** = perpetual/future short quantity ÷ spot quantity;
* **put coverage** = base units protected by puts ÷ spot quantity (the protected quantity is
  computed elsewhere, by notional or by delta; this module takes it as given).

A :class:`CoveragePolicy` holds, for every :class:`~risk.types.MarketPhase`, a minimum and a
target ratio for each leg, and how far (as a share of spot notional) and how long the hedge may
drift from its target. Everything here is a pure function of its arguments: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from ems.domain import ensure_utc
from risk.types import Approved, Denied, DenyCode, MarketPhase, Verdict

ZERO = Decimal(0)
ONE = Decimal(1)
MAX_RATIO = Decimal(2)
_CENT = Decimal("0.01")

_REQUIREMENT_FIELDS = ("min_basis_ratio", "target_basis_ratio", "min_put_ratio", "target_put_ratio")
_POLICY_KEYS = ("phases", "drift_tolerance", "max_drift_duration")


class CoveragePolicyError(ValueError):
    """A coverage policy (or its configuration) breaks a rule; the message names the key."""


def _exact(name: str, value: object) -> Decimal:
    """``value`` as a finite Decimal; ints are exact, floats are refused (use ``from_mapping``)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(
            f"{name} must be a Decimal (for example Decimal('0.8')), "
            f"got {type(value).__name__} {value!r}"
        )
    exact = Decimal(value)
    if not exact.is_finite():
        raise CoveragePolicyError(f"{name} must be a finite number, got {exact}")
    return exact


def _from_config(key: str, value: object) -> Decimal:
    """A configuration number as a Decimal: TOML floats go through their shortest text form."""
    if isinstance(value, bool):
        raise CoveragePolicyError(f"{key} must be a number, got {value!r}")
    if isinstance(value, float):
        value = str(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise CoveragePolicyError(f"{key} must be a number, got {value!r}") from None
    if not isinstance(value, Decimal | int):
        raise CoveragePolicyError(f"{key} must be a number, got {type(value).__name__} {value!r}")
    exact = Decimal(value)
    if not exact.is_finite():
        raise CoveragePolicyError(f"{key} must be a finite number, got {exact}")
    return exact


def _ratio_text(value: Decimal) -> str:
    """Two decimals rounded towards minus infinity, so a shortfall never prints as the limit."""
    return str(value.quantize(_CENT, rounding=ROUND_FLOOR))


@dataclass(frozen=True, slots=True)
class CoverageRequirement:
    """Hedge ratios one market phase requires, each between 0 and 2 and ``min ≤ target``.

    - ``min_*``: below this the hedge invariant is broken; spot buys are held.
    - ``target_*``: what the hedger aims for; drift is measured against it.
    """

    min_basis_ratio: Decimal
    target_basis_ratio: Decimal
    min_put_ratio: Decimal
    target_put_ratio: Decimal

    def __post_init__(self) -> None:
        for name in _REQUIREMENT_FIELDS:
            value = _exact(name, getattr(self, name))
            if not ZERO <= value <= MAX_RATIO:
                raise CoveragePolicyError(f"{name} must be between 0 and 2, got {value}")
            object.__setattr__(self, name, value)
        for leg in ("basis", "put"):
            low = getattr(self, f"min_{leg}_ratio")
            high = getattr(self, f"target_{leg}_ratio")
            if low > high:
                raise CoveragePolicyError(
                    f"min_{leg}_ratio {low} must not exceed target_{leg}_ratio {high}"
                )


@dataclass(frozen=True, slots=True)
class CoveragePolicy:
    """Coverage requirements for every market phase, and the drift the hedger may leave.

    - ``requirements``: one :class:`CoverageRequirement` per :class:`MarketPhase`, all present.
    - ``drift_tolerance``: how far a hedge leg may sit from its target, as a share of the spot
      notional (0.02 = 2 % of spot), before it counts as drift; in ``[0, 1)``.
    - ``max_drift_duration``: how long a drift beyond the tolerance may last (while coverage is
      still above the phase minimum) before :func:`drift_exceeded` reports it.
    """

    requirements: Mapping[MarketPhase, CoverageRequirement] = field(hash=False)
    drift_tolerance: Decimal
    max_drift_duration: timedelta

    def __post_init__(self) -> None:
        if not isinstance(self.requirements, Mapping):
            raise TypeError("requirements must map each MarketPhase to a CoverageRequirement")
        table: dict[MarketPhase, CoverageRequirement] = {}
        for phase, requirement in self.requirements.items():
            if not isinstance(phase, MarketPhase):
                raise CoveragePolicyError(f"requirements has a key {phase!r} that is not a phase")
            if not isinstance(requirement, CoverageRequirement):
                raise TypeError(f"requirements[{phase.value}] must be a CoverageRequirement")
            table[phase] = requirement
        missing = [phase.value for phase in MarketPhase if phase not in table]
        if missing:
            raise CoveragePolicyError(
                f"requirements is missing the phase(s) {', '.join(missing)}; every phase needs one"
            )
        object.__setattr__(self, "requirements", MappingProxyType(table))

        tolerance = _exact("drift_tolerance", self.drift_tolerance)
        if not ZERO <= tolerance < ONE:
            raise CoveragePolicyError(
                f"drift_tolerance must be a share of spot notional in [0, 1), got {tolerance}"
            )
        object.__setattr__(self, "drift_tolerance", tolerance)
        if not isinstance(self.max_drift_duration, timedelta):
            raise TypeError(
                f"max_drift_duration must be a timedelta, got {type(self.max_drift_duration)}"
            )
        if self.max_drift_duration < timedelta(0):
            raise CoveragePolicyError(
                f"max_drift_duration must not be negative, got {self.max_drift_duration}"
            )

    def requirement(self, phase: MarketPhase) -> CoverageRequirement:
        """The requirement of ``phase``."""
        return self.requirements[phase]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CoveragePolicy:
        """Build a policy from configuration (e.g. a TOML table); errors name the key at fault.

        Expected shape::

            drift_tolerance = 0.02          # share of spot notional
            max_drift_duration = 900        # seconds (or a timedelta)
            [phases.stress]
            min_basis_ratio = 0.8
            target_basis_ratio = 1.0
            min_put_ratio = 0.3
            target_put_ratio = 0.5
            # ... and clearing, repair, confirmed

        Numbers may be ints, floats (read through their text, so 0.8 is exactly 0.8), strings
        or Decimals. Unknown keys are refused, like ``extra="forbid"``.
        """
        if not isinstance(raw, Mapping):
            raise CoveragePolicyError("coverage policy must be a table of keys")
        unknown = sorted(set(raw) - set(_POLICY_KEYS))
        if unknown:
            raise CoveragePolicyError(
                f"unknown key(s) {', '.join(map(str, unknown))}; expected {', '.join(_POLICY_KEYS)}"
            )
        for key in _POLICY_KEYS:
            if key not in raw:
                raise CoveragePolicyError(f"{key}: missing")

        phases_raw = raw["phases"]
        if not isinstance(phases_raw, Mapping):
            raise CoveragePolicyError("phases: must be a table with one entry per market phase")
        known = {phase.value: phase for phase in MarketPhase}
        requirements: dict[MarketPhase, CoverageRequirement] = {}
        for name, entry in phases_raw.items():
            if name not in known:
                raise CoveragePolicyError(
                    f"phases.{name}: unknown phase; expected one of {', '.join(known)}"
                )
            requirements[known[name]] = _requirement_from_mapping(f"phases.{name}", entry)
        missing = [name for name in known if known[name] not in requirements]
        if missing:
            raise CoveragePolicyError(
                f"phases: missing {', '.join(missing)}; every market phase needs requirements"
            )

        tolerance = _from_config("drift_tolerance", raw["drift_tolerance"])
        duration_raw = raw["max_drift_duration"]
        if isinstance(duration_raw, timedelta):
            duration = duration_raw
        else:
            seconds = _from_config("max_drift_duration", duration_raw)
            duration = timedelta(seconds=float(seconds))
        return cls(requirements, tolerance, duration)


def _requirement_from_mapping(prefix: str, entry: object) -> CoverageRequirement:
    if not isinstance(entry, Mapping):
        raise CoveragePolicyError(f"{prefix}: must be a table of the four ratios")
    unknown = sorted(set(entry) - set(_REQUIREMENT_FIELDS))
    if unknown:
        raise CoveragePolicyError(
            f"{prefix}.{unknown[0]}: unknown key; expected {', '.join(_REQUIREMENT_FIELDS)}"
        )
    values: dict[str, Decimal] = {}
    for name in _REQUIREMENT_FIELDS:
        if name not in entry:
            raise CoveragePolicyError(f"{prefix}.{name}: missing")
        values[name] = _from_config(f"{prefix}.{name}", entry[name])
    try:
        return CoverageRequirement(**values)
    except CoveragePolicyError as error:
        raise CoveragePolicyError(f"{prefix}.{error}") from None


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the desk holds of one base asset, across venues, in base units.

    - ``spot_qty``: the long spot position (≥ 0).
    - ``perp_short_qty``: the perpetual/future short, a *positive* number for a short; a
      negative value means a net long derivative position and gives negative basis coverage.
    - ``put_coverage_qty``: base units protected by puts (≥ 0), by notional or by delta.
    - ``spot_price``: the price the notionals are measured at (> 0).
    """

    spot_qty: Decimal
    perp_short_qty: Decimal
    put_coverage_qty: Decimal
    spot_price: Decimal

    def __post_init__(self) -> None:
        for name in ("spot_qty", "perp_short_qty", "put_coverage_qty", "spot_price"):
            object.__setattr__(self, name, _exact(name, getattr(self, name)))
        if self.spot_qty < 0:
            raise ValueError(f"spot_qty must not be negative (long spot only), got {self.spot_qty}")
        if self.put_coverage_qty < 0:
            raise ValueError(f"put_coverage_qty must not be negative, got {self.put_coverage_qty}")
        if self.spot_price <= 0:
            raise ValueError(f"spot_price must be positive, got {self.spot_price}")

    @property
    def spot_notional(self) -> Decimal:
        return self.spot_qty * self.spot_price

    def with_spot(self, spot_qty: Decimal) -> Exposure:
        """The same hedges against another spot quantity."""
        return Exposure(spot_qty, self.perp_short_qty, self.put_coverage_qty, self.spot_price)


def _ratio(hedge: Decimal, spot: Decimal) -> Decimal:
    return ONE if spot == 0 else hedge / spot


def basis_coverage(exposure: Exposure) -> Decimal:
    """Perp short ÷ spot; 1.0 when there is no spot (nothing to cover)."""
    return _ratio(exposure.perp_short_qty, exposure.spot_qty)


def put_coverage(exposure: Exposure) -> Decimal:
    """Put-protected base units ÷ spot; 1.0 when there is no spot (nothing to cover)."""
    return _ratio(exposure.put_coverage_qty, exposure.spot_qty)


@dataclass(frozen=True, slots=True)
class HedgeTarget:
    """What the hedge should be in a phase, and the adjustment to get there.

    Adjustments are in base units: a positive ``basis_adjustment`` sells more perp (a bigger
    short), a positive ``put_adjustment`` buys more put protection; negative values are hedge
    *reductions*, which the manager may only send as far as :func:`risk.unwind.next_step`
    allows (hedges are not unwound before confirmation, and then only in steps).
    ``within_tolerance`` is true when both legs sit within the policy's drift tolerance of
    their targets, so nothing needs doing.
    """

    phase: MarketPhase
    perp_short_target: Decimal
    put_target: Decimal
    basis_adjustment: Decimal
    put_adjustment: Decimal
    tolerance_qty: Decimal
    basis_within_tolerance: bool
    put_within_tolerance: bool

    @property
    def within_tolerance(self) -> bool:
        return self.basis_within_tolerance and self.put_within_tolerance


def hedge_target(exposure: Exposure, phase: MarketPhase, policy: CoveragePolicy) -> HedgeTarget:
    """The perp short and put protection ``phase`` wants for ``exposure``, and the gap to it.

    Targets are ``target_ratio × spot_qty``; the tolerance is ``drift_tolerance`` of the spot
    notional, expressed in base units (``drift_tolerance × spot_qty``), on each leg, both ways.
    """
    requirement = policy.requirement(phase)
    spot = exposure.spot_qty
    perp_target = requirement.target_basis_ratio * spot
    put_target = requirement.target_put_ratio * spot
    basis_adjustment = perp_target - exposure.perp_short_qty
    put_adjustment = put_target - exposure.put_coverage_qty
    tolerance_qty = policy.drift_tolerance * spot
    return HedgeTarget(
        phase=phase,
        perp_short_target=perp_target,
        put_target=put_target,
        basis_adjustment=basis_adjustment,
        put_adjustment=put_adjustment,
        tolerance_qty=tolerance_qty,
        basis_within_tolerance=abs(basis_adjustment) <= tolerance_qty,
        put_within_tolerance=abs(put_adjustment) <= tolerance_qty,
    )


def max_spot_buy(exposure: Exposure, phase: MarketPhase, policy: CoveragePolicy) -> Decimal | None:
    """Largest spot buy the current hedges allow in ``phase``; ``None`` when unlimited.

    A buy of exactly this size leaves each leg at its phase minimum; zero when the hedge is
    already at or below the minimum. Useful to size a child instead of having it denied.
    """
    requirement = policy.requirement(phase)
    bounds: list[Decimal] = []
    if requirement.min_basis_ratio > 0:
        bounds.append(exposure.perp_short_qty / requirement.min_basis_ratio)
    if requirement.min_put_ratio > 0:
        bounds.append(exposure.put_coverage_qty / requirement.min_put_ratio)
    if not bounds:
        return None
    return max(ZERO, min(bounds) - exposure.spot_qty)


def check_spot_child(
    exposure: Exposure, child_qty: Decimal, phase: MarketPhase, policy: CoveragePolicy
) -> Verdict:
    """Whether a spot child may go under the hedge invariant.

    ``child_qty`` is the signed change of the spot position if the child fills completely:
    positive for a buy, negative for a sell (``qty * side.sign``). Coverage is computed *after*
    the fill; a buy that takes basis or put coverage below the phase minimum is
    ``Denied(COVERAGE_BELOW_MINIMUM)``. Reducing spot (a sell, or zero) always passes: it only
    raises coverage.
    """
    if child_qty <= 0:
        return Approved()
    after = exposure.with_spot(exposure.spot_qty + child_qty)
    requirement = policy.requirement(phase)
    shortfalls: list[str] = []
    basis_after = basis_coverage(after)
    if basis_after < requirement.min_basis_ratio:
        shortfalls.append(
            f"basis coverage would fall to {_ratio_text(basis_after)}, below the {phase.value} "
            f"minimum {_ratio_text(requirement.min_basis_ratio)} (perp short "
            f"{after.perp_short_qty} against spot {after.spot_qty} after buying {child_qty})"
        )
    put_after = put_coverage(after)
    if put_after < requirement.min_put_ratio:
        shortfalls.append(
            f"put coverage would fall to {_ratio_text(put_after)}, below the {phase.value} "
            f"minimum {_ratio_text(requirement.min_put_ratio)} (puts cover "
            f"{after.put_coverage_qty} of spot {after.spot_qty} after buying {child_qty})"
        )
    if not shortfalls:
        return Approved()
    return Denied(
        DenyCode.COVERAGE_BELOW_MINIMUM,
        "; ".join(shortfalls) + "; holding spot until the hedge catches up",
    )


def coverage_shortfall(exposure: Exposure, phase: MarketPhase, policy: CoveragePolicy) -> Decimal:
    """How far the hedge sits *below* target, as a share of spot notional (worst leg, ≥ 0).

    Only shortfall counts: a hedge above target is not drift to repair urgently, because
    reducing it is a hedge unwind and goes through the confirmation gate (``risk.unwind``).
    """
    if exposure.spot_qty == 0:
        return ZERO
    target = hedge_target(exposure, phase, policy)
    worst = max(target.basis_adjustment, target.put_adjustment, ZERO)
    # Both sides are notionals at the same spot price: (gap × price) ÷ (spot × price).
    return (worst * exposure.spot_price) / exposure.spot_notional


def drift_exceeded(
    exposure: Exposure,
    phase: MarketPhase,
    policy: CoveragePolicy,
    drift_since: datetime | None,
    now: datetime,
) -> bool:
    """Whether the hedge has drifted below target for too much or too long.

    ``drift_since`` is when the caller first saw the shortfall beyond the tolerance (``None``
    when it is seen only now). The rule:

    1. A shortfall within ``drift_tolerance`` of spot notional is noise: ``False``.
    2. Beyond the tolerance *and* below the phase minimum on either leg: ``True`` at once —
       the minimum is a hard floor, no grace period.
    3. Beyond the tolerance but still at or above the minimum: ``True`` only once it has lasted
       ``max_drift_duration`` (``now - drift_since ≥ max_drift_duration``), giving the hedger
       time to catch up through normal child orders.
    """
    now = ensure_utc(now)
    if coverage_shortfall(exposure, phase, policy) <= policy.drift_tolerance:
        return False
    requirement = policy.requirement(phase)
    if (
        basis_coverage(exposure) < requirement.min_basis_ratio
        or put_coverage(exposure) < requirement.min_put_ratio
    ):
        return True
    started = now if drift_since is None else ensure_utc(drift_since)
    if started > now:
        raise ValueError(f"drift_since {started.isoformat()} is after now {now.isoformat()}")
    return now - started >= policy.max_drift_duration
