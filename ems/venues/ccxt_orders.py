"""Translate EMS orders into ccxt unified calls, and ccxt exceptions into EMS errors.

Pure translation: nothing here touches the network. The venue adapter calls
``exchange.create_order(**create_order_args(request, exchange_id, market))`` (and likewise
``cancel_order`` / ``fetch_order`` with ``cancel_order_args`` / ``fetch_order_args``) and maps
whatever ccxt raises through ``translate_ccxt_error``.

Quantities and prices leave as decimal strings already on the venue's grid, rounded with an
explicit direction: the amount always DOWN to the amount step (never trade more than asked), a
limit price DOWN for buys and UP for sells (never more aggressive than asked). ccxt's own
``amount_to_precision`` / ``price_to_precision`` are then no-ops; without this pre-rounding ccxt
would round prices to the NEAREST tick, which can cross a buy up by half a tick.

Exchange-specific features go through ccxt's unified params, checked against ccxt 4.5.90:

* our deterministic client order id: ccxt's ``clientOrderId`` on binance (sent as
  ``newClientOrderId``); on coinbase ccxt DROPS ``clientOrderId`` and sends a generated
  ``ccxt-<uuid>``, so the native ``client_order_id`` is passed instead. Exchanges whose
  client-id handling has not been checked this way are refused (``NotImplementedError``): an
  order the venue knows under another id cannot be reconciled, and a re-send would duplicate it.
* ``timeInForce: "IOC"``; ``postOnly: True`` (binance spot: ``LIMIT_MAKER``; futures: ``GTX``).
* ``reduceOnly: True`` on binance derivatives only (binance spot would reject the unknown
  parameter; ccxt's coinbase turns a reduce-only order into a close-position call).
* native iceberg: ``icebergAmount`` on binance spot, sent as ``icebergQty``. ccxt silently drops
  it on binance derivatives, so a display size there is refused instead of being ignored.
* cancel / fetch by client id: ``id=""`` and ``params={"clientOrderId": ...}``; binance sends
  ``origClientOrderId`` (``clientOrderId`` on options).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import ccxt

from ems.domain import OrderRequest, OrderType, Rounding, Side, TimeInForce, round_to_step
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

__all__ = [
    "PASSTHROUGH_PARAMS",
    "CcxtOrderCall",
    "CcxtOrderRefCall",
    "cancel_order_args",
    "create_order_args",
    "fetch_order_args",
    "translate_ccxt_error",
]

# Venue-specific extras an ``OrderRequest.params`` may carry straight into ccxt. An allow-list,
# not a deny-list: anything else could silently change what the order is (``triggerPrice``
# turns a limit into a stop, ``marginMode`` borrows, ``test`` never trades). Extend deliberately.
PASSTHROUGH_PARAMS: frozenset[str] = frozenset({"selfTradePrevention"})

# Binance client order ids: 1 to 36 characters from this set (API docs, ``newClientOrderId``).
_BINANCE_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
# Deribit's ``label``: a user-defined order label of at most 64 characters (API docs,
# private/buy); ccxt's deribit create_order passes it through as is and echoes it in ``info``.
_DERIBIT_LABEL = re.compile(r"^[!-~]{1,64}$")


@dataclass(frozen=True, slots=True)
class _VenueRules:
    """What has been checked, in ccxt 4.5.90's source and fixtures, for one exchange family."""

    client_id_param: str  # create_order param that ccxt actually sends as the client id
    client_id_pattern: re.Pattern[str] | None
    reduce_only: bool  # unified reduceOnly sent as such on derivatives
    spot_iceberg: bool  # unified icebergAmount honoured on spot markets
    lookup_by_client_id: bool  # cancel_order / fetch_order honour params["clientOrderId"]


