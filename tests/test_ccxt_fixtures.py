"""Our order translation, proved offline against ccxt's own fixtures (ccxt 4.5.90).

Each request test builds an ``OrderRequest``, translates it with ``create_order_args`` (or
``cancel_order_args`` / ``fetch_order_args``), calls the unified method on an offline async ccxt
exchange and asserts that the HTTP request ccxt builds equals the fixture's: same path, same
parameter keys, same values except under the fixture's ``skipKeys`` (timestamp, signature,
recvWindow, generated client ids). When we pass a client order id, it must be in the request.

Cases marked DERIVED have no ccxt fixture (binance has none for IOC, nor for spot cancel/fetch by
client id): the expectation is an existing fixture with the named keys changed, and says so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from ems.domain import OrderRequest, OrderType, Side, TimeInForce
from ems.errors import (
    InvalidOrder,
    OrderNotFoundAtVenue,
    RateLimited,
    RetryableVenueError,
    SubmitOutcomeUnknown,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)
from ems.venues.ccxt_orders import (
    CcxtOrderCall,
    cancel_order_args,
    create_order_args,
    fetch_order_args,
    translate_ccxt_error,
)
from tests import ccxt_support as fx

CID = "P3F9A1C07B2D4-7"  # the shape of ParentOrder.next_client_order_id()
BUY, SELL = Side.BUY, Side.SELL


def order(
    symbol: str,
    side: Side,
    qty: str,
    price: str | None,
    *,
    venue: str = "binance",
    order_type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
    display_qty: str | None = None,
    params: dict[str, str] | None = None,
    client_order_id: str = CID,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        venue=venue,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=order_type,
        price=None if price is None else Decimal(price),
        time_in_force=tif,
        reduce_only=reduce_only,
        display_qty=None if display_qty is None else Decimal(display_qty),
        params=params or {},
    )


async def _offline(exchange_id: str, kind: str = "request") -> AsyncIterator[Any]:
    fx.require_fixtures()
    exchange = fx.offline_exchange(
        exchange_id,
        options=fx.fixture_file(kind, exchange_id).get("options"),
        complete_markets=kind == "response",
    )
    try:
        yield exchange
    finally:
        await exchange.close()


@pytest.fixture
async def binance() -> AsyncIterator[Any]:
    async for exchange in _offline("binance"):
        yield exchange


@pytest.fixture
async def coinbase() -> AsyncIterator[Any]:
    async for exchange in _offline("coinbase"):
        yield exchange


# The binance iceberg case. selfTradePrevention is not a field of OrderRequest: it travels in
# OrderRequest.params, whose allow-list (ccxt_orders.PASSTHROUGH_PARAMS) admits it.
ICEBERG = order(
    "SOL/USDT",
    BUY,
    "0.05",
    "241",
    display_qty="0.03",
    params={"selfTradePrevention": "expire_maker"},
)

BINANCE_CREATE = [
    pytest.param("spot +selfTradePrevention +iceberg", ICEBERG, id="spot-iceberg"),
    pytest.param("Spot limit buy order", order("LTC/USDT", BUY, "0.2", "50"), id="spot-limit"),
    pytest.param(
        "Spot limit buy with postOnly",
        order("LTC/USDT", BUY, "0.2", "50", tif=TimeInForce.POST_ONLY),
        id="spot-post-only-LIMIT_MAKER",
    ),
    pytest.param(
        "spot order with weird amount",
        order("BTC/USDT", BUY, "0.0007856509959147719", "55000"),
        id="spot-amount-rounded-down",
    ),
    pytest.param(
        "spot order with weird price/amount",
        order("LTC/USDT", BUY, "0.4234234234", "55.324242343"),
        id="spot-buy-price-rounded-down",
    ),
    pytest.param("Swap limit buy order", order("LTC/USDT:USDT", BUY, "0.1", "55"), id="swap-limit"),
    pytest.param("Swap limit sell", order("LTC/USDT:USDT", SELL, "0.2", "100"), id="swap-sell"),
    pytest.param(
        "swap limit buy with weird price/amount",
        order("LTC/USDT:USDT", BUY, "0.132434234", "50.234234234"),
        id="swap-rounding",
    ),
    pytest.param(
        "Swap limit buy with reduce only (closing short position)",
        order("LTC/USDT:USDT", BUY, "0.2", "60", reduce_only=True),
        id="swap-reduce-only",
    ),
    pytest.param(
        "Swap limit buy with postOnly",
        order("LTC/USDT:USDT", BUY, "0.2", "50", tif=TimeInForce.POST_ONLY),
        id="swap-post-only-GTX",
    ),
    pytest.param(
        "Swap market buy order",
        order("LTC/USDT:USDT", BUY, "0.1", None, order_type=OrderType.MARKET),
        id="swap-market",
    ),
]


@pytest.mark.parametrize(("description", "request_"), BINANCE_CREATE)
async def test_binance_create_order_builds_the_fixture_request(
    binance: Any, description: str, request_: OrderRequest
) -> None:
    case = fx.fixture_case("request", "binance", "createOrder", description)
    call = create_order_args(request_, "binance", binance.markets[request_.symbol])
    url, body = await fx.capture_request(binance.create_order(**call), binance)
    sent = fx.assert_request_matches(case, "binance", url, body)
    assert sent["newClientOrderId"] == CID  # a skip key's value, but it must be ours


async def test_binance_iceberg_call_is_the_fixture_unified_call(binance: Any) -> None:
    """Beyond the request: our unified call is the fixture's input plus our client id."""
    case = fx.fixture_case(
        "request", "binance", "createOrder", "spot +selfTradePrevention +iceberg"
    )
    symbol, type_, side, amount, price, params = case["input"]
    call = create_order_args(ICEBERG, "binance", binance.markets["SOL/USDT"])
    assert (call.symbol, call.type, call.side) == (symbol, type_, side)
    assert (Decimal(call.amount), Decimal(str(call.price))) == (Decimal(str(amount)), price)
    assert dict(call.params) == {
        "clientOrderId": CID,
        "selfTradePrevention": params["selfTradePrevention"],
        "icebergAmount": "0.03",
    }
    _url, body = await fx.capture_request(binance.create_order(**call), binance)
    assert fx.parse_query(body)["icebergQty"] == "0.03"


