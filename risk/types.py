"""Risk vocabulary (pure values): verdicts with reason codes, trading states, market phases.

A risk check never raises for a business rule: it returns ``Approved()`` or
``Denied(code, detail)``; the manager stores every denial as an event with its code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DenyCode(enum.StrEnum):
    CHILD_NOTIONAL = "child_notional"
    PARENT_NOTIONAL = "parent_notional"
    DAILY_NOTIONAL = "daily_notional"
    POSITION_LIMIT = "position_limit"
    PRICE_COLLAR = "price_collar"
    STALE_MARKET_DATA = "stale_market_data"
    ORDER_RATE = "order_rate"
    VENUE_HALTED = "venue_halted"
    GLOBAL_HALTED = "global_halted"
    REDUCING_ONLY = "reducing_only"
    COVERAGE_BELOW_MINIMUM = "coverage_below_minimum"
    UNWIND_NOT_CONFIRMED = "unwind_not_confirmed"
    UNWIND_TOO_SOON = "unwind_too_soon"


@dataclass(frozen=True, slots=True)
class Approved:
    """The order may go."""

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Denied:
    """The order may not go: ``code`` says which rule, ``detail`` says why in a trader's words."""

    code: DenyCode
    detail: str

    @property
    def ok(self) -> bool:
        return False


Verdict = Approved | Denied


class TradingState(enum.StrEnum):
    """ACTIVE: anything allowed; REDUCING: only orders that reduce exposure; HALTED: nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class MarketPhase(enum.StrEnum):
    """The phases of a bottom, from the staging playbook."""

    STRESS = "stress"
    CLEARING = "clearing"
    REPAIR = "repair"
    CONFIRMED = "confirmed"
