"""The simulated options venue: listing, quotes from the vol surface, matching, the Deribit fee
rule, cash and positions, expiry settlement and the update stream."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from ems.clock import TestClock
from ems.domain import (
    Fill,
    InstrumentKind,
    Liquidity,
    OptionRight,
    OrderBook,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
)
from ems.errors import (
    OrderNotFoundAtVenue,
    RetryableVenueError,
    VenueRejected,
    VenueUnavailable,
)
from ems.ports import VenueOrderStatus, VenuePort
from ems.venues.options_venue import (
    OptionSettlement,
    OptionsVenueConfig,
    SimOptionsVenue,
    listing_strikes,
    option_symbol,
    parse_option_symbol,
    underlying_mid,
    weekly_expiries,
)
from ems.venues.replay import BookSnapshot
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from risk.vol_surface import OptionQuote, SmileParams, VolSurface

D = Decimal
NAME = "options-sim"
T0 = datetime(2024, 8, 7, 12, tzinfo=UTC)  # a Wednesday
FRIDAY = datetime(2024, 8, 9, 8, tzinfo=UTC)  # the first weekly expiry
SPOT = D(60000)
START = D(100_000)
SURFACE = VolSurface().anchored(60000.0)
ATM_PUT = "BTC/USDT:USDT-240809-60000-P"  # premium well above the fee cap threshold
CHEAP_PUT = "BTC/USDT:USDT-240809-52000-P"  # cheap enough for the 12.5 % cap to apply
ATM_CALL = "BTC/USDT:USDT-240809-60000-C"
RATE = D("0.0003")
CAP = D("0.125")
SYMBOL_RE = re.compile(r"^BTC/USDT:USDT-(\d{6})-(\d+)-([PC])$")


class Underlying:
    """A mutable underlying price behind the async callable the venue expects."""

    def __init__(self, price: Decimal | None) -> None:
        self.price = price
        self.calls = 0

    async def __call__(self) -> Decimal | None:
        self.calls += 1
        return self.price


@dataclass
class Rig:
    venue: SimOptionsVenue
    clock: TestClock
    underlying: Underlying

    def quote(self, symbol: str) -> OptionQuote:
        """The surface's quote for ``symbol`` at the rig's current price and time."""
        assert self.underlying.price is not None
        inst = self.venue.instruments()[symbol]
        return SURFACE.quote(inst, self.underlying.price, self.clock.now(), 400.0)

    async def usdt(self) -> tuple[Decimal, Decimal]:
        balance = (await self.venue.balances())["USDT"]
        return balance.free, balance.locked


def _rig(cash: Decimal = START, surface: VolSurface = SURFACE, **config: Any) -> Rig:
    clock = TestClock(T0)
    underlying = Underlying(SPOT)
    cfg = OptionsVenueConfig(balances={"USDT": cash}, **config)
    return Rig(SimOptionsVenue(cfg, clock, surface, underlying, SPOT), clock, underlying)


def _req(
    cid: str,
    symbol: str,
    side: Side,
    qty: Decimal | str,
    price: Decimal | str | None = None,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
) -> OrderRequest:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderRequest(
        cid,
        NAME,
        symbol,
        side,
        D(qty),
        kind,
        None if price is None else D(price),
        tif,
        reduce_only=reduce_only,
    )


def _fee(qty: Decimal, price: Decimal, underlying: Decimal = SPOT) -> Decimal:
    """Deribit's option fee, written out independently of the module."""
    return min(RATE * underlying * qty, CAP * price * qty)


def _all_decimal(*values: object) -> bool:
    return all(type(value) is Decimal for value in values)


async def _buy_at_ask(rig: Rig, cid: str, symbol: str, qty: str) -> Decimal:
    """Buy ``qty`` (at most one level) with an IOC at the ask; returns the cash it cost."""
    ask = rig.quote(symbol).ask
    state = await rig.venue.submit(_req(cid, symbol, Side.BUY, qty, ask, tif=TimeInForce.IOC))
    assert state.status is VenueOrderStatus.FILLED
    return D(qty) * ask + _fee(D(qty), ask)


