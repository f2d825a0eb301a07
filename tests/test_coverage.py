"""Hedge coverage policy: spot gating, hedge targets, drift, and policy validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from risk.coverage import (
    CoveragePolicy,
    CoveragePolicyError,
    CoverageRequirement,
    Exposure,
    basis_coverage,
    check_spot_child,
    coverage_shortfall,
    drift_exceeded,
    hedge_target,
    max_spot_buy,
    put_coverage,
)
from risk.types import Approved, Denied, DenyCode, MarketPhase

D = Decimal
T0 = datetime(2025, 11, 20, 8, 0, tzinfo=UTC)
PRICE = D("60000")

RAW_POLICY: dict[str, Any] = {
    "drift_tolerance": 0.02,
    "max_drift_duration": 900,
    "phases": {
        "stress": {
            "min_basis_ratio": 0.8,
            "target_basis_ratio": 1.0,
            "min_put_ratio": 0.3,
            "target_put_ratio": 0.5,
        },
        "clearing": {
            "min_basis_ratio": 0.7,
            "target_basis_ratio": 0.9,
            "min_put_ratio": 0.25,
            "target_put_ratio": 0.4,
        },
        "repair": {
            "min_basis_ratio": 0.5,
            "target_basis_ratio": 0.75,
            "min_put_ratio": 0.1,
            "target_put_ratio": 0.25,
        },
        "confirmed": {
            "min_basis_ratio": 0,
            "target_basis_ratio": 0,
            "min_put_ratio": 0,
            "target_put_ratio": 0,
        },
    },
}


@pytest.fixture
def policy() -> CoveragePolicy:
    return CoveragePolicy.from_mapping(RAW_POLICY)


def exposure(spot: str, perp: str, puts: str, price: Decimal = PRICE) -> Exposure:
    return Exposure(D(spot), D(perp), D(puts), price)


# --- coverage ratios -------------------------------------------------------------------------


def test_coverage_ratios_and_no_spot_counts_as_covered() -> None:
    held = exposure("100", "85", "40")
    assert basis_coverage(held) == D("0.85")
    assert put_coverage(held) == D("0.4")
    empty = exposure("0", "0", "0")
    assert basis_coverage(empty) == 1
    assert put_coverage(empty) == 1


def test_exposure_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="spot_qty"):
        exposure("-1", "0", "0")
    with pytest.raises(ValueError, match="put_coverage_qty"):
        exposure("1", "0", "-1")
    with pytest.raises(ValueError, match="spot_price"):
        exposure("1", "0", "0", price=D(0))
    with pytest.raises(TypeError, match="spot_qty"):
        Exposure(1.5, D(0), D(0), PRICE)  # type: ignore[arg-type]


# --- spot gating -----------------------------------------------------------------------------


def test_buy_that_would_break_the_basis_minimum_is_denied_with_the_numbers(
    policy: CoveragePolicy,
) -> None:
    held = exposure("90", "62", "50")  # 62 / 90 = 0.69 already thin; after 10 more: 0.62
    verdict = check_spot_child(held, D("10"), MarketPhase.STRESS, policy)
    assert isinstance(verdict, Denied)
    assert verdict.code is DenyCode.COVERAGE_BELOW_MINIMUM
    assert verdict.detail.startswith(
        "basis coverage would fall to 0.62, below the stress minimum 0.80"
    )
    assert verdict.detail.endswith("; holding spot until the hedge catches up")
    assert "perp short 62 against spot 100 after buying 10" in verdict.detail
    assert "put coverage" not in verdict.detail  # puts cover 50 / 100 = 0.5 ≥ 0.3


def test_buy_that_would_break_the_put_minimum_is_denied(policy: CoveragePolicy) -> None:
    verdict = check_spot_child(exposure("90", "100", "25"), D("10"), MarketPhase.STRESS, policy)
    assert isinstance(verdict, Denied)
    assert verdict.detail.startswith("put coverage would fall to 0.25, below the stress minimum")


def test_both_legs_short_are_both_named(policy: CoveragePolicy) -> None:
    verdict = check_spot_child(exposure("10", "5", "1"), D("10"), MarketPhase.STRESS, policy)
    assert isinstance(verdict, Denied)
    assert "basis coverage would fall to 0.25" in verdict.detail
    assert "put coverage would fall to 0.05" in verdict.detail


def test_a_shortfall_never_prints_as_the_limit(policy: CoveragePolicy) -> None:
    # 79.99 / 100 = 0.7999: rounding half-up would print "0.80, below ... 0.80".
    verdict = check_spot_child(exposure("90", "79.99", "50"), D("10"), MarketPhase.STRESS, policy)
    assert isinstance(verdict, Denied)
    assert "would fall to 0.79," in verdict.detail


def test_coverage_exactly_at_the_minimum_passes(policy: CoveragePolicy) -> None:
    verdict = check_spot_child(exposure("90", "80", "30"), D("10"), MarketPhase.STRESS, policy)
    assert verdict == Approved()


@pytest.mark.parametrize("sell", ["-10", "-90", "0"])
def test_reducing_spot_always_passes_even_when_unhedged(policy: CoveragePolicy, sell: str) -> None:
    assert check_spot_child(exposure("90", "0", "0"), D(sell), MarketPhase.STRESS, policy).ok


def test_first_buy_from_flat_needs_the_hedge_in_place(policy: CoveragePolicy) -> None:
    flat = exposure("0", "0", "0")
    assert not check_spot_child(flat, D("1"), MarketPhase.STRESS, policy).ok
    prehedged = exposure("0", "1", "0.5")
    assert check_spot_child(prehedged, D("1"), MarketPhase.STRESS, policy).ok


@pytest.mark.parametrize(
    ("phase", "min_basis", "min_put"),
    [
        (MarketPhase.STRESS, "0.8", "0.3"),
        (MarketPhase.CLEARING, "0.7", "0.25"),
        (MarketPhase.REPAIR, "0.5", "0.1"),
    ],
)
def test_each_phase_gates_at_its_own_minimum(
    policy: CoveragePolicy, phase: MarketPhase, min_basis: str, min_put: str
) -> None:
    requirement = policy.requirement(phase)
    assert requirement.min_basis_ratio == D(min_basis)
    assert requirement.min_put_ratio == D(min_put)
    # After the buy spot is 100; hedges sit exactly at the minimum, then one unit under.
    at_minimum = Exposure(D(90), D(min_basis) * 100, D(min_put) * 100, PRICE)
    assert check_spot_child(at_minimum, D(10), phase, policy).ok
    thin_basis = Exposure(D(90), D(min_basis) * 100 - 1, D(min_put) * 100, PRICE)
    denied = check_spot_child(thin_basis, D(10), phase, policy)
    assert isinstance(denied, Denied)
    assert f"below the {phase.value} minimum" in denied.detail
    thin_puts = Exposure(D(90), D(min_basis) * 100, D(min_put) * 100 - 1, PRICE)
    assert not check_spot_child(thin_puts, D(10), phase, policy).ok


def test_confirmed_phase_requires_no_hedge(policy: CoveragePolicy) -> None:
    assert check_spot_child(exposure("500", "0", "0"), D(100), MarketPhase.CONFIRMED, policy).ok
    assert max_spot_buy(exposure("500", "0", "0"), MarketPhase.CONFIRMED, policy) is None


def test_the_same_buy_passes_in_repair_but_not_in_stress(policy: CoveragePolicy) -> None:
    held = exposure("90", "60", "20")  # after 10: basis 0.60, puts 0.20
    assert not check_spot_child(held, D(10), MarketPhase.STRESS, policy).ok
    assert not check_spot_child(held, D(10), MarketPhase.CLEARING, policy).ok
    assert check_spot_child(held, D(10), MarketPhase.REPAIR, policy).ok


def test_max_spot_buy_is_the_largest_buy_that_passes(policy: CoveragePolicy) -> None:
    held = exposure("90", "80", "40")
    largest = max_spot_buy(held, MarketPhase.STRESS, policy)
    assert largest == D(10)  # basis binds: 80 / 0.8 = 100 spot; puts allow 40 / 0.3 = 133
    assert check_spot_child(held, largest, MarketPhase.STRESS, policy).ok
    assert not check_spot_child(held, largest + D("0.001"), MarketPhase.STRESS, policy).ok
    assert max_spot_buy(exposure("90", "50", "40"), MarketPhase.STRESS, policy) == 0


def test_spot_is_held_until_the_hedge_catches_up_then_resumes(policy: CoveragePolicy) -> None:
    """Grow spot from 100 to 300 BTC in buys of 10 while a slower hedger adds 6 perp a round."""
    phase = MarketPhase.STRESS
    minimum = policy.requirement(phase)
    spot, perp, puts = D(100), D(100), D(50)
    denials = resumed = 0
    previously_denied = False
    for _ in range(100):
        if spot >= 300:
            break
        verdict = check_spot_child(Exposure(spot, perp, puts, PRICE), D(10), phase, policy)
        if verdict.ok:
            spot += 10
            resumed += previously_denied
            previously_denied = False
        else:
            assert isinstance(verdict, Denied)
            assert verdict.code is DenyCode.COVERAGE_BELOW_MINIMUM
            denials += 1
            previously_denied = True
        after = Exposure(spot, perp, puts, PRICE)
        assert basis_coverage(after) >= minimum.min_basis_ratio  # the invariant, every round
        assert put_coverage(after) >= minimum.min_put_ratio
        # The hedger works towards the target: at most 6 perp and 5 puts per round.
        target = hedge_target(after, phase, policy)
        perp += min(D(6), max(target.basis_adjustment, D(0)))
        puts += min(D(5), max(target.put_adjustment, D(0)))
    assert spot == 300
    assert denials > 0 and resumed > 0  # spot was held, and resumed once the hedge caught up


# --- hedge target and drift ------------------------------------------------------------------


def test_hedge_target_quantities_and_adjustments(policy: CoveragePolicy) -> None:
    target = hedge_target(exposure("100", "90", "45"), MarketPhase.STRESS, policy)
    assert target.perp_short_target == D(100)
    assert target.put_target == D(50)
    assert target.basis_adjustment == D(10)  # sell 10 more perp
    assert target.put_adjustment == D(5)
    assert target.tolerance_qty == D(2)  # 2 % of 100 BTC of spot notional
    assert not target.within_tolerance


def test_hedge_target_within_tolerance_both_ways(policy: CoveragePolicy) -> None:
    under = hedge_target(exposure("100", "98", "49"), MarketPhase.STRESS, policy)
    assert under.within_tolerance
    over = hedge_target(exposure("100", "102", "52"), MarketPhase.STRESS, policy)
    assert over.within_tolerance and over.basis_adjustment == D(-2)
    far_over = hedge_target(exposure("100", "103", "50"), MarketPhase.STRESS, policy)
    assert not far_over.basis_within_tolerance and far_over.put_within_tolerance


def test_repair_phase_targets_less_hedge(policy: CoveragePolicy) -> None:
    target = hedge_target(exposure("100", "100", "50"), MarketPhase.REPAIR, policy)
    assert target.perp_short_target == D(75)
    assert target.basis_adjustment == D(-25)  # a reduction: only through the unwind gate


def test_drift_within_the_notional_tolerance_is_not_exceeded(policy: CoveragePolicy) -> None:
    held = exposure("100", "98.5", "50")  # 1.5 % short of target
    assert coverage_shortfall(held, MarketPhase.STRESS, policy) == D("0.015")
    assert not drift_exceeded(held, MarketPhase.STRESS, policy, T0, T0 + timedelta(days=3))


def test_drift_beyond_tolerance_is_exceeded_only_after_max_duration(
    policy: CoveragePolicy,
) -> None:
    held = exposure("100", "95", "50")  # 5 % short of target, still above the 0.80 minimum
    assert coverage_shortfall(held, MarketPhase.STRESS, policy) == D("0.05")
    assert not drift_exceeded(held, MarketPhase.STRESS, policy, None, T0)
    assert not drift_exceeded(held, MarketPhase.STRESS, policy, T0, T0 + timedelta(minutes=14))
    assert drift_exceeded(held, MarketPhase.STRESS, policy, T0, T0 + timedelta(minutes=15))


def test_drift_below_the_phase_minimum_is_exceeded_at_once(policy: CoveragePolicy) -> None:
    held = exposure("100", "70", "50")  # basis 0.70 < 0.80 minimum
    assert drift_exceeded(held, MarketPhase.STRESS, policy, None, T0)
    # The same hedge is fine in repair, where the minimum is 0.50 (still drifted from 0.75).
    assert not drift_exceeded(held, MarketPhase.REPAIR, policy, None, T0)


def test_put_shortfall_counts_as_drift(policy: CoveragePolicy) -> None:
    held = exposure("100", "100", "40")  # puts 10 % under target, above the 0.30 minimum
    assert drift_exceeded(held, MarketPhase.STRESS, policy, T0, T0 + timedelta(hours=1))


def test_over_hedge_is_not_drift(policy: CoveragePolicy) -> None:
    held = exposure("100", "150", "90")
    assert coverage_shortfall(held, MarketPhase.STRESS, policy) == 0
    assert not drift_exceeded(held, MarketPhase.STRESS, policy, T0, T0 + timedelta(days=1))


def test_drift_refuses_naive_and_future_drift_start(policy: CoveragePolicy) -> None:
    held = exposure("100", "95", "50")
    with pytest.raises(ValueError, match="naive"):
        drift_exceeded(held, MarketPhase.STRESS, policy, None, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="after now"):
        drift_exceeded(held, MarketPhase.STRESS, policy, T0 + timedelta(hours=1), T0)


# --- policy validation -----------------------------------------------------------------------


def test_from_mapping_reads_floats_exactly(policy: CoveragePolicy) -> None:
    assert policy.drift_tolerance == D("0.02")
    assert policy.max_drift_duration == timedelta(minutes=15)
    assert policy.requirement(MarketPhase.STRESS) == CoverageRequirement(
        D("0.8"), D("1.0"), D("0.3"), D("0.5")
    )
    with pytest.raises(TypeError):
        policy.requirements[MarketPhase.STRESS] = policy.requirement(  # type: ignore[index]
            MarketPhase.REPAIR
        )


def _raw_with(path: tuple[str, ...], value: object) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "drift_tolerance": RAW_POLICY["drift_tolerance"],
        "max_drift_duration": RAW_POLICY["max_drift_duration"],
        "phases": {name: dict(entry) for name, entry in RAW_POLICY["phases"].items()},
    }
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("phases", "repair", "min_basis_ratio"),
            0.9,
            "phases.repair.min_basis_ratio 0.9 must not exceed target_basis_ratio 0.75",
        ),
        (
            ("phases", "stress", "target_put_ratio"),
            2.5,
            "phases.stress.target_put_ratio must be between 0 and 2, got 2.5",
        ),
        (
            ("phases", "clearing", "min_put_ratio"),
            -0.1,
            "phases.clearing.min_put_ratio must be between 0 and 2, got -0.1",
        ),
        (("phases", "stress", "min_put_ratio"), _DELETE, "phases.stress.min_put_ratio: missing"),
        (("phases", "stress", "min_put_ratio"), "lots", "phases.stress.min_put_ratio must be a"),
        (("phases", "stress", "max_ratio"), 1, "phases.stress.max_ratio: unknown key"),
        (("phases", "confirmed"), _DELETE, "phases: missing confirmed"),
        (("phases", "bottom"), {}, "phases.bottom: unknown phase"),
        (("drift_tolerance",), 1.5, "drift_tolerance must be a share of spot notional"),
        (("drift_tolerance",), True, "drift_tolerance must be a number"),
        (("max_drift_duration",), _DELETE, "max_drift_duration: missing"),
        (("max_drift_duration",), -5, "max_drift_duration must not be negative"),
        (("hedge",), 1, "unknown key(s) hedge"),
    ],
)
def test_from_mapping_errors_name_the_key(
    path: tuple[str, ...], value: object, message: str
) -> None:
    with pytest.raises(CoveragePolicyError) as caught:
        CoveragePolicy.from_mapping(_raw_with(path, value))
    assert message in str(caught.value)


def test_constructor_requires_every_phase_and_exact_numbers() -> None:
    stress = CoverageRequirement(D("0.8"), D(1), D("0.3"), D("0.5"))
    with pytest.raises(CoveragePolicyError, match="missing the phase"):
        CoveragePolicy({MarketPhase.STRESS: stress}, D("0.02"), timedelta(minutes=5))
    with pytest.raises(TypeError, match="min_basis_ratio must be a Decimal"):
        CoverageRequirement(0.8, D(1), D(0), D(0))  # type: ignore[arg-type]
    with pytest.raises(CoveragePolicyError, match=r"min_put_ratio 0\.6 must not exceed"):
        CoverageRequirement(D("0.8"), D(1), D("0.6"), D("0.5"))
