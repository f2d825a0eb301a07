"""Realised cost of routed execution against each single venue, on the same simulated day.

Three venues are derived from one market stream (the recorded Binance book, or a seeded
synthetic session): the same prices shifted by a few ticks, different displayed depth, fees and
latency. The same TWAP parent is worked routed across all three (at most 60 % of a slice per
venue), routed with no cap on a venue's share, and on each venue alone; each run uses fresh
venues replaying the same stream. Shortfall is measured against the median of the three
venues' arrival mids, fees included.

    python bench/bench_routed_cost.py [--days 10] [--qty 20] [--minutes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shortfall import shortfall_bps, work_until_done

from ems.clock import TestClock
from ems.domain import Side
from ems.intake import NewParent
from ems.manager import ManagerConfig, ParentOrderManager
from ems.routing import RoutingConfig
from ems.store import SqlStore
from ems.venues.replay import BookSnapshot, MarketEvent, default_sample_path, load_recorded
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from ems.venues.synthetic import generate_market

SPECS: dict[str, dict[str, object]] = {
    "alpha": {"taker_fee": Decimal("0.0004"), "maker_fee": Decimal("0.0002")},
    "beta": {
        "price_offset": Decimal("1.00"),
        "depth_scale": Decimal("0.6"),
        "taker_fee": Decimal("0.0003"),
        "maker_fee": Decimal("0.0001"),
        "latency": timedelta(milliseconds=45),
    },
    "gamma": {
        "price_offset": Decimal("-0.50"),
        "depth_scale": Decimal("0.35"),
        "taker_fee": Decimal("0.0005"),
        "maker_fee": Decimal("0.0002"),
        "latency": timedelta(milliseconds=70),
    },
}


def build(
    names: Sequence[str], events: Sequence[MarketEvent], clock: TestClock
) -> dict[str, SimVenue]:
    cash = {"USDT": Decimal(100_000_000), "BTC": Decimal(0)}
    return {
        name: SimVenue(
            dataclasses.replace(binance_btcusdt_config(name, balances=cash), **SPECS[name]),  # type: ignore[arg-type]
            clock,
            {"BTC/USDT": list(events)},
        )
        for name in names
    }


async def arrival_mid(events: Sequence[MarketEvent], start: datetime) -> Decimal:
    clock = TestClock(start)
    mids = sorted(
        [
            (await v.order_book("BTC/USDT", 1)).mid
            for v in build(list(SPECS), events, clock).values()
        ]
    )  # type: ignore[type-var]
    return mids[1]  # type: ignore[return-value]


async def run(
    names: Sequence[str],
    events: Sequence[MarketEvent],
    start: datetime,
    qty: Decimal,
    window: timedelta,
    db: Path,
    cap: bool = True,
) -> float:
    clock = TestClock(start)
    venues = build(names, events, clock)
    share = Decimal("0.6") if len(names) > 1 and cap else Decimal(1)
    store = SqlStore.open(f"sqlite:///{db}")
    config = ManagerConfig(routing=RoutingConfig(max_venue_share=share))
    manager = ParentOrderManager(store, venues, clock, config=config)  # type: ignore[arg-type]
    reference = await arrival_mid(events, start)
    parent, _ = await manager.submit(
        NewParent(
            "bench-routed",
            "BTC/USDT",
            Side.BUY,
            qty,
            "twap",
            start + window,
            algo_params={
                "slice_interval_s": 15,
                "seed": 3,
                "max_depth_bps": 200,
                "max_gap_bps": 100,
            },
        )
    )
    until = start + window + timedelta(seconds=5)
    await work_until_done(manager, clock, parent.id, until, timedelta(seconds=1))
    final = store.get_parent(parent.id)
    assert final is not None
    end_mid = (await next(iter(venues.values())).order_book("BTC/USDT", 1)).mid
    assert end_mid is not None
    store.close()
    return shortfall_bps(
        qty, final.filled_qty, final.filled_notional, final.fees, reference, end_mid
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--qty", type=Decimal, default=Decimal(20))
    parser.add_argument("--minutes", type=int, default=5)
    args = parser.parse_args()
    window = timedelta(minutes=args.minutes)
    recorded = load_recorded(default_sample_path())
    snap = next(e.ts for e in recorded if isinstance(e, BookSnapshot))
    days: list[tuple[str, list[MarketEvent], datetime]] = [
        ("recorded", recorded, snap + timedelta(seconds=2))
    ]
    for day in range(args.days):
        start = datetime(2030, 6, 1, tzinfo=UTC) + timedelta(days=day)
        stream = list(
            generate_market(seed=100 + day, start=start, duration=window + timedelta(seconds=30))
        )
        days.append((f"synthetic-{day}", stream, start))

    columns = ["routed", "uncapped", *SPECS]
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, events, start in days:
            rows[label] = {
                "routed": asyncio.run(
                    run(list(SPECS), events, start, args.qty, window, Path(tmp) / f"{label}-r.db")
                ),
                "uncapped": asyncio.run(
                    run(
                        list(SPECS),
                        events,
                        start,
                        args.qty,
                        window,
                        Path(tmp) / f"{label}-u.db",
                        cap=False,
                    )
                ),
            }
            for name in SPECS:
                rows[label][name] = asyncio.run(
                    run([name], events, start, args.qty, window, Path(tmp) / f"{label}-{name}.db")
                )

    print(
        f"buy {args.qty} BTC by TWAP over {args.minutes} min; "
        "realised shortfall in bps, fees included"
    )
    print(f"{'day':<14}" + "".join(f"{c:>10}" for c in columns) + f"{'best single':>13}")
    for label, row in rows.items():
        best = min(row[n] for n in SPECS)
        print(f"{label:<14}" + "".join(f"{row[c]:>10.2f}" for c in columns) + f"{best:>13.2f}")
    synthetic = [r for label, r in rows.items() if label != "recorded"]
    if synthetic:
        mean = {c: statistics.fmean(r[c] for r in synthetic) for c in columns}
        best_mean = statistics.fmean(min(r[n] for n in SPECS) for r in synthetic)
        print(
            f"{'syn mean':<14}"
            + "".join(f"{mean[c]:>10.2f}" for c in columns)
            + f"{best_mean:>13.2f}"
        )
        for column in ("routed", "uncapped"):
            wins = sum(r[column] <= min(r[n] for n in SPECS) for r in synthetic)
            print(f"{column} at or below the best single venue on {wins}/{len(synthetic)} days")


if __name__ == "__main__":
    main()