# ---------------------------------------------------------------------------------- listing
def test_listed_symbols_parse_back_to_their_instrument_terms() -> None:
    rig = _rig()

    instruments = rig.venue.instruments()

    assert instruments
    for symbol, inst in instruments.items():
        match = SYMBOL_RE.match(symbol)
        assert match is not None, symbol
        date, strike, right = match.groups()
        assert inst.expiry is not None
        assert inst.expiry.strftime("%y%m%d") == date
        assert inst.strike == D(strike)
        assert inst.right is (OptionRight.PUT if right == "P" else OptionRight.CALL)
        assert (inst.expiry.weekday(), inst.expiry.hour, inst.expiry.minute) == (4, 8, 0)
        assert inst.expiry.utcoffset() == timedelta(0) and inst.expiry > T0
        assert inst.kind is InstrumentKind.OPTION and inst.venue == NAME
        assert (inst.base, inst.quote, inst.settle, inst.contract_size) == (
            "BTC",
            "USDT",
            "USDT",
            1,
        )
        assert (inst.tick_size, inst.lot_size, inst.min_qty, inst.min_notional) == (
            D(5),
            D("0.01"),
            D("0.01"),
            0,
        )
        assert (inst.maker_fee, inst.taker_fee) == (RATE, RATE)


def test_venue_serves_the_venue_port() -> None:
    port: VenuePort = _rig().venue  # checked by mypy

    assert port.name == NAME
    assert SimOptionsVenue.native_iceberg is False


def test_listing_has_four_weeklies_and_six_month_ends_deduplicated() -> None:
    rig = _rig()

    expiries = sorted({inst.expiry for inst in rig.venue.instruments().values() if inst.expiry})

    fridays = [(2024, 8, 9), (2024, 8, 16), (2024, 8, 23), (2024, 8, 30)]  # Aug 30 is also monthly
    month_ends = [(2024, 9, 27), (2024, 10, 25), (2024, 11, 29), (2024, 12, 27), (2025, 1, 31)]
    assert expiries == [datetime(*day, 8, tzinfo=UTC) for day in fridays + month_ends]


def test_listing_strikes_span_the_band_on_the_grid_for_both_rights() -> None:
    rig = _rig()

    instruments = rig.venue.instruments().values()
    strikes = {inst.strike for inst in instruments}

    # 60000 × 0.5 = 30000 up to 60000 × 1.3 = 78000, every 1000
    assert strikes == {D(k) for k in range(30_000, 78_001, 1000)}
    assert len(instruments) == 49 * 9 * 2
    assert {inst.right for inst in instruments} == {OptionRight.PUT, OptionRight.CALL}


def test_listing_strikes_round_inwards_to_the_grid() -> None:
    strikes = listing_strikes(D("61234.5"), D(1000), D(50), D(30))

    # band 30617.25 .. 79604.85
    assert strikes[0] == D(31000) and strikes[-1] == D(79000)
    assert all(b - a == 1000 for a, b in pairwise(strikes))


@pytest.mark.parametrize(
    ("now", "first"),
    [
        (datetime(2024, 8, 9, 7, 59, tzinfo=UTC), datetime(2024, 8, 9, 8, tzinfo=UTC)),
        (datetime(2024, 8, 9, 8, 0, tzinfo=UTC), datetime(2024, 8, 16, 8, tzinfo=UTC)),
        (datetime(2024, 8, 10, 0, 0, tzinfo=UTC), datetime(2024, 8, 16, 8, tzinfo=UTC)),
    ],
)
def test_weekly_expiries_start_at_the_next_friday_0800_after_now(
    now: datetime, first: datetime
) -> None:
    assert weekly_expiries(now, 2) == [first, first + timedelta(weeks=1)]


