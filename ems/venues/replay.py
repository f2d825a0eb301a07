"""Recorded Binance market data: typed events, a fast L2 book and the book-rebuild rules.

A recording is gzip text, one message a line: ``<local_recv_ts_ns> <raw websocket JSON>``. Stream
messages look like ``{"stream": "btcusdt@depth@100ms", "data": {...}}``; the REST depth snapshot is
a bare ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}`` line a few lines in.

Rebuilding a book (``BookBuilder``): diffs received before the snapshot are buffered; the snapshot
is loaded; diffs with ``u <= lastUpdateId`` are dropped; the first applied spot diff must have
``U <= lastUpdateId + 1`` and every later one ``U == previous u + 1``; futures diffs carry ``pu``
and each must have ``pu == previous u``. Anything else raises ``SequenceGap``. A level quantity of
zero deletes the level.
"""

from __future__ import annotations

import gzip
import json
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

from ems.domain import ZERO, BookLevel, Side
from ems.errors import EmsError

_json_loads: Callable[[str], Any] = json.loads
try:  # orjson comes with ccxt (a dependency) and parses these lines several times faster
    import orjson

    _json_loads = orjson.loads
except ImportError:  # pragma: no cover
    pass

Levels = tuple[tuple[Decimal, Decimal], ...]
"""Price levels as ``(price, qty)`` pairs; in a diff a qty of zero deletes the level."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAMPLE = Path(__file__).parent / "data" / "binance-spot-btcusdt-20240808.gz"


class SequenceGap(EmsError):
    """A diff does not follow the previous one: the rebuilt book can no longer be trusted."""


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full depth snapshot (REST ``/depth``), valid as of ``last_update_id``."""

    ts: datetime
    last_update_id: int
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class BookDiff:
    """A depth update: Binance's ``U`` is ``first_update_id``, ``u`` is ``final_update_id`` and
    the futures-only ``pu`` (the previous diff's ``u``) is ``prev_final_update_id``."""

    ts: datetime
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade; ``aggressor`` is the taker's side."""

    ts: datetime
    trade_id: int
    price: Decimal
    qty: Decimal
    aggressor: Side


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid and ask as the exchange published them after update ``update_id``."""

    ts: datetime
    update_id: int
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal


MarketEvent = BookSnapshot | BookDiff | Trade | BookTicker


def default_sample_path() -> Path:
    """The Binance spot BTCUSDT sample shipped with the package (about 6 minutes, 41k lines)."""
    return _SAMPLE


def ts_from_ns(ns: int) -> datetime:
    """Aware UTC datetime from nanoseconds since the epoch (truncated to microseconds)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _levels(raw: list[list[str]]) -> Levels:
    return tuple([(Decimal(p), Decimal(q)) for p, q in raw])


def parse_line(line: str) -> MarketEvent | None:
    """Parse one recorded line; ``None`` for messages of streams we do not model."""
    stamp, _, payload = line.partition(" ")
    msg = _json_loads(payload)
    ts = ts_from_ns(int(stamp))
    stream = msg.get("stream")
    if stream is None:
        if "lastUpdateId" in msg:
            return BookSnapshot(ts, msg["lastUpdateId"], _levels(msg["bids"]), _levels(msg["asks"]))
        return None
    data = msg["data"]
    kind = stream.rpartition("@")[2] if "@depth" not in stream else "depth"
    if kind == "depth":
        return BookDiff(
            ts, data["U"], data["u"], data.get("pu"), _levels(data["b"]), _levels(data["a"])
        )
    if kind == "trade":
        aggressor = Side.SELL if data["m"] else Side.BUY
        return Trade(ts, data["t"], Decimal(data["p"]), Decimal(data["q"]), aggressor)
    if kind == "bookTicker":
        return BookTicker(
            ts,
            data["u"],
            Decimal(data["b"]),
            Decimal(data["B"]),
            Decimal(data["a"]),
            Decimal(data["A"]),
        )
    return None


