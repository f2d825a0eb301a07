"""A seeded synthetic L2 market producing the same events as a recording.

The generator keeps a book in integer ticks and lots, moves a random-walk mid, and every
``diff_interval`` emits a ``BookDiff`` (spot-style contiguous update ids) and a matching
``BookTicker``; in between, trades arrive as a Poisson process and take from the touch, so the next
diff shows the levels they consumed. The same seed always yields the same stream.

The defaults of ``MarketModel`` were measured on the recorded Binance BTCUSDT spot book of
2024-08-08 23:54-24:00 UTC (``binance-spot-btcusdt-20240808.gz``): a 1-tick spread 88 % of the
time; about 206 levels within 10 bps of the mid (a level every ~30 ticks); level sizes lognormal
with ln-mean -5.7 and ln-sd 3.0 BTC, the touch thicker (median ~1.1 BTC); about 10 diffs a second
touching ~36 levels each, a median 4 bps from the mid; 28 trades a second, sizes lognormal with
ln-mean -6.6 and ln-sd 2.6 BTC; mid volatility about 1.3e-4 per square-root second.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from ems.domain import Side, ensure_utc
from ems.venues.replay import BookDiff, BookSnapshot, BookTicker, Levels, MarketEvent, Trade


@dataclass(frozen=True, slots=True)
class MarketModel:
    """Parameters of the synthetic market (defaults calibrated on recorded BTCUSDT spot)."""

    start_price: Decimal = Decimal("61837.63")
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal("0.00001")
    levels_per_side: int = 300
    level_gap_ticks: float = 30.0
    level_qty_log_mean: float = -5.7
    level_qty_log_sd: float = 3.0
    max_level_qty: Decimal = Decimal(20)
    touch_qty_log_mean: float = 0.1
    touch_qty_log_sd: float = 1.0
    one_tick_spread_prob: float = 0.88
    wide_spread_mean_ticks: float = 15.0
    volatility_per_sqrt_s: float = 1.3e-4
    diff_interval: timedelta = timedelta(milliseconds=100)
    level_updates_per_diff: float = 12.0
    update_distance_bps: float = 8.0
    add_delete_prob: float = 0.3
    trades_per_s: float = 28.0
    trade_qty_log_mean: float = -6.63
    trade_qty_log_sd: float = 2.58
    buy_prob: float = 0.5

    def __post_init__(self) -> None:
        if self.start_price <= 0 or self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError("start price, tick and lot must be positive")
        if self.levels_per_side < 2 or self.diff_interval <= timedelta(0):
            raise ValueError("need at least 2 levels a side and a positive diff interval")
        for name in ("one_tick_spread_prob", "buy_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if not 0.0 <= self.add_delete_prob <= 0.5:
            raise ValueError("add_delete_prob must be within [0, 0.5]")


class _Book:
    """Integer book: price ticks -> lots, sorted ticks, and the changes since the last diff."""

    def __init__(self) -> None:
        self.sides: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        self.ticks: dict[Side, list[int]] = {Side.BUY: [], Side.SELL: []}  # ascending
        self.changed: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}

    def set(self, side: Side, tick: int, lots: int) -> None:
        levels, ticks = self.sides[side], self.ticks[side]
        if lots > 0:
            if tick not in levels:
                insort(ticks, tick)
            levels[tick] = lots
        elif levels.pop(tick, None) is None:
            return
        else:
            del ticks[bisect_left(ticks, tick)]
        self.changed[side][tick] = max(lots, 0)

    def best(self, side: Side) -> int | None:
        ticks = self.ticks[side]
        if not ticks:
            return None
        return ticks[-1] if side is Side.BUY else ticks[0]

    def at_or_beyond(self, side: Side, tick: int) -> int | None:
        """The first level at ``tick`` or further from the touch, if any."""
        ticks = self.ticks[side]
        if side is Side.BUY:
            i = bisect_right(ticks, tick)
            return ticks[i - 1] if i else None
        i = bisect_left(ticks, tick)
        return ticks[i] if i < len(ticks) else None


class _Generator:
    def __init__(self, model: MarketModel, seed: int, start: datetime) -> None:
        self.m = model
        self.rng = np.random.default_rng(seed)
        self.start = ensure_utc(start)
        self.book = _Book()
        self.mid = float(model.start_price / model.tick_size)
        self.max_lots = int(model.max_level_qty / model.lot_size)
        self.update_id = 1_000
        self.trade_id = 1

    # -- helpers ------------------------------------------------------------------------
    def price(self, tick: int) -> Decimal:
        return Decimal(tick) * self.m.tick_size

    def qty(self, lots: int) -> Decimal:
        return Decimal(lots) * self.m.lot_size

    def lots(self, log_mean: float, log_sd: float) -> int:
        btc = float(self.rng.lognormal(log_mean, log_sd))
        return int(min(max(btc / float(self.m.lot_size), 1.0), self.max_lots))

    def level_lots(self) -> int:
        return self.lots(self.m.level_qty_log_mean, self.m.level_qty_log_sd)

    def gap(self) -> int:
        return int(self.rng.geometric(1.0 / max(self.m.level_gap_ticks, 1.0)))

    def touches(self) -> tuple[int, int]:
        spread = 1
        if self.rng.random() >= self.m.one_tick_spread_prob:
            spread += int(self.rng.geometric(1.0 / self.m.wide_spread_mean_ticks))
        bid = max(math.floor(self.mid - spread / 2), 1)
        return bid, bid + spread

    def levels(self, side: Side) -> Levels:
        ticks = self.book.ticks[side]
        levels = self.book.sides[side]
        ordered = reversed(ticks) if side is Side.BUY else iter(ticks)
        return tuple((self.price(tick), self.qty(levels[tick])) for tick in ordered)

    # -- book shaping -------------------------------------------------------------------
    def fill_from(self, side: Side, touch: int, until: int | None) -> None:
        """Place the touch level, then levels outward up to ``until`` (or up to the level cap)."""
        away = -side.sign
        book = self.book
        if touch not in book.sides[side]:
            book.set(side, touch, self.lots(self.m.touch_qty_log_mean, self.m.touch_qty_log_sd))
        tick = touch + away * self.gap()
        while tick > 0:
            if until is None and len(book.sides[side]) >= self.m.levels_per_side:
                break
            if until is not None and (tick - until) * away >= 0:
                break
            book.set(side, tick, self.level_lots())
            tick += away * self.gap()

    def move_touch(self, side: Side, touch: int) -> None:
        """Make ``touch`` the best level: drop better levels, fill a gap, extend the far end."""
        while (best := self.book.best(side)) is not None and (best - touch) * side.sign > 0:
            self.book.set(side, best, 0)
        old = self.book.best(side)
        if old is not None and old != touch:  # the old touch is now an ordinary level
            self.book.set(side, old, self.level_lots())
        self.fill_from(side, touch, old)
        ticks = self.book.ticks[side]
        while ticks and len(ticks) < self.m.levels_per_side:
            far = ticks[0] if side is Side.BUY else ticks[-1]
            tick = far - side.sign * self.gap()
            if tick <= 0:
                break
            self.book.set(side, tick, self.level_lots())

    def churn(self, touch: dict[Side, int]) -> None:
        """Random level updates near the touch; adds and deletes balance so depth stays put."""
        ticks_per_bps = self.mid / 10_000
        for _ in range(int(self.rng.poisson(self.m.level_updates_per_diff))):
            side = Side.BUY if self.rng.random() < 0.5 else Side.SELL
            distance = int(self.rng.exponential(self.m.update_distance_bps * ticks_per_bps))
            tick = touch[side] - side.sign * distance
            action = self.rng.random()
            ticks = self.book.ticks[side]
            if not ticks or (tick - (ticks[0] if side is Side.BUY else ticks[-1])) * side.sign < 0:
                continue  # beyond the far end: would leave a hole there
            if action < self.m.add_delete_prob and tick not in self.book.sides[side]:
                self.book.set(side, tick, self.level_lots())
                continue
            level = self.book.at_or_beyond(side, tick)
            if level is None:
                continue
            if action < 2 * self.m.add_delete_prob and level != self.book.best(side):
                self.book.set(side, level, 0)
            elif level == self.book.best(side):
                lots = self.lots(self.m.touch_qty_log_mean, self.m.touch_qty_log_sd)
                self.book.set(side, level, lots)
            else:
                self.book.set(side, level, self.level_lots())

    def trim(self, side: Side) -> None:
        ticks = self.book.ticks[side]
        while len(ticks) > self.m.levels_per_side:
            self.book.set(side, ticks[0] if side is Side.BUY else ticks[-1], 0)

    # -- events -------------------------------------------------------------------------
    def snapshot(self) -> BookSnapshot:
        bid, ask = self.touches()
        self.fill_from(Side.BUY, bid, None)
        self.fill_from(Side.SELL, ask, None)
        for changes in self.book.changed.values():
            changes.clear()
        return BookSnapshot(
            self.start, self.update_id, self.levels(Side.BUY), self.levels(Side.SELL)
        )

    def trades(self, step_start: datetime, dt_us: int) -> Iterator[Trade]:
        count = int(self.rng.poisson(self.m.trades_per_s * dt_us / 1e6))
        offsets = sorted(int(x) for x in self.rng.integers(0, dt_us, size=count))
        for offset in offsets:
            aggressor = Side.BUY if self.rng.random() < self.m.buy_prob else Side.SELL
            maker = aggressor.opposite
            tick = self.book.best(maker)
            if tick is None:
                continue
            level = self.book.sides[maker][tick]
            lots = min(self.lots(self.m.trade_qty_log_mean, self.m.trade_qty_log_sd), level)
            self.book.set(maker, tick, level - lots)
            ts = step_start + timedelta(microseconds=offset)
            yield Trade(ts, self.trade_id, self.price(tick), self.qty(lots), aggressor)
            self.trade_id += 1

    def diff(self, ts: datetime, dt_s: float) -> Iterator[BookDiff | BookTicker]:
        shock = float(self.rng.standard_normal()) * self.m.volatility_per_sqrt_s * math.sqrt(dt_s)
        self.mid = max(self.mid * (1.0 + shock), 100.0)
        bid, ask = self.touches()
        self.move_touch(Side.BUY, bid)
        self.move_touch(Side.SELL, ask)
        self.churn({Side.BUY: bid, Side.SELL: ask})
        for side in (Side.BUY, Side.SELL):
            self.trim(side)
        changed = self.book.changed
        n = len(changed[Side.BUY]) + len(changed[Side.SELL])
        if n:
            first = self.update_id + 1
            self.update_id += n
            yield BookDiff(
                ts,
                first,
                self.update_id,
                None,
                tuple((self.price(t), self.qty(q)) for t, q in sorted(changed[Side.BUY].items())),
                tuple((self.price(t), self.qty(q)) for t, q in sorted(changed[Side.SELL].items())),
            )
            for changes in changed.values():
                changes.clear()
        best_bid, best_ask = self.book.best(Side.BUY), self.book.best(Side.SELL)
        assert best_bid is not None and best_ask is not None
        yield BookTicker(
            ts,
            self.update_id,
            self.price(best_bid),
            self.qty(self.book.sides[Side.BUY][best_bid]),
            self.price(best_ask),
            self.qty(self.book.sides[Side.SELL][best_ask]),
        )


def generate_market(
    model: MarketModel | None = None,
    *,
    seed: int,
    start: datetime,
    duration: timedelta | None = None,
) -> Iterator[MarketEvent]:
    """Yield a snapshot, then trades, diffs and book tickers in time order.

    ``duration`` bounds the stream (``None``: endless). Same ``model``, ``seed`` and ``start``
    give an identical stream.
    """
    gen = _Generator(model or MarketModel(), seed, start)
    yield gen.snapshot()
    dt = gen.m.diff_interval
    dt_us = dt // timedelta(microseconds=1)
    step_start = gen.start
    end = None if duration is None else gen.start + duration
    while end is None or step_start + dt <= end:
        yield from gen.trades(step_start, dt_us)
        step_start += dt
        yield from gen.diff(step_start, dt.total_seconds())
