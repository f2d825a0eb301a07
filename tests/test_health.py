"""Venue health (pure): circuit breaker, error rate, stale book, kill switch; injected ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routers import health
from routers.health import CircuitState, HealthConfig, HealthReason, VenueHealthState

T0 = datetime(2024, 8, 8, 12, 0, tzinfo=UTC)
CONFIG = HealthConfig()  # book 5 s, window 60 s, rate 0.5 over >= 4 calls, 3 errors, 30 s cooldown


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def errors(state: VenueHealthState, *seconds: float) -> VenueHealthState:
    for s in seconds:
        state = health.record_error(state, at(s), CONFIG)
    return state


def successes(state: VenueHealthState, *seconds: float) -> VenueHealthState:
    for s in seconds:
        state = health.record_success(state, at(s), CONFIG)
    return state


def assess(state: VenueHealthState, now: float, book_age: float = 0.0) -> health.VenueHealth:
    return health.assess(state, at(now - book_age), at(now), CONFIG)


def test_defaults_are_the_documented_ones() -> None:
    assert CONFIG.max_book_age == timedelta(seconds=5)
    assert CONFIG.window == timedelta(seconds=60)
    assert (CONFIG.max_error_rate, CONFIG.min_calls) == (0.5, 4)
    assert (CONFIG.open_after, CONFIG.cooldown) == (3, timedelta(seconds=30))


def test_a_fresh_venue_is_tradable() -> None:
    verdict = health.assess(VenueHealthState("binance"), at(0), at(1), CONFIG)
    assert verdict.tradable and verdict.reason is HealthReason.OK
    assert verdict.venue == "binance"
    assert health.assess(VenueHealthState(), at(0), at(1), venue="okx").venue == "okx"


def test_circuit_opens_after_k_consecutive_errors() -> None:
    state = errors(VenueHealthState("v"), 0, 1)
    assert health.circuit_state(state, at(2), CONFIG) is CircuitState.CLOSED
    assert assess(state, 2).tradable
    state = errors(state, 2)
    assert health.circuit_state(state, at(2), CONFIG) is CircuitState.OPEN
    verdict = assess(state, 3)
    assert not verdict.tradable and verdict.reason is HealthReason.CIRCUIT_OPEN
    assert "3 consecutive errors" in verdict.detail


def test_a_success_breaks_the_run_of_errors() -> None:
    state = errors(VenueHealthState("v"), 0, 1)
    state = successes(state, 2)
    state = errors(state, 3, 4)
    assert health.circuit_state(state, at(5), CONFIG) is CircuitState.CLOSED


def test_half_open_after_the_cooldown_then_closed_by_a_success() -> None:
    state = errors(VenueHealthState("v"), 0, 1, 2)  # opens at 2
    assert health.circuit_state(state, at(31.9), CONFIG) is CircuitState.OPEN
    assert not assess(state, 31.9).tradable
    assert health.circuit_state(state, at(32), CONFIG) is CircuitState.HALF_OPEN
    verdict = assess(state, 32)
    assert verdict.tradable and "half-open" in verdict.detail
    state = successes(state, 33)
    assert health.circuit_state(state, at(33), CONFIG) is CircuitState.CLOSED
    # The errors that opened the circuit no longer count against the venue.
    assert health.error_rate(state, at(34), CONFIG) == (0, 1)
    assert assess(state, 34).tradable and assess(state, 34).detail == ""


def test_an_error_while_half_open_reopens_the_circuit() -> None:
    state = errors(VenueHealthState("v"), 0, 1, 2)
    state = errors(state, 40)  # half-open since 32: the trial failed
    assert health.circuit_state(state, at(40), CONFIG) is CircuitState.OPEN
    assert health.circuit_state(state, at(69.9), CONFIG) is CircuitState.OPEN
    assert health.circuit_state(state, at(70), CONFIG) is CircuitState.HALF_OPEN


def test_while_open_an_error_restarts_the_cooldown_and_a_success_changes_nothing() -> None:
    state = errors(VenueHealthState("v"), 0, 1, 2)
    state = errors(state, 20)
    assert health.circuit_state(state, at(45), CONFIG) is CircuitState.OPEN
    state = successes(state, 46)  # e.g. a late answer to a call made before it opened
    assert health.circuit_state(state, at(47), CONFIG) is CircuitState.OPEN
    assert health.circuit_state(state, at(50), CONFIG) is CircuitState.HALF_OPEN


def test_stale_and_missing_books_are_not_tradable() -> None:
    state = VenueHealthState("v")
    assert assess(state, 100, book_age=5).tradable
    stale = assess(state, 100, book_age=5.001)
    assert not stale.tradable and stale.reason is HealthReason.STALE_BOOK
    assert "5.0s old" in stale.detail
    missing = health.assess(state, None, at(100), CONFIG)
    assert not missing.tradable and missing.reason is HealthReason.NO_BOOK


def test_error_rate_over_the_window_with_a_minimum_number_of_calls() -> None:
    # Alternating errors never make 3 in a row, but the rate can be too high.
    state = errors(VenueHealthState("v"), 0)
    state = successes(state, 1)
    state = errors(state, 2)
    assert assess(state, 3).tradable  # 2 of 3: too few calls to judge
    state = successes(state, 3)
    assert assess(state, 4).tradable  # 2 of 4 = 0.5, not above
    state = errors(state, 4)
    verdict = assess(state, 5)  # 3 of 5
    assert not verdict.tradable and verdict.reason is HealthReason.ERROR_RATE
    assert verdict.detail.startswith("3 errors in 5 calls")
    # Calls older than the window stop counting.
    assert health.error_rate(state, at(61.5), CONFIG) == (2, 3)
    assert assess(state, 61.5).tradable


def test_kill_switch_beats_everything_and_can_be_lifted() -> None:
    state = health.set_kill_switch(VenueHealthState("v"), True)
    verdict = assess(state, 1)
    assert not verdict.tradable and verdict.reason is HealthReason.KILL_SWITCH
    assert assess(health.set_kill_switch(state, False), 1).tradable
    opened = health.set_kill_switch(errors(VenueHealthState("v"), 0, 1, 2), True)
    assert assess(opened, 3).reason is HealthReason.KILL_SWITCH


def test_open_circuit_is_reported_before_a_stale_book() -> None:
    state = errors(VenueHealthState("v"), 0, 1, 2)
    assert assess(state, 3, book_age=60).reason is HealthReason.CIRCUIT_OPEN


def test_states_are_immutable_and_outcomes_bounded() -> None:
    state = VenueHealthState("v")
    after = health.record_error(state, at(0), CONFIG)
    assert state.outcomes == () and after.outcomes == ((at(0), False),)
    small = HealthConfig(max_outcomes=5)
    for i in range(20):
        state = health.record_success(state, at(i), small)
    assert len(state.outcomes) == 5 and state.outcomes[0][0] == at(15)


def test_naive_times_and_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        health.record_error(VenueHealthState("v"), datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        HealthConfig(max_error_rate=1.5)
    with pytest.raises(ValueError):
        HealthConfig(window=timedelta(minutes=20))  # longer than what is retained
