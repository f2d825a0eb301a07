"""Real exchanges through ccxt (async): the ``VenuePort`` adapter for live trading.

Orders
    ``submit`` translates the request with ``ccxt_orders.create_order_args`` and calls
    ``create_order`` exactly once: it is NEVER retried, here or inside ccxt (its
    ``maxRetriesOnFailure`` is forced to 0). A timeout or a dropped connection raises
    ``SubmitOutcomeUnknown``; the manager then reconciles the order by client id. ``cancel`` and
    ``fetch_order`` address the order by our client order id (``cancel_order_args`` /
    ``fetch_order_args``); on an exchange where ccxt cannot do that, the order is looked for in
    the open orders, then the closed orders, then our trades, by ``clientOrderId``.

Fills
    A ``VenueOrderState`` carries every fill of the order with the venue's trade id, exact
    ``Decimal`` price, quantity and fee, fee currency, maker/taker (taker when the venue does not
    say: the costlier assumption) and an aware UTC time. When the order reply does not hold them
    (binance's GET order never does) they are read with ``fetch_order_trades`` or
    ``fetch_my_trades``. If the venue says an order is finished but its trade list does not yet
    add up to the filled quantity, the state is reported OPEN with a reason: a finished child
    must never be closed with fills missing. Fill trade ids are
    ``"<unified symbol>#<venue trade id>"`` because binance numbers trades per market.

Retries
    Idempotent calls (markets, order book, trades, balance, open orders, my trades, fetch order,
    cancel by client id) are retried with tenacity on ``RetryableVenueError`` (rate limited,
    unavailable, timeouts and network errors on reads) for ``RetryPolicy.attempts`` attempts in
    all, with exponential back-off; anything else is raised at once, translated by
    ``translate_ccxt_error``.

Updates
    Orders this process submitted or looked up while working are tracked. ``drain_updates``
    returns what changed since the last call: from ``watch_orders`` when the exchange streams
    them, and in any case from a REST pass over the tracked orders (``poll_orders``) started in
    the background at most every ``order_poll_interval``.

Market data
    ``order_book`` uses ``watch_order_book`` when the exchange streams it (a watcher task per
    symbol, started on first use) and ``fetch_order_book`` otherwise or while the streamed book
    is older than ``book_max_age``. A book that cannot be refreshed is still returned with its
    real (old) timestamp, so the caller can see it is stale. ``traded_volume`` sums a tape of
    public trades kept from ``fetch_trades``. Streamed trades are not mixed in: binance's trade
    stream and its REST aggTrades number trades differently, so merging them would double count.

Secrets
    API keys come from environment variables whose NAMES are configured (``create``); they live
    only inside the ccxt exchange object. They never appear in ``repr``, and every record that
    goes through the venue's logger (which is also the exchange's logger, where ccxt writes
    request headers at DEBUG level) has them replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ems.clock import Clock, LiveClock
from ems.domain import (
    ZERO,
    Balance,
    BookLevel,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OptionRight,
    OrderBook,
    OrderRequest,
    OrderType,
    Side,
    ensure_utc,
)
from ems.errors import (
    InvalidOrder,
    OrderNotFoundAtVenue,
    RetryableVenueError,
    SubmitOutcomeUnknown,
    VenueError,
    VenueRejected,
)
from ems.ports import VenueOrderState, VenueOrderStatus
from ems.venues.ccxt_orders import (
    _step as market_step,  # the grid step of a ccxt market, shared with order translation
)
from ems.venues.ccxt_orders import (
    cancel_order_args,
    create_order_args,
    fetch_order_args,
    translate_ccxt_error,
)
from ems.venues.replay import Trade

if TYPE_CHECKING:
    from ems.settings import CcxtVenueSettings

__all__ = [
    "CcxtVenue",
    "CcxtVenueOptions",
    "CredentialsMissing",
    "RetryPolicy",
    "VenueTrade",
    "exchange_ids",
]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = {
    "spot": InstrumentKind.SPOT,
    "swap": InstrumentKind.PERPETUAL,
    "future": InstrumentKind.FUTURE,
    "option": InstrumentKind.OPTION,
}
_STATUS = {
    "open": VenueOrderStatus.OPEN,
    "closed": VenueOrderStatus.FILLED,
    "canceled": VenueOrderStatus.CANCELLED,
    "cancelled": VenueOrderStatus.CANCELLED,
    "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
}
# ccxt's binance answers fetch_trades(since) with aggTrades from startTime to startTime + 1 h
# (endTime, inclusive), so a short page only means "nothing more in that hour".
_BINANCE_TRADES_WINDOW_MS = 3_600_000
# Keys under which venues echo our client order id in an order or a trade (or its ``info``);
# deribit's is its order ``label``.
_CLIENT_ID_KEYS = ("clientOrderId", "client_order_id", "clientOid", "newClientOrderId", "label")
_MIN_SECRET_LEN = 6  # shorter credentials (test dummies) would only blank out ordinary words


def exchange_ids() -> frozenset[str]:
    """Every exchange id the installed ccxt knows (``ccxt.exchanges``)."""
    return frozenset(ccxt.exchanges)


class CredentialsMissing(ValueError):
    """An API key or secret environment variable is unset; the message names the VARIABLE."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How idempotent calls are retried: ``attempts`` in all (the first one included), waiting
    ``initial_wait_s * 2**(n-1)`` seconds after the n-th failure, at most ``max_wait_s``."""

    attempts: int = 4
    initial_wait_s: float = 0.25
    max_wait_s: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError("waits must not be negative")


@dataclass(frozen=True, slots=True)
class CcxtVenueOptions:
    """Tuning of a ``CcxtVenue``.

    ``websocket``: use ccxt's streams (``watch_*``) where the exchange has them.
    ``rest_book_reuse``: a REST book fetched this recently (at least as deep) answers again
    instead of a new request (the manager and the router both read books every step).
    ``trades_page_limit`` / ``max_pages``: size of one ``fetch_trades``/``fetch_my_trades`` page
    and the most pages one sync reads. ``tape_retention``: how far back ``traded_volume`` counts;
    an older ``since`` is clamped to it (and logged). ``recent_trades``: public trades kept for
    ``public_trades`` (paper trading).
    """

    book_max_age: timedelta = timedelta(seconds=5)
    rest_book_reuse: timedelta = timedelta(milliseconds=250)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    websocket: bool = True
    order_poll_interval: timedelta = timedelta(seconds=2)
    trades_poll_interval: timedelta = timedelta(seconds=1)
    trades_page_limit: int = 1000
    max_pages: int = 30
    tape_retention: timedelta = timedelta(hours=6)
    recent_trades: int = 10_000

    def __post_init__(self) -> None:
        if self.book_max_age <= timedelta(0):
            raise ValueError("book_max_age must be positive")
        if self.trades_page_limit < 1 or self.max_pages < 1 or self.recent_trades < 1:
            raise ValueError("trades_page_limit, max_pages and recent_trades must be positive")
        if self.tape_retention <= timedelta(0):
            raise ValueError("tape_retention must be positive")


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One of our executions as the venue lists it (``my_trades``).

    ``fill.client_order_id`` is the client id when the venue or this adapter knows it (from an
    order it submitted or looked up), otherwise empty: match it by ``venue_order_id``.
    """

    venue_order_id: str
    fill: Fill


