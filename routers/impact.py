"""The impact-cost model (pure): relative size, power-law impact fits, passive fill probability.

Impact curve
------------
Each venue's impact is a power law in the child's size relative to the displayed depth it takes::

    cost_bps = a · x ** b,        x = qty / displayed depth (top ``levels`` levels, far side)

fitted on our own children's realised costs. With few points the fit is the square-root prior
(``b = 0.5``, ``a = PRIOR_A_BPS``); with many points it is the data.

Fit (``fit_power_law``): Bayesian linear regression in log-log space,
``log cost = α + b · log x + ε``, ``ε ~ N(0, σ²)``, ``θ = (α, b)``, ``α = log a``, under a
conjugate normal-inverse-gamma prior::

    θ | σ² ~ N(θ0, σ² Λ0⁻¹),   θ0 = (log prior_a, prior_b)
    Λ0 = w · [[1, ū], [ū, ū² + max(s², 1)]]                  (w = prior_weight)
    σ²     ~ InvGamma(ν0/2, ν0 s0²/2)

``ū`` and ``s²`` are the mean and variance of ``log x`` over the points: ``Λ0`` is the
information of ``w`` pseudo-points on the prior curve spread over sizes like the data (Zellner's
g-prior), so the prior weighs as much as ``w`` real points wherever the data are. The variance
is floored at 1 so that one point, or many at a single size, still meet a proper prior; with no
data ``Λ0 = w · I`` (pseudo-points at ``log x = ±1``). The posterior::

    Λn = Λ0 + XᵀX
    θn = Λn⁻¹ (Λ0 θ0 + Xᵀy)  =  (w · θ0 + n · θ_ols) / (w + n)     (when s² >= 1)
    νn = ν0 + n,   νn sn² = ν0 s0² + yᵀy + θ0ᵀΛ0θ0 − θnᵀΛnθn
    θ  ~ Student-t(νn, θn, sn² Λn⁻¹)      (marginal posterior)

so no points give the prior, few points mostly the prior, many points the least-squares fit.
Confidence bounds are ``θn ± t(νn, (1+c)/2) · sqrt(diag(sn² Λn⁻¹))`` (c = 0.95 by default),
mapped to ``a`` through ``exp``. The fitted ``a`` is the median (geometric-mean) curve: log-space
least squares with multiplicative noise estimates the median cost, not the mean.

Zero and negative realised costs
--------------------------------
Points with ``x <= 0`` (or non-finite values) carry no size information and are dropped. Points
with ``cost <= 0`` (the market moved our way during the child) cannot enter a log fit; flooring
them at an epsilon would plant arbitrarily large negative outliers in log space. They are treated
as a hurdle instead: the log fit runs on the positive points only, and the curve is scaled by the
posterior mean share of positive outcomes ``s = (n_pos + w) / (n + w)`` (prior share 1: impact
is a cost). A non-positive outcome thus counts as zero cost (we never credit market drift as a
rebate), and a venue whose children keep costing nothing sees its curve shrink toward zero.

Fill probability: the beta-binomial posterior mean ``(filled + p0 · w) / (posted + w)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from statistics import NormalDist
from typing import Final

import numpy as np

from ems.domain import ZERO, OrderBook, Side
from routers.types import ImpactFit

PRIOR_A_BPS: Final = 10.0
"""Square-root prior: a child the size of the whole displayed top-10 depth costs 10 bps beyond
the visible walk (1 % of the depth: 1 bp)."""
PRIOR_B: Final = 0.5
PRIOR_WEIGHT: Final = 10.0
"""The prior weighs as much as this many realised points."""
PRIOR_SIGMA: Final = 0.5
"""Prior noise scale in log space (×/÷ 1.65 around the curve)."""
PRIOR_NU: Final = 4.0
"""Degrees of freedom behind ``PRIOR_SIGMA``: small, so data quickly set the noise level."""
DEPTH_LEVELS: Final = 10
FILL_PRIOR_WEIGHT: Final = 4.0


def displayed_depth(book: OrderBook, side: Side, levels: int = DEPTH_LEVELS) -> Decimal:
    """Displayed quantity an order of ``side`` would take: top ``levels`` levels of the far side."""
    far = book.asks if side is Side.BUY else book.bids
    return sum((level.qty for level in far[:levels]), ZERO)


def relative_size(
    qty: Decimal | float, book: OrderBook, side: Side, levels: int = DEPTH_LEVELS
) -> float:
    """Size of a ``side`` order relative to the displayed depth it takes (top ``levels`` levels).

    0 for a non-positive size; ``inf`` when that side of the book is empty.
    """
    size = float(qty)
    if size <= 0:
        return 0.0
    depth = float(displayed_depth(book, side, levels))
    return size / depth if depth > 0 else math.inf


def t_quantile(p: float, dof: float) -> float:
    """Quantile ``p`` of Student's t with ``dof`` degrees of freedom.

    Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5); within
    0.3 % of the exact value for ``dof >= 3`` at the usual confidence levels, and exact as
    ``dof`` grows.
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def fit_power_law(
    points: Sequence[tuple[float, float]],
    venue: str,
    symbol: str,
    now: datetime,
    prior_a: float = PRIOR_A_BPS,
    prior_b: float = PRIOR_B,
    prior_weight: float = PRIOR_WEIGHT,
    confidence: float = 0.95,
) -> ImpactFit:
    """Fit ``cost_bps = a · x ** b`` to ``(x, cost_bps)`` points, shrunk toward the prior.

    See the module docstring for the conjugate prior, the posterior and how non-positive costs
    are handled. ``n`` of the result counts every point with a positive finite ``x``.
    """
    if prior_a <= 0:
        raise ValueError(f"prior_a must be positive, got {prior_a}")
    if prior_weight <= 0:
        raise ValueError(f"prior_weight must be positive, got {prior_weight}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    usable = [
        (float(x), float(c))
        for x, c in points
        if math.isfinite(float(x)) and math.isfinite(float(c)) and float(x) > 0
    ]
    positive = [(x, c) for x, c in usable if c > 0]
    n, n_pos = len(usable), len(positive)

    theta0 = np.array([math.log(prior_a), prior_b])
    lambda0 = prior_weight * np.eye(2)
    if positive:
        data = np.array(positive)
        u = np.log(data[:, 0])
        design = np.column_stack([np.ones(n_pos), u])
        y = np.log(data[:, 1])
        mean_u, var_u = float(u.mean()), max(float(u.var()), 1.0)
        lambda0 = prior_weight * np.array([[1.0, mean_u], [mean_u, mean_u**2 + var_u]])
        lambda_n = lambda0 + design.T @ design
        theta_n = np.linalg.solve(lambda_n, lambda0 @ theta0 + design.T @ y)
        sum_sq = float(y @ y + theta0 @ lambda0 @ theta0 - theta_n @ lambda_n @ theta_n)
    else:
        lambda_n, theta_n, sum_sq = lambda0, theta0, 0.0
    nu_n = PRIOR_NU + n_pos
    s2_n = (PRIOR_NU * PRIOR_SIGMA**2 + max(sum_sq, 0.0)) / nu_n
    half_width = t_quantile((1 + confidence) / 2, nu_n) * np.sqrt(
        s2_n * np.diag(np.linalg.inv(lambda_n))
    )
    share = (n_pos + prior_weight) / (n + prior_weight)

    if positive:
        alpha, b = float(theta_n[0]), float(theta_n[1])
        a = share * math.exp(alpha)
    else:  # exactly the prior curve, only scaled by the share of positive outcomes
        alpha, b, a = math.log(prior_a), prior_b, share * prior_a
    return ImpactFit(
        venue=venue,
        symbol=symbol,
        a=a,
        b=b,
        a_low=share * math.exp(alpha - float(half_width[0])),
        a_high=share * math.exp(alpha + float(half_width[0])),
        b_low=b - float(half_width[1]),
        b_high=b + float(half_width[1]),
        n=n,
        fitted_at=now,
    )


