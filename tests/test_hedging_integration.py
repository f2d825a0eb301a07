"""Hedge coverage through the real manager, store and simulated spot, perpetual and options
venues: spot accumulation never runs ahead of the hedge, and the hedge is released only after
confirmation, step by step, pausing when confirmation is lost."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from ems.domain import OrderRequest, OrderType, Side
from ems.errors import Conflict, InvalidOrder
from ems.intake import NewParent
from ems.orders import ParentRole
from ems.store import SqlStore
from risk.types import DenyCode, MarketPhase
from risk.unwind import UnwindStatus
from tests.hedge_support import (
    PERP_SYMBOL,
    POLICY,
    HedgedDesk,
    assert_covered,
    hedge_config,
    hedged_desk,
)

STEP = timedelta(milliseconds=500)


def spot_buy(desk: HedgedDesk, qty: str, minutes: int = 2, client_id: str = "acc-1") -> NewParent:
    return NewParent(
        client_id,
        "BTC/USDT",
        Side.BUY,
        Decimal(qty),
        "twap",
        desk.clock.now() + timedelta(minutes=minutes),
        algo_params={"slice_interval_s": 10},
    )


async def run(
    desk: HedgedDesk,
    until: datetime,
    phase: MarketPhase = MarketPhase.STRESS,
    *,
    check: bool = True,
) -> None:
    """Step until ``until``, checking the hedge invariant on filled quantities after each step."""
    while desk.clock.now() < until:
        desk.clock.advance(STEP)
        await desk.manager.step()
        exposure = await desk.manager.coverage_exposure()
        assert exposure is not None
        if check:
            assert_covered(exposure, phase)


def hedge_parents(store: SqlStore, role: ParentRole, *, reduce_only: bool | None = None) -> list:
    parents = [p for p in store.list_parents(limit=500) if p.role is role]
    return [p for p in parents if reduce_only is None or p.reduce_only is reduce_only]


async def test_spot_accumulation_stays_covered_at_every_fill_and_ends_at_target(
    store: SqlStore,
) -> None:
    desk = hedged_desk(store)
    parent, _ = await desk.manager.submit(spot_buy(desk, "1.5"))

    await run(desk, desk.clock.now() + timedelta(minutes=2, seconds=20))

    done = desk.manager.parent(parent.id)
    assert done is not None and done.filled_qty == Decimal("1.5")
    exposure = await desk.manager.coverage_exposure()
    assert exposure is not None and exposure.spot_qty == Decimal("1.5")
    tolerance = POLICY.drift_tolerance * exposure.spot_qty
    assert abs(exposure.perp_short_qty - Decimal("1.5")) <= tolerance + Decimal("0.002")
    assert Decimal("0.75") <= exposure.put_cover_qty <= Decimal("0.75") + tolerance
    shorts = hedge_parents(store, ParentRole.BASIS_HEDGE)
    assert shorts and all(p.side is Side.SELL and not p.reduce_only for p in shorts)
    puts = hedge_parents(store, ParentRole.PUT_HEDGE)
    assert puts and all(p.side is Side.BUY for p in puts)
    assert store.coverage_log(kind="drift") == []  # never short of target for too long


async def test_hedge_fills_record_the_basis_against_spot(store: SqlStore) -> None:
    desk = hedged_desk(store)
    await desk.manager.submit(spot_buy(desk, "0.5", minutes=1))

    await run(desk, desk.clock.now() + timedelta(seconds=80))

    fills = store.coverage_log(kind="hedge_fill")
    assert fills
    for record in fills:
        assert record.basis_bps is not None and abs(record.basis_bps) < 50
    short = sum(
        (f.qty for p in hedge_parents(store, ParentRole.BASIS_HEDGE) for f in store.fills(p.id)),
        Decimal(0),
    )
    assert short > 0


async def test_spot_is_held_with_the_coverage_code_while_the_hedge_venue_is_down(
    store: SqlStore,
) -> None:
    desk = hedged_desk(store)
    desk.perp.go_down()
    parent, _ = await desk.manager.submit(spot_buy(desk, "0.5"))

    await run(desk, desk.clock.now() + timedelta(seconds=30))

    assert desk.spot.submissions == []
    codes = {e.payload["code"] for e in store.events(parent.id) if e.kind == "parent_note"}
    assert DenyCode.COVERAGE_BELOW_MINIMUM.value in codes
    assert [r.kind for r in store.coverage_log(kind="spot_held")] == ["spot_held"]

    desk.perp.restore()
    await run(desk, desk.clock.now() + timedelta(seconds=40))

    assert desk.spot.submissions
    assert store.coverage_log(kind="spot_resumed")


async def test_no_hedge_is_reduced_before_confirmation_then_steps_and_fallback_pauses(
    store: SqlStore,
) -> None:
    desk = hedged_desk(store)
    await desk.manager.submit(spot_buy(desk, "1.0", minutes=1))
    await run(desk, desk.clock.now() + timedelta(seconds=75))
    assert hedge_parents(store, ParentRole.BASIS_HEDGE, reduce_only=True) == []
    with pytest.raises(Conflict, match=DenyCode.UNWIND_NOT_CONFIRMED.value):
        await desk.manager.request_unwind(actor="trader")
    before = await desk.manager.coverage_exposure()
    assert before is not None

    await desk.manager.set_market_phase(
        MarketPhase.CONFIRMED, evidence="funding positive, reclaim of 200d", actor="pm"
    )
    await run(desk, desk.clock.now() + timedelta(seconds=5), MarketPhase.CONFIRMED)

    first = await desk.manager.coverage_exposure()
    assert first is not None
    expected = before.perp_short_qty * 3 / 4
    assert abs(first.perp_short_qty - expected) <= Decimal("0.002")
    assert desk.manager.hedge is not None
    assert desk.manager.hedge.unwind.steps_done == 1

    await run(desk, desk.clock.now() + timedelta(seconds=30), MarketPhase.CONFIRMED)
    still = await desk.manager.coverage_exposure()
    assert still is not None and still.perp_short_qty == first.perp_short_qty  # interval not up

    await desk.manager.set_market_phase(MarketPhase.REPAIR, evidence="reclaim failed", actor="pm")
    assert desk.manager.hedge.unwind.status is UnwindStatus.PAUSED
    reducing = len(hedge_parents(store, ParentRole.BASIS_HEDGE, reduce_only=True))
    # The repair phase's coverage applies again: the short is topped back up, never reduced.
    await run(desk, desk.clock.now() + timedelta(seconds=5), MarketPhase.REPAIR, check=False)
    await run(desk, desk.clock.now() + timedelta(seconds=60), MarketPhase.REPAIR)
    assert len(hedge_parents(store, ParentRole.BASIS_HEDGE, reduce_only=True)) == reducing

    await desk.manager.set_market_phase(MarketPhase.CONFIRMED, evidence="reclaim holds", actor="pm")
    await run(desk, desk.clock.now() + timedelta(seconds=5), MarketPhase.CONFIRMED)
    assert desk.manager.hedge.unwind.steps_done == 2
    kinds = [r.kind for r in store.coverage_log()]
    assert kinds.count("unwind_step") == 2 and "unwind_refused" in kinds


async def test_phase_and_unwind_progress_survive_a_restart(store: SqlStore) -> None:
    desk = hedged_desk(store)
    await desk.manager.submit(spot_buy(desk, "0.5", minutes=1))
    await run(desk, desk.clock.now() + timedelta(seconds=70))
    await desk.manager.set_market_phase(MarketPhase.CONFIRMED, evidence="signals", actor="pm")
    await run(desk, desk.clock.now() + timedelta(seconds=3), MarketPhase.CONFIRMED)

    restarted = hedged_desk(store)
    await restarted.manager.recover()

    assert restarted.manager.hedge is not None
    assert restarted.manager.hedge.phase is MarketPhase.CONFIRMED
    assert restarted.manager.hedge.unwind.steps_done == 1
    assert restarted.manager.hedge.unwind_start_basis is not None


async def test_phase_change_needs_evidence_and_hedging(store: SqlStore) -> None:
    desk = hedged_desk(store)
    with pytest.raises(InvalidOrder, match="evidence"):
        await desk.manager.set_market_phase(MarketPhase.CONFIRMED, evidence=" ", actor="pm")


def test_a_put_ratio_without_a_put_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="no put policy"):
        hedge_config(puts=None)


async def test_hedge_children_go_to_the_perpetual(store: SqlStore) -> None:
    desk = hedged_desk(store)
    await desk.manager.submit(spot_buy(desk, "0.3", minutes=1))
    await run(desk, desk.clock.now() + timedelta(seconds=10))
    shorts = hedge_parents(store, ParentRole.BASIS_HEDGE)
    assert shorts and {p.symbol for p in shorts} == {PERP_SYMBOL}


async def test_positions_reconcile_with_every_venue_and_an_outside_trade_is_a_break(
    store: SqlStore,
) -> None:
    desk = hedged_desk(store)
    await desk.manager.submit(spot_buy(desk, "0.5", minutes=1))
    await run(desk, desk.clock.now() + timedelta(seconds=75))

    checks = await desk.manager.check_positions()

    kinds = {(c.venue, c.kind) for c in checks}
    assert {("binance-sim", "spot_balance"), ("binance-usdm-sim", "derivative")} <= kinds
    assert any(c.kind == "option" for c in checks)
    assert all(not c.suspect for c in checks), [c for c in checks if c.suspect]

    outside = OrderRequest(
        "manual-1", "binance-usdm-sim", PERP_SYMBOL, Side.SELL, Decimal("0.01"), OrderType.MARKET
    )
    await desk.perp.submit(outside)  # someone trades the account outside the EMS
    desk.clock.advance(timedelta(seconds=1))  # past the venue's latency
    await desk.manager.check_positions()
    assert store.coverage_log(kind="position_break") == []  # one check may be a fill in transit
    checks = await desk.manager.check_positions()

    [broken] = [c for c in checks if c.is_break]
    assert (broken.venue, broken.item, broken.difference) == (
        "binance-usdm-sim",
        PERP_SYMBOL,
        Decimal("-0.01"),
    )
    [record] = store.coverage_log(kind="position_break")
    assert "binance-usdm-sim" in record.detail and "-0.01" in record.detail


async def test_funding_on_the_short_is_accrued_from_the_venue_reports(store: SqlStore) -> None:
    desk = hedged_desk(store)
    await desk.manager.submit(spot_buy(desk, "0.5", minutes=1))
    await run(desk, desk.clock.now() + timedelta(seconds=70))
    exposure = await desk.manager.coverage_exposure()
    assert exposure is not None and exposure.perp_short_qty > 0

    at = desk.clock.now()
    payment = desk.perp.apply_funding(PERP_SYMBOL, Decimal("0.0001"), Decimal(61_000), at)
    await run(desk, desk.clock.now() + timedelta(seconds=1))

    accrual = desk.manager.funding()["binance-usdm-sim"]
    # A short receives a positive rate: 0.0001 × 61,000 per BTC short.
    assert accrual.net == payment.amount == exposure.perp_short_qty * Decimal("6.1")
    assert (accrual.events, accrual.last_at, accrual.paid) == (1, at, Decimal(0))
