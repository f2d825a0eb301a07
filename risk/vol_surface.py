"""A frozen, parametrised implied-volatility surface and option quotes for a simulated venue (pure).

The smile is a quadratic in *standardised log-moneyness* ``m = ln(K / S_ref) / sqrt(T)`` with an
at-the-money level that slopes with the log of the tenor::

    sigma(K, T) = atm_vol + term_slope · ln(T / ref_years) + skew · m + curvature · m²

clipped to ``[min_vol, max_vol]``; ``T`` (years of 365 days to the 08:00 UTC expiry) is floored
at ``min_years`` so the last hours of an option's life do not blow ``m`` up.

**Sticky strike.** When ``reference_spot`` is set, ``S_ref`` is that frozen level: a strike's vol
does not move when the spot does (only the passage of time changes it), the classic assumption
for a simulated options venue — re-anchor with :meth:`VolSurface.anchored`. With
``reference_spot = None`` the spot passed in is used (sticky moneyness).

``spot`` is the option's underlying price (on Deribit the forward of its expiry) and the rate is
0, as in :mod:`risk.greeks`.

:data:`DEFAULT_BTC_SMILE` is a least-squares fit (:func:`fit_smile`) to the mark implied vols of
the seven BTC options in the recorded Deribit capture of 2021-07-22 (one week to eleven months,
strikes 8,000 to 300,000 around a 32,200 index), each option weighted equally.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ems.domain import Instrument, InstrumentKind, OptionRight, Rounding
from risk.greeks import OptionGreeks, option_greeks, year_fraction

ONE_DAY_YEARS = 1.0 / 365.0


@dataclass(frozen=True, slots=True)
class SmileParams:
    """Parameters of the smile, vols as fractions (0.80 = 80 vol points)."""

    atm_vol: float
    skew: float
    curvature: float
    term_slope: float
    ref_years: float = 0.25

    def __post_init__(self) -> None:
        if self.atm_vol <= 0:
            raise ValueError(f"atm_vol must be positive, got {self.atm_vol}")
        if self.ref_years <= 0:
            raise ValueError(f"ref_years must be positive, got {self.ref_years}")


# Fitted on the Deribit capture (tests/test_put_policy.py re-fits it); rounded.
DEFAULT_BTC_SMILE = SmileParams(atm_vol=0.8226, skew=-0.0135, curvature=0.0512, term_slope=-0.0244)


def _design(
    strikes: npt.ArrayLike,
    spots: npt.ArrayLike,
    years: npt.ArrayLike,
    ref_years: float,
    min_years: float,
) -> npt.NDArray[np.float64]:
    k = np.asarray(strikes, dtype=np.float64)
    s = np.asarray(spots, dtype=np.float64)
    t = np.maximum(np.asarray(years, dtype=np.float64), min_years)
    m = np.log(k / s) / np.sqrt(t)
    k, m, t = np.broadcast_arrays(k, m, t)
    return np.stack([np.ones_like(m), m, m * m, np.log(t / ref_years)], axis=-1)


def smile_vols(
    params: SmileParams,
    strikes: npt.ArrayLike,
    spots: npt.ArrayLike,
    years: npt.ArrayLike,
    *,
    min_years: float = ONE_DAY_YEARS,
    min_vol: float = 0.05,
    max_vol: float = 5.0,
) -> npt.NDArray[np.float64]:
    """The smile's vols (fractions), broadcasting strikes, reference spots and years."""
    x = _design(strikes, spots, years, params.ref_years, min_years)
    coef = np.array([params.atm_vol, params.skew, params.curvature, params.term_slope])
    return np.asarray(np.clip(x @ coef, min_vol, max_vol))


def fit_smile(
    strikes: npt.ArrayLike,
    spots: npt.ArrayLike,
    years: npt.ArrayLike,
    vols: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    ref_years: float = 0.25,
    min_years: float = ONE_DAY_YEARS,
) -> SmileParams:
    """Weighted least-squares smile parameters for observed vols (fractions).

    The model is linear in its four parameters, so this is one ``lstsq`` solve; it needs at least
    four observations spanning strikes and tenors.
    """
    x = _design(strikes, spots, years, ref_years, min_years)
    y = np.asarray(vols, dtype=np.float64)
    if x.shape[0] < 4:
        raise ValueError(f"fitting a smile needs at least 4 observations, got {x.shape[0]}")
    w = np.sqrt(np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64))
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    return SmileParams(
        atm_vol=float(coef[0]),
        skew=float(coef[1]),
        curvature=float(coef[2]),
        term_slope=float(coef[3]),
        ref_years=ref_years,
    )


