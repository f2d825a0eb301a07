"""Value types of the EMS: instruments with their precision, books, fills.

Standard library only. Every price, quantity, notional and fee is a ``Decimal``; every
timestamp is an aware UTC ``datetime``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from ems.errors import InvalidOrder

ZERO = Decimal(0)


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(enum.StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    POST_ONLY = "post_only"


class Liquidity(enum.StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class InstrumentKind(enum.StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"


class OptionRight(enum.StrEnum):
    CALL = "call"
    PUT = "put"


class Rounding(enum.Enum):
    """Explicit rounding direction: towards negative or positive infinity."""

    DOWN = ROUND_FLOOR
    UP = ROUND_CEILING


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} given; timestamps must be UTC-aware")
    return moment.astimezone(UTC)


def round_to_step(value: Decimal, step: Decimal, rounding: Rounding) -> Decimal:
    """Round ``value`` to a whole multiple of ``step`` in the given direction."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    units = (value / step).to_integral_value(rounding=rounding.value)
    return (units * step).quantize(step)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument on one venue, with the venue's precision rules."""

    venue: str
    symbol: str
    kind: InstrumentKind
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    settle: str | None = None
    contract_size: Decimal = Decimal(1)
    expiry: datetime | None = None
    strike: Decimal | None = None
    right: OptionRight | None = None
    maker_fee: Decimal = ZERO
    taker_fee: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.symbol}: {name} must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: minimums must not be negative")
        if self.kind in (InstrumentKind.FUTURE, InstrumentKind.OPTION) and self.expiry is None:
            raise ValueError(f"{self.symbol}: a {self.kind} needs an expiry")
        if self.kind is InstrumentKind.OPTION and (self.strike is None or self.right is None):
            raise ValueError(f"{self.symbol}: an option needs a strike and a right")
        if self.expiry is not None:
            object.__setattr__(self, "expiry", ensure_utc(self.expiry))

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue, self.symbol)

    def round_price(self, price: Decimal, rounding: Rounding) -> Decimal:
        return round_to_step(price, self.tick_size, rounding)

    def passive_price(self, side: Side, price: Decimal) -> Decimal:
        """Round a limit price so it never becomes more aggressive than asked."""
        return self.round_price(price, Rounding.DOWN if side is Side.BUY else Rounding.UP)

    def round_qty(self, qty: Decimal) -> Decimal:
        """Quantities are always rounded down to the lot: never trade more than asked."""
        return round_to_step(qty, self.lot_size, Rounding.DOWN)

    def min_tradable_qty(self, price: Decimal) -> Decimal:
        """Smallest lot-multiple quantity meeting both min qty and min notional at ``price``."""
        by_notional = ZERO
        if self.min_notional > 0 and price > 0:
            by_notional = self.min_notional / (price * self.contract_size)
        smallest = max(self.min_qty, by_notional, self.lot_size)
        return round_to_step(smallest, self.lot_size, Rounding.UP)

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        return qty * price * self.contract_size

    def validate_order(self, qty: Decimal, price: Decimal | None) -> None:
        """Raise ``InvalidOrder`` naming the rule an order of ``qty`` at ``price`` breaks."""
        if qty <= 0:
            raise InvalidOrder(f"quantity must be positive, got {qty}")
        if qty % self.lot_size != 0:
            raise InvalidOrder(
                f"quantity {qty} is not a multiple of the lot size {self.lot_size} "
                f"for {self.symbol} on {self.venue}"
            )
        if qty < self.min_qty:
            raise InvalidOrder(
                f"quantity {qty} is below the minimum {self.min_qty} for {self.symbol}"
            )
        if price is not None:
            if price <= 0:
                raise InvalidOrder(f"price must be positive, got {price}")
            if price % self.tick_size != 0:
                raise InvalidOrder(f"price {price} is not a multiple of the tick {self.tick_size}")
            if self.notional(qty, price) < self.min_notional:
                raise InvalidOrder(
                    f"notional {self.notional(qty, price)} is below the minimum "
                    f"{self.min_notional} for {self.symbol} on {self.venue}"
                )


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """An L2 snapshot: bids best (highest) first, asks best (lowest) first."""

    venue: str
    symbol: str
    ts: datetime
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2

    def side(self, side: Side) -> tuple[BookLevel, ...]:
        """Levels a ``side`` order rests on (bids for a buy)."""
        return self.bids if side is Side.BUY else self.asks

    def touch(self, side: Side) -> Decimal | None:
        """Best price on the side an order of ``side`` would join."""
        return self.best_bid if side is Side.BUY else self.best_ask

    def far_touch(self, side: Side) -> Decimal | None:
        """Best price an order of ``side`` would take (the ask for a buy)."""
        return self.best_ask if side is Side.BUY else self.best_bid


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of a child order, unique per ``(venue, trade_id)``."""

    venue: str
    trade_id: str
    client_order_id: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts: datetime

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"fill {self.trade_id}: quantity must be positive")
        if self.price <= 0:
            raise ValueError(f"fill {self.trade_id}: price must be positive")
        object.__setattr__(self, "ts", ensure_utc(self.ts))

    @property
    def notional(self) -> Decimal:
        return self.price * self.qty


def strictest_instrument(instruments: Sequence[Instrument]) -> Instrument:
    """One instrument whose precision every venue accepts: the coarsest tick, lot and minimums."""
    first = instruments[0]
    return replace(
        first,
        venue="consolidated",
        tick_size=max(i.tick_size for i in instruments),
        lot_size=max(i.lot_size for i in instruments),
        min_qty=max(i.min_qty for i in instruments),
        min_notional=max(i.min_notional for i in instruments),
    )


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the manager asks a venue to do: one child order, identified by its client id."""

    client_order_id: str
    venue: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    display_qty: Decimal | None = None  # native iceberg: show only this much
    params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise ValueError(f"{self.client_order_id}: a limit order needs a price")