@pytest.mark.parametrize(
    ("strike", "right", "text"),
    [
        (D(60000), OptionRight.PUT, "BTC/USDT:USDT-240809-60000-P"),
        (D("62500.5"), OptionRight.CALL, "BTC/USDT:USDT-240809-62500.5-C"),
    ],
)
def test_option_symbol_round_trips(strike: Decimal, right: OptionRight, text: str) -> None:
    symbol = option_symbol("BTC", "USDT", FRIDAY, strike, right)
    parsed = parse_option_symbol(symbol)

    assert symbol == text
    assert (parsed.base, parsed.quote, parsed.settle) == ("BTC", "USDT", "USDT")
    assert (parsed.expiry, parsed.strike, parsed.right) == (FRIDAY, strike, right)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": " "}, "name"),
        ({"quote": "BTC"}, "distinct"),
        ({"strike_step": D(0)}, "strike_step"),
        ({"strikes_below_pct": D(100)}, "strikes_below_pct"),
        ({"strikes_above_pct": D(-1)}, "strikes_above_pct"),
        ({"weekly_expiries": 0, "monthly_expiries": 0}, "at least one expiry"),
        ({"weekly_expiries": -1}, "must not be negative"),
        ({"rights": ("put", "straddle")}, "unknown option right"),
        ({"rights": ()}, "at least one right"),
        ({"rights": ("put", "put")}, "duplicate rights"),
        ({"tick_size": D(0)}, "tick_size"),
        ({"lot_size": D(-1)}, "lot_size"),
        ({"level_qty": D("0.015")}, "multiple of lot_size"),
        ({"spread_bps": -1.0}, "spread_bps"),
        ({"spread_bps": float("nan")}, "spread_bps"),
        ({"levels": 0}, "levels"),
        ({"level_step_ticks": 0}, "level_step_ticks"),
        ({"fee_cap_premium": D(-1)}, "fee_cap_premium"),
        ({"balances": {"USDT": D(-1)}}, "USDT"),
    ],
)
def test_config_refuses_invalid_values_with_a_clear_message(
    override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        OptionsVenueConfig(**override)


def test_config_accepts_rights_as_strings() -> None:
    assert OptionsVenueConfig(rights=("call",)).rights == (OptionRight.CALL,)


def test_listing_spot_must_be_positive() -> None:
    with pytest.raises(ValueError, match="listing spot"):
        SimOptionsVenue(OptionsVenueConfig(), TestClock(T0), SURFACE, Underlying(SPOT), D(0))


async def test_relist_adds_the_new_weekly_once_and_keeps_held_expired_options() -> None:
    rig = _rig()
    cost = await _buy_at_ask(rig, "b1", ATM_PUT, "1")
    rig.underlying.price = None  # expired but not settled yet: the option is still held
    rig.clock.set(datetime(2024, 8, 10, tzinfo=UTC))

    added = rig.venue.relist(SPOT)
    again = rig.venue.relist(SPOT)
    listed = rig.venue.instruments()

    assert {parse_option_symbol(s).expiry for s in added} == {datetime(2024, 9, 6, 8, tzinfo=UTC)}
    assert len(added) == 49 * 2
    assert again == []
    assert ATM_PUT in listed  # held
    assert CHEAP_PUT not in listed  # expired and flat: dropped
    assert await rig.venue.positions() == {ATM_PUT: D(1)}
    assert await rig.usdt() == (START - cost, 0)


async def test_relist_drops_an_expired_option_once_it_is_settled() -> None:
    rig = _rig()
    await _buy_at_ask(rig, "b1", ATM_PUT, "1")
    rig.clock.set(FRIDAY)

    await rig.venue.positions()  # settles
    rig.venue.relist(SPOT)

    assert ATM_PUT not in rig.venue.instruments()


async def test_relist_keeps_an_expired_option_with_open_orders_until_they_end() -> None:
    rig = _rig()
    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", rig.quote(ATM_PUT).bid))
    rig.clock.set(FRIDAY)

    rig.venue.relist(SPOT)  # before any catch-up: the order is still open
    kept = ATM_PUT in rig.venue.instruments()
    state = await rig.venue.fetch_order("b1", ATM_PUT)
    rig.venue.relist(SPOT)

    assert kept
    assert (state.status, state.reason) == (VenueOrderStatus.CANCELLED, "option expired")
    assert ATM_PUT not in rig.venue.instruments()
    assert await rig.usdt() == (START, 0)


def test_relist_at_a_higher_spot_adds_higher_strikes_and_keeps_the_lower_ones() -> None:
    rig = _rig()
    before = set(rig.venue.instruments())

    added = rig.venue.relist(D(70000))

    # band 35000 .. 91000: strikes 79000 .. 91000 are new, for 9 expiries and 2 rights
    assert {parse_option_symbol(s).strike for s in added} == {
        D(k) for k in range(79_000, 91_001, 1000)
    }
    assert len(added) == 13 * 9 * 2
    assert before <= set(rig.venue.instruments())


# ------------------------------------------------------------------------------------ book
@pytest.mark.parametrize("symbol", [ATM_PUT, CHEAP_PUT, ATM_CALL, "BTC/USDT:USDT-250131-45000-P"])
async def test_book_top_is_the_surface_quote_and_deeper_levels_step_two_ticks(
    symbol: str,
) -> None:
    rig = _rig()
    quote = rig.quote(symbol)

    book = await rig.venue.order_book(symbol)

    assert (book.venue, book.symbol, book.ts) == (NAME, symbol, T0)
    assert book.best_bid == quote.bid and book.best_ask == quote.ask
    assert quote.bid <= quote.mark <= quote.ask and quote.bid < quote.ask
    assert [level.price for level in book.bids] == [quote.bid - 10 * i for i in range(5)]
    assert [level.price for level in book.asks] == [quote.ask + 10 * i for i in range(5)]
    assert all(level.qty == D(5) for level in book.bids + book.asks)
    assert _all_decimal(*(level.price for level in book.bids + book.asks))


async def test_book_depth_limits_the_levels_per_side() -> None:
    rig = _rig()

    book = await rig.venue.order_book(ATM_PUT, depth=2)

    assert (len(book.bids), len(book.asks)) == (2, 2)


async def test_book_quotes_follow_the_underlying_price() -> None:
    rig = _rig()
    before = await rig.venue.order_book(ATM_PUT)

    rig.underlying.price = D(58000)
    after = await rig.venue.order_book(ATM_PUT)

    assert after.best_ask == rig.quote(ATM_PUT).ask
    assert after.best_ask is not None and before.best_ask is not None
    assert after.best_ask > before.best_ask  # the put gained


async def test_a_zero_bid_means_no_bids() -> None:
    flat_low_vol = VolSurface(SmileParams(atm_vol=0.2, skew=0.0, curvature=0.0, term_slope=0.0))
    rig = _rig(surface=flat_low_vol)
    inst = rig.venue.instruments()["BTC/USDT:USDT-240809-30000-P"]
    assert flat_low_vol.quote(inst, SPOT, T0, 400.0).bid == 0  # precondition: a dead wing

    book = await rig.venue.order_book(inst.symbol)

    assert book.bids == ()
    assert book.best_ask == D(5)  # one tick


@pytest.mark.parametrize(
    ("symbol", "move_to", "price", "error", "message"),
    [
        ("BTC/USDT:USDT-240809-60500-P", None, SPOT, VenueRejected, "60500-P"),
        (ATM_PUT, FRIDAY, SPOT, VenueRejected, "expired"),
        (ATM_PUT, None, None, RetryableVenueError, "no BTC price"),
    ],
)
async def test_order_book_refuses_unknown_expired_or_unpriced_options(
    symbol: str,
    move_to: datetime | None,
    price: Decimal | None,
    error: type[Exception],
    message: str,
) -> None:
    rig = _rig()
    if move_to is not None:
        rig.clock.set(move_to)
    rig.underlying.price = price

    with pytest.raises(error, match=message):
        await rig.venue.order_book(symbol)


# ---------------------------------------------------------------------------- taking
@pytest.mark.parametrize(
    ("symbol", "fee_rule"),
    [(ATM_PUT, "underlying rate"), (CHEAP_PUT, "premium cap")],
)
async def test_crossing_ioc_buy_walks_the_asks_and_pays_the_deribit_fee(
    symbol: str, fee_rule: str
) -> None:
    rig = _rig()
    ask = rig.quote(symbol).ask
    takes = [(ask, D(5)), (ask + 10, D(2))]
    fees = [_fee(qty, price) for price, qty in takes]
    by_rate = [RATE * SPOT * qty for _, qty in takes]
    assert (fees == by_rate) is (fee_rule == "underlying rate")  # precondition: the branch

    state = await rig.venue.submit(_req("b1", symbol, Side.BUY, "7", ask + 10, tif=TimeInForce.IOC))

    assert state.status is VenueOrderStatus.FILLED and state.filled_qty == D(7)
    assert state.fills == (
        Fill(NAME, f"{NAME}-1", "b1", symbol, Side.BUY, ask, D(5), fees[0], "USDT",
             Liquidity.TAKER, T0),
        Fill(NAME, f"{NAME}-2", "b1", symbol, Side.BUY, ask + 10, D(2), fees[1], "USDT",
             Liquidity.TAKER, T0),
    )  # fmt: skip
    spent = sum(price * qty for price, qty in takes) + sum(fees)
    assert await rig.usdt() == (START - spent, 0)
    assert await rig.venue.positions() == {symbol: D(7)}
    assert _all_decimal(*fees, *(await rig.usdt()), *(await rig.venue.positions()).values())


async def test_ioc_buy_below_the_ask_expires_with_nothing_filled() -> None:
    rig = _rig()
    ask = rig.quote(ATM_PUT).ask

    state = await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", ask - 5, tif=TimeInForce.IOC))

    assert state.status is VenueOrderStatus.EXPIRED
    assert (state.filled_qty, state.fills) == (0, ())
    assert await rig.usdt() == (START, 0)
    assert await rig.venue.positions() == {}


async def test_market_buy_takes_every_level_and_expires_the_rest() -> None:
    rig = _rig()
    ask = rig.quote(ATM_PUT).ask

    state = await rig.venue.submit(_req("m1", ATM_PUT, Side.BUY, "30"))

    assert state.status is VenueOrderStatus.EXPIRED and state.filled_qty == D(25)
    assert [(f.price, f.qty) for f in state.fills] == [(ask + 10 * i, D(5)) for i in range(5)]
    spent = sum(f.price * f.qty + _fee(f.qty, f.price) for f in state.fills)
    assert await rig.usdt() == (START - spent, 0)


async def test_ioc_sell_walks_the_bids_and_receives_the_premium_less_the_fee() -> None:
    rig = _rig()
    cost = await _buy_at_ask(rig, "b1", ATM_PUT, "5")
    bid = rig.quote(ATM_PUT).bid

    state = await rig.venue.submit(
        _req("s1", ATM_PUT, Side.SELL, "3", bid - 10, tif=TimeInForce.IOC)
    )

    assert state.status is VenueOrderStatus.FILLED
    assert [(f.trade_id, f.price, f.qty) for f in state.fills] == [(f"{NAME}-2", bid, D(3))]
    assert state.fills[0].fee == _fee(D(3), bid)
    assert await rig.usdt() == (START - cost + 3 * bid - _fee(D(3), bid), 0)
    assert await rig.venue.positions() == {ATM_PUT: D(2)}


# --------------------------------------------------------------------------------- resting
async def test_gtc_buy_rests_then_fills_at_its_limit_as_maker_when_the_ask_falls_to_it() -> None:
    rig = _rig()
    limit = rig.quote(ATM_PUT).ask - 100
    qty = D(2)
    lock = qty * limit * (1 + CAP)  # premium plus the largest fee it can pay

    resting = await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, qty, limit))
    locked = await rig.usdt()
    rig.clock.advance(timedelta(minutes=30))
    ask_later = rig.quote(ATM_PUT).ask
    unchanged = await rig.venue.fetch_order("b1", ATM_PUT)
    rig.underlying.price = D(61000)  # the underlying rises: the put loses value
    rig.clock.advance(timedelta(minutes=30))
    filled = await rig.venue.fetch_order("b1", ATM_PUT)

    assert resting.status is VenueOrderStatus.OPEN and resting.fills == ()
    assert locked == (START - lock, lock)
    assert ask_later > limit and unchanged.status is VenueOrderStatus.OPEN
    assert filled.status is VenueOrderStatus.FILLED
    fee = _fee(qty, limit, D(61000))
    assert fee == RATE * D(61000) * qty  # the fee uses the underlying price at the fill
    assert filled.fills == (
        Fill(NAME, f"{NAME}-1", "b1", ATM_PUT, Side.BUY, limit, qty, fee, "USDT",
             Liquidity.MAKER, T0 + timedelta(hours=1)),
    )  # fmt: skip
    assert await rig.usdt() == (START - qty * limit - fee, 0)
    assert await rig.venue.positions() == {ATM_PUT: qty}


