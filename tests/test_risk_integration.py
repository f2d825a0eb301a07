"""Pre-trade risk through the real manager, store and simulated venue: a halted venue sends
nothing, REDUCING blocks buys, limits block children with their reason code on the parent, and
positions survive a restart."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from ems.clock import TestClock
from ems.domain import Side
from ems.errors import InvalidOrder
from ems.intake import NewParent
from ems.manager import DESK_LIMITS, ManagerConfig, ParentOrderManager
from ems.store import SqlStore
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from risk.types import DenyCode, TradingState
from tests.replay_support import run_until_done, snapshot_time, spot_recording

VENUE = "binance-sim"


def desk(store: SqlStore, **limits: object) -> tuple[ParentOrderManager, SimVenue, TestClock]:
    events = spot_recording()
    clock = TestClock(snapshot_time(events) + timedelta(seconds=2))
    venue = SimVenue(binance_btcusdt_config(VENUE), clock, {"BTC/USDT": events})
    config = ManagerConfig(risk_limits=dataclasses.replace(DESK_LIMITS, **limits))  # type: ignore[arg-type]
    return ParentOrderManager(store, {VENUE: venue}, clock, config=config), venue, clock


def buy(clock: TestClock, qty: str = "0.6", client_id: str = "risk-1") -> NewParent:
    return NewParent(
        client_id,
        "BTC/USDT",
        Side.BUY,
        Decimal(qty),
        "twap",
        clock.now() + timedelta(minutes=2),
        algo_params={"slice_interval_s": 15},
    )


def denial_codes(store: SqlStore, parent_id: str) -> set[str]:
    return {e.payload["code"] for e in store.events(parent_id) if e.kind == "parent_note"}


@pytest.mark.parametrize(
    ("state", "global_scope", "code"),
    [
        (TradingState.HALTED, False, DenyCode.VENUE_HALTED),
        (TradingState.HALTED, True, DenyCode.GLOBAL_HALTED),
        (TradingState.REDUCING, True, DenyCode.REDUCING_ONLY),
    ],
)
async def test_a_halted_or_reducing_desk_sends_no_buy(
    store: SqlStore, state: TradingState, global_scope: bool, code: DenyCode
) -> None:
    manager, venue, clock = desk(store)
    manager.risk.set_state(state, None if global_scope else VENUE)
    parent, _ = await manager.submit(buy(clock))

    await run_until_done(manager, clock, parent.id, clock.now() + timedelta(seconds=40))

    assert venue.submissions == []
    assert code.value in denial_codes(store, parent.id)


async def test_child_above_the_notional_limit_is_denied_with_its_code_and_trading_resumes(
    store: SqlStore,
) -> None:
    manager, venue, clock = desk(store, max_child_notional=Decimal(3_000))
    parent, _ = await manager.submit(buy(clock, qty="0.6"))  # 0.075 BTC slices: ~4,640 USDT

    await run_until_done(manager, clock, parent.id, clock.now() + timedelta(seconds=20))
    assert venue.submissions == []
    assert DenyCode.CHILD_NOTIONAL.value in denial_codes(store, parent.id)

    manager.risk.limits = DESK_LIMITS  # an admin raises the limit
    final = await run_until_done(manager, clock, parent.id, clock.now() + timedelta(minutes=3))

    assert final.filled_qty == Decimal("0.6")
    assert venue.submissions


async def test_position_limit_blocks_buys_beyond_it(store: SqlStore) -> None:
    manager, _, clock = desk(store, max_position={"BTC": Decimal("0.3")})
    parent, _ = await manager.submit(buy(clock, qty="0.6"))

    final = await run_until_done(manager, clock, parent.id, clock.now() + timedelta(minutes=3))

    assert final.filled_qty <= Decimal("0.3")
    assert manager.risk.positions["BTC"] <= Decimal("0.3")
    assert DenyCode.POSITION_LIMIT.value in denial_codes(store, parent.id)


async def test_positions_and_daily_notional_are_rebuilt_after_a_restart(store: SqlStore) -> None:
    manager, venue, clock = desk(store)
    parent, _ = await manager.submit(buy(clock, qty="0.6"))
    await run_until_done(manager, clock, parent.id, clock.now() + timedelta(minutes=3))
    before = (manager.risk.positions, manager.risk.day_notional(clock.now()))

    restarted = ParentOrderManager(store, {VENUE: venue}, clock)
    await restarted.recover()

    assert before[0]["BTC"] == Decimal("0.6")
    assert (restarted.risk.positions, restarted.risk.day_notional(clock.now())) == before


async def test_trading_states_and_limits_are_audited_and_survive_a_restart(store: SqlStore) -> None:
    manager, venue, clock = desk(store)
    tighter = dataclasses.replace(DESK_LIMITS, max_child_notional=Decimal(1_000))

    await manager.set_trading_state(
        TradingState.HALTED, venue=VENUE, actor="admin:alice", reason="exchange incident"
    )
    await manager.set_risk_limits(tighter, actor="admin:alice", reason="new desk mandate")
    await manager.set_trading_state(
        TradingState.REDUCING, venue=None, actor="admin:bob", reason="month end"
    )

    log = store.audit_log()
    assert [(r.action, r.scope, r.actor) for r in log] == [
        ("trading_state", VENUE, "admin:alice"),
        ("risk_limits", "global", "admin:alice"),
        ("trading_state", "global", "admin:bob"),
    ]
    assert log[0].before == '"active"' and log[0].after == '"halted"'
    assert '"max_child_notional": "1000"' in log[1].after
    restarted = ParentOrderManager(store, {VENUE: venue}, clock)
    await restarted.recover()
    assert restarted.risk.state_of(VENUE) is TradingState.HALTED
    assert restarted.risk.global_state is TradingState.REDUCING
    assert restarted.risk.limits == tighter


async def test_unknown_venue_for_a_trading_state_is_refused(store: SqlStore) -> None:
    manager, _, _ = desk(store)

    with pytest.raises(InvalidOrder, match="unknown venue 'nowhere'"):
        await manager.set_trading_state(
            TradingState.HALTED, venue="nowhere", actor="admin", reason="typo"
        )

    assert store.audit_log() == []
