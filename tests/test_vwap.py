"""VWAP scheduling (pure): follows its volume curve, blends toward live volume, slices exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos import twap, vwap
from algos.base import MarketView, ParentView, VolumeCurve
from algos.volume_profile import VolumeProfile
from ems.domain import BookLevel, OrderBook, Side, TimeInForce
from ems.errors import InvalidOrder
from ems.profiles import default_volume_profile
from ems.venues.sim_venue import binance_btcusdt_instrument

T0 = datetime(2024, 8, 8, 12, 0, tzinfo=UTC)
BTCUSDT = binance_btcusdt_instrument("sim")
D = Decimal


def book() -> OrderBook:
    step = D("0.5")
    return OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(D("61837.63") - i * step, D("5")) for i in range(10)),
        asks=tuple(BookLevel(D("61837.64") + i * step, D("5")) for i in range(10)),
    )


def market(profile: VolumeCurve | None = None, volume: str = "0") -> MarketView:
    return MarketView(
        book=book(), instrument=BTCUSDT, volume_since_start=D(volume), volume_profile=profile
    )


def view(
    qty: str, filled: str = "0", minutes: int = 60, side: Side = Side.BUY, start: datetime = T0
) -> ParentView:
    return ParentView(
        side=side,
        quantity=D(qty),
        filled=D(filled),
        working=D(0),
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
        limit_price=None,
    )


def front_loaded() -> VolumeProfile:
    """Hourly bins: 12:00-13:00 UTC carries 60 % of the day, 13:00-14:00 10 %, the rest even."""
    shares = np.full(24, 0.3 / 22)
    shares[12], shares[13] = 0.6, 0.1
    return VolumeProfile(shares, bin_minutes=60)


# --- parameters -------------------------------------------------------------------------------


def test_params_accept_the_shared_pricing_keys() -> None:
    params = vwap.VwapParams.from_mapping(
        {"slice_interval_s": 60, "expected_volume": "250.5", "max_gap_bps": 15, "seed": 3}
    )

    assert params.expected_volume == D("250.5")
    assert params.style.max_gap_bps == D(15)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"slice_interval_s": 0}, "algo_params.slice_interval_s"),
        ({"jitter_pct": 0.6}, "algo_params.jitter_pct"),
        ({"expected_volume": "0"}, "algo_params.expected_volume"),
        ({"expected_volume": "lots"}, "algo_params.expected_volume"),
        ({"max_deviation": 1.5}, "algo_params.max_deviation"),
        ({"participation": 0.1}, "algo_params.participation"),
        ({"reprice_ticks": 0}, "algo_params.reprice_ticks"),
    ],
)
def test_bad_params_name_their_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOrder) as caught:
        vwap.VwapParams.from_mapping(raw)

    assert caught.value.field == field


# --- the target curve ------------------------------------------------------------------------


def test_cumulative_target_follows_the_profile_at_every_slice() -> None:
    # A two-hour window over a front-loaded profile: 60/70 of the volume in the first hour.
    profile = front_loaded()
    params = vwap.VwapParams(slice_interval_s=600, jitter_pct=0)
    v = view("7", minutes=120)

    for k in range(11):  # slices 0..10 (the 11th starts the final interval)
        now = T0 + timedelta(seconds=600 * k + 1)
        nominal_next = T0 + timedelta(seconds=600 * (k + 1))
        expected = D(7) * D(str(profile.cumulative_share(v.start_at, v.end_at, nominal_next)))

        got = vwap.target_quantity(v, market(profile), params, now)

        assert abs(got - expected) < D("1e-9")
    at_one_hour = vwap.target_quantity(v, market(profile), params, T0 + timedelta(minutes=50))
    assert at_one_hour == pytest.approx(D(6))  # the busy hour's 6/7 of 7


def test_final_interval_targets_the_whole_quantity() -> None:
    params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0)

    got = vwap.target_quantity(
        view("3", minutes=10), market(front_loaded()), params, T0 + timedelta(minutes=9)
    )

    assert got == D(3)


def test_without_a_profile_the_target_is_uniform_like_twap() -> None:
    params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0)
    twap_params = twap.TwapParams(slice_interval_s=60, jitter_pct=0)
    v = view("1", minutes=10)

    for seconds in range(0, 600, 7):
        now = T0 + timedelta(seconds=seconds)
        assert vwap.target_quantity(v, market(), params, now) == twap.target_quantity(
            v, twap_params, now
        )


@pytest.mark.parametrize(
    ("observed", "direction"),
    [("500", 1), ("250", 0), ("100", -1)],  # the profile expects 250 of 1000 by now
)
def test_live_volume_moves_the_target_toward_what_actually_traded(
    observed: str, direction: int
) -> None:
    # Uniform profile, one-hour window, 15 minutes in: 25 % of the forecast 1000 expected.
    params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0, expected_volume=D(1000))
    v = view("10", minutes=60)
    now = T0 + timedelta(minutes=15)
    plain_params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0)
    plain = vwap.target_quantity(v, market(None, "250"), plain_params, now)

    got = vwap.target_quantity(v, market(None, observed), params, now)

    assert (got > plain) - (got < plain) == direction


def test_live_weight_grows_as_the_window_progresses() -> None:
    # The implied expected total blends V / p (live) and V0 (forecast) with weight p on live.
    forecast, live_rate = D(1000), 2.0  # the tape runs at twice the forecast
    implied_gap = []
    for p in (0.1, 0.3, 0.6, 0.9):
        observed = D(str(live_rate * p * 1000))
        k = vwap.live_ratio(p, observed, forecast)
        extrapolated = float(observed) / p
        implied = extrapolated / k
        assert implied == pytest.approx(p * extrapolated + (1 - p) * float(forecast))
        implied_gap.append(abs(implied - extrapolated) / abs(float(forecast) - extrapolated))
    assert implied_gap == pytest.approx([0.9, 0.7, 0.4, 0.1])


def test_deviation_from_the_profile_is_bounded() -> None:
    params = vwap.VwapParams(
        slice_interval_s=60, jitter_pct=0, expected_volume=D(1000), max_deviation=0.05
    )
    v = view("10", minutes=60)
    now = T0 + timedelta(minutes=30, seconds=1)

    flooded = vwap.target_quantity(v, market(None, "100000"), params, now)
    silent = vwap.target_quantity(v, market(None, "0"), params, now)

    profile_target = D(10) * D(31) / D(60)
    assert flooded == pytest.approx(profile_target + D("0.5"))
    assert silent == pytest.approx(profile_target - D("0.5"))


def test_without_a_volume_forecast_the_tape_cannot_move_the_target() -> None:
    params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0)
    v = view("10", minutes=60)
    now = T0 + timedelta(minutes=20, seconds=1)

    quiet = vwap.target_quantity(v, market(front_loaded(), "1"), params, now)
    busy = vwap.target_quantity(v, market(front_loaded(), "100000"), params, now)

    assert quiet == busy


# --- planning ---------------------------------------------------------------------------------


def test_on_schedule_slice_joins_passively_and_a_slice_behind_crosses() -> None:
    params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0)

    first = vwap.plan(view("1", minutes=10), market(), params, T0)
    behind = vwap.plan(view("1", minutes=10), market(), params, T0 + timedelta(minutes=3))

    (passive,) = first.slices
    assert passive.time_in_force is TimeInForce.GTC and passive.price == D("61837.63")
    assert passive.qty == D("0.1")
    (aggressive,) = behind.slices
    assert aggressive.aggressive and aggressive.time_in_force is TimeInForce.IOC
    assert aggressive.qty == D("0.4")


def run_schedule(
    qty: Decimal,
    params: vwap.VwapParams,
    profile: VolumeCurve | None,
    minutes: int,
    step: timedelta,
    fill_share: Decimal,
    volume_per_step: Decimal,
    start: datetime = T0,
) -> tuple[list[Decimal], Decimal, list[tuple[Decimal, Decimal]]]:
    """Drive VWAP with a fake market: aggressive slices fill whole, passive ones ``fill_share``
    at once with the rest cancelled straight away; market volume grows by ``volume_per_step``.

    Returns the slices sent, the total filled and (filled, target) after every step.
    """
    filled, volume = D(0), D(0)
    sent: list[Decimal] = []
    track: list[tuple[Decimal, Decimal]] = []
    now, end = start, start + timedelta(minutes=minutes)
    while now <= end and filled < qty:
        v = view(str(qty), str(filled), minutes=minutes, start=start)
        m = market(profile, str(volume))
        plan = vwap.plan(v, m, params, now)
        for intent in plan.slices:
            assert intent.qty > 0 and intent.qty % BTCUSDT.lot_size == 0
            assert filled + intent.qty <= qty, "a slice may never exceed what is left"
            sent.append(intent.qty)
            filled += (
                intent.qty if intent.aggressive else BTCUSDT.round_qty(intent.qty * fill_share)
            )
        track.append((filled, vwap.target_quantity(v, m, params, now)))
        now += step
        volume += volume_per_step
    return sent, filled, track


def test_slices_sum_exactly_to_the_parent_when_every_slice_fills() -> None:
    params = vwap.VwapParams(slice_interval_s=60, jitter_pct=0.2, seed=5)

    sent, filled, track = run_schedule(
        D("2.34567"), params, front_loaded(), 120, timedelta(seconds=10), D(1), D(0)
    )

    assert sum(sent) == filled == D("2.34567")
    assert len(sent) >= 60
    # Fully filled slices keep the fills on the target curve (short by less than a minimum).
    minimum = BTCUSDT.min_tradable_qty(D("61837.64"))
    assert all(t - f < minimum for f, t in track)


@settings(max_examples=80, deadline=None)
@given(
    lots=st.integers(min_value=9, max_value=300_000),
    minutes=st.integers(min_value=1, max_value=180),
    interval=st.integers(min_value=5, max_value=600),
    seed=st.integers(0, 1000),
    fill_pct=st.integers(min_value=0, max_value=100),
    start_hour=st.integers(min_value=0, max_value=23),
    forecast=st.one_of(st.none(), st.integers(min_value=1, max_value=10_000)),
    volume_per_step=st.integers(min_value=0, max_value=50),
)
def test_property_vwap_never_overfills_and_finishes_at_the_parent_quantity(
    lots: int,
    minutes: int,
    interval: int,
    seed: int,
    fill_pct: int,
    start_hour: int,
    forecast: int | None,
    volume_per_step: int,
) -> None:
    qty = D(lots) * BTCUSDT.lot_size
    params = vwap.VwapParams(
        slice_interval_s=interval,
        jitter_pct=0.3,
        seed=seed,
        expected_volume=D(forecast) if forecast else None,
    )
    step = timedelta(seconds=max(1, min(interval, minutes * 60 // 40)))

    sent, filled, _ = run_schedule(
        qty,
        params,
        default_volume_profile(),
        minutes,
        step,
        D(fill_pct) / 100,
        D(volume_per_step),
        start=T0.replace(hour=start_hour),
    )

    # Unfilled passive remainders are re-planned until the parent fills; only partial fills can
    # leave a residual below the venue minimum (the manager completes such a parent as dust).
    minimum = BTCUSDT.min_tradable_qty(D("61837.64"))
    assert filled == qty or (0 < fill_pct < 100 and qty - filled < minimum)
    assert sum(sent) >= filled
