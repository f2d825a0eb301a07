"""Recorded Binance data: parsing, book rebuilding and the sequence rules."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from ems.domain import Side
from ems.venues.replay import (
    BookBuilder,
    BookDiff,
    BookSnapshot,
    BookTicker,
    MarketEvent,
    SequenceGap,
    Trade,
    default_sample_path,
    iter_recorded,
    load_recorded,
    parse_line,
)
from tests.shared_data import MARKET

MARKET_DIR = MARKET
SPOT = MARKET_DIR / "binance-spot-btcusdt-20240808.gz"
USDM = MARKET_DIR / "binance-usdm-btcusdt-20240808.gz"
T0 = datetime(2024, 8, 8, 23, 54, tzinfo=UTC)
D = Decimal


def _recorded(path: Path) -> list[MarketEvent]:
    if not path.exists():
        pytest.skip(f"recorded market data missing: {path} (shared/data/market not mounted)")
    return load_recorded(path)


@pytest.fixture(scope="module")
def spot_events() -> list[MarketEvent]:
    return _recorded(SPOT)


@pytest.fixture(scope="module")
def usdm_events() -> list[MarketEvent]:
    return _recorded(USDM)


def _ticker_comparisons(events: list[MarketEvent]) -> list[tuple[tuple[Decimal, ...], ...]]:
    """(rebuilt top of book after diff u, recorded bookTicker u) for every matching update id."""
    builder = BookBuilder()
    rebuilt: dict[int, tuple[Decimal, ...]] = {}
    tickers: list[BookTicker] = []
    for event in events:
        if isinstance(event, BookTicker):
            tickers.append(event)
        for diff in builder.apply(event):
            book = builder.book
            bid, ask = book.best_bid, book.best_ask
            assert bid is not None and ask is not None
            rebuilt[diff.final_update_id] = (bid, book.bids[bid], ask, book.asks[ask])
    return [
        (rebuilt[t.update_id], (t.bid_price, t.bid_qty, t.ask_price, t.ask_qty))
        for t in tickers
        if t.update_id in rebuilt
    ]


def _snapshot(last_id: int = 100) -> BookSnapshot:
    return BookSnapshot(
        T0, last_id, ((D("100.00"), D(1)), (D("99.99"), D(2))), ((D("100.01"), D(3)),)
    )


def _diff(first: int, final: int, prev: int | None = None, **levels: object) -> BookDiff:
    bids = levels.get("bids", ())
    asks = levels.get("asks", ())
    assert isinstance(bids, tuple) and isinstance(asks, tuple)
    return BookDiff(T0, first, final, prev, bids, asks)


# ------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(("maker_flag", "aggressor"), [("true", Side.SELL), ("false", Side.BUY)])
def test_trade_buyer_maker_flag_gives_the_aggressor_side(maker_flag: str, aggressor: Side) -> None:
    line = (
        '1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","t":3735683259,'
        f'"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":{maker_flag},"M":true}}}}'
    )

    event = parse_line(line)

    assert event == Trade(
        datetime(2024, 8, 8, 23, 54, 14, 87896, tzinfo=UTC),
        3735683259,
        D("61837.63"),
        D("0.02"),
        aggressor,
    )


def test_depth_line_parses_update_ids_and_decimal_levels() -> None:
    line = (
        '1723161254036059768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",'
        '"U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],'
        '"a":[["61838.04000000","0.32332000"]]}}'
    )

    event = parse_line(line)

    assert isinstance(event, BookDiff)
    assert (event.first_update_id, event.final_update_id, event.prev_final_update_id) == (
        50093239203,
        50093239207,
        None,
    )
    assert event.bids == ((D("55653.87"), D(0)),)
    assert event.asks == ((D("61838.04"), D("0.32332")),)
    assert event.ts.tzinfo is UTC


def test_snapshot_ticker_and_unknown_stream_lines() -> None:
    snapshot = parse_line('5000 {"lastUpdateId":7,"bids":[["1.5","2"]],"asks":[["1.6","3"]]}')
    ticker = parse_line(
        '5000 {"stream":"x@bookTicker","data":{"u":9,"b":"1.5","B":"2","a":"1.6","A":"3"}}'
    )
    other = parse_line('5000 {"stream":"x@aggTrade","data":{}}')

    assert snapshot == BookSnapshot(
        datetime(1970, 1, 1, 0, 0, 0, 5, tzinfo=UTC), 7, ((D("1.5"), D(2)),), ((D("1.6"), D(3)),)
    )
    assert ticker == BookTicker(snapshot.ts, 9, D("1.5"), D(2), D("1.6"), D(3))
    assert other is None


def test_packaged_sample_is_the_shared_spot_recording() -> None:
    sample = default_sample_path()
    if not SPOT.exists():
        pytest.skip(f"recorded market data missing: {SPOT}")

    assert sample.read_bytes() == SPOT.read_bytes()
    assert (sample.parent / "LICENSE-hftbacktest.txt").read_text().startswith("MIT License")


def test_packaged_sample_contents() -> None:
    events = load_recorded(default_sample_path())

    kinds = [BookSnapshot, BookDiff, Trade, BookTicker]
    counts = {kind.__name__: sum(isinstance(e, kind) for e in events) for kind in kinds}

    assert counts == {"BookSnapshot": 1, "BookDiff": 3451, "Trade": 9757, "BookTicker": 28040}
    assert all(a.ts <= b.ts for a, b in pairwise(events))


def test_iter_recorded_streams_the_same_events_as_load(tmp_path: Path) -> None:
    path = tmp_path / "small.gz"
    with gzip.open(default_sample_path(), "rt") as src:
        head = [next(src) for _ in range(50)]
    with gzip.open(path, "wt") as dst:
        dst.writelines([*head, "\n"])

    assert list(iter_recorded(path)) == load_recorded(path)


# -------------------------------------------------------------------------------- rebuilding
def test_spot_rebuilt_book_equals_book_ticker_whenever_update_ids_match(
    spot_events: list[MarketEvent],
) -> None:
    comparisons = _ticker_comparisons(spot_events)

    mismatches = [pair for pair in comparisons if pair[0] != pair[1]]
    assert mismatches == []
    assert len(comparisons) > 500  # 564 tickers share an update id with a diff in this file


def test_futures_rebuilt_book_equals_book_ticker_with_the_pu_rule(
    usdm_events: list[MarketEvent],
) -> None:
    diffs = [e for e in usdm_events if isinstance(e, BookDiff)]

    comparisons = _ticker_comparisons(usdm_events)

    assert all(d.prev_final_update_id is not None for d in diffs)
    assert [pair for pair in comparisons if pair[0] != pair[1]] == []
    assert len(comparisons) > 500


def test_both_recordings_together_give_over_a_thousand_ticker_matches(
    spot_events: list[MarketEvent], usdm_events: list[MarketEvent]
) -> None:
    total = len(_ticker_comparisons(spot_events)) + len(_ticker_comparisons(usdm_events))

    assert total > 1000


def test_diffs_before_the_snapshot_are_buffered_and_stale_ones_dropped() -> None:
    builder = BookBuilder()
    stale = _diff(90, 100, bids=((D("100.00"), D(9)),))
    covering = _diff(95, 105, asks=((D("100.01"), D(4)),))

    assert builder.apply(stale) == [] and builder.apply(covering) == []
    applied = builder.apply(_snapshot(100))

    assert applied == [covering]
    assert builder.book.bids[D("100.00")] == 1  # the stale diff was not applied
    assert builder.book.asks[D("100.01")] == 4
    assert builder.last_update_id == 105


def test_zero_quantity_deletes_a_level_and_new_levels_sort() -> None:
    builder = BookBuilder()
    builder.apply(_snapshot(100))

    builder.apply(_diff(101, 101, bids=((D("100.00"), D(0)), (D("99.995"), D(5)))))

    assert D("100.00") not in builder.book.bids
    assert builder.book.best_bid == D("99.995")
    assert [level.price for level in builder.book.top(Side.BUY, 5)] == [D("99.995"), D("99.99")]


@pytest.mark.parametrize(
    "diffs",
    [
        pytest.param([_diff(102, 103)], id="spot-first-diff-after-a-hole"),
        pytest.param([_diff(101, 103), _diff(105, 106)], id="spot-U-not-previous-u-plus-1"),
        pytest.param([_diff(99, 103, 98), _diff(110, 120, 104)], id="futures-pu-not-previous-u"),
        pytest.param([_diff(102, 103, 101)], id="futures-first-diff-after-a-hole"),
    ],
)
def test_sequence_gap_raises(diffs: list[BookDiff]) -> None:
    builder = BookBuilder()
    builder.apply(_snapshot(100))

    with pytest.raises(SequenceGap, match="sequence rule"):
        for diff in diffs:
            builder.apply(diff)


@pytest.mark.parametrize(
    "diffs",
    [
        pytest.param([_diff(95, 103), _diff(104, 110)], id="spot"),
        pytest.param([_diff(95, 103, 90), _diff(120, 130, 103)], id="futures"),
        pytest.param([_diff(80, 100, 70), _diff(140, 150, 100)], id="futures-pu-is-snapshot-id"),
    ],
)
def test_contiguous_diffs_apply(diffs: list[BookDiff]) -> None:
    builder = BookBuilder()
    builder.apply(_snapshot(100))

    for diff in diffs:
        builder.apply(diff)

    assert builder.last_update_id == diffs[-1].final_update_id


def test_recorded_gap_is_detected(spot_events: list[MarketEvent]) -> None:
    diffs = [e for e in spot_events if isinstance(e, BookDiff)]
    snapshot = next(e for e in spot_events if isinstance(e, BookSnapshot))
    builder = BookBuilder()
    builder.apply(snapshot)
    applied = [d for d in diffs if d.final_update_id > snapshot.last_update_id]

    with pytest.raises(SequenceGap):
        for diff in applied[:10] + applied[11:]:
            builder.apply(diff)
