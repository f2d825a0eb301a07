"""Venue health (pure): recent call outcomes, a circuit breaker, a kill switch, book staleness.

The caller feeds the outcome of every venue call (``record_success`` / ``record_error``) with
the time it happened, and asks ``assess`` whether the venue may take new orders at ``now``.
Nothing here reads a clock.

Circuit breaker::

    CLOSED    ── ``open_after`` consecutive errors ──► OPEN
    OPEN      ── ``cooldown`` elapsed ──────────────► HALF_OPEN
    HALF_OPEN ── success ──► CLOSED          HALF_OPEN ── error ──► OPEN (cooldown restarts)
    OPEN      ── error ────► OPEN (cooldown restarts)

While OPEN the venue gets no orders; an error while open restarts the cooldown and a success
(e.g. a late answer to a call made before it opened) proves nothing, so it stays open. Once the
cooldown has elapsed the circuit is HALF_OPEN: the venue is tradable again for trial orders; the
next success closes it, the next error reopens it. OPEN versus HALF_OPEN depends on ``now``, so
the state stores when the circuit opened and ``circuit_state`` derives the rest.

Record and assess with the same ``HealthConfig``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from ems.domain import ensure_utc
from routers.types import HealthReason, VenueHealth

__all__ = [
    "DEFAULT_HEALTH_CONFIG",
    "CircuitState",
    "HealthConfig",
    "HealthReason",
    "VenueHealth",
    "VenueHealthState",
    "assess",
    "circuit_state",
    "error_rate",
    "record_error",
    "record_success",
    "set_kill_switch",
]


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Thresholds of the health model.

    ``max_error_rate`` applies once the window holds at least ``min_calls`` calls; a rate
    strictly above it makes the venue untradable. ``retain`` bounds how long outcomes are kept
    (at most ``max_outcomes`` of them); it must cover ``window``.
    """

    max_book_age: timedelta = timedelta(seconds=5)
    window: timedelta = timedelta(seconds=60)
    max_error_rate: float = 0.5
    min_calls: int = 4
    open_after: int = 3
    cooldown: timedelta = timedelta(seconds=30)
    retain: timedelta = timedelta(minutes=10)
    max_outcomes: int = 1000

    def __post_init__(self) -> None:
        if self.max_book_age <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("max_book_age and window must be positive")
        if self.cooldown < timedelta(0):
            raise ValueError("cooldown must not be negative")
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")
        if self.min_calls < 1 or self.open_after < 1 or self.max_outcomes < 1:
            raise ValueError("min_calls, open_after and max_outcomes must be at least 1")
        if self.retain < self.window:
            raise ValueError("retain must cover the error-rate window")


DEFAULT_HEALTH_CONFIG: Final = HealthConfig()


@dataclass(frozen=True, slots=True)
class VenueHealthState:
    """What the health model remembers about one venue (immutable; functions return new ones).

    ``outcomes`` holds ``(when, ok)`` per recorded call, oldest first. ``opened_at`` is when the
    circuit last (re)opened, None while it is closed.
    """

    venue: str = ""
    outcomes: tuple[tuple[datetime, bool], ...] = ()
    consecutive_errors: int = 0
    opened_at: datetime | None = None
    kill_switch: bool = False


def circuit_state(
    state: VenueHealthState, now: datetime, config: HealthConfig = DEFAULT_HEALTH_CONFIG
) -> CircuitState:
    """The circuit at ``now``: OPEN until the cooldown since it opened elapses, then HALF_OPEN."""
    if state.opened_at is None:
        return CircuitState.CLOSED
    if ensure_utc(now) - state.opened_at >= config.cooldown:
        return CircuitState.HALF_OPEN
    return CircuitState.OPEN


def _kept(
    state: VenueHealthState, now: datetime, ok: bool, config: HealthConfig
) -> tuple[tuple[datetime, bool], ...]:
    horizon = now - config.retain
    kept = [entry for entry in state.outcomes if entry[0] >= horizon]
    kept.append((now, ok))
    return tuple(kept[-config.max_outcomes :])