def iter_recorded(path: str | Path) -> Iterator[MarketEvent]:
    """Stream the events of a recording in file (= local receive) order."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                event = parse_line(line)
                if event is not None:
                    yield event


def load_recorded(path: str | Path) -> list[MarketEvent]:
    """All events of a recording, sorted by receive time (stable for equal timestamps)."""
    events = list(iter_recorded(path))
    if any(later.ts < earlier.ts for earlier, later in pairwise(events)):
        events.sort(key=lambda event: event.ts)
    return events


class L2Book:
    """Price levels of one book side pair: dicts for lookups, sorted price lists for order.

    Both price lists are ascending; the best bid is the last bid, the best ask the first ask.
    """

    __slots__ = ("_ask_px", "_bid_px", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self._bid_px: list[Decimal] = []
        self._ask_px: list[Decimal] = []

    def load(
        self, bids: Iterable[tuple[Decimal, Decimal]], asks: Iterable[tuple[Decimal, Decimal]]
    ) -> None:
        """Replace the whole book (levels with zero quantity are ignored)."""
        self.bids = {p: q for p, q in bids if q}
        self.asks = {p: q for p, q in asks if q}
        self._bid_px = sorted(self.bids)
        self._ask_px = sorted(self.asks)

    def update(self, side: Side, levels: Levels) -> None:
        """Set absolute level quantities on the ``side`` book side (BUY = bids); 0 deletes."""
        book, prices = (self.bids, self._bid_px) if side is Side.BUY else (self.asks, self._ask_px)
        for price, qty in levels:
            if qty:
                if price not in book:
                    insort(prices, price)
                book[price] = qty
            elif book.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]

    def qty(self, side: Side, price: Decimal) -> Decimal:
        """Quantity at ``price`` on the ``side`` book side (zero if no level)."""
        return (self.bids if side is Side.BUY else self.asks).get(price, ZERO)

    def prices(self, side: Side) -> Iterator[Decimal]:
        """Prices of one side, best first (highest bid, lowest ask)."""
        return reversed(self._bid_px) if side is Side.BUY else iter(self._ask_px)

    @property
    def best_bid(self) -> Decimal | None:
        return self._bid_px[-1] if self._bid_px else None

    @property
    def best_ask(self) -> Decimal | None:
        return self._ask_px[0] if self._ask_px else None

    def top(self, side: Side, depth: int) -> list[BookLevel]:
        """The best ``depth`` levels of one side, best first."""
        book = self.bids if side is Side.BUY else self.asks
        out: list[BookLevel] = []
        for price in self.prices(side):
            if len(out) >= depth:
                break
            out.append(BookLevel(price, book[price]))
        return out

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)


class BookBuilder:
    """Rebuilds an ``L2Book`` from a snapshot and diffs, enforcing Binance's sequence rules."""

    def __init__(self) -> None:
        self.book = L2Book()
        self.last_update_id: int | None = None
        self._first = True
        self._buffer: list[BookDiff] = []

    @property
    def synced(self) -> bool:
        """True once a snapshot has been loaded."""
        return self.last_update_id is not None

    def apply(self, event: MarketEvent) -> list[BookDiff]:
        """Apply a snapshot or a diff; return the diffs that changed the book (maybe none).

        Trades and book tickers are ignored. A snapshot also applies the diffs buffered before
        it, which are returned.
        """
        if isinstance(event, BookDiff):
            return [event] if self.apply_diff(event) else []
        if isinstance(event, BookSnapshot):
            return self.apply_snapshot(event)
        return []

    def apply_snapshot(self, snapshot: BookSnapshot) -> list[BookDiff]:
        """Load ``snapshot`` and apply the buffered diffs that follow it; return those applied."""
        self.book.load(snapshot.bids, snapshot.asks)
        self.last_update_id = snapshot.last_update_id
        self._first = True
        buffered, self._buffer = self._buffer, []
        return [diff for diff in buffered if self.apply_diff(diff)]

    def apply_diff(self, diff: BookDiff) -> bool:
        """Apply ``diff``; False if it was buffered (no snapshot yet) or is older than the book.

        Raises ``SequenceGap`` if it does not continue the previous update.
        """
        last = self.last_update_id
        if last is None:
            self._buffer.append(diff)
            return False
        if diff.final_update_id <= last:
            return False
        self._check_sequence(diff, last)
        self.book.update(Side.BUY, diff.bids)
        self.book.update(Side.SELL, diff.asks)
        self.last_update_id = diff.final_update_id
        self._first = False
        return True

    def _check_sequence(self, diff: BookDiff, last: int) -> None:
        first_id, prev = diff.first_update_id, diff.prev_final_update_id
        if prev is not None:  # futures: pu links diffs; the first one must contain `last`
            ok = prev == last or (self._first and first_id <= last)
            rule = f"pu == {last}" + (f" or U <= {last}" if self._first else "")
        elif self._first:
            ok = first_id <= last + 1
            rule = f"U <= {last + 1}"
        else:
            ok = first_id == last + 1
            rule = f"U == {last + 1}"
        if not ok:
            raise SequenceGap(
                f"diff U={first_id} u={diff.final_update_id} pu={prev} at {diff.ts.isoformat()} "
                f"breaks the sequence rule {rule}"
            )
