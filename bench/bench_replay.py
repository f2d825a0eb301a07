"""Replay throughput of the simulated venue, with and without a TWAP parent running.

Baseline (same run): the venue replaying the recorded Binance BTCUSDT book on the replay clock
with no orders. Measured: the same replay while the manager works a TWAP parent, stepping every
500 ms of replay time with a SQLite store (every step durable).

    python bench/bench_replay.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ems.clock import TestClock
from ems.domain import Side
from ems.intake import NewParent
from ems.manager import ParentOrderManager
from ems.store import SqlStore
from ems.venues.replay import (
    BookDiff,
    BookSnapshot,
    MarketEvent,
    default_sample_path,
    load_recorded,
)
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config

STEP = timedelta(milliseconds=500)
VENUE = "binance-sim"


def book_events(events: list[MarketEvent]) -> int:
    return sum(isinstance(e, BookSnapshot | BookDiff) for e in events)


def replay_alone(events: list[MarketEvent]) -> float:
    clock = TestClock(events[0].ts)
    venue = SimVenue(binance_btcusdt_config(VENUE), clock, {"BTC/USDT": events})
    end = events[-1].ts
    started = time.perf_counter()
    while clock.now() < end:
        venue.advance_to(clock.advance(STEP))
    return time.perf_counter() - started


async def replay_with_twap(events: list[MarketEvent], db: Path) -> tuple[float, int, Decimal]:
    clock = TestClock(next(e.ts for e in events if isinstance(e, BookSnapshot)))
    venue = SimVenue(binance_btcusdt_config(VENUE), clock, {"BTC/USDT": events})
    store = SqlStore.open(f"sqlite:///{db}")
    manager = ParentOrderManager(store, {VENUE: venue}, clock)
    end = events[-1].ts
    started = time.perf_counter()
    parent, _ = await manager.submit(
        NewParent(
            client_id="bench-twap",
            symbol="BTC/USDT",
            side=Side.BUY,
            quantity=Decimal("3"),
            algo="twap",
            end_at=end - timedelta(seconds=5),
            algo_params={"slice_interval_s": 10, "jitter_pct": 0.2, "seed": 1},
        )
    )
    while clock.now() < end:
        clock.advance(STEP)
        await manager.step()
    venue.advance_to(end)
    elapsed = time.perf_counter() - started
    final = store.get_parent(parent.id)
    assert final is not None
    children = len(store.children(parent.id))
    store.close()
    return elapsed, children, final.filled_qty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = load_recorded(default_sample_path())
    n_book = book_events(events)
    span = (events[-1].ts - events[0].ts).total_seconds()
    print(
        f"recording: {len(events)} events ({n_book} book events) over {span:.0f} s of market time"
    )

    alone = min(replay_alone(events) for _ in range(args.repeat))
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(asyncio.run(replay_with_twap(events, Path(tmp) / f"bench{i}.db")))
    with_twap, children, filled = min(runs)

    print(
        f"baseline  venue replay alone        : {n_book / alone:>10,.0f} book events/s "
        f"({len(events) / alone:,.0f} events/s, {span / alone:,.0f}x real time)"
    )
    print(
        f"measured  replay + TWAP + SQLite     : {n_book / with_twap:>10,.0f} book events/s "
        f"({len(events) / with_twap:,.0f} events/s, {span / with_twap:,.0f}x real time)"
    )
    print(
        f"          TWAP: {children} children, filled {filled} BTC, "
        f"{span / STEP.total_seconds():.0f} manager steps"
    )
    print(f"          overhead of the running parent: {with_twap / alone:.2f}x the baseline time")


if __name__ == "__main__":
    main()