async def test_gtc_buy_below_the_ask_stays_open_when_the_put_gains() -> None:
    rig = _rig()
    limit = rig.quote(ATM_PUT).ask - 100
    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "2", limit))

    rig.underlying.price = D(58000)  # the put gains: its ask moves away from our bid
    rig.clock.advance(timedelta(hours=1))
    state = await rig.venue.fetch_order("b1", ATM_PUT)

    assert state.status is VenueOrderStatus.OPEN and state.fills == ()


async def test_crossing_gtc_buy_takes_the_quote_then_the_refreshed_quote_fills_the_rest() -> None:
    rig = _rig()
    ask = rig.quote(ATM_PUT).ask

    state = await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "7", ask))
    later = await rig.venue.fetch_order("b1", ATM_PUT)  # quotes refresh on every call

    assert state.status is VenueOrderStatus.OPEN and state.filled_qty == D(5)
    assert [f.liquidity for f in state.fills] == [Liquidity.TAKER]
    assert later.status is VenueOrderStatus.FILLED
    assert [(f.price, f.qty, f.liquidity) for f in later.fills[1:]] == [
        (ask, D(2), Liquidity.MAKER)
    ]
    spent = 7 * ask + _fee(D(5), ask) + _fee(D(2), ask)
    assert await rig.usdt() == (START - spent, 0)


