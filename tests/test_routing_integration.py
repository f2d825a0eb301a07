"""Routing across several simulated venues through the real manager and store: dispersion,
stored decisions, faults (timeouts, 429, 5xx, a venue disappearing) and the learned impact curve
converging to a venue's known cost law."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ems.clock import TestClock
from ems.domain import Side
from ems.intake import NewParent
from ems.manager import ManagerConfig, ParentOrderManager
from ems.orders import ChildStatus, ParentStatus
from ems.reconcile import NOT_AT_VENUE
from ems.routing import RoutingConfig
from ems.store import SqlStore
from ems.venues.replay import BookSnapshot, MarketEvent
from ems.venues.sim_venue import (
    FaultKind,
    FaultPlan,
    SimVenue,
    SimVenueConfig,
    binance_btcusdt_config,
)
from tests.replay_support import run_until_done, snapshot_time, spot_recording

SYMBOL = "BTC/USDT"
LOT = Decimal("0.00001")


def venue_config(name: str, **changes: object) -> SimVenueConfig:
    balances = {"USDT": Decimal(10_000_000), "BTC": Decimal(100)}
    return dataclasses.replace(binance_btcusdt_config(name, balances=balances), **changes)  # type: ignore[arg-type]


def three_venues(
    clock: TestClock, events: list[MarketEvent], **faults: FaultPlan
) -> dict[str, SimVenue]:
    """Three venues derived from one recording: shifted prices, other depth, fees, latency."""
    specs = {
        "alpha": {"latency": timedelta(milliseconds=20)},
        "beta": {
            "price_offset": Decimal("1.50"),
            "depth_scale": Decimal("0.5"),
            "maker_fee": Decimal("0.0008"),
            "taker_fee": Decimal("0.0009"),
            "latency": timedelta(milliseconds=45),
        },
        "gamma": {
            "price_offset": Decimal("-1.00"),
            "depth_scale": Decimal("2"),
            "taker_fee": Decimal("0.0012"),
            "latency": timedelta(milliseconds=70),
        },
    }
    return {
        name: SimVenue(
            venue_config(name, faults=faults.get(name, FaultPlan()), **spec),
            clock,
            {SYMBOL: events},
        )
        for name, spec in specs.items()
    }


def manager_for(
    store: SqlStore, venues: dict[str, SimVenue], clock: TestClock, **routing: object
) -> ParentOrderManager:
    config = ManagerConfig(routing=RoutingConfig(**routing))  # type: ignore[arg-type]
    return ParentOrderManager(store, venues, clock, config=config)  # type: ignore[arg-type]


def twap(
    client_id: str, qty: str, clock: TestClock, minutes: int = 4, **params: object
) -> NewParent:
    return NewParent(
        client_id,
        SYMBOL,
        Side.BUY,
        Decimal(qty),
        "twap",
        clock.now() + timedelta(minutes=minutes),
        algo_params={"slice_interval_s": 15, "seed": 2, **params},
    )


async def test_slices_are_dispersed_across_venues_and_every_decision_is_stored(
    store: SqlStore,
) -> None:
    events = spot_recording()
    clock = TestClock(snapshot_time(events) + timedelta(seconds=2))
    venues = three_venues(clock, events)
    manager = manager_for(store, venues, clock, max_venue_share=Decimal("0.6"))
    parent, _ = await manager.submit(twap("routed-1", "3", clock))

    final = await run_until_done(manager, clock, parent.id, clock.now() + timedelta(minutes=5))

    assert final.status is ParentStatus.COMPLETED and final.filled_qty == Decimal(3)
    children = store.children(parent.id)
    assert len({c.venue for c in children if c.filled_qty > 0}) >= 2
    decisions = store.route_decisions(parent.id)
    assert decisions, "every routing decision is stored"
    routed = {a["client_order_id"] for d in decisions for a in d.allocations}
    assert routed == {c.client_order_id for c in children}
    for decision in decisions:
        assert {q["venue"] for q in decision.quotes} == {"alpha", "beta", "gamma"}
        assert all(q["best_bid"] and q["best_ask"] for q in decision.quotes)
        per_venue: dict[str, Decimal] = {}
        for allocation in decision.allocations:
            per_venue[allocation["venue"]] = per_venue.get(
                allocation["venue"], Decimal(0)
            ) + Decimal(allocation["qty"])
        assert sum(per_venue.values()) <= decision.qty
        if len(per_venue) > 1:
            assert max(per_venue.values()) <= decision.qty * Decimal("0.6") + LOT
    points = store.impact_points(symbol=SYMBOL)
    assert {p.client_order_id for p in points} <= {c.client_order_id for c in children}
    assert len(points) == sum(1 for c in children if c.status.is_terminal)

    clock.advance(timedelta(minutes=1))  # one refit interval later
    await manager.step()

    took_liquidity = {p.venue for p in points if p.aggressive and p.filled_qty > 0}
    assert took_liquidity, "the final interval crossed the spread"
    fitted = {f.venue: f for f in store.impact_fits(symbol=SYMBOL)}
    assert set(fitted) == took_liquidity, "impact curves are refitted on schedule"
    assert all(
        f.n == sum(1 for p in points if p.venue == v and p.aggressive and p.filled_qty > 0)
        for v, f in fitted.items()
    )


async def test_parent_completes_through_timeouts_rate_limits_errors_and_a_venue_outage(
    store: SqlStore,
) -> None:
    events = spot_recording()
    clock = TestClock(snapshot_time(events) + timedelta(seconds=2))
    flaky = FaultPlan(
        rates={
            FaultKind.UNKNOWN_AFTER_ACCEPT: 0.15,
            FaultKind.UNKNOWN_BEFORE_ACCEPT: 0.15,
            FaultKind.RATE_LIMITED: 0.15,
            FaultKind.UNAVAILABLE: 0.15,
        },
        seed=11,
    )
    venues = three_venues(clock, events, alpha=flaky)
    manager = manager_for(store, venues, clock, max_venue_share=Decimal("0.5"))
    parent, _ = await manager.submit(twap("faulty-1", "3", clock))
    outage_start = clock.now() + timedelta(seconds=60)
    outage_end = outage_start + timedelta(seconds=75)

    await run_until_done(manager, clock, parent.id, outage_start)
    venues["gamma"].go_down(until=outage_end)  # the venue disappears mid-parent
    final = await run_until_done(manager, clock, parent.id, clock.now() + timedelta(minutes=5))

    assert final.status is ParentStatus.COMPLETED and final.filled_qty == Decimal(3)
    children = store.children(parent.id)
    sent = [cid for venue in venues.values() for cid in venue.submissions]
    assert len(sent) == len(set(sent)), "a client id was sent twice"
    assert not [
        c for c in children if c.venue == "gamma" and outage_start < c.created_at < outage_end
    ], "nothing is routed to a venue that is down"
    assert any(c.reason == NOT_AT_VENUE for c in children), "a lost submit was reconciled"
    assert any(c.reason.startswith("not sent") for c in children), "429/5xx were seen"
    in_flight_found = [
        c for c in children if c.venue == "alpha" and c.status is not ChildStatus.REJECTED
    ]
    assert in_flight_found
    fills = store.fills(parent.id)
    assert len({(f.venue, f.trade_id) for f in fills}) == len(fills)
    assert sum((f.qty for f in fills), Decimal(0)) == Decimal(3)
    assert {f.venue for f in fills} >= {"alpha", "beta"}


# --- a venue with a known impact law -----------------------------------------------------

TRUE_A, TRUE_B = 8.0, 0.6
MID = Decimal("50000")
LEVEL_QTY = Decimal(1)


def known_ladder() -> tuple[
    tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]
]:
    """Asks such that taking k of the top 10 equal levels costs TRUE_A * (k/10)**TRUE_B bps on
    average (from the mid); a symmetric bid keeps the mid at MID."""

    def average(k: int) -> float:
        return TRUE_A * (k / 10) ** TRUE_B

    asks = []
    for k in range(1, 31):
        marginal = k * average(k) - (k - 1) * average(k - 1) if k <= 10 else 15 + k
        price = (MID * (1 + Decimal(str(marginal)) / 10_000)).quantize(Decimal("0.01"))
        asks.append((price, LEVEL_QTY))
    bid = (2 * MID - asks[0][0]).quantize(Decimal("0.01"))
    return ((bid, Decimal(50)),), tuple(asks)


def refreshed_ladder(start: datetime, minutes: int) -> Iterator[MarketEvent]:
    bids, asks = known_ladder()
    for i in range(minutes * 120):
        yield BookSnapshot(start + timedelta(milliseconds=500 * i), i + 1, bids, asks)


async def test_learned_impact_curve_converges_to_the_venues_known_cost_law(store: SqlStore) -> None:
    start = datetime(2031, 5, 1, 10, tzinfo=UTC)
    clock = TestClock(start)
    cash = {"USDT": Decimal(100_000_000), "BTC": Decimal(0)}
    venue = SimVenue(
        venue_config("known", balances=cash), clock, {SYMBOL: refreshed_ladder(start, 20)}
    )
    manager = manager_for(store, {"known": venue}, clock, refit_interval=timedelta(hours=1))  # type: ignore[dict-item]
    rng = random.Random(5)

    errors = {}
    for n in range(1, 101):
        # Whole ladder levels, where the venue's cost law holds exactly; a window of one slice
        # makes the whole parent one IOC taking k/10 of the displayed depth.
        qty = LEVEL_QTY * rng.randint(1, 10)
        parent, _ = await manager.submit(
            NewParent(
                f"impact-{n}",
                SYMBOL,
                Side.BUY,
                qty,
                "twap",
                clock.now() + timedelta(seconds=5),
                algo_params={"slice_interval_s": 5, "max_depth_bps": 100},
            )
        )
        await run_until_done(manager, clock, parent.id, clock.now() + timedelta(seconds=8))
        if n in (20, 100):
            manager.routing.refit({SYMBOL}, clock.now())
            (fit,) = store.impact_fits(venue="known", symbol=SYMBOL)
            errors[n] = (abs(float(fit.a) - TRUE_A) / TRUE_A, abs(float(fit.b) - TRUE_B))

    points = store.impact_points(venue="known")
    assert len([p for p in points if p.aggressive and p.filled_qty > 0]) == 100
    a_error, b_error = errors[100]
    assert a_error < 0.05 and b_error < 0.03, errors  # the stated tolerance after 100 fills
    assert a_error < errors[20][0] and b_error < errors[20][1], "the fit approaches the truth"