async def test_binance_ioc_limit_DERIVED_from_the_spot_limit_fixture(binance: Any) -> None:
    """DERIVED: binance has no IOC fixture; expect "Spot limit buy order" with timeInForce=IOC."""
    case = fx.fixture_case("request", "binance", "createOrder", "Spot limit buy order")
    request_ = order("LTC/USDT", BUY, "0.2", "50", tif=TimeInForce.IOC)
    call = create_order_args(request_, "binance", binance.markets["LTC/USDT"])
    url, body = await fx.capture_request(binance.create_order(**call), binance)
    sent = fx.assert_request_matches(case, "binance", url, body, derived={"timeInForce": "IOC"})
    assert sent["newClientOrderId"] == CID


BINANCE_BY_CLIENT_ID = [
    pytest.param(
        "cancelOrderWithClientOrderId",
        "cancel order with clientOrderId",
        "cancel_order",
        ("myid123", "LTC/USDT:USDT"),
        id="cancel-swap",
    ),
    pytest.param(
        "cancelOrder",
        "cancel swap order with clientOrderId",
        "cancel_order",
        ("myswap", "BTC/USDT:USDT"),
        id="cancel-swap-2",
    ),
    pytest.param(
        "fetchOrderWithClientOrderId",
        "fetch order with clientOrderId",
        "fetch_order",
        ("myid123", "LTC/USDT:USDT"),
        id="fetch-swap",
    ),
]


@pytest.mark.parametrize(("method", "description", "call_name", "ref"), BINANCE_BY_CLIENT_ID)
async def test_binance_cancel_and_fetch_by_client_id_build_the_fixture_request(
    binance: Any, method: str, description: str, call_name: str, ref: tuple[str, str]
) -> None:
    case = fx.fixture_case("request", "binance", method, description)
    translate = cancel_order_args if call_name == "cancel_order" else fetch_order_args
    call = translate(ref[0], ref[1], "binance")
    url, body = await fx.capture_request(getattr(binance, call_name)(**call), binance)
    sent = fx.assert_request_matches(case, "binance", url, body)
    assert sent["origClientOrderId"] == ref[0]
    assert "orderId" not in sent