# keyed by ccxt base class: binanceusdm, binancecoinm and binanceus subclass ccxt.binance
_RULES: tuple[tuple[type[Any], _VenueRules], ...] = (
    (ccxt.binance, _VenueRules("clientOrderId", _BINANCE_CLIENT_ID, True, True, True)),
    (ccxt.coinbase, _VenueRules("client_order_id", None, False, False, False)),
    # deribit: reduceOnly → reduce_only; no client-id lookup (orders are found by label in the
    # open orders, order history and trades); max_show (iceberg) is not mapped by ccxt
    (ccxt.deribit, _VenueRules("label", _DERIBIT_LABEL, True, False, False)),
)

_CALL_KEYS = ("symbol", "type", "side", "amount", "price", "params")
_REF_KEYS = ("id", "symbol", "params")


@dataclass(frozen=True, slots=True)
class CcxtOrderCall:
    """Arguments of ccxt's unified ``create_order(symbol, type, side, amount, price, params)``.

    Unpacks as keyword arguments: ``await exchange.create_order(**call)``; each unpacking hands
    ccxt a fresh ``params`` dict, so nothing ccxt does can change this value.
    """

    symbol: str
    type: str
    side: str
    amount: str
    price: str | None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def keys(self) -> tuple[str, ...]:
        """Names of ``create_order``'s arguments, so that ``**call`` works."""
        return _CALL_KEYS

    def __getitem__(self, key: str) -> Any:
        if key == "params":
            return dict(self.params)
        if key in _CALL_KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_CALL_KEYS)


@dataclass(frozen=True, slots=True)
class CcxtOrderRefCall:
    """Arguments of ccxt's unified ``cancel_order`` / ``fetch_order(id, symbol, params)``.

    ``id`` is empty when the order is addressed by client order id (in ``params``), which is
    how ccxt's own ``cancel_order_with_client_order_id`` calls ``cancel_order``.
    """

    id: str
    symbol: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def keys(self) -> tuple[str, ...]:
        """Names of ``cancel_order``'s / ``fetch_order``'s arguments, so ``**call`` works."""
        return _REF_KEYS

    def __getitem__(self, key: str) -> Any:
        if key == "params":
            return dict(self.params)
        if key in _REF_KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_REF_KEYS)


# --------------------------------------------------------------------------- exchange facts


@functools.cache
def _exchange_class(exchange_id: str) -> type[Any]:
    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"unknown ccxt exchange id {exchange_id!r}")
    cls: type[Any] = getattr(ccxt, exchange_id)
    return cls


@functools.cache
def _precision_mode(exchange_id: str) -> int:
    # precisionMode lives in the instance's describe() data, not on the class
    mode: int = _exchange_class(exchange_id)().precisionMode
    return mode


def _rules(exchange_id: str) -> _VenueRules:
    cls = _exchange_class(exchange_id)
    for base, rules in _RULES:
        if issubclass(cls, base):
            return rules
    raise NotImplementedError(
        f"{exchange_id}: how ccxt passes our client order id (and the other params) has not "
        "been verified for this exchange; check its ccxt source and fixtures, then add it"
    )


def _to_decimal(value: object, what: str) -> Decimal:
    try:
        # str() first: Decimal(0.1) would carry the binary float's full expansion
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{what}: {value!r} is not a number") from exc


def _step(market: Mapping[str, Any], key: str, exchange_id: str) -> Decimal:
    """The grid step of ``key`` ("amount" or "price") of a ccxt market, as a Decimal."""
    raw = (market.get("precision") or {}).get(key)
    what = f"{exchange_id} {market.get('symbol')} {key} precision"
    if raw is None:
        raise ValueError(f"{what} is unknown; refusing to guess the grid")
    mode = _precision_mode(exchange_id)
    if mode == ccxt.TICK_SIZE:
        step = _to_decimal(raw, what)
    elif mode == ccxt.DECIMAL_PLACES:
        step = Decimal(1).scaleb(-int(_to_decimal(raw, what)))
    else:
        raise NotImplementedError(f"{what}: precision mode {mode} (significant digits)")
    if step <= 0:
        raise ValueError(f"{what} must be positive, got {raw!r}")
    return step


