"""The ccxt venue adapter, offline: ccxt's own fixtures at the network boundary.

* Request cases: the venue drives an offline binance (markets ``binance.tick-size.json``, dummy
  credentials, both proxies set) whose ccxt builds and signs each request and then refuses to
  send it; the request is compared with the fixture exactly (``skipKeys`` values aside).
* Response cases: ``exchange.fetch`` (the one place ccxt touches the network) is replaced by
  ``Wire``, which answers each URL path with a fixture's ``httpResponse``, counts the attempts
  and can fail the first N of them; the venue's parse into ``VenueOrderState`` / ``Fill`` /
  ``OrderBook`` / ``Balance`` is checked value by value (exact decimals, UTC).

Replies marked DERIVED have no fixture of their own: they are a named fixture's reply with the
listed fields changed, and say so.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pytest

from ems.clock import TestClock
from ems.domain import Balance, BookLevel, Liquidity, OrderRequest, OrderType, Side, TimeInForce
from ems.errors import (
    OrderNotFoundAtVenue,
    RateLimited,
    RetryableVenueError,
    SubmitOutcomeUnknown,
    VenueRejected,
    VenueUnavailable,
)
from ems.main import build_venue
from ems.ports import VenueOrderStatus
from ems.settings import CcxtVenueSettings, SettingsError, SimVenueSettings, load_settings
from ems.venues.ccxt_venue import (
    CcxtVenue,
    CcxtVenueOptions,
    CredentialsMissing,
    RetryPolicy,
)
from ems.venues.paper_venue import PaperVenue
from tests import ccxt_support as fx

CID = "P3F9A1C07B2D4-7"
BUY, SELL = Side.BUY, Side.SELL
ATTEMPTS = 4
NO_WAIT = RetryPolicy(attempts=ATTEMPTS, initial_wait_s=0, max_wait_s=0)
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
VENUES_EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "venues.example.toml"

ORDER = "/api/v3/order"
MY_TRADES = "/api/v3/myTrades"
OPEN_ORDERS = "/api/v3/openOrders"
DEPTH = "/api/v3/depth"
AGG_TRADES = "/api/v3/aggTrades"
ACCOUNT = "/api/v3/account"


def order(
    symbol: str,
    side: Side,
    qty: str,
    price: str | None,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    display_qty: str | None = None,
    params: dict[str, str] | None = None,
    order_type: OrderType = OrderType.LIMIT,
    venue: str = "binance",
) -> OrderRequest:
    return OrderRequest(
        client_order_id=CID,
        venue=venue,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=order_type,
        price=None if price is None else Decimal(price),
        time_in_force=tif,
        display_qty=None if display_qty is None else Decimal(display_qty),
        params=params or {},
    )


def reply(method: str, description: str, exchange_id: str = "binance") -> Any:
    """A deep copy of a response fixture's raw ``httpResponse``."""
    return copy.deepcopy(
        fx.fixture_case("response", exchange_id, method, description)["httpResponse"]
    )


Route = Any | Callable[[str], Any]