def record_success(
    state: VenueHealthState, now: datetime, config: HealthConfig = DEFAULT_HEALTH_CONFIG
) -> VenueHealthState:
    """A venue call succeeded at ``now``: resets the error run; closes a half-open circuit (and
    then forgets the earlier outcomes). A success while the circuit is open changes nothing."""
    now = ensure_utc(now)
    circuit = circuit_state(state, now, config)
    if circuit is CircuitState.HALF_OPEN:
        # The trial passed: the venue starts afresh, the errors that opened the circuit no
        # longer count against its error rate.
        return replace(state, outcomes=((now, True),), consecutive_errors=0, opened_at=None)
    return replace(
        state,
        outcomes=_kept(state, now, True, config),
        consecutive_errors=0,
        opened_at=state.opened_at if circuit is CircuitState.OPEN else None,
    )


def record_error(
    state: VenueHealthState, now: datetime, config: HealthConfig = DEFAULT_HEALTH_CONFIG
) -> VenueHealthState:
    """A venue call failed at ``now``: opens the circuit after ``open_after`` consecutive errors,
    reopens a half-open one, and restarts the cooldown of an open one."""
    now = ensure_utc(now)
    errors = state.consecutive_errors + 1
    opened_at = state.opened_at
    if opened_at is not None or errors >= config.open_after:
        opened_at = now
    return replace(
        state,
        outcomes=_kept(state, now, False, config),
        consecutive_errors=errors,
        opened_at=opened_at,
    )


def set_kill_switch(state: VenueHealthState, on: bool) -> VenueHealthState:
    """Stop (``on``) or allow again new orders to the venue, whatever its other health."""
    return replace(state, kill_switch=on)


def error_rate(
    state: VenueHealthState, now: datetime, config: HealthConfig = DEFAULT_HEALTH_CONFIG
) -> tuple[int, int]:
    """``(errors, calls)`` recorded within ``config.window`` before ``now``."""
    since = ensure_utc(now) - config.window
    recent = [ok for when, ok in state.outcomes if when >= since]
    return sum(1 for ok in recent if not ok), len(recent)


def assess(
    state: VenueHealthState,
    book_ts: datetime | None,
    now: datetime,
    config: HealthConfig = DEFAULT_HEALTH_CONFIG,
    *,
    venue: str | None = None,
) -> VenueHealth:
    """Whether the venue may take new orders at ``now``, and the first reason why not.

    Checked in order: kill switch, open circuit, missing book, stale book (older than
    ``max_book_age``), error rate strictly above ``max_error_rate`` over ``window`` (once at
    least ``min_calls`` calls were made). A half-open circuit is tradable (trial orders, not
    gated by the error rate its own opening errors inflate) and says so in ``detail``.
    ``venue`` names the result (default: ``state.venue``).
    """
    now = ensure_utc(now)
    name = state.venue if venue is None else venue
    if state.kill_switch:
        return VenueHealth(name, False, HealthReason.KILL_SWITCH, "kill switch on")
    circuit = circuit_state(state, now, config)
    if circuit is CircuitState.OPEN:
        assert state.opened_at is not None
        remaining = config.cooldown - (now - state.opened_at)
        return VenueHealth(
            name,
            False,
            HealthReason.CIRCUIT_OPEN,
            f"{state.consecutive_errors} consecutive errors; "
            f"half-open in {remaining.total_seconds():.1f}s",
        )
    if book_ts is None:
        return VenueHealth(name, False, HealthReason.NO_BOOK, "no order book")
    age = now - ensure_utc(book_ts)
    if age > config.max_book_age:
        return VenueHealth(
            name,
            False,
            HealthReason.STALE_BOOK,
            f"book is {age.total_seconds():.1f}s old "
            f"(max {config.max_book_age.total_seconds():g}s)",
        )
    if circuit is CircuitState.HALF_OPEN:
        # The errors that opened the circuit are still in the window; the trial decides.
        return VenueHealth(name, True, HealthReason.OK, "circuit half-open: trial orders only")
    errors, calls = error_rate(state, now, config)
    if calls >= config.min_calls and errors / calls > config.max_error_rate:
        return VenueHealth(
            name,
            False,
            HealthReason.ERROR_RATE,
            f"{errors} errors in {calls} calls over {config.window.total_seconds():g}s "
            f"(max rate {config.max_error_rate:g})",
        )
    return VenueHealth(name, True)
