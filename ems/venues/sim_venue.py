"""A simulated venue: the matching engine over recorded or synthetic books, behind ``VenuePort``.

Time drives it. ``advance_to(ts)`` processes, in time order, every market event and every pending
order action due at or before ``ts`` (market events first on a tie). Each port call first catches
up to ``clock.now()``, so a venue sharing the manager's test clock needs no explicit driving.

* A submit is checked at once (symbol, duplicate client id, precision, balance, post-only against
  the current book) and acknowledged OPEN; it reaches the matching engine ``latency`` later. A
  cancel also takes effect ``latency`` later, so fills can still arrive in between.
* A post-only order that would cross when it arrives (the book moved during the latency) ends
  EXPIRED with the reason, as Binance does for GTX orders; one that crosses already at submit is
  refused with ``VenueRejected``.
* Balances settle as spot: a buy locks ``qty * price * (1 + max fee)`` of the quote (a market buy
  locks an estimate of its cost plus ``market_buy_collar`` and never spends more); a sell locks the
  base. Fills release their share; the end of an order releases the rest. Fees are charged in the
  quote currency.
* Perpetual (and dated) futures settle on margin instead (linear contracts: the settle asset is
  the quote). No base asset is needed to sell. An order locks, in the settle asset, its initial
  margin ``notional / leverage`` plus the fee at the higher rate (a reduce-only order only the
  fee); a sell's notional is taken at the better of its limit and the best bid, a market order's
  at the book estimate plus ``market_buy_collar``. Fills release their share of the lock, pay the
  fee in the settle asset and trade a signed position per symbol (``ems.venues.perp``) that holds
  ``|qty| * entry / leverage`` locked; reductions release that margin and settle realised PnL into
  the free balance, so ``free + locked`` is the wallet balance (unrealised PnL excluded; there is
  no liquidation). A reduce-only order must reduce the position and not exceed it when submitted;
  whenever the position changes, reduce-only orders that could now flip or grow it expire, and a
  fill is clipped to the position as a last guard; reduce-only orders are exempt from the
  minimum notional, as on Binance. ``positions()`` reports open positions marked at
  the recorded mid; ``apply_funding`` settles a funding rate.
* ``FaultPlan`` injects deterministic submit faults; ``submissions`` lists every submit the venue
  received, in order, so a test can check that nothing was sent twice.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import random
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

from ems.clock import Clock
from ems.domain import (
    ZERO,
    Balance,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderBook,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
    ensure_utc,
)
from ems.errors import (
    InvalidOrder,
    OrderNotFoundAtVenue,
    RateLimited,
    SubmitOutcomeUnknown,
    VenueRejected,
    VenueUnavailable,
)
from ems.ports import VenueOrderState, VenueOrderStatus
from ems.venues.matching import Execution, MatchingEngine, OrderSpec
from ems.venues.perp import FundingPayment, PerpPosition, PositionState
from ems.venues.replay import (
    BookDiff,
    BookSnapshot,
    BookTicker,
    Levels,
    MarketEvent,
    Trade,
    load_recorded,
)
from ems.venues.synthetic import MarketModel, generate_market

_MARGINED = frozenset({InstrumentKind.PERPETUAL, InstrumentKind.FUTURE})
_TERMINAL = frozenset(
    {
        VenueOrderStatus.FILLED,
        VenueOrderStatus.CANCELLED,
        VenueOrderStatus.REJECTED,
        VenueOrderStatus.EXPIRED,
    }
)


def binance_btcusdt_instrument(
    venue_name: str,
    *,
    maker_fee: Decimal = Decimal("0.001"),
    taker_fee: Decimal = Decimal("0.001"),
) -> Instrument:
    """Binance spot BTC/USDT with its real filters: tick 0.01, lot and min qty 0.00001,
    min notional 5 USDT; 0.1 % maker and taker fees unless given."""
    return Instrument(
        venue=venue_name,
        symbol="BTC/USDT",
        kind=InstrumentKind.SPOT,
        base="BTC",
        quote="USDT",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.00001"),
        min_qty=Decimal("0.00001"),
        min_notional=Decimal(5),
        maker_fee=maker_fee,
        taker_fee=taker_fee,
    )


def binance_usdm_btcusdt_instrument(
    venue_name: str,
    *,
    maker_fee: Decimal = Decimal("0.0002"),
    taker_fee: Decimal = Decimal("0.0005"),
) -> Instrument:
    """Binance USDⓈ-M BTCUSDT perpetual (ccxt ``BTC/USDT:USDT``), settled in USDT, one BTC a
    contract, with its real filters: tick 0.10, lot and min qty 0.001, min notional 100 USDT;
    0.02 % maker and 0.05 % taker fees unless given."""
    return Instrument(
        venue=venue_name,
        symbol="BTC/USDT:USDT",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USDT",
        settle="USDT",
        contract_size=Decimal(1),
        tick_size=Decimal("0.10"),
        lot_size=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        min_notional=Decimal(100),
        maker_fee=maker_fee,
        taker_fee=taker_fee,
    )


def _settle_asset(inst: Instrument) -> str:
    return inst.settle or inst.quote


class FaultKind(enum.StrEnum):
    """What an injected fault does to one submit."""

    UNKNOWN_AFTER_ACCEPT = "unknown_after_accept"  # order exists; reply lost
    UNKNOWN_BEFORE_ACCEPT = "unknown_before_accept"  # request lost; no order
    RATE_LIMITED = "rate_limited"  # refused with RateLimited; no order
    UNAVAILABLE = "unavailable"  # refused with VenueUnavailable; no order
    GO_DOWN = "go_down"  # venue goes down (VenueUnavailable on every call); no order


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Deterministic submit faults.

    ``on_submit`` maps the 1-based number of a submit call to its fault, e.g.
    ``FaultPlan(on_submit={2: FaultKind.UNKNOWN_AFTER_ACCEPT})``. ``rates`` gives each kind a
    probability per submit, drawn from ``random.Random(seed)`` (one draw per submit), for soak
    tests; explicit entries win. After ``GO_DOWN`` the venue stays down for ``down_for`` (``None``:
    until ``SimVenue.restore()``).
    """

    on_submit: Mapping[int, FaultKind] = field(default_factory=dict)
    rates: Mapping[FaultKind, float] = field(default_factory=dict)
    seed: int = 0
    down_for: timedelta | None = None

    def __post_init__(self) -> None:
        if any(n < 1 for n in self.on_submit):
            raise ValueError("submit numbers in on_submit start at 1")
        if any(p < 0 for p in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("fault rates must be non-negative and sum to at most 1")


@dataclass(frozen=True, slots=True)
class SimVenueConfig:
    """Configuration of one simulated venue.

    ``maker_fee``/``taker_fee`` (rates) override the instruments' fees. ``price_offset`` (a tick
    multiple) shifts every recorded price and ``depth_scale`` multiplies every recorded quantity
    (rounded down to lots), so several distinct venues can be derived from one recording.
    ``leverage`` sets the initial margin of perpetual and dated futures (notional / leverage).
    """

    name: str
    instruments: tuple[Instrument, ...]
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    maker_fee: Decimal | None = None
    taker_fee: Decimal | None = None
    latency: timedelta = timedelta(milliseconds=20)
    price_offset: Decimal = ZERO
    depth_scale: Decimal = Decimal(1)
    market_buy_collar: Decimal = Decimal("0.05")
    faults: FaultPlan = field(default_factory=FaultPlan)
    leverage: Decimal = Decimal(5)

    def __post_init__(self) -> None:
        if not self.instruments:
            raise ValueError(f"{self.name}: at least one instrument is needed")
        symbols = [inst.symbol for inst in self.instruments]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"{self.name}: duplicate instrument symbols {symbols}")
        for inst in self.instruments:
            if inst.venue != self.name:
                raise ValueError(f"{inst.symbol} belongs to venue {inst.venue}, not {self.name}")
            if self.price_offset % inst.tick_size != 0:
                raise ValueError(f"price_offset {self.price_offset} is not a tick multiple")
            if inst.kind in _MARGINED and _settle_asset(inst) != inst.quote:
                raise ValueError(f"{inst.symbol}: only linear contracts (settled in the quote)")
        if not 1 <= self.leverage <= 125:
            raise ValueError(f"leverage must be between 1 and 125, got {self.leverage}")
        if self.latency < timedelta(0):
            raise ValueError("latency must not be negative")
        if self.depth_scale <= 0 or self.market_buy_collar < 0:
            raise ValueError("depth_scale must be positive and market_buy_collar non-negative")
        if any(amount < 0 for amount in self.balances.values()):
            raise ValueError("starting balances must not be negative")
        for fee in (self.maker_fee, self.taker_fee):
            if fee is not None and fee < 0:
                raise ValueError("fees must not be negative")