def _plain(value: Decimal) -> str:
    """Fixed-point text without exponent or trailing zeros: ``241.00`` -> ``241``."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


# --------------------------------------------------------------------------- create


def create_order_args(
    request: OrderRequest, exchange_id: str, market: Mapping[str, Any]
) -> CcxtOrderCall:
    """Translate ``request`` into ccxt's unified ``create_order`` arguments for ``market``.

    ``market`` is ccxt's unified market structure (``exchange.markets[symbol]``). Raises
    ``InvalidOrder`` (naming the field) when the order cannot be sent as asked: it rounds to
    nothing, or asks for something (reduce-only on spot, a native iceberg where ccxt cannot
    express one, an unlisted venue param) that ccxt would drop or that would change the order.
    Venue minimums (quantity, notional, iceberg parts) are not re-checked here: they belong to
    pre-trade validation (``Instrument.validate_order``), and the venue's own refusal arrives as
    ``VenueRejected``. ``ValueError`` means the market data itself is unusable.
    """
    symbol = market.get("symbol")
    if symbol != request.symbol:
        raise ValueError(f"market {symbol!r} given for an order on {request.symbol!r}")
    where = f"{symbol} on {exchange_id}"
    if market.get("active") is False:
        raise InvalidOrder(f"{where} is not active", field="symbol")

    rules = _rules(exchange_id)
    client_order_id = request.client_order_id
    if not client_order_id:
        raise InvalidOrder("client_order_id must not be empty", field="client_order_id")
    if rules.client_id_pattern is not None and not rules.client_id_pattern.match(client_order_id):
        raise InvalidOrder(
            f"client_order_id {client_order_id!r} does not fit {exchange_id}'s rule "
            f"{rules.client_id_pattern.pattern}",
            field="client_order_id",
        )

    amount_step = _step(market, "amount", exchange_id)
    if request.qty <= 0:
        raise InvalidOrder(f"quantity must be positive, got {request.qty}", field="qty")
    amount = round_to_step(request.qty, amount_step, Rounding.DOWN)
    if amount <= 0:
        raise InvalidOrder(
            f"quantity {request.qty} rounds down to 0 at the amount step {amount_step} of {where}",
            field="qty",
        )

    params: dict[str, Any] = {rules.client_id_param: client_order_id}
    price: Decimal | None = None
    if request.order_type is OrderType.LIMIT:
        if request.price is None or request.price <= 0:
            raise InvalidOrder(
                f"a limit order needs a positive price, got {request.price}", field="price"
            )
        tick = _step(market, "price", exchange_id)
        passive = Rounding.DOWN if request.side is Side.BUY else Rounding.UP
        price = round_to_step(request.price, tick, passive)
        if price <= 0:
            raise InvalidOrder(
                f"price {request.price} rounds down to 0 at the tick {tick} of {where}",
                field="price",
            )
        if request.time_in_force is TimeInForce.IOC:
            params["timeInForce"] = "IOC"
        elif request.time_in_force is TimeInForce.POST_ONLY:
            params["postOnly"] = True
    elif request.time_in_force is TimeInForce.POST_ONLY:
        raise InvalidOrder("a market order cannot be post-only", field="time_in_force")
    # A market order is immediate by nature: binance refuses a timeInForce on it, and the price
    # is left out on purpose (ccxt would turn a binance spot market buy with a price into a
    # quote-currency order, amount x price, instead of a base quantity).

    if request.reduce_only:
        if not market.get("contract"):
            raise InvalidOrder(
                f"reduce-only applies to derivatives; {where} is {market.get('type')}",
                field="reduce_only",
            )
        if not rules.reduce_only:
            raise InvalidOrder(
                f"reduce-only orders are not supported through ccxt for {where}",
                field="reduce_only",
            )
        params["reduceOnly"] = True

    if request.display_qty is not None:
        params.update(_iceberg_params(request, rules, exchange_id, market, amount, amount_step))

    for key, value in request.params.items():
        if key not in PASSTHROUGH_PARAMS:
            raise InvalidOrder(
                f"venue param {key!r} is not allowed (allowed: {sorted(PASSTHROUGH_PARAMS)})",
                field="params",
            )
        params[key] = value

    return CcxtOrderCall(
        symbol=symbol,
        type=request.order_type.value,
        side=request.side.value,
        amount=_plain(amount),
        price=None if price is None else _plain(price),
        params=params,
    )


def _iceberg_params(
    request: OrderRequest,
    rules: _VenueRules,
    exchange_id: str,
    market: Mapping[str, Any],
    amount: Decimal,
    amount_step: Decimal,
) -> dict[str, Any]:
    """ccxt's unified iceberg param for ``request.display_qty``, or ``{}`` if fully shown."""
    display_qty = request.display_qty
    assert display_qty is not None
    where = f"{market.get('symbol')} on {exchange_id}"
    if display_qty <= 0:
        raise InvalidOrder(
            f"display quantity must be positive, got {display_qty}", field="display_qty"
        )
    if request.order_type is not OrderType.LIMIT:
        raise InvalidOrder("a native iceberg must be a limit order", field="display_qty")
    if request.time_in_force is TimeInForce.IOC:
        raise InvalidOrder("a native iceberg cannot be immediate-or-cancel", field="display_qty")
    display = round_to_step(display_qty, amount_step, Rounding.DOWN)
    if display >= amount:
        return {}  # the whole order fits in the display size: a plain order shows it all
    if not (rules.spot_iceberg and market.get("spot")):
        raise InvalidOrder(
            f"native iceberg orders are not available through ccxt for {where} "
            "(ccxt sends icebergQty on binance spot only)",
            field="display_qty",
        )
    if (market.get("info") or {}).get("icebergAllowed") is False:
        raise InvalidOrder(f"{where} does not allow iceberg orders", field="display_qty")
    if display <= 0:
        raise InvalidOrder(
            f"display quantity {display_qty} rounds down to 0 at the amount step {amount_step} "
            f"of {where}",
            field="display_qty",
        )
    return {"icebergAmount": _plain(display)}


