"""European option prices, greeks and implied volatility, vectorised with numpy (pure).

Model: Black–Scholes on the option's *underlying price* ``s`` with a continuously compounded rate
``r`` (the underlying is assumed to carry ``r``, so its forward is ``s·e^{rT}``). With ``r = 0``
— Deribit publishes ``interest_rate: 0`` and prices off ``underlying_price``, the forward of the
option's expiry — this is exactly Black-76 on that forward, and that is how the functions are used.

Units follow Deribit's published ticker greeks (checked against the recorded Deribit capture in
``tests/test_greeks.py``):

- price: in the currency of ``s`` and ``k`` (USD), per 1 unit of underlying;
- delta: per 1 unit of underlying (Black delta, not premium-adjusted);
- gamma: per 1 USD move of the underlying;
- vega: per 1 volatility point (1 %, i.e. 0.01 of sigma);
- theta: per calendar day (annual theta / 365), the change in value as one day passes; with
  less than a day left, minus the remaining time value (price − intrinsic value), which is what
  Deribit publishes then (the analytic rate would overstate a day's decay it cannot have);
- rho: per 1 % of rate, the spot Black–Scholes rho ``±k·T·e^{-rT}·N(±d2)/100`` (the forward moves
  with the rate), which is what Deribit reports even though its rate is 0.

Time is in years of 365 days: :func:`year_fraction` counts seconds from ``now`` to the expiry
instant (Deribit expires at 08:00 UTC) and divides by ``365 × 86 400``; that basis matched the
capture best (see the test module).

At or after expiry (``t <= 0``) or with ``sigma <= 0`` a contract is worth its intrinsic value on
the discounted forward; delta is then 0 or ±1 and the other greeks are 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

SECONDS_PER_YEAR = 365.0 * 86_400.0
DAYS_PER_YEAR = 365.0
_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def norm_cdf(x: ArrayLike) -> FloatArray:
    """Standard normal cumulative distribution, elementwise.

    Computed with ``erfc`` so that the lower tail keeps its relative precision (far
    out-of-the-money prices would otherwise drown in ``1 + erf`` cancellation).
    """
    return np.asarray(0.5 * _erfc(-np.asarray(x, dtype=np.float64) / _SQRT_2))


def norm_pdf(x: ArrayLike) -> FloatArray:
    """Standard normal density, elementwise."""
    z = np.asarray(x, dtype=np.float64)
    return np.asarray(_INV_SQRT_2PI * np.exp(-0.5 * z * z))


def year_fraction(now: datetime, expiry: datetime) -> float:
    """Years (of 365 days, counted in seconds) from ``now`` to ``expiry``; negative once past.

    Both datetimes must be timezone-aware.
    """
    if now.tzinfo is None or expiry.tzinfo is None:
        raise ValueError("year_fraction needs timezone-aware datetimes")
    return (expiry - now).total_seconds() / SECONDS_PER_YEAR


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and greeks, in Deribit's units (see the module docstring).

    Fields are numpy arrays shaped like the broadcast inputs (0-d arrays for scalar inputs);
    :meth:`scalar` turns a single-option result into plain floats.
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray

    def scalar(self) -> OptionGreeks:
        """The single option's values as floats; raises if the result holds several options."""
        if self.price.size != 1:
            raise ValueError(f"scalar() needs a single option, got {self.price.size}")
        return OptionGreeks(
            price=float(self.price),
            delta=float(self.delta),
            gamma=float(self.gamma),
            vega=float(self.vega),
            theta=float(self.theta),
            rho=float(self.rho),
        )