def prior_fit(venue: str, symbol: str, now: datetime) -> ImpactFit:
    """The square-root prior curve (no data yet), with the prior's own confidence bounds."""
    return fit_power_law((), venue, symbol, now)


def fill_probability(
    posted: float | Decimal,
    filled: float | Decimal,
    prior: float = 0.5,
    prior_weight: float = FILL_PRIOR_WEIGHT,
) -> float:
    """Share of posted passive quantity expected to fill: the beta-binomial posterior mean.

    Prior ``Beta(prior · w, (1 − prior) · w)`` updated with ``filled`` successes out of
    ``posted`` trials (quantities work as fractional counts): ``(filled + prior·w) / (posted + w)``.
    """
    posted_f, filled_f = float(posted), float(filled)
    if posted_f < 0 or filled_f < 0:
        raise ValueError(f"posted and filled must not be negative, got {posted_f}, {filled_f}")
    if filled_f > posted_f * (1 + 1e-9):
        raise ValueError(f"filled {filled_f} exceeds posted {posted_f}")
    if not 0 <= prior <= 1:
        raise ValueError(f"prior must be in [0, 1], got {prior}")
    if prior_weight <= 0:
        raise ValueError(f"prior_weight must be positive, got {prior_weight}")
    return (min(filled_f, posted_f) + prior * prior_weight) / (posted_f + prior_weight)