@dataclass(slots=True)
class _Tracked:
    symbol: str
    filled: Decimal


@dataclass(slots=True)
class _Tape:
    """Public trades of one symbol: times and running totals since ``covered_from_us``."""

    recent: deque[Trade]
    covered_from_us: int | None = None
    times_us: list[int] = field(default_factory=list)
    cumulative: list[Decimal] = field(default_factory=list)
    total_before: Decimal = ZERO  # cumulative quantity of trades pruned from the front
    cursor_ms: int = 0  # newest trade time seen: the next REST page starts here (inclusive)
    ids_at_cursor: set[str] = field(default_factory=set)
    recent_last_ms: int = -1
    recent_ids_at_last: set[str] = field(default_factory=set)
    synced_at: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def reset(self, since_us: int) -> None:
        self.covered_from_us = since_us
        self.times_us.clear()
        self.cumulative.clear()
        self.total_before = ZERO
        self.cursor_ms = since_us // 1000
        self.ids_at_cursor.clear()
        self.synced_at = None

    def add(self, ts_ms: int, trade_id: str, qty: Decimal, event: Trade | None) -> None:
        if ts_ms < self.cursor_ms or (ts_ms == self.cursor_ms and trade_id in self.ids_at_cursor):
            return
        if ts_ms > self.cursor_ms:
            self.cursor_ms = ts_ms
            self.ids_at_cursor = set()
        self.ids_at_cursor.add(trade_id)
        ts_us = ts_ms * 1000
        if self.covered_from_us is not None and ts_us > self.covered_from_us:
            last = self.cumulative[-1] if self.cumulative else self.total_before
            self.times_us.append(ts_us)
            self.cumulative.append(last + qty)
        if event is None or ts_ms < self.recent_last_ms:
            return
        if ts_ms > self.recent_last_ms:
            self.recent_last_ms = ts_ms
            self.recent_ids_at_last = set()
        if trade_id not in self.recent_ids_at_last:  # a reset tape sees trades again
            self.recent_ids_at_last.add(trade_id)
            self.recent.append(event)

    def prune(self, horizon_us: int) -> None:
        cut = bisect_right(self.times_us, horizon_us)
        if cut:
            self.total_before = self.cumulative[cut - 1]
            del self.times_us[:cut]
            del self.cumulative[:cut]
        if self.covered_from_us is not None:
            self.covered_from_us = max(self.covered_from_us, horizon_us)

    def volume_after(self, since_us: int) -> Decimal:
        if not self.cumulative:
            return ZERO
        index = bisect_right(self.times_us, since_us)
        before = self.cumulative[index - 1] if index else self.total_before
        return self.cumulative[-1] - before


class _Redactor(logging.Filter):
    """Replaces credentials in every record of the logger it is attached to."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= _MIN_SECRET_LEN)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            clean = self.scrub(message)
            if clean != message:
                record.msg, record.args = clean, None
        return True


def _dec(value: object, what: str) -> Decimal:
    """A ccxt number as an exact Decimal (``str`` first: ccxt parses decimal strings to floats,
    and a float's shortest repr gives back the venue's decimal text)."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{what} is missing")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{what}: {value!r} is not a number") from exc
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return result


def _dec_or_zero(value: object, what: str) -> Decimal:
    return ZERO if value is None else _dec(value, what)


def _from_ms(ms: object) -> datetime:
    """Aware UTC datetime from ccxt's milliseconds since the epoch (exact, no float)."""
    return _EPOCH + timedelta(milliseconds=int(str(ms)))