@pytest.mark.parametrize(
    ("description", "call_name"),
    [("Spot cancelOrder", "cancel_order"), ("Spot fetchOrder", "fetch_order")],
)
async def test_binance_spot_by_client_id_DERIVED_from_the_by_order_id_fixture(
    binance: Any, description: str, call_name: str
) -> None:
    """DERIVED: no spot by-client-id fixture; expect the by-id one with orderId swapped out."""
    method = "cancelOrder" if call_name == "cancel_order" else "fetchOrder"
    case = fx.fixture_case("request", "binance", method, description)
    translate = cancel_order_args if call_name == "cancel_order" else fetch_order_args
    call = translate(CID, "LTC/USDT", "binance")
    url, body = await fx.capture_request(getattr(binance, call_name)(**call), binance)
    fx.assert_request_matches(
        case, "binance", url, body, derived={"orderId": None, "origClientOrderId": CID}
    )


COINBASE_CREATE = [
    pytest.param(
        "spot limit buy", order("ADA/USDT", BUY, "4", "0.2", venue="coinbase"), id="limit"
    ),
    pytest.param(
        "Spot limit buy with postOnly",
        order("ADA/USDT", BUY, "10", "0.25", venue="coinbase", tif=TimeInForce.POST_ONLY),
        id="post-only",
    ),
    pytest.param(
        "create limit IOC order",
        order("DOGE/USDT", BUY, "10", "0.05", venue="coinbase", tif=TimeInForce.IOC),
        id="ioc",
    ),
]


@pytest.mark.parametrize(("description", "request_"), COINBASE_CREATE)
async def test_coinbase_create_order_builds_the_fixture_request(
    coinbase: Any, description: str, request_: OrderRequest
) -> None:
    case = fx.fixture_case("request", "coinbase", "createOrder", description)
    call = create_order_args(request_, "coinbase", coinbase.markets[request_.symbol])
    url, body = await fx.capture_request(coinbase.create_order(**call), coinbase)
    sent = fx.assert_request_matches(case, "coinbase", url, body)
    assert sent["client_order_id"] == CID


def test_binance_fixture_has_the_cases_we_rely_on() -> None:
    counts = fx.case_counts("request", "binance")
    assert counts["createOrder"] >= len(BINANCE_CREATE)
    for method in ("cancelOrderWithClientOrderId", "fetchOrderWithClientOrderId", "fetchOrder"):
        assert counts[method] >= 1


# --------------------------------------------------------------------------- responses


@pytest.fixture
async def binance_replies() -> AsyncIterator[Any]:
    async for exchange in _offline("binance", "response"):
        yield exchange


async def test_binance_iceberg_create_response_parses_to_the_fixture(binance_replies: Any) -> None:
    case = fx.fixture_case(
        "response", "binance", "createOrder", "spot +selfTradePrevention +iceberg"
    )
    fx.stub_response(binance_replies, case["httpResponse"])
    call = create_order_args(ICEBERG, "binance", binance_replies.markets["SOL/USDT"])
    result = await binance_replies.create_order(**call)
    fx.assert_unified_equal(result, case["parsedResponse"])


async def test_binance_fetch_by_client_id_response_parses_to_the_fixture(
    binance_replies: Any,
) -> None:
    case = fx.fixture_case("response", "binance", "fetchOrder", "Fetch spot closed order")
    stored = case["parsedResponse"]
    fx.stub_response(binance_replies, case["httpResponse"])
    call = fetch_order_args(stored["clientOrderId"], "LTC/USDT", "binance")
    result = await binance_replies.fetch_order(**call)
    fx.assert_unified_equal(result, stored)
    assert (result["status"], result["filled"]) == ("closed", 0.1)


# --------------------------------------------------------------------------- rounding & rules


async def test_sell_price_rounds_up_where_ccxt_alone_would_round_to_nearest(binance: Any) -> None:
    market = binance.markets["LTC/USDT"]
    assert binance.price_to_precision("LTC/USDT", "55.321") == "55.32"  # ccxt: nearest tick
    call = create_order_args(order("LTC/USDT", SELL, "0.2009", "55.321"), "binance", market)
    assert (call.amount, call.price) == ("0.2", "55.33")
    _url, body = await fx.capture_request(binance.create_order(**call), binance)
    sent = fx.parse_query(body)
    assert (sent["quantity"], sent["price"], sent["side"]) == ("0.2", "55.33", "SELL")


