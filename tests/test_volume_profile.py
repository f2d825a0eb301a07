"""Intraday volume profiles: building from bars, the cumulative curve, JSON, the packaged one."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos.volume_profile import VolumeProfile
from ems.profiles import default_volume_profile
from tests.shared_data import MARKET

ROOT = Path(__file__).resolve().parents[1]
FTX_BARS = MARKET / "ftx-btc-perp-1m-20220101.csv"
SHIPPED = ROOT / "ems" / "data" / "volume_profile_btc_1m.json"
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def minute_bars(days: int, volume_at: dict[int, float], base: float = 0.0) -> tuple[list, list]:
    """``days`` days of 1-minute bars: ``base`` volume a minute plus ``volume_at[minute]``."""
    stamps, volumes = [], []
    for day in range(days):
        for minute in range(1440):
            stamps.append(DAY0 + timedelta(days=day, minutes=minute))
            volumes.append(base + volume_at.get(minute, 0.0))
    return stamps, volumes


def test_from_bars_averages_each_minute_over_days_and_normalises() -> None:
    stamps, volumes = minute_bars(3, {0: 100.0, 720: 300.0}, base=1.0)

    profile = VolumeProfile.from_bars(stamps, volumes)

    total = 1440 + 400
    assert profile.bin_count == 1440 and profile.days == 3
    assert profile.shares.sum() == pytest.approx(1.0)
    assert profile.shares[0] == pytest.approx(101 / total)
    assert profile.shares[720] == pytest.approx(301 / total)
    assert profile.shares[1] == pytest.approx(1 / total)


def test_a_partial_day_does_not_bias_the_bins_it_covers() -> None:
    # Two full flat days, plus an extra hour (00:00-00:59) of the same flat volume.
    stamps, volumes = minute_bars(2, {}, base=5.0)
    stamps += [DAY0 + timedelta(days=2, minutes=m) for m in range(60)]
    volumes += [5.0] * 60

    profile = VolumeProfile.from_bars(stamps, volumes)

    assert np.allclose(profile.shares, 1 / 1440)


@pytest.mark.parametrize("bin_minutes", [1, 5, 15, 60])
def test_coarser_bins_sum_the_minutes_they_contain(bin_minutes: int) -> None:
    stamps, volumes = minute_bars(1, {m: float(m % 7) for m in range(1440)}, base=1.0)

    fine = VolumeProfile.from_bars(stamps, volumes)
    coarse = VolumeProfile.from_bars(stamps, volumes, bin_minutes=bin_minutes)

    assert coarse.bin_count == 1440 // bin_minutes
    assert np.allclose(coarse.shares, fine.shares.reshape(-1, bin_minutes).sum(axis=1))


def test_numpy_datetimes_give_the_same_profile_as_python_datetimes() -> None:
    stamps, volumes = minute_bars(2, {10: 50.0})
    as_numpy = np.array([s.replace(tzinfo=None) for s in stamps], dtype="datetime64[us]")

    assert np.array_equal(
        VolumeProfile.from_bars(stamps, volumes).shares,
        VolumeProfile.from_bars(as_numpy, volumes).shares,
    )


def test_smoothing_spreads_a_spike_over_its_neighbours_circularly() -> None:
    stamps, volumes = minute_bars(1, {0: 1000.0}, base=0.0)

    profile = VolumeProfile.from_bars(stamps, volumes, smooth_bins=2)

    assert np.allclose(profile.shares[[1438, 1439, 0, 1, 2]], 0.2)
    assert profile.shares[3] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bin_minutes": 7}, "divide 1440"),
        ({"volumes": [-1.0]}, "non-negative"),
        ({"volumes": [0.0]}, "some volume"),
        ({"volumes": [1.0, 2.0]}, "equal length"),
    ],
)
def test_bad_bars_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"timestamps": [DAY0], "volumes": [1.0], **kwargs}

    with pytest.raises(ValueError, match=message):
        VolumeProfile.from_bars(**args)  # type: ignore[arg-type]


# --- the cumulative curve --------------------------------------------------------------------


def two_block_profile() -> VolumeProfile:
    """Three quarters of the day's volume between 12:00 and 13:00, the rest spread evenly."""
    shares = np.full(1440, 0.25 / 1380)
    shares[720:780] = 0.75 / 60
    return VolumeProfile(shares)