async def test_resting_sell_fills_as_maker_when_the_bid_rises_to_it() -> None:
    rig = _rig()
    cost = await _buy_at_ask(rig, "b1", ATM_PUT, "2")
    limit = rig.quote(ATM_PUT).ask

    await rig.venue.submit(_req("s1", ATM_PUT, Side.SELL, "2", limit))
    rig.underlying.price = D(58000)
    state = await rig.venue.fetch_order("s1", ATM_PUT)

    assert state.status is VenueOrderStatus.FILLED
    assert [(f.price, f.qty, f.liquidity) for f in state.fills] == [(limit, D(2), Liquidity.MAKER)]
    fee = _fee(D(2), limit, D(58000))
    assert await rig.usdt() == (START - cost + 2 * limit - fee, 0)
    assert await rig.venue.positions() == {}


async def test_post_only_buy_that_would_cross_is_rejected() -> None:
    rig = _rig()
    ask = rig.quote(ATM_PUT).ask

    with pytest.raises(VenueRejected, match="post-only"):
        await rig.venue.submit(_req("p1", ATM_PUT, Side.BUY, "1", ask, tif=TimeInForce.POST_ONLY))

    assert await rig.usdt() == (START, 0)


async def test_post_only_buy_below_the_ask_rests() -> None:
    rig = _rig()
    ask = rig.quote(ATM_PUT).ask

    state = await rig.venue.submit(
        _req("p1", ATM_PUT, Side.BUY, "1", ask - 5, tif=TimeInForce.POST_ONLY)
    )

    assert state.status is VenueOrderStatus.OPEN


