"""Confirmation-gated hedge unwind: table, steps, interval, pause/resume, and a property test."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ems.domain import Rounding, round_to_step
from ems.errors import InvalidTransition
from risk.types import Denied, DenyCode
from risk.unwind import (
    UNWIND_TRANSITIONS,
    ConfirmationChanged,
    StepDue,
    UnwindDecision,
    UnwindPlan,
    UnwindScope,
    UnwindState,
    UnwindStatus,
    apply,
    next_step,
    next_step_at,
)

D = Decimal
T0 = datetime(2025, 12, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
PLAN = UnwindPlan(steps=4, min_interval=HOUR, scope=UnwindScope.BOTH)
EVIDENCE = "taker buy/sell 1.12 > 1.0 for 5 d on 3 venues; price 2.1% above realized price"


class Clock:
    """A test clock: the unwind never reads time itself, the test injects it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


def confirm(state: UnwindState, at: datetime, evidence: str = EVIDENCE) -> UnwindState:
    new_state, _ = apply(state, ConfirmationChanged(True, evidence, at), PLAN)
    return new_state


def unconfirm(state: UnwindState, at: datetime, evidence: str = "ratio 0.94 < 1.0") -> UnwindState:
    new_state, _ = apply(state, ConfirmationChanged(False, evidence, at), PLAN)
    return new_state


def take_step(state: UnwindState, at: datetime) -> UnwindState:
    new_state, _ = apply(state, StepDue(at), PLAN)
    return new_state


def test_no_reduction_before_confirmation() -> None:
    state = UnwindState()
    verdict = next_step(state, T0, D(100), D(100), PLAN)
    assert isinstance(verdict, Denied)
    assert verdict.code is DenyCode.UNWIND_NOT_CONFIRMED
    assert "confirmation not reached" in verdict.detail
    # Still unconfirmed after a negative signal update: still refused, evidence quoted.
    state = unconfirm(state, T0, "liquidation density still rising")
    assert state.status is UnwindStatus.HOLDING
    verdict = next_step(state, T0, D(100), D(100), PLAN)
    assert isinstance(verdict, Denied)
    assert "liquidation density still rising" in verdict.detail
    with pytest.raises(InvalidTransition):
        apply(state, StepDue(T0), PLAN)


def test_confirmation_starts_the_unwind_and_records_its_evidence() -> None:
    state, decision = apply(UnwindState(), ConfirmationChanged(True, EVIDENCE, T0), PLAN)
    assert state.status is UnwindStatus.UNWINDING and state.confirmed
    assert isinstance(decision, UnwindDecision)
    assert decision.from_status is UnwindStatus.HOLDING
    assert decision.to_status is UnwindStatus.UNWINDING
    assert decision.evidence == EVIDENCE
    assert EVIDENCE in decision.reason
    assert "4 step(s) of 25% of the starting both hedge" in decision.reason
    with pytest.raises(AttributeError):
        decision.reason = "edited"  # type: ignore[misc]


def test_steps_of_the_plan_size_with_min_interval_on_an_injected_clock() -> None:
    clock = Clock(T0)
    start = D(100)
    hedge = start
    state = confirm(UnwindState(), clock.now)
    sizes = []
    for step in range(1, 5):
        qty = next_step(state, clock.now, start, hedge, PLAN)
        assert isinstance(qty, Decimal)
        sizes.append(qty)
        hedge -= qty
        state = take_step(state, clock.now)
        assert state.steps_done == step
        early = next_step(state, clock.advance(timedelta(minutes=59)), start, hedge, PLAN)
        if step < 4:
            assert isinstance(early, Denied)
            assert early.code is DenyCode.UNWIND_TOO_SOON
            expected = (clock.now + timedelta(minutes=1)).isoformat()
            assert early.detail.startswith(f"next step allowed at {expected}")
            with pytest.raises(ValueError, match="too soon"):
                apply(state, StepDue(clock.now), PLAN)
        clock.advance(timedelta(minutes=1))
    assert sizes == [D(25)] * 4
    assert hedge == 0
    assert state.status is UnwindStatus.DONE
    assert next_step(state, clock.now, start, hedge, PLAN) == 0