class OptionQuote(NamedTuple):
    """A two-sided quote for one option: prices per unit of underlying, in the quote currency."""

    bid: Decimal
    ask: Decimal
    mark: Decimal
    greeks: OptionGreeks


@dataclass(frozen=True, slots=True)
class VolSurface:
    """A frozen implied-volatility surface; see the module docstring for the model."""

    params: SmileParams = DEFAULT_BTC_SMILE
    reference_spot: float | None = None
    min_vol: float = 0.05
    max_vol: float = 5.0
    min_years: float = ONE_DAY_YEARS

    def __post_init__(self) -> None:
        if self.reference_spot is not None and self.reference_spot <= 0:
            raise ValueError(f"reference_spot must be positive, got {self.reference_spot}")
        if not 0 < self.min_vol <= self.max_vol:
            raise ValueError("need 0 < min_vol <= max_vol")

    def anchored(self, spot: float) -> VolSurface:
        """The same smile with strikes' vols frozen around ``spot`` (sticky strike)."""
        return replace(self, reference_spot=spot)

    def vol(
        self, strike: float | Decimal, spot: float | Decimal, expiry: datetime, now: datetime
    ) -> float:
        """Implied vol (fraction) for ``strike`` expiring at ``expiry``, seen at ``now``."""
        anchor = self.reference_spot if self.reference_spot is not None else float(spot)
        years = max(year_fraction(now, expiry), 0.0)
        value = smile_vols(
            self.params,
            float(strike),
            anchor,
            years,
            min_years=self.min_years,
            min_vol=self.min_vol,
            max_vol=self.max_vol,
        )
        return float(value)

    def greeks(self, instrument: Instrument, spot: float | Decimal, now: datetime) -> OptionGreeks:
        """Price and greeks (Deribit units) of one unit of ``instrument``'s underlying."""
        strike, right, expiry = option_terms(instrument)
        sigma = self.vol(strike, spot, expiry, now)
        return option_greeks(
            float(spot), float(strike), year_fraction(now, expiry), sigma, right is OptionRight.CALL
        )

    def quote(
        self, instrument: Instrument, spot: float | Decimal, now: datetime, spread_bps: float
    ) -> OptionQuote:
        """Bid, ask and mark for ``instrument`` around the surface's fair value.

        The mark is the model price rounded to the tick; bid and ask sit ``spread_bps / 2`` of the
        mark either side, at least one tick away from it, rounded outwards (bid down, ask up).
        A bid that would not be positive is 0 (nothing bid, as on a far wing).
        """
        if spread_bps < 0:
            raise ValueError(f"spread_bps must not be negative, got {spread_bps}")
        g = self.greeks(instrument, spot, now)
        tick = instrument.tick_size
        fair = Decimal(repr(g.price))
        mark = instrument.round_price(fair + tick / 2, Rounding.DOWN)
        half = max(fair * Decimal(repr(spread_bps)) / Decimal(20_000), tick)
        bid = max(instrument.round_price(fair - half, Rounding.DOWN), Decimal(0))
        ask = instrument.round_price(fair + half, Rounding.UP)
        return OptionQuote(bid=bid, ask=ask, mark=mark, greeks=g)


def option_terms(instrument: Instrument) -> tuple[Decimal, OptionRight, datetime]:
    """Strike, right and expiry of an option instrument; ``ValueError`` for anything else."""
    if (
        instrument.kind is not InstrumentKind.OPTION
        or instrument.strike is None
        or instrument.right is None
        or instrument.expiry is None
    ):
        raise ValueError(f"{instrument.symbol} is not an option")
    return instrument.strike, instrument.right, instrument.expiry


__all__ = [
    "DEFAULT_BTC_SMILE",
    "OptionQuote",
    "SmileParams",
    "VolSurface",
    "fit_smile",
    "option_terms",
    "smile_vols",
]