def _to_ms(moment: datetime) -> int:
    return (ensure_utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def _to_us(moment: datetime) -> int:
    return (ensure_utc(moment) - _EPOCH) // timedelta(microseconds=1)


def _sum_qty(fills: Iterable[Fill]) -> Decimal:
    return sum((fill.qty for fill in fills), ZERO)


class CcxtVenue:
    """A ``VenuePort`` on a real exchange through an async ccxt exchange object.

    Build it with ``create`` (exchange id, credentials from the environment) or pass an
    exchange object (tests load one offline from ccxt's fixtures). Call ``await start()`` before
    ``instruments()`` (the other calls start it themselves) and ``await close()`` at the end.
    """

    def __init__(
        self,
        name: str,
        exchange: Any,
        *,
        symbols: Iterable[str] = (),
        clock: Clock | None = None,
        options: CcxtVenueOptions | None = None,
    ) -> None:
        """``symbols`` restricts the venue to those markets (all describable markets if empty)."""
        self._name = name
        self._exchange = exchange
        self._symbols = tuple(dict.fromkeys(symbols))
        self._clock: Clock = clock or LiveClock()
        self._options = options or CcxtVenueOptions()
        # ccxt must never repeat a request on its own: a repeated create_order is a duplicate.
        exchange.options["maxRetriesOnFailure"] = 0
        self._has_credentials = bool(getattr(exchange, "apiKey", None))
        self._log = logging.getLogger(f"{__name__}.{name}")
        for old in [f for f in self._log.filters if isinstance(f, _Redactor)]:
            self._log.removeFilter(old)
        self._redactor = _Redactor(
            str(value)
            for value in (
                getattr(exchange, attr, None) for attr in ("apiKey", "secret", "password")
            )
            if value
        )
        self._log.addFilter(self._redactor)
        exchange.logger = self._log
        self.native_iceberg = False  # set by start(): True when every market takes icebergQty
        self._markets: dict[str, Mapping[str, Any]] | None = None
        self._instruments: dict[str, Instrument] = {}
        self._start_lock = asyncio.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._order_ids: dict[str, str] = {}  # venue order id -> our client order id
        self._updates: list[VenueOrderState] = []
        self._poll_task: asyncio.Task[None] | None = None
        self._orders_task: asyncio.Task[None] | None = None
        self._last_poll: datetime | None = None
        self._book_tasks: dict[str, asyncio.Task[None]] = {}
        self._streamed_books: dict[str, OrderBook] = {}
        self._rest_books: dict[str, tuple[OrderBook, datetime, int]] = {}  # book, received, depth
        self._tapes: dict[str, _Tape] = {}
        self._clamp_warned: set[str] = set()
        self._closed = False

    # ------------------------------------------------------------------------------ building
    @classmethod
    def create(
        cls,
        name: str,
        exchange_id: str,
        *,
        symbols: Iterable[str] = (),
        api_key_env: str | None = None,
        api_secret_env: str | None = None,
        sandbox: bool = False,
        rate_limit: bool = True,
        clock: Clock | None = None,
        options: CcxtVenueOptions | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> CcxtVenue:
        """A venue on ccxt exchange ``exchange_id``.

        ``api_key_env`` / ``api_secret_env`` NAME the environment variables (of ``environ``,
        default ``os.environ``) holding the key and secret; without them the venue is
        read-only (market data, paper trading). ``sandbox`` switches ccxt to the exchange's
        testnet; ``rate_limit`` keeps ccxt's own pacing to the exchange's published limits.
        Uses ccxt's streaming classes when ``options.websocket`` and the exchange has them.
        """
        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"{name}: unknown ccxt exchange id {exchange_id!r}")
        options = options or CcxtVenueOptions()
        streaming = options.websocket and exchange_id in ccxt_pro.exchanges
        exchange_class = getattr(ccxt_pro if streaming else ccxt_async, exchange_id)
        config: dict[str, Any] = {
            "enableRateLimit": rate_limit,
            "options": {"maxRetriesOnFailure": 0},
        }
        if api_key_env is not None or api_secret_env is not None:
            env = os.environ if environ is None else environ
            config["apiKey"] = _read_secret(env, api_key_env, name, "API key")
            config["secret"] = _read_secret(env, api_secret_env, name, "API secret")
        exchange = exchange_class(config)
        if sandbox:
            try:
                exchange.set_sandbox_mode(True)
            except ccxt.NotSupported as exc:
                raise ValueError(f"{name}: {exchange_id} has no sandbox/testnet in ccxt") from exc
        return cls(name, exchange, symbols=symbols, clock=clock, options=options)

    @classmethod
    def from_settings(cls, spec: CcxtVenueSettings, clock: Clock | None = None) -> CcxtVenue:
        """A live (or, with ``spec.paper``, a read-only market-data) venue from its settings."""
        options = CcxtVenueOptions(
            book_max_age=timedelta(seconds=spec.book_max_age_s), websocket=spec.websocket
        )
        return cls.create(
            spec.name,
            spec.exchange,
            symbols=spec.symbols,
            api_key_env=None if spec.paper else spec.api_key_env,
            api_secret_env=None if spec.paper else spec.api_secret_env,
            sandbox=spec.sandbox,
            rate_limit=spec.rate_limit,
            clock=clock,
            options=options,
        )

    def __repr__(self) -> str:
        return (
            f"CcxtVenue(name={self._name!r}, exchange={self._exchange.id!r}, "
            f"sandbox={bool(getattr(self._exchange, 'isSandboxModeEnabled', False))}, "
            f"credentials={'set' if self._has_credentials else 'none'})"
        )

    __str__ = __repr__

    @property
    def name(self) -> str:
        return self._name

    @property
    def exchange_id(self) -> str:
        """The ccxt exchange id (``binance``)."""
        exchange_id: str = self._exchange.id
        return exchange_id

    @property
    def options(self) -> CcxtVenueOptions:
        return self._options

    @property
    def symbols(self) -> tuple[str, ...]:
        """The configured symbols (empty: every market the exchange lists)."""
        return self._symbols

    async def start(self) -> None:
        """Load the markets (once) and describe the configured instruments."""
        if self._markets is not None:
            return
        async with self._start_lock:
            if self._markets is not None:
                return
            markets = await self._read("load_markets", self._exchange.load_markets)
            instruments = self._describe(markets)
            self.native_iceberg = bool(instruments) and all(
                self._takes_native_iceberg(inst, markets[symbol])
                for symbol, inst in instruments.items()
            )
            self._instruments = instruments
            self._markets = dict(markets)

    async def close(self) -> None:
        """Stop the background tasks and close the exchange's connections."""
        self._closed = True
        tasks = [*self._book_tasks.values(), self._poll_task, self._orders_task]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._book_tasks.clear()
        await self._exchange.close()

    def _describe(self, markets: Mapping[str, Mapping[str, Any]]) -> dict[str, Instrument]:
        if self._symbols:
            missing = [symbol for symbol in self._symbols if symbol not in markets]
            if missing:
                raise ValueError(
                    f"{self._name}: {', '.join(missing)} not listed on {self.exchange_id}"
                )
            return {symbol: self._instrument(markets[symbol]) for symbol in self._symbols}
        described: dict[str, Instrument] = {}
        for symbol, market in markets.items():
            try:
                described[symbol] = self._instrument(market)
            except (ValueError, NotImplementedError) as exc:
                self._log.debug("%s: skipping market %s: %s", self._name, symbol, exc)
        return described

    def _instrument(self, market: Mapping[str, Any]) -> Instrument:
        """Our ``Instrument`` for a ccxt unified market (tick and lot from its precision)."""
        symbol = str(market.get("symbol"))
        kind = _KINDS.get(str(market.get("type")))
        if kind is None:
            raise ValueError(f"{symbol}: market type {market.get('type')!r} is not traded here")
        limits = market.get("limits") or {}
        what = f"{self._name} {symbol}"
        expiry = market.get("expiry")
        option = kind is InstrumentKind.OPTION
        return Instrument(
            venue=self._name,
            symbol=symbol,
            kind=kind,
            base=str(market.get("base")),
            quote=str(market.get("quote")),
            tick_size=market_step(market, "price", self.exchange_id),
            lot_size=market_step(market, "amount", self.exchange_id),
            min_qty=_dec_or_zero((limits.get("amount") or {}).get("min"), f"{what} min amount"),
            min_notional=_dec_or_zero((limits.get("cost") or {}).get("min"), f"{what} min cost"),
            settle=market.get("settle"),
            contract_size=(
                _dec(market.get("contractSize") or 1, f"{what} contract size")
                if market.get("contract")
                else Decimal(1)
            ),
            expiry=None if expiry is None else _from_ms(expiry),
            strike=_dec(market.get("strike"), f"{what} strike") if option else None,
            right=OptionRight(str(market.get("optionType"))) if option else None,
            maker_fee=_dec_or_zero(market.get("maker"), f"{what} maker fee"),
            taker_fee=_dec_or_zero(market.get("taker"), f"{what} taker fee"),
        )

    def _takes_native_iceberg(self, inst: Instrument, market: Mapping[str, Any]) -> bool:
        """Does ccxt send a display size for this market? Asked of the order translation."""
        probe = OrderRequest(
            client_order_id="probe",
            venue=self._name,
            symbol=inst.symbol,
            side=Side.BUY,
            qty=inst.lot_size * 2,
            order_type=OrderType.LIMIT,
            price=inst.tick_size,
            display_qty=inst.lot_size,
        )
        try:
            call = create_order_args(probe, self.exchange_id, market)
        except (InvalidOrder, ValueError, NotImplementedError):
            return False
        return "icebergAmount" in call.params

    # ----------------------------------------------------------------------------- plumbing
    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by unified symbol; raises ``RuntimeError`` before ``start()``."""
        if self._markets is None:
            raise RuntimeError(f"{self._name}: markets are not loaded; await venue.start() first")
        return dict(self._instruments)

    def _market(self, symbol: str) -> Mapping[str, Any]:
        assert self._markets is not None
        if symbol not in self._instruments or symbol not in self._markets:
            raise VenueRejected(self._name, f"{symbol} is not traded on this venue")
        return self._markets[symbol]

    def _has(self, feature: str) -> bool:
        return bool(self._exchange.has.get(feature))

    def _streams(self, feature: str) -> bool:
        return self._options.websocket and self._has(feature)

    def _scrubbed(self, error: VenueError) -> VenueError:
        text = str(error)
        clean = self._redactor.scrub(text)
        if clean == text:
            return error
        return type(error)(self._name, clean.removeprefix(f"{self._name}: "))

    async def _once(self, call: Callable[[], Awaitable[T]], *, submit: bool) -> T:
        """One ccxt call; ccxt's exceptions leave translated by retry safety."""
        try:
            return await call()
        except VenueError:
            raise
        except Exception as exc:
            raise self._scrubbed(translate_ccxt_error(exc, self._name, submit=submit)) from exc

    async def _read(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """An idempotent call, retried on ``RetryableVenueError`` as ``RetryPolicy`` says."""
        policy = self._options.retry

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self._log.warning(
                "%s: %s failed (attempt %d of %d), retrying: %s",
                self._name,
                what,
                state.attempt_number,
                policy.attempts,
                error,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(multiplier=policy.initial_wait_s, max=policy.max_wait_s),
            retry=retry_if_exception_type(RetryableVenueError),
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(call, submit=False)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    # ------------------------------------------------------------------------------- orders
    async def submit(self, request: OrderRequest) -> VenueOrderState:
        """Send ``request`` once. ``VenueRejected``: not sent or refused; ``RateLimited`` /
        ``VenueUnavailable``: refused before reaching the book; ``SubmitOutcomeUnknown``: maybe
        placed, reconcile by client id and never re-send."""
        await self.start()
        cid = request.client_order_id
        if request.venue != self._name:
            raise VenueRejected(self._name, f"order {cid} is addressed to {request.venue}")
        market = self._market(request.symbol)
        try:
            call = create_order_args(request, self.exchange_id, market)
        except (InvalidOrder, ValueError, NotImplementedError) as exc:
            raise VenueRejected(self._name, f"order {cid} not sent: {exc}") from exc
        reply = await self._once(lambda: self._exchange.create_order(**call), submit=True)
        try:
            state = await self._state(reply, cid, request.symbol, immediate=True)
        except VenueError as exc:
            # the venue took the order; only its fills could not be read yet: the tracked-order
            # poll brings them
            self._log.warning("%s: order %s placed, fills not read yet: %s", self._name, cid, exc)
            state = VenueOrderState(
                cid, str(reply.get("id") or ""), VenueOrderStatus.OPEN, reason=str(exc)
            )
        except Exception as exc:
            raise SubmitOutcomeUnknown(
                self._name,
                f"order {cid}: the venue answered but the reply could not be read "
                f"({type(exc).__name__}: {exc}); reconcile by client id",
            ) from exc
        self._note(cid, request.symbol, state)
        return state

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        """Cancel by client order id (retried: cancelling twice is harmless).
        Raises ``OrderNotFoundAtVenue`` when the venue does not know the order as open."""
        await self.start()
        self._market(symbol)
        try:
            call = cancel_order_args(client_order_id, symbol, self.exchange_id)
        except NotImplementedError:
            order = await self._search(client_order_id, symbol)
            if order.get("status") != "open":
                raise OrderNotFoundAtVenue(
                    self._name, f"order {client_order_id} is no longer open"
                ) from None
            venue_id = str(order["id"])
            await self._read("cancel_order", lambda: self._exchange.cancel_order(venue_id, symbol))
        else:
            await self._read("cancel_order", lambda: self._exchange.cancel_order(**call))
        self._tracked.setdefault(client_order_id, _Tracked(symbol, ZERO))

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrderState:
        """The venue's view of an order by client id, with every fill so far."""
        await self.start()
        self._market(symbol)
        order = await self._lookup(client_order_id, symbol)
        state = await self._state(order, client_order_id, symbol)
        self._note(client_order_id, symbol, state)
        return state

    async def open_orders(self, symbol: str) -> list[VenueOrderState]:
        """Open orders on ``symbol`` (any client id), for reconciliation; ``fills`` are not
        read here (``filled_qty`` is the venue's figure): use ``fetch_order`` for them."""
        await self.start()
        self._market(symbol)
        orders = await self._read(
            "fetch_open_orders", lambda: self._exchange.fetch_open_orders(symbol)
        )
        return [
            VenueOrderState(
                client_order_id=_client_id_of(order) or "",
                venue_order_id=str(order.get("id") or ""),
                status=_STATUS.get(str(order.get("status")), VenueOrderStatus.OPEN),
                filled_qty=_dec_or_zero(order.get("filled"), "filled"),
            )
            for order in orders
        ]

    async def my_trades(self, symbol: str, since: datetime | None = None) -> list[VenueTrade]:
        """Our executions on ``symbol``: after ``since`` (paged), or the venue's default recent
        window when ``since`` is ``None`` (one call)."""
        await self.start()
        self._market(symbol)
        raw = await self._my_trades_raw(symbol, None if since is None else _to_ms(since))
        trades = []
        for trade in raw:
            stamp = trade.get("timestamp")
            if since is not None and stamp is not None and _from_ms(stamp) <= ensure_utc(since):
                continue
            venue_order_id = str(trade.get("order") or "")
            cid = self._order_ids.get(venue_order_id) or _client_id_of(trade) or ""
            fill = self._fill(trade, cid, symbol, None, immediate=False)
            trades.append(VenueTrade(venue_order_id, fill))
        return trades

    async def _lookup(self, cid: str, symbol: str) -> Mapping[str, Any]:
        try:
            call = fetch_order_args(cid, symbol, self.exchange_id)
        except NotImplementedError:
            return await self._search(cid, symbol)
        order: Mapping[str, Any] = await self._read(
            "fetch_order", lambda: self._exchange.fetch_order(**call)
        )
        return order

    async def _search(self, cid: str, symbol: str) -> Mapping[str, Any]:
        """Find an order by client id where the exchange cannot fetch by it: open orders,
        then closed orders, then our trades (venues that echo the client id in fills)."""
        if self._has("fetchOpenOrders"):
            found = _by_client_id(
                await self._read(
                    "fetch_open_orders", lambda: self._exchange.fetch_open_orders(symbol)
                ),
                cid,
            )
            if found is not None:
                return found
        if self._has("fetchClosedOrders") or self._has("fetchOrders"):
            method = "fetch_closed_orders" if self._has("fetchClosedOrders") else "fetch_orders"
            found = _by_client_id(
                await self._read(method, lambda: getattr(self._exchange, method)(symbol)), cid
            )
            if found is not None:
                return found
        if self._has("fetchMyTrades"):
            trades = [t for t in await self._my_trades_raw(symbol, None) if _client_id_of(t) == cid]
            if trades:
                return self._order_from_trades(cid, symbol, trades)
        raise OrderNotFoundAtVenue(self._name, f"no order {cid} on {symbol}")

    def _order_from_trades(
        self, cid: str, symbol: str, trades: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """A closed unified order made of its trades: not open, not in the closed orders, so it
        is done; the part of it that did not trade will not (reported as cancelled)."""
        return {
            "id": str(trades[0].get("order") or ""),
            "clientOrderId": cid,
            "symbol": symbol,
            "status": "canceled",
            "filled": str(sum((_dec(t.get("amount"), "amount") for t in trades), ZERO)),
            "trades": list(trades),
        }

    async def _state(
        self, order: Mapping[str, Any], cid: str, symbol: str, *, immediate: bool = False
    ) -> VenueOrderState:
        """Our ``VenueOrderState`` of a unified order, its fills read when missing.

        ``immediate``: the order is a create_order reply, whose embedded fills (binance FULL
        responses) are executions on entry, hence taker.
        """
        venue_order_id = str(order.get("id") or "")
        status = _STATUS.get(str(order.get("status")), VenueOrderStatus.OPEN)
        filled = _dec_or_zero(order.get("filled"), f"order {cid} filled")
        fills: tuple[Fill, ...] = ()
        if filled > 0:
            fills = self._embedded_fills(order, cid, symbol, immediate)
            if _sum_qty(fills) < filled:
                trades = await self._order_trades(order, symbol)
                fills = tuple(self._fill(t, cid, symbol, order, immediate=False) for t in trades)
        known = _sum_qty(fills)
        reason = ""
        amount = order.get("amount")
        if (
            status is VenueOrderStatus.FILLED
            and amount is not None
            and filled < _dec(amount, "amount")
        ):
            status = VenueOrderStatus.EXPIRED  # closed with a remainder that will not fill
        if status is not VenueOrderStatus.OPEN and known < filled:
            reason = (
                f"venue reports {status.value} with {filled} filled, but only {known} is in its "
                "trade list so far; open until every fill is known"
            )
            status = VenueOrderStatus.OPEN
        elif status in (VenueOrderStatus.CANCELLED, VenueOrderStatus.EXPIRED):
            reason = f"{status.value} at the venue"
        elif status is VenueOrderStatus.REJECTED:
            reason = "rejected by the venue"
        if venue_order_id:
            self._order_ids[venue_order_id] = cid
        return VenueOrderState(cid, venue_order_id, status, filled, fills, reason)

    def _embedded_fills(
        self, order: Mapping[str, Any], cid: str, symbol: str, immediate: bool
    ) -> tuple[Fill, ...]:
        try:
            return tuple(
                self._fill(trade, cid, symbol, order, immediate=immediate)
                for trade in order.get("trades") or ()
            )
        except ValueError:
            return ()  # incomplete trades in the reply: read them from the trade list instead

    async def _order_trades(self, order: Mapping[str, Any], symbol: str) -> list[Mapping[str, Any]]:
        """The trades of one order, from ``fetch_order_trades`` or else ``fetch_my_trades``."""
        venue_order_id = str(order.get("id") or "")
        if not venue_order_id:
            raise ValueError("the order has no venue id; its trades cannot be found")
        trades: list[Mapping[str, Any]] | None = None
        if self._has("fetchOrderTrades"):
            try:
                trades = await self._read(
                    "fetch_order_trades",
                    lambda: self._exchange.fetch_order_trades(venue_order_id, symbol),
                )
            except VenueRejected:  # e.g. binance derivatives: NotSupported
                trades = None
        if trades is None:
            since = order.get("timestamp")
            trades = await self._my_trades_raw(symbol, None if since is None else int(since))
        return [t for t in trades if str(t.get("order")) == venue_order_id]

    def _fill(
        self,
        trade: Mapping[str, Any],
        cid: str,
        symbol: str,
        order: Mapping[str, Any] | None,
        *,
        immediate: bool,
    ) -> Fill:
        """Our ``Fill`` of a unified trade; missing facts come from the order when it is the
        create reply (``immediate``: executions on entry are taker), else ``ValueError``. A
        venue that does not say maker or taker is counted taker, the costlier assumption."""
        trade_id = trade.get("id")
        if not trade_id:
            raise ValueError("trade without an id")
        context = order if immediate and order is not None else {}
        stamp = trade.get("timestamp") or context.get("lastTradeTimestamp")
        stamp = stamp or context.get("timestamp")
        if stamp is None:
            raise ValueError(f"trade {trade_id} has no time")
        side = trade.get("side") or context.get("side")
        if side not in ("buy", "sell"):
            raise ValueError(f"trade {trade_id} has no side")
        role = trade.get("takerOrMaker") or "taker"
        if role not in ("maker", "taker"):
            raise ValueError(f"trade {trade_id}: maker or taker is {role!r}")
        fee = trade.get("fee") or {}
        quote = self._instruments[symbol].quote if symbol in self._instruments else ""
        return Fill(
            venue=self._name,
            trade_id=f"{symbol}#{trade_id}",
            client_order_id=cid,
            symbol=symbol,
            side=Side(side),
            price=_dec(trade.get("price"), f"trade {trade_id} price"),
            qty=_dec(trade.get("amount"), f"trade {trade_id} amount"),
            fee=_dec_or_zero(fee.get("cost"), f"trade {trade_id} fee"),
            fee_currency=str(fee.get("currency") or quote),
            liquidity=Liquidity(role),
            ts=_from_ms(stamp),
        )

    async def _my_trades_raw(self, symbol: str, since_ms: int | None) -> list[Mapping[str, Any]]:
        if since_ms is None:
            trades: list[Mapping[str, Any]] = await self._read(
                "fetch_my_trades", lambda: self._exchange.fetch_my_trades(symbol)
            )
            return trades
        return await self._pages(
            "fetch_my_trades",
            lambda start, limit: self._exchange.fetch_my_trades(symbol, start, limit),
            since_ms,
            window_ms=None,
            seen=set(),
        )

    async def _pages(
        self,
        what: str,
        fetch: Callable[[int, int], Awaitable[list[Mapping[str, Any]]]],
        since_ms: int,
        *,
        window_ms: int | None,
        seen: set[str],
    ) -> list[Mapping[str, Any]]:
        """Trades from ``since_ms`` on, page by page (each retried), oldest first; ids in
        ``seen`` are skipped. Stops at a short page (or, with ``window_ms``, once the windows
        reach now) or after ``max_pages``."""
        limit = self._options.trades_page_limit
        now_ms = _to_ms(self._clock.now())
        query = since_ms
        collected: list[Mapping[str, Any]] = []
        for _ in range(self._options.max_pages):
            page = await self._read(what, functools.partial(fetch, query, limit))
            page = sorted(page, key=lambda t: int(t.get("timestamp") or 0))
            for trade in page:
                key = str(trade.get("id"))
                if key not in seen:
                    seen.add(key)
                    collected.append(trade)
            if len(page) >= limit:
                newest = int(page[-1].get("timestamp") or 0)
                if newest <= query:
                    self._log.warning(
                        "%s: %s: a full page at one millisecond (%d); some trades are skipped",
                        self._name,
                        what,
                        query,
                    )
                    query += 1
                else:
                    query = newest
                continue
            if window_ms is not None and query + window_ms < now_ms:
                query += window_ms + 1
                continue
            return collected
        self._log.warning(
            "%s: %s stopped after %d pages; the rest follows on the next call",
            self._name,
            what,
            self._options.max_pages,
        )
        return collected

    # ----------------------------------------------------------------------- order updates
    def _note(self, cid: str, symbol: str, state: VenueOrderState) -> None:
        """Track an order while it works; forget it once its final state was reported."""
        if state.status is VenueOrderStatus.OPEN:
            self._tracked[cid] = _Tracked(symbol, state.filled_qty)
        else:
            self._tracked.pop(cid, None)

    def drain_updates(self) -> list[VenueOrderState]:
        """Order states that changed since the last call (from the order stream and the
        background poll of tracked orders, which this call schedules when due)."""
        self._schedule_background()
        updates, self._updates = self._updates, []
        return updates

    def _schedule_background(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._closed or self._markets is None:
            return
        now = self._clock.now()
        poll_idle = self._poll_task is None or self._poll_task.done()
        due = self._last_poll is None or now - self._last_poll >= self._options.order_poll_interval
        if self._tracked and poll_idle and due:
            self._last_poll = now
            self._poll_task = loop.create_task(self._poll_quietly(), name=f"{self._name}:poll")
        streaming = self._has_credentials and self._streams("watchOrders")
        if streaming and (self._orders_task is None or self._orders_task.done()):
            self._orders_task = loop.create_task(self._watch_orders(), name=f"{self._name}:orders")

    async def _poll_quietly(self) -> None:
        try:
            await self.poll_orders()
        except Exception:
            self._log.exception("%s: polling orders failed", self._name)

    async def poll_orders(self) -> None:
        """One REST pass over the tracked orders; what changed is queued for
        ``drain_updates``. Errors are logged and left for the next pass."""
        by_symbol: dict[str, list[str]] = {}
        for cid, known in list(self._tracked.items()):
            by_symbol.setdefault(known.symbol, []).append(cid)
        for symbol, cids in by_symbol.items():
            try:
                listed = await self._read(
                    "fetch_open_orders", functools.partial(self._exchange.fetch_open_orders, symbol)
                )
            except VenueError as exc:
                self._log.warning("%s: open orders on %s: %s", self._name, symbol, exc)
                continue
            open_now = {_client_id_of(o) or "": o for o in listed}
            for cid in cids:
                tracked = self._tracked.get(cid)
                if tracked is None:
                    continue
                try:
                    order = open_now.get(cid)
                    if order is not None:
                        if _dec_or_zero(order.get("filled"), "filled") == tracked.filled:
                            continue
                        state = await self._state(order, cid, symbol)
                    else:
                        state = await self._state(await self._lookup(cid, symbol), cid, symbol)
                except OrderNotFoundAtVenue:
                    self._tracked.pop(cid, None)  # the manager reconciles unknown orders itself
                    continue
                except (VenueError, ValueError) as exc:
                    self._log.warning("%s: order %s: %s", self._name, cid, exc)
                    continue
                self._note(cid, symbol, state)
                self._updates.append(state)

    async def _watch_orders(self) -> None:
        failures = 0
        while not self._closed:
            try:
                orders = await self._exchange.watch_orders()
            except Exception as exc:
                failures += 1
                self._log.warning("%s: order stream failed (%d): %s", self._name, failures, exc)
                await asyncio.sleep(self._stream_backoff(failures))
                continue
            failures = 0
            for order in orders:
                cid = _client_id_of(order) or ""
                tracked = self._tracked.get(cid)
                if tracked is None:
                    continue
                try:
                    state = await self._state(order, cid, tracked.symbol)
                except (VenueError, ValueError) as exc:
                    self._log.warning("%s: streamed order %s: %s", self._name, cid, exc)
                    continue
                self._note(cid, tracked.symbol, state)
                self._updates.append(state)

    def _stream_backoff(self, failures: int) -> float:
        policy = self._options.retry
        return float(min(policy.initial_wait_s * 2 ** (failures - 1), max(policy.max_wait_s, 1)))

    # ---------------------------------------------------------------------------- market data
    async def order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The best ``depth`` levels a side: streamed when fresh, else from REST; when neither
        is fresh, the newest book known is returned with its real (old) timestamp."""
        await self.start()
        self._market(symbol)
        now = self._clock.now()
        max_age = self._options.book_max_age
        if self._streams("watchOrderBook"):
            self._watch_book(symbol)
            streamed = self._streamed_books.get(symbol)
            if streamed is not None and now - streamed.ts <= max_age:
                return _trimmed(streamed, depth)
        cached = self._rest_books.get(symbol)
        if cached is not None:
            book, received, fetched_depth = cached
            if fetched_depth >= depth and now - received < self._options.rest_book_reuse:
                return _trimmed(book, depth)
        try:
            raw = await self._read(
                "fetch_order_book", lambda: self._exchange.fetch_order_book(symbol, depth)
            )
        except RetryableVenueError as exc:
            known = [
                book for book in (self._streamed_books.get(symbol), cached and cached[0]) if book
            ]
            if not known:
                raise
            newest = max(known, key=lambda book: book.ts)
            self._log.warning(
                "%s: %s book from %s is stale (%s)", self._name, symbol, newest.ts, exc
            )
            return _trimmed(newest, depth)
        book = self._book(symbol, raw, now)
        self._rest_books[symbol] = (book, now, depth)
        return _trimmed(book, depth)

    def _watch_book(self, symbol: str) -> None:
        task = self._book_tasks.get(symbol)
        if task is None or task.done():
            self._book_tasks[symbol] = asyncio.get_running_loop().create_task(
                self._stream_book(symbol), name=f"{self._name}:book:{symbol}"
            )

    async def _stream_book(self, symbol: str) -> None:
        failures = 0
        while not self._closed:
            try:
                raw = await self._exchange.watch_order_book(symbol)
                self._streamed_books[symbol] = self._book(symbol, raw, self._clock.now())
            except Exception as exc:
                failures += 1
                self._log.warning(
                    "%s: %s book stream failed (%d), REST meanwhile: %s",
                    self._name,
                    symbol,
                    failures,
                    exc,
                )
                await asyncio.sleep(self._stream_backoff(failures))
                continue
            failures = 0

    def _book(self, symbol: str, raw: Mapping[str, Any], received: datetime) -> OrderBook:
        """Our ``OrderBook`` of a ccxt one; stamped with the venue's time, else ``received``."""
        stamp = raw.get("timestamp")

        def levels(side: str) -> tuple[BookLevel, ...]:
            return tuple(
                BookLevel(_dec(level[0], f"{side} price"), _dec(level[1], f"{side} amount"))
                for level in raw.get(side) or ()
            )

        return OrderBook(
            venue=self._name,
            symbol=symbol,
            ts=ensure_utc(received) if stamp is None else _from_ms(stamp),
            bids=levels("bids"),
            asks=levels("asks"),
        )

    async def traded_volume(self, symbol: str, since: datetime) -> Decimal:
        """Market quantity (base units) traded on ``symbol`` after ``since`` (public trades);
        ``since`` older than ``tape_retention`` counts from the retention horizon."""
        await self.start()
        self._market(symbol)
        tape, since_us = await self._synced_tape(symbol, since)
        return tape.volume_after(since_us)

    async def public_trades(self, symbol: str, since: datetime) -> list[Trade]:
        """Market trades on ``symbol`` after ``since``, oldest first, as replay ``Trade``
        events (the last ``recent_trades`` kept); ``aggressor`` is the taker's side."""
        await self.start()
        self._market(symbol)
        tape, _ = await self._synced_tape(symbol, since)
        since = ensure_utc(since)
        return [trade for trade in tape.recent if trade.ts > since]

    async def _synced_tape(self, symbol: str, since: datetime) -> tuple[_Tape, int]:
        now = self._clock.now()
        horizon = now - self._options.tape_retention
        since = ensure_utc(since)
        if since < horizon:
            if symbol not in self._clamp_warned:
                self._clamp_warned.add(symbol)
                self._log.warning(
                    "%s: traded volume on %s before %s is not kept (tape_retention %s)",
                    self._name,
                    symbol,
                    horizon,
                    self._options.tape_retention,
                )
            since = horizon
        since_us = _to_us(since)
        tape = self._tapes.get(symbol)
        if tape is None:
            tape = self._tapes[symbol] = _Tape(deque(maxlen=self._options.recent_trades))
        async with tape.lock:
            if tape.covered_from_us is None or since_us < tape.covered_from_us:
                tape.reset(since_us)
            elif (
                tape.synced_at is not None
                and now - tape.synced_at < self._options.trades_poll_interval
            ):
                return tape, since_us
            window = (
                _BINANCE_TRADES_WINDOW_MS
                if isinstance(self._exchange, ccxt_async.binance)
                else None
            )
            raw = await self._pages(
                "fetch_trades",
                lambda start, limit: self._exchange.fetch_trades(symbol, start, limit),
                tape.cursor_ms,
                window_ms=window,
                seen=set(tape.ids_at_cursor),
            )
            for trade in raw:
                stamp, qty = trade.get("timestamp"), trade.get("amount")
                if stamp is None or qty is None:
                    continue
                tape.add(
                    int(stamp), str(trade.get("id")), _dec(qty, "amount"), _market_trade(trade)
                )
            tape.synced_at = now
            tape.prune(_to_us(horizon))
        return tape, since_us

    async def balances(self) -> Mapping[str, Balance]:
        """Free and locked (ccxt "used") amounts: every asset held, plus the base and quote
        of the configured instruments (zero when not held)."""
        await self.start()
        raw = await self._read("fetch_balance", self._exchange.fetch_balance)
        free, used = raw.get("free") or {}, raw.get("used") or {}
        result: dict[str, Balance] = {}
        for asset in dict.fromkeys([*free, *used]):
            balance = Balance(
                asset,
                _dec_or_zero(free.get(asset), f"{asset} free"),
                _dec_or_zero(used.get(asset), f"{asset} used"),
            )
            if balance.total != 0:
                result[asset] = balance
        for inst in self._instruments.values() if self._symbols else ():
            for asset in (inst.base, inst.quote):
                result.setdefault(asset, Balance(asset, ZERO))
        return result


def _read_secret(env: Mapping[str, str], variable: str | None, venue: str, what: str) -> str:
    if not variable:
        raise CredentialsMissing(f"{venue}: the {what} environment variable name is not set")
    value = env.get(variable, "").strip()
    if not value:
        raise CredentialsMissing(
            f"{venue}: environment variable {variable} (the {what}) is not set or empty"
        )
    return value


def _client_id_of(trade: Mapping[str, Any]) -> str | None:
    """Our client order id as echoed in a unified order or trade (or its raw ``info``)."""
    info = trade.get("info") or {}
    for key in _CLIENT_ID_KEYS:
        value = trade.get(key) or (info.get(key) if isinstance(info, Mapping) else None)
        if value:
            return str(value)
    return None


def _by_client_id(orders: Iterable[Mapping[str, Any]], cid: str) -> Mapping[str, Any] | None:
    for order in orders:
        if _client_id_of(order) == cid:
            return order
    return None


def _market_trade(trade: Mapping[str, Any]) -> Trade | None:
    """A public ccxt trade as a replay ``Trade`` event; ``None`` if it lacks a fact."""
    side, price, qty, stamp = (trade.get(k) for k in ("side", "price", "amount", "timestamp"))
    if side not in ("buy", "sell") or price is None or qty is None or stamp is None:
        return None
    raw_id = str(trade.get("id") or "")
    return Trade(
        ts=_from_ms(stamp),
        trade_id=int(raw_id) if raw_id.isdigit() else 0,
        price=_dec(price, "price"),
        qty=_dec(qty, "amount"),
        aggressor=Side(side),
    )


def _trimmed(book: OrderBook, depth: int) -> OrderBook:
    if len(book.bids) <= depth and len(book.asks) <= depth:
        return book
    return OrderBook(book.venue, book.symbol, book.ts, book.bids[:depth], book.asks[:depth])
