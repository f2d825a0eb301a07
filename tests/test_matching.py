"""The L2 price-time matching engine against hand-made books."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ems.domain import Fill, Instrument, InstrumentKind, Liquidity, OrderType, Side, TimeInForce
from ems.ports import VenueOrderStatus
from ems.venues.matching import MatchingEngine, OrderSpec, bps
from ems.venues.replay import BookDiff, BookSnapshot, Levels, Trade

D = Decimal
T0 = datetime(2024, 8, 8, 23, 55, tzinfo=UTC)
MAKER, TAKER = D("0.0002"), D("0.0007")
INSTRUMENT = Instrument(
    venue="simx",
    symbol="BTC/USDT",
    kind=InstrumentKind.SPOT,
    base="BTC",
    quote="USDT",
    tick_size=D("0.01"),
    lot_size=D("0.001"),
    min_qty=D("0.001"),
    min_notional=D(0),
    maker_fee=MAKER,
    taker_fee=TAKER,
)
BIDS: Levels = ((D("100.00"), D(1)), (D("99.99"), D(2)))
ASKS: Levels = ((D("100.05"), D(1)), (D("100.06"), D(2)), (D("100.09"), D(3)))


def _at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def _engine(bids: Levels = BIDS, asks: Levels = ASKS) -> MatchingEngine:
    engine = MatchingEngine(INSTRUMENT)
    engine.on_event(BookSnapshot(T0, 1, bids, asks))
    return engine


def _diff(engine: MatchingEngine, ms: int, bids: Levels = (), asks: Levels = ()) -> list[Fill]:
    last = engine.last_update_id
    assert last is not None
    return engine.on_event(BookDiff(_at(ms), last + 1, last + 1, None, bids, asks))


def _trade(engine: MatchingEngine, ms: int, price: str, qty: str, aggressor: Side) -> list[Fill]:
    return engine.on_event(Trade(_at(ms), ms, D(price), D(qty), aggressor))


def _limit(
    cid: str, side: Side, qty: str, price: str, tif: TimeInForce = TimeInForce.GTC
) -> OrderSpec:
    return OrderSpec(cid, side, D(qty), OrderType.LIMIT, D(price), tif)


def _market(cid: str, side: Side, qty: str, budget: Decimal | None = None) -> OrderSpec:
    return OrderSpec(cid, side, D(qty), OrderType.MARKET, quote_budget=budget)


def _summary(fills: list[Fill] | tuple[Fill, ...]) -> list[tuple[str, Decimal, Decimal]]:
    return [(f.client_order_id, f.price, f.qty) for f in fills]


# ------------------------------------------------------------------------------------- taking
def test_market_buy_walks_levels_filling_only_at_existing_ask_prices() -> None:
    engine = _engine()
    asks_then = {price for price, _ in ASKS}

    result = engine.submit(_market("m1", Side.BUY, "2.5"), _at(1))

    assert result.status is VenueOrderStatus.FILLED
    assert _summary(result.fills) == [("m1", D("100.05"), D(1)), ("m1", D("100.06"), D("1.5"))]
    assert {f.price for f in result.fills} <= asks_then
    assert all(f.liquidity is Liquidity.TAKER and f.ts == _at(1) for f in result.fills)


def test_consumed_liquidity_is_not_taken_twice_until_a_diff_rewrites_the_level() -> None:
    engine = _engine()
    engine.submit(_market("m1", Side.BUY, "2.5"), _at(1))

    second = engine.submit(_market("m2", Side.BUY, "1"), _at(2))
    _diff(engine, 3, asks=((D("100.05"), D("0.7")),))
    third = engine.submit(_market("m3", Side.BUY, "1"), _at(4))

    assert _summary(second.fills) == [("m2", D("100.06"), D("0.5")), ("m2", D("100.09"), D("0.5"))]
    assert _summary(third.fills) == [("m3", D("100.05"), D("0.7")), ("m3", D("100.09"), D("0.3"))]


def test_market_sell_walks_bids_and_expires_the_unfillable_remainder() -> None:
    engine = _engine()

    result = engine.submit(_market("m1", Side.SELL, "5"), _at(1))

    assert result.status is VenueOrderStatus.EXPIRED
    assert _summary(result.fills) == [("m1", D("100.00"), D(1)), ("m1", D("99.99"), D(2))]
    assert "remainder cancelled" in result.reason


def test_market_buy_never_spends_more_than_its_quote_budget() -> None:
    engine = _engine()
    budget = D("150")

    result = engine.submit(_market("m1", Side.BUY, "3", budget=budget), _at(1))

    spent = sum((f.notional + f.fee for f in result.fills), D(0))
    assert spent <= budget
    assert result.filled_qty == D("1.498")  # 1 @ 100.05, then 0.498 @ 100.06 fits the rest
    assert result.status is VenueOrderStatus.EXPIRED


def test_ioc_fills_what_crosses_and_cancels_the_remainder() -> None:
    engine = _engine()

    result = engine.submit(_limit("i1", Side.BUY, "5", "100.06", TimeInForce.IOC), _at(1))

    assert result.status is VenueOrderStatus.EXPIRED
    assert result.filled_qty == D(3)
    assert engine.open_orders() == []


def test_limit_takes_the_crossing_part_then_rests_the_remainder_at_a_new_level() -> None:
    engine = _engine()

    result = engine.submit(_limit("l1", Side.BUY, "4", "100.06"), _at(1))

    assert result.status is VenueOrderStatus.OPEN
    assert result.filled_qty == D(3)
    assert engine.remaining("l1") == D(1)
    assert engine.queue_ahead("l1") == 0
    assert engine.levels(Side.BUY, 1)[0].price == D("100.06")


@pytest.mark.parametrize(
    ("side", "price"),
    [(Side.BUY, "100.05"), (Side.BUY, "100.07"), (Side.SELL, "100.00"), (Side.SELL, "99.98")],
)
def test_post_only_that_would_cross_is_rejected(side: Side, price: str) -> None:
    engine = _engine()

    result = engine.submit(_limit("p1", side, "1", price, TimeInForce.POST_ONLY), _at(1))

    assert result.status is VenueOrderStatus.REJECTED
    assert result.fills == ()
    assert "would cross" in result.reason
    assert engine.open_orders() == []


def test_post_only_that_does_not_cross_rests() -> None:
    engine = _engine()

    result = engine.submit(_limit("p1", Side.BUY, "1", "100.04", TimeInForce.POST_ONLY), _at(1))

    assert result.status is VenueOrderStatus.OPEN
    assert engine.open_orders() == ["p1"]


# -------------------------------------------------------------------------- resting and queues
def test_resting_order_queues_behind_the_displayed_quantity() -> None:
    engine = _engine()
    engine.submit(_limit("b1", Side.BUY, "0.5", "100.00"), _at(1))

    first = _trade(engine, 2, "100.00", "0.6", Side.SELL)
    second = _trade(engine, 3, "100.00", "0.7", Side.SELL)
    third = _trade(engine, 4, "100.00", "1", Side.SELL)

    assert first == []
    assert _summary(second) == [("b1", D("100.00"), D("0.3"))]
    assert _summary(third) == [("b1", D("100.00"), D("0.2"))]
    assert all(f.liquidity is Liquidity.MAKER for f in second + third)
    assert engine.open_orders() == []


def test_price_then_time_priority_among_our_orders() -> None:
    engine = _engine()
    engine.submit(_limit("early", Side.BUY, "0.5", "100.00"), _at(1))
    engine.submit(_limit("late", Side.BUY, "0.5", "100.00"), _at(2))
    engine.submit(_limit("better", Side.BUY, "0.5", "100.02"), _at(3))

    fills = _trade(engine, 4, "100.00", "1.6", Side.SELL)
    more = _trade(engine, 5, "100.00", "0.8", Side.SELL)

    # 1.6 sold through 100.02 (better: 0.5), ate the 1.0 queued at 100.00, then early got 0.1.
    assert _summary(fills) == [("better", D("100.02"), D("0.5")), ("early", D("100.00"), D("0.1"))]
    assert _summary(more) == [("early", D("100.00"), D("0.4")), ("late", D("100.00"), D("0.4"))]


def test_trade_through_our_price_fills_up_to_the_trade_quantity_at_our_limit() -> None:
    engine = _engine()
    engine.submit(_limit("b1", Side.BUY, "1", "100.00"), _at(1))

    fills = _trade(engine, 2, "99.99", "0.3", Side.SELL)

    assert _summary(fills) == [("b1", D("100.00"), D("0.3"))]
    assert engine.queue_ahead("b1") == 0


def test_sell_resting_order_fills_from_buy_trades() -> None:
    engine = _engine()
    engine.submit(_limit("s1", Side.SELL, "2", "100.06"), _at(1))

    at_price = _trade(engine, 2, "100.06", "2.5", Side.BUY)
    through = _trade(engine, 3, "100.09", "5", Side.BUY)

    assert _summary(at_price) == [("s1", D("100.06"), D("0.5"))]
    assert _summary(through) == [("s1", D("100.06"), D("1.5"))]


def test_book_moving_through_our_price_fills_the_remainder_at_our_limit() -> None:
    engine = _engine()
    engine.submit(_limit("b1", Side.BUY, "1.5", "100.00"), _at(1))
    _trade(engine, 2, "99.99", "0.5", Side.SELL)

    fills = _diff(engine, 3, bids=((D("100.00"), D(0)),), asks=((D("100.00"), D(2)),))

    assert _summary(fills) == [("b1", D("100.00"), D(1))]
    assert fills[0].liquidity is Liquidity.MAKER
    assert engine.open_orders() == []


def test_shrinking_level_reduces_queue_ahead_in_proportion() -> None:
    engine = _engine(bids=((D("100.00"), D(4)),))
    engine.submit(_limit("b1", Side.BUY, "1", "100.00"), _at(1))

    _diff(engine, 2, bids=((D("100.00"), D(2)),))
    after_cancels = engine.queue_ahead("b1")
    _diff(engine, 3, bids=((D("100.00"), D(5)),))
    after_growth = engine.queue_ahead("b1")

    assert after_cancels == D(2)  # half the level cancelled: half the queue ahead gone
    assert after_growth == D(2)  # newcomers queue behind us


def test_level_decrease_explained_by_trades_does_not_shrink_the_queue_twice() -> None:
    engine = _engine(bids=((D("100.00"), D(4)),))
    engine.submit(_limit("b1", Side.BUY, "1", "100.00"), _at(1))
    _trade(engine, 2, "100.00", "1", Side.SELL)

    _diff(engine, 3, bids=((D("100.00"), D(3)),))
    explained = engine.queue_ahead("b1")
    _diff(engine, 4, bids=((D("100.00"), D("1.5")),))

    assert explained == D(3)
    assert engine.queue_ahead("b1") == D("1.5")


def test_cancelled_order_no_longer_fills() -> None:
    engine = _engine()
    engine.submit(_limit("b1", Side.BUY, "1", "100.00"), _at(1))

    assert engine.cancel("b1") is True
    assert engine.cancel("b1") is False
    assert _trade(engine, 2, "99.00", "5", Side.SELL) == []


# ---------------------------------------------------------------------------- fees and ids
@pytest.mark.parametrize(
    ("maker", "taker"), [(MAKER, TAKER), (bps(10), bps(10)), (D(0), bps("7.5"))]
)
def test_fees_are_exact_rates_on_the_notional_in_quote(maker: Decimal, taker: Decimal) -> None:
    engine = MatchingEngine(INSTRUMENT, maker_fee=maker, taker_fee=taker)
    engine.on_event(BookSnapshot(T0, 1, BIDS, ASKS))
    engine.submit(_limit("b1", Side.BUY, "1", "100.00"), _at(1))

    taken = engine.submit(_market("m1", Side.BUY, "1.5"), _at(2)).fills
    made = _trade(engine, 3, "99.98", "1", Side.SELL)

    assert [f.fee for f in taken] == [D("100.05") * taker, D("100.06") * D("0.5") * taker]
    assert [f.fee for f in made] == [D("100.00") * maker]
    assert {f.fee_currency for f in taken + tuple(made)} == {"USDT"}


def test_trade_ids_are_unique_and_deterministic() -> None:
    def run() -> list[str]:
        engine = _engine()
        engine.submit(_limit("b1", Side.BUY, "1", "100.00"), _at(1))
        ids = [f.trade_id for f in engine.submit(_market("m1", Side.BUY, "2"), _at(2)).fills]
        return ids + [f.trade_id for f in _trade(engine, 3, "99.00", "1", Side.SELL)]

    first, second = run(), run()

    assert first == second == ["simx-1", "simx-2", "simx-3"]
