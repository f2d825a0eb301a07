"""Pre-trade checks for parent and child orders: pure functions returning a ``Verdict``.

``check_child`` runs these checks in order; the first that fails decides the ``Denied`` code:

1. global state HALTED → ``GLOBAL_HALTED``; venue state HALTED → ``VENUE_HALTED``
2. global or venue state REDUCING and the order does not reduce its asset's exposure →
   ``REDUCING_ONLY`` (see ``reduces_exposure``)
3. no book, a book older than ``max_book_age`` or no consensus mid → ``STALE_MARKET_DATA``
4. a buy priced above mid + collar or a sell below mid − collar → ``PRICE_COLLAR`` (options use
   the wider ``option_collar_bps``)
5. qty × price × contract size above ``max_child_notional`` → ``CHILD_NOTIONAL``
6. today's notional plus this order above ``max_daily_notional`` → ``DAILY_NOTIONAL``
7. net position of the asset after the order beyond ``max_position`` → ``POSITION_LIMIT``
   (an order that does not increase the absolute net position, such as a hedge, passes)
8. the venue's order-rate window is full → ``ORDER_RATE``

``check_parent`` runs 1, 2, then parent notional (``PARENT_NOTIONAL``) and the position limit for
the whole parent quantity (``POSITION_LIMIT``).

Exactly at a limit passes; only strictly beyond it is refused. Positions are signed base units
netted across venues and instruments (long spot positive, short perpetual negative). Linear
derivatives count qty × contract size base units; an option's exposure is its delta, which is not
known here, so options add no linear position (the greeks check owns that) and in a REDUCING
state an option order must be reduce-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from ems.domain import InstrumentKind, Side, ensure_utc
from risk.limits import RiskLimits
from risk.throttle import OrderRateWindow, allows, recent_orders
from risk.types import Approved, Denied, DenyCode, TradingState, Verdict

ZERO = Decimal(0)
BPS = Decimal(10_000)


def _positive(owner: str, name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive Decimal, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildIntent:
    """One child order the manager wants to send to a venue, as the risk checks see it.

    ``price`` is the limit price, or for a market order the worst price the manager accepts.
    """

    venue: str
    symbol: str
    kind: InstrumentKind
    base: str
    quote: str
    side: Side
    qty: Decimal
    price: Decimal
    contract_size: Decimal = Decimal(1)
    reduce_only: bool = False
    is_hedge: bool = False

    def __post_init__(self) -> None:
        owner = f"child {self.side} {self.symbol} on {self.venue}"
        for name in ("venue", "symbol", "base", "quote"):
            if not getattr(self, name):
                raise ValueError(f"{owner}: {name} must not be empty")
        _positive(owner, "qty", self.qty)
        _positive(owner, "price", self.price)
        _positive(owner, "contract_size", self.contract_size)

    @property
    def notional(self) -> Decimal:
        """Quote-currency value of the order: qty × price × contract size."""
        return self.qty * self.price * self.contract_size

    @property
    def position_change(self) -> Decimal:
        """Signed change of the net base-asset position if the order fills completely."""
        if self.kind is InstrumentKind.OPTION:
            return ZERO
        return self.side.sign * self.qty * self.contract_size


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentIntent:
    """A parent order to accumulate or reduce ``quantity`` base units of a unified symbol.

    ``symbol`` is ccxt's unified form (``BTC/USDT`` or ``BTC/USDT:USDT``); the base and quote
    assets are read from it. ``reference_price`` is the price the notional is valued at
    (typically the arrival mid).
    """

    symbol: str
    side: Side
    quantity: Decimal
    reference_price: Decimal

    def __post_init__(self) -> None:
        owner = f"parent {self.side} {self.symbol}"
        base, slash, rest = self.symbol.partition("/")
        if not base or not slash or not rest.split(":")[0]:
            raise ValueError(f"{owner}: symbol must look like 'BTC/USDT', got {self.symbol!r}")
        _positive(owner, "quantity", self.quantity)
        _positive(owner, "reference_price", self.reference_price)

    @property
    def base(self) -> str:
        """Base asset of the symbol (``BTC`` for ``BTC/USDT``)."""
        return self.symbol.partition("/")[0]

    @property
    def quote(self) -> str:
        """Quote asset of the symbol (``USDT`` for ``BTC/USDT:USDT``)."""
        return self.symbol.partition("/")[2].split(":")[0]

    @property
    def notional(self) -> Decimal:
        """Quote-currency value of the whole parent at the reference price."""
        return self.quantity * self.reference_price


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskContext:
    """What the checks know about the world at ``now``; the manager builds it, never risk.

    ``consensus_mid`` and ``book_ts`` describe the market of the instrument being traded (mid
    across venues and the time of the freshest book behind it). ``positions`` are signed net base
    units per asset; ``day_notional`` is the quote currency already traded today;
    ``rate_window`` holds the recent orders to the child's venue.
    """

    now: datetime
    rate_window: OrderRateWindow
    consensus_mid: Decimal | None = None
    book_ts: datetime | None = None
    positions: Mapping[str, Decimal] = field(default_factory=dict, hash=False)
    day_notional: Decimal = ZERO
    venue_state: TradingState = TradingState.ACTIVE
    global_state: TradingState = TradingState.ACTIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", ensure_utc(self.now))
        if self.book_ts is not None:
            object.__setattr__(self, "book_ts", ensure_utc(self.book_ts))
        if self.consensus_mid is not None:
            _positive("risk context", "consensus_mid", self.consensus_mid)
        if not isinstance(self.day_notional, Decimal) or self.day_notional < 0:
            raise ValueError(
                f"risk context: day_notional must be a non-negative Decimal, "
                f"got {self.day_notional!r}"
            )
        for asset, amount in self.positions.items():
            if not isinstance(amount, Decimal) or not amount.is_finite():
                raise ValueError(f"risk context: position of {asset} must be a Decimal")
        object.__setattr__(self, "positions", MappingProxyType(dict(self.positions)))

    def position(self, asset: str) -> Decimal:
        """Signed net position of ``asset`` in base units (zero when flat or unknown)."""
        return self.positions.get(asset, ZERO)


def fmt(value: Decimal) -> str:
    """A Decimal for a trader: thousands separators, no exponent, no trailing zeros."""
    normal = value.normalize()
    if normal == normal.to_integral_value():
        normal = normal.quantize(Decimal(1))
    return f"{normal:,f}"


def _fmt_span(span: timedelta) -> str:
    return f"{fmt(Decimal(str(span.total_seconds())))} s"


def reduces_exposure(position: Decimal, change: Decimal) -> bool:
    """True when moving ``position`` by ``change`` brings it toward zero without passing it."""
    after = position + change
    return abs(after) <= abs(position) and after * position >= 0


def _halted(ctx: RiskContext, venue: str) -> Denied | None:
    if ctx.global_state is TradingState.HALTED:
        return Denied(DenyCode.GLOBAL_HALTED, "trading is halted on all venues (kill switch)")
    if ctx.venue_state is TradingState.HALTED:
        return Denied(DenyCode.VENUE_HALTED, f"trading on {venue} is halted")
    return None


def _reducing_scope(ctx: RiskContext, venue: str) -> str | None:
    if ctx.global_state is TradingState.REDUCING:
        return "all venues are"
    if ctx.venue_state is TradingState.REDUCING:
        return f"{venue} is"
    return None


def _position_denial(
    asset: str, before: Decimal, change: Decimal, limits: RiskLimits, what: str
) -> Denied | None:
    limit = limits.max_position.get(asset)
    if limit is None:
        return Denied(
            DenyCode.POSITION_LIMIT,
            f"no position limit is configured for {asset}, so {what} may not trade it",
        )
    after = before + change
    if abs(after) > limit and abs(after) > abs(before):
        return Denied(
            DenyCode.POSITION_LIMIT,
            f"{what} would take the net {asset} position from {fmt(before)} to {fmt(after)} "
            f"{asset}, beyond the limit of ±{fmt(limit)} {asset}",
        )
    return None


def check_child(intent: ChildIntent, ctx: RiskContext, limits: RiskLimits) -> Verdict:
    """Approve or deny one child order; the module docstring lists the checks in their order."""
    if ctx.rate_window.venue != intent.venue:
        raise ValueError(
            f"rate window is for {ctx.rate_window.venue} but the child goes to {intent.venue}"
        )
    what = f"{'hedge ' if intent.is_hedge else ''}{intent.side} {fmt(intent.qty)} {intent.symbol}"
    quote = intent.quote

    halted = _halted(ctx, intent.venue)
    if halted is not None:
        return halted

    scope = _reducing_scope(ctx, intent.venue)
    if scope is not None:
        venue_enforced = intent.reduce_only and intent.kind is not InstrumentKind.SPOT
        before = ctx.position(intent.base)
        if intent.kind is InstrumentKind.OPTION and not venue_enforced:
            return Denied(
                DenyCode.REDUCING_ONLY,
                f"{scope} reducing only: option order {what} on {intent.venue} must be reduce-only",
            )
        if not venue_enforced and not reduces_exposure(before, intent.position_change):
            return Denied(
                DenyCode.REDUCING_ONLY,
                f"{scope} reducing only: {what} on {intent.venue} would take the net "
                f"{intent.base} position from {fmt(before)} to "
                f"{fmt(before + intent.position_change)} {intent.base}",
            )

    if ctx.book_ts is None:
        return Denied(
            DenyCode.STALE_MARKET_DATA,
            f"no order book for {intent.symbol}, so the price cannot be checked",
        )
    age = ctx.now - ctx.book_ts
    if age > limits.max_book_age:
        return Denied(
            DenyCode.STALE_MARKET_DATA,
            f"the {intent.symbol} order book is {_fmt_span(age)} old, "
            f"older than the limit of {_fmt_span(limits.max_book_age)}",
        )
    mid = ctx.consensus_mid
    if mid is None:
        return Denied(
            DenyCode.STALE_MARKET_DATA,
            f"no consensus mid price for {intent.symbol}, so the price cannot be checked",
        )

    # Signed distance from mid, positive when the price is worse for the order's side.
    adverse = (intent.price - mid) * intent.side.sign
    option = intent.kind is InstrumentKind.OPTION
    collar = limits.option_collar_bps if option else limits.price_collar_bps
    if adverse * BPS > mid * collar:
        distance = (adverse * BPS / mid).quantize(Decimal("0.1"))
        direction = "above" if intent.side is Side.BUY else "below"
        return Denied(
            DenyCode.PRICE_COLLAR,
            f"{intent.side} price {fmt(intent.price)} {quote} is {fmt(distance)} bps {direction} "
            f"the consensus mid {fmt(mid)} {quote}; the {'option ' if option else ''}collar "
            f"allows {fmt(collar)} bps",
        )

    notional = intent.notional
    if notional > limits.max_child_notional:
        return Denied(
            DenyCode.CHILD_NOTIONAL,
            f"child notional {fmt(notional)} {quote} is above the limit "
            f"{fmt(limits.max_child_notional)} {quote}",
        )

    day_after = ctx.day_notional + notional
    if day_after > limits.max_daily_notional:
        return Denied(
            DenyCode.DAILY_NOTIONAL,
            f"today's traded notional {fmt(ctx.day_notional)} {quote} plus this order's "
            f"{fmt(notional)} {quote} makes {fmt(day_after)} {quote}, above the daily limit "
            f"{fmt(limits.max_daily_notional)} {quote}",
        )

    position = _position_denial(
        intent.base, ctx.position(intent.base), intent.position_change, limits, what
    )
    if position is not None:
        return position

    if not allows(ctx.rate_window, ctx.now, limits):
        return Denied(
            DenyCode.ORDER_RATE,
            f"{recent_orders(ctx.rate_window, ctx.now, limits)} orders were sent to "
            f"{intent.venue} in the last {_fmt_span(limits.order_window)}; the limit is "
            f"{limits.max_orders_per_window} per {_fmt_span(limits.order_window)}",
        )
    return Approved()


def check_parent(intent: ParentIntent, ctx: RiskContext, limits: RiskLimits) -> Verdict:
    """Approve or deny a whole parent order before any child of it is planned.

    Checks, first failure wins: HALTED states, REDUCING states (the parent must reduce the net
    position of its base asset), parent notional, then the position the whole parent would
    leave. ``ctx.venue_state`` should be ACTIVE unless the parent is bound to one venue.
    """
    what = f"parent {intent.side} {fmt(intent.quantity)} {intent.symbol}"
    quote = intent.quote
    halted = _halted(ctx, "this venue")
    if halted is not None:
        return halted

    before = ctx.position(intent.base)
    change = intent.side.sign * intent.quantity
    scope = _reducing_scope(ctx, "this venue")
    if scope is not None and not reduces_exposure(before, change):
        return Denied(
            DenyCode.REDUCING_ONLY,
            f"{scope} reducing only: {what} would take the net {intent.base} position from "
            f"{fmt(before)} to {fmt(before + change)} {intent.base}",
        )

    notional = intent.notional
    if notional > limits.max_parent_notional:
        return Denied(
            DenyCode.PARENT_NOTIONAL,
            f"parent notional {fmt(notional)} {quote} is above the limit "
            f"{fmt(limits.max_parent_notional)} {quote}",
        )

    position = _position_denial(intent.base, before, change, limits, what)
    if position is not None:
        return position
    return Approved()