def spot_market(**changes: Any) -> dict[str, Any]:
    """A binance-like spot market in ccxt's unified shape (tick-size precision)."""
    market: dict[str, Any] = {
        "symbol": "BTC/USDT",
        "type": "spot",
        "spot": True,
        "contract": False,
        "active": True,
        "precision": {"amount": 1e-05, "price": 0.01},
        "limits": {"amount": {"min": 1e-05}, "cost": {"min": 5}},
        "info": {"icebergAllowed": True},
    }
    market.update(changes)
    return market


def swap_market() -> dict[str, Any]:
    return spot_market(symbol="BTC/USDT:USDT", type="swap", spot=False, contract=True)


@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [(BUY, "100.019", "100.01"), (SELL, "100.011", "100.02"), (BUY, "100.01", "100.01")],
)
def test_limit_price_is_never_more_aggressive_than_asked(
    side: Side, price: str, expected: str
) -> None:
    call = create_order_args(order("BTC/USDT", side, "1.234569", price), "binance", spot_market())
    assert (call.amount, call.price) == ("1.23456", expected)


def test_plain_limit_order_call() -> None:
    call = create_order_args(order("BTC/USDT", BUY, "0.5", "60000.00"), "binance", spot_market())
    assert call == CcxtOrderCall("BTC/USDT", "limit", "buy", "0.5", "60000", {"clientOrderId": CID})


def test_market_order_sends_no_price_and_no_time_in_force() -> None:
    request_ = order("BTC/USDT", SELL, "0.5", "1", order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    call = create_order_args(request_, "binance", spot_market())
    assert (call.type, call.price, dict(call.params)) == ("market", None, {"clientOrderId": CID})


@pytest.mark.parametrize(
    ("request_", "market", "field"),
    [
        (order("BTC/USDT", BUY, "0.000009", "60000"), spot_market(), "qty"),
        (
            order("BTC/USDT", BUY, "0.00001", "60000", client_order_id=""),
            spot_market(),
            "client_order_id",
        ),
        (order("BTC/USDT", BUY, "1", "0.001"), spot_market(), "price"),  # rounds down to 0
        (order("BTC/USDT", BUY, "1", "60000", reduce_only=True), spot_market(), "reduce_only"),
        (
            order(
                "BTC/USDT", BUY, "1", None, order_type=OrderType.MARKET, tif=TimeInForce.POST_ONLY
            ),
            spot_market(),
            "time_in_force",
        ),
        (
            order("BTC/USDT", BUY, "1", "60000", params={"triggerPrice": "1"}),
            spot_market(),
            "params",
        ),
        (
            order("BTC/USDT", BUY, "1", "60000", client_order_id="x" * 37),
            spot_market(),
            "client_order_id",
        ),
        (
            order("BTC/USDT", BUY, "1", "60000", client_order_id="a b"),
            spot_market(),
            "client_order_id",
        ),
        (order("BTC/USDT", BUY, "1", "60000"), spot_market(active=False), "symbol"),
    ],
    ids=[
        "qty-rounds-to-zero",
        "empty-client-id",
        "price-rounds-to-zero",
        "reduce-only-on-spot",
        "post-only-market",
        "unlisted-param",
        "client-id-too-long",
        "client-id-charset",
        "inactive-market",
    ],
)
def test_orders_the_venue_would_reject_or_misread_are_refused_naming_the_field(
    request_: OrderRequest, market: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidOrder) as raised:
        create_order_args(request_, "binance", market)
    assert raised.value.field == field


def test_reduce_only_on_a_perpetual() -> None:
    request_ = order("BTC/USDT:USDT", SELL, "1", "60000", reduce_only=True)
    call = create_order_args(request_, "binance", swap_market())
    assert call.params["reduceOnly"] is True
    # ccxt's coinbase would turn it into a close-position call: refused
    with pytest.raises(InvalidOrder) as raised:
        create_order_args(request_, "coinbase", swap_market())
    assert raised.value.field == "reduce_only"


def test_coinbase_gets_our_client_id_through_its_native_param() -> None:
    """ccxt 4.5.90's coinbase omits the unified clientOrderId and sends a ccxt-<uuid> instead."""
    call = create_order_args(order("BTC/USDT", BUY, "1", "60000"), "coinbase", spot_market())
    assert dict(call.params) == {"client_order_id": CID}


def test_iceberg_display_is_rounded_down_and_fully_shown_orders_are_plain() -> None:
    call = create_order_args(
        order("BTC/USDT", BUY, "1", "60000", display_qty="0.123456"), "binance", spot_market()
    )
    assert call.params["icebergAmount"] == "0.12345"
    plain = create_order_args(
        order("BTC/USDT", BUY, "1", "60000", display_qty="1.5"), "binance", spot_market()
    )
    assert "icebergAmount" not in plain.params


def test_post_only_iceberg_is_allowed_on_binance_spot() -> None:
    request_ = order("BTC/USDT", BUY, "1", "60000", display_qty="0.2", tif=TimeInForce.POST_ONLY)
    call = create_order_args(request_, "binance", spot_market())
    assert (call.params["postOnly"], call.params["icebergAmount"]) == (True, "0.2")


@pytest.mark.parametrize(
    ("request_", "exchange_id", "market"),
    [
        # ccxt drops icebergAmount on binance derivatives: refuse rather than show it all
        (order("BTC/USDT:USDT", BUY, "1", "60000", display_qty="0.1"), "binance", swap_market()),
        (
            order("BTC/USDT", BUY, "1", "60000", display_qty="0.1", tif=TimeInForce.IOC),
            "binance",
            spot_market(),
        ),
        (
            order("BTC/USDT", BUY, "1", None, display_qty="0.1", order_type=OrderType.MARKET),
            "binance",
            spot_market(),
        ),
        (
            order("BTC/USDT", BUY, "1", "60000", display_qty="0.1"),
            "binance",
            spot_market(info={"icebergAllowed": False}),
        ),
        (order("BTC/USDT", BUY, "1", "60000", display_qty="0.1"), "coinbase", spot_market()),
        (order("BTC/USDT", BUY, "1", "60000", display_qty="0.000001"), "binance", spot_market()),
    ],
    ids=[
        "binance-swap",
        "ioc",
        "market",
        "not-allowed",
        "coinbase",
        "display-rounds-to-zero",
    ],
)
def test_impossible_icebergs_are_refused(
    request_: OrderRequest, exchange_id: str, market: dict[str, Any]
) -> None:
    with pytest.raises(InvalidOrder) as raised:
        create_order_args(request_, exchange_id, market)
    assert raised.value.field == "display_qty"


def test_wrong_market_and_unknown_exchange_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="market"):
        create_order_args(order("ETH/USDT", BUY, "1", "1"), "binance", spot_market())
    with pytest.raises(ValueError, match="unknown ccxt exchange"):
        create_order_args(order("BTC/USDT", BUY, "1", "60000"), "nosuchvenue", spot_market())
    with pytest.raises(NotImplementedError):
        cancel_order_args(CID, "BTC/USDT", "coinbase")  # ccxt's coinbase cancels by order id
    with pytest.raises(NotImplementedError, match="not been verified"):
        create_order_args(order("BTC/USDT", BUY, "1", "60000"), "okx", spot_market())
    with pytest.raises(ValueError):
        fetch_order_args("", "BTC/USDT", "binance")