async def test_cancel_releases_the_lock_and_is_idempotent() -> None:
    rig = _rig()
    limit = rig.quote(ATM_PUT).bid
    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", limit))

    await rig.venue.cancel("b1", ATM_PUT)
    await rig.venue.cancel("b1", ATM_PUT)
    state = await rig.venue.fetch_order("b1", ATM_PUT)

    assert state.status is VenueOrderStatus.CANCELLED and state.reason == "cancelled on request"
    assert await rig.usdt() == (START, 0)


@pytest.mark.parametrize("symbol", ["BTC/USDT:USDT-240809-61000-P", ATM_PUT])
async def test_unknown_order_is_not_found(symbol: str) -> None:
    rig = _rig()
    await rig.venue.submit(_req("b1", "BTC/USDT:USDT-240809-61000-P", Side.BUY, "1", "5"))
    cid = "b1" if symbol == ATM_PUT else "nope"  # wrong symbol, or unknown id

    with pytest.raises(OrderNotFoundAtVenue):
        await rig.venue.fetch_order(cid, symbol)
    with pytest.raises(OrderNotFoundAtVenue):
        await rig.venue.cancel(cid, symbol)


# ------------------------------------------------------------------------------ rejections
async def test_buy_without_enough_cash_is_rejected_and_changes_nothing() -> None:
    ask = _rig().quote(ATM_PUT).ask
    cash = ask + _fee(D(1), ask) - D("0.01")  # one cent short of premium plus fee
    rig = _rig(cash=cash)

    with pytest.raises(VenueRejected, match="insufficient balance"):
        await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", ask, tif=TimeInForce.IOC))

    assert await rig.usdt() == (cash, 0)
    assert await rig.venue.positions() == {}
    assert rig.venue.drain_updates() == []
    with pytest.raises(OrderNotFoundAtVenue):
        await rig.venue.fetch_order("b1", ATM_PUT)


async def test_buy_with_exactly_enough_cash_fills() -> None:
    ask = _rig().quote(ATM_PUT).ask
    rig = _rig(cash=ask + _fee(D(1), ask))

    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", ask, tif=TimeInForce.IOC))

    assert await rig.usdt() == (0, 0)


@pytest.mark.parametrize(
    ("held", "offered", "sell"),
    [("0", None, "1"), ("2", None, "3"), ("2", "1.5", "1")],
    ids=["flat", "more-than-held", "already-offered"],
)
async def test_selling_more_than_held_is_rejected(
    held: str, offered: str | None, sell: str
) -> None:
    rig = _rig()
    if held != "0":
        await _buy_at_ask(rig, "b1", ATM_PUT, held)
    ask = rig.quote(ATM_PUT).ask
    if offered is not None:
        await rig.venue.submit(_req("s0", ATM_PUT, Side.SELL, offered, ask + 100))
    before = await rig.usdt()

    with pytest.raises(VenueRejected, match="selling more than held"):
        await rig.venue.submit(_req("s1", ATM_PUT, Side.SELL, sell, rig.quote(ATM_PUT).bid))

    assert await rig.usdt() == before
    assert await rig.venue.positions() == ({} if held == "0" else {ATM_PUT: D(held)})


async def test_reduce_only_buy_that_would_increase_the_position_is_rejected() -> None:
    rig = _rig()
    await _buy_at_ask(rig, "b1", ATM_PUT, "1")

    with pytest.raises(VenueRejected, match="reduce-only order would increase the position"):
        await rig.venue.submit(
            _req("b2", ATM_PUT, Side.BUY, "1", rig.quote(ATM_PUT).ask, reduce_only=True)
        )

    assert await rig.venue.positions() == {ATM_PUT: D(1)}


