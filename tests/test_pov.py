"""POV scheduling (pure): participation band, catch-up, caps, and exact completion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos import pov
from algos.base import MarketView, ParentView, Plan
from algos.pricing import ExecutionStyle
from ems.domain import BookLevel, OrderBook, Side, TimeInForce
from ems.errors import InvalidOrder
from ems.venues.sim_venue import binance_btcusdt_instrument

T0 = datetime(2024, 8, 8, 23, 0, tzinfo=UTC)
BTCUSDT = binance_btcusdt_instrument("sim")
MINIMUM = BTCUSDT.min_tradable_qty(Decimal("61837.64"))
D = Decimal


def book(bid: str = "61837.63", ask: str = "61837.64") -> OrderBook:
    step = D("0.5")
    return OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(D(bid) - i * step, D("50")) for i in range(10)),
        asks=tuple(BookLevel(D(ask) + i * step, D("50")) for i in range(10)),
    )


def market(volume: str, **book_args: str) -> MarketView:
    return MarketView(book=book(**book_args), instrument=BTCUSDT, volume_since_start=D(volume))


def view(qty: str, filled: str = "0", working: str = "0", side: Side = Side.BUY) -> ParentView:
    return ParentView(
        side=side,
        quantity=D(qty),
        filled=D(filled),
        working=D(working),
        start_at=T0,
        end_at=T0 + timedelta(hours=1),
        limit_price=None,
    )


NOW = T0 + timedelta(minutes=5)


# --- parameters -------------------------------------------------------------------------------


def test_band_defaults_to_half_and_one_and_a_half_times_the_rate() -> None:
    params = pov.PovParams.from_mapping({"rate": "0.2"})

    assert (params.floor_rate, params.rate, params.ceiling_rate) == (D("0.1"), D("0.2"), D("0.3"))
    assert pov.PovParams.from_mapping({"rate": "0.4"}).ceiling_rate == D("0.5")


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"rate": 0}, "algo_params.rate", "above 0"),
        ({"rate": "0.6"}, "algo_params.rate", "at most 0.5"),
        ({"rate": "x"}, "algo_params.rate", "decimal"),
        ({"rate": "0.1", "min_rate": "0.2"}, "algo_params.min_rate", "between 0 and rate"),
        ({"rate": "0.1", "min_rate": "-0.1"}, "algo_params.min_rate", "between 0 and rate"),
        ({"rate": "0.1", "max_rate": "0.05"}, "algo_params.max_rate", "between rate"),
        ({"rate": "0.1", "max_rate": "0.6"}, "algo_params.max_rate", "0.5"),
        ({"max_child_qty": "0"}, "algo_params.max_child_qty", "positive"),
        (
            {"max_child_qty": "1", "min_child_qty": "2"},
            "algo_params.min_child_qty",
            "at most max_child_qty",
        ),
        ({"participation": "0.1"}, "algo_params.participation", "unknown POV parameter"),
    ],
)
def test_bad_params_name_the_field_and_the_rule(
    raw: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidOrder) as caught:
        pov.PovParams.from_mapping(raw)

    assert caught.value.field == field
    assert words in str(caught.value)


# --- one step ---------------------------------------------------------------------------------


def test_no_volume_yet_means_nothing_to_do() -> None:
    plan = pov.plan(view("10"), market("0"), pov.PovParams(), NOW)

    assert plan.slices == () and plan.hold_reason == ""


def test_on_target_participation_joins_passively() -> None:
    # rate 0.1 of 20 traded = 2 wanted; nothing filled yet but nothing expected before either.
    params = pov.PovParams(rate=D("0.1"), min_rate=D(0))

    plan = pov.plan(view("10", filled="1.5"), market("20"), params, NOW)

    (intent,) = plan.slices
    assert intent.qty == D("0.5")
    assert not intent.aggressive and intent.price == D("61837.63")


def test_a_little_behind_improves_inside_a_wide_spread() -> None:
    params = pov.PovParams(rate=D("0.1"), min_rate=D("0.05"))  # band: floor 1, target 2

    plan = pov.plan(view("10", filled="1.4"), market("20", ask="61838.63"), params, NOW)

    (intent,) = plan.slices
    assert not intent.aggressive and intent.price == D("61837.64")


def test_below_the_floor_it_catches_up_by_crossing() -> None:
    params = pov.PovParams(rate=D("0.1"), min_rate=D("0.05"))

    plan = pov.plan(view("10", filled="0.9"), market("20"), params, NOW)

    (intent,) = plan.slices
    assert intent.aggressive and intent.time_in_force is TimeInForce.IOC
    assert intent.qty == D("1.1")  # back to the target, 2
    assert intent.reason == "below min_rate"


def test_never_runs_ahead_of_the_ceiling_even_with_an_i_would_price() -> None:
    style = ExecutionStyle(i_would_price=D("70000"))
    params = pov.PovParams(rate=D("0.1"), max_rate=D("0.15"), style=style)

    at_ceiling = pov.plan(view("10", filled="2", working="1"), market("20"), params, NOW)
    below = pov.plan(view("10", filled="2"), market("20"), params, NOW)

    assert at_ceiling.slices == ()
    (intent,) = below.slices
    assert intent.reason == "i-would price" and intent.qty == D("1")  # up to 0.15 × 20 = 3


def test_max_child_qty_caps_every_child() -> None:
    params = pov.PovParams(rate=D("0.1"), max_child_qty=D("0.25"))

    plan = pov.plan(view("10"), market("20"), params, NOW)

    (intent,) = plan.slices
    assert intent.qty == D("0.25")


def test_min_child_qty_batches_small_shortfalls_but_not_the_last_piece() -> None:
    params = pov.PovParams(rate=D("0.1"), min_rate=D(0), min_child_qty=D("0.5"))

    small = pov.plan(view("10", filled="1.7"), market("20"), params, NOW)
    big = pov.plan(view("10", filled="1.5"), market("20"), params, NOW)
    last = pov.plan(view("2", filled="1.8"), market("20"), params, NOW)

    assert small.slices == ()
    assert big.slices[0].qty == D("0.5")
    assert last.slices[0].qty == D("0.2")


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=1)])
def test_it_stops_at_the_end_time(offset: timedelta) -> None:
    plan = pov.plan(view("10"), market("1000"), pov.PovParams(), T0 + timedelta(hours=1) + offset)

    assert plan == Plan()


# --- a simulated run ----------------------------------------------------------------------------


def run_pov(
    qty: Decimal,
    params: pov.PovParams,
    volumes: list[Decimal],
    fill_share: Decimal,
    side: Side = Side.BUY,
) -> tuple[list[Decimal], Decimal]:
    """Drive POV over a tape that trades ``volumes[i]`` in step ``i`` (one second each).

    Aggressive children fill whole; passive ones ``fill_share`` at once, the rest cancelled.
    Checks the participation band after every step.
    """
    filled, volume = D(0), D(0)
    sent: list[Decimal] = []
    for i, traded in enumerate(volumes):
        volume += traded
        now = T0 + timedelta(seconds=i)
        plan = pov.plan(view(str(qty), str(filled), side=side), market(str(volume)), params, now)
        for intent in plan.slices:
            assert intent.qty > 0 and intent.qty % BTCUSDT.lot_size == 0
            sent.append(intent.qty)
            filled += (
                intent.qty if intent.aggressive else BTCUSDT.round_qty(intent.qty * fill_share)
            )
        limits = pov.band(view(str(qty)), market(str(volume)), params)
        assert filled <= limits.ceiling, f"ran ahead of max_rate at step {i}"
        assert filled >= limits.floor - MINIMUM, f"fell below min_rate at step {i}"
        if filled == qty:
            break
    return sent, filled


def test_slices_sum_exactly_to_the_parent_when_every_slice_fills() -> None:
    params = pov.PovParams(rate=D("0.1"))
    volumes = [D("0.5") + D(i % 7) / 4 for i in range(600)]

    sent, filled = run_pov(D("12.34567"), params, volumes, D(1))

    assert sum(sent) == filled == D("12.34567")
    assert len(sent) >= 90  # about one child per step of tape, not one big order


def test_with_partial_fills_it_catches_up_and_completes_within_the_band() -> None:
    params = pov.PovParams(rate=D("0.1"))
    volumes = [D("0.5") + D(i % 7) / 4 for i in range(600)]

    sent, filled = run_pov(D("12.34567"), params, volumes, D("0.3"))

    # Cancelled partial remainders can leave a residual below the venue minimum.
    assert D("12.34567") - filled < MINIMUM
    assert sum(sent) > filled


@settings(max_examples=120, deadline=None)
@given(
    lots=st.integers(min_value=9, max_value=2_000_000),
    rate_pct=st.integers(min_value=1, max_value=50),
    floor_share=st.integers(min_value=0, max_value=100),
    ceiling_extra=st.integers(min_value=0, max_value=100),
    tape=st.lists(st.integers(min_value=0, max_value=5_000_000), min_size=1, max_size=200),
    fill_pct=st.integers(min_value=0, max_value=100),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_property_pov_stays_in_its_band_at_every_step(
    lots: int,
    rate_pct: int,
    floor_share: int,
    ceiling_extra: int,
    tape: list[int],
    fill_pct: int,
    side: Side,
) -> None:
    rate = D(rate_pct) / 100
    params = pov.PovParams(
        rate=rate,
        min_rate=rate * floor_share / 100,
        max_rate=rate + (D("0.5") - rate) * ceiling_extra / 100,
    )
    qty = D(lots) * BTCUSDT.lot_size
    volumes = [D(v) * BTCUSDT.lot_size for v in tape]
    # Then enough tape for the floor (or, without one, the target) to reach the whole quantity.
    volumes += [qty / (params.floor_rate or rate)] * 3

    sent, filled = run_pov(qty, params, volumes, D(fill_pct) / 100, side)

    assert sum(sent) >= filled
    if floor_share > 0 or fill_pct == 100:
        # Completes; only cancelled partial remainders can leave a residual below the minimum.
        assert filled == qty or (0 < fill_pct < 100 and qty - filled < MINIMUM)
