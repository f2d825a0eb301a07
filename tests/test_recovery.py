"""Crash and recovery: a manager dropped mid-parent is replaced by a new one on the same store
and venue; the parent completes, no child is sent twice and no fill is recorded twice."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ems.clock import TestClock
from ems.domain import OrderRequest, Side
from ems.intake import NewParent
from ems.manager import ParentOrderManager
from ems.orders import ChildStatus, ParentStatus
from ems.ports import VenueOrderState
from ems.reconcile import NOT_AT_VENUE
from ems.store import SqlStore
from ems.venues.sim_venue import FaultKind, FaultPlan, SimVenue, binance_btcusdt_config
from tests.replay_support import run_until_done, snapshot_time, spot_recording

VENUE = "binance-sim"
QTY = Decimal("1.2")


class ProcessCrash(BaseException):
    """Stands for the process dying: nothing after it runs, no cleanup happens."""


class CrashingLink:
    """The network link to a venue that kills the process on the ``crash_on``-th submit,
    either before the request leaves or after the venue has accepted it."""

    def __init__(self, venue: SimVenue, crash_on: int, after_accept: bool) -> None:
        self._venue = venue
        self._crash_on = crash_on
        self._after_accept = after_accept
        self._submits = 0
        self.crashed_client_id: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    @property
    def name(self) -> str:
        return self._venue.name

    async def submit(self, request: OrderRequest) -> VenueOrderState:
        self._submits += 1
        if self._submits != self._crash_on:
            return await self._venue.submit(request)
        self.crashed_client_id = request.client_order_id
        if self._after_accept:
            await self._venue.submit(request)
        raise ProcessCrash


def new_parent(clock: TestClock, client_id: str = "rec-1") -> NewParent:
    return NewParent(
        client_id=client_id,
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=QTY,
        algo="twap",
        end_at=clock.now() + timedelta(minutes=4),
        algo_params={"slice_interval_s": 15, "jitter_pct": 0.1, "seed": 3},
    )


def arrange(
    store: SqlStore, faults: FaultPlan | None = None
) -> tuple[TestClock, SimVenue, list[Any]]:
    events = spot_recording()
    clock = TestClock(snapshot_time(events) + timedelta(seconds=5))
    config = binance_btcusdt_config(VENUE)
    if faults is not None:
        config = type(config)(**{**_fields(config), "faults": faults})
    venue = SimVenue(config, clock, {"BTC/USDT": events})
    return clock, venue, events


def _fields(obj: Any) -> Mapping[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def assert_nothing_twice(store: SqlStore, venue: SimVenue, parent_id: str) -> None:
    assert len(venue.submissions) == len(set(venue.submissions)), "a client id was sent twice"
    fills = store.fills(parent_id)
    assert len({(f.venue, f.trade_id) for f in fills}) == len(fills), "a fill was recorded twice"
    parent = store.get_parent(parent_id)
    assert parent is not None
    assert sum((f.qty for f in fills), Decimal(0)) == parent.filled_qty
    assert sum((c.filled_qty for c in store.children(parent_id)), Decimal(0)) == parent.filled_qty


async def test_manager_dropped_mid_parent_is_resumed_by_a_new_one(store: SqlStore) -> None:
    clock, venue, _ = arrange(store)
    first = ParentOrderManager(store, {VENUE: venue}, clock)
    parent, _ = await first.submit(new_parent(clock))
    await run_until_done(first, clock, parent.id, until=clock.now() + timedelta(seconds=100))
    sent_before = len(venue.submissions)
    assert 0 < store.get_parent(parent.id).filled_qty < QTY  # type: ignore[union-attr]
    del first  # no shutdown: in-memory state is simply gone

    second = ParentOrderManager(store, {VENUE: venue}, clock)
    final = await run_until_done(second, clock, parent.id, until=clock.now() + timedelta(minutes=4))

    assert final.status is ParentStatus.COMPLETED
    assert final.filled_qty == QTY
    assert len(venue.submissions) > sent_before
    assert_nothing_twice(store, venue, parent.id)


@pytest.mark.parametrize(
    "after_accept",
    [False, True],
    ids=["crash-before-the-order-left", "crash-after-the-venue-accepted"],
)
async def test_crash_during_a_submit_is_reconciled_not_resent(
    store: SqlStore, after_accept: bool
) -> None:
    clock, venue, _ = arrange(store)
    link = CrashingLink(venue, crash_on=3, after_accept=after_accept)
    first = ParentOrderManager(store, {VENUE: link}, clock)  # type: ignore[dict-item]
    parent, _ = await first.submit(new_parent(clock))
    with pytest.raises(ProcessCrash):
        await run_until_done(first, clock, parent.id, until=clock.now() + timedelta(minutes=2))
    crashed = link.crashed_client_id
    assert crashed is not None
    stored = {c.client_order_id: c for c in store.children(parent.id)}
    assert stored[crashed].status is ChildStatus.PENDING_SUBMIT  # persisted before sending
    del first

    second = ParentOrderManager(store, {VENUE: venue}, clock)
    final = await run_until_done(second, clock, parent.id, until=clock.now() + timedelta(minutes=4))

    assert final.status is ParentStatus.COMPLETED and final.filled_qty == QTY
    assert venue.submissions.count(crashed) == (1 if after_accept else 0)
    outcome = {c.client_order_id: c for c in store.children(parent.id)}[crashed]
    if after_accept:
        assert outcome.status is not ChildStatus.REJECTED  # found at the venue by client id
    else:
        assert outcome.status is ChildStatus.REJECTED and outcome.reason == NOT_AT_VENUE
    assert_nothing_twice(store, venue, parent.id)


async def test_submit_timeouts_are_in_flight_until_reconciled_by_client_id(
    store: SqlStore,
) -> None:
    faults = FaultPlan(
        on_submit={2: FaultKind.UNKNOWN_AFTER_ACCEPT, 4: FaultKind.UNKNOWN_BEFORE_ACCEPT}
    )
    clock, venue, _ = arrange(store, faults)
    manager = ParentOrderManager(store, {VENUE: venue}, clock)
    parent, _ = await manager.submit(new_parent(clock))

    final = await run_until_done(
        manager, clock, parent.id, until=clock.now() + timedelta(minutes=5)
    )

    children = store.children(parent.id)
    by_seq = {c.seq: c for c in children}
    assert final.status is ParentStatus.COMPLETED and final.filled_qty == QTY
    assert by_seq[2].status is not ChildStatus.REJECTED  # it reached the venue: reconciled
    assert by_seq[4].status is ChildStatus.REJECTED and by_seq[4].reason == NOT_AT_VENUE
    assert_nothing_twice(store, venue, parent.id)
