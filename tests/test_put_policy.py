"""Protective puts by policy (``risk.put_policy``) and the vol surface behind them.

The default smile of ``risk.vol_surface`` is checked against the recorded Deribit BTC tickers:
refitting by least squares reproduces the shipped parameters, and the fit is within a stated
distance of every recorded mark implied volatility.
"""

from __future__ import annotations

import collections
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pytest

from ems.domain import Instrument, InstrumentKind, OptionRight
from risk.greeks import option_greeks, year_fraction
from risk.put_policy import PutPolicy, choose_put, needs_roll, put_delta, puts_needed
from risk.vol_surface import DEFAULT_BTC_SMILE, SmileParams, VolSurface, fit_smile, smile_vols
from tests.deribit_support import deribit_tickers

NOW = datetime(2024, 3, 1, 8, tzinfo=UTC)
SPOT = Decimal(60_000)


def option(
    strike: int,
    days: float,
    right: OptionRight = OptionRight.PUT,
    *,
    venue: str = "sim",
    base: str = "BTC",
    contract_size: Decimal = Decimal(1),
    lot: Decimal = Decimal("0.1"),
) -> Instrument:
    expiry = NOW + timedelta(days=days)
    letter = "P" if right is OptionRight.PUT else "C"
    return Instrument(
        venue=venue,
        symbol=f"{base}-{expiry:%d%b%y}-{strike}-{letter}".upper(),
        kind=InstrumentKind.OPTION,
        base=base,
        quote="USD",
        tick_size=Decimal("0.5"),
        lot_size=lot,
        min_qty=lot,
        min_notional=Decimal(0),
        contract_size=contract_size,
        expiry=expiry,
        strike=Decimal(strike),
        right=right,
    )


FLAT = VolSurface(SmileParams(atm_vol=0.6, skew=0.0, curvature=0.0, term_slope=0.0))


# --- the surface ----------------------------------------------------------------------------


def _btc_capture() -> tuple[
    list[float], list[float], list[float], npt.NDArray[np.float64], list[float]
]:
    """Strikes, underlying prices, years, mark vols and per-option weights of the BTC tickers."""
    tickers = [t for t in deribit_tickers() if t.option.underlying == "BTC"]
    per_option = collections.Counter(t.instrument_name for t in tickers)
    return (
        [float(t.option.strike) for t in tickers],
        [t.underlying_price for t in tickers],
        [year_fraction(t.timestamp, t.option.expiry) for t in tickers],
        np.array([t.mark_iv / 100 for t in tickers]),
        [1 / per_option[t.instrument_name] for t in tickers],
    )


def test_default_smile_is_the_least_squares_fit_to_deribit_btc() -> None:
    """Each of the 7 BTC options weighs the same (one of them has 31 tickers, others 5 to 7).

    Measured: weighted RMS residual 3.35 vol points, worst 6.5 (BTC-24SEP21-34000-P, 76.6
    published vs 83.1): four parameters cannot bend a one-week 117 % wing and a three-month 77 %
    at-the-money together. Asserted: RMS below 3.5 points, every option within 7, and the shipped
    parameters equal to the refit to the rounding they are written with.
    """
    strikes, spots, years, vols, weights = _btc_capture()
    fitted = fit_smile(strikes, spots, years, vols, weights)
    for name in ("atm_vol", "skew", "curvature", "term_slope"):
        assert getattr(DEFAULT_BTC_SMILE, name) == pytest.approx(getattr(fitted, name), abs=6e-5)
    residual_pts = (smile_vols(DEFAULT_BTC_SMILE, strikes, spots, years) - vols) * 100
    assert np.sqrt(np.average(residual_pts**2, weights=weights)) < 3.5
    assert np.max(np.abs(residual_pts)) < 7.0
    # The fitted smile has the shape of the market: wings above the money, puts over calls.
    assert DEFAULT_BTC_SMILE.curvature > 0 and DEFAULT_BTC_SMILE.skew < 0


def test_fit_smile_recovers_known_parameters_exactly() -> None:
    truth = SmileParams(atm_vol=0.7, skew=-0.05, curvature=0.02, term_slope=0.03)
    rng = np.random.default_rng(7)
    strikes = rng.uniform(10_000, 120_000, 40)
    years = rng.uniform(0.02, 1.5, 40)
    vols = smile_vols(truth, strikes, 50_000.0, years)
    fitted = fit_smile(list(strikes), [50_000.0] * 40, list(years), list(vols))
    assert fitted.atm_vol == pytest.approx(0.7)
    assert fitted.skew == pytest.approx(-0.05)
    assert fitted.curvature == pytest.approx(0.02)
    assert fitted.term_slope == pytest.approx(0.03)
    with pytest.raises(ValueError, match="at least 4"):
        fit_smile([1.0], [1.0], [1.0], [0.5])


