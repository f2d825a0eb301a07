"""TWAP scheduling (pure): the target curve, slicing, minimums, catch-up, pricing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos import twap
from algos.base import MarketView, ParentView, WorkingChild
from ems.domain import BookLevel, OrderBook, Side, TimeInForce
from ems.errors import InvalidOrder
from ems.venues.sim_venue import binance_btcusdt_instrument

T0 = datetime(2024, 8, 8, 23, 55, tzinfo=UTC)

BTCUSDT = binance_btcusdt_instrument("sim")


def book(bid: str = "61837.63", ask: str = "61837.64", depth: str = "1.5") -> OrderBook:
    step = Decimal("0.5")
    return OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(Decimal(bid) - i * step, Decimal(depth)) for i in range(10)),
        asks=tuple(BookLevel(Decimal(ask) + i * step, Decimal(depth)) for i in range(10)),
    )


def market(**book_args: str) -> MarketView:
    return MarketView(book=book(**book_args), instrument=BTCUSDT)


def view(
    qty: str,
    filled: str = "0",
    working: str = "0",
    minutes: int = 10,
    side: Side = Side.BUY,
    limit: str | None = None,
    children: tuple[WorkingChild, ...] = (),
) -> ParentView:
    return ParentView(
        side=side,
        quantity=Decimal(qty),
        filled=Decimal(filled),
        working=Decimal(working),
        start_at=T0,
        end_at=T0 + timedelta(minutes=minutes),
        limit_price=Decimal(limit) if limit else None,
        children=children,
    )


def run_schedule(
    qty: Decimal, params: twap.TwapParams, minutes: int, step: timedelta, fill_share: Decimal
) -> tuple[list[Decimal], Decimal]:
    """Drive the scheduler with a fake market that fills ``fill_share`` of each slice at once.

    The unfilled rest of each slice is treated as cancelled straight away.
    """
    filled = Decimal(0)
    sent: list[Decimal] = []
    now = T0
    end = T0 + timedelta(minutes=minutes)
    while now <= end and filled < qty:
        plan = twap.plan(view(str(qty), str(filled), minutes=minutes), market(), params, now)
        for intent in plan.slices:
            assert intent.qty > 0
            assert intent.qty % BTCUSDT.lot_size == 0
            assert filled + intent.qty <= qty, "a slice may never exceed what is left"
            sent.append(intent.qty)
            done = intent.qty if intent.aggressive else BTCUSDT.round_qty(intent.qty * fill_share)
            filled += done
        now += step
    return sent, filled


def test_slices_sum_exactly_to_the_parent_when_every_slice_fills() -> None:
    params = twap.TwapParams(slice_interval_s=30, jitter_pct=0.2, seed=7)

    sent, filled = run_schedule(Decimal("1.23457"), params, 10, timedelta(seconds=5), Decimal(1))

    assert sum(sent) == filled == Decimal("1.23457")
    assert len(sent) >= 18  # about one slice per interval, not one big order


def test_schedule_is_repeatable_for_a_seed_and_moves_with_another_seed() -> None:
    def times(seed: int) -> list[datetime]:
        params = twap.TwapParams(slice_interval_s=30, jitter_pct=0.3, seed=seed)
        return [twap.slice_time(T0, k, params) for k in range(1, 20)]

    assert times(1) == times(1)
    assert times(1) != times(2)
    nominal = [T0 + timedelta(seconds=30 * k) for k in range(1, 20)]
    assert all(abs((t - n).total_seconds()) <= 9 for t, n in zip(times(1), nominal, strict=True))


def test_target_curve_reaches_the_full_quantity_in_the_last_interval() -> None:
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    v = view("1.0", minutes=10)

    assert twap.target_quantity(v, params, T0 - timedelta(seconds=1)) == 0
    assert twap.target_quantity(v, params, T0) == Decimal("0.1")
    assert twap.target_quantity(v, params, T0 + timedelta(minutes=5, seconds=1)) == Decimal("0.6")
    assert twap.target_quantity(v, params, T0 + timedelta(minutes=9)) == Decimal("1.0")


def test_slices_below_min_notional_wait_instead_of_sending_everything_at_once() -> None:
    # 0.0005 BTC over 10 slices is 0.00005 a slice, about 3 USDT: below Binance's 5 USDT minimum.
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    minimum = BTCUSDT.min_tradable_qty(Decimal("61837.64"))

    sent, filled = run_schedule(Decimal("0.0005"), params, 10, timedelta(seconds=10), Decimal(1))

    assert sum(sent) == filled == Decimal("0.0005")
    assert len(sent) >= 3
    assert all(q >= minimum for q in sent)


def test_tail_that_could_never_trade_alone_goes_with_the_last_slice() -> None:
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    v = view("0.01", filled="0.00995", minutes=10)  # 0.00005 left: below the minimum

    plan = twap.plan(v, market(), params, T0 + timedelta(minutes=9, seconds=30))

    assert plan.slices == ()
    assert "minimum" in plan.hold_reason


def test_on_schedule_slice_joins_the_best_bid_passively() -> None:
    plan = twap.plan(view("1.0"), market(), twap.TwapParams(), T0)

    (intent,) = plan.slices
    assert intent.price == Decimal("61837.63")
    assert intent.time_in_force is TimeInForce.GTC
    assert not intent.aggressive


def test_behind_schedule_crosses_the_spread_with_an_ioc_sized_to_the_book() -> None:
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    behind = view("10.0", filled="0", minutes=10)  # 5 minutes in, nothing filled

    plan = twap.plan(behind, market(depth="1.5"), params, T0 + timedelta(minutes=5, seconds=1))

    (intent,) = plan.slices
    assert intent.aggressive and intent.time_in_force is TimeInForce.IOC
    assert intent.qty == Decimal("6.0")
    assert intent.price == Decimal("61837.64") + 3 * Decimal("0.5")  # 4 levels of 1.5 cover 6.0


@pytest.mark.parametrize(("side", "limit"), [(Side.BUY, "61800.00"), (Side.SELL, "61900.00")])
def test_price_never_goes_past_the_limit(side: Side, limit: str) -> None:
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    v = view("10.0", minutes=10, side=side, limit=limit)

    plan = twap.plan(v, market(), params, T0 + timedelta(minutes=9, seconds=1))

    (intent,) = plan.slices
    assert intent.price == Decimal(limit)


def test_resting_child_older_than_an_interval_is_cancelled_before_replanning() -> None:
    params = twap.TwapParams(slice_interval_s=30, jitter_pct=0)
    old = WorkingChild("P-1", Decimal("61837.63"), Decimal("0.1"), TimeInForce.GTC, T0, False)
    v = view("1.0", working="0.1", children=(old,))

    plan = twap.plan(v, market(), params, T0 + timedelta(seconds=31))

    assert plan.cancel == ("P-1",)
    assert plan.slices == ()


@settings(max_examples=150, deadline=None)
@given(
    lots=st.integers(min_value=9, max_value=500_000),
    minutes=st.integers(min_value=1, max_value=120),
    interval=st.integers(min_value=1, max_value=600),
    jitter=st.floats(min_value=0, max_value=0.5),
    seed=st.integers(0, 10_000),
    fill_pct=st.integers(min_value=0, max_value=100),
)
def test_property_slices_never_overfill_and_finish_at_the_parent_quantity(
    lots: int, minutes: int, interval: int, jitter: float, seed: int, fill_pct: int
) -> None:
    qty = Decimal(lots) * BTCUSDT.lot_size
    params = twap.TwapParams(slice_interval_s=interval, jitter_pct=jitter, seed=seed)
    # The manager steps at least once per slice interval.
    step = timedelta(seconds=max(1, min(interval, minutes * 60 // 40)))

    sent, filled = run_schedule(qty, params, minutes, step, Decimal(fill_pct) / 100)

    assert filled == qty  # unfilled passive remainders were re-planned until the parent filled
    assert sum(sent) >= qty
    assert all(q % BTCUSDT.lot_size == 0 for q in sent)


# --- shared pricing (algos.pricing) as TWAP uses it --------------------------------------------


def test_params_accept_the_shared_pricing_keys_and_name_unknown_ones() -> None:
    params = twap.TwapParams.from_mapping(
        {"slice_interval_s": 60, "i_would_price": "61000", "reprice_ticks": 3}
    )

    assert params.style.i_would_price == Decimal("61000")
    assert params.style.reprice_ticks == 3
    with pytest.raises(InvalidOrder) as caught:
        twap.TwapParams.from_mapping({"slices": 4})
    assert caught.value.field == "algo_params.slices"


def test_half_a_slice_behind_improves_the_bid_by_a_tick_inside_a_wide_spread() -> None:
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    v = view("1.0", filled="0.05", minutes=10)  # slice 1 due, slice 0 half filled

    plan = twap.plan(v, market(ask="61838.63"), params, T0 + timedelta(minutes=1, seconds=1))

    (intent,) = plan.slices
    assert intent.price == Decimal("61837.64")
    assert not intent.aggressive


def test_catch_up_ioc_is_sized_to_the_liquidity_before_a_void() -> None:
    params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    behind = view("10.0", filled="0", minutes=10)
    gapped = OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=(BookLevel(Decimal("61837.63"), Decimal("5")),),
        asks=(
            BookLevel(Decimal("61837.64"), Decimal("1.5")),
            BookLevel(Decimal("61838.14"), Decimal("1.5")),
            BookLevel(Decimal("62037.64"), Decimal("50")),  # a 32 bps hole before the depth
        ),
    )

    plan = twap.plan(
        behind, MarketView(book=gapped, instrument=BTCUSDT), params, T0 + timedelta(minutes=5)
    )

    (intent,) = plan.slices
    assert intent.aggressive
    assert intent.qty == Decimal("3.0")
    assert intent.price == Decimal("61838.14")


def test_i_would_price_takes_the_cheap_liquidity_ahead_of_schedule() -> None:
    params = twap.TwapParams.from_mapping({"jitter_pct": 0, "i_would_price": "61838.64"})

    plan = twap.plan(view("10.0"), market(), params, T0)

    (intent,) = plan.slices
    assert intent.aggressive and intent.reason == "i-would price"
    assert intent.qty == Decimal("4.5")  # three levels of 1.5 at or below 61838.64


def test_resting_child_is_repriced_once_the_bid_moves_away_and_it_has_rested() -> None:
    params = twap.TwapParams(slice_interval_s=30, jitter_pct=0)
    old = WorkingChild("P-1", Decimal("61837.60"), Decimal("0.1"), TimeInForce.GTC, T0, False)
    v = view("1.0", working="0.1", children=(old,))

    young = twap.plan(v, market(), params, T0 + timedelta(seconds=4))
    rested = twap.plan(v, market(), params, T0 + timedelta(seconds=5))

    assert young.cancel == ()
    assert rested.cancel == ("P-1",)
