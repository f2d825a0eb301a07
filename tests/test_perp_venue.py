"""Perpetual futures on the simulated venue: margin instead of base to sell, signed positions,
realised PnL and fees, reduce-only rules, funding, the USDⓈ-M recording and settings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ems.clock import TestClock
from ems.domain import InstrumentKind, OrderRequest, OrderType, Side, TimeInForce
from ems.errors import VenueRejected
from ems.main import build_venue
from ems.ports import VenueOrderStatus
from ems.settings import SettingsError, SimVenueSettings, load_settings
from ems.venues.perp import PositionState, default_usdm_sample_path
from ems.venues.replay import BookDiff, BookSnapshot, BookTicker, MarketEvent, load_recorded
from ems.venues.sim_venue import (
    SimVenue,
    SimVenueConfig,
    binance_btcusdt_config,
    binance_usdm_btcusdt_instrument,
    binance_usdm_config,
)
from tests.shared_data import MARKET

D = Decimal
NAME = "perpx"
SYMBOL = "BTC/USDT:USDT"
T0 = datetime(2024, 8, 8, 23, 55, tzinfo=UTC)
LATENCY = timedelta(milliseconds=50)
START = D(100_000)
SHARED_USDM = MARKET / "binance-usdm-btcusdt-20240808.gz"
SNAPSHOT = BookSnapshot(
    T0,
    1,
    ((D("60000.0"), D(1)), (D("59999.9"), D(2))),
    ((D("60000.1"), D("0.5")), (D("60000.2"), D("0.5")), (D("60001.0"), D(2))),
)
# One second later the market jumps up ten dollars (a futures diff: pu = previous u).
JUMP = BookDiff(
    T0 + timedelta(seconds=1),
    2,
    2,
    1,
    ((D("60010.0"), D(1)),),
    ((D("60000.1"), D(0)), (D("60000.2"), D(0)), (D("60001.0"), D(0)), (D("60010.1"), D(2))),
)


def _venue(feed: Iterable[MarketEvent] = (SNAPSHOT, JUMP)) -> tuple[SimVenue, TestClock]:
    clock = TestClock(T0)
    config = SimVenueConfig(
        NAME, (binance_usdm_btcusdt_instrument(NAME),), balances={"USDT": START}, latency=LATENCY
    )
    return SimVenue(config, clock, {SYMBOL: list(feed)}), clock


def _req(
    cid: str,
    side: Side,
    qty: str,
    price: str | None = None,
    *,
    reduce_only: bool = False,
    tif: TimeInForce = TimeInForce.GTC,
) -> OrderRequest:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderRequest(
        cid,
        NAME,
        SYMBOL,
        side,
        D(qty),
        kind,
        None if price is None else D(price),
        tif,
        reduce_only=reduce_only,
    )


async def _usdt(venue: SimVenue) -> tuple[Decimal, Decimal]:
    balance = (await venue.balances())["USDT"]
    return balance.free, balance.locked


async def _run(venue: SimVenue, clock: TestClock, request: OrderRequest) -> VenueOrderStatus:
    await venue.submit(request)
    clock.advance(LATENCY)
    return (await venue.fetch_order(request.client_order_id, SYMBOL)).status


# ------------------------------------------------------------------------------ instrument
def test_usdm_instrument_has_binance_filters_and_futures_fees() -> None:
    inst = binance_usdm_btcusdt_instrument("v")

    assert inst.kind is InstrumentKind.PERPETUAL and inst.symbol == "BTC/USDT:USDT"
    assert (inst.base, inst.quote, inst.settle, inst.contract_size) == ("BTC", "USDT", "USDT", 1)
    assert (inst.tick_size, inst.lot_size, inst.min_qty) == (D("0.10"), D("0.001"), D("0.001"))
    assert inst.min_notional == 100
    assert (inst.maker_fee, inst.taker_fee) == (D("0.0002"), D("0.0005"))
    assert binance_usdm_btcusdt_instrument("v", taker_fee=D("0.0004")).taker_fee == D("0.0004")


@pytest.mark.parametrize("leverage", [D(0), D("0.5"), D(126)])
def test_leverage_out_of_range_is_refused(leverage: Decimal) -> None:
    with pytest.raises(ValueError, match="leverage"):
        binance_usdm_config("v", leverage=leverage)


# ----------------------------------------------------------------------- margin and shorts
async def test_short_opens_without_base_and_holds_margin_until_closed() -> None:
    venue, clock = _venue()

    await venue.submit(_req("s1", Side.SELL, "0.2", "60000.0"))
    locked_by_order = await _usdt(venue)
    clock.advance(LATENCY)
    after_open = await _usdt(venue)
    short = (await venue.positions())[SYMBOL]
    status = await _run(venue, clock, _req("b1", Side.BUY, "0.2"))
    after_close = await _usdt(venue)

    # order: margin 0.2 * 60000 / 5 = 2400 plus the fee at the taker rate, 6
    assert locked_by_order == (START - D(2406), D(2406))
    # filled as taker: the position holds 2400 of margin, the 6 fee is paid
    assert after_open == (START - D(2400) - D(6), D(2400))
    assert (short.qty, short.entry_price, short.margin) == (D("-0.2"), D("60000.0"), D(2400))
    assert (await venue.balances())["BTC"].total == 0
    # closed at 60000.1: realised -0.02, fee 6.00001; nothing stays locked
    assert status is VenueOrderStatus.FILLED
    assert after_close == (START - D(6) - D("6.00001") - D("0.02"), D(0))
    assert await venue.positions() == {}


async def test_cancel_releases_the_order_margin() -> None:
    venue, clock = _venue()

    await venue.submit(_req("s1", Side.SELL, "0.1", "60010.0"))
    locked = await _usdt(venue)
    await venue.cancel("s1", SYMBOL)
    clock.advance(LATENCY)

    assert locked[1] == D("0.1") * (D(60010) / 5 + D(60010) * D("0.0005"))
    assert await _usdt(venue) == (START, D(0))
    assert (await venue.fetch_order("s1", SYMBOL)).status is VenueOrderStatus.CANCELLED


async def test_margin_beyond_the_balance_is_rejected() -> None:
    venue, _ = _venue()

    # 10 BTC at 60000 needs 120,000 of margin at 5x
    with pytest.raises(VenueRejected, match="insufficient balance"):
        await venue.submit(_req("s1", Side.SELL, "10", "60010.0"))


# ------------------------------------------------------------------------ PnL and fees
async def test_realised_pnl_fees_and_unrealised_pnl_are_exact() -> None:
    venue, clock = _venue()

    # long 1.0: 0.5 at 60000.1 and 0.5 at 60000.2 -> entry 60000.15
    await _run(venue, clock, _req("b1", Side.BUY, "1.0"))
    clock.set(T0 + timedelta(seconds=1))  # the book jumps to 60010.0 / 60010.1
    await _run(venue, clock, _req("s1", Side.SELL, "0.4", "60010.0"))
    position = (await venue.positions())[SYMBOL]
    fills = (await venue.fetch_order("b1", SYMBOL)).fills + (
        await venue.fetch_order("s1", SYMBOL)
    ).fills

    fees = D("15.000025") + D("15.00005") + D("12.002")
    assert [f.fee for f in fills] == [D("15.000025"), D("15.00005"), D("12.002")]
    assert {f.fee_currency for f in fills} == {"USDT"}
    assert position.qty == D("0.6") and position.entry_price == D("60000.15")
    assert position.realised_pnl == D("0.4") * D("9.85")  # 3.94
    assert position.mark_price == D("60010.05")
    assert position.unrealised_pnl == D("0.6") * D("9.9")
    assert position.margin == D("0.6") * D("60000.15") / 5
    assert await _usdt(venue) == (START - position.margin - fees + D("3.94"), position.margin)


def test_a_fill_through_the_position_flips_it_at_the_fill_price() -> None:
    state = PositionState()

    state.apply_fill(Side.BUY, D(1), D(100))
    realised = state.apply_fill(Side.SELL, D("1.5"), D(110))

    assert realised == D(10)
    assert (state.qty, state.entry_price) == (D("-0.5"), D(110))
    assert state.margin(D(5)) == D(11)


# --------------------------------------------------------------------------- reduce-only
async def test_reduce_only_must_reduce_and_may_not_flip() -> None:
    venue, clock = _venue()

    with pytest.raises(VenueRejected, match="reduce-only order would increase the position"):
        await venue.submit(_req("r0", Side.SELL, "0.1", "60010.0", reduce_only=True))
    await _run(venue, clock, _req("b1", Side.BUY, "0.1"))
    with pytest.raises(VenueRejected, match="reduce-only order would increase the position"):
        await venue.submit(_req("r1", Side.BUY, "0.1", "59999.9", reduce_only=True))
    with pytest.raises(VenueRejected, match="would flip the position"):
        await venue.submit(_req("r2", Side.SELL, "0.2", "60010.0", reduce_only=True))
    locked = (await _usdt(venue))[1]
    await venue.submit(_req("r3", Side.SELL, "0.1", "60010.0", reduce_only=True))

    # a reduce-only order locks its fee only, no margin
    assert (await _usdt(venue))[1] - locked == D("0.1") * D(60010) * D("0.0005")


async def test_reduce_only_orders_expire_when_the_position_closes_and_never_flip_it() -> None:
    venue, clock = _venue()
    await _run(venue, clock, _req("b1", Side.BUY, "0.1"))

    # both fit the position alone; together they would flip it
    await venue.submit(_req("r1", Side.SELL, "0.1", "60000.0", reduce_only=True))
    await venue.submit(_req("r2", Side.SELL, "0.1", "60000.0", reduce_only=True))
    clock.advance(LATENCY)
    r1 = await venue.fetch_order("r1", SYMBOL)
    r2 = await venue.fetch_order("r2", SYMBOL)

    assert r1.status is VenueOrderStatus.FILLED
    assert r2.status is VenueOrderStatus.EXPIRED and r2.fills == ()
    assert "reduce-only order cancelled" in r2.reason
    assert await venue.positions() == {}
    assert (await _usdt(venue))[1] == 0


async def test_resting_reduce_only_order_expires_when_another_order_closes_the_position() -> None:
    venue, clock = _venue()
    await _run(venue, clock, _req("b1", Side.BUY, "0.1"))
    await _run(venue, clock, _req("r1", Side.SELL, "0.1", "60005.0", reduce_only=True))

    await _run(venue, clock, _req("s1", Side.SELL, "0.1"))
    r1 = await venue.fetch_order("r1", SYMBOL)

    assert r1.status is VenueOrderStatus.EXPIRED
    assert venue.engine(SYMBOL).open_orders() == []
    assert (await _usdt(venue))[1] == 0


async def test_reduce_only_may_close_dust_below_the_minimum_notional() -> None:
    venue, clock = _venue()
    await _run(venue, clock, _req("b1", Side.BUY, "0.002"))  # 120 USDT: above the minimum

    with pytest.raises(VenueRejected, match="below the minimum"):
        await venue.submit(_req("s0", Side.SELL, "0.001"))  # 60 USDT, would open a short
    first = await _run(venue, clock, _req("r1", Side.SELL, "0.001", reduce_only=True))
    second = await _run(venue, clock, _req("r2", Side.SELL, "0.001", "60000.0", reduce_only=True))

    assert first is second is VenueOrderStatus.FILLED
    assert await venue.positions() == {}


# -------------------------------------------------------------------------------- funding
@pytest.mark.parametrize(
    ("side", "rate", "received"),
    [
        (Side.SELL, D("0.0001"), D("1.2")),  # positive rate: shorts receive
        (Side.BUY, D("0.0001"), D("-1.2")),  # ... and longs pay
        (Side.SELL, D("-0.0001"), D("-1.2")),  # negative rate: shorts pay
    ],
)
async def test_funding_moves_the_settle_balance_by_minus_position_mark_rate(
    side: Side, rate: Decimal, received: Decimal
) -> None:
    venue, clock = _venue()
    price = "60000.0" if side is Side.SELL else "60000.2"
    await _run(venue, clock, _req("o1", side, "0.2", price))
    free_before, locked = await _usdt(venue)

    payment = venue.apply_funding(SYMBOL, rate, D(60000), clock.now())

    assert payment.amount == received
    assert payment.position == side.sign * D("0.2")
    assert await _usdt(venue) == (free_before + received, locked)
    assert venue.funding == [payment]


async def test_funding_needs_a_perpetual_and_spot_has_no_positions() -> None:
    clock = TestClock(T0)
    spot = SimVenue(binance_btcusdt_config("spot"), clock, {"BTC/USDT": [SNAPSHOT]})

    with pytest.raises(ValueError, match="not a perpetual"):
        spot.apply_funding("BTC/USDT", D("0.0001"), D(60000), T0)
    assert await spot.positions() == {}


# ------------------------------------------------------------------------ the recording
@pytest.fixture(scope="module")
def usdm_events() -> list[MarketEvent]:
    return load_recorded(default_usdm_sample_path())


def test_packaged_usdm_sample_is_the_shared_recording() -> None:
    if not SHARED_USDM.is_file():
        pytest.skip(f"recorded market data missing: {SHARED_USDM}")

    assert default_usdm_sample_path().read_bytes() == SHARED_USDM.read_bytes()


def test_replayed_usdm_book_matches_the_book_ticker(usdm_events: list[MarketEvent]) -> None:
    clock = TestClock(usdm_events[0].ts)
    venue = SimVenue(binance_usdm_config("usdm"), clock, {SYMBOL: usdm_events})
    engine = venue.engine(SYMBOL)

    compared = 0
    for ticker in (e for e in usdm_events if isinstance(e, BookTicker)):
        venue.advance_to(ticker.ts)
        if engine.last_update_id == ticker.update_id:
            book = engine.book
            assert book.best_bid == ticker.bid_price and book.best_ask == ticker.ask_price
            assert book.bids[ticker.bid_price] == ticker.bid_qty
            assert book.asks[ticker.ask_price] == ticker.ask_qty
            compared += 1

    assert compared > 100


async def test_from_recording_shorts_the_usdm_book_with_usdt_only() -> None:
    clock = TestClock(datetime(2024, 8, 8, 23, 56, tzinfo=UTC))
    venue = SimVenue.from_recording(
        default_usdm_sample_path(),
        clock=clock,
        config=binance_usdm_config("usdm", balances={"USDT": D(50_000)}),
    )
    book = await venue.order_book(SYMBOL, 50)
    request = OrderRequest("m1", "usdm", SYMBOL, Side.SELL, D("0.5"), OrderType.MARKET)

    await venue.submit(request)
    clock.advance(timedelta(milliseconds=20))
    state = await venue.fetch_order("m1", SYMBOL)
    position = (await venue.positions())[SYMBOL]

    bids = {level.price for level in book.bids}
    assert state.status is VenueOrderStatus.FILLED
    assert all(fill.price in bids for fill in state.fills)
    assert position.qty == D("-0.5")
    assert position.entry_price * D("0.5") == sum(f.notional for f in state.fills)
    assert (await venue.balances())["USDT"].locked == position.margin


# ------------------------------------------------------------------------------ settings
async def test_settings_market_perpetual_builds_a_usdm_venue(tmp_path: Path) -> None:
    config = tmp_path / "ems.toml"
    config.write_text('[[venues]]\nname = "perp"\nmarket = "perpetual"\nleverage = 10\n')
    spec = load_settings(config).venues[0]
    clock = TestClock(datetime(2030, 1, 1, tzinfo=UTC))

    venue = build_venue(spec, clock)
    assert isinstance(venue, SimVenue)
    inst = venue.instruments()[SYMBOL]
    clock.advance(timedelta(seconds=60))
    book = await venue.order_book(SYMBOL, 5)

    assert inst.kind is InstrumentKind.PERPETUAL
    assert (inst.maker_fee, inst.taker_fee) == (D("0.0002"), D("0.0005"))
    assert venue.config.leverage == 10
    assert dict(venue.config.balances) == {"USDT": D(10_000_000)}
    assert book.best_bid is not None and book.best_ask is not None
    assert book.best_bid < book.best_ask and book.best_bid % D("0.1") == 0


async def test_settings_perpetual_synthetic_market_uses_futures_ticks() -> None:
    spec = SimVenueSettings(name="perp-syn", market="perpetual", source="synthetic", seed=3)

    venue = build_venue(spec, TestClock(T0))
    assert isinstance(venue, SimVenue)
    book = await venue.order_book(SYMBOL, 5)

    assert book.best_bid is not None and book.best_bid % D("0.1") == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "s", "leverage": 3}, "leverage only applies"),
        ({"name": "p", "market": "perpetual", "price_offset": "0.05"}, "0.10 ticks"),
        ({"name": "p", "market": "inverse"}, "market"),
    ],
)
def test_bad_perpetual_settings_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(venues=[entry])