def binance_btcusdt_config(
    name: str = "sim-binance", *, balances: Mapping[str, Decimal] | None = None
) -> SimVenueConfig:
    """A venue trading Binance's BTC/USDT; 1,000,000 USDT and 10 BTC unless ``balances``."""
    start = {"USDT": Decimal(1_000_000), "BTC": Decimal(10)} if balances is None else balances
    return SimVenueConfig(name, (binance_btcusdt_instrument(name),), balances=dict(start))


def binance_usdm_config(
    name: str = "sim-binance-usdm",
    *,
    balances: Mapping[str, Decimal] | None = None,
    leverage: Decimal = Decimal(5),
) -> SimVenueConfig:
    """A venue trading Binance's USDⓈ-M BTC/USDT:USDT perpetual at ``leverage`` (5 unless
    given); 1,000,000 USDT unless ``balances``."""
    start = {"USDT": Decimal(1_000_000)} if balances is None else balances
    instrument = binance_usdm_btcusdt_instrument(name)
    return SimVenueConfig(name, (instrument,), balances=dict(start), leverage=leverage)


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    venue_order_id: str
    lock_asset: str
    lock_left: Decimal
    lock_unit: Decimal | None  # released per unit filled; None: release the fill's cost
    status: VenueOrderStatus = VenueOrderStatus.OPEN
    fills: list[Fill] = field(default_factory=list)
    filled: Decimal = ZERO
    reason: str = ""
    cancel_requested: bool = False

    def state(self) -> VenueOrderState:
        return VenueOrderState(
            client_order_id=self.request.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            filled_qty=self.filled,
            fills=tuple(self.fills),
            reason=self.reason,
        )