class Wire:
    """Stands in for ``exchange.fetch``: answers by URL path, counts every attempt and raises the
    queued exceptions of a path first."""

    def __init__(self, exchange: Any, routes: Mapping[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.failures: dict[str, list[Exception]] = {}
        self.calls: list[tuple[str, str]] = []
        exchange.fetch = self.fetch

    def fail(self, path: str, *errors: Exception) -> None:
        self.failures.setdefault(path, []).extend(errors)

    def count(self, path: str, method: str | None = None) -> int:
        return sum(1 for m, p in self.calls if p == path and method in (None, m))

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        path = urlsplit(url).path
        self.calls.append((method, path))
        queued = self.failures.get(path)
        if queued:
            raise queued.pop(0)
        if path not in self.routes:
            raise AssertionError(f"unexpected request {method} {url}")
        route = self.routes[path]
        return copy.deepcopy(route(url) if callable(route) else route)


def options(**changes: Any) -> CcxtVenueOptions:
    return CcxtVenueOptions(**{"retry": NO_WAIT, "websocket": False, **changes})


async def _venue(
    exchange_id: str,
    kind: str,
    symbols: tuple[str, ...],
    clock: TestClock,
    **option_changes: Any,
) -> AsyncIterator[CcxtVenue]:
    fx.require_fixtures()
    exchange = fx.offline_exchange(
        exchange_id,
        options=fx.fixture_file(kind, exchange_id).get("options"),
        complete_markets=kind == "response",
    )
    venue = CcxtVenue(
        exchange_id, exchange, symbols=symbols, clock=clock, options=options(**option_changes)
    )
    try:
        yield venue
    finally:
        await venue.close()


BINANCE_SYMBOLS = ("BTC/USDT", "LTC/USDT", "SOL/USDT", "LTC/USDT:USDT", "BTC/USDT:USDT")


@pytest.fixture
def clock() -> TestClock:
    return TestClock(T0)


@pytest.fixture
async def binance(clock: TestClock) -> AsyncIterator[CcxtVenue]:
    """Builds real signed requests, never sends them."""
    async for venue in _venue("binance", "request", BINANCE_SYMBOLS, clock):
        yield venue


@pytest.fixture
async def replies(clock: TestClock) -> AsyncIterator[tuple[CcxtVenue, Wire]]:
    """Answers from the response fixtures through ``Wire``."""
    async for venue in _venue("binance", "response", BINANCE_SYMBOLS, clock):
        yield venue, Wire(venue._exchange)


def last_request(venue: CcxtVenue) -> tuple[str, str | None]:
    exchange = venue._exchange
    return exchange.last_request_url, exchange.last_request_body


# --------------------------------------------------------------------------- requests

ICEBERG = order(
    "SOL/USDT",
    BUY,
    "0.05",
    "241",
    display_qty="0.03",
    params={"selfTradePrevention": "expire_maker"},
)
SUBMITS = [
    pytest.param("Spot limit buy order", order("LTC/USDT", BUY, "0.2", "50"), {}, id="limit"),
    pytest.param(
        "Spot limit buy with postOnly",
        order("LTC/USDT", BUY, "0.2", "50", tif=TimeInForce.POST_ONLY),
        {},
        id="post-only",
    ),
    pytest.param("spot +selfTradePrevention +iceberg", ICEBERG, {}, id="iceberg-icebergQty"),
    pytest.param(
        "Spot limit buy order",
        order("LTC/USDT", BUY, "0.2", "50", tif=TimeInForce.IOC),
        {"timeInForce": "IOC"},
        id="ioc-DERIVED",
    ),
    pytest.param(
        "Swap limit buy with postOnly",
        order("LTC/USDT:USDT", BUY, "0.2", "50", tif=TimeInForce.POST_ONLY),
        {},
        id="swap-post-only",
    ),
]


@pytest.mark.parametrize(("description", "request_", "derived"), SUBMITS)
async def test_submit_sends_exactly_the_fixture_request(
    binance: CcxtVenue, description: str, request_: OrderRequest, derived: dict[str, str]
) -> None:
    """IOC is DERIVED: binance has no IOC fixture; the spot limit one with timeInForce=IOC."""
    case = fx.fixture_case("request", "binance", "createOrder", description)
    with pytest.raises(VenueRejected, match="InvalidProxySettings"):  # built, signed, not sent
        await binance.submit(request_)
    url, body = last_request(binance)
    sent = fx.assert_request_matches(case, "binance", url, body, derived=derived)
    assert sent["newClientOrderId"] == CID
    if request_.display_qty is not None:
        assert sent["icebergQty"] == "0.03"


async def test_native_iceberg_is_reported_only_where_ccxt_sends_icebergqty(
    clock: TestClock,
) -> None:
    async for spot in _venue("binance", "request", ("BTC/USDT", "SOL/USDT"), clock):
        await spot.start()
        assert spot.native_iceberg is True
    async for mixed in _venue("binance", "request", ("BTC/USDT", "BTC/USDT:USDT"), clock):
        await mixed.start()
        assert mixed.native_iceberg is False  # ccxt drops icebergAmount on binance futures


@pytest.mark.parametrize(
    ("method", "description", "call", "ref"),
    [
        pytest.param(
            "cancelOrderWithClientOrderId",
            "cancel order with clientOrderId",
            "cancel",
            ("myid123", "LTC/USDT:USDT"),
            id="cancel",
        ),
        pytest.param(
            "fetchOrderWithClientOrderId",
            "fetch order with clientOrderId",
            "fetch_order",
            ("myid123", "LTC/USDT:USDT"),
            id="fetch-order",
        ),
    ],
)
async def test_cancel_and_fetch_by_client_id_send_the_fixture_request(
    binance: CcxtVenue, method: str, description: str, call: str, ref: tuple[str, str]
) -> None:
    case = fx.fixture_case("request", "binance", method, description)
    with pytest.raises(VenueRejected):
        await getattr(binance, call)(*ref)
    sent = fx.assert_request_matches(case, "binance", *last_request(binance))
    assert sent["origClientOrderId"] == "myid123"


async def test_spot_cancel_by_client_id_DERIVED_from_the_by_id_fixture(binance: CcxtVenue) -> None:
    """DERIVED: no spot by-client-id fixture; "Spot cancelOrder" with orderId swapped out."""
    case = fx.fixture_case("request", "binance", "cancelOrder", "Spot cancelOrder")
    with pytest.raises(VenueRejected):
        await binance.cancel(CID, "LTC/USDT")
    fx.assert_request_matches(
        case,
        "binance",
        *last_request(binance),
        derived={"orderId": None, "origClientOrderId": CID},
    )


@pytest.mark.parametrize(
    ("method", "description", "call"),
    [
        ("fetchOrderBook", "fetch spot orderbook", lambda v: v.order_book("BTC/USDT", 5)),
        ("fetchMyTrades", "Spot fetchMyTrades", lambda v: v.my_trades("LTC/USDT")),
        ("fetchOpenOrders", "Spot one orders", lambda v: v.open_orders("LTC/USDT")),
        ("fetchBalance", "Spot fetch balance", lambda v: v.balances()),
    ],
    ids=["order-book", "my-trades", "open-orders", "balance"],
)
async def test_reads_send_the_fixture_request(
    binance: CcxtVenue, method: str, description: str, call: Callable[[CcxtVenue], Any]
) -> None:
    case = fx.fixture_case("request", "binance", method, description)
    with pytest.raises(VenueRejected):
        await call(binance)
    fx.assert_request_matches(case, "binance", *last_request(binance))


async def test_traded_volume_pages_fetch_trades_from_since_as_the_fixture() -> None:
    """ "Fetch Trades - spot": startTime=since, endTime=since+1h, limit = the page size."""
    case = fx.fixture_case("request", "binance", "fetchTrades", "Fetch Trades - spot")
    symbol, since_ms, limit = case["input"]
    since = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
    late = TestClock(since + timedelta(minutes=1))
    async for venue in _venue("binance", "request", (symbol,), late, trades_page_limit=limit):
        with pytest.raises(VenueRejected):
            await venue.traded_volume(symbol, since)
        fx.assert_request_matches(case, "binance", *last_request(venue))


# --------------------------------------------------------------------------- replies


async def test_submit_reply_parses_to_an_open_state(replies: tuple[CcxtVenue, Wire]) -> None:
    venue, wire = replies
    wire.routes[ORDER] = reply("createOrder", "spot +selfTradePrevention +iceberg")
    state = await venue.submit(ICEBERG)
    assert (state.client_order_id, state.venue_order_id) == (CID, "9780331417")
    assert (state.status, state.filled_qty, state.fills) == (VenueOrderStatus.OPEN, 0, ())
    assert wire.calls == [("POST", ORDER)]


def closed_ltc_order() -> dict[str, Any]:
    return reply("fetchOrder", "Fetch spot closed order")  # market sell 0.1 LTC, filled at 90.8


def ltc_fill_DERIVED() -> list[dict[str, Any]]:
    """DERIVED from "Spot private trade": orderId, qty, price, quoteQty, commission and time
    set to those of the "Fetch spot closed order" order."""
    trades: list[dict[str, Any]] = reply("fetchMyTrades", "Spot private trade")
    trades[0].update(
        orderId="3397148653",
        qty="0.10000000",
        price="90.80000000",
        quoteQty="9.08000000",
        commission="0.00908000",
        time="1679571174472",
    )
    return trades


async def test_fetch_order_by_client_id_carries_its_fills_with_exact_values(
    replies: tuple[CcxtVenue, Wire],
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = closed_ltc_order()
    wire.routes[MY_TRADES] = ltc_fill_DERIVED()

    state = await venue.fetch_order("x-R4BD3S825806ed40c861260428a48c", "LTC/USDT")

    assert state.status is VenueOrderStatus.FILLED
    assert (state.venue_order_id, state.filled_qty) == ("3397148653", Decimal("0.1"))
    (fill,) = state.fills
    assert fill.trade_id == "LTC/USDT#309520010"
    assert (fill.venue, fill.client_order_id, fill.symbol) == (
        "binance",
        "x-R4BD3S825806ed40c861260428a48c",
        "LTC/USDT",
    )
    assert (fill.side, fill.price, fill.qty) == (SELL, Decimal("90.8"), Decimal("0.1"))
    assert (fill.fee, fill.fee_currency, fill.liquidity) == (
        Decimal("0.00908"),
        "USDT",
        Liquidity.TAKER,
    )
    assert fill.ts == datetime(2023, 3, 23, 11, 32, 54, 472000, tzinfo=UTC)
    assert fill.ts.tzinfo is UTC
    assert wire.calls == [("GET", ORDER), ("GET", MY_TRADES)]


async def test_a_finished_order_whose_fills_are_not_all_listed_yet_stays_open(
    replies: tuple[CcxtVenue, Wire],
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = closed_ltc_order()
    wire.routes[MY_TRADES] = []  # the trade list lags the order

    state = await venue.fetch_order("x-R4BD3S825806ed40c861260428a48c", "LTC/USDT")

    assert (state.status, state.fills, state.filled_qty) == (
        VenueOrderStatus.OPEN,
        (),
        Decimal("0.1"),
    )
    assert "trade list" in state.reason


async def test_fills_embedded_in_a_full_create_reply_are_taker_fills_at_entry(
    replies: tuple[CcxtVenue, Wire],
) -> None:
    """DERIVED from the iceberg create reply: binance's FULL reply for an order filled on entry
    (status FILLED, executedQty, and the fills array binance documents)."""
    venue, wire = replies
    full = reply("createOrder", "spot +selfTradePrevention +iceberg")
    full.update(
        status="FILLED",
        executedQty="0.05000000",
        cummulativeQuoteQty="12.05000000",
        fills=[
            {
                "price": "241.00000000",
                "qty": "0.05000000",
                "commission": "0.00005000",
                "commissionAsset": "SOL",
                "tradeId": 771,
            }
        ],
    )
    wire.routes[ORDER] = full

    state = await venue.submit(ICEBERG)

    assert state.status is VenueOrderStatus.FILLED
    (fill,) = state.fills
    assert (fill.trade_id, fill.price, fill.qty) == ("SOL/USDT#771", Decimal(241), Decimal("0.05"))
    assert (fill.fee, fill.fee_currency, fill.liquidity) == (
        Decimal("0.00005"),
        "SOL",
        Liquidity.TAKER,
    )
    assert fill.ts == datetime(2025, 1, 23, 12, 32, 37, 417000, tzinfo=UTC)  # transactTime
    assert wire.calls == [("POST", ORDER)]  # nothing else read


@pytest.mark.parametrize(
    ("description", "symbol", "path", "expected"),
    [
        (
            "Spot private trade",
            "LTC/USDT",
            MY_TRADES,
            ("3784695242", "LTC/USDT#309520010", SELL, "69.63", "0.2", "0.013926", "USDT"),
        ),
        (
            "Swap private trade",
            "BTC/USDT:USDT",
            "/fapi/v1/userTrades",
            ("3524852987", "BTC/USDT:USDT#272536245", BUY, "36567.1", "0.01", "0.1462684", "USDT"),
        ),
    ],
)
async def test_my_trades_parse_to_exact_fills(
    replies: tuple[CcxtVenue, Wire],
    description: str,
    symbol: str,
    path: str,
    expected: tuple[Any, ...],
) -> None:
    venue, wire = replies
    case = fx.fixture_case("response", "binance", "fetchMyTrades", description)
    wire.routes[path] = case["httpResponse"]

    (trade,) = await venue.my_trades(symbol)

    order_id, trade_id, side, price, qty, fee, currency = expected
    fill = trade.fill
    assert (trade.venue_order_id, fill.trade_id, fill.side) == (order_id, trade_id, side)
    assert (fill.price, fill.qty, fill.fee) == (Decimal(price), Decimal(qty), Decimal(fee))
    assert (fill.fee_currency, fill.liquidity, fill.client_order_id) == (
        currency,
        Liquidity.TAKER,
        "",
    )
    assert fill.ts == datetime.fromtimestamp(case["parsedResponse"][0]["timestamp"] / 1000, UTC)


async def test_order_books_parse_exactly_and_keep_their_real_time(
    replies: tuple[CcxtVenue, Wire], clock: TestClock
) -> None:
    venue, wire = replies
    wire.routes[DEPTH] = reply("fetchOrderBook", "spot orderbook")
    wire.routes["/fapi/v1/depth"] = reply("fetchOrderBook", "swap orderbook")

    spot = await venue.order_book("BTC/USDT", 2)
    assert spot.bids == (
        BookLevel(Decimal("42574.3"), Decimal("0.0107")),
        BookLevel(Decimal("42574.2"), Decimal("0.00646")),
    )
    assert spot.asks[0] == BookLevel(Decimal("42574.31"), Decimal("0.0087"))
    assert spot.ts == clock.now()  # binance spot REST books carry no time: received now

    swap = await venue.order_book("BTC/USDT:USDT", 3)
    assert swap.ts == datetime(2024, 2, 1, 16, 11, 57, 258000, tzinfo=UTC)  # old, as it is
    assert len(swap.bids) == len(swap.asks) == 3
    assert swap.asks[0] == BookLevel(Decimal(42878), Decimal("7.011"))


async def test_balances_parse_exactly(replies: tuple[CcxtVenue, Wire]) -> None:
    venue, wire = replies
    wire.routes[ACCOUNT] = reply("fetchBalance", "Spot balance")
    balances = await venue.balances()
    assert balances["LTC"] == Balance("LTC", Decimal("0.919741"), Decimal(0))
    assert balances["ETH"] == Balance("ETH", Decimal("0.02229833"), Decimal(0))
    assert balances["USDT"] == Balance("USDT", Decimal(0))  # quote of a configured symbol


async def test_open_orders_parse(replies: tuple[CcxtVenue, Wire]) -> None:
    venue, wire = replies
    wire.routes[OPEN_ORDERS] = reply("fetchOpenOrders", "Fetch spot open orders")
    (state,) = await venue.open_orders("LTC/USDT")
    assert (state.client_order_id, state.venue_order_id, state.status) == (
        "x-R4BD3S82102a551f8c1642bba06728",
        "3811057334",
        VenueOrderStatus.OPEN,
    )


async def test_traded_volume_sums_public_trades_after_since() -> None:
    """ "public spot trades": one trade of 0.00109 BTC at 11:01:01.939."""
    trade_time = datetime(2024, 3, 13, 11, 1, 1, 939000, tzinfo=UTC)
    late = TestClock(trade_time + timedelta(minutes=5))
    async for fresh in _venue("binance", "response", ("BTC/USDT",), late):
        Wire(fresh._exchange, {AGG_TRADES: reply("fetchTrades", "public spot trades")})
        assert await fresh.traded_volume("BTC/USDT", trade_time - timedelta(seconds=1)) == Decimal(
            "0.00109"
        )
        assert await fresh.traded_volume("BTC/USDT", trade_time) == 0  # strictly after
        (trade,) = await fresh.public_trades("BTC/USDT", trade_time - timedelta(minutes=1))
        assert (trade.price, trade.qty, trade.aggressor, trade.ts) == (
            Decimal("73238.7"),
            Decimal("0.00109"),
            BUY,
            trade_time,
        )


# --------------------------------------------------------------------------- fallback by client id


async def test_where_ccxt_cannot_fetch_by_client_id_the_order_is_found_in_closed_orders(
    clock: TestClock,
) -> None:
    """coinbase: open orders (none: DERIVED empty reply of the same endpoint), then the closed
    orders fixture, whose order has the fill of the coinbase "Spot trade" fixture."""
    closed = reply("fetchClosedOrders", "Spot closed order", "coinbase")
    empty = {**closed, "orders": [], "has_next": False, "cursor": ""}

    def orders(url: str) -> Any:
        return empty if "order_status=OPEN" in url else closed

    async for venue in _venue("coinbase", "response", ("ADA/USDT",), clock):
        wire = Wire(
            venue._exchange,
            {
                "/api/v3/brokerage/orders/historical/batch": orders,
                "/api/v3/brokerage/orders/historical/fills": reply(
                    "fetchMyTrades", "Spot trade", "coinbase"
                ),
            },
        )
        cid = "a0f970a2-05fa-4e1f-9517-f6702c33cfd1"
        state = await venue.fetch_order(cid, "ADA/USDT")

        assert (state.status, state.filled_qty) == (VenueOrderStatus.FILLED, Decimal(10))
        (fill,) = state.fills
        assert fill.trade_id == "ADA/USDT#19fc7eee-f4b4-40a7-8104-033da1db5311"
        assert (fill.client_order_id, fill.side, fill.price, fill.qty) == (
            cid,
            SELL,
            Decimal("0.392"),
            Decimal(10),
        )
        assert (fill.fee, fill.fee_currency, fill.liquidity) == (
            Decimal("0.03136"),
            "USDT",
            Liquidity.TAKER,
        )
        assert fill.ts == datetime(2023, 11, 26, 10, 19, 47, 504000, tzinfo=UTC)

        with pytest.raises(OrderNotFoundAtVenue, match="no longer open"):
            await venue.cancel(cid, "ADA/USDT")  # closed: nothing to cancel
        with pytest.raises(OrderNotFoundAtVenue):
            await venue.fetch_order("not-ours", "ADA/USDT")
        assert wire.count("/api/v3/brokerage/orders/historical/batch") >= 2


# --------------------------------------------------------------------------- retries


def open_order_reply() -> dict[str, Any]:
    """DERIVED: the single order of "Fetch spot open orders", the shape GET /api/v3/order has."""
    first: dict[str, Any] = reply("fetchOpenOrders", "Fetch spot open orders")[0]
    return first


@pytest.mark.parametrize(
    "error",
    [ccxt.NetworkError, ccxt.RateLimitExceeded, ccxt.RequestTimeout, ccxt.ExchangeNotAvailable],
)
@pytest.mark.parametrize("failures", [1, ATTEMPTS - 1])
async def test_fetch_order_is_retried_and_succeeds_after_n_failures(
    replies: tuple[CcxtVenue, Wire], error: type[Exception], failures: int
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = open_order_reply()
    wire.fail(ORDER, *(error("transient") for _ in range(failures)))

    state = await venue.fetch_order("x-R4BD3S82102a551f8c1642bba06728", "LTC/USDT")

    assert state.status is VenueOrderStatus.OPEN
    assert wire.count(ORDER) == failures + 1


@pytest.mark.parametrize(
    ("error", "raised"),
    [(ccxt.NetworkError, VenueUnavailable), (ccxt.RateLimitExceeded, RateLimited)],
)
async def test_fetch_order_gives_up_after_the_bound(
    replies: tuple[CcxtVenue, Wire], error: type[Exception], raised: type[Exception]
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = open_order_reply()
    wire.fail(ORDER, *(error("still down") for _ in range(ATTEMPTS + 5)))

    with pytest.raises(raised, match="still down"):
        await venue.fetch_order(CID, "LTC/USDT")
    assert wire.count(ORDER) == ATTEMPTS


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ccxt.OrderNotFound, OrderNotFoundAtVenue),
        (ccxt.AuthenticationError, VenueRejected),
        (ccxt.BadSymbol, VenueRejected),
    ],
)
async def test_non_retryable_read_errors_make_one_attempt(
    replies: tuple[CcxtVenue, Wire], error: type[Exception], raised: type[Exception]
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = open_order_reply()
    wire.fail(ORDER, error("no"))
    with pytest.raises(raised):
        await venue.fetch_order(CID, "LTC/USDT")
    assert wire.count(ORDER) == 1


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ccxt.RequestTimeout, SubmitOutcomeUnknown),
        (ccxt.NetworkError, SubmitOutcomeUnknown),
        (ccxt.ExchangeNotAvailable, SubmitOutcomeUnknown),
        (TimeoutError, SubmitOutcomeUnknown),
        (ccxt.RateLimitExceeded, RateLimited),
        (ccxt.InsufficientFunds, VenueRejected),
    ],
)
async def test_submit_is_attempted_exactly_once_whatever_fails(
    replies: tuple[CcxtVenue, Wire], error: type[Exception], raised: type[Exception]
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = reply("createOrder", "spot +selfTradePrevention +iceberg")
    wire.fail(ORDER, error("lost"))

    with pytest.raises(raised):
        await venue.submit(ICEBERG)

    assert wire.count(ORDER, "POST") == 1
    assert wire.calls == [("POST", ORDER)]  # never re-sent, nothing else sent


async def test_cancel_by_client_id_is_retried(replies: tuple[CcxtVenue, Wire]) -> None:
    """DERIVED cancel reply: the open order with status CANCELED."""
    venue, wire = replies
    wire.routes[ORDER] = {**open_order_reply(), "status": "CANCELED"}
    wire.fail(ORDER, ccxt.NetworkError("reset"), ccxt.DDoSProtection("slow down"))
    await venue.cancel(CID, "LTC/USDT")
    assert wire.count(ORDER, "DELETE") == 3


async def test_order_book_is_retried_and_a_stale_book_is_returned_with_its_time(
    replies: tuple[CcxtVenue, Wire], clock: TestClock
) -> None:
    venue, wire = replies
    wire.routes[DEPTH] = reply("fetchOrderBook", "spot orderbook")
    wire.fail(DEPTH, ccxt.RateLimitExceeded("429"), ccxt.RateLimitExceeded("429"))
    first = await venue.order_book("BTC/USDT", 2)
    assert wire.count(DEPTH) == 3 and first.ts == T0

    clock.advance(timedelta(minutes=1))
    wire.fail(DEPTH, *(ccxt.NetworkError("down") for _ in range(ATTEMPTS)))
    stale = await venue.order_book("BTC/USDT", 2)
    assert wire.count(DEPTH) == 3 + ATTEMPTS
    assert stale == first and stale.ts == T0  # real time kept: the caller sees it is old


async def test_no_book_at_all_raises_the_retryable_error(replies: tuple[CcxtVenue, Wire]) -> None:
    venue, wire = replies
    wire.fail(DEPTH, *(ccxt.NetworkError("down") for _ in range(ATTEMPTS)))
    with pytest.raises(RetryableVenueError):
        await venue.order_book("BTC/USDT", 2)


# --------------------------------------------------------------------------- streams and updates


async def test_streamed_book_is_used_while_fresh_and_rest_takes_over_when_stale(
    clock: TestClock,
) -> None:
    """The exchange object is given a ``watch_order_book`` (as ccxt.pro's have) that delivers one
    book (the parsed "swap orderbook" levels, stamped now) and then waits."""
    async for venue in _venue("binance", "response", ("BTC/USDT",), clock, websocket=True):
        await _streamed_then_rest(venue, clock)


async def _streamed_then_rest(venue: CcxtVenue, clock: TestClock) -> None:
    exchange = venue._exchange
    wire = Wire(exchange)
    parsed = copy.deepcopy(
        fx.fixture_case("response", "binance", "fetchOrderBook", "swap orderbook")["parsedResponse"]
    )
    parsed.update(symbol="BTC/USDT", timestamp=int(T0.timestamp() * 1000))
    delivered = asyncio.Event()
    never = asyncio.Event()
    calls: list[str] = []

    async def watch_order_book(symbol: str, limit: int | None = None, params: Any = None) -> Any:
        calls.append(symbol)
        if len(calls) == 1:
            delivered.set()
            return parsed
        await never.wait()

    exchange.watch_order_book = watch_order_book
    exchange.has = {**exchange.has, "watchOrderBook": True}
    wire.routes[DEPTH] = reply("fetchOrderBook", "spot orderbook")

    first = await venue.order_book("BTC/USDT", 5)  # starts the watcher; REST meanwhile
    assert wire.count(DEPTH) == 1 and first.bids[0].price == Decimal("42574.3")
    await asyncio.wait_for(delivered.wait(), 1)
    await asyncio.sleep(0)

    streamed = await venue.order_book("BTC/USDT", 5)
    assert wire.count(DEPTH) == 1  # no REST call
    assert streamed.bids[0] == BookLevel(Decimal("42651.1"), Decimal("470.672"))
    assert streamed.ts == T0
    assert calls == ["BTC/USDT", "BTC/USDT"]  # one watcher, waiting for the next update

    clock.advance(timedelta(seconds=6))  # book_max_age is 5 s
    rest = await venue.order_book("BTC/USDT", 5)
    assert wire.count(DEPTH) == 2 and rest.ts == clock.now()


def filled_sol_order_DERIVED() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DERIVED: the iceberg order of the create reply, now FILLED, and its one (maker) trade
    made from "Spot private trade" with this order's id, price and quantity."""
    done = reply("createOrder", "spot +selfTradePrevention +iceberg")
    done.update(status="FILLED", executedQty="0.05000000", cummulativeQuoteQty="12.05000000")
    done["updateTime"] = "1737635600000"
    trades = reply("fetchMyTrades", "Spot private trade")
    trades[0].update(
        symbol="SOLUSDT",
        id="55501",
        orderId="9780331417",
        price="241.00000000",
        qty="0.05000000",
        quoteQty="12.05000000",
        commission="0.01205000",
        isBuyer=True,
        isMaker=True,
        time="1737635600000",
    )
    return done, trades


async def test_tracked_orders_are_polled_and_reported_once_by_drain_updates(
    replies: tuple[CcxtVenue, Wire],
) -> None:
    venue, wire = replies
    wire.routes[ORDER] = reply("createOrder", "spot +selfTradePrevention +iceberg")
    await venue.submit(ICEBERG)

    done, trades = filled_sol_order_DERIVED()
    wire.routes[OPEN_ORDERS] = []
    wire.routes[ORDER] = done
    wire.routes[MY_TRADES] = trades
    await venue.poll_orders()
    updates = venue.drain_updates()

    final = updates[-1]
    assert (final.client_order_id, final.status) == (CID, VenueOrderStatus.FILLED)
    (fill,) = final.fills
    assert (fill.trade_id, fill.liquidity, fill.side) == ("SOL/USDT#55501", Liquidity.MAKER, BUY)
    assert (fill.price, fill.qty, fill.fee) == (Decimal(241), Decimal("0.05"), Decimal("0.01205"))

    before = len(wire.calls)
    await venue.poll_orders()  # finished orders are no longer tracked
    assert len(wire.calls) == before and venue.drain_updates() == []


async def test_drain_updates_polls_in_the_background(replies: tuple[CcxtVenue, Wire]) -> None:
    venue, wire = replies
    wire.routes[ORDER] = reply("createOrder", "spot +selfTradePrevention +iceberg")
    await venue.submit(ICEBERG)
    done, trades = filled_sol_order_DERIVED()
    wire.routes.update({OPEN_ORDERS: [], ORDER: done, MY_TRADES: trades})

    assert venue.drain_updates() == []  # the poll starts now...
    for _ in range(20):
        await asyncio.sleep(0)
    (state,) = venue.drain_updates()  # ...and its result is there at the next call
    assert state.status is VenueOrderStatus.FILLED and len(state.fills) == 1


# --------------------------------------------------------------------------- secrets


KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ENV = {"EMS_TEST_KEY": KEY, "EMS_TEST_SECRET": SECRET}


async def test_api_keys_come_from_the_named_env_vars_and_never_show(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real ccxt request path (signing, ccxt's DEBUG log of the request headers) against a
    closed local port: the key is sent in the header, and is nowhere in repr, str, errors or
    logs. The submit is attempted once and ends unknown."""
    fx.require_fixtures()
    venue = CcxtVenue.create(
        "live",
        "binance",
        symbols=("LTC/USDT",),
        api_key_env="EMS_TEST_KEY",
        api_secret_env="EMS_TEST_SECRET",
        environ=ENV,
        clock=TestClock(T0),
        options=options(),
    )
    exchange = venue._exchange
    try:
        exchange.set_markets(fx.markets("binance"), fx._load("currencies/binance.json"))
        exchange.urls["api"] = {
            key: "http://127.0.0.1:9/" + urlsplit(url).path.lstrip("/")
            for key, url in exchange.urls["api"].items()
            if isinstance(url, str)
        }
        caplog.set_level(logging.DEBUG)

        with pytest.raises(SubmitOutcomeUnknown) as raised:
            await venue.submit(order("LTC/USDT", BUY, "0.2", "50", venue="live"))

        assert exchange.last_request_headers["X-MBX-APIKEY"] == KEY  # really used
        sent = [r for r in caplog.records if "Request:" in r.getMessage()]
        assert len(sent) == 1  # one attempt, logged by ccxt with its headers...
        assert "***" in sent[0].getMessage()  # ...with the key blanked out
        for text in (caplog.text, repr(venue), str(venue), str(raised.value)):
            assert KEY not in text and SECRET not in text
        assert "credentials=set" in repr(venue)
    finally:
        await venue.close()


def test_missing_env_var_is_named_and_no_value_is_shown() -> None:
    with pytest.raises(CredentialsMissing, match="EMS_TEST_SECRET"):
        CcxtVenue.create(
            "live",
            "binance",
            api_key_env="EMS_TEST_KEY",
            api_secret_env="EMS_TEST_SECRET",
            environ={"EMS_TEST_KEY": KEY},
        )


# --------------------------------------------------------------------------- settings


def ccxt_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "binance-live",
        "kind": "ccxt",
        "exchange": "binance",
        "symbols": ["BTC/USDT"],
        "api_key_env": "EMS_BINANCE_KEY",
        "api_secret_env": "EMS_BINANCE_SECRET",
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            ccxt_entry(exchange="binanse"),
            r"'binanse' is not a ccxt exchange id.*did you mean binance",
        ),
        (ccxt_entry(api_key_env=None), "trades live, so it needs api_key_env"),
        (
            ccxt_entry(api_key_env=None, api_secret_env=None),
            "needs api_key_env and api_secret_env",
        ),
        (ccxt_entry(api_key_env="ems-binance-key"), "api_key_env: .*NAME of an environment"),
        (ccxt_entry(api_secret_env="9LIVES"), "api_secret_env: .*NAME of an environment"),
        (ccxt_entry(api_secret_env="EMS_BINANCE_KEY"), "name the same variable"),
        (ccxt_entry(symbols=["BTCUSDT"]), "ccxt unified symbols"),
        (ccxt_entry(symbols=[]), "symbols"),
        (ccxt_entry(balances={"USDT": "1"}), "only apply to paper venues"),
        (ccxt_entry(kind="fix"), "venue kind must be 'sim' or 'ccxt'"),
        (ccxt_entry(secret="x"), "secret"),  # unknown key
    ],
)
def test_bad_ccxt_venue_settings_are_refused_with_a_clear_message(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, venues=[entry])


def test_a_key_pasted_instead_of_a_name_is_not_echoed() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(None, venues=[ccxt_entry(api_key_env=KEY)])
    assert KEY not in str(raised.value) and KEY not in str(raised.value.__cause__)


def test_paper_needs_no_keys_and_sim_stays_the_default_kind() -> None:
    settings = load_settings(
        None,
        venues=[
            {"name": "sim-a"},
            ccxt_entry(name="paper", paper=True, api_key_env=None, api_secret_env=None),
        ],
    )
    sim, paper = settings.venues
    assert isinstance(sim, SimVenueSettings) and isinstance(paper, CcxtVenueSettings)
    assert paper.paper and paper.rate_limit and paper.paper_balances()["USDT"] == Decimal(1_000_000)


def test_venues_example_config_has_a_sandbox_venue_and_a_paper_venue() -> None:
    text = VENUES_EXAMPLE.read_text()
    settings = load_settings(VENUES_EXAMPLE)
    ccxt_venues = [v for v in settings.venues if isinstance(v, CcxtVenueSettings)]
    assert any(v.sandbox and not v.paper and v.api_key_env for v in ccxt_venues)
    assert any(v.paper for v in ccxt_venues)
    assert "secret =" not in text.lower() and "apikey" not in text.lower()


async def test_build_venue_dispatches_on_the_settings_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = TestClock(T0)
    paper = build_venue(
        CcxtVenueSettings.model_validate(
            ccxt_entry(name="paper", paper=True, api_key_env=None, api_secret_env=None)
        ),
        clock,
    )
    assert isinstance(paper, PaperVenue)
    await paper.close()

    live_spec = CcxtVenueSettings.model_validate(ccxt_entry(sandbox=True))
    with pytest.raises(CredentialsMissing, match="EMS_BINANCE_KEY"):
        build_venue(live_spec, clock)
    monkeypatch.setenv("EMS_BINANCE_KEY", KEY)
    monkeypatch.setenv("EMS_BINANCE_SECRET", SECRET)
    live = build_venue(live_spec, clock)
    assert isinstance(live, CcxtVenue)
    assert "sandbox=True" in repr(live) and KEY not in repr(live)
    await live.close()


async def test_a_rest_book_is_reused_within_the_reuse_window_only(
    replies: tuple[CcxtVenue, Wire], clock: TestClock
) -> None:
    venue, wire = replies
    wire.routes[DEPTH] = reply("fetchOrderBook", "spot orderbook")
    await venue.order_book("BTC/USDT", 2)
    await venue.order_book("BTC/USDT", 1)  # same step, shallower: no new request
    assert wire.count(DEPTH) == 1
    await venue.order_book("BTC/USDT", 5)  # deeper than fetched: asks again
    assert wire.count(DEPTH) == 2
    clock.advance(timedelta(milliseconds=250))
    await venue.order_book("BTC/USDT", 5)
    assert wire.count(DEPTH) == 3
