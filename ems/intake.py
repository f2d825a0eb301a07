"""Turning a trader's request into a parent order: the request type, its hash, its checks.

Checks that need no market (types, positivity, time order) also live in the API schemas; the
ones here need the venues' instruments and books, and every failure names the field at fault.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from algos import registry
from ems.domain import Instrument, OrderBook, Side, ensure_utc
from ems.errors import InvalidOrder
from ems.orders import ParentOrder, ParentRole


@dataclass(frozen=True, slots=True)
class NewParent:
    """A request for a new parent order, as submitted over REST, the CLI or by staging."""

    client_id: str
    symbol: str
    side: Side
    quantity: Decimal
    algo: str
    end_at: datetime
    start_at: datetime | None = None
    limit_price: Decimal | None = None
    venues: tuple[str, ...] = ()
    algo_params: Mapping[str, Any] = field(default_factory=dict)
    role: ParentRole = ParentRole.TRADE  # hedge legs are made by the risk module only
    reduce_only: bool = False


def request_hash(new: NewParent) -> str:
    """Canonical SHA-256 of the request body: equal requests hash equal."""
    body: dict[str, Any] = {
        "client_id": new.client_id,
        "symbol": new.symbol,
        "side": new.side.value,
        "quantity": str(new.quantity.normalize()),
        "algo": new.algo,
        "end_at": ensure_utc(new.end_at).isoformat(),
        "start_at": ensure_utc(new.start_at).isoformat() if new.start_at else None,
        "limit_price": str(new.limit_price.normalize()) if new.limit_price is not None else None,
        "venues": sorted(new.venues),
        "algo_params": {k: new.algo_params[k] for k in sorted(new.algo_params)},
    }
    if new.role is not ParentRole.TRADE or new.reduce_only:  # trader hashes stay as they were
        body |= {"role": new.role.value, "reduce_only": new.reduce_only}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    limit_collar: Decimal = Decimal("0.10")  # max distance of a limit price from the mid
    max_duration: timedelta = timedelta(days=7)


def resolve_venues(
    new: NewParent, listings: Mapping[str, Mapping[str, Instrument]]
) -> tuple[str, ...]:
    """The venues a parent may trade on; raises naming ``symbol`` or ``venues`` when invalid."""
    listing = sorted(name for name, instruments in listings.items() if new.symbol in instruments)
    if not listing:
        known = sorted({s for instruments in listings.values() for s in instruments})
        raise InvalidOrder(
            f"unknown symbol {new.symbol!r}; tradable symbols: {', '.join(known)}", field="symbol"
        )
    if not new.venues:
        return tuple(listing)
    for venue in new.venues:
        if venue not in listings:
            raise InvalidOrder(
                f"unknown venue {venue!r}; configured venues: {', '.join(sorted(listings))}",
                field="venues",
            )
        if new.symbol not in listings[venue]:
            raise InvalidOrder(f"venue {venue!r} does not list {new.symbol}", field="venues")
    return tuple(dict.fromkeys(new.venues))


def check_parent(
    new: NewParent,
    instruments: Sequence[Instrument],
    books: Sequence[OrderBook],
    now: datetime,
    limits: IntakeLimits,
) -> tuple[datetime, Decimal | None]:
    """Validate a request against the market; return its start time and the arrival mid."""
    registry.get(new.algo).parse(new.algo_params)
    start = ensure_utc(new.start_at) if new.start_at else now
    _check_window(start, ensure_utc(new.end_at), now, limits)
    mid = consensus_mid(books)
    _check_quantity(new.quantity, new.symbol, instruments, mid)
    if new.limit_price is not None:
        _check_limit_price(new.limit_price, new.symbol, instruments, mid, limits)
    return start, mid


def check_amendment(
    parent: ParentOrder,
    instruments: Sequence[Instrument],
    books: Sequence[OrderBook],
    now: datetime,
    limits: IntakeLimits,
    *,
    quantity: Decimal | None,
    limit_price: Decimal | None,
    end_at: datetime | None,
) -> None:
    """Validate an amendment of a live parent by the same rules as a new one."""
    mid = consensus_mid(books)
    if quantity is not None:
        if quantity < parent.filled_qty:
            raise InvalidOrder(
                f"quantity {quantity} is below the {parent.filled_qty} already filled",
                field="quantity",
            )
        _check_quantity(quantity, parent.symbol, instruments, mid)
    if limit_price is not None:
        _check_limit_price(limit_price, parent.symbol, instruments, mid, limits)
    if end_at is not None:
        _check_window(parent.start_at, end_at, now, limits)


def consensus_mid(books: Sequence[OrderBook]) -> Decimal | None:
    """Median of the venues' mids (upper median for an even count); None without a market."""
    mids = sorted(m for m in (b.mid for b in books) if m is not None)
    return mids[len(mids) // 2] if mids else None


def _check_window(start: datetime, end: datetime, now: datetime, limits: IntakeLimits) -> None:
    if end <= start:
        raise InvalidOrder(
            f"end_at {end.isoformat()} must be after start_at {start.isoformat()}", field="end_at"
        )
    if end <= now:
        raise InvalidOrder(f"end_at {end.isoformat()} is in the past", field="end_at")
    if end - start > limits.max_duration:
        raise InvalidOrder(
            f"the window {end - start} is longer than the maximum {limits.max_duration}",
            field="end_at",
        )


def _check_quantity(
    quantity: Decimal, symbol: str, instruments: Sequence[Instrument], mid: Decimal | None
) -> None:
    if quantity <= 0:
        raise InvalidOrder(f"quantity must be positive, got {quantity}", field="quantity")
    lot = max(i.lot_size for i in instruments)
    if quantity % lot != 0:
        raise InvalidOrder(
            f"quantity {quantity} is not a multiple of the lot size {lot} for {symbol}",
            field="quantity",
        )
    if mid is not None:
        smallest = min(i.min_tradable_qty(mid) for i in instruments)
        if quantity < smallest:
            raise InvalidOrder(
                f"quantity {quantity} is below the smallest tradable size {smallest} "
                f"for {symbol} at the current price {mid}",
                field="quantity",
            )


def _check_limit_price(
    limit_price: Decimal,
    symbol: str,
    instruments: Sequence[Instrument],
    mid: Decimal | None,
    limits: IntakeLimits,
) -> None:
    if limit_price <= 0:
        raise InvalidOrder(f"limit_price must be positive, got {limit_price}", field="limit_price")
    tick = max(i.tick_size for i in instruments)
    if limit_price % tick != 0:
        raise InvalidOrder(
            f"limit_price {limit_price} is not a multiple of the tick size {tick}",
            field="limit_price",
        )
    if mid is None:
        raise InvalidOrder(
            f"no market price for {symbol} to check limit_price against; retry shortly",
            field="limit_price",
        )
    distance = abs(limit_price - mid) / mid
    if distance > limits.limit_collar:
        raise InvalidOrder(
            f"limit_price {limit_price} is {distance:.1%} away from the market mid {mid}; "
            f"the collar is {limits.limit_collar:.0%}",
            field="limit_price",
        )