def test_losing_confirmation_pauses_and_reconfirmation_resumes_where_it_stopped() -> None:
    clock = Clock(T0)
    start, hedge = D(80), D(80)
    state = confirm(UnwindState(), clock.now)
    for _ in range(2):
        qty = next_step(state, clock.now, start, hedge, PLAN)
        assert isinstance(qty, Decimal) and qty == D(20)
        hedge -= qty
        state = take_step(state, clock.now)
        clock.advance(HOUR)

    state, decision = apply(
        state,
        ConfirmationChanged(False, "taker ratio 0.93 < 1.0 on 2 of 3 venues", clock.now),
        PLAN,
    )
    assert state.status is UnwindStatus.PAUSED
    assert "paused after 2 of 4" in decision.reason
    assert "0.93" in decision.evidence
    for _ in range(5):
        refused = next_step(state, clock.advance(HOUR), start, hedge, PLAN)
        assert isinstance(refused, Denied)
        assert refused.code is DenyCode.UNWIND_NOT_CONFIRMED
        assert "paused after 2 of 4" in refused.detail
    with pytest.raises(InvalidTransition):
        apply(state, StepDue(clock.now), PLAN)

    state, decision = apply(state, ConfirmationChanged(True, EVIDENCE, clock.now), PLAN)
    assert state.status is UnwindStatus.UNWINDING
    assert "resuming the unwind at step 3 of 4" in decision.reason
    assert next_step(state, clock.now, start, hedge, PLAN) == D(20)
    state = take_step(state, clock.now)
    assert state.steps_done == 3


def test_min_interval_counts_from_the_last_step_across_a_pause() -> None:
    state = take_step(confirm(UnwindState(), T0), T0)
    state = unconfirm(state, T0 + timedelta(minutes=10))
    state = confirm(state, T0 + timedelta(minutes=20))
    assert next_step_at(state, PLAN) == T0 + HOUR
    refused = next_step(state, T0 + timedelta(minutes=30), D(100), D(75), PLAN)
    assert isinstance(refused, Denied) and refused.code is DenyCode.UNWIND_TOO_SOON


def test_a_partly_executed_step_is_caught_up_but_never_run_ahead() -> None:
    state = confirm(UnwindState(), T0)
    assert next_step(state, T0, D(100), D(100), PLAN) == D(25)
    state = take_step(state, T0)  # only 10 of the 25 was executed: hedge now 90
    assert next_step(state, T0 + HOUR, D(100), D(90), PLAN) == D(40)  # up to 50 in total
    # Unwound ahead of schedule by other means: nothing more this step.
    assert next_step(state, T0 + HOUR, D(100), D(40), PLAN) == 0


def test_steps_are_sized_on_the_starting_hedge_and_never_exceed_what_is_held() -> None:
    state = confirm(UnwindState(), T0)
    # Puts expired before the first step: 90 of 100 is gone, beyond step 1's 25 %.
    assert next_step(state, T0, D(100), D(10), PLAN) == 0
    # A hedge added after the start does not enlarge the steps.
    assert next_step(state, T0, D(100), D(130), PLAN) == D(25)
    assert next_step(state, T0, D(100), D(0), PLAN) == 0
    whole = UnwindPlan(steps=1, min_interval=HOUR)
    state, _ = apply(UnwindState(), ConfirmationChanged(True, EVIDENCE, T0), whole)
    assert next_step(state, T0, D(100), D(100), whole) == D(100)


def test_inexact_shares_round_towards_less_unwound() -> None:
    plan = UnwindPlan(steps=3, min_interval=HOUR)
    state, _ = apply(UnwindState(), ConfirmationChanged(True, EVIDENCE, T0), plan)
    qty = next_step(state, T0, D("0.017"), D("0.017"), plan)
    assert isinstance(qty, Decimal)
    assert qty * 3 <= D("0.017")


def test_steps_round_down_to_the_lot() -> None:
    plan = UnwindPlan(steps=3, min_interval=HOUR)
    state, _ = apply(UnwindState(), ConfirmationChanged(True, EVIDENCE, T0), plan)
    qty = next_step(state, T0, D(1), D(1), plan, lot_size=D("0.001"))
    assert qty == D("0.333")


def test_after_the_last_step_a_residual_is_released_only_while_confirmed() -> None:
    clock = Clock(T0)
    state = confirm(UnwindState(), clock.now)
    for _ in range(4):
        state = take_step(state, clock.now)
        clock.advance(HOUR)
    assert state.status is UnwindStatus.DONE
    assert next_step(state, clock.now, D(100), D(3), PLAN) == D(3)
    lost = unconfirm(state, clock.now)
    assert lost.status is UnwindStatus.DONE
    refused = next_step(lost, clock.now, D(100), D(3), PLAN)
    assert isinstance(refused, Denied) and refused.code is DenyCode.UNWIND_NOT_CONFIRMED
    with pytest.raises(ValueError, match="unconfirmed"):
        apply(lost, StepDue(clock.now), PLAN)


