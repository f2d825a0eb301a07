"""A simulated options venue quoting from an implied-volatility surface, behind ``VenuePort``.

The venue lists European options on one underlying (BTC by default), linear and settled in the
quote currency (USDT), one unit of underlying a contract, with ccxt's linear-option symbols
``BTC/USDT:USDT-YYMMDD-STRIKE-P`` (``-C`` for calls). At construction — and again whenever
:meth:`SimOptionsVenue.relist` is called — it lists, around a listing spot:

* expiries: the next ``weekly_expiries`` Fridays at 08:00 UTC after now and the last Fridays
  (08:00 UTC) of the next ``monthly_expiries`` months whose last Friday is still ahead (the
  current month included), deduplicated;
* strikes: every multiple of ``strike_step`` from ``spot × (1 − below%)`` up to
  ``spot × (1 + above%)``, for each configured right.

**Quotes.** The book of an option is recomputed on every call from
:meth:`risk.vol_surface.VolSurface.quote` at the current underlying price (the injected
``underlying()`` callable, e.g. :func:`underlying_mid` of a spot venue) and the clock's time:
level 1 is the quote's bid and ask, each deeper level ``level_step_ticks`` ticks further, every
level ``level_qty`` contracts. A bid of 0 (a far wing) means no bids. The market has no memory:
sizes are constant, nothing we take is removed from the next quote.

**Orders** (limit and market; GTC, IOC, post-only) are matched at once on submit: a crossing buy
walks the ask levels up to its limit (a sell the bids), as taker at the level prices. An IOC or
market remainder ends EXPIRED; a GTC (or non-crossing post-only) remainder rests and fills later,
as maker at its own limit price, when a refreshed quote crosses it, up to the quantity of the
levels it crosses. Resting orders are checked on every catch-up (every port call).

**Money.** Every amount is an exact ``Decimal`` in the quote currency. The fee of a fill follows
Deribit: ``min(fee_rate_underlying × underlying price × qty, fee_cap_premium × price × qty)``,
rounded up to 1e-8. A buy pays premium plus fee from the free quote balance; a resting buy locks
its premium plus the largest fee it can pay (``fee_cap_premium × premium``) and releases the
surplus as it fills or ends. A sell receives the premium minus the fee. The venue does not write
options: positions are long only, so a sell may not exceed the position minus the quantity of
open sells, and a reduce-only buy is always refused.

**Expiry.** Once an option's expiry has passed, its open orders are cancelled and, when an
underlying price is available, its position settles at intrinsic value (put ``max(K − S, 0)``,
call ``max(S − K, 0)`` per contract) into the free quote balance, recorded in ``settlements``.

**Time and the synchronous ``drain_updates``.** Each asynchronous port call first asks
``underlying()`` for a price and catches up to ``clock.now()``. ``drain_updates`` is synchronous
and cannot await it, so it catches up with the last price seen by an asynchronous call: it
cancels orders on expired options and fills resting orders against that price, but leaves
settlement (which must use a current price) to the next asynchronous call.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from typing import NamedTuple

from ems.clock import Clock
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
    Rounding,
    Side,
    TimeInForce,
    ensure_utc,
    round_to_step,
)
from ems.errors import (
    InvalidOrder,
    OrderNotFoundAtVenue,
    RetryableVenueError,
    VenueError,
    VenueRejected,
)
from ems.ports import VenueOrderState, VenueOrderStatus, VenuePort
from risk.vol_surface import VolSurface

FEE_QUANTUM = Decimal("0.00000001")
EXPIRY_TIME = time(8, 0, tzinfo=UTC)
_FRIDAY = 4
_HUNDRED = Decimal(100)
_RIGHT_LETTER = {OptionRight.PUT: "P", OptionRight.CALL: "C"}
_SYMBOL_RE = re.compile(
    r"^(?P<base>[^/]+)/(?P<quote>[^:]+):(?P<settle>[^-]+)"
    r"-(?P<date>\d{6})-(?P<strike>\d+(?:\.\d+)?)-(?P<right>[PC])$"
)
_TERMINAL = frozenset(
    {
        VenueOrderStatus.FILLED,
        VenueOrderStatus.CANCELLED,
        VenueOrderStatus.REJECTED,
        VenueOrderStatus.EXPIRED,
    }
)

UnderlyingPrice = Callable[[], Awaitable[Decimal | None]]


# --------------------------------------------------------------------------------- config
@dataclass(frozen=True, slots=True)
class OptionsVenueConfig:
    """Configuration of a :class:`SimOptionsVenue`; see the module docstring for the meaning.

    Percentages are in percent (``50`` = 50 %), ``spread_bps`` is the full bid-ask spread around
    the surface's fair value in basis points, ``balances`` the starting amounts per asset.
    ``rights`` accepts ``OptionRight`` values or their strings (``"put"``, ``"call"``).
    """

    name: str = "options-sim"
    underlying: str = "BTC"
    quote: str = "USDT"
    strike_step: Decimal = Decimal(1000)
    strikes_below_pct: Decimal = Decimal(50)
    strikes_above_pct: Decimal = Decimal(30)
    weekly_expiries: int = 4
    monthly_expiries: int = 6
    rights: tuple[OptionRight | str, ...] = (OptionRight.PUT, OptionRight.CALL)
    tick_size: Decimal = Decimal(5)
    lot_size: Decimal = Decimal("0.01")
    min_qty: Decimal = Decimal("0.01")
    spread_bps: float = 400.0
    levels: int = 5
    level_qty: Decimal = Decimal(5)
    level_step_ticks: int = 2
    fee_rate_underlying: Decimal = Decimal("0.0003")
    fee_cap_premium: Decimal = Decimal("0.125")
    balances: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rights", _parse_rights(self.rights))
        _check(bool(self.name.strip()), "name must not be empty")
        _check(
            bool(self.underlying) and bool(self.quote) and self.underlying != self.quote,
            f"underlying {self.underlying!r} and quote {self.quote!r} must be distinct assets",
        )
        _check(self.strike_step > 0, f"strike_step must be positive, got {self.strike_step}")
        _check(
            0 <= self.strikes_below_pct < 100,
            f"strikes_below_pct must be in [0, 100), got {self.strikes_below_pct}",
        )
        _check(
            self.strikes_above_pct >= 0,
            f"strikes_above_pct must not be negative, got {self.strikes_above_pct}",
        )
        _check(
            self.weekly_expiries >= 0 and self.monthly_expiries >= 0,
            "weekly_expiries and monthly_expiries must not be negative",
        )
        _check(
            self.weekly_expiries + self.monthly_expiries > 0, "at least one expiry must be listed"
        )
        self._check_market()
        _check(
            self.fee_rate_underlying >= 0 and self.fee_cap_premium >= 0,
            "fee_rate_underlying and fee_cap_premium must not be negative",
        )
        for asset, amount in self.balances.items():
            _check(amount >= 0, f"starting balance of {asset} must not be negative, got {amount}")

    def _check_market(self) -> None:
        for name in ("tick_size", "lot_size", "level_qty"):
            value = getattr(self, name)
            _check(value > 0, f"{name} must be positive, got {value}")
        _check(self.min_qty >= 0, f"min_qty must not be negative, got {self.min_qty}")
        _check(
            self.level_qty % self.lot_size == 0,
            f"level_qty {self.level_qty} must be a multiple of lot_size {self.lot_size}",
        )
        _check(
            math.isfinite(self.spread_bps) and self.spread_bps >= 0,
            f"spread_bps must be finite and not negative, got {self.spread_bps}",
        )
        _check(self.levels >= 1, f"levels must be at least 1, got {self.levels}")
        _check(
            self.level_step_ticks >= 1,
            f"level_step_ticks must be at least 1, got {self.level_step_ticks}",
        )


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"OptionsVenueConfig: {message}")


def _parse_rights(rights: Iterable[OptionRight | str]) -> tuple[OptionRight, ...]:
    parsed: list[OptionRight] = []
    for right in rights:
        try:
            parsed.append(OptionRight(right))
        except ValueError:
            raise ValueError(
                f"OptionsVenueConfig: unknown option right {right!r} (use 'put' or 'call')"
            ) from None
    _check(bool(parsed), "at least one right must be listed")
    _check(len(set(parsed)) == len(parsed), f"duplicate rights in {parsed}")
    return tuple(parsed)


# ------------------------------------------------------------------------- symbols, listing
class OptionSymbol(NamedTuple):
    """The parts of a ccxt linear-option symbol."""

    base: str
    quote: str
    settle: str
    expiry: datetime
    strike: Decimal
    right: OptionRight


def option_symbol(
    base: str, quote: str, expiry: datetime, strike: Decimal, right: OptionRight
) -> str:
    """ccxt's symbol of a linear option settled in ``quote``, e.g.
    ``BTC/USDT:USDT-240809-60000-P``."""
    strike_text = format(strike.normalize(), "f")
    return f"{base}/{quote}:{quote}-{expiry:%y%m%d}-{strike_text}-{_RIGHT_LETTER[right]}"


def parse_option_symbol(symbol: str) -> OptionSymbol:
    """The parts of an option symbol made by :func:`option_symbol` (expiry at 08:00 UTC);
    ``ValueError`` for anything else."""
    match = _SYMBOL_RE.match(symbol)
    if match is None:
        raise ValueError(f"{symbol!r} is not a linear option symbol BASE/QUOTE:SETTLE-YYMMDD-K-P|C")
    day = datetime.strptime(match["date"], "%y%m%d").replace(tzinfo=UTC)
    right = OptionRight.PUT if match["right"] == "P" else OptionRight.CALL
    return OptionSymbol(
        base=match["base"],
        quote=match["quote"],
        settle=match["settle"],
        expiry=datetime.combine(day.date(), EXPIRY_TIME),
        strike=Decimal(match["strike"]),
        right=right,
    )


def weekly_expiries(now: datetime, n: int) -> list[datetime]:
    """The next ``n`` Fridays at 08:00 UTC strictly after ``now``."""
    now = ensure_utc(now)
    today = now.date()
    first = datetime.combine(today + timedelta(days=(_FRIDAY - today.weekday()) % 7), EXPIRY_TIME)
    if first <= now:
        first += timedelta(days=7)
    return [first + timedelta(weeks=i) for i in range(n)]


def last_friday(year: int, month: int) -> datetime:
    """The last Friday of ``month`` at 08:00 UTC."""
    last_day = calendar.monthrange(year, month)[1]
    day = datetime(year, month, last_day, tzinfo=UTC).date()
    day -= timedelta(days=(day.weekday() - _FRIDAY) % 7)
    return datetime.combine(day, EXPIRY_TIME)


def monthly_expiries(now: datetime, n: int) -> list[datetime]:
    """The last Fridays (08:00 UTC) of the next ``n`` months whose last Friday is after
    ``now``, starting with the current month."""
    now = ensure_utc(now)
    year, month = now.year, now.month
    found: list[datetime] = []
    while len(found) < n:
        expiry = last_friday(year, month)
        if expiry > now:
            found.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def listing_expiries(now: datetime, weekly: int, monthly: int) -> list[datetime]:
    """Weekly and monthly expiries after ``now``, deduplicated, in time order."""
    return sorted(set(weekly_expiries(now, weekly)) | set(monthly_expiries(now, monthly)))


def listing_strikes(
    spot: Decimal, step: Decimal, below_pct: Decimal, above_pct: Decimal
) -> list[Decimal]:
    """Positive multiples of ``step`` from ``spot × (1 − below%)`` to ``spot × (1 + above%)``."""
    if spot <= 0:
        raise ValueError(f"listing spot must be positive, got {spot}")
    low = round_to_step(spot * (_HUNDRED - below_pct) / _HUNDRED, step, Rounding.UP)
    high = round_to_step(spot * (_HUNDRED + above_pct) / _HUNDRED, step, Rounding.DOWN)
    first = max(int(low / step), 1)
    last = int(high / step)
    return [(step * n).quantize(step) for n in range(first, last + 1)]


def deribit_fee(
    qty: Decimal, price: Decimal, underlying_price: Decimal, rate: Decimal, cap: Decimal
) -> Decimal:
    """Deribit's option fee: ``min(rate × underlying × qty, cap × price × qty)``, rounded up to
    :data:`FEE_QUANTUM`."""
    fee = min(rate * underlying_price * qty, cap * price * qty)
    return round_to_step(fee, FEE_QUANTUM, Rounding.UP)


def underlying_mid(venue: VenuePort, symbol: str) -> UnderlyingPrice:
    """An ``underlying()`` callable: the mid of ``venue``'s ``symbol`` book, or ``None`` without
    a two-sided book or when the venue raises a ``VenueError``."""

    async def mid() -> Decimal | None:
        try:
            book = await venue.order_book(symbol, 1)
        except VenueError:
            return None
        return book.mid

    return mid


# ---------------------------------------------------------------------------- venue state
@dataclass(frozen=True, slots=True)
class OptionSettlement:
    """One expired position settled in cash: ``amount`` (quote currency) was credited for
    ``qty`` contracts of ``symbol`` at ``underlying_price``, at venue time ``at``."""

    symbol: str
    at: datetime
    underlying_price: Decimal
    qty: Decimal
    amount: Decimal


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    venue_order_id: str
    status: VenueOrderStatus = VenueOrderStatus.OPEN
    fills: list[Fill] = field(default_factory=list)
    filled: Decimal = ZERO
    reason: str = ""
    lock_left: Decimal = ZERO  # quote locked by a resting buy

    @property
    def remaining(self) -> Decimal:
        return self.request.qty - self.filled

    def state(self) -> VenueOrderState:
        return VenueOrderState(
            client_order_id=self.request.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            filled_qty=self.filled,
            fills=tuple(self.fills),
            reason=self.reason,
        )


Levels = tuple[BookLevel, ...]


class SimOptionsVenue:
    """A ``VenuePort`` for options quoted from a ``VolSurface``; see the module docstring."""

    native_iceberg = False  # icebergs are worked synthetically by the algorithm

    def __init__(
        self,
        config: OptionsVenueConfig,
        clock: Clock,
        surface: VolSurface,
        underlying: UnderlyingPrice,
        listing_spot: Decimal,
        *,
        first_trade_id: int = 1,
    ) -> None:
        """List the options due at ``clock.now()`` around ``listing_spot``. Fill trade ids are
        ``<name>-<n>`` from ``first_trade_id`` on."""
        self.config = config
        self._clock = clock
        self._surface = surface
        self._underlying = underlying
        self._now = ensure_utc(clock.now())
        self._instruments: dict[str, Instrument] = {}
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, dict[str, None]] = {}  # symbol -> ordered set of open client ids
        self._changed: dict[str, None] = {}  # ordered set of client ids
        self._positions: dict[str, Decimal] = {}
        self._free: dict[str, Decimal] = {config.quote: ZERO, **config.balances}
        self._locked: dict[str, Decimal] = dict.fromkeys(self._free, ZERO)
        self._trade_ids = count(first_trade_id)
        self._order_ids = count(1)
        self._last_spot: Decimal | None = None
        self.settlements: list[OptionSettlement] = []
        self.relist(listing_spot)

    # ---------------------------------------------------------------------------- listing
    def relist(self, spot: Decimal) -> list[str]:
        """List every option due now around ``spot`` that is not listed yet and drop expired
        options that are neither held nor have open orders; returns the new symbols.

        Idempotent; never removes an instrument with a position or open orders.
        """
        now = ensure_utc(self._clock.now())
        self._prune_expired(now)
        cfg = self.config
        strikes = listing_strikes(
            spot, cfg.strike_step, cfg.strikes_below_pct, cfg.strikes_above_pct
        )
        added: list[str] = []
        for expiry in listing_expiries(now, cfg.weekly_expiries, cfg.monthly_expiries):
            for strike in strikes:
                for right in _parse_rights(cfg.rights):
                    inst = self._make_instrument(expiry, strike, right)
                    if inst.symbol not in self._instruments:
                        self._instruments[inst.symbol] = inst
                        added.append(inst.symbol)
        return added

    def _make_instrument(self, expiry: datetime, strike: Decimal, right: OptionRight) -> Instrument:
        cfg = self.config
        return Instrument(
            venue=cfg.name,
            symbol=option_symbol(cfg.underlying, cfg.quote, expiry, strike, right),
            kind=InstrumentKind.OPTION,
            base=cfg.underlying,
            quote=cfg.quote,
            tick_size=cfg.tick_size,
            lot_size=cfg.lot_size,
            min_qty=cfg.min_qty,
            min_notional=ZERO,
            settle=cfg.quote,
            contract_size=Decimal(1),
            expiry=expiry,
            strike=strike,
            right=right,
            maker_fee=cfg.fee_rate_underlying,
            taker_fee=cfg.fee_rate_underlying,
        )

    def _prune_expired(self, now: datetime) -> None:
        for symbol, inst in list(self._instruments.items()):
            if (
                _expired(inst, now)
                and not self._positions.get(symbol)
                and not self._open.get(symbol)
            ):
                del self._instruments[symbol]

    # ------------------------------------------------------------------------- catching up
    async def _refresh(self) -> Decimal | None:
        """Ask for the underlying price and catch up to the clock with it (settling expiries)."""
        spot = await self._underlying()
        if spot is not None and spot <= 0:
            spot = None
        if spot is not None:
            self._last_spot = spot
        self._catch_up(spot, settle=True)
        return spot

    def _catch_up(self, spot: Decimal | None, *, settle: bool) -> None:
        """Bring the venue to ``clock.now()``: end orders on expired options, settle expired
        positions (only with ``settle`` and a price), fill resting orders a new quote crosses."""
        self._now = max(self._now, ensure_utc(self._clock.now()))
        expired = [inst for inst in self._instruments.values() if _expired(inst, self._now)]
        for inst in expired:
            self._cancel_open(inst.symbol, VenueOrderStatus.CANCELLED, "option expired")
        if spot is None:
            return
        if settle:
            for inst in expired:
                self._settle_expiry(inst, spot)
        self._match_resting(spot)

    def _settle_expiry(self, inst: Instrument, spot: Decimal) -> None:
        qty = self._positions.pop(inst.symbol, ZERO)
        if qty == 0:
            return
        assert inst.strike is not None
        diff = spot - inst.strike if inst.right is OptionRight.CALL else inst.strike - spot
        amount = max(diff, ZERO) * qty * inst.contract_size
        self._free[self.config.quote] += amount
        self.settlements.append(OptionSettlement(inst.symbol, self._now, spot, qty, amount))

    def _match_resting(self, spot: Decimal) -> None:
        """Fill resting orders, as maker at their limit, against a freshly computed quote."""
        for symbol, client_ids in self._open.items():
            if not client_ids:
                continue
            bids, asks = self._levels(self._instruments[symbol], spot)
            for client_id in list(client_ids):
                order = self._orders[client_id]
                price = order.request.price
                assert price is not None
                qty = min(order.remaining, _crossed_qty(order.request.side, price, bids, asks))
                if qty > 0:
                    self._fill(order, price, qty, Liquidity.MAKER, spot)

    def _cancel_open(self, symbol: str, status: VenueOrderStatus, reason: str) -> None:
        for client_id in list(self._open.get(symbol, {})):
            self._finish(self._orders[client_id], status, reason)

    # ----------------------------------------------------------------------------- quotes
    def _levels(self, inst: Instrument, spot: Decimal) -> tuple[Levels, Levels]:
        """Bid and ask levels (best first) quoted for ``inst`` at ``spot`` now."""
        cfg = self.config
        quote = self._surface.quote(inst, spot, self._now, cfg.spread_bps)
        step = inst.tick_size * cfg.level_step_ticks
        asks = tuple(BookLevel(quote.ask + i * step, cfg.level_qty) for i in range(cfg.levels))
        bid_prices = (quote.bid - i * step for i in range(cfg.levels))
        bids = tuple(BookLevel(price, cfg.level_qty) for price in bid_prices if price > 0)
        return bids, asks

    def _tradable(self, symbol: str) -> Instrument:
        """The live instrument ``symbol``; ``VenueRejected`` if unknown or expired."""
        inst = self._instruments.get(symbol)
        if inst is None:
            raise VenueRejected(self.name, f"unknown symbol {symbol}")
        if _expired(inst, self._now):
            raise VenueRejected(self.name, f"option {symbol} expired at {inst.expiry}")
        return inst

    def _spot_or_retry(self, spot: Decimal | None) -> Decimal:
        if spot is None:
            raise RetryableVenueError(
                self.name, f"no {self.config.underlying} price to quote options against"
            )
        return spot

    # ------------------------------------------------------------------------------ orders
    def _reject(self, request: OrderRequest, rule: str) -> VenueRejected:
        return VenueRejected(self.name, f"order {request.client_order_id} rejected: {rule}")

    def _validate(self, request: OrderRequest) -> Instrument:
        """Checks that need no price: symbol, duplicate id, precision, reduce-only, position."""
        if request.venue != self.name:
            raise self._reject(request, f"order for venue {request.venue} sent to {self.name}")
        try:
            inst = self._tradable(request.symbol)
        except VenueRejected as exc:
            raise self._reject(request, str(exc).removeprefix(f"{self.name}: ")) from None
        if request.client_order_id in self._orders:
            raise self._reject(request, "duplicate client order id")
        is_market = request.order_type is OrderType.MARKET
        if is_market and request.time_in_force is TimeInForce.POST_ONLY:
            raise self._reject(request, "a market order cannot be post-only")
        try:
            inst.validate_order(request.qty, None if is_market else request.price)
        except InvalidOrder as exc:
            raise self._reject(request, str(exc)) from None
        if request.reduce_only and request.side is Side.BUY:
            raise self._reject(request, "reduce-only order would increase the position")
        if request.side is Side.SELL:
            sellable = self._positions.get(request.symbol, ZERO) - self._selling(request.symbol)
            if request.qty > sellable:
                raise self._reject(
                    request,
                    f"selling more than held: {request.qty} asked, {sellable} held and not "
                    "already offered (this venue does not write options)",
                )
        return inst

    def _selling(self, symbol: str) -> Decimal:
        """Contracts offered by open sell orders on ``symbol``."""
        orders = (self._orders[cid] for cid in self._open.get(symbol, {}))
        return sum((o.remaining for o in orders if o.request.side is Side.SELL), ZERO)

    def _check_post_only(self, request: OrderRequest, bids: Levels, asks: Levels) -> None:
        if request.time_in_force is not TimeInForce.POST_ONLY:
            return
        assert request.price is not None
        if _crossed_qty(request.side, request.price, bids, asks) > 0:
            far = (asks if request.side is Side.BUY else bids)[0].price
            raise self._reject(request, f"post-only order at {request.price} would cross {far}")

    def _walk(self, request: OrderRequest, bids: Levels, asks: Levels) -> list[BookLevel]:
        """The (price, qty) takes of a crossing order, best level first."""
        levels = asks if request.side is Side.BUY else bids
        limit = None if request.order_type is OrderType.MARKET else request.price
        left = request.qty
        takes: list[BookLevel] = []
        for level in levels:
            if left == 0 or not _reaches(request.side, limit, level.price):
                break
            qty = min(left, level.qty)
            takes.append(BookLevel(level.price, qty))
            left -= qty
        return takes

    def _rests(self, request: OrderRequest) -> bool:
        return request.order_type is OrderType.LIMIT and request.time_in_force in (
            TimeInForce.GTC,
            TimeInForce.POST_ONLY,
        )

    def _buy_lock(self, qty: Decimal, price: Decimal) -> Decimal:
        """Quote a resting buy locks: premium plus the largest fee it can pay."""
        premium = qty * price
        return premium + round_to_step(
            self.config.fee_cap_premium * premium, FEE_QUANTUM, Rounding.UP
        )

    def _fee(self, qty: Decimal, price: Decimal, spot: Decimal) -> Decimal:
        cfg = self.config
        return deribit_fee(qty, price, spot, cfg.fee_rate_underlying, cfg.fee_cap_premium)

    def _check_cash(
        self, request: OrderRequest, takes: list[BookLevel], rest_qty: Decimal, spot: Decimal
    ) -> None:
        if request.side is Side.SELL:
            return
        needed = sum((t.qty * t.price + self._fee(t.qty, t.price, spot) for t in takes), ZERO)
        if rest_qty > 0:
            assert request.price is not None
            needed += self._buy_lock(rest_qty, request.price)
        free = self._free[self.config.quote]
        if needed > free:
            raise self._reject(
                request,
                f"insufficient balance: needs {needed} {self.config.quote} "
                f"(premium and fee), {free} free",
            )

    def _fill(
        self, order: _Order, price: Decimal, qty: Decimal, liquidity: Liquidity, spot: Decimal
    ) -> None:
        """Execute ``qty`` of ``order`` at ``price``: move cash and the position, record it."""
        request, quote = order.request, self.config.quote
        fee = self._fee(qty, price, spot)
        premium = qty * price
        if request.side is Side.BUY:
            if order.lock_left > 0:
                release = min(order.lock_left, self._buy_lock(qty, price))
                order.lock_left -= release
                self._locked[quote] -= release
                self._free[quote] += release
            self._free[quote] -= premium + fee
        else:
            self._free[quote] += premium - fee
        position = self._positions.get(request.symbol, ZERO) + request.side.sign * qty
        self._positions[request.symbol] = position
        if position == 0:
            del self._positions[request.symbol]
        order.fills.append(
            Fill(
                venue=self.name,
                trade_id=f"{self.name}-{next(self._trade_ids)}",
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                price=price,
                qty=qty,
                fee=fee,
                fee_currency=quote,
                liquidity=liquidity,
                ts=self._now,
            )
        )
        order.filled += qty
        self._changed[request.client_order_id] = None
        if order.remaining == 0:
            self._finish(order, VenueOrderStatus.FILLED, "")

    def _finish(self, order: _Order, status: VenueOrderStatus, reason: str) -> None:
        """End ``order`` with ``status``, releasing whatever it still locks."""
        quote = self.config.quote
        self._locked[quote] -= order.lock_left
        self._free[quote] += order.lock_left
        order.lock_left = ZERO
        order.status = status
        order.reason = reason
        self._open.get(order.request.symbol, {}).pop(order.request.client_order_id, None)
        self._changed[order.request.client_order_id] = None

    def _rest(self, order: _Order) -> None:
        request = order.request
        assert request.price is not None
        if request.side is Side.BUY:
            lock = self._buy_lock(order.remaining, request.price)
            self._free[self.config.quote] -= lock
            self._locked[self.config.quote] += lock
            order.lock_left = lock
        self._open.setdefault(request.symbol, {})[request.client_order_id] = None

    def _find(self, client_order_id: str, symbol: str) -> _Order:
        order = self._orders.get(client_order_id)
        if order is None or order.request.symbol != symbol:
            raise OrderNotFoundAtVenue(self.name, f"no order {client_order_id} for {symbol}")
        return order

    # --------------------------------------------------------------------------- VenuePort
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def now(self) -> datetime:
        """The time up to which the venue has caught up."""
        return self._now

    def instruments(self) -> Mapping[str, Instrument]:
        """Listed options by symbol (expired ones stay until ``relist`` drops them)."""
        return dict(self._instruments)

    async def submit(self, request: OrderRequest) -> VenueOrderState:
        """Match ``request`` at once against the current quote; see the module docstring.

        Raises ``VenueRejected`` naming the rule broken and ``RetryableVenueError`` when there is
        no underlying price to quote against (nothing is done then).
        """
        spot = await self._refresh()
        self._validate(request)
        spot = self._spot_or_retry(spot)
        bids, asks = self._levels(self._instruments[request.symbol], spot)
        self._check_post_only(request, bids, asks)
        takes = self._walk(request, bids, asks)
        taken = sum((t.qty for t in takes), ZERO)
        rest_qty = request.qty - taken if self._rests(request) else ZERO
        self._check_cash(request, takes, rest_qty, spot)
        order = _Order(request, f"{self.name}-o{next(self._order_ids)}")
        self._orders[request.client_order_id] = order
        self._changed[request.client_order_id] = None
        for take in takes:
            self._fill(order, take.price, take.qty, Liquidity.TAKER, spot)
        if order.status is VenueOrderStatus.OPEN:
            if rest_qty > 0:
                self._rest(order)
            else:
                reason = f"{order.remaining} not fillable immediately; remainder cancelled"
                self._finish(order, VenueOrderStatus.EXPIRED, reason)
        return order.state()

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        """Cancel an open order at once; a no-op for a finished one."""
        await self._refresh()
        order = self._find(client_order_id, symbol)
        if order.status not in _TERMINAL:
            self._finish(order, VenueOrderStatus.CANCELLED, "cancelled on request")

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrderState:
        """The order's status and every fill so far, by client id."""
        await self._refresh()
        return self._find(client_order_id, symbol).state()

    async def order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The quoted book of ``symbol`` now, at most ``depth`` levels a side.

        ``VenueRejected`` for an unknown or expired option, ``RetryableVenueError`` without an
        underlying price.
        """
        spot = await self._refresh()
        inst = self._tradable(symbol)
        bids, asks = self._levels(inst, self._spot_or_retry(spot))
        return OrderBook(self.name, symbol, self._now, bids[:depth], asks[:depth])

    async def traded_volume(self, symbol: str, since: datetime) -> Decimal:
        """Our own traded quantity on ``symbol`` at or after ``since`` (the sim has no tape)."""
        await self._refresh()
        if symbol not in self._instruments:
            raise VenueRejected(self.name, f"unknown symbol {symbol}")
        since = ensure_utc(since)
        fills = (f for o in self._orders.values() if o.request.symbol == symbol for f in o.fills)
        return sum((f.qty for f in fills if f.ts >= since), ZERO)

    async def balances(self) -> Mapping[str, Balance]:
        """Free and locked amount of every asset."""
        await self._refresh()
        return {
            asset: Balance(asset, free, self._locked[asset]) for asset, free in self._free.items()
        }

    async def positions(self) -> Mapping[str, Decimal]:
        """Signed contracts held per symbol (flat symbols left out)."""
        await self._refresh()
        return dict(self._positions)

    def drain_updates(self) -> list[VenueOrderState]:
        """States of orders that changed since the last call, each once.

        Catches up first with the last underlying price seen (see the module docstring).
        """
        self._catch_up(self._last_spot, settle=False)
        changed, self._changed = self._changed, {}
        return [self._orders[client_id].state() for client_id in changed]


def _expired(inst: Instrument, now: datetime) -> bool:
    return inst.expiry is not None and inst.expiry <= now


def _reaches(side: Side, limit: Decimal | None, level_price: Decimal) -> bool:
    """Does an order of ``side`` with ``limit`` (``None``: market) take a level at
    ``level_price``?"""
    if limit is None:
        return True
    return level_price <= limit if side is Side.BUY else level_price >= limit


def _crossed_qty(side: Side, limit: Decimal, bids: Levels, asks: Levels) -> Decimal:
    """Quantity quoted on the other side at prices an order of ``side`` at ``limit`` takes."""
    levels = asks if side is Side.BUY else bids
    return sum((lvl.qty for lvl in levels if _reaches(side, limit, lvl.price)), ZERO)


__all__ = [
    "FEE_QUANTUM",
    "OptionSettlement",
    "OptionSymbol",
    "OptionsVenueConfig",
    "SimOptionsVenue",
    "deribit_fee",
    "last_friday",
    "listing_expiries",
    "listing_strikes",
    "monthly_expiries",
    "option_symbol",
    "parse_option_symbol",
    "underlying_mid",
    "weekly_expiries",
]