async def test_reduce_only_sell_within_the_position_fills() -> None:
    rig = _rig()
    await _buy_at_ask(rig, "b1", ATM_PUT, "1")
    bid = rig.quote(ATM_PUT).bid

    state = await rig.venue.submit(
        _req("s1", ATM_PUT, Side.SELL, "1", bid, tif=TimeInForce.IOC, reduce_only=True)
    )

    assert state.status is VenueOrderStatus.FILLED
    assert await rig.venue.positions() == {}


@pytest.mark.parametrize(
    ("qty", "price", "message"),
    [
        ("0.015", "1500", "not a multiple of the lot size"),
        ("1", "1502", "not a multiple of the tick"),
        ("0", "1500", "quantity must be positive"),
    ],
)
async def test_order_breaking_precision_rules_is_rejected(
    qty: str, price: str, message: str
) -> None:
    rig = _rig()

    with pytest.raises(VenueRejected, match=message):
        await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, qty, price))


async def test_order_below_the_minimum_quantity_is_rejected() -> None:
    rig = _rig(min_qty=D("0.1"))

    with pytest.raises(VenueRejected, match="below the minimum"):
        await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "0.05", "1500"))


@pytest.mark.parametrize(
    ("symbol", "move_to", "message"),
    [
        ("BTC/USDT:USDT-240809-60500-P", None, "unknown symbol BTC/USDT:USDT-240809-60500-P"),
        (ATM_PUT, FRIDAY, "expired"),
    ],
)
async def test_order_on_an_unknown_or_expired_option_is_rejected(
    symbol: str, move_to: datetime | None, message: str
) -> None:
    rig = _rig()
    if move_to is not None:
        rig.clock.set(move_to)

    with pytest.raises(VenueRejected, match=message):
        await rig.venue.submit(_req("b1", symbol, Side.BUY, "1", "1500"))


async def test_order_without_an_underlying_price_is_retryable_and_nothing_is_done() -> None:
    rig = _rig()
    rig.underlying.price = None

    with pytest.raises(RetryableVenueError):
        await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", "1500"))

    rig.underlying.price = SPOT
    state = await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", "1500"))
    assert state.status is VenueOrderStatus.OPEN


async def test_duplicate_client_order_id_is_rejected() -> None:
    rig = _rig()
    await _buy_at_ask(rig, "b1", ATM_PUT, "1")
    first = await rig.venue.fetch_order("b1", ATM_PUT)

    with pytest.raises(VenueRejected, match="duplicate client order id"):
        await rig.venue.submit(_req("b1", CHEAP_PUT, Side.BUY, "1", rig.quote(CHEAP_PUT).ask))

    assert await rig.venue.fetch_order("b1", ATM_PUT) == first
    assert await rig.venue.positions() == {ATM_PUT: D(1)}


# ---------------------------------------------------------------------------------- expiry
@pytest.mark.parametrize(
    ("symbol", "settle_at", "amount"),
    [
        (ATM_PUT, D(55000), D(10000)),  # in the money: (60000 - 55000) × 2
        (ATM_PUT, D(61000), D(0)),  # out of the money
        (ATM_CALL, D("62500.5"), D("5001.0")),  # (62500.5 - 60000) × 2
    ],
)
async def test_expiry_settles_at_intrinsic_value_and_removes_the_position(
    symbol: str, settle_at: Decimal, amount: Decimal
) -> None:
    rig = _rig()
    cost = await _buy_at_ask(rig, "b1", symbol, "2")
    rig.underlying.price = settle_at
    rig.clock.set(FRIDAY)

    positions = await rig.venue.positions()

    assert positions == {}
    assert rig.venue.settlements == [OptionSettlement(symbol, FRIDAY, settle_at, D(2), amount)]
    assert await rig.usdt() == (START - cost + amount, 0)
    assert _all_decimal(rig.venue.settlements[0].amount)


async def test_expiry_cancels_resting_orders_and_releases_their_lock() -> None:
    rig = _rig()
    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", rig.quote(ATM_PUT).bid))
    rig.clock.set(FRIDAY)

    state = await rig.venue.fetch_order("b1", ATM_PUT)

    assert (state.status, state.reason) == (VenueOrderStatus.CANCELLED, "option expired")
    assert await rig.usdt() == (START, 0)


async def test_expiry_settles_only_once_an_underlying_price_is_known() -> None:
    rig = _rig()
    cost = await _buy_at_ask(rig, "b1", ATM_PUT, "1")
    rig.underlying.price = None
    rig.clock.set(FRIDAY + timedelta(minutes=5))

    unsettled = await rig.venue.positions()
    rig.underlying.price = D(59000)
    rig.venue.drain_updates()  # synchronous: no current price, so it does not settle
    settled_by_drain = list(rig.venue.settlements)
    settled = await rig.venue.positions()

    assert unsettled == {ATM_PUT: D(1)} and settled_by_drain == []
    assert settled == {}
    assert rig.venue.settlements == [
        OptionSettlement(ATM_PUT, FRIDAY + timedelta(minutes=5), D(59000), D(1), D(1000))
    ]
    assert await rig.usdt() == (START - cost + D(1000), 0)