def test_a_call_hands_ccxt_a_fresh_params_dict_each_time() -> None:
    call = create_order_args(order("BTC/USDT", BUY, "1", "60000"), "binance", spot_market())
    first = dict(**call)
    first["params"]["clientOrderId"] = "tampered"
    assert dict(**call)["params"] == {"clientOrderId": CID}
    with pytest.raises(TypeError):
        call.params["x"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.amount = "2"  # type: ignore[misc]
    ref = cancel_order_args(CID, "BTC/USDT", "binanceusdm")
    assert dict(**ref) == {"id": "", "symbol": "BTC/USDT", "params": {"clientOrderId": CID}}


# --------------------------------------------------------------------------- errors

ERRORS = [
    (ccxt.RequestTimeout, True, SubmitOutcomeUnknown),
    (ccxt.RequestTimeout, False, RetryableVenueError),
    (ccxt.NetworkError, True, SubmitOutcomeUnknown),
    (ccxt.NetworkError, False, VenueUnavailable),
    (ccxt.RateLimitExceeded, True, RateLimited),
    (ccxt.RateLimitExceeded, False, RateLimited),
    (ccxt.DDoSProtection, True, RateLimited),
    (ccxt.DDoSProtection, False, RateLimited),
    (ccxt.ExchangeNotAvailable, False, VenueUnavailable),
    (ccxt.ExchangeNotAvailable, True, SubmitOutcomeUnknown),  # HTTP 5xx: may have been placed
    (ccxt.OnMaintenance, True, VenueUnavailable),
    (ccxt.OnMaintenance, False, VenueUnavailable),
    (ccxt.InsufficientFunds, True, VenueRejected),
    (ccxt.InsufficientFunds, False, VenueRejected),
    (ccxt.InvalidOrder, True, VenueRejected),
    (ccxt.InvalidOrder, False, VenueRejected),
    (ccxt.OrderImmediatelyFillable, True, VenueRejected),  # post-only would cross
    (ccxt.DuplicateOrderId, True, VenueRejected),
    (ccxt.BadRequest, True, VenueRejected),
    (ccxt.BadRequest, False, VenueRejected),
    (ccxt.BadSymbol, True, VenueRejected),
    (ccxt.OrderNotFound, True, OrderNotFoundAtVenue),
    (ccxt.OrderNotFound, False, OrderNotFoundAtVenue),
    (ccxt.InvalidNonce, True, RetryableVenueError),
    (ccxt.AuthenticationError, True, VenueRejected),
    (ccxt.PermissionDenied, False, VenueRejected),
    (ccxt.NotSupported, True, VenueRejected),
    (ccxt.OperationFailed, True, SubmitOutcomeUnknown),
    (ccxt.OperationFailed, False, RetryableVenueError),
    (ccxt.BadResponse, True, SubmitOutcomeUnknown),
    (ccxt.ExchangeError, True, SubmitOutcomeUnknown),
    (ccxt.ExchangeError, False, VenueRejected),
    (TimeoutError, True, SubmitOutcomeUnknown),
    (TimeoutError, False, RetryableVenueError),
    (ConnectionResetError, True, SubmitOutcomeUnknown),
    (ConnectionResetError, False, VenueUnavailable),
    (KeyError, True, SubmitOutcomeUnknown),
    (KeyError, False, VenueError),
]


@pytest.mark.parametrize(
    ("ccxt_error", "submit", "expected"),
    ERRORS,
    ids=[f"{e.__name__}-{'submit' if s else 'other'}" for e, s, _ in ERRORS],
)
def test_ccxt_errors_translate_by_retry_safety(
    ccxt_error: type[Exception], submit: bool, expected: type[VenueError]
) -> None:
    error = translate_ccxt_error(ccxt_error("boom"), "binance", submit=submit)
    assert type(error) is expected
    assert error.venue == "binance"
    assert ccxt_error.__name__ in str(error) and "boom" in str(error)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (-2010, "Account has insufficient balance for requested action.", VenueRejected),
        (-2010, "Order would immediately match and take.", VenueRejected),
        (-1013, "Filter failure: NOTIONAL", VenueRejected),
        (-2013, "Order does not exist.", OrderNotFoundAtVenue),
        (-1003, "Too many requests", RateLimited),
        (-1021, "Timestamp for this request is outside of the recvWindow.", RetryableVenueError),
        (-1007, "Timeout waiting for response from backend server.", SubmitOutcomeUnknown),
        (-1000, "An unknown error occurred while processing the request.", SubmitOutcomeUnknown),
    ],
)
async def test_real_binance_error_replies_through_ccxt_on_a_submit(
    binance: Any, code: int, message: str, expected: type[VenueError]
) -> None:
    body = json.dumps({"code": code, "msg": message})
    url = "https://api.binance.com/api/v3/order"
    with pytest.raises(ccxt.BaseError) as raised:
        binance.handle_errors(400, "Bad Request", url, "POST", {}, body, json.loads(body), {}, "")
    assert type(translate_ccxt_error(raised.value, "binance", submit=True)) is expected


@pytest.mark.parametrize(
    ("status", "expected"), [(503, SubmitOutcomeUnknown), (504, SubmitOutcomeUnknown)]
)
async def test_binance_http_5xx_on_a_submit_is_an_unknown_outcome(
    binance: Any, status: int, expected: type[VenueError]
) -> None:
    url = "https://api.binance.com/api/v3/order"
    with pytest.raises(ccxt.NetworkError) as raised:
        binance.handle_http_status_code(status, "Service Unavailable", url, "POST", "<html/>")
    assert type(translate_ccxt_error(raised.value, "binance", submit=True)) is expected
    assert isinstance(
        translate_ccxt_error(raised.value, "binance", submit=False), RetryableVenueError
    )
