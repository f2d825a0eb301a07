"""Order state machines: transition tables, fills, dedupe, overfill; property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ems.domain import Liquidity, OrderType, Side, TimeInForce
from ems.errors import InvalidTransition, Overfill
from ems.events import (
    CHILD_EVENTS,
    PARENT_EVENTS,
    ChildAccepted,
    ChildCancelled,
    ChildCancelRequested,
    ChildEvent,
    ChildExpired,
    ChildFilled,
    ChildRejected,
    ChildSubmitted,
    Event,
    ParentAccepted,
    ParentCancelRequested,
    ParentCompleted,
    ParentEvent,
    ParentExpiring,
    ParentFillApplied,
    ParentNote,
    ParentPaused,
    ParentRejected,
    ParentResumed,
    ParentStarted,
    ParentWoundDown,
    from_payload,
    to_payload,
)
from ems.orders import (
    CHILD_TRANSITIONS,
    PARENT_TRANSITIONS,
    ChildOrder,
    ChildStatus,
    ParentOrder,
    ParentStatus,
)

T0 = datetime(2024, 8, 8, 23, 55, tzinfo=UTC)
CID = "PTEST-1"


def make_child(qty: str = "1.0") -> ChildOrder:
    return ChildOrder(
        client_order_id=CID,
        parent_id="PTEST",
        seq=1,
        venue="sim",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal(qty),
        price=Decimal("61000"),
        time_in_force=TimeInForce.GTC,
        created_at=T0,
        updated_at=T0,
    )


def make_parent(qty: str = "1.0") -> ParentOrder:
    return ParentOrder(
        id="PTEST",
        client_id="c1",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=Decimal(qty),
        algo="twap",
        venues=("sim",),
        start_at=T0,
        end_at=T0 + timedelta(minutes=5),
        created_at=T0,
        updated_at=T0,
    )


def fill(trade_id: str, qty: str, price: str = "61000") -> ChildFilled:
    return ChildFilled(
        ts=T0,
        client_order_id=CID,
        venue="sim",
        trade_id=trade_id,
        symbol="BTC/USDT",
        side=Side.BUY,
        price=Decimal(price),
        qty=Decimal(qty),
        fee=Decimal("0.01"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
    )


def child_event(kind: type[ChildEvent], trade_id: str = "t", qty: str = "0.1") -> ChildEvent:
    if kind is ChildFilled:
        return fill(trade_id, qty)
    if kind is ChildAccepted:
        return ChildAccepted(T0, CID, "v1")
    if kind is ChildRejected:
        return ChildRejected(T0, CID, "no")
    return kind(T0, CID)


def parent_event(kind: type[ParentEvent], trade_id: str = "t", qty: str = "0.1") -> ParentEvent:
    pid = "PTEST"
    if kind is ParentFillApplied:
        return ParentFillApplied(
            T0, pid, trade_id, "sim", Decimal("61000"), Decimal(qty), Decimal(0)
        )
    if kind is ParentRejected:
        return ParentRejected(T0, pid, "bad")
    if kind is ParentNote:
        return ParentNote(T0, pid, "held", "why")
    return kind(T0, pid)


class TestChildStateMachine:
    def test_happy_path_to_filled_through_partial(self) -> None:
        child = make_child("1.0")
        child.apply(ChildSubmitted(T0, CID))
        child.apply(ChildAccepted(T0, CID, "v1"))
        child.apply(fill("a", "0.4"))
        assert child.status is ChildStatus.PARTIALLY_FILLED
        child.apply(fill("b", "0.6", price="61010"))
        assert child.status is ChildStatus.FILLED
        assert child.filled_qty == Decimal("1.0")
        assert child.avg_price == Decimal("61006")
        assert child.working_qty == 0

    def test_duplicate_trade_id_is_ignored(self) -> None:
        child = make_child("1.0")
        child.apply(ChildSubmitted(T0, CID))
        assert child.apply(fill("a", "0.4")) is True
        assert child.apply(fill("a", "0.4")) is False
        assert child.filled_qty == Decimal("0.4")

    def test_fill_beyond_quantity_raises_overfill_and_changes_nothing(self) -> None:
        child = make_child("1.0")
        child.apply(ChildSubmitted(T0, CID))
        child.apply(fill("a", "0.7"))
        with pytest.raises(Overfill):
            child.apply(fill("b", "0.4"))
        assert child.filled_qty == Decimal("0.7")
        assert "b" not in child.trade_ids

    def test_partial_fill_while_cancel_pending_stays_pending_cancel(self) -> None:
        child = make_child("1.0")
        child.apply(ChildSubmitted(T0, CID))
        child.apply(ChildAccepted(T0, CID, "v1"))
        child.apply(ChildCancelRequested(T0, CID))
        child.apply(fill("a", "0.2"))
        assert child.status is ChildStatus.PENDING_CANCEL
        child.apply(ChildCancelled(T0, CID))
        assert child.status is ChildStatus.CANCELLED
        assert child.working_qty == 0

    @pytest.mark.parametrize("terminal_event", [ChildCancelled, ChildExpired, ChildRejected])
    def test_nothing_applies_after_a_terminal_event(self, terminal_event: type[ChildEvent]) -> None:
        child = make_child()
        child.apply(child_event(terminal_event))
        assert child.is_terminal
        with pytest.raises(InvalidTransition):
            child.apply(fill("late", "0.1"))

    def test_every_table_entry_names_a_known_event(self) -> None:
        assert {event for _, event in CHILD_TRANSITIONS} <= set(CHILD_EVENTS)


class TestParentStateMachine:
    def test_pause_resume_cancel_wind_down(self) -> None:
        parent = make_parent()
        parent.apply(ParentStarted(T0, parent.id))
        parent.apply(ParentPaused(T0, parent.id, "lunch"))
        assert parent.status is ParentStatus.PAUSED
        parent.apply(ParentResumed(T0, parent.id))
        parent.apply(ParentCancelRequested(T0, parent.id, "trader"))
        assert parent.status is ParentStatus.CANCELLING
        parent.apply(ParentWoundDown(T0, parent.id))
        assert parent.status is ParentStatus.CANCELLED

    def test_expiry_winds_down_to_expired(self) -> None:
        parent = make_parent()
        parent.apply(ParentStarted(T0, parent.id))
        parent.apply(ParentExpiring(T0, parent.id))
        parent.apply(ParentWoundDown(T0, parent.id))
        assert parent.status is ParentStatus.EXPIRED

    def test_completed_parent_cannot_be_paused(self) -> None:
        parent = make_parent()
        parent.apply(ParentStarted(T0, parent.id))
        parent.apply(ParentCompleted(T0, parent.id))
        with pytest.raises(InvalidTransition, match="completed"):
            parent.apply(ParentPaused(T0, parent.id))

    def test_parent_fill_rollup_refuses_overfill(self) -> None:
        parent = make_parent("1.0")
        parent.apply(ParentStarted(T0, parent.id))
        parent.apply(parent_event(ParentFillApplied, "a", "0.9"))
        with pytest.raises(Overfill):
            parent.apply(parent_event(ParentFillApplied, "b", "0.2"))
        assert parent.filled_qty == Decimal("0.9")

    def test_client_order_ids_are_deterministic_and_sequential(self) -> None:
        parent = make_parent()
        assert [parent.next_client_order_id() for _ in range(3)] == [
            "PTEST-1",
            "PTEST-2",
            "PTEST-3",
        ]

    def test_every_table_entry_names_a_known_event(self) -> None:
        assert {event for _, event in PARENT_TRANSITIONS} <= set(PARENT_EVENTS)


@pytest.mark.parametrize(
    "event",
    [
        fill("t1", "0.5"),
        ChildAccepted(T0, CID, "v-9"),
        ChildCancelled(T0, CID, "user"),
        ParentFillApplied(
            T0, "P", "t", "sim", Decimal("1234567.000000000000000001"), Decimal("2"), Decimal("0")
        ),
        ParentNote(T0, "P", "held", "slice below minimum"),
        ParentAccepted(T0, "P"),
    ],
    ids=lambda e: e.kind,
)
def test_event_payload_round_trip_is_exact(event: Event) -> None:
    assert from_payload(event.kind, to_payload(event)) == event


# --- property tests --------------------------------------------------------------------------

child_kinds = st.sampled_from(CHILD_EVENTS)
fill_qty = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("0.6"), places=5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(child_kinds, fill_qty, st.integers(0, 20)), max_size=40))
def test_random_child_event_sequences_never_overfill_or_leave_the_table(
    steps: list[tuple[type[ChildEvent], Decimal, int]],
) -> None:
    child = make_child("1.0")
    applied: dict[str, Decimal] = {}
    for kind, qty, trade_no in steps:
        event = child_event(kind, trade_id=f"t{trade_no}", qty=str(qty))
        before = child.status
        allowed = (before, kind) in CHILD_TRANSITIONS
        try:
            if child.apply(event) and isinstance(event, ChildFilled):
                applied[event.trade_id] = event.qty
        except InvalidTransition:
            assert not allowed
            assert child.status is before
        except Overfill:
            assert child.status is before
        assert child.filled_qty <= child.qty
        assert child.filled_qty == sum(applied.values(), Decimal(0))
        assert child.trade_ids == set(applied)
        if child.filled_qty == child.qty:
            assert child.status is ChildStatus.FILLED


parent_kinds = st.sampled_from(PARENT_EVENTS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(parent_kinds, fill_qty, st.integers(0, 20)), max_size=40))
def test_random_parent_event_sequences_never_overfill_or_leave_the_table(
    steps: list[tuple[type[ParentEvent], Decimal, int]],
) -> None:
    parent = make_parent("1.0")
    applied: dict[str, Decimal] = {}
    for kind, qty, trade_no in steps:
        event = parent_event(kind, trade_id=f"t{trade_no}", qty=str(qty))
        before = parent.status
        try:
            if parent.apply(event) and isinstance(event, ParentFillApplied):
                applied[event.trade_id] = event.qty
        except InvalidTransition:
            assert (before, kind) not in PARENT_TRANSITIONS
            assert parent.status is before
        except Overfill:
            assert parent.status is before
        assert parent.filled_qty <= parent.quantity
        assert parent.filled_qty == sum(applied.values(), Decimal(0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), fill_qty), max_size=30))
def test_rebuilding_from_the_event_log_gives_the_same_state_every_time(
    fills: list[tuple[int, Decimal]],
) -> None:
    original = make_child("1.0")
    log: list[ChildEvent] = [ChildSubmitted(T0, CID), ChildAccepted(T0, CID, "v1")]
    for event in log:
        original.apply(event)
    for trade_no, qty in fills:
        event = fill(f"t{trade_no}", str(qty))
        try:
            if original.apply(event):
                log.append(event)
        except (Overfill, InvalidTransition):
            pass
    rebuilds = []
    for _ in range(2):
        replayed = make_child("1.0")
        for event in log:
            replayed.apply(from_payload(event.kind, to_payload(event)))  # type: ignore[arg-type]
        rebuilds.append((replayed.status, replayed.filled_qty, replayed.trade_ids))
    assert rebuilds[0] == rebuilds[1] == (original.status, original.filled_qty, original.trade_ids)
