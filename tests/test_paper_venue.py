"""Paper trading: ccxt fixture replies as the live market, our orders matched by the simulator.

The market-data venue is an offline binance whose ``exchange.fetch`` answers ``/api/v3/depth``
with the "spot orderbook" fixture (bids 42574.3 x 0.0107, 42574.2 x 0.00646; asks
42574.31 x 0.0087, 42574.8 x 0.00893) and ``/api/v3/aggTrades`` with "public spot trades" (a
buy of 0.00109 BTC at 73238.7 at 2024-03-13 11:01:01.939 UTC) or with nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import ccxt
import pytest

from ems.clock import TestClock
from ems.domain import BookLevel, Liquidity, OrderRequest, OrderType, Side, TimeInForce
from ems.errors import RetryableVenueError, VenueRejected
from ems.ports import VenueOrderStatus
from ems.settings import CcxtVenueSettings
from ems.venues.ccxt_venue import CcxtVenue
from ems.venues.paper_venue import PaperVenue
from tests import ccxt_support as fx
from tests.test_ccxt_venue import AGG_TRADES, ATTEMPTS, DEPTH, Wire, options, reply

TRADE_TIME = datetime(2024, 3, 13, 11, 1, 1, 939000, tzinfo=UTC)
START = datetime(2024, 3, 13, 11, 0, tzinfo=UTC)
FEE = Decimal("0.001")  # binance BTC/USDT maker and taker fee in the markets fixture


@dataclass
class Paper:
    venue: PaperVenue
    market: CcxtVenue
    wire: Wire
    clock: TestClock


@pytest.fixture
async def paper() -> AsyncIterator[Paper]:
    fx.require_fixtures()
    clock = TestClock(START)
    exchange = fx.offline_exchange(
        "binance",
        options=fx.fixture_file("response", "binance").get("options"),
        complete_markets=True,
    )
    market = CcxtVenue(
        "binance-data", exchange, symbols=("BTC/USDT",), clock=clock, options=options()
    )
    wire = Wire(exchange, {DEPTH: reply("fetchOrderBook", "spot orderbook"), AGG_TRADES: []})
    venue = PaperVenue(
        "paper",
        market,
        balances={"USDT": Decimal(100_000), "BTC": Decimal(1)},
        clock=clock,
        refresh_interval=timedelta(0),
    )
    await venue.start()
    try:
        yield Paper(venue, market, wire, clock)
    finally:
        await venue.close()


def order(
    side: Side,
    qty: str,
    price: str,
    tif: TimeInForce = TimeInForce.GTC,
    cid: str = "paper-child-1",
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        venue="paper",
        symbol="BTC/USDT",
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.LIMIT,
        price=Decimal(price),
        time_in_force=tif,
    )


async def test_instruments_come_from_the_exchange_under_the_paper_name(paper: Paper) -> None:
    inst = paper.venue.instruments()["BTC/USDT"]
    assert (inst.venue, inst.tick_size, inst.lot_size) == (
        "paper",
        Decimal("0.01"),
        Decimal("0.00001"),
    )
    assert (inst.min_notional, inst.maker_fee, inst.taker_fee) == (Decimal(5), FEE, FEE)
    assert paper.venue.native_iceberg is False


async def test_the_live_book_is_the_simulators_book(paper: Paper) -> None:
    book = await paper.venue.order_book("BTC/USDT", 5)
    assert book.venue == "paper" and book.ts == START
    assert book.bids == (
        BookLevel(Decimal("42574.3"), Decimal("0.0107")),
        BookLevel(Decimal("42574.2"), Decimal("0.00646")),
    )
    assert book.asks == (
        BookLevel(Decimal("42574.31"), Decimal("0.0087")),
        BookLevel(Decimal("42574.8"), Decimal("0.00893")),
    )


async def test_an_ioc_buy_takes_the_live_asks_after_the_latency(paper: Paper) -> None:
    venue, clock = paper.venue, paper.clock
    ack = await venue.submit(order(Side.BUY, "0.01", "42574.8", TimeInForce.IOC))
    assert (ack.status, ack.fills) == (VenueOrderStatus.OPEN, ())

    clock.advance(timedelta(seconds=1))  # the next market refresh lets the order arrive
    state = await venue.fetch_order("paper-child-1", "BTC/USDT")

    assert state.status is VenueOrderStatus.FILLED
    first, second = state.fills
    assert (first.price, first.qty, first.liquidity) == (
        Decimal("42574.31"),
        Decimal("0.0087"),
        Liquidity.TAKER,
    )
    assert (second.price, second.qty) == (Decimal("42574.8"), Decimal("0.0013"))
    assert first.fee == Decimal("42574.31") * Decimal("0.0087") * FEE
    assert first.ts == START + timedelta(milliseconds=20)  # submit time + latency, UTC
    balances = await venue.balances()
    assert balances["BTC"].total == Decimal("1.01")
    spent = sum((f.notional + f.fee for f in state.fills), Decimal(0))
    assert balances["USDT"].total == Decimal(100_000) - spent
    assert [u.client_order_id for u in venue.drain_updates()] == ["paper-child-1"]

    clock.advance(timedelta(seconds=1))
    # paper orders leave the real book untouched: each new live book says what is there
    book = await venue.order_book("BTC/USDT", 5)
    assert book.asks[0] == BookLevel(Decimal("42574.31"), Decimal("0.0087"))


async def test_a_resting_sell_is_filled_by_a_live_trade_through_its_price(paper: Paper) -> None:
    venue, wire, clock = paper.venue, paper.wire, paper.clock
    await venue.submit(order(Side.SELL, "0.001", "42574.8"))
    wire.routes[AGG_TRADES] = reply("fetchTrades", "public spot trades")

    clock.set(TRADE_TIME + timedelta(minutes=1))
    state = await venue.fetch_order("paper-child-1", "BTC/USDT")

    assert state.status is VenueOrderStatus.FILLED
    (fill,) = state.fills
    assert (fill.side, fill.price, fill.qty, fill.liquidity) == (
        Side.SELL,
        Decimal("42574.8"),
        Decimal("0.001"),
        Liquidity.MAKER,
    )
    assert fill.fee == Decimal("42.5748") * FEE and fill.fee_currency == "USDT"
    assert fill.ts == TRADE_TIME
    assert fill.trade_id.startswith("paper-") and fill.trade_id != "paper-1"  # unique per run
    assert await venue.traded_volume("BTC/USDT", START) == Decimal("0.00109")  # the market's


async def test_trades_in_the_same_millisecond_all_count(paper: Paper) -> None:
    """DERIVED: "public spot trades" plus a second trade in the same millisecond (id + 1)."""
    venue, wire, clock = paper.venue, paper.wire, paper.clock
    await venue.submit(order(Side.SELL, "0.002", "42574.8"))
    trades = reply("fetchTrades", "public spot trades")
    trades.append({**trades[0], "a": str(int(trades[0]["a"]) + 1)})
    wire.routes[AGG_TRADES] = trades

    clock.set(TRADE_TIME + timedelta(minutes=1))
    state = await venue.fetch_order("paper-child-1", "BTC/USDT")

    assert state.status is VenueOrderStatus.FILLED
    assert [fill.qty for fill in state.fills] == [Decimal("0.00109"), Decimal("0.00091")]
    assert venue.dropped_trades == 0


async def test_a_trade_older_than_the_simulator_time_is_dropped(paper: Paper) -> None:
    venue, wire, clock = paper.venue, paper.wire, paper.clock
    await venue.submit(order(Side.SELL, "0.001", "42574.8"))
    clock.set(TRADE_TIME + timedelta(minutes=1))
    await venue.refresh()  # no trades yet: the simulator moves past the trade's time...
    wire.routes[AGG_TRADES] = reply("fetchTrades", "public spot trades")
    clock.advance(timedelta(seconds=2))  # ...and the exchange lists the trade only now

    state = await venue.fetch_order("paper-child-1", "BTC/USDT")

    assert state.status is VenueOrderStatus.OPEN and state.fills == ()
    assert venue.dropped_trades == 1


async def test_no_fresh_market_data_means_no_paper_order(paper: Paper) -> None:
    venue, wire, clock = paper.venue, paper.wire, paper.clock
    await venue.refresh()
    clock.advance(timedelta(minutes=10))  # REST fails: only the 10-minute-old book is known
    wire.fail(DEPTH, *(ccxt.NetworkError("down") for _ in range(ATTEMPTS)))
    with pytest.raises(RetryableVenueError, match="stale"):
        await venue.submit(order(Side.BUY, "0.01", "42574.8"))
    assert venue.sim.submissions == []
    assert (await venue.balances())["USDT"].free == Decimal(100_000)  # reads still answer


async def test_a_post_only_order_crossing_the_live_book_is_refused(paper: Paper) -> None:
    with pytest.raises(VenueRejected, match="post-only"):
        await paper.venue.submit(order(Side.BUY, "0.01", "42574.31", TimeInForce.POST_ONLY))


async def test_from_settings_needs_no_keys_and_starts_with_the_paper_balances() -> None:
    spec = CcxtVenueSettings.model_validate(
        {
            "name": "paper",
            "kind": "ccxt",
            "exchange": "binance",
            "symbols": ["BTC/USDT"],
            "paper": True,
            "balances": {"USDT": "250000"},
            "latency_ms": 50,
        }
    )
    venue = PaperVenue.from_settings(spec, TestClock(START))
    try:
        assert venue.name == "paper" and "credentials=none" in repr(venue)
        assert venue._balances == {"USDT": Decimal(250_000)}
        assert venue._latency == timedelta(milliseconds=50)
    finally:
        await venue.close()