# --------------------------------------------------------------------------- cancel / fetch


def _by_client_id(client_order_id: str, symbol: str, exchange_id: str) -> CcxtOrderRefCall:
    if not client_order_id:
        raise ValueError("client_order_id must not be empty")
    if not symbol:
        raise ValueError("symbol is required to address an order by client id")
    if not _rules(exchange_id).lookup_by_client_id:
        raise NotImplementedError(
            f"{exchange_id}: cancel/fetch by client order id through ccxt is not verified"
        )
    return CcxtOrderRefCall(id="", symbol=symbol, params={"clientOrderId": client_order_id})


def cancel_order_args(client_order_id: str, symbol: str, exchange_id: str) -> CcxtOrderRefCall:
    """ccxt ``cancel_order`` arguments that cancel our order by its client order id.

    Binance sends ``origClientOrderId``. Raises ``NotImplementedError`` for exchanges where
    addressing by client id has not been checked against ccxt (coinbase: ccxt cancels by
    venue order id only).
    """
    return _by_client_id(client_order_id, symbol, exchange_id)


def fetch_order_args(client_order_id: str, symbol: str, exchange_id: str) -> CcxtOrderRefCall:
    """ccxt ``fetch_order`` arguments that look our order up by its client order id.

    This is the reconciliation path for a submit whose outcome is unknown. Binance sends
    ``origClientOrderId``; an unknown id comes back as ``ccxt.OrderNotFound``.
    """
    return _by_client_id(client_order_id, symbol, exchange_id)


# --------------------------------------------------------------------------- errors


