"""Impact-cost model (pure): relative size, the power-law fit and its prior, fill probability."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from ems.domain import BookLevel, OrderBook, Side
from routers import impact

T0 = datetime(2024, 8, 8, 12, 0, tzinfo=UTC)
TRUE_A, TRUE_B, NOISE = 12.0, 0.6, 0.3


def curve_points(n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` points of cost = 12 · x^0.6 with multiplicative log-normal noise (σ = 0.3 in log
    space), sizes log-uniform between 0.1 % and 100 % of the displayed depth."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(math.log(1e-3), 0.0, n))
    cost = TRUE_A * x**TRUE_B * np.exp(rng.normal(0.0, NOISE, n))
    return list(zip(x.tolist(), cost.tolist(), strict=True))


def fit(points: list[tuple[float, float]], **kwargs: float) -> impact.ImpactFit:
    return impact.fit_power_law(points, "sim", "BTC/USDT", T0, **kwargs)


# --- relative size ----------------------------------------------------------------------------


def test_relative_size_is_against_the_displayed_depth_taken() -> None:
    book = OrderBook(
        "sim",
        "BTC/USDT",
        T0,
        bids=tuple(BookLevel(Decimal(99 - i), Decimal(2)) for i in range(12)),
        asks=tuple(BookLevel(Decimal(101 + i), Decimal(1)) for i in range(12)),
    )
    assert impact.relative_size(Decimal(5), book, Side.BUY) == pytest.approx(0.5)  # 10 asks
    assert impact.relative_size(Decimal(5), book, Side.SELL) == pytest.approx(0.25)  # 10 bids
    assert impact.relative_size(Decimal(6), book, Side.BUY, levels=3) == pytest.approx(2.0)
    assert impact.relative_size(Decimal(0), book, Side.BUY) == 0.0
    empty = OrderBook("sim", "BTC/USDT", T0, bids=(), asks=())
    assert impact.relative_size(Decimal(1), empty, Side.BUY) == math.inf


# --- the power-law fit ----------------------------------------------------------------------


def test_no_points_give_the_prior() -> None:
    prior = impact.prior_fit("sim", "BTC/USDT", T0)
    assert (prior.a, prior.b, prior.n) == (impact.PRIOR_A_BPS, impact.PRIOR_B, 0)
    assert prior.a_low < prior.a < prior.a_high
    assert prior.b_low < prior.b < prior.b_high
    assert fit([]) == prior
    # Points without a positive size carry no information and change nothing.
    assert fit([(0.0, 5.0), (-1.0, 3.0), (math.nan, 2.0)]) == prior


def test_n_200_recovers_the_true_curve_within_tolerance_and_bounds() -> None:
    result = fit(curve_points(200, seed=1))
    assert result.n == 200
    assert result.a == pytest.approx(TRUE_A, rel=0.10)
    assert result.b == pytest.approx(TRUE_B, abs=0.03)
    assert result.a_low <= TRUE_A <= result.a_high
    assert result.b_low <= TRUE_B <= result.b_high


def test_the_95_percent_bounds_cover_the_truth_about_95_percent_of_the_time() -> None:
    fits = [fit(curve_points(200, seed)) for seed in range(100)]
    covered_a = sum(f.a_low <= TRUE_A <= f.a_high for f in fits)
    covered_b = sum(f.b_low <= TRUE_B <= f.b_high for f in fits)
    assert covered_a >= 88
    assert covered_b >= 88
    # And every one of them is within the stated tolerance.
    assert all(abs(f.a / TRUE_A - 1) <= 0.12 and abs(f.b - TRUE_B) <= 0.035 for f in fits)


# Mean absolute error over 30 seeds: the estimate moves from the prior (a = 10, b = 0.5) to the
# truth (a = 12, b = 0.6) as points accumulate, and the bounds narrow.
CONVERGENCE = [
    # n, mean |a/12 − 1|, mean |b − 0.6|, mean width of the b interval
    (0, 0.17, 0.101, 0.9),
    (10, 0.14, 0.065, 0.22),
    (50, 0.07, 0.025, 0.095),
    (200, 0.05, 0.013, 0.045),
    (1000, 0.022, 0.005, 0.02),
]


@pytest.mark.parametrize(("n", "a_error", "b_error", "b_width"), CONVERGENCE)
def test_the_estimate_approaches_the_truth_as_points_accumulate(
    n: int, a_error: float, b_error: float, b_width: float
) -> None:
    fits = [fit(curve_points(n, seed)) for seed in range(30)]
    assert np.mean([abs(f.a / TRUE_A - 1) for f in fits]) <= a_error
    assert np.mean([abs(f.b - TRUE_B) for f in fits]) <= b_error
    assert np.mean([f.b_high - f.b_low for f in fits]) <= b_width


def test_errors_shrink_monotonically_with_more_points() -> None:
    def mean_errors(n: int) -> tuple[float, float]:
        fits = [fit(curve_points(n, seed)) for seed in range(30)]
        return (
            float(np.mean([abs(math.log(f.a / TRUE_A)) for f in fits])),
            float(np.mean([abs(f.b - TRUE_B) for f in fits])),
        )

    errors = [mean_errors(n) for n, *_ in CONVERGENCE]
    for before, after in itertools.pairwise(errors):
        assert after[0] < before[0]
        assert after[1] < before[1]


def test_the_posterior_mean_is_the_prior_and_the_least_squares_fit_weighted_by_counts() -> None:
    points = curve_points(40, seed=3)
    x = np.log([p[0] for p in points])
    y = np.log([p[1] for p in points])
    b_ols, alpha_ols = np.polyfit(x, y, 1)
    w = impact.PRIOR_WEIGHT
    result = fit(points)
    alpha = (w * math.log(impact.PRIOR_A_BPS) + 40 * alpha_ols) / (w + 40)
    b = (w * impact.PRIOR_B + 40 * b_ols) / (w + 40)
    assert result.b == pytest.approx(b, rel=1e-9)
    assert result.a == pytest.approx(math.exp(alpha), rel=1e-9)


def test_a_heavier_prior_holds_the_estimate_closer_to_the_prior() -> None:
    points = curve_points(30, seed=5)
    light, heavy = fit(points, prior_weight=1.0), fit(points, prior_weight=100.0)
    assert abs(heavy.b - impact.PRIOR_B) < abs(light.b - impact.PRIOR_B)


def test_one_point_or_one_size_still_gives_a_proper_fit() -> None:
    one = fit([(0.1, 5.0)])
    assert one.n == 1 and math.isfinite(one.a) and math.isfinite(one.b)
    assert one.b_low < one.b < one.b_high
    same_size = fit([(0.1, c) for c in (4.0, 5.0, 6.0)])
    assert math.isfinite(same_size.b_high - same_size.b_low)


def test_non_positive_costs_count_as_zero_cost_through_the_positive_share() -> None:
    points = curve_points(200, seed=1)
    base = fit(points)
    # 50 children that cost nothing or gained: the curve is scaled by (200 + w) / (250 + w).
    with_zeros = fit(points + [(0.01, 0.0)] * 25 + [(0.02, -3.0)] * 25)
    share = (200 + impact.PRIOR_WEIGHT) / (250 + impact.PRIOR_WEIGHT)
    assert with_zeros.n == 250
    assert with_zeros.b == pytest.approx(base.b)
    assert with_zeros.a == pytest.approx(base.a * share)
    assert with_zeros.a_low == pytest.approx(base.a_low * share)
    # Only non-positive outcomes: the prior's shape, shrinking toward zero cost.
    nothing = fit([(0.05, 0.0)] * 90)
    assert nothing.b == impact.PRIOR_B
    assert nothing.a == pytest.approx(impact.PRIOR_A_BPS * impact.PRIOR_WEIGHT / 100)


def test_bad_fit_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        fit([], prior_weight=0.0)
    with pytest.raises(ValueError):
        fit([], prior_a=-1.0)


def test_t_quantile_matches_the_tables() -> None:
    for dof, exact in ((4, 2.7764), (10, 2.2281), (30, 2.0423), (1000, 1.9623)):
        assert impact.t_quantile(0.975, dof) == pytest.approx(exact, rel=1e-3)


# --- fill probability ---------------------------------------------------------------------------


def test_fill_probability_is_the_beta_binomial_posterior_mean() -> None:
    assert impact.fill_probability(0, 0) == 0.5
    assert impact.fill_probability(0, 0, prior=0.3) == pytest.approx(0.3)
    w = impact.FILL_PRIOR_WEIGHT
    assert impact.fill_probability(10, 8) == pytest.approx((8 + 0.5 * w) / (10 + w))
    assert impact.fill_probability(Decimal("2.5"), Decimal("0.5"), prior_weight=1) == (
        pytest.approx((0.5 + 0.5) / 3.5)
    )
    # Evidence wins over the prior as posted quantity grows.
    assert impact.fill_probability(10_000, 9_000) == pytest.approx(0.9, abs=1e-3)
    with pytest.raises(ValueError):
        impact.fill_probability(1, 2)
    with pytest.raises(ValueError):
        impact.fill_probability(-1, 0)
