"""Every algorithm through the real manager, store and simulated venue, on the recorded Binance
book and on seeded synthetic sessions, with the schedule's invariants checked after every step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ems.clock import TestClock
from ems.domain import OrderBook, Side, TimeInForce
from ems.intake import NewParent
from ems.manager import ParentOrderManager
from ems.orders import ChildOrder, ParentOrder, ParentStatus
from ems.profiles import default_volume_profile
from ems.store import SqlStore
from ems.venues.replay import MarketEvent
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from ems.venues.synthetic import MarketModel, generate_market
from tests.replay_support import check_fills_against_recorded_book, snapshot_time, spot_recording

VENUE = "sim"
SYMBOL = "BTC/USDT"
GUARD = {"max_gap_bps": 5, "max_depth_bps": 8}
DISPLAY = Decimal("0.1")
POV = {"rate": "0.05", "min_rate": "0.025", "max_rate": "0.08"}
ALGOS: dict[str, tuple[Decimal, dict[str, Any]]] = {
    "twap": (Decimal("1.2"), {"slice_interval_s": 15, "seed": 4, **GUARD}),
    "vwap": (Decimal("1.2"), {"slice_interval_s": 15, "seed": 4, **GUARD}),
    "pov": (Decimal("3"), {**POV, **GUARD}),
    "iceberg": (Decimal("0.6"), {"display_qty": str(DISPLAY), "seed": 4, **GUARD}),
}
WINDOW = timedelta(minutes=4)


@dataclass
class Run:
    parent: ParentOrder
    children: list[ChildOrder]
    books_at_creation: dict[str, OrderBook] = field(default_factory=dict)
    max_working: Decimal = Decimal(0)
    max_own_on_book: Decimal = Decimal(0)
    pov_checks: int = 0


def market(dataset: str) -> tuple[list[MarketEvent], datetime]:
    if dataset == "recorded":
        events = spot_recording()
        return events, snapshot_time(events) + timedelta(seconds=2)
    seed = int(dataset.removeprefix("synthetic-"))
    start = datetime(2031, 3, seed, 9, tzinfo=UTC)
    return list(
        generate_market(seed=seed, start=start, duration=WINDOW + timedelta(minutes=1))
    ), start


async def run_algo(
    store: SqlStore,
    algo: str,
    events: Sequence[MarketEvent],
    start: datetime,
    qty: Decimal | None = None,
    window: timedelta = WINDOW,
) -> Run:
    clock = TestClock(start)
    venue = SimVenue(binance_btcusdt_config(VENUE), clock, {SYMBOL: list(events)})
    manager = ParentOrderManager(
        store, {VENUE: venue}, clock, volume_profile=default_volume_profile()
    )
    default_qty, params = ALGOS[algo]
    parent, _ = await manager.submit(
        NewParent(
            f"{algo}-run",
            SYMBOL,
            Side.BUY,
            qty or default_qty,
            algo,
            start + window,
            algo_params=params,
        )
    )
    run = Run(parent, [])
    seen: set[str] = set()
    while clock.now() < start + window + timedelta(seconds=10):
        clock.advance(timedelta(milliseconds=500))
        book = await venue.order_book(SYMBOL, 200)
        await manager.step()
        current = manager.parent(parent.id)
        assert current is not None
        live = manager.live_children(parent.id)
        working = sum((c.working_qty for c in live), Decimal(0))
        assert current.filled_qty + working <= current.quantity  # no overfill at any step
        for child in live:
            if child.client_order_id not in seen:
                seen.add(child.client_order_id)
                run.books_at_creation[child.client_order_id] = book
        engine = venue.engine(SYMBOL)
        own_on_book = sum((engine.remaining(cid) for cid in engine.open_orders()), Decimal(0))
        run.max_own_on_book = max(run.max_own_on_book, own_on_book)
        run.max_working = max(run.max_working, working)
        if algo == "pov" and not current.is_terminal:
            volume = await venue.traded_volume(SYMBOL, start)
            lot = Decimal("0.00001")
            assert current.filled_qty + working <= Decimal(POV["max_rate"]) * volume + lot
            run.pov_checks += 1
        if current.is_terminal:
            break
    final = store.get_parent(parent.id)
    assert final is not None
    run.parent = final
    run.children = store.children(parent.id)
    return run


DATASETS = ["recorded", "synthetic-1", "synthetic-2"]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("algo", sorted(ALGOS))
async def test_algorithm_completes_exactly_and_keeps_its_invariants(
    store: SqlStore, algo: str, dataset: str
) -> None:
    events, start = market(dataset)

    run = await run_algo(store, algo, events, start)

    parent = run.parent
    fills = store.fills(parent.id)
    assert sum((c.filled_qty for c in run.children), Decimal(0)) == parent.filled_qty
    assert sum((f.qty for f in fills), Decimal(0)) == parent.filled_qty
    if algo != "pov":
        assert parent.status is ParentStatus.COMPLETED, parent.reason
        assert parent.filled_qty == ALGOS[algo][0]
    if dataset == "recorded":
        assert check_fills_against_recorded_book(fills, events) == len(fills)
    assert_void_guard(run)
    assert parent.tracking_samples > 0 and parent.market_volume > 0
    assert parent.maker_share is not None and 0 <= parent.maker_share <= 1


def assert_void_guard(run: Run) -> None:
    """No aggressive child priced through a gap wider than the guard or beyond its depth."""
    for child in run.children:
        if child.time_in_force is not TimeInForce.IOC:
            continue
        book = run.books_at_creation[child.client_order_id]
        assert child.price is not None and book.best_ask is not None and book.best_bid is not None
        assert child.price <= book.best_ask * (1 + Decimal(GUARD["max_depth_bps"]) / 10_000)
        previous = book.best_bid
        for level in book.asks:
            if level.price > child.price:
                break
            gap_bps = (level.price - previous) / previous * 10_000
            assert gap_bps <= GUARD["max_gap_bps"], f"{child.client_order_id} priced through a void"
            previous = level.price


@pytest.mark.parametrize("dataset", DATASETS)
async def test_iceberg_never_shows_more_than_its_display_size(
    store: SqlStore, dataset: str
) -> None:
    events, start = market(dataset)

    run = await run_algo(store, "iceberg", events, start)

    ceiling = DISPLAY * Decimal("1.2")  # display_jitter_pct defaults to 0.2
    assert run.max_own_on_book <= ceiling
    assert run.max_working <= ceiling
    assert len(run.children) >= 6  # refilled clip after clip, not shown at once
    assert run.parent.filled_qty == ALGOS["iceberg"][0]


@pytest.mark.parametrize("dataset", DATASETS)
async def test_pov_stays_within_its_participation_band(store: SqlStore, dataset: str) -> None:
    events, start = market(dataset)

    # Far more than the market lets it buy at these rates: it participates until the end.
    run = await run_algo(store, "pov", events, start, qty=Decimal(200))

    assert run.pov_checks > 400  # the ceiling was checked after every step (in run_algo)
    assert run.parent.status is ParentStatus.EXPIRED
    rate = run.parent.participation_rate
    assert rate is not None
    assert Decimal(POV["min_rate"]) <= rate <= Decimal(POV["max_rate"])


@pytest.mark.parametrize("dataset", DATASETS)
async def test_vwap_tracks_its_volume_curve(store: SqlStore, dataset: str) -> None:
    events, start = market(dataset)

    run = await run_algo(store, "vwap", events, start)

    mean = run.parent.tracking_error_mean
    assert mean is not None
    assert mean < Decimal("0.08"), f"mean tracking error {mean}"
    assert run.parent.tracking_max < Decimal("0.25")


async def test_aggressive_children_never_price_through_voids_in_a_thin_book(
    store: SqlStore,
) -> None:
    # A thin synthetic book with a thin touch; a window barely longer than one slice puts most
    # of the parent in the final interval, where TWAP crosses the spread step after step.
    start = datetime(2031, 4, 1, 9, tzinfo=UTC)
    model = MarketModel(
        level_gap_ticks=4000.0, touch_qty_log_mean=-3.0, one_tick_spread_prob=0.5, trades_per_s=5.0
    )
    events = list(generate_market(model, seed=7, start=start, duration=timedelta(minutes=3)))

    run = await run_algo(store, "twap", events, start, qty=Decimal(3), window=timedelta(seconds=20))

    aggressive = [c for c in run.children if c.time_in_force is TimeInForce.IOC]
    assert len(aggressive) >= 3, "the scenario must make the algorithm cross the spread"
    assert_void_guard(run)
    assert run.parent.filled_qty > 0