def translate_ccxt_error(exc: Exception, venue: str, *, submit: bool) -> VenueError:
    """Map an exception raised by a ccxt call on ``venue`` to our error, typed by retry safety.

    ``submit`` says whether the failed call placed an order. Whenever the request may have
    reached the venue without us learning the result, a submit becomes
    ``SubmitOutcomeUnknown`` (reconcile by client order id, never re-send) while a read or a
    cancel is retryable. Raise the result ``from exc`` to keep ccxt's traceback.

    ===================================  ====================  ====================
    ccxt exception                       on a submit           other calls
    ===================================  ====================  ====================
    OrderNotFound                        OrderNotFoundAtVenue  OrderNotFoundAtVenue
    RateLimitExceeded, DDoSProtection    RateLimited           RateLimited
    OnMaintenance                        VenueUnavailable      VenueUnavailable
    ExchangeNotAvailable (HTTP 5xx)      SubmitOutcomeUnknown  VenueUnavailable
    InvalidNonce (outside recvWindow)    RetryableVenueError   RetryableVenueError
    RequestTimeout                       SubmitOutcomeUnknown  RetryableVenueError
    other NetworkError                   SubmitOutcomeUnknown  VenueUnavailable
    other OperationFailed                SubmitOutcomeUnknown  RetryableVenueError
    InsufficientFunds, InvalidOrder,     VenueRejected         VenueRejected
    BadRequest, AuthenticationError,
    NotSupported, ArgumentsRequired,
    OperationRejected,
    InvalidProxySettings (never sent)
    any other ExchangeError              SubmitOutcomeUnknown  VenueRejected
    ===================================  ====================  ====================

    ExchangeNotAvailable is not retryable on a submit: ccxt raises it for HTTP 500/502/503
    (Binance documents a 503 on order entry as "execution status UNKNOWN") and for any
    aiohttp ``ClientConnectionError``, including a connection dropped after the order was
    written. A bare ExchangeError on a submit is unknown too: async ccxt raises one for any other
    aiohttp ``ClientError`` (e.g. a reply cut off mid-body) and for venue codes it cannot
    classify. Binance's -1000 (unknown error) and -1006 (unexpected response, status unknown)
    arrive as OperationFailed, -1007 (backend timeout) as RequestTimeout. A non-ccxt
    ``TimeoutError`` or ``OSError`` counts as a network error; any other exception (a parse
    failure after the venue answered, say) as unknown on a submit and unclassified otherwise.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFoundAtVenue(venue, detail)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimited(venue, detail)
    if isinstance(exc, ccxt.OnMaintenance):
        return VenueUnavailable(venue, detail)
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return SubmitOutcomeUnknown(venue, detail) if submit else VenueUnavailable(venue, detail)
    if isinstance(exc, ccxt.InvalidNonce):
        return RetryableVenueError(venue, detail)
    if isinstance(exc, ccxt.RequestTimeout | TimeoutError):
        return SubmitOutcomeUnknown(venue, detail) if submit else RetryableVenueError(venue, detail)
    if isinstance(exc, ccxt.NetworkError | OSError):
        return SubmitOutcomeUnknown(venue, detail) if submit else VenueUnavailable(venue, detail)
    if isinstance(exc, ccxt.OperationFailed):
        return SubmitOutcomeUnknown(venue, detail) if submit else RetryableVenueError(venue, detail)
    if isinstance(
        exc,
        ccxt.InsufficientFunds
        | ccxt.InvalidOrder
        | ccxt.BadRequest
        | ccxt.AuthenticationError
        | ccxt.NotSupported
        | ccxt.ArgumentsRequired
        | ccxt.OperationRejected
        | ccxt.InvalidProxySettings,
    ):
        return VenueRejected(venue, detail)
    if isinstance(exc, ccxt.ExchangeError):
        return SubmitOutcomeUnknown(venue, detail) if submit else VenueRejected(venue, detail)
    return SubmitOutcomeUnknown(venue, detail) if submit else VenueError(venue, detail)
