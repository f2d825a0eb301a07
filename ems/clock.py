"""Injectable clocks: the live wall clock and a test/replay clock advanced by its owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from ems.domain import ensure_utc


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, aware UTC."""
        ...


class LiveClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class TestClock:
    """A clock that only moves when told to; used by tests and replays.

    Time never goes backwards: ``set`` to an earlier moment raises.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(f"cannot move the clock backwards by {delta}")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        moment = ensure_utc(moment)
        if moment < self._now:
            raise ValueError(f"cannot move the clock back from {self._now} to {moment}")
        self._now = moment
        return self._now