@dataclass(frozen=True, slots=True)
class OptionGreeks:
    """Price and greeks of one option as floats, in Deribit's units."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


def _sign(is_call: ArrayLike) -> FloatArray:
    return np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)


def black_scholes(
    s: ArrayLike,
    k: ArrayLike,
    t: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    r: ArrayLike = 0.0,
) -> Greeks:
    """Price and greeks of European options, broadcasting every argument.

    ``s`` underlying price (Deribit: ``underlying_price``), ``k`` strike, ``t`` years to expiry,
    ``sigma`` annual volatility as a fraction (Deribit's ``mark_iv / 100``), ``is_call`` True for
    calls and False for puts, ``r`` continuously compounded rate (0 on Deribit).
    """
    s_, k_, t_, v_, call_, r_ = np.broadcast_arrays(
        np.asarray(s, dtype=np.float64),
        np.asarray(k, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
        np.asarray(is_call, dtype=bool),
        np.asarray(r, dtype=np.float64),
    )
    if np.any(s_ <= 0) or np.any(k_ <= 0):
        raise ValueError("underlying price and strike must be positive")
    w = _sign(call_)
    live = (t_ > 0) & (v_ > 0)
    # Safe stand-ins where the option is dead, so no warnings; those entries are replaced below.
    t_live = np.where(live, t_, 1.0)
    v_live = np.where(live, v_, 1.0)
    sqrt_t = np.sqrt(t_live)
    vol_sqrt_t = v_live * sqrt_t
    disc = np.exp(-r_ * np.where(live, t_, np.maximum(t_, 0.0)))
    d1 = (np.log(s_ / k_) + (r_ + 0.5 * v_live * v_live) * t_live) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    nd1 = norm_cdf(w * d1)
    nd2 = norm_cdf(w * d2)
    pdf1 = norm_pdf(d1)

    price = w * (s_ * nd1 - k_ * disc * nd2)
    delta = w * nd1
    gamma = pdf1 / (s_ * vol_sqrt_t)
    vega = s_ * pdf1 * sqrt_t / 100.0
    theta_annual = -s_ * pdf1 * v_live / (2.0 * sqrt_t) - w * r_ * k_ * disc * nd2
    theta = theta_annual / DAYS_PER_YEAR
    # Within a day of expiry, the day's decay is the whole remaining time value (as Deribit does).
    time_value = np.maximum(w * (s_ * nd1 - k_ * disc * nd2) - np.maximum(w * (s_ - k_), 0.0), 0.0)
    theta = np.where(t_live * DAYS_PER_YEAR < 1.0, -time_value, theta)
    rho = w * k_ * t_live * disc * nd2 / 100.0

    intrinsic = np.maximum(w * (s_ - k_ * disc), 0.0)
    dead_delta = np.where(w * (s_ - k_ * disc) > 0, w, 0.0)
    zero = np.zeros_like(price)
    return Greeks(
        price=np.where(live, price, intrinsic),
        delta=np.where(live, delta, dead_delta),
        gamma=np.where(live, gamma, zero),
        vega=np.where(live, vega, zero),
        theta=np.where(live, theta, zero),
        rho=np.where(live, rho, zero),
    )


def option_greeks(
    s: float, k: float, t: float, sigma: float, is_call: bool, r: float = 0.0
) -> OptionGreeks:
    """:func:`black_scholes` for one option, as floats."""
    return black_scholes(s, k, t, sigma, is_call, r).scalar()


def implied_vol(
    price: ArrayLike,
    s: ArrayLike,
    k: ArrayLike,
    t: ArrayLike,
    is_call: ArrayLike,
    r: ArrayLike = 0.0,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    vol_low: float = 1e-6,
    vol_high: float = 10.0,
) -> FloatArray:
    """Implied volatilities (fractions) reproducing ``price``, elementwise.

    Safeguarded Newton: each element keeps a bracket ``[lo, hi]`` on which the price is monotone in
    sigma; a Newton step that leaves the bracket, or comes with a vanishing vega, is replaced by a
    bisection step, so the solve always converges for an attainable price. Prices outside the
    no-arbitrage range (at or below the price at ``vol_low``, i.e. intrinsic value, which names no
    volatility, or above the price at ``vol_high``), and expired options, give ``nan``. An element
    has converged when its Newton step is below ``tol`` (in volatility, so ``1e-10`` is 1e-8 of a
    vol point), its bracket is narrower than ``tol``, or its price is matched to machine
    precision.
    """
    p, s_, k_, t_, call_, r_ = np.broadcast_arrays(
        np.asarray(price, dtype=np.float64),
        np.asarray(s, dtype=np.float64),
        np.asarray(k, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(is_call, dtype=bool),
        np.asarray(r, dtype=np.float64),
    )
    lo = np.full(p.shape, vol_low)
    hi = np.full(p.shape, vol_high)
    t_safe = np.where(t_ > 0, t_, 1.0)
    p_lo = black_scholes(s_, k_, t_safe, lo, call_, r_).price
    p_hi = black_scholes(s_, k_, t_safe, hi, call_, r_).price
    valid = (t_ > 0) & np.isfinite(p) & (p > p_lo) & (p <= p_hi)
    # Start from the Brenner–Subrahmanyam at-the-money approximation, clipped into the bracket.
    guess = np.sqrt(2.0 * np.pi / t_safe) * p / s_
    vol = np.clip(np.where(np.isfinite(guess), guess, 0.5), 0.05, 3.0)
    done = ~valid
    scale = np.maximum(1.0, np.abs(p))
    for _ in range(max_iter):
        if np.all(done):
            break
        g = black_scholes(s_, k_, t_safe, vol, call_, r_)
        diff = g.price - p
        vega_frac = g.vega * 100.0  # per unit of sigma
        with np.errstate(divide="ignore", invalid="ignore"):
            newton_step = diff / vega_frac
        exact = np.abs(diff) <= 4.0 * np.finfo(np.float64).eps * np.abs(p)
        converged = exact | (np.abs(newton_step) <= tol) | (hi - lo <= tol)
        # Price increases with vol: tighten the bracket around the root.
        lo = np.where(diff < 0, np.maximum(lo, vol), lo)
        hi = np.where(diff > 0, np.minimum(hi, vol), hi)
        newton = vol - newton_step
        use_newton = (vega_frac > 1e-12 * scale) & (newton > lo) & (newton < hi)
        step = np.where(use_newton, newton, 0.5 * (lo + hi))
        # A converged element still takes its (sub-tolerance) Newton step, then stops.
        vol = np.where(done, vol, np.where(exact, vol, step))
        done = done | converged
    return np.where(valid, vol, np.nan)
