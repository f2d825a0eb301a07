"""Paper trading: a real exchange's live market data, our orders matched by the simulator.

A ``PaperVenue`` owns a read-only ``CcxtVenue`` (no API keys) for market data and a
``SimVenue`` (matching engine, spot balances, latency) for everything else. Before serving a
call it refreshes the market, at most every ``refresh_interval``:

* the public trades since the last refresh (``CcxtVenue.public_trades``) become ``Trade``
  events, in time order; each may fill our resting orders as it would on the exchange;
* each symbol's order book (``CcxtVenue.order_book``: streamed or REST) becomes a
  ``BookSnapshot`` stamped with the refresh time, which the engine matches our orders against.
  Paper orders never touch the real book, so liquidity we took is back at the next snapshot.

The simulator's clock is the market's: it moves only with the data fed in, so an order's
latency elapses against real trades and books. A trade reported with a time the simulator has
already passed (it arrived late) is dropped rather than replayed out of order; a book older
than the data venue's ``book_max_age`` is not fed. Orders and balances live in memory: a
restart begins again from the configured balances (fill trade ids still never repeat).

A refresh that fails, or leaves a symbol's book stale, stops ``submit`` and ``order_book`` on
it (``VenueUnavailable``: no trading on data we do not have) but not ``cancel``,
``fetch_order`` or ``balances``, which answer from the simulator.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import TYPE_CHECKING

from ems.clock import Clock, LiveClock
from ems.domain import Balance, Instrument, OrderBook, OrderRequest, ensure_utc
from ems.errors import VenueError, VenueUnavailable
from ems.ports import VenueOrderState
from ems.venues.ccxt_venue import CcxtVenue
from ems.venues.replay import BookSnapshot, Trade
from ems.venues.sim_venue import SimVenue, SimVenueConfig

if TYPE_CHECKING:
    from ems.ports import VenuePort
    from ems.settings import CcxtVenueSettings

__all__ = ["PaperVenue", "ccxt_venue_from_settings"]

log = logging.getLogger(__name__)


class _MarketTime:
    """The simulator's clock in paper trading: the time of the market data fed so far."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, moment: datetime) -> None:
        self._now = max(self._now, ensure_utc(moment))