def _scale_levels(levels: Levels, offset: Decimal, scale: Decimal, lot: Decimal) -> Levels:
    return tuple((p + offset, (q * scale // lot) * lot) for p, q in levels)


def transform_event(
    event: MarketEvent, *, price_offset: Decimal, depth_scale: Decimal, lot: Decimal
) -> MarketEvent:
    """``event`` with prices shifted by ``price_offset`` and quantities scaled (lot-floored)."""
    o, s = price_offset, depth_scale

    def qty(q: Decimal) -> Decimal:
        return (q * s // lot) * lot

    if isinstance(event, Trade):
        return dataclasses.replace(event, price=event.price + o, qty=qty(event.qty))
    if isinstance(event, BookTicker):
        return dataclasses.replace(
            event,
            bid_price=event.bid_price + o,
            bid_qty=qty(event.bid_qty),
            ask_price=event.ask_price + o,
            ask_qty=qty(event.ask_qty),
        )
    bids = _scale_levels(event.bids, o, s, lot)
    asks = _scale_levels(event.asks, o, s, lot)
    if isinstance(event, BookSnapshot):
        return dataclasses.replace(event, bids=bids, asks=asks)
    assert isinstance(event, BookDiff)
    return dataclasses.replace(event, bids=bids, asks=asks)


class SimVenue:
    """A ``VenuePort`` over matching engines fed by market event streams, one per symbol."""

    def __init__(
        self,
        config: SimVenueConfig,
        clock: Clock,
        feeds: Mapping[str, Iterable[MarketEvent]],
        *,
        first_trade_id: int = 1,
    ) -> None:
        """``feeds`` maps each configured symbol to its time-ordered market events (empty for a
        live feed pushed with ``apply_market_event``). Fill trade ids are ``<name>-<n>`` from
        ``first_trade_id`` on: a venue that outlives the process (paper trading) starts them
        where no earlier run can have reached, since the store keeps one fill per trade id."""
        self.config = config
        self._clock = clock
        self._instruments = {
            inst.symbol: dataclasses.replace(
                inst,
                maker_fee=inst.maker_fee if config.maker_fee is None else config.maker_fee,
                taker_fee=inst.taker_fee if config.taker_fee is None else config.taker_fee,
            )
            for inst in config.instruments
        }
        if set(feeds) != set(self._instruments):
            raise ValueError(f"{config.name}: feeds {sorted(feeds)} do not match the instruments")
        trade_ids = count(first_trade_id)
        self._engines = {
            symbol: MatchingEngine(inst, trade_ids=trade_ids)
            for symbol, inst in self._instruments.items()
        }
        self._events = heapq.merge(
            *(self._tagged(symbol, feed) for symbol, feed in feeds.items()),
            key=lambda item: item[1].ts,
        )
        self._next: tuple[str, MarketEvent] | None = next(self._events, None)
        self._pending: list[tuple[datetime, int, str, str]] = []  # (due, seq, action, client id)
        self._seq = count()
        self._order_ids = count(1)
        self._orders: dict[str, _Order] = {}
        self._changed: dict[str, None] = {}  # ordered set of client ids
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        for inst in self._instruments.values():
            for asset in (inst.base, inst.quote, _settle_asset(inst)):
                self._free.setdefault(asset, ZERO)
                self._locked.setdefault(asset, ZERO)
        self._positions = {
            symbol: PositionState(inst.contract_size)
            for symbol, inst in self._instruments.items()
            if inst.kind in _MARGINED
        }
        self._reduce_only: dict[str, dict[str, None]] = {s: {} for s in self._positions}
        self.funding: list[FundingPayment] = []
        for asset, amount in config.balances.items():
            self._free[asset] = amount
            self._locked.setdefault(asset, ZERO)
        self._dice = random.Random(config.faults.seed)
        self._down = False
        self._down_until: datetime | None = None
        self._now = ensure_utc(clock.now())
        self.submissions: list[str] = []
        # Per symbol: trade times and cumulative traded quantity, for ``traded_volume``.
        self._tape: dict[str, tuple[list[datetime], list[Decimal]]] = {
            symbol: ([], []) for symbol in self._instruments
        }

    # --------------------------------------------------------------------------- constructors
    @classmethod
    def from_recording(
        cls,
        path: str | Path,
        *,
        clock: Clock,
        config: SimVenueConfig | None = None,
    ) -> SimVenue:
        """A single-instrument venue replaying a recorded file (default config: Binance
        BTC/USDT, see ``binance_btcusdt_config``)."""
        config = config or binance_btcusdt_config()
        if len(config.instruments) != 1:
            raise ValueError("a recording feeds exactly one instrument")
        return cls(config, clock, {config.instruments[0].symbol: load_recorded(path)})

    @classmethod
    def from_synthetic(
        cls,
        *,
        clock: Clock,
        config: SimVenueConfig | None = None,
        model: MarketModel | None = None,
        seed: int = 0,
        duration: timedelta | None = None,
    ) -> SimVenue:
        """A single-instrument venue over a seeded synthetic market starting at ``clock.now()``
        (``duration`` ``None``: endless)."""
        config = config or binance_btcusdt_config()
        if len(config.instruments) != 1:
            raise ValueError("a synthetic market feeds exactly one instrument")
        feed = generate_market(model, seed=seed, start=clock.now(), duration=duration)
        return cls(config, clock, {config.instruments[0].symbol: feed})

    def _tagged(
        self, symbol: str, feed: Iterable[MarketEvent]
    ) -> Iterator[tuple[str, MarketEvent]]:
        offset, scale = self.config.price_offset, self.config.depth_scale
        lot = self._instruments[symbol].lot_size
        plain = offset == 0 and scale == 1
        for event in feed:
            if plain:
                yield symbol, event
            else:
                yield (
                    symbol,
                    transform_event(event, price_offset=offset, depth_scale=scale, lot=lot),
                )

    # ----------------------------------------------------------------------------- simulation
    @property
    def now(self) -> datetime:
        """The time up to which the venue has processed events."""
        return self._now

    def engine(self, symbol: str) -> MatchingEngine:
        """The matching engine of ``symbol`` (for inspection in tests and research)."""
        return self._engines[symbol]

    def advance_to(self, ts: datetime) -> None:
        """Process every market event and pending order action due at or before ``ts``."""
        ts = ensure_utc(ts)
        while True:
            due = self._pending[0][0] if self._pending else None
            upcoming = self._next
            if (
                upcoming is not None
                and upcoming[1].ts <= ts
                and (due is None or upcoming[1].ts <= due)
            ):
                self._next = next(self._events, None)
                self._on_market(*upcoming)
            elif due is not None and due <= ts:
                when, _, action, client_id = heapq.heappop(self._pending)
                self._now = max(self._now, when)
                self._on_action(action, self._orders[client_id], when)
            else:
                break
        self._now = max(self._now, ts)

    def apply_market_event(self, symbol: str, event: MarketEvent) -> None:
        """Process one live market event of ``symbol`` (paper trading on a live feed).

        Order actions due up to ``event.ts`` run first, as in ``advance_to``. Live events must
        come in time order: one older than ``now`` raises ``ValueError``.
        """
        if symbol not in self._engines:
            raise ValueError(f"{self.name}: unknown symbol {symbol}")
        ts = ensure_utc(event.ts)
        if ts < self._now:
            raise ValueError(f"{self.name}: event at {ts} is older than the venue time {self._now}")
        self.advance_to(ts)
        self._on_market(symbol, event)

    def _catch_up(self) -> None:
        self.advance_to(self._clock.now())
        if self._down and self._down_until is not None and self._now >= self._down_until:
            self.restore()

    def _on_market(self, symbol: str, event: MarketEvent) -> None:
        self._now = max(self._now, event.ts)
        if isinstance(event, Trade):
            times, cumulative = self._tape[symbol]
            times.append(event.ts)
            cumulative.append((cumulative[-1] if cumulative else ZERO) + event.qty)
        for fill in self._engines[symbol].on_event(event):
            self._settle(self._orders[fill.client_order_id], fill)

    def _on_action(self, action: str, order: _Order, when: datetime) -> None:
        if order.status in _TERMINAL:
            return
        engine = self._engines[order.request.symbol]
        if action == "cancel":
            engine.cancel(order.request.client_order_id)
            self._finish(order, VenueOrderStatus.CANCELLED, "cancelled on request")
            return
        result: Execution = engine.submit(self._spec(order), when)
        for fill in result.fills:
            self._settle(order, fill)
        if order.status in _TERMINAL:
            return
        if result.status in (VenueOrderStatus.REJECTED, VenueOrderStatus.EXPIRED):
            # OPEN was acknowledged already, so a post-only cross now can only expire the order.
            self._finish(order, VenueOrderStatus.EXPIRED, result.reason)
        self._changed[order.request.client_order_id] = None

    def _spec(self, order: _Order) -> OrderSpec:
        request = order.request
        budget = order.lock_left if order.lock_unit is None else None
        return OrderSpec.of(request, quote_budget=budget)

    def _settle(self, order: _Order, fill: Fill) -> None:
        if order.status in _TERMINAL:  # a reduce-only order expired earlier in this event
            return
        inst = self._instruments[order.request.symbol]
        if inst.kind in _MARGINED:
            self._settle_margined(order, inst, fill)
            return
        cost = inst.notional(fill.qty, fill.price)
        if fill.side is Side.BUY:
            release = cost + fill.fee if order.lock_unit is None else fill.qty * order.lock_unit
            self._locked[inst.quote] -= release
            self._free[inst.quote] += release - cost - fill.fee
            self._free[inst.base] += fill.qty
        else:
            release = fill.qty
            self._locked[inst.base] -= release
            self._free[inst.quote] += cost - fill.fee
        order.lock_left -= release
        self._record(order, fill)

    def _record(self, order: _Order, fill: Fill) -> None:
        order.fills.append(fill)
        order.filled += fill.qty
        self._changed[order.request.client_order_id] = None
        if order.filled == order.request.qty:
            self._finish(order, VenueOrderStatus.FILLED, "")

    def _settle_margined(self, order: _Order, inst: Instrument, fill: Fill) -> None:
        """Settle a futures fill: release its lock, pay the fee, trade the position."""
        symbol, settle = inst.symbol, _settle_asset(inst)
        position = self._positions[symbol]
        engine = self._engines[symbol]
        clipped = False
        if order.request.reduce_only:
            closable = position.closable(fill.side)
            if closable == 0:
                self._expire_reduce_only(order, "the position is already closed")
                return
            if fill.qty > closable:  # last guard: a reduce-only order never flips the position
                rate = engine.maker_fee if fill.liquidity is Liquidity.MAKER else engine.taker_fee
                fee = inst.notional(closable, fill.price) * rate
                fill = dataclasses.replace(fill, qty=closable, fee=fee)
                clipped = True
        assert order.lock_unit is not None
        release = min(fill.qty * order.lock_unit, order.lock_left)
        order.lock_left -= release
        margin_before = position.margin(self.config.leverage)
        realised = position.apply_fill(fill.side, fill.qty, fill.price)
        margin_change = position.margin(self.config.leverage) - margin_before
        self._locked[settle] += margin_change - release
        self._free[settle] += release - margin_change + realised - fill.fee
        self._record(order, fill)
        if clipped and order.status not in _TERMINAL:
            self._expire_reduce_only(order, "the position is closed")
        self._enforce_reduce_only(symbol)

    def _expire_reduce_only(self, order: _Order, why: str) -> None:
        self._engines[order.request.symbol].cancel(order.request.client_order_id)
        self._finish(order, VenueOrderStatus.EXPIRED, f"reduce-only order cancelled: {why}")

    def _enforce_reduce_only(self, symbol: str) -> None:
        """Expire open reduce-only orders that the position can no longer absorb, latest last."""
        position = self._positions[symbol]
        allowance: dict[Side, Decimal] = {side: position.closable(side) for side in Side}
        for client_id in list(self._reduce_only[symbol]):
            order = self._orders[client_id]
            side, remaining = order.request.side, order.request.qty - order.filled
            if remaining > allowance[side]:
                self._expire_reduce_only(order, "it would increase or flip the position")
            else:
                allowance[side] -= remaining

    def _finish(self, order: _Order, status: VenueOrderStatus, reason: str) -> None:
        self._reduce_only.get(order.request.symbol, {}).pop(order.request.client_order_id, None)
        self._locked[order.lock_asset] -= order.lock_left
        self._free[order.lock_asset] += order.lock_left
        order.lock_left = ZERO
        order.status = status
        order.reason = reason
        self._changed[order.request.client_order_id] = None

    # ------------------------------------------------------------------------- fault control
    @property
    def is_down(self) -> bool:
        return self._down

    def go_down(self, until: datetime | None = None) -> None:
        """Make every port call raise ``VenueUnavailable`` until ``until`` or ``restore()``."""
        self._down = True
        self._down_until = until

    def restore(self) -> None:
        """Bring the venue back up."""
        self._down = False
        self._down_until = None

    def _check_up(self) -> None:
        if self._down:
            raise VenueUnavailable(self.name, "venue is down (injected)")

    def _draw_fault(self, n: int) -> FaultKind | None:
        plan = self.config.faults
        fault = plan.on_submit.get(n)
        if plan.rates:
            roll, edge = self._dice.random(), 0.0
            for kind, rate in plan.rates.items():
                edge += rate
                if fault is None and roll < edge:
                    fault = kind
                    break
        return fault

    # ------------------------------------------------------------------------------ VenuePort
    @property
    def name(self) -> str:
        return self.config.name

    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by symbol, with the venue's effective fees."""
        return dict(self._instruments)

    async def submit(self, request: OrderRequest) -> VenueOrderState:
        """Accept ``request`` (it reaches the book after the latency) or raise; see the module."""
        self._catch_up()
        self._check_up()
        self.submissions.append(request.client_order_id)
        fault = self._draw_fault(len(self.submissions))
        n = len(self.submissions)
        if fault is FaultKind.RATE_LIMITED:
            raise RateLimited(self.name, f"submit #{n} rate limited (injected)")
        if fault is FaultKind.UNAVAILABLE:
            raise VenueUnavailable(self.name, f"submit #{n} refused: unavailable (injected)")
        if fault is FaultKind.GO_DOWN:
            down_for = self.config.faults.down_for
            self.go_down(None if down_for is None else self._now + down_for)
            raise VenueUnavailable(self.name, f"venue went down at submit #{n} (injected)")
        if fault is FaultKind.UNKNOWN_BEFORE_ACCEPT:
            raise SubmitOutcomeUnknown(self.name, f"submit #{n} timed out (injected, not sent)")
        try:
            order = self._accept(request)
        except VenueRejected:
            if fault is FaultKind.UNKNOWN_AFTER_ACCEPT:
                raise SubmitOutcomeUnknown(self.name, f"submit #{n} timed out (injected)") from None
            raise
        if fault is FaultKind.UNKNOWN_AFTER_ACCEPT:
            raise SubmitOutcomeUnknown(self.name, f"submit #{n} timed out (injected, accepted)")
        return order.state()

    def _reject(self, request: OrderRequest, rule: str) -> VenueRejected:
        return VenueRejected(self.name, f"order {request.client_order_id} rejected: {rule}")

    def _accept(self, request: OrderRequest) -> _Order:
        inst = self._instruments.get(request.symbol)
        if inst is None or request.venue != self.name:
            raise self._reject(request, f"unknown symbol {request.symbol} on {request.venue}")
        if request.client_order_id in self._orders:
            raise self._reject(request, "duplicate client order id")
        if request.reduce_only and inst.kind is InstrumentKind.SPOT:
            raise self._reject(request, "reduce_only is not supported on spot")
        if request.reduce_only and inst.kind in _MARGINED:
            closable = self._positions[request.symbol].closable(request.side)
            if closable == 0:
                raise self._reject(request, "reduce-only order would increase the position")
            if request.qty > closable:
                raise self._reject(
                    request,
                    f"reduce-only order of {request.qty} would flip the position of {closable}",
                )
        engine = self._engines[request.symbol]
        is_market = request.order_type is OrderType.MARKET
        if is_market and request.time_in_force is TimeInForce.POST_ONLY:
            raise self._reject(request, "a market order cannot be post-only")
        # Binance exempts reduce-only futures orders from the minimum notional (closing a dust
        # position must stay possible); spot reduce-only orders were refused above.
        rules = dataclasses.replace(inst, min_notional=ZERO) if request.reduce_only else inst
        try:
            rules.validate_order(request.qty, None if is_market else request.price)
        except InvalidOrder as exc:
            raise self._reject(request, str(exc)) from None
        lock_asset, lock, unit = self._lock_for(request, inst, engine)
        if self._free[lock_asset] < lock:
            raise self._reject(
                request,
                f"insufficient balance: needs {lock} {lock_asset}, {self._free[lock_asset]} free",
            )
        self._free[lock_asset] -= lock
        self._locked[lock_asset] += lock
        order = _Order(request, f"{self.name}-o{next(self._order_ids)}", lock_asset, lock, unit)
        self._orders[request.client_order_id] = order
        if request.reduce_only:
            self._reduce_only[request.symbol][request.client_order_id] = None
        due = self._now + self.config.latency
        heapq.heappush(self._pending, (due, next(self._seq), "activate", request.client_order_id))
        self._changed[request.client_order_id] = None
        return order

    def _lock_for(
        self, request: OrderRequest, inst: Instrument, engine: MatchingEngine
    ) -> tuple[str, Decimal, Decimal | None]:
        """(asset, amount, release per unit filled) an order locks; raises on a bad order."""
        if inst.kind in _MARGINED:
            return self._margin_lock(request, inst, engine)
        if request.order_type is OrderType.MARKET:
            estimate = self._market_estimate(request, inst, engine)
            if request.side is Side.SELL:
                return inst.base, request.qty, Decimal(1)
            budget = estimate * (1 + self.config.market_buy_collar) * (1 + inst.taker_fee)
            return inst.quote, budget, None
        assert request.price is not None
        self._check_post_only(request, engine)
        if request.side is Side.SELL:
            return inst.base, request.qty, Decimal(1)
        fee = max(inst.maker_fee, inst.taker_fee)
        unit = inst.notional(Decimal(1), request.price) * (1 + fee)
        return inst.quote, request.qty * unit, unit

    def _check_post_only(self, request: OrderRequest, engine: MatchingEngine) -> None:
        if request.time_in_force is not TimeInForce.POST_ONLY:
            return
        assert request.price is not None
        far = engine.best(request.side.opposite)
        if far is not None and (
            request.price >= far if request.side is Side.BUY else request.price <= far
        ):
            raise self._reject(request, f"post-only order would cross the book at {far}")

    def _margin_lock(
        self, request: OrderRequest, inst: Instrument, engine: MatchingEngine
    ) -> tuple[str, Decimal, Decimal]:
        """(settle asset, amount, per unit) a futures order locks: margin plus fee per unit."""
        if request.order_type is OrderType.MARKET:
            estimate = self._market_estimate(request, inst, engine)
            unit_notional = estimate / request.qty * (1 + self.config.market_buy_collar)
            fee = inst.taker_fee
        else:
            assert request.price is not None
            self._check_post_only(request, engine)
            price = request.price
            bid = engine.best(Side.BUY) if request.side is Side.SELL else None
            if bid is not None and bid > price:  # a crossing sell fills above its limit
                price = bid
            unit_notional = inst.notional(Decimal(1), price)
            fee = max(inst.maker_fee, inst.taker_fee)
        margin = ZERO if request.reduce_only else unit_notional / self.config.leverage
        unit = margin + unit_notional * fee
        return _settle_asset(inst), request.qty * unit, unit

    def _market_estimate(
        self, request: OrderRequest, inst: Instrument, engine: MatchingEngine
    ) -> Decimal:
        """Estimated notional of a market order on the current book; raises if unfit."""
        fillable, notional = engine.estimate_cost(request.side, request.qty)
        if fillable == 0:
            raise self._reject(request, "no liquidity on the other side for a market order")
        estimate = inst.notional(request.qty, notional / fillable)
        if estimate < inst.min_notional and not request.reduce_only:
            raise self._reject(
                request, f"notional about {estimate} is below the minimum {inst.min_notional}"
            )
        return estimate

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        """Request a cancel, effective after the latency; a no-op for finished orders."""
        self._catch_up()
        self._check_up()
        order = self._find(client_order_id, symbol)
        if order.status in _TERMINAL or order.cancel_requested:
            return
        order.cancel_requested = True
        due = self._now + self.config.latency
        heapq.heappush(self._pending, (due, next(self._seq), "cancel", client_order_id))

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrderState:
        """The order's status and every fill so far, by client id."""
        self._catch_up()
        self._check_up()
        return self._find(client_order_id, symbol).state()

    def _find(self, client_order_id: str, symbol: str) -> _Order:
        order = self._orders.get(client_order_id)
        if order is None or order.request.symbol != symbol:
            raise OrderNotFoundAtVenue(self.name, f"no order {client_order_id} for {symbol}")
        return order

    async def order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The visible book (recorded levels minus what we took, plus our resting orders)."""
        self._catch_up()
        self._check_up()
        engine = self._engines.get(symbol)
        if engine is None:
            raise VenueRejected(self.name, f"unknown symbol {symbol}")
        return OrderBook(
            venue=self.name,
            symbol=symbol,
            ts=self._now,
            bids=tuple(engine.levels(Side.BUY, depth)),
            asks=tuple(engine.levels(Side.SELL, depth)),
        )

    native_iceberg = False  # icebergs here are worked synthetically by the algorithm

    async def traded_volume(self, symbol: str, since: datetime) -> Decimal:
        """Market quantity traded on ``symbol`` after ``since`` (recorded trades, not ours)."""
        self._catch_up()
        self._check_up()
        if symbol not in self._tape:
            raise VenueRejected(self.name, f"unknown symbol {symbol}")
        times, cumulative = self._tape[symbol]
        if not cumulative:
            return ZERO
        before = bisect_right(times, ensure_utc(since))
        return cumulative[-1] - (cumulative[before - 1] if before else ZERO)

    async def balances(self) -> Mapping[str, Balance]:
        """Free and locked amount of every asset."""
        self._catch_up()
        self._check_up()
        return {
            asset: Balance(asset, free, self._locked[asset]) for asset, free in self._free.items()
        }

    def mark_price(self, symbol: str) -> Decimal | None:
        """The mark used for unrealised PnL: the recorded mid (``None`` without a two-sided
        book)."""
        book = self._engines[symbol].book
        bid, ask = book.best_bid, book.best_ask
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2

    async def positions(self) -> Mapping[str, PerpPosition]:
        """Open futures positions by symbol (flat symbols are left out), marked at the mid."""
        self._catch_up()
        self._check_up()
        return {
            symbol: state.report(symbol, self.mark_price(symbol), self.config.leverage)
            for symbol, state in self._positions.items()
            if state.qty != 0
        }

    def apply_funding(
        self, symbol: str, rate: Decimal, mark: Decimal, at: datetime
    ) -> FundingPayment:
        """Settle one funding rate on ``symbol`` as of ``at`` (the venue first catches up to it):
        the settle balance moves by ``-position * mark * rate * contract_size``, so shorts
        receive when the rate is positive. The payment is also appended to ``funding``."""
        inst = self._instruments.get(symbol)
        if inst is None or inst.kind is not InstrumentKind.PERPETUAL:
            raise ValueError(f"{self.name}: {symbol} is not a perpetual on this venue")
        if mark <= 0:
            raise ValueError(f"mark price must be positive, got {mark}")
        at = ensure_utc(at)
        self.advance_to(at)
        position = self._positions[symbol].qty
        amount = -position * mark * rate * inst.contract_size
        self._free[_settle_asset(inst)] += amount
        payment = FundingPayment(symbol, at, rate, mark, position, amount)
        self.funding.append(payment)
        return payment

    def drain_updates(self) -> list[VenueOrderState]:
        """States of orders that changed since the last call (nothing while down)."""
        self._catch_up()
        if self._down:
            return []
        changed, self._changed = self._changed, {}
        return [self._orders[client_id].state() for client_id in changed]
