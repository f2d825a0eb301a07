"""Helpers for tests that run parents over the recorded Binance data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

import pytest

from ems.clock import TestClock
from ems.domain import Fill, Liquidity, Side
from ems.manager import ParentOrderManager
from ems.orders import ParentOrder
from ems.venues.replay import BookBuilder, BookSnapshot, MarketEvent, Trade, load_recorded
from tests.shared_data import MARKET

SHARED_MARKET = MARKET
SPOT_FILE = SHARED_MARKET / "binance-spot-btcusdt-20240808.gz"


@cache
def _spot_events() -> tuple[MarketEvent, ...]:
    return tuple(load_recorded(SPOT_FILE))


def spot_recording() -> list[MarketEvent]:
    """The recorded Binance spot BTCUSDT events; skips the test if the data is missing."""
    if not SPOT_FILE.is_file():
        pytest.skip(f"recorded market data not found at {SPOT_FILE}")
    return list(_spot_events())


def snapshot_time(events: Sequence[MarketEvent]) -> datetime:
    return next(e.ts for e in events if isinstance(e, BookSnapshot))


async def run_until_done(
    manager: ParentOrderManager,
    clock: TestClock,
    parent_id: str,
    until: datetime,
    step: timedelta = timedelta(milliseconds=500),
) -> ParentOrder:
    """Step the manager on the test clock, checking the no-overfill rule after every step."""
    parent = manager.parent(parent_id)
    assert parent is not None
    while clock.now() < until:
        clock.advance(step)
        await manager.step()
        parent = manager.parent(parent_id)
        assert parent is not None
        working = sum((c.working_qty for c in manager.live_children(parent_id)), Decimal(0))
        assert parent.filled_qty + working <= parent.quantity, "filled + working exceeds the parent"
        if parent.is_terminal:
            break
    return parent


def check_fills_against_recorded_book(fills: Sequence[Fill], events: Sequence[MarketEvent]) -> int:
    """Every fill's price was on the book side it traded against at that moment.

    A taker buy (sell) must hit a price on the recorded asks (bids); a maker buy (sell) must be
    explained by a recorded aggressive sell (buy) at or through its price at that instant, or by
    the recorded book moving through it. Returns the number of fills checked.
    """
    builder = BookBuilder()
    ordered = sorted(fills, key=lambda f: f.ts)
    i = 0
    trades_at: dict[datetime, list[Trade]] = {}
    for fill in ordered:
        while i < len(events) and events[i].ts <= fill.ts:
            event = events[i]
            if isinstance(event, Trade):
                trades_at.setdefault(event.ts, []).append(event)
            builder.apply(event)
            i += 1
        book = builder.book
        if fill.liquidity is Liquidity.TAKER:
            opposite = Side.SELL if fill.side is Side.BUY else Side.BUY
            assert book.qty(opposite, fill.price) > 0, f"taker fill {fill} not on the book"
        else:
            trades = trades_at.get(fill.ts, [])
            if fill.side is Side.BUY:
                crossed_by_trade = any(
                    t.aggressor is Side.SELL and t.price <= fill.price for t in trades
                )
                crossed_by_book = book.best_ask is not None and book.best_ask <= fill.price
            else:
                crossed_by_trade = any(
                    t.aggressor is Side.BUY and t.price >= fill.price for t in trades
                )
                crossed_by_book = book.best_bid is not None and book.best_bid >= fill.price
            assert crossed_by_trade or crossed_by_book, f"maker fill {fill} not explained"
    return len(ordered)
