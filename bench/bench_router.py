"""Smart-order-router decision latency against a plain consolidated-book walk.

Five venues with 50 price levels a side each (seeded random books around a common price, random
fees, balances and impact fits). For every decision the same slice is (a) routed by
``routers.sor.route`` (cost model, water-filling, lots, minimums, quotes) and (b) filled on paper
by the baseline: merge the five books into one (``consolidated_book``) and walk it for the same
quantity. Both are timed in the same run, interleaved, on the same inputs.

    python bench/bench_router.py [--decisions 2000] [--venues 5] [--levels 50] [--seed 7]

Not a pass/fail test: it prints p50/p99 of both and their ratio.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ems.domain import BookLevel, Instrument, InstrumentKind, OrderBook, Side
from routers.sor import consolidated_book, route
from routers.types import ImpactFit, RouteRequest, VenueHealth, VenueState

T0 = datetime(2024, 8, 8, tzinfo=UTC)
TICK = Decimal("0.01")
SNAPSHOTS = 50


def make_venue(rng: random.Random, name: str, mid: Decimal, levels: int) -> VenueState:
    skew = rng.randint(-20, 20) * TICK
    half = rng.randint(1, 10) * TICK
    bids, asks = [], []
    up, down = mid + skew + half, mid + skew - half
    for _ in range(levels):
        asks.append(BookLevel(up, Decimal(rng.randint(1, 500)) / 1000))
        bids.append(BookLevel(down, Decimal(rng.randint(1, 500)) / 1000))
        step = rng.randint(1, 50) * TICK
        up += step
        down -= step
    instrument = Instrument(
        venue=name,
        symbol="BTC/USDT",
        kind=InstrumentKind.SPOT,
        base="BTC",
        quote="USDT",
        tick_size=TICK,
        lot_size=Decimal(rng.choice(("0.00001", "0.0001", "0.001"))),
        min_qty=Decimal("0.0001"),
        min_notional=Decimal(5),
        maker_fee=Decimal("0.0002"),
        taker_fee=Decimal(rng.choice(("0.0004", "0.0006", "0.001"))),
    )
    fit = None
    if rng.random() < 0.7:
        a, b = rng.uniform(4, 20), rng.uniform(0.3, 0.9)
        fit = ImpactFit(name, "BTC/USDT", a, b, a, a, b, b, 200, T0)
    return VenueState(
        venue=name,
        book=OrderBook(name, "BTC/USDT", T0, tuple(bids), tuple(asks)),
        instrument=instrument,
        health=VenueHealth(name, True),
        available_qty=Decimal(rng.randint(500, 5000)) / 100,
        impact=fit,
        fill_probability=rng.uniform(0.2, 0.8),
    )


def baseline_walk(books: list[OrderBook], side: Side, qty: Decimal) -> Decimal | None:
    """Average price of ``qty`` taken from the merged book (the plain consolidated walk)."""
    merged = consolidated_book(books)
    levels = merged.asks if side is Side.BUY else merged.bids
    left, notional = qty, Decimal(0)
    for level in levels:
        take = min(left, level.qty)
        notional += take * level.price
        left -= take
        if left <= 0:
            return notional / qty
    return None


def percentile(samples: list[int], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000  # µs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--venues", type=int, default=5)
    parser.add_argument("--levels", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    mid = Decimal(60_000)
    markets = [
        [make_venue(rng, f"v{i}", mid, args.levels) for i in range(args.venues)]
        for _ in range(SNAPSHOTS)
    ]
    requests = []
    for _ in range(args.decisions):
        side = rng.choice((Side.BUY, Side.SELL))
        qty = Decimal(rng.randint(10, 3000)) / 1000  # 0.01 .. 3 BTC; books hold ~12 BTC a side
        limit = mid + 150 if side is Side.BUY else mid - 150
        share = Decimal(rng.choice(("1", "0.5", "0.4")))
        requests.append(RouteRequest(side, qty, limit, True, share))

    for k, request in enumerate(requests[:100]):  # warm-up, not measured
        route(request, markets[k % SNAPSHOTS])
        baseline_walk([v.book for v in markets[k % SNAPSHOTS]], request.side, request.qty)
    gc.collect()

    routed_ns: list[int] = []
    walked_ns: list[int] = []
    unrouted = 0
    for k, request in enumerate(requests):
        venues = markets[k % SNAPSHOTS]
        books = [v.book for v in venues]
        t0 = time.perf_counter_ns()
        decision = route(request, venues)
        t1 = time.perf_counter_ns()
        baseline_walk(books, request.side, request.qty)
        t2 = time.perf_counter_ns()
        routed_ns.append(t1 - t0)
        walked_ns.append(t2 - t1)
        unrouted += decision.unrouted > 0

    r50, r99 = percentile(routed_ns, 0.50), percentile(routed_ns, 0.99)
    w50, w99 = percentile(walked_ns, 0.50), percentile(walked_ns, 0.99)
    print(
        f"{args.decisions} decisions, {args.venues} venues x {args.levels} levels a side "
        f"(seed {args.seed}); {unrouted} left something unrouted"
    )
    print(f"{'':28}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}")
    print(f"{'router (route)':28}{r50:10.1f}{r99:10.1f}{statistics.fmean(routed_ns) / 1000:10.1f}")
    print(
        f"{'consolidated walk (baseline)':28}{w50:10.1f}{w99:10.1f}"
        f"{statistics.fmean(walked_ns) / 1000:10.1f}"
    )
    print(f"{'ratio router / baseline':28}{r50 / w50:10.2f}{r99 / w99:10.2f}")


if __name__ == "__main__":
    main()
