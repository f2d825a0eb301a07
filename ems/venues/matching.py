"""A pure L2 price-time matching engine: our orders against a recorded ("market") book.

One engine serves one instrument. It never reads a clock or awaits: time comes from the market
events it is fed and from the ``ts`` given with each order. Every quantity is a ``Decimal``.

Model:

* **Taking.** A market order, an IOC or the crossing part of a limit order walks the opposite
  side of the market book best level first, each fill at that level's price (taker fee). What we
  take is remembered per level (``consumed``) so it cannot be taken twice, until a recorded diff
  rewrites that level (the exchange then says what is really there) or a snapshot reloads the book.
* **Resting.** A resting order joins the back of its level: its queue-ahead is the visible
  quantity at its price when it rests (0 on a new, better level). Only market quantity is counted;
  among our own orders time priority is kept by processing them in arrival order.
* **Recorded trade at our price** first eats the queue ahead of us, then fills us (maker). A trade
  strictly through our price means the whole level was swept: it fills us up to the trade quantity
  and empties our queue-ahead. One trade's quantity is shared by our orders in price-time priority
  and never fills more than its own size.
* **Book moves through us.** When the visible best opposite price reaches our limit (a bid at or
  above the best ask), the remainder fills at our own limit price as maker.
* **Queue-ahead on diffs (the choice).** When a diff shrinks our level by more than the recorded
  trades there explain, the unexplained decrease is taken as cancellations spread uniformly over the
  level, so queue-ahead shrinks in proportion: ``ahead -= cancelled * ahead / level``. Growth joins
  behind us and changes nothing; queue-ahead never exceeds the level.
* **No self-matching.** Our orders take only market liquidity and never trade with each other.

Fees are rates (``0.001`` = 10 bps, see ``bps``) on the notional, charged exactly (no rounding) in
the quote currency. Fill quantities are always whole lots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import count

from ems.domain import ZERO, BookLevel, Fill, Instrument, Liquidity, OrderRequest, OrderType, Side
from ems.domain import TimeInForce as Tif
from ems.ports import VenueOrderStatus
from ems.venues.replay import BookBuilder, BookDiff, BookSnapshot, L2Book, MarketEvent, Trade


def bps(value: Decimal | int | str) -> Decimal:
    """A rate from basis points: ``bps(10) == Decimal("0.001")``."""
    return Decimal(value) / 10_000


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One order as the engine matches it.

    ``quote_budget`` caps what a market buy may spend, fees included (how a venue keeps a market
    buy within the quote it locked); ``None`` means no cap.
    """

    client_order_id: str
    side: Side
    qty: Decimal
    order_type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    time_in_force: Tif = Tif.GTC
    quote_budget: Decimal | None = None

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"{self.client_order_id}: quantity must be positive")
        if self.order_type is OrderType.LIMIT and (self.price is None or self.price <= 0):
            raise ValueError(f"{self.client_order_id}: a limit order needs a positive price")
        if self.order_type is OrderType.MARKET and self.time_in_force is Tif.POST_ONLY:
            raise ValueError(f"{self.client_order_id}: a market order cannot be post-only")

    @classmethod
    def of(cls, request: OrderRequest, *, quote_budget: Decimal | None = None) -> OrderSpec:
        """The spec of an ``OrderRequest`` (market orders ignore any price)."""
        is_limit = request.order_type is OrderType.LIMIT
        return cls(
            client_order_id=request.client_order_id,
            side=request.side,
            qty=request.qty,
            order_type=request.order_type,
            price=request.price if is_limit else None,
            time_in_force=request.time_in_force,
            quote_budget=quote_budget,
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened to an order when it reached the engine.

    ``status`` is OPEN (rests, maybe after partial fills), FILLED, EXPIRED (market or IOC
    remainder cancelled) or REJECTED (a post-only order that would have crossed).
    """

    client_order_id: str
    status: VenueOrderStatus
    fills: tuple[Fill, ...] = ()
    reason: str = ""

    @property
    def filled_qty(self) -> Decimal:
        return sum((fill.qty for fill in self.fills), ZERO)


@dataclass(slots=True)
class _Resting:
    spec: OrderSpec
    price: Decimal
    seq: int
    remaining: Decimal
    queue_ahead: Decimal
    level_seen: Decimal  # market quantity at our level as last accounted for


def _better_or_equal(side: Side, price: Decimal, than: Decimal) -> bool:
    """Is ``price`` at least as aggressive as ``than`` for an order of ``side``?"""
    return price >= than if side is Side.BUY else price <= than


class MatchingEngine:
    """Matches our orders for one instrument against a market book fed by ``on_event``."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        maker_fee: Decimal | None = None,
        taker_fee: Decimal | None = None,
        trade_ids: Iterator[int] | None = None,
    ) -> None:
        """Fees default to the instrument's; ``trade_ids`` numbers fills (share one iterator
        between the engines of a venue so ids stay unique there)."""
        self.instrument = instrument
        self.maker_fee = instrument.maker_fee if maker_fee is None else maker_fee
        self.taker_fee = instrument.taker_fee if taker_fee is None else taker_fee
        self._trade_ids = count(1) if trade_ids is None else trade_ids
        self._builder = BookBuilder()
        self._consumed: dict[Side, dict[Decimal, Decimal]] = {Side.BUY: {}, Side.SELL: {}}
        self._resting: dict[str, _Resting] = {}  # insertion order is time priority
        self._seq = count()

    # ----------------------------------------------------------------------------- market side
    @property
    def book(self) -> L2Book:
        """The market book as recorded (without our consumption or our orders)."""
        return self._builder.book

    @property
    def synced(self) -> bool:
        return self._builder.synced

    @property
    def last_update_id(self) -> int | None:
        """Update id of the last book change applied (``None`` before the first snapshot)."""
        return self._builder.last_update_id

    def on_event(self, event: MarketEvent) -> list[Fill]:
        """Apply one market event; return the fills it caused to our resting orders."""
        if isinstance(event, Trade):
            return self._on_trade(event)
        if not isinstance(event, BookSnapshot | BookDiff):
            return []
        applied = self._builder.apply(event)
        if isinstance(event, BookSnapshot):
            self._on_snapshot()
        for diff in applied:
            self._on_diff(diff)
        if isinstance(event, BookSnapshot) or applied:
            return self._fill_crossed(event.ts)
        return []

    def visible_qty(self, book_side: Side, price: Decimal) -> Decimal:
        """Market quantity at ``price`` on ``book_side`` (BUY = bids) that we have not taken."""
        qty = self.book.qty(book_side, price) - self._consumed[book_side].get(price, ZERO)
        return max(qty, ZERO)

    def best(self, book_side: Side) -> Decimal | None:
        """Best visible market price of ``book_side`` (BUY = best bid), ignoring our orders."""
        for price in self.book.prices(book_side):
            if self.visible_qty(book_side, price) > 0:
                return price
        return None

    def levels(self, book_side: Side, depth: int, *, include_own: bool = True) -> list[BookLevel]:
        """Best ``depth`` levels of ``book_side``: visible market quantity plus our own orders."""
        merged: dict[Decimal, Decimal] = {}
        for price in self.book.prices(book_side):
            if len(merged) >= depth:
                break
            qty = self.visible_qty(book_side, price)
            if qty > 0:
                merged[price] = qty
        if include_own:
            for order in self._resting.values():
                if order.spec.side is book_side:
                    merged[order.price] = merged.get(order.price, ZERO) + order.remaining
        prices = sorted(merged, reverse=book_side is Side.BUY)[:depth]
        return [BookLevel(price, merged[price]) for price in prices]

    def estimate_cost(self, side: Side, qty: Decimal) -> tuple[Decimal, Decimal]:
        """Walk the visible book for a ``side`` order of ``qty``: (fillable qty, notional)."""
        left, notional = qty, ZERO
        book_side = side.opposite
        for price in self.book.prices(book_side):
            take = min(left, self.visible_qty(book_side, price))
            notional += take * price
            left -= take
            if left <= 0:
                break
        return qty - left, notional

    # ------------------------------------------------------------------------------ our orders
    def submit(self, spec: OrderSpec, ts: datetime) -> Execution:
        """Match ``spec`` now (at ``ts``): take what crosses, then rest, expire or reject."""
        if spec.client_order_id in self._resting:
            raise ValueError(f"{spec.client_order_id} is already resting")
        if spec.time_in_force is Tif.POST_ONLY:
            assert spec.price is not None
            far = self.best(spec.side.opposite)
            if far is not None and _better_or_equal(spec.side, spec.price, far):
                return Execution(
                    spec.client_order_id,
                    VenueOrderStatus.REJECTED,
                    reason=f"post-only order at {spec.price} would cross the book at {far}",
                )
        fills = self._take(spec, ts)
        remaining = spec.qty - sum((fill.qty for fill in fills), ZERO)
        if remaining == 0:
            return Execution(spec.client_order_id, VenueOrderStatus.FILLED, tuple(fills))
        if spec.order_type is OrderType.MARKET or spec.time_in_force is Tif.IOC:
            reason = f"{remaining} not fillable immediately; remainder cancelled"
            return Execution(spec.client_order_id, VenueOrderStatus.EXPIRED, tuple(fills), reason)
        self._rest(spec, remaining)
        return Execution(spec.client_order_id, VenueOrderStatus.OPEN, tuple(fills))

    def cancel(self, client_order_id: str) -> bool:
        """Remove a resting order; False if it is not resting (filled, expired or unknown)."""
        return self._resting.pop(client_order_id, None) is not None

    def open_orders(self) -> list[str]:
        """Client ids of resting orders in time priority."""
        return list(self._resting)

    def remaining(self, client_order_id: str) -> Decimal:
        """Unfilled quantity of a resting order (zero if not resting)."""
        order = self._resting.get(client_order_id)
        return ZERO if order is None else order.remaining

    def queue_ahead(self, client_order_id: str) -> Decimal:
        """Market quantity ahead of a resting order at its price level."""
        return self._resting[client_order_id].queue_ahead

    # -------------------------------------------------------------------------------- internals
    def _lot_floor(self, qty: Decimal) -> Decimal:
        lot = self.instrument.lot_size
        return (qty // lot) * lot if qty > 0 else ZERO

    def _fill(
        self, spec: OrderSpec, price: Decimal, qty: Decimal, liquidity: Liquidity, ts: datetime
    ) -> Fill:
        rate = self.maker_fee if liquidity is Liquidity.MAKER else self.taker_fee
        notional = self.instrument.notional(qty, price)
        venue = self.instrument.venue
        return Fill(
            venue=venue,
            trade_id=f"{venue}-{next(self._trade_ids)}",
            client_order_id=spec.client_order_id,
            symbol=self.instrument.symbol,
            side=spec.side,
            price=price.quantize(self.instrument.tick_size),
            qty=qty,
            fee=notional * rate,
            fee_currency=self.instrument.quote,
            liquidity=liquidity,
            ts=ts,
        )

    def _take(self, spec: OrderSpec, ts: datetime) -> list[Fill]:
        book_side = spec.side.opposite
        consumed = self._consumed[book_side]
        budget = spec.quote_budget if spec.order_type is OrderType.MARKET else None
        fills: list[Fill] = []
        left = spec.qty
        for price in self.book.prices(book_side):
            if spec.price is not None and not _better_or_equal(spec.side, spec.price, price):
                break
            take = min(left, self._lot_floor(self.visible_qty(book_side, price)))
            if take <= 0:
                continue
            if budget is not None:
                take = min(take, self._affordable(budget, price))
                if take <= 0:
                    break
            consumed[price] = consumed.get(price, ZERO) + take
            fill = self._fill(spec, price, take, Liquidity.TAKER, ts)
            fills.append(fill)
            left -= take
            if budget is not None:
                budget -= fill.notional * self.instrument.contract_size + fill.fee
            if left == 0:
                break
        return fills

    def _affordable(self, budget: Decimal, price: Decimal) -> Decimal:
        unit = self.instrument.notional(Decimal(1), price) * (1 + self.taker_fee)
        qty = self._lot_floor(budget / unit)
        while qty > 0 and qty * unit > budget:  # guard against division rounding up
            qty -= self.instrument.lot_size
        return qty

    def _rest(self, spec: OrderSpec, remaining: Decimal) -> None:
        assert spec.price is not None
        ahead = self.visible_qty(spec.side, spec.price)
        self._resting[spec.client_order_id] = _Resting(
            spec=spec,
            price=spec.price,
            seq=next(self._seq),
            remaining=remaining,
            queue_ahead=ahead,
            level_seen=self.book.qty(spec.side, spec.price),
        )

    def _on_snapshot(self) -> None:
        for side in self._consumed.values():
            side.clear()
        for order in self._resting.values():
            level = self.book.qty(order.spec.side, order.price)
            order.queue_ahead = min(order.queue_ahead, level)
            order.level_seen = level

    def _on_diff(self, diff: BookDiff) -> None:
        for book_side, levels in ((Side.BUY, diff.bids), (Side.SELL, diff.asks)):
            consumed = self._consumed[book_side]
            if consumed:
                for price, _ in levels:
                    consumed.pop(price, None)
        if not self._resting:
            return
        updates = {Side.BUY: dict(diff.bids), Side.SELL: dict(diff.asks)}
        for order in self._resting.values():
            new = updates[order.spec.side].get(order.price)
            if new is None:
                continue
            seen = order.level_seen
            if new < seen:
                order.queue_ahead -= (seen - new) * order.queue_ahead / seen
            order.queue_ahead = min(order.queue_ahead, new)
            order.level_seen = new

    def _on_trade(self, trade: Trade) -> list[Fill]:
        side = trade.aggressor.opposite  # our orders on this side can be hit
        hit = [
            order
            for order in self._resting.values()
            if order.spec.side is side and _better_or_equal(side, order.price, trade.price)
        ]
        if not hit:
            return []
        hit.sort(key=lambda o: (-o.price if side is Side.BUY else o.price, o.seq))
        fills: list[Fill] = []
        left = trade.qty
        market_eaten = ZERO  # market quantity ahead at the trade price taken by this trade
        for order in hit:
            if order.price == trade.price:
                order.queue_ahead -= min(order.queue_ahead, market_eaten)
                eat = min(left, order.queue_ahead)
                order.queue_ahead -= eat
                market_eaten += eat
                left -= eat
                order.level_seen = max(order.level_seen - trade.qty, ZERO)
            else:
                order.queue_ahead = order.level_seen = ZERO
            qty = self._lot_floor(min(left, order.remaining))
            if qty > 0:
                fills.append(self._fill(order.spec, order.price, qty, Liquidity.MAKER, trade.ts))
                left -= qty
                self._reduce(order, qty)
        return fills

    def _fill_crossed(self, ts: datetime) -> list[Fill]:
        if not self._resting:
            return []
        far = {Side.BUY: self.best(Side.SELL), Side.SELL: self.best(Side.BUY)}
        fills: list[Fill] = []
        for order in list(self._resting.values()):
            opposite = far[order.spec.side]
            if opposite is not None and _better_or_equal(order.spec.side, order.price, opposite):
                qty = order.remaining
                fills.append(self._fill(order.spec, order.price, qty, Liquidity.MAKER, ts))
                self._reduce(order, qty)
        return fills

    def _reduce(self, order: _Resting, qty: Decimal) -> None:
        order.remaining -= qty
        if order.remaining == 0:
            del self._resting[order.spec.client_order_id]