class PaperVenue:
    """A ``VenuePort`` that trades on paper against a real exchange's live book and trades."""

    native_iceberg = False  # the simulator shows every order in full; icebergs are synthetic

    def __init__(
        self,
        name: str,
        market: CcxtVenue,
        *,
        balances: Mapping[str, Decimal],
        clock: Clock | None = None,
        latency: timedelta = timedelta(milliseconds=20),
        maker_fee: Decimal | None = None,
        taker_fee: Decimal | None = None,
        refresh_interval: timedelta = timedelta(seconds=1),
        book_depth: int = 100,
    ) -> None:
        """``market`` supplies the data (its configured symbols are the ones traded here);
        ``maker_fee`` / ``taker_fee`` override the exchange's published fees."""
        self._name = name
        self._market = market
        self._balances = dict(balances)
        self._clock: Clock = clock or LiveClock()
        self._latency = latency
        self._maker_fee = maker_fee
        self._taker_fee = taker_fee
        self._refresh_interval = refresh_interval
        self._book_depth = book_depth
        self._sim: SimVenue | None = None
        self._time: _MarketTime | None = None
        self._cursor: dict[str, datetime] = {}
        self._last_refresh: datetime | None = None
        self._stale: dict[str, datetime] = {}  # symbol -> time of its newest (too old) book
        self._update_ids = count(1)
        self.dropped_trades = 0  # trades that arrived after the simulator had passed their time

    @classmethod
    def from_settings(cls, spec: CcxtVenueSettings, clock: Clock | None = None) -> PaperVenue:
        """A paper venue from ccxt venue settings with ``paper = true``."""
        if not spec.paper:
            raise ValueError(f"{spec.name}: not a paper venue")
        return cls(
            spec.name,
            CcxtVenue.from_settings(spec, clock),
            balances=spec.paper_balances(),
            clock=clock,
            latency=timedelta(milliseconds=spec.latency_ms),
        )

    def __repr__(self) -> str:
        return f"PaperVenue(name={self._name!r}, market={self._market!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def sim(self) -> SimVenue:
        """The simulator behind this venue (after ``start``), for inspection."""
        if self._sim is None:
            raise RuntimeError(f"{self._name}: await venue.start() first")
        return self._sim

    async def start(self) -> None:
        """Load the exchange's markets and set up the simulator at ``clock.now()``."""
        if self._sim is not None:
            return
        await self._market.start()
        listed = self._market.instruments()
        if not listed or not self._market.symbols:
            raise ValueError(f"{self._name}: a paper venue needs its symbols configured")
        instruments = tuple(dataclasses.replace(inst, venue=self._name) for inst in listed.values())
        start = ensure_utc(self._clock.now())
        config = SimVenueConfig(
            self._name,
            instruments,
            balances=self._balances,
            maker_fee=self._maker_fee,
            taker_fee=self._taker_fee,
            latency=self._latency,
        )
        self._time = _MarketTime(start)
        # microseconds since the epoch, times 1000: no later run can reuse an earlier fill's id
        first_trade_id = int(start.timestamp() * 1_000_000) * 1000
        feeds: dict[str, tuple[()]] = {inst.symbol: () for inst in instruments}
        self._sim = SimVenue(config, self._time, feeds, first_trade_id=first_trade_id)
        self._cursor = {inst.symbol: start for inst in instruments}

    async def close(self) -> None:
        """Close the market-data connection."""
        await self._market.close()

    async def refresh(self, *, force: bool = False) -> None:
        """Feed the trades and books published since the last refresh into the simulator
        (at most every ``refresh_interval`` unless ``force``). Raises ``VenueError`` when the
        market data cannot be read; nothing is fed then."""
        await self.start()
        sim, market_time = self.sim, self._time
        assert market_time is not None
        now = ensure_utc(self._clock.now())
        if (
            not force
            and self._last_refresh is not None
            and now - self._last_refresh < self._refresh_interval
        ):
            return
        trades: list[tuple[datetime, int, str, Trade]] = []
        books: dict[str, OrderBook] = {}
        for n, symbol in enumerate(self._cursor):
            for trade in await self._market.public_trades(symbol, self._cursor[symbol]):
                trades.append((trade.ts, n, symbol, trade))
            books[symbol] = await self._market.order_book(symbol, self._book_depth)
        self._last_refresh = now
        for ts, _, symbol, trade in sorted(trades, key=lambda item: (item[0], item[1])):
            self._cursor[symbol] = max(self._cursor[symbol], ts)
            if ts < sim.now:  # the simulator has passed this moment: it cannot be replayed
                self.dropped_trades += 1
                continue
            market_time.advance(ts)
            sim.apply_market_event(symbol, trade)
        stamp = max(now, sim.now)
        max_age = self._market.options.book_max_age
        for symbol, book in books.items():
            if now - book.ts > max_age:
                log.warning("%s: %s book from %s is stale; not fed", self._name, symbol, book.ts)
                self._stale[symbol] = book.ts
                continue
            self._stale.pop(symbol, None)
            snapshot = BookSnapshot(
                ts=stamp,
                last_update_id=next(self._update_ids),
                bids=tuple((level.price, level.qty) for level in book.bids),
                asks=tuple((level.price, level.qty) for level in book.asks),
            )
            sim.apply_market_event(symbol, snapshot)
        market_time.advance(stamp)

    async def _live(self, symbol: str | None = None) -> SimVenue:
        """The simulator after a refresh; with ``symbol`` (strict), only if that symbol's
        market data is fresh, else ``VenueError``."""
        await self.start()
        try:
            await self.refresh()
        except VenueError as exc:
            if symbol is not None:
                raise
            log.warning("%s: market data not refreshed: %s", self._name, exc)
        if symbol is not None and symbol in self._stale:
            raise VenueUnavailable(
                self._name, f"{symbol}: the newest book is from {self._stale[symbol]} (stale)"
            )
        return self.sim

    # ------------------------------------------------------------------------------ VenuePort
    def instruments(self) -> Mapping[str, Instrument]:
        """The exchange's instruments (configured symbols), under this venue's name."""
        return self.sim.instruments()

    async def submit(self, request: OrderRequest) -> VenueOrderState:
        """Simulate the order against the live book (it arrives after the latency)."""
        return await (await self._live(request.symbol)).submit(request)

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        """Cancel in the simulator (effective after the latency)."""
        await (await self._live()).cancel(client_order_id, symbol)

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrderState:
        """The simulated order with its fills."""
        return await (await self._live()).fetch_order(client_order_id, symbol)

    async def order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The live book as the simulator sees it: minus what we took, plus our orders."""
        return await (await self._live(symbol)).order_book(symbol, depth)

    async def traded_volume(self, symbol: str, since: datetime) -> Decimal:
        """The exchange's traded quantity on ``symbol`` after ``since`` (not ours)."""
        await self.start()
        return await self._market.traded_volume(symbol, since)

    async def balances(self) -> Mapping[str, Balance]:
        """Simulated balances: the configured ones, changed by our simulated fills."""
        return await (await self._live()).balances()

    def drain_updates(self) -> list[VenueOrderState]:
        """Simulated order changes since the last call (fed by the last refresh)."""
        return [] if self._sim is None else self._sim.drain_updates()


def ccxt_venue_from_settings(spec: CcxtVenueSettings, clock: Clock) -> VenuePort:
    """The venue a ccxt settings entry describes: a ``PaperVenue`` when ``spec.paper``, else a
    live ``CcxtVenue`` (its API key and secret read from the environment variables named)."""
    if spec.paper:
        return PaperVenue.from_settings(spec, clock)
    return CcxtVenue.from_settings(spec, clock)
