"""Implementation shortfall of each algorithm against a naive equal-slice market-order TWAP.

Every algorithm works the same buy parent through the real manager, store (SQLite) and simulated
venue, on the recorded Binance BTCUSDT book and on seeded synthetic sessions. The baseline,
measured in the same run on the same data, sends equal market orders at equal intervals.

Shortfall (bps, buy side) = (average price − arrival mid) / arrival mid, plus fees over the
arrival notional of what filled, plus the opportunity cost of any unfilled part valued at the
end mid. Lower is better.

    python bench/bench_shortfall.py [--days 20] [--qty 8] [--minutes 5]

Fees default to a tiered schedule (maker 2 bps, taker 4 bps) where passive execution earns
something; Binance's base tier (10 bps both) is ``--maker-fee 0.001 --taker-fee 0.001``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos import registry
from ems.clock import TestClock
from ems.domain import OrderRequest, OrderType, Side
from ems.intake import NewParent
from ems.manager import ParentOrderManager
from ems.store import SqlStore
from ems.venues.replay import BookSnapshot, MarketEvent, default_sample_path, load_recorded
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from ems.venues.synthetic import generate_market

VENUE = "sim"
FEES: dict[str, Decimal] = {"maker": Decimal("0.0002"), "taker": Decimal("0.0004")}
STEP = timedelta(seconds=1)
SLICE_S = 15

ALGO_PARAMS: dict[str, dict[str, Any]] = {
    "twap": {"slice_interval_s": SLICE_S, "jitter_pct": 0.2, "seed": 1},
    "vwap": {"slice_interval_s": SLICE_S},
    "pov": {"rate": "0.1", "min_rate": "0.05", "max_rate": "0.2"},
    "iceberg": {"display_qty": "0.5", "seed": 1},
}


@dataclass(frozen=True)
class Outcome:
    filled: Decimal
    shortfall_bps: float


def shortfall_bps(
    qty: Decimal, filled: Decimal, notional: Decimal, fees: Decimal, arrival: Decimal, end: Decimal
) -> float:
    """Buy-side implementation shortfall in bps of the arrival value of the whole parent."""
    paid = notional + fees + (qty - filled) * end
    return float((paid - qty * arrival) / (qty * arrival) * 10_000)


def venue_for(events: Sequence[MarketEvent], clock: TestClock) -> SimVenue:
    balances = {"USDT": Decimal(100_000_000), "BTC": Decimal(0)}
    config = dataclasses.replace(
        binance_btcusdt_config(VENUE, balances=balances),
        maker_fee=FEES["maker"],
        taker_fee=FEES["taker"],
    )
    return SimVenue(config, clock, {"BTC/USDT": list(events)})


async def mid(venue: SimVenue) -> Decimal:
    book = await venue.order_book("BTC/USDT", 1)
    assert book.mid is not None
    return book.mid


async def work_until_done(
    manager: ParentOrderManager,
    clock: TestClock,
    parent_id: str,
    until: datetime,
    step: timedelta,
) -> None:
    """Step the manager on the replay clock until the parent ends or ``until`` passes."""
    while clock.now() < until:
        clock.advance(step)
        await manager.step()
        current = manager.parent(parent_id)
        if current is not None and current.is_terminal:
            return


async def run_algo(
    algo: str,
    events: Sequence[MarketEvent],
    start: datetime,
    qty: Decimal,
    window: timedelta,
    db: Path,
) -> Outcome:
    clock = TestClock(start)
    venue = venue_for(events, clock)
    store = SqlStore.open(f"sqlite:///{db}")
    manager = ParentOrderManager(store, {VENUE: venue}, clock)
    arrival = await mid(venue)
    parent, _ = await manager.submit(
        NewParent(
            client_id=f"bench-{algo}",
            symbol="BTC/USDT",
            side=Side.BUY,
            quantity=qty,
            algo=algo,
            end_at=start + window,
            algo_params=ALGO_PARAMS[algo],
        )
    )
    await work_until_done(manager, clock, parent.id, start + window + timedelta(seconds=5), STEP)
    final = store.get_parent(parent.id)
    assert final is not None
    store.close()
    bps = shortfall_bps(
        qty, final.filled_qty, final.filled_notional, final.fees, arrival, await mid(venue)
    )
    return Outcome(final.filled_qty, bps)


async def run_naive(
    events: Sequence[MarketEvent], start: datetime, qty: Decimal, window: timedelta
) -> Outcome:
    """Equal market orders at equal intervals over the window: the baseline."""
    clock = TestClock(start)
    venue = venue_for(events, clock)
    instrument = venue.instruments()["BTC/USDT"]
    arrival = await mid(venue)
    n = int(window.total_seconds() // SLICE_S)
    slice_qty = instrument.round_qty(qty / n)
    sizes = [slice_qty] * (n - 1) + [qty - slice_qty * (n - 1)]
    ids = []
    for i, size in enumerate(sizes):
        clock.set(start + timedelta(seconds=SLICE_S * i))
        cid = f"naive-{i}"
        await venue.submit(OrderRequest(cid, VENUE, "BTC/USDT", Side.BUY, size, OrderType.MARKET))
        ids.append(cid)
    clock.set(start + window)
    filled = notional = fees = Decimal(0)
    for cid in ids:
        state = await venue.fetch_order(cid, "BTC/USDT")
        for fill in state.fills:
            filled += fill.qty
            notional += fill.notional
            fees += fill.fee
    return Outcome(filled, shortfall_bps(qty, filled, notional, fees, arrival, await mid(venue)))


def synthetic_day(seed: int, start: datetime, window: timedelta) -> list[MarketEvent]:
    return list(generate_market(seed=seed, start=start, duration=window + timedelta(seconds=30)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--qty", type=Decimal, default=Decimal(8))
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--maker-fee", type=Decimal, default=Decimal("0.0002"))
    parser.add_argument("--taker-fee", type=Decimal, default=Decimal("0.0004"))
    args = parser.parse_args()
    FEES.update(maker=args.maker_fee, taker=args.taker_fee)
    window = timedelta(minutes=args.minutes)
    algos = [a for a in ALGO_PARAMS if a in registry.ALGOS]

    datasets: list[tuple[str, Callable[[], tuple[list[MarketEvent], datetime]]]] = []
    recorded = load_recorded(default_sample_path())
    snap = next(e.ts for e in recorded if isinstance(e, BookSnapshot))
    datasets.append(("recorded", lambda: (recorded, snap + timedelta(seconds=2))))
    base = datetime(2030, 1, 1, tzinfo=UTC)
    for day in range(args.days):
        start = base + timedelta(days=day)
        datasets.append(
            (f"synthetic-{day}", lambda d=day, s=start: (synthetic_day(d, s, window), s))
        )

    results: dict[str, dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, load in datasets:
            events, start = load()
            row = {"naive": asyncio.run(run_naive(events, start, args.qty, window))}
            for algo in algos:
                db = Path(tmp) / f"{name}-{algo}.db"
                row[algo] = asyncio.run(run_algo(algo, events, start, args.qty, window, db))
            results[name] = row

    columns = ["naive", *algos]
    print(
        f"buy {args.qty} BTC over {args.minutes} min; shortfall in bps vs arrival mid, fees "
        f"included (maker {args.maker_fee}, taker {args.taker_fee})"
    )
    print(f"{'data':<14}" + "".join(f"{c:>12}" for c in columns))
    print(
        f"{'recorded':<14}"
        + "".join(f"{results['recorded'][c].shortfall_bps:>12.2f}" for c in columns)
    )
    synthetic = [r for n, r in results.items() if n != "recorded"]
    if synthetic:
        for label, fn in (("syn mean", statistics.fmean), ("syn median", statistics.median)):
            print(
                f"{label:<14}"
                + "".join(f"{fn([r[c].shortfall_bps for r in synthetic]):>12.2f}" for c in columns)
            )
        wins = {
            c: sum(r[c].shortfall_bps < r["naive"].shortfall_bps for r in synthetic) for c in algos
        }
        print(
            f"{'beats naive':<14}{'':>12}"
            + "".join(f"{wins[c]:>9}/{len(synthetic):<2}" for c in algos)
        )
        fill_rate = {
            c: statistics.fmean(float(r[c].filled / args.qty) for r in synthetic) for c in columns
        }
        print(f"{'filled share':<14}" + "".join(f"{fill_rate[c]:>12.3f}" for c in columns))


if __name__ == "__main__":
    main()