def test_surface_is_sticky_strike_once_anchored() -> None:
    expiry = NOW + timedelta(days=60)
    anchored = VolSurface().anchored(60_000.0)
    assert anchored.vol(50_000, 60_000, expiry, NOW) == anchored.vol(50_000, 40_000, expiry, NOW)
    floating = VolSurface()
    assert floating.vol(50_000, 60_000, expiry, NOW) != floating.vol(50_000, 40_000, expiry, NOW)
    assert floating.vol(50_000, 60_000, expiry, NOW) == anchored.vol(50_000, 60_000, expiry, NOW)
    # Skewed smile: a 20 % out-of-the-money put carries more vol than the money.
    assert anchored.vol(48_000, 60_000, expiry, NOW) > anchored.vol(60_000, 60_000, expiry, NOW)
    # Vols are clipped, and the last day does not explode.
    assert anchored.vol(1_000, 60_000, expiry, NOW) <= 5.0
    assert anchored.vol(30_000, 60_000, NOW + timedelta(hours=1), NOW) <= 5.0
    with pytest.raises(ValueError, match="reference_spot"):
        VolSurface(reference_spot=-1.0)


def test_quote_brackets_the_model_price() -> None:
    put = option(54_000, 45)
    surface = VolSurface().anchored(60_000.0)
    bid, ask, mark, greeks = surface.quote(put, SPOT, NOW, spread_bps=200)
    sigma = surface.vol(54_000, 60_000, put.expiry or NOW, NOW)
    fair = option_greeks(60_000.0, 54_000.0, 45 / 365, sigma, False)
    assert greeks == fair
    assert abs(float(mark) - fair.price) <= 0.25
    assert bid < mark < ask
    assert float(ask - bid) == pytest.approx(fair.price * 0.02, abs=1.0)  # 200 bp wide, ticks
    assert bid % put.tick_size == 0 and ask % put.tick_size == 0
    # A zero spread still leaves a tick each side; a worthless wing bids nothing.
    zb, za, zm, _ = surface.quote(put, SPOT, NOW, spread_bps=0)
    assert zb < zm < za
    wing = surface.quote(option(1_000, 2), SPOT, NOW, spread_bps=100)
    assert wing.bid == 0 and wing.ask >= put.tick_size
    with pytest.raises(ValueError, match="not an option"):
        surface.quote(replace(put, kind=InstrumentKind.SPOT, expiry=None), SPOT, NOW, 10)


# --- the policy -----------------------------------------------------------------------------


def test_policy_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="coverage_ratio"):
        PutPolicy(coverage_ratio=Decimal("2.5"))
    with pytest.raises(ValueError, match="coverage_mode"):
        PutPolicy(coverage_mode="gamma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must exceed"):
        PutPolicy(min_days_to_expiry=7, roll_days_before_expiry=7)
    with pytest.raises(ValueError, match="strike_below_spot_pct"):
        PutPolicy(strike_below_spot_pct=Decimal(100))


def test_choose_put_takes_the_highest_strike_below_the_ceiling_far_enough_out() -> None:
    policy = PutPolicy(strike_below_spot_pct=Decimal(10), min_days_to_expiry=30)  # ceiling 54,000
    listed = [
        option(56_000, 60),  # above the ceiling
        option(54_000, 20),  # too short
        option(52_000, 90),
        option(54_000, 90),
        option(54_000, 45),  # same strike, earlier expiry: wins
        option(50_000, 45),
        option(54_000, 45, OptionRight.CALL),  # not a put
        option(54_000, 45, base="ETH"),
    ]
    chosen = choose_put(listed, SPOT, NOW, policy, base="BTC")
    assert chosen == option(54_000, 45)
    # Exactly at the horizon counts; a strike exactly at the ceiling counts.
    assert choose_put([option(54_000, 30)], SPOT, NOW, policy) == option(54_000, 30)
    # Nothing at or below the ceiling far enough out: no put, never one above the ceiling.
    assert choose_put([option(56_000, 60), option(40_000, 10)], SPOT, NOW, policy) is None
    assert choose_put([], SPOT, NOW, policy) is None


def test_choose_put_tie_breaks_are_deterministic() -> None:
    policy = PutPolicy()
    a = option(54_000, 45, venue="b-venue")
    b = option(54_000, 45, venue="a-venue")
    mini = option(54_000, 45, venue="c-venue", contract_size=Decimal("0.1"))
    assert choose_put([a, b, mini], SPOT, NOW, policy) == mini
    assert choose_put([a, b], SPOT, NOW, policy) == b
    assert choose_put([b, a], SPOT, NOW, policy) == b


