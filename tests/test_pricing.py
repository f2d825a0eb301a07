"""Shared pricing (pure): join / improve / cross, the void guard, i-would, limits, repricing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos import pricing
from algos.base import MarketView, ParentView, Plan, WorkingChild
from algos.pricing import ExecutionStyle
from ems.domain import BookLevel, OrderBook, Side, TimeInForce
from ems.errors import InvalidOrder
from ems.venues.sim_venue import binance_btcusdt_instrument

T0 = datetime(2024, 8, 8, 23, 55, tzinfo=UTC)
BTCUSDT = binance_btcusdt_instrument("sim")
D = Decimal


def ladder(
    bid: str = "60000.00",
    ask: str = "60000.01",
    step: str = "0.50",
    depth: str = "1",
    levels: int = 10,
) -> OrderBook:
    """A regular book: ``levels`` levels a side, ``step`` apart, ``depth`` each."""
    return OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(D(bid) - i * D(step), D(depth)) for i in range(levels)),
        asks=tuple(BookLevel(D(ask) + i * D(step), D(depth)) for i in range(levels)),
    )


def book_of(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    return OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(D(p), D(q)) for p, q in bids),
        asks=tuple(BookLevel(D(p), D(q)) for p, q in asks),
    )


def parent(
    qty: str = "10",
    filled: str = "0",
    working: str = "0",
    side: Side = Side.BUY,
    limit: str | None = None,
    children: tuple[WorkingChild, ...] = (),
) -> ParentView:
    return ParentView(
        side=side,
        quantity=D(qty),
        filled=D(filled),
        working=D(working),
        start_at=T0,
        end_at=T0 + timedelta(minutes=10),
        limit_price=D(limit) if limit else None,
        children=children,
    )


def market(book: OrderBook) -> MarketView:
    return MarketView(book=book, instrument=BTCUSDT)


def step(
    view: ParentView,
    book: OrderBook,
    *,
    wanted: str,
    urgency: float,
    style: ExecutionStyle | None = None,
    now: datetime = T0,
) -> Plan:
    return pricing.plan_step(
        view, market(book), style or ExecutionStyle(), now, wanted=D(wanted), urgency=urgency
    )


# --- parameters -------------------------------------------------------------------------------


def test_style_defaults_match_the_documented_ones() -> None:
    style = ExecutionStyle.from_mapping({})

    assert style == ExecutionStyle(None, D(20), D(50), 5.0, 2)


def test_style_reads_its_keys_and_ignores_the_algorithms_own() -> None:
    style = ExecutionStyle.from_mapping(
        {"i_would_price": "59990.5", "max_gap_bps": 10, "min_rest_s": 2.5, "slice_interval_s": 9}
    )

    assert style.i_would_price == D("59990.5")
    assert style.max_gap_bps == D(10)
    assert style.min_rest == timedelta(seconds=2.5)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"i_would_price": "-1"}, "algo_params.i_would_price"),
        ({"i_would_price": "abc"}, "algo_params.i_would_price"),
        ({"max_gap_bps": 0}, "algo_params.max_gap_bps"),
        ({"max_gap_bps": "nan"}, "algo_params.max_gap_bps"),
        ({"max_depth_bps": -1}, "algo_params.max_depth_bps"),
        ({"min_rest_s": -0.1}, "algo_params.min_rest_s"),
        ({"min_rest_s": True}, "algo_params.min_rest_s"),
        ({"reprice_ticks": 0}, "algo_params.reprice_ticks"),
        ({"reprice_ticks": 1.5}, "algo_params.reprice_ticks"),
    ],
)
def test_bad_style_values_name_their_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOrder) as caught:
        ExecutionStyle.from_mapping(raw)

    assert caught.value.field == field


# --- join, improve, cross ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "urgency", "spread_ticks", "price", "tif"),
    [
        (Side.BUY, 0.0, 5, "60000.00", TimeInForce.GTC),  # on schedule: join the bid
        (Side.BUY, 0.49, 5, "60000.00", TimeInForce.GTC),
        (Side.BUY, 0.5, 5, "60000.01", TimeInForce.GTC),  # a little behind: improve one tick
        (Side.BUY, 0.99, 1, "60000.00", TimeInForce.GTC),  # one-tick spread: nothing to improve
        (Side.BUY, 1.0, 5, "60000.05", TimeInForce.IOC),  # a slice behind: cross
        (Side.SELL, 0.0, 5, "60000.05", TimeInForce.GTC),
        (Side.SELL, 0.7, 5, "60000.04", TimeInForce.GTC),
        (Side.SELL, 3.0, 5, "60000.00", TimeInForce.IOC),
    ],
)
def test_urgency_escalates_from_join_to_improve_to_cross(
    side: Side, urgency: float, spread_ticks: int, price: str, tif: TimeInForce
) -> None:
    ask = str(D("60000.00") + spread_ticks * BTCUSDT.tick_size)
    book = ladder(ask=ask)

    plan = step(parent(side=side), book, wanted="0.5", urgency=urgency)

    (intent,) = plan.slices
    assert intent.price == D(price)
    assert intent.time_in_force is tif
    assert intent.aggressive is (tif is TimeInForce.IOC)
    assert intent.qty == D("0.5")


def test_cross_is_sized_to_the_book_and_priced_at_the_level_it_reaches() -> None:
    plan = step(parent(), ladder(depth="1.5"), wanted="4", urgency=2)

    (intent,) = plan.slices
    assert intent.qty == D("4")
    assert intent.price == D("60000.01") + 2 * D("0.50")  # three levels of 1.5 cover 4


# --- void guard ------------------------------------------------------------------------------


def test_cross_stops_before_a_gap_wider_than_the_guard() -> None:
    # 60000.01, 60000.51 (0.08 bps apart), then a 100 USD hole (16.7 bps), then depth again.
    book = book_of(
        bids=[("60000.00", "5")],
        asks=[("60000.01", "1"), ("60000.51", "1"), ("60100.51", "50"), ("60101.00", "50")],
    )
    style = ExecutionStyle(max_gap_bps=D(10))

    plan = step(parent(), book, wanted="5", urgency=2, style=style)

    (intent,) = plan.slices
    assert intent.aggressive
    assert intent.qty == D("2")  # only what sits before the void
    assert intent.price == D("60000.51")


def test_cross_never_goes_deeper_than_max_depth_from_the_far_touch() -> None:
    # Levels every 6 USD (1 bp): a 3 bp depth allows the touch and three more levels.
    book = ladder(step="6", depth="1")
    style = ExecutionStyle(max_depth_bps=D(3))

    plan = step(parent(), book, wanted="9", urgency=2, style=style)

    (intent,) = plan.slices
    assert intent.qty == D("4")
    assert intent.price == D("60000.01") + 3 * D(6)


def test_a_spread_wider_than_the_guard_is_itself_a_void_so_the_child_improves_passively() -> None:
    book = book_of(bids=[("60000.00", "1")], asks=[("60300.00", "1")])  # 50 bps spread

    plan = step(parent(), book, wanted="0.5", urgency=5)

    (intent,) = plan.slices
    assert not intent.aggressive and intent.time_in_force is TimeInForce.GTC
    assert intent.price == D("60000.01")
    assert "void guard" in intent.reason
    assert plan.hold_reason == ""


def test_when_the_band_holds_less_than_the_venue_minimum_the_child_goes_passive() -> None:
    book = book_of(
        bids=[("60000.00", "1")],
        asks=[("60000.01", "0.00002"), ("60500.00", "10")],  # 2e-5 BTC is about 1.2 USDT
    )

    plan = step(parent(), book, wanted="1", urgency=math.inf)

    (intent,) = plan.slices
    assert not intent.aggressive
    assert intent.price == D("60000.00")  # one-tick spread: join


def test_hold_reason_names_the_void_guard_only_when_nothing_is_sent() -> None:
    book = book_of(bids=[("60000.00", "1")], asks=[("60300.00", "1")])
    tail = parent(qty="1", filled="0.99995")  # 5e-5 BTC left: below the venue minimum

    plan = step(tail, book, wanted="0.00005", urgency=math.inf)

    assert plan.slices == ()
    assert "void guard" in plan.hold_reason and "minimum" in plan.hold_reason


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=15),
    sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=15, max_size=15),
    spread=st.integers(min_value=1, max_value=300),
    max_gap=st.integers(min_value=1, max_value=40),
    max_depth=st.integers(min_value=0, max_value=80),
    wanted=st.integers(min_value=1, max_value=5000),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_property_no_aggressive_child_prices_through_a_void_or_past_the_depth(
    gaps: list[int],
    sizes: list[int],
    spread: int,
    max_gap: int,
    max_depth: int,
    wanted: int,
    side: Side,
) -> None:
    # Arrange: a far side whose consecutive levels are ``gaps`` cents apart (some of them voids).
    tick = BTCUSDT.tick_size
    touch = D("60000.00")
    far = [touch + side.sign * spread * tick]
    for gap in gaps:
        far.append(far[-1] + side.sign * gap * tick)
    far_levels = [(str(p), str(D(q) / 100)) for p, q in zip(far, sizes, strict=False)]
    own = [(str(touch), "1")]
    book = book_of(own, far_levels) if side is Side.BUY else book_of(far_levels, own)
    style = ExecutionStyle(max_gap_bps=D(max_gap), max_depth_bps=D(max_depth))
    view = parent(qty="100", side=side)

    # Act
    plan = step(view, book, wanted=str(D(wanted) / 100), urgency=math.inf, style=style)

    # Assert: the child's price is inside the band a walk from our touch allows.
    ref = far[0]
    allowed: list[Decimal] = []
    previous = touch
    for price in far:
        if abs(price - previous) / ref * 10_000 > max_gap or abs(price - ref) / ref * 10_000 > (
            max_depth
        ):
            break
        allowed.append(price)
        previous = price
    for intent in plan.slices:
        if intent.aggressive:
            assert allowed, "crossed although the spread itself is a void"
            worst = allowed[-1]
            assert (intent.price <= worst) if side is Side.BUY else (intent.price >= worst)
            visible = sum(D(q) for p, q in far_levels if D(p) in allowed)
            assert intent.qty <= visible
        else:
            assert intent.price == touch or abs(intent.price - touch) == tick


# --- limit and i-would --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "limit", "urgency"),
    [
        (Side.BUY, "59990.00", 0.0),
        (Side.BUY, "59990.00", math.inf),
        (Side.SELL, "60010.00", 0.7),
        (Side.SELL, "60010.00", math.inf),
    ],
)
def test_limit_caps_passive_and_aggressive_prices(side: Side, limit: str, urgency: float) -> None:
    plan = step(parent(side=side, limit=limit), ladder(), wanted="1", urgency=urgency)

    (intent,) = plan.slices
    assert intent.price == D(limit)
    assert not intent.aggressive  # the far touch is beyond the limit: nothing to cross


def test_limit_stops_a_cross_part_way_through_the_book() -> None:
    plan = step(parent(limit="60001.01"), ladder(), wanted="5", urgency=math.inf)

    (intent,) = plan.slices
    assert intent.aggressive
    assert intent.qty == D("3")  # 60000.01, 60000.51, 60001.01
    assert intent.price == D("60001.01")


def test_i_would_price_accelerates_ahead_of_schedule_up_to_all_unallocated() -> None:
    style = ExecutionStyle(i_would_price=D("60001.00"))
    view = parent(qty="10", filled="1", working="0.5")

    plan = step(view, ladder(depth="2"), wanted="0", urgency=0, style=style)

    (intent,) = plan.slices
    assert intent.aggressive and intent.time_in_force is TimeInForce.IOC
    assert intent.reason == "i-would price"
    assert intent.qty == D("4")  # the two levels at or below 60001.00
    assert intent.price == D("60000.51")


def test_i_would_takes_everything_unallocated_when_the_book_allows() -> None:
    style = ExecutionStyle(i_would_price=D("60010.00"))
    view = parent(qty="3", filled="1", working="0.5")

    plan = step(view, ladder(depth="5"), wanted="0", urgency=0, style=style)

    (intent,) = plan.slices
    assert intent.qty == D("1.5")


@pytest.mark.parametrize(("side", "i_would"), [(Side.BUY, "60000.00"), (Side.SELL, "60000.02")])
def test_i_would_does_nothing_while_the_far_touch_is_worse(side: Side, i_would: str) -> None:
    style = ExecutionStyle(i_would_price=D(i_would))

    plan = step(parent(side=side), ladder(), wanted="0", urgency=0, style=style)

    assert plan.slices == () and plan.hold_reason == ""


def test_i_would_is_still_capped_by_the_limit_and_the_void_guard() -> None:
    book = book_of(
        bids=[("60000.00", "1")],
        asks=[("60000.01", "1"), ("60000.02", "1"), ("60200.00", "100")],
    )
    style = ExecutionStyle(i_would_price=D("60300.00"))

    plan = step(parent(limit="60000.01"), book, wanted="0", urgency=0, style=style)
    (intent,) = plan.slices
    assert intent.qty == D("1") and intent.price == D("60000.01")

    plan = step(parent(), book, wanted="0", urgency=0, style=style)
    (intent,) = plan.slices
    assert intent.qty == D("2") and intent.price == D("60000.02")


# --- repricing --------------------------------------------------------------------------------


def resting(price: str, age_s: float, tif: TimeInForce = TimeInForce.GTC) -> WorkingChild:
    return WorkingChild("C-1", D(price), D("0.5"), tif, T0 - timedelta(seconds=age_s), False)


@pytest.mark.parametrize(
    ("child_price", "age_s", "ticks", "cancelled"),
    [
        ("59999.95", 6, 2, True),  # touch 5 ticks away, rested long enough
        ("59999.95", 4.9, 2, False),  # too young to reprice
        ("59999.99", 60, 2, False),  # one tick is below the threshold
        ("59999.98", 60, 2, True),  # two ticks is the threshold
        ("59999.98", 60, 3, False),
        ("60000.00", 600, 2, False),  # at the touch: never repriced
    ],
)
def test_repricing_needs_both_the_tick_threshold_and_the_minimum_rest(
    child_price: str, age_s: float, ticks: int, cancelled: bool
) -> None:
    view = parent(working="0.5", children=(resting(child_price, age_s),))
    style = ExecutionStyle(min_rest_s=5, reprice_ticks=ticks)

    plan = step(view, ladder(), wanted="0", urgency=0, style=style)

    assert plan.cancel == (("C-1",) if cancelled else ())


def test_a_child_resting_at_the_limit_is_not_churned_while_the_market_is_away() -> None:
    view = parent(working="0.5", limit="59990.00", children=(resting("59990.00", 60),))

    plan = step(view, ladder(), wanted="0", urgency=0)

    assert plan.cancel == ()


def test_ioc_and_cancel_pending_children_are_never_repriced() -> None:
    ioc = resting("59990.00", 60, TimeInForce.IOC)
    pending = WorkingChild("C-2", D("59990.00"), D("0.5"), TimeInForce.GTC, T0, True)
    view = parent(working="1", children=(ioc, pending))

    plan = step(view, ladder(), wanted="0", urgency=0, now=T0 + timedelta(minutes=5))

    assert plan.cancel == ()


def test_falling_a_slice_behind_escalates_rested_passive_children_and_waits_for_the_cancel() -> (
    None
):
    view = parent(working="0.5", children=(resting("60000.00", 6),))

    plan = step(view, ladder(), wanted="1", urgency=1.5)

    assert plan.cancel == ("C-1",)
    assert plan.slices == ()  # the next step re-plans the released quantity


def test_no_escalation_when_the_void_guard_forbids_crossing() -> None:
    book = book_of(bids=[("60000.00", "1")], asks=[("60300.00", "1")])
    view = parent(working="0.5", children=(resting("60000.00", 60),))

    plan = step(view, book, wanted="0", urgency=5)

    assert plan.cancel == ()


# --- sizing and urgency ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    wanted=st.integers(min_value=0, max_value=100_000),
    unallocated=st.integers(min_value=0, max_value=100_000),
    cap=st.integers(min_value=0, max_value=100_000),
)
def test_property_capped_sizing_respects_cap_minimum_and_a_tradable_rest(
    wanted: int, unallocated: int, cap: int
) -> None:
    lot = BTCUSDT.lot_size
    price = D("60000")
    minimum = BTCUSDT.min_tradable_qty(price)

    qty = pricing.size_capped(wanted * lot, unallocated * lot, BTCUSDT, price, cap * lot)

    assert qty == 0 or minimum <= qty <= min(cap, unallocated) * lot
    assert qty % lot == 0
    if qty:
        rest = unallocated * lot - qty
        assert rest == 0 or rest >= minimum


@pytest.mark.parametrize(
    ("target", "filled", "expected"),
    [("1", "0", 0.0), ("2", "1", 0.0), ("2", "0.5", 0.5), ("3", "0", 2.0), ("1", "2", 0.0)],
)
def test_lag_urgency_counts_slices_missing_before_the_one_now_due(
    target: str, filled: str, expected: float
) -> None:
    assert pricing.lag_urgency(D(target), D(filled), D(1), D(1)) == expected


def test_escalation_also_applies_when_everything_left_is_resting() -> None:
    view = parent(qty="0.5", working="0.5", children=(resting("60000.00", 6),))

    plan = step(view, ladder(), wanted="0", urgency=math.inf)

    assert plan.cancel == ("C-1",)