def test_inputs_must_arrive_in_time_order_and_be_aware() -> None:
    state = confirm(UnwindState(), T0)
    with pytest.raises(ValueError, match="time order"):
        apply(state, StepDue(T0 - timedelta(seconds=1)), PLAN)
    with pytest.raises(ValueError, match="naive"):
        StepDue(datetime(2025, 12, 1))


def test_transition_table_covers_only_meaningful_moves() -> None:
    missing = {
        (status.value, trigger.value)
        for status in UnwindStatus
        for trigger in {key[1] for key in UNWIND_TRANSITIONS}
        if (status, trigger) not in UNWIND_TRANSITIONS
    }
    assert missing == {("holding", "step"), ("paused", "step")}


def test_plan_validation_and_config() -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        UnwindPlan(steps=0)
    with pytest.raises(ValueError, match="min_interval must not be negative"):
        UnwindPlan(min_interval=-HOUR)
    plan = UnwindPlan.from_mapping({"steps": 5, "min_interval": 7200, "scope": "basis"})
    assert plan == UnwindPlan(5, 2 * HOUR, UnwindScope.BASIS)
    assert plan.scope.covers_basis and not plan.scope.covers_puts
    with pytest.raises(ValueError, match="scope must be one of basis, puts, both"):
        UnwindPlan.from_mapping({"scope": "calls"})
    with pytest.raises(ValueError, match="unknown key"):
        UnwindPlan.from_mapping({"step": 4})
    with pytest.raises(ValueError, match="negative"):
        next_step(UnwindState(), T0, D(-1), D(0), PLAN)


# --- property: never reduced while unconfirmed, never faster than the plan -----------------


@dataclass(frozen=True)
class Confirm:
    confirmed: bool


@dataclass(frozen=True)
class Wait:
    minutes: int


@dataclass(frozen=True)
class TryStep:
    executed_share: Decimal  # how much of the allowed quantity the venue actually filled


LOT = D("0.001")
operations = st.lists(
    st.one_of(
        st.builds(Confirm, st.booleans()),
        st.builds(Wait, st.integers(min_value=0, max_value=180)),
        st.builds(
            TryStep,
            st.sampled_from([D(0), D("0.3"), D("0.5"), D(1), D(1), D(1)]),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=operations,
    steps=st.integers(min_value=1, max_value=6),
    interval_minutes=st.integers(min_value=0, max_value=120),
    start=st.decimals(min_value=D("0.001"), max_value=D(1000), places=3),
)
def test_hedge_is_never_reduced_unconfirmed_nor_faster_than_the_plan(
    ops: list[Confirm | Wait | TryStep], steps: int, interval_minutes: int, start: Decimal
) -> None:
    plan = UnwindPlan(steps=steps, min_interval=timedelta(minutes=interval_minutes))
    clock = Clock(T0)
    state = UnwindState()
    hedge = start
    confirmed = False
    step_times: list[datetime] = []
    for op in ops:
        if isinstance(op, Confirm):
            confirmed = op.confirmed
            state, decision = apply(
                state, ConfirmationChanged(op.confirmed, f"signal set {len(ops)}", clock.now), plan
            )
            assert decision.evidence == f"signal set {len(ops)}" and decision.reason
        elif isinstance(op, Wait):
            clock.advance(timedelta(minutes=op.minutes))
        else:
            verdict = next_step(state, clock.now, start, hedge, plan, lot_size=LOT)
            if isinstance(verdict, Denied):
                if not confirmed:
                    assert verdict.code is DenyCode.UNWIND_NOT_CONFIRMED
                continue
            assert confirmed, "a reduction was allowed while unconfirmed"
            if step_times:
                assert clock.now - step_times[-1] >= plan.min_interval
            assert 0 <= verdict <= hedge
            assert verdict % LOT == 0
            hedge -= round_to_step(verdict * op.executed_share, LOT, Rounding.DOWN)
            step_times.append(clock.now)
            state, _ = apply(state, StepDue(clock.now), plan)
        # Never more than the plan's cumulative share of the starting hedge, never below zero.
        assert hedge >= 0
        assert Fraction(start - hedge) <= Fraction(start) * min(len(step_times), steps) / steps
        assert state.confirmed == confirmed
        if state.status is UnwindStatus.DONE:
            assert len(step_times) >= steps
    for earlier, later in itertools.pairwise(step_times):
        assert later - earlier >= plan.min_interval