def test_cumulative_share_follows_the_volume_inside_a_window() -> None:
    profile = two_block_profile()
    start, end = DAY0 + timedelta(hours=11), DAY0 + timedelta(hours=14)
    outside = 0.25 / 1380 * 60  # an hour outside the busy block

    def share(hours: float) -> float:
        return profile.cumulative_share(start, end, start + timedelta(hours=hours))

    total = 2 * outside + 0.75
    assert share(0) == 0.0 and share(3) == 1.0
    assert share(1) == pytest.approx(outside / total)
    assert share(1.5) == pytest.approx((outside + 0.375) / total)  # linear inside a bin
    assert share(2) == pytest.approx((outside + 0.75) / total)


def test_cumulative_share_wraps_around_midnight() -> None:
    profile = VolumeProfile(np.ones(24), bin_minutes=60)
    start = DAY0 + timedelta(hours=23)

    assert profile.cumulative_share(
        start, start + timedelta(hours=2), start + timedelta(hours=1)
    ) == pytest.approx(0.5)


def test_a_window_with_no_expected_volume_falls_back_to_elapsed_time() -> None:
    shares = np.zeros(24)
    shares[0] = 1.0
    profile = VolumeProfile(shares, bin_minutes=60)
    start = DAY0 + timedelta(hours=5)

    assert profile.cumulative_share(
        start, start + timedelta(hours=4), start + timedelta(hours=1)
    ) == pytest.approx(0.25)


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.floats(min_value=0, max_value=100), min_size=24, max_size=24).filter(
        lambda w: sum(w) > 0
    ),
    start_min=st.integers(min_value=0, max_value=3 * 1440),
    length_min=st.integers(min_value=1, max_value=2 * 1440),
    points=st.lists(st.floats(min_value=-0.2, max_value=1.2), min_size=2, max_size=20),
)
def test_property_cumulative_share_is_monotone_from_zero_to_one(
    weights: list[float], start_min: int, length_min: int, points: list[float]
) -> None:
    profile = VolumeProfile(weights, bin_minutes=60)
    start = DAY0 + timedelta(minutes=start_min)
    end = start + timedelta(minutes=length_min)
    moments = sorted(start + (end - start) * p for p in points)

    shares = [profile.cumulative_share(start, end, m) for m in moments]

    assert all(0.0 <= s <= 1.0 for s in shares)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(shares))
    assert profile.cumulative_share(start, end, start) == 0.0
    assert profile.cumulative_share(start, end, end) == 1.0


# --- JSON and the packaged profile -------------------------------------------------------------


def test_json_round_trip_keeps_the_profile() -> None:
    profile = two_block_profile()

    again = VolumeProfile.from_json(profile.to_json())

    assert again.bin_minutes == profile.bin_minutes
    assert np.allclose(again.shares, profile.shares, rtol=1e-9)


def test_from_json_refuses_something_else() -> None:
    with pytest.raises(ValueError, match="not a volume profile"):
        VolumeProfile.from_json(json.dumps({"shares": [1.0]}))


def test_default_profile_is_packaged_with_1440_minute_bins() -> None:
    profile = default_volume_profile()

    assert profile.bin_minutes == 1 and profile.bin_count == 1440
    assert profile.shares.sum() == pytest.approx(1.0)
    assert np.all(profile.shares > 0)
    assert "LGPL-3.0" in profile.source


def test_shipped_profile_is_the_documented_derivation_of_the_ftx_bars() -> None:
    if not FTX_BARS.is_file():
        pytest.skip(f"FTX bars not found at {FTX_BARS}: cannot re-derive the shipped profile")
    with FTX_BARS.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    stamps = [datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC) for r in rows]
    volumes = [float(r["volume"]) for r in rows]

    rebuilt = VolumeProfile.from_bars(stamps, volumes, bin_minutes=1)
    shipped = VolumeProfile.from_json(SHIPPED.read_text())

    assert len(rows) == 45_031
    assert rebuilt.days == shipped.days == 33
    assert np.allclose(rebuilt.shares, shipped.shares, rtol=1e-8, atol=0)
