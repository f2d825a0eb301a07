"""The confirmation-gated hedge unwind, as a state machine.

Hedges (the basis short and the protective puts) are held while the bottom is unconfirmed. Once
the confirmation signals coexist the hedge is released *gradually*: in ``plan.steps`` equal steps
of the hedge held when the unwind began, at least ``plan.min_interval`` apart. If confirmation is
lost part-way the unwind pauses with the remaining hedge held, and resumes from the same step
when confirmation returns.

States and inputs::

    HOLDING   --confirmed-->   UNWINDING  --confirmation lost-->  PAUSED
    PAUSED    --confirmed-->   UNWINDING  --last step due----->   DONE

Status changes only through :func:`apply` and the :data:`UNWIND_TRANSITIONS` table; anything else
raises ``InvalidTransition``. Every application returns an :class:`UnwindDecision` naming the
evidence (signals and thresholds) that caused it, for the manager to store. :func:`next_step`
says how much hedge may be reduced *now*, or why not, as ``Denied(code, detail)``.

Pure: time is always an argument, never read from a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

from ems.domain import Rounding, ensure_utc, round_to_step
from ems.errors import InvalidTransition
from risk.types import Denied, DenyCode

ZERO = Decimal(0)


class UnwindStatus(enum.StrEnum):
    HOLDING = "holding"  # unconfirmed: hedges held in full
    UNWINDING = "unwinding"  # confirmed: reducing step by step
    PAUSED = "paused"  # confirmation lost during the unwind: remaining hedge held
    DONE = "done"  # every planned step taken


class UnwindScope(enum.StrEnum):
    """Which hedge legs the plan releases."""

    BASIS = "basis"
    PUTS = "puts"
    BOTH = "both"

    @property
    def covers_basis(self) -> bool:
        return self is not UnwindScope.PUTS

    @property
    def covers_puts(self) -> bool:
        return self is not UnwindScope.BASIS


@dataclass(frozen=True, slots=True)
class ConfirmationChanged:
    """The signal state says the bottom is (or no longer is) confirmed, and why."""

    confirmed: bool
    evidence: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at))


@dataclass(frozen=True, slots=True)
class StepDue:
    """The step :func:`next_step` allowed at ``at`` is being sent: count it, restart the interval.

    Apply it after acting on a step (a zero-quantity step too, to advance the schedule).
    """

    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at))


UnwindInput = ConfirmationChanged | StepDue


@dataclass(frozen=True, slots=True)
class UnwindPlan:
    """How the hedge is released once confirmed.

    - ``steps``: number of equal steps, each ``1/steps`` of the hedge held at the start of the
      unwind (4 → 25 % each).
    - ``min_interval``: least time between two steps (the first step may go at confirmation).
    - ``scope``: which legs the plan releases (basis short, puts, or both); the manager runs the
      same schedule for each leg in scope.
    """

    steps: int = 4
    min_interval: timedelta = timedelta(hours=24)
    scope: UnwindScope = UnwindScope.BOTH

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise TypeError(f"steps must be a whole number, got {self.steps!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not isinstance(self.min_interval, timedelta):
            raise TypeError(f"min_interval must be a timedelta, got {self.min_interval!r}")
        if self.min_interval < timedelta(0):
            raise ValueError(f"min_interval must not be negative, got {self.min_interval}")
        object.__setattr__(self, "scope", UnwindScope(self.scope))

    def cumulative_share(self, steps_taken: int) -> Decimal:
        """Share of the starting hedge the plan allows unwound after ``steps_taken`` steps."""
        if steps_taken >= self.steps:
            return Decimal(1)
        return Decimal(max(steps_taken, 0)) / Decimal(self.steps)

    def describe(self) -> str:
        share = (Decimal(100) / Decimal(self.steps)).normalize()
        return (
            f"{self.steps} step(s) of {share:f}% of the starting {self.scope.value} hedge, "
            f"at least {self.min_interval} apart"
        )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> UnwindPlan:
        """Build a plan from configuration; ``min_interval`` in seconds (or a timedelta).

        Errors name the key: ``{"steps": 0}`` → ``steps must be at least 1, got 0``.
        """
        known = {"steps", "min_interval", "scope"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; expected {sorted(known)}")
        kwargs: dict[str, Any] = {}
        if "steps" in raw:
            kwargs["steps"] = raw["steps"]
        if "min_interval" in raw:
            interval = raw["min_interval"]
            if isinstance(interval, timedelta):
                kwargs["min_interval"] = interval
            elif isinstance(interval, int | float) and not isinstance(interval, bool):
                kwargs["min_interval"] = timedelta(seconds=interval)
            else:
                raise ValueError(f"min_interval must be a number of seconds, got {interval!r}")
        if "scope" in raw:
            try:
                kwargs["scope"] = UnwindScope(raw["scope"])
            except ValueError:
                choices = ", ".join(s.value for s in UnwindScope)
                raise ValueError(f"scope must be one of {choices}, got {raw['scope']!r}") from None
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class UnwindState:
    """Where the unwind stands; a value, replaced by :func:`apply`."""

    status: UnwindStatus = UnwindStatus.HOLDING
    confirmed: bool = False
    steps_done: int = 0
    last_step_at: datetime | None = None
    updated_at: datetime | None = None
    evidence: str = ""  # the evidence behind the latest confirmation change


@dataclass(frozen=True, slots=True)
class UnwindDecision:
    """One applied input: what moved, why, and on which evidence. The manager stores it."""

    at: datetime
    trigger: str  # "confirmation_changed" | "step_due"
    from_status: UnwindStatus
    to_status: UnwindStatus
    confirmed: bool
    steps_done: int
    evidence: str
    reason: str


class _Trigger(enum.Enum):
    CONFIRMED = "confirmed"
    UNCONFIRMED = "unconfirmed"
    STEP = "step"


_US = UnwindStatus
_AFTER_STEP = "after_step"  # marker: UNWINDING, or DONE once the last step is taken

UNWIND_TRANSITIONS: dict[tuple[UnwindStatus, _Trigger], UnwindStatus | str] = {
    (_US.HOLDING, _Trigger.CONFIRMED): _US.UNWINDING,
    (_US.HOLDING, _Trigger.UNCONFIRMED): _US.HOLDING,
    (_US.UNWINDING, _Trigger.CONFIRMED): _US.UNWINDING,
    (_US.UNWINDING, _Trigger.UNCONFIRMED): _US.PAUSED,
    (_US.UNWINDING, _Trigger.STEP): _AFTER_STEP,
    (_US.PAUSED, _Trigger.CONFIRMED): _US.UNWINDING,
    (_US.PAUSED, _Trigger.UNCONFIRMED): _US.PAUSED,
    # Done: the plan is complete; confirmation changes are still recorded (they gate any
    # residual clean-up step), and a residual step may be taken while confirmed.
    (_US.DONE, _Trigger.CONFIRMED): _US.DONE,
    (_US.DONE, _Trigger.UNCONFIRMED): _US.DONE,
    (_US.DONE, _Trigger.STEP): _US.DONE,
}
"""Every allowed (status, input) → status move; a missing pair raises ``InvalidTransition``."""


def _trigger(event: UnwindInput) -> _Trigger:
    if isinstance(event, StepDue):
        return _Trigger.STEP
    return _Trigger.CONFIRMED if event.confirmed else _Trigger.UNCONFIRMED


def next_step_at(state: UnwindState, plan: UnwindPlan) -> datetime | None:
    """Earliest time the next step may go, or ``None`` when nothing holds it back in time."""
    if state.last_step_at is None:
        return None
    return state.last_step_at + plan.min_interval


def apply(
    state: UnwindState, event: UnwindInput, plan: UnwindPlan
) -> tuple[UnwindState, UnwindDecision]:
    """Apply one input; return the new state and the decision record explaining it.

    Raises ``InvalidTransition`` for a pair outside :data:`UNWIND_TRANSITIONS` (a step while
    holding or paused) and ``ValueError`` for an input older than the state, or a step taken
    while unconfirmed or before the plan's ``min_interval``.
    """
    if state.updated_at is not None and event.at < state.updated_at:
        raise ValueError(
            f"unwind input at {event.at.isoformat()} is older than the state "
            f"({state.updated_at.isoformat()}); inputs must arrive in time order"
        )
    trigger = _trigger(event)
    target = UNWIND_TRANSITIONS.get((state.status, trigger))
    if target is None:
        raise InvalidTransition("hedge unwind", state.status.value, f"{trigger.value} input")

    if isinstance(event, StepDue):
        if not state.confirmed:
            raise ValueError("a hedge unwind step cannot be taken while unconfirmed")
        allowed_at = next_step_at(state, plan)
        if allowed_at is not None and event.at < allowed_at:
            raise ValueError(
                f"hedge unwind step at {event.at.isoformat()} is too soon: "
                f"next step allowed at {allowed_at.isoformat()}"
            )
        steps_done = min(state.steps_done + 1, plan.steps)
        status = _US.DONE if target == _US.DONE or steps_done >= plan.steps else _US.UNWINDING
        new_state = replace(
            state, status=status, steps_done=steps_done, last_step_at=event.at, updated_at=event.at
        )
        if state.status is _US.DONE:
            reason = (
                f"residual hedge clean-up after the last of {plan.steps} step(s); "
                f"confirmation still holds ({state.evidence})"
            )
        else:
            reason = (
                f"unwind step {steps_done} of {plan.steps} taken "
                f"({plan.cumulative_share(steps_done) * 100:.0f}% of the starting hedge released "
                f"in total); confirmation holds ({state.evidence})"
            )
            if status is _US.DONE:
                reason += "; plan complete"
        return new_state, _decision(event, "step_due", state, new_state, reason)

    assert isinstance(target, UnwindStatus)
    new_state = replace(
        state,
        status=target,
        confirmed=event.confirmed,
        evidence=event.evidence,
        updated_at=event.at,
    )
    reason = _confirmation_reason(state, new_state, event, plan)
    return new_state, _decision(event, "confirmation_changed", state, new_state, reason)


def _confirmation_reason(
    before: UnwindState, after: UnwindState, event: ConfirmationChanged, plan: UnwindPlan
) -> str:
    progress = f"{before.steps_done} of {plan.steps} step(s) taken"
    move = (before.status, after.status)
    if move == (_US.HOLDING, _US.UNWINDING):
        return f"confirmation reached ({event.evidence}); unwinding in {plan.describe()}"
    if move == (_US.PAUSED, _US.UNWINDING):
        return (
            f"confirmation regained ({event.evidence}); resuming the unwind at step "
            f"{before.steps_done + 1} of {plan.steps}"
        )
    if move == (_US.UNWINDING, _US.PAUSED):
        return f"confirmation lost ({event.evidence}); unwind paused after {progress}, hedge held"
    if after.status is _US.DONE:
        state_word = "holds" if event.confirmed else "lost"
        return f"confirmation {state_word} ({event.evidence}) after the plan completed"
    if event.confirmed:
        return f"confirmation reaffirmed ({event.evidence}); unwind continues, {progress}"
    return f"still unconfirmed ({event.evidence}); hedges held, {progress}"


def _decision(
    event: UnwindInput, trigger: str, before: UnwindState, after: UnwindState, reason: str
) -> UnwindDecision:
    return UnwindDecision(
        at=event.at,
        trigger=trigger,
        from_status=before.status,
        to_status=after.status,
        confirmed=after.confirmed,
        steps_done=after.steps_done,
        evidence=after.evidence,
        reason=reason,
    )


def next_step(
    state: UnwindState,
    now: datetime,
    hedge_qty_at_start: Decimal,
    hedge_qty_now: Decimal,
    plan: UnwindPlan,
    *,
    lot_size: Decimal | None = None,
) -> Decimal | Denied:
    """The hedge quantity (base units, one leg) that may be reduced at ``now``, or why not.

    - Not confirmed (holding, paused, or done with confirmation lost):
      ``Denied(UNWIND_NOT_CONFIRMED)`` with the state and evidence.
    - Within ``min_interval`` of the last step: ``Denied(UNWIND_TOO_SOON, "next step allowed
      at …")``.
    - Otherwise the quantity that brings the total unwound (``hedge_qty_at_start -
      hedge_qty_now``) up to the plan's cumulative share after this step; a step left partly
      executed is caught up by the next one, but the total never runs ahead of the schedule
      and never exceeds the hedge still held. Rounded down to ``lot_size`` when given.

    ``hedge_qty_at_start`` is the leg's hedge when the unwind began (the manager records it at
    the HOLDING → UNWINDING decision); both quantities are magnitudes (≥ 0).
    """
    now = ensure_utc(now)
    for name, value in (
        ("hedge_qty_at_start", hedge_qty_at_start),
        ("hedge_qty_now", hedge_qty_now),
    ):
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    if not state.confirmed or state.status in (_US.HOLDING, _US.PAUSED):
        return Denied(DenyCode.UNWIND_NOT_CONFIRMED, _not_confirmed_detail(state, plan))
    allowed_at = next_step_at(state, plan)
    if allowed_at is not None and now < allowed_at:
        assert state.last_step_at is not None
        return Denied(
            DenyCode.UNWIND_TOO_SOON,
            f"next step allowed at {allowed_at.isoformat()}: step {state.steps_done} of "
            f"{plan.steps} was taken at {state.last_step_at.isoformat()} and steps are at least "
            f"{plan.min_interval} apart",
        )
    steps_allowed = min(state.steps_done + 1, plan.steps)
    with localcontext() as context:
        # An inexact share (1/3) rounds towards less unwound, never ahead of the schedule.
        context.rounding = ROUND_FLOOR
        allowed_total = hedge_qty_at_start * steps_allowed / plan.steps
    unwound = max(ZERO, hedge_qty_at_start - hedge_qty_now)
    qty = max(ZERO, min(allowed_total - unwound, hedge_qty_now))
    if lot_size is not None and qty > 0:
        qty = round_to_step(qty, lot_size, Rounding.DOWN)
    return qty


def _not_confirmed_detail(state: UnwindState, plan: UnwindPlan) -> str:
    evidence = f" ({state.evidence})" if state.evidence else ""
    if state.status is _US.HOLDING:
        return (
            f"hedge unwind refused: confirmation not reached{evidence}; hedges are held until "
            "the confirmation signals coexist"
        )
    if state.status is _US.PAUSED:
        return (
            f"hedge unwind refused: confirmation lost{evidence}; unwind paused after "
            f"{state.steps_done} of {plan.steps} step(s), remaining hedge held"
        )
    return (
        f"hedge unwind refused: confirmation lost{evidence} in state {state.status.value}; "
        "residual hedge held"
    )