def test_needs_roll_at_the_roll_window() -> None:
    policy = PutPolicy(roll_days_before_expiry=7)
    put = option(54_000, 30)
    assert not needs_roll(put, NOW, policy)
    assert not needs_roll(put, NOW + timedelta(days=22, hours=23), policy)
    assert needs_roll(put, NOW + timedelta(days=23), policy)
    assert needs_roll(put, NOW + timedelta(days=40), policy)  # expired


def test_puts_needed_by_notional() -> None:
    policy = PutPolicy(coverage_ratio=Decimal("0.8"))
    target = option(54_000, 45)
    assert puts_needed(Decimal(100), {}, SPOT, NOW, policy, FLAT, target=target) == Decimal(80)
    held = {option(50_000, 60): Decimal(30), option(52_000, 90): Decimal(20)}
    assert puts_needed(Decimal(100), held, SPOT, NOW, policy, FLAT, target=target) == Decimal(30)
    # Over-covered: sell down to the ratio; short or flat spot needs no puts at all.
    assert puts_needed(Decimal(50), held, SPOT, NOW, policy, FLAT, target=target) == Decimal(-10)
    assert puts_needed(Decimal(-5), held, SPOT, NOW, policy, FLAT, target=target) == Decimal(-50)
    # Rounded up to the lot: never below the ratio.
    assert puts_needed(Decimal("10.01"), {}, SPOT, NOW, policy, FLAT, target=target) == Decimal(
        "8.1"
    )
    # Contract size: 0.1 BTC per contract needs ten times the contracts.
    mini = option(54_000, 45, contract_size=Decimal("0.1"), lot=Decimal(1))
    assert puts_needed(Decimal(100), {}, SPOT, NOW, policy, FLAT, target=mini) == Decimal(800)


def test_puts_due_for_a_roll_do_not_count() -> None:
    policy = PutPolicy(coverage_ratio=Decimal(1), roll_days_before_expiry=7)
    expiring = option(50_000, 5)
    live = option(54_000, 45)
    book = [(expiring, Decimal(60)), (live, Decimal(30))]
    assert puts_needed(Decimal(100), book, SPOT, NOW, policy, FLAT) == Decimal(70)  # target: live
    with pytest.raises(ValueError, match="needs a target"):
        puts_needed(Decimal(100), [(expiring, Decimal(60))], SPOT, NOW, policy, FLAT)


def test_puts_needed_by_delta_uses_the_surface_greeks() -> None:
    policy = PutPolicy(coverage_mode="delta", coverage_ratio=Decimal("0.5"))
    target = option(54_000, 45)
    delta = put_delta(target, SPOT, NOW, FLAT)
    expected = option_greeks(60_000.0, 54_000.0, 45 / 365, 0.6, False).delta
    assert delta == pytest.approx(expected) and -0.5 < delta < 0
    needed = puts_needed(Decimal(100), {}, SPOT, NOW, policy, FLAT, target=target)
    assert needed == pytest.approx(Decimal(50) / Decimal(repr(-delta)), abs=Decimal("0.1"))
    covered = needed * Decimal(repr(-delta))
    assert Decimal(50) <= covered < Decimal(50) + Decimal("0.1")
    # Holding exactly that leaves nothing to do; a held put's delta counts with its own strike.
    assert puts_needed(Decimal(100), {target: needed}, SPOT, NOW, policy, FLAT) == 0
    deep = option(70_000, 60)
    deep_delta = -put_delta(deep, SPOT, NOW, FLAT)
    assert deep_delta > 0.6
    still = puts_needed(Decimal(100), {deep: Decimal(40)}, SPOT, NOW, policy, FLAT, target=target)
    remaining = Decimal(50) - Decimal(40) * Decimal(repr(deep_delta))
    assert still == pytest.approx(remaining / Decimal(repr(-delta)), abs=Decimal("0.1"))
    # The skewed Deribit-fitted surface gives the wing more vol, hence more delta, than flat 60 %.
    skewed = VolSurface().anchored(60_000.0)
    assert abs(put_delta(option(40_000, 45), SPOT, NOW, skewed)) > abs(
        put_delta(option(40_000, 45), SPOT, NOW, FLAT)
    )
    with pytest.raises(ValueError, match="too far out of the money"):
        puts_needed(Decimal(100), {}, SPOT, NOW, policy, FLAT, target=option(5_000, 31))
