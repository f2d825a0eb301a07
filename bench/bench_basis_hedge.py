"""Replay report: accumulating spot with a basis hedge on recorded Binance spot and USDⓈ-M data.

The packaged recordings of Binance BTCUSDT spot and the USDⓈ-M BTCUSDT perpetual cover the same
minutes (2024-08-08, 23:54–24:00 UTC). A TWAP buy of ``--qty`` BTC is worked on the spot venue by
the real manager (SQLite store) while the hedge desk keeps a short perpetual at 1.0 × spot
(minimum 0.8) through ordinary hedge parents on the perpetual venue. The report shows:

* the basis captured at each hedge fill (perpetual price − spot mid, in bps of spot) and over
  the whole hedge (average short price against average spot price);
* the coverage path (spot, short, short ÷ spot) sampled through the run, and the lowest
  coverage seen right after any spot fill;
* what hedging costs the spot leg: the same parent worked unhedged in the same run (baseline),
  shortfall against the arrival mid, fees included, and time to completion.

    python bench/bench_basis_hedge.py [--qty 5] [--minutes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ems.clock import TestClock
from ems.domain import Fill, Side
from ems.hedging import HedgeConfig
from ems.intake import NewParent
from ems.manager import ManagerConfig, ParentOrderManager
from ems.orders import ParentRole
from ems.store import SqlStore
from ems.venues.perp import default_usdm_sample_path
from ems.venues.replay import BookSnapshot, MarketEvent, default_sample_path, load_recorded
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config, binance_usdm_config
from risk.coverage import CoveragePolicy
from risk.types import MarketPhase

SPOT, PERP = "binance-sim", "binance-usdm-sim"
SPOT_SYMBOL, PERP_SYMBOL = "BTC/USDT", "BTC/USDT:USDT"
STEP = timedelta(milliseconds=500)
BPS = Decimal(10_000)
_BASIS_ONLY = {
    "min_basis_ratio": "0.8",
    "target_basis_ratio": "1.0",
    "min_put_ratio": "0",
    "target_put_ratio": "0",
}
POLICY = CoveragePolicy.from_mapping(
    {
        "drift_tolerance": "0.02",
        "max_drift_duration": 120,
        "phases": {phase.value: _BASIS_ONLY for phase in MarketPhase},
    }
)


@dataclass
class Run:
    spot_fills: list[Fill]
    hedge_fills: list[Fill]
    arrival_mid: Decimal
    finished_after: timedelta | None
    path: list[tuple[timedelta, Decimal, Decimal]] = field(default_factory=list)
    min_coverage_after_fill: Decimal | None = None
    basis_at_fills: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (bps, qty)
    held_decisions: int = 0
    steps: int = 0
    wall_s: float = 0.0


def start_time(spot: list[MarketEvent], perp: list[MarketEvent]) -> datetime:
    first = max(
        next(e.ts for e in spot if isinstance(e, BookSnapshot)),
        next(e.ts for e in perp if isinstance(e, BookSnapshot)),
    )
    return first + timedelta(seconds=2)


async def work(
    spot_events: list[MarketEvent],
    perp_events: list[MarketEvent],
    qty: Decimal,
    window: timedelta,
    db: Path,
    hedged: bool,
) -> Run:
    """One run of the spot parent, with or without the hedge desk."""
    clock = TestClock(start_time(spot_events, perp_events))
    spot = SimVenue(binance_btcusdt_config(SPOT), clock, {SPOT_SYMBOL: spot_events})
    perp = SimVenue(binance_usdm_config(PERP), clock, {PERP_SYMBOL: perp_events})
    hedging = HedgeConfig("BTC", SPOT_SYMBOL, PERP_SYMBOL, POLICY) if hedged else None
    store = SqlStore.open(f"sqlite:///{db}")
    manager = ParentOrderManager(
        store, {SPOT: spot, PERP: perp}, clock, config=ManagerConfig(hedging=hedging)
    )
    book = await spot.order_book(SPOT_SYMBOL, 1)
    assert book.mid is not None
    started = clock.now()
    parent, _ = await manager.submit(
        NewParent(
            "accumulate",
            SPOT_SYMBOL,
            Side.BUY,
            qty,
            "twap",
            started + window,
            venues=(SPOT,),
            algo_params={"slice_interval_s": 10},
        )
    )
    run = Run([], [], book.mid, None)
    seen_fills = 0
    deadline = started + window + timedelta(seconds=30)
    while clock.now() < deadline:
        clock.advance(STEP)
        tick = time.perf_counter()
        await manager.step()
        run.wall_s += time.perf_counter() - tick
        run.steps += 1
        current = manager.parent(parent.id)
        assert current is not None
        if current.is_terminal and run.finished_after is None:
            run.finished_after = clock.now() - started
        if manager.hedge is None:
            if current.is_terminal:
                break
            continue
        exposure = await manager.coverage_exposure()
        assert exposure is not None
        elapsed = clock.now() - started
        if not run.path or elapsed - run.path[-1][0] >= timedelta(seconds=20):
            run.path.append((elapsed, exposure.spot_qty, exposure.perp_short_qty))
        fills = len(store.fills(parent.id))
        if fills > seen_fills and exposure.spot_qty > 0:
            ratio = exposure.perp_short_qty / exposure.spot_qty
            low = run.min_coverage_after_fill
            run.min_coverage_after_fill = ratio if low is None else min(low, ratio)
        seen_fills = fills
        if current.is_terminal and not _hedge_working(manager):
            run.path.append((elapsed, exposure.spot_qty, exposure.perp_short_qty))
            break
    run.spot_fills = store.fills(parent.id)
    hedges = [p for p in store.list_parents(limit=1000) if p.role is ParentRole.BASIS_HEDGE]
    run.hedge_fills = [f for p in hedges for f in store.fills(p.id)]
    run.basis_at_fills = [
        (r.basis_bps, _fill_qty(r.detail))
        for r in store.coverage_log(kind="hedge_fill")
        if r.basis_bps is not None
    ]
    run.held_decisions = len(store.coverage_log(kind="spot_held"))
    store.close()
    return run


def _hedge_working(manager: ParentOrderManager) -> bool:
    return any(
        (p := manager.parent(pid)) is not None and p.role.is_hedge and not p.is_terminal
        for pid in manager.active_parent_ids()
    )


def _fill_qty(detail: str) -> Decimal:
    return Decimal(detail.split()[1])  # "sell <qty> <symbol> on …"


def avg_price(fills: list[Fill]) -> Decimal:
    qty = sum((f.qty for f in fills), Decimal(0))
    return sum((f.qty * f.price for f in fills), Decimal(0)) / qty


def shortfall(fills: list[Fill], arrival: Decimal) -> Decimal:
    qty = sum((f.qty for f in fills), Decimal(0))
    fees = sum((f.fee for f in fills), Decimal(0))
    return ((avg_price(fills) - arrival) / arrival + fees / (qty * arrival)) * BPS


def _q(value: Decimal, places: str = "0.01") -> str:
    return str(value.quantize(Decimal(places)))


def report(hedged: Run, plain: Run, qty: Decimal) -> None:
    spot_qty = sum((f.qty for f in hedged.spot_fills), Decimal(0))
    short_qty = sum((f.qty for f in hedged.hedge_fills), Decimal(0))
    spot_avg, short_avg = avg_price(hedged.spot_fills), avg_price(hedged.hedge_fills)
    weighted = sum((b * q for b, q in hedged.basis_at_fills), Decimal(0))
    basis_qty = sum((q for _, q in hedged.basis_at_fills), Decimal(0))
    fees = sum((f.fee for f in hedged.hedge_fills), Decimal(0))
    print(f"## Basis hedge replay: buy {qty} BTC spot by TWAP, short perpetual at 1.0 × spot\n")
    print("| leg | filled BTC | avg price | fills |")
    print("|---|---|---|---|")
    print(f"| spot buy | {spot_qty} | {_q(spot_avg)} | {len(hedged.spot_fills)} |")
    print(f"| perp short | {short_qty} | {_q(short_avg)} | {len(hedged.hedge_fills)} |")
    print()
    captured = (short_avg - spot_avg) * min(spot_qty, short_qty)
    print(
        f"Basis at hedge fills (perp − spot mid, qty-weighted): "
        f"{_q(weighted / basis_qty)} bps over {len(hedged.basis_at_fills)} fills "
        f"(min {_q(min(b for b, _ in hedged.basis_at_fills))}, "
        f"max {_q(max(b for b, _ in hedged.basis_at_fills))})"
    )
    print(
        f"Basis locked in (avg short − avg spot): {_q((short_avg - spot_avg) / spot_avg * BPS)} "
        f"bps = {_q(captured)} USDT on {min(spot_qty, short_qty)} BTC; perp fees {_q(fees)} USDT"
    )
    print(
        "Funding: none settled inside the recording (Binance USDⓈ-M settles at 00:00, 08:00 "
        "and 16:00 UTC; the minutes end at 23:59:59.8)"
    )
    print()
    print("Coverage path (short ÷ spot; minimum 0.8, target 1.0):\n")
    print("| t (s) | spot BTC | short BTC | coverage |")
    print("|---|---|---|---|")
    for elapsed, spot, short in hedged.path:
        ratio = "—" if spot == 0 else _q(short / spot, "0.001")
        print(f"| {int(elapsed.total_seconds())} | {spot} | {short} | {ratio} |")
    low = hedged.min_coverage_after_fill
    print(f"\nLowest coverage right after a spot fill: {'—' if low is None else _q(low, '0.001')}")
    print(f"Spot slices held for coverage (distinct holds): {hedged.held_decisions}\n")
    print("Spot leg against the unhedged baseline (same data, same run):\n")
    print("| run | shortfall vs arrival (bps, fees incl.) | completed after | manager step |")
    print("|---|---|---|---|")
    for name, run in (("unhedged (baseline)", plain), ("hedged", hedged)):
        done = "—" if run.finished_after is None else f"{run.finished_after.total_seconds():.1f} s"
        per_step = f"{run.wall_s / run.steps * 1000:.2f} ms over {run.steps} steps"
        print(
            f"| {name} | {_q(shortfall(run.spot_fills, run.arrival_mid))} | {done} | {per_step} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qty", type=Decimal, default=Decimal(5))
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    spot_events = list(load_recorded(default_sample_path()))
    perp_events = list(load_recorded(default_usdm_sample_path()))
    window = timedelta(minutes=args.minutes)
    with tempfile.TemporaryDirectory() as tmp:
        plain = asyncio.run(
            work(spot_events, perp_events, args.qty, window, Path(tmp) / "plain.db", False)
        )
        hedged = asyncio.run(
            work(spot_events, perp_events, args.qty, window, Path(tmp) / "hedged.db", True)
        )
    report(hedged, plain, args.qty)


if __name__ == "__main__":
    main()
