"""Protective puts through ccxt on Deribit, offline: ccxt's own Deribit code parses the markets and
builds the requests; only the HTTP exchange is answered here.

There are no Deribit fixtures in ccxt's test data shipped with this project, so the answers are
**derived** from Deribit's API documentation (``public/get_instruments``, ``private/buy``,
``private/get_open_orders_by_instrument``): a BTC put, inverse (premium in BTC, settled in BTC),
one contract per BTC. What is checked is our side of the boundary: the instrument we describe,
the request ccxt sends for our order (our client id as Deribit's ``label``), the fills we read,
and finding an order again by its label.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt.async_support as ccxt_async
import pytest

from ems.clock import TestClock
from ems.domain import (
    InstrumentKind,
    Liquidity,
    OptionRight,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
)
from ems.errors import VenueRejected
from ems.ports import VenueOrderStatus
from ems.venues.ccxt_venue import CcxtVenue, CcxtVenueOptions, RetryPolicy
from risk.put_policy import PutPolicy, choose_put

NOW = datetime(2024, 8, 9, tzinfo=UTC)
STAMP = int(NOW.timestamp() * 1000)
SYMBOL = "BTC/USD:BTC-241227-55000-P"
NAME = "BTC-27DEC24-55000-P"
INSTRUMENT = {  # one entry of public/get_instruments (derived from Deribit's documentation)
    "tick_size": 0.0005,
    "taker_commission": 0.0003,
    "maker_commission": 0.0003,
    "strike": 55000.0,
    "settlement_period": "month",
    "settlement_currency": "BTC",
    "quote_currency": "BTC",
    "counter_currency": "USD",
    "base_currency": "BTC",
    "price_index": "btc_usd",
    "option_type": "put",
    "min_trade_amount": 0.1,
    "kind": "option",
    "is_active": True,
    "instrument_name": NAME,
    "instrument_id": 1,
    "expiration_timestamp": 1735286400000,
    "creation_timestamp": 1719475200000,
    "contract_size": 1.0,
    "rfq": False,
}


def _order(label: str, state: str, filled: float, direction: str = "buy") -> dict[str, Any]:
    return {
        "order_id": "BTC-123",
        "label": label,
        "instrument_name": NAME,
        "direction": direction,
        "order_type": "limit",
        "order_state": state,
        "time_in_force": "immediate_or_cancel",
        "price": 0.0355,
        "amount": 0.1,
        "filled_amount": filled,
        "average_price": 0.0355 if filled else 0,
        "reduce_only": False,
        "post_only": False,
        "api": True,
        "web": False,
        "replaced": False,
        "is_liquidation": False,
        "creation_timestamp": STAMP,
        "last_update_timestamp": STAMP,
    }


TRADE = {
    "trade_id": "BTC-9",
    "trade_seq": 1,
    "order_id": "BTC-123",
    "label": "P1-1",
    "instrument_name": NAME,
    "direction": "buy",
    "order_type": "limit",
    "state": "filled",
    "price": 0.0355,
    "amount": 0.1,
    "fee": 0.00003,
    "fee_currency": "BTC",
    "liquidity": "T",
    "index_price": 60000.0,
    "mark_price": 0.035,
    "tick_direction": 0,
    "timestamp": STAMP,
}


class Deribit:
    """Stands in for Deribit's HTTP API: answers by path and keeps every request's query."""

    def __init__(self, exchange: Any) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        exchange.fetch = self.fetch

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        parts = urlsplit(url)
        self.requests.append((parts.path, parse_qs(parts.query)))
        answers: dict[str, Any] = {
            "/api/v2/public/get_currencies": [],
            "/api/v2/public/get_instruments": [INSTRUMENT],
            "/api/v2/private/buy": {"order": _order("P1-1", "filled", 0.1), "trades": [TRADE]},
            "/api/v2/private/sell": {"order": _order("P1-3", "open", 0, "sell"), "trades": []},
            "/api/v2/private/get_open_orders_by_instrument": [_order("P1-2", "open", 0)],
        }
        if parts.path not in answers:
            raise AssertionError(f"unexpected request {url}")
        return {"jsonrpc": "2.0", "result": answers[parts.path]}

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@pytest.fixture
async def deribit() -> AsyncIterator[tuple[CcxtVenue, Deribit]]:
    exchange = ccxt_async.deribit(
        {"apiKey": "key", "secret": "secretsecret", "enableRateLimit": False}
    )
    wire = Deribit(exchange)
    venue = CcxtVenue(
        "deribit",
        exchange,
        symbols=(SYMBOL,),
        clock=TestClock(NOW),
        options=CcxtVenueOptions(
            retry=RetryPolicy(attempts=2, initial_wait_s=0, max_wait_s=0), websocket=False
        ),
    )
    await venue.start()
    try:
        yield venue, wire
    finally:
        await venue.close()


def _request(venue: CcxtVenue, cid: str, side: Side, **changes: Any) -> OrderRequest:
    values: dict[str, Any] = {
        "client_order_id": cid,
        "venue": venue.name,
        "symbol": SYMBOL,
        "side": side,
        "qty": Decimal("0.1"),
        "order_type": OrderType.LIMIT,
        "price": Decimal("0.0355"),
        "time_in_force": TimeInForce.IOC,
    }
    values.update(changes)
    return OrderRequest(**values)


async def test_a_deribit_put_is_described_with_its_strike_expiry_and_inverse_settlement(
    deribit: tuple[CcxtVenue, Deribit],
) -> None:
    venue, _ = deribit

    put = venue.instruments()[SYMBOL]

    assert (put.kind, put.right, put.strike) == (
        InstrumentKind.OPTION,
        OptionRight.PUT,
        Decimal(55000),
    )
    assert put.expiry == datetime(2024, 12, 27, 8, tzinfo=UTC)
    assert (put.base, put.quote, put.settle) == ("BTC", "USD", "BTC")
    assert (put.tick_size, put.lot_size, put.min_qty, put.contract_size) == (
        Decimal("0.0005"),
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal(1),
    )
    # The put policy picks it: highest strike at least 10 % below 62,000, 30 days or more out.
    policy = PutPolicy(strike_below_spot_pct=Decimal(10), min_days_to_expiry=30)
    assert choose_put([put], Decimal(62_000), NOW, policy) == put
    assert choose_put([put], Decimal(62_000), put.expiry - timedelta(days=29), policy) is None


async def test_a_put_buy_carries_our_client_id_as_deribits_label_and_its_fill_is_read_exactly(
    deribit: tuple[CcxtVenue, Deribit],
) -> None:
    venue, wire = deribit

    state = await venue.submit(_request(venue, "P1-1", Side.BUY))

    path, query = wire.requests[-1]
    assert path == "/api/v2/private/buy"
    assert query == {
        "instrument_name": [NAME],
        "amount": ["0.1"],
        "type": ["limit"],
        "price": ["0.0355"],
        "time_in_force": ["immediate_or_cancel"],
        "label": ["P1-1"],
    }
    assert (state.status, state.filled_qty) == (VenueOrderStatus.FILLED, Decimal("0.1"))
    [fill] = state.fills
    assert (fill.price, fill.qty, fill.fee, fill.fee_currency, fill.liquidity) == (
        Decimal("0.0355"),
        Decimal("0.1"),
        Decimal("0.00003"),
        "BTC",
        Liquidity.TAKER,
    )


async def test_releasing_a_put_is_sent_reduce_only(deribit: tuple[CcxtVenue, Deribit]) -> None:
    venue, wire = deribit

    await venue.submit(
        _request(venue, "P1-3", Side.SELL, time_in_force=TimeInForce.GTC, reduce_only=True)
    )

    path, query = wire.requests[-1]
    assert path == "/api/v2/private/sell"
    assert query["reduce_only"] == ["true"] and query["label"] == ["P1-3"]


async def test_an_order_is_found_again_by_its_label_among_the_open_orders(
    deribit: tuple[CcxtVenue, Deribit],
) -> None:
    venue, wire = deribit

    state = await venue.fetch_order("P1-2", SYMBOL)

    assert (state.client_order_id, state.venue_order_id, state.status) == (
        "P1-2",
        "BTC-123",
        VenueOrderStatus.OPEN,
    )
    assert wire.paths()[-1] == "/api/v2/private/get_open_orders_by_instrument"


async def test_a_client_id_longer_than_a_deribit_label_is_refused_before_sending(
    deribit: tuple[CcxtVenue, Deribit],
) -> None:
    venue, wire = deribit
    sent = len(wire.requests)

    with pytest.raises(VenueRejected, match="client_order_id"):
        await venue.submit(_request(venue, "P" * 65, Side.BUY))

    assert len(wire.requests) == sent