# ---------------------------------------------------------------------------------- updates
async def test_drain_updates_reports_each_change_once() -> None:
    rig = _rig()
    limit = rig.quote(ATM_PUT).ask - 100
    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", limit))

    acknowledged = rig.venue.drain_updates()
    nothing = rig.venue.drain_updates()
    rig.underlying.price = D(61000)
    rig.clock.advance(timedelta(minutes=1))
    stale = rig.venue.drain_updates()  # the new price is not seen until an async call
    await rig.venue.balances()
    filled = rig.venue.drain_updates()
    after = rig.venue.drain_updates()

    assert [(s.client_order_id, s.status) for s in acknowledged] == [("b1", VenueOrderStatus.OPEN)]
    assert nothing == [] and stale == [] and after == []
    assert [(s.client_order_id, s.status, s.filled_qty) for s in filled] == [
        ("b1", VenueOrderStatus.FILLED, D(1))
    ]


async def test_drain_updates_cancels_orders_on_expired_options_by_itself() -> None:
    rig = _rig()
    await rig.venue.submit(_req("b1", ATM_PUT, Side.BUY, "1", rig.quote(ATM_PUT).bid))
    rig.venue.drain_updates()
    calls = rig.underlying.calls
    rig.clock.set(FRIDAY)

    updates = rig.venue.drain_updates()

    assert [(s.client_order_id, s.status) for s in updates] == [("b1", VenueOrderStatus.CANCELLED)]
    assert rig.underlying.calls == calls  # no await from the synchronous call


async def test_traded_volume_counts_our_own_fills_since_a_moment() -> None:
    rig = _rig()
    await _buy_at_ask(rig, "b1", ATM_PUT, "5")
    rig.clock.advance(timedelta(hours=1))
    await _buy_at_ask(rig, "b2", ATM_PUT, "1.5")

    assert await rig.venue.traded_volume(ATM_PUT, T0) == D("6.5")
    assert await rig.venue.traded_volume(ATM_PUT, T0 + timedelta(minutes=30)) == D("1.5")
    assert await rig.venue.traded_volume(CHEAP_PUT, T0) == 0
    with pytest.raises(VenueRejected, match="unknown symbol"):
        await rig.venue.traded_volume("ETH/USDT", T0)


async def test_balances_report_every_configured_asset() -> None:
    rig = _rig()

    balances = await rig.venue.balances()

    assert set(balances) == {"USDT"}
    assert (balances["USDT"].free, balances["USDT"].locked) == (START, 0)


# ------------------------------------------------------------------------ underlying price
class _FailingVenue:
    async def order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        raise VenueUnavailable("spot", "down")


async def test_underlying_mid_is_the_spot_venue_mid() -> None:
    clock = TestClock(T0)
    snapshot = BookSnapshot(T0, 1, ((D("60000.00"), D(1)),), ((D("60000.30"), D(1)),))
    spot = SimVenue(binance_btcusdt_config("spot"), clock, {"BTC/USDT": [snapshot]})

    price = await underlying_mid(spot, "BTC/USDT")()

    assert price == D("60000.15")


@pytest.mark.parametrize(
    "venue",
    [_FailingVenue(), SimVenue(binance_btcusdt_config("spot"), TestClock(T0), {"BTC/USDT": []})],
    ids=["venue-error", "empty-book"],
)
async def test_underlying_mid_is_none_without_a_two_sided_book(venue: Any) -> None:
    assert await underlying_mid(venue, "BTC/USDT")() is None


async def test_options_venue_prices_from_a_spot_venue_mid() -> None:
    clock = TestClock(T0)
    snapshot = BookSnapshot(T0, 1, ((D("59999.90"), D(1)),), ((D("60000.10"), D(1)),))
    spot = SimVenue(binance_btcusdt_config("spot"), clock, {"BTC/USDT": [snapshot]})
    venue = SimOptionsVenue(
        OptionsVenueConfig(), clock, SURFACE, underlying_mid(spot, "BTC/USDT"), SPOT
    )

    book = await venue.order_book(ATM_PUT)

    inst = venue.instruments()[ATM_PUT]
    assert book.best_ask == SURFACE.quote(inst, D("60000.00"), T0, 400.0).ask
