"""Protective puts chosen and sized by policy (pure: every input, including ``now``, is passed in).

A :class:`PutPolicy` says how much of a long spot position puts must cover (by underlying
notional or by delta), how far out of the money and how long-dated they are bought, and when a
held put is rolled. :func:`choose_put` picks the contract to buy, :func:`needs_roll` flags puts
too close to expiry, and :func:`puts_needed` says how many contracts to buy (positive) or sell
(negative) to reach the coverage ratio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from ems.domain import Instrument, InstrumentKind, OptionRight, Rounding, round_to_step
from risk.greeks import option_greeks, year_fraction

CoverageMode = Literal["notional", "delta"]
MIN_TARGET_DELTA = 1e-4


class VolSource(Protocol):
    """Anything that gives an implied vol for a strike and expiry (e.g. ``VolSurface``)."""

    def vol(
        self, strike: float | Decimal, spot: float | Decimal, expiry: datetime, now: datetime
    ) -> float: ...


@dataclass(frozen=True, slots=True)
class PutPolicy:
    """How protective puts are chosen and sized.

    - ``coverage_mode``: ``"notional"`` counts underlying units covered (contracts × contract
      size: one BTC put per BTC held is full cover); ``"delta"`` counts the puts' delta, so
      ``coverage_ratio = 1`` neutralises the position's delta against small moves.
    - ``coverage_ratio``: target cover as a fraction of the spot position, 0 to 2.
    - ``strike_below_spot_pct``: buy strikes at or below ``spot × (1 − pct/100)``.
    - ``min_days_to_expiry``: buy only expiries at least this many days away.
    - ``roll_days_before_expiry``: a held put with this many days or fewer left is rolled; it
      must be below ``min_days_to_expiry`` or a freshly bought put would be due for a roll.
    """

    coverage_mode: CoverageMode = "notional"
    coverage_ratio: Decimal = Decimal(1)
    strike_below_spot_pct: Decimal = Decimal(10)
    min_days_to_expiry: int = 30
    roll_days_before_expiry: int = 7

    def __post_init__(self) -> None:
        if self.coverage_mode not in ("notional", "delta"):
            raise ValueError(
                f"coverage_mode must be 'notional' or 'delta', got {self.coverage_mode!r}"
            )
        if not Decimal(0) <= self.coverage_ratio <= Decimal(2):
            raise ValueError(f"coverage_ratio must be within 0..2, got {self.coverage_ratio}")
        if not Decimal(0) <= self.strike_below_spot_pct < Decimal(100):
            raise ValueError(
                f"strike_below_spot_pct must be within [0, 100), got {self.strike_below_spot_pct}"
            )
        if self.roll_days_before_expiry < 0:
            raise ValueError("roll_days_before_expiry must not be negative")
        if self.min_days_to_expiry <= self.roll_days_before_expiry:
            raise ValueError(
                f"min_days_to_expiry ({self.min_days_to_expiry}) must exceed "
                f"roll_days_before_expiry ({self.roll_days_before_expiry})"
            )


def _is_put(instrument: Instrument) -> bool:
    return (
        instrument.kind is InstrumentKind.OPTION
        and instrument.right is OptionRight.PUT
        and instrument.strike is not None
        and instrument.expiry is not None
    )


def strike_ceiling(spot: Decimal, policy: PutPolicy) -> Decimal:
    """The highest strike the policy buys: ``spot × (1 − pct/100)``."""
    return spot * (1 - policy.strike_below_spot_pct / 100)


def choose_put(
    listed: Sequence[Instrument],
    spot: Decimal,
    now: datetime,
    policy: PutPolicy,
    *,
    base: str | None = None,
) -> Instrument | None:
    """The listed put the policy buys, or ``None`` if none qualifies.

    Candidates are puts (on ``base`` if given) expiring at least ``min_days_to_expiry`` days after
    ``now`` with a strike at or below :func:`strike_ceiling`. The highest such strike wins (the
    nearest below the ceiling: the most protection the policy allows). Ties on strike go to the
    earliest expiry (the cheapest put still meeting the horizon), then to the smaller contract
    size, then to ``(venue, symbol)`` so the choice is deterministic. A strike above the ceiling
    is never chosen, even when nothing else is listed.
    """
    ceiling = strike_ceiling(spot, policy)
    horizon = now + timedelta(days=policy.min_days_to_expiry)
    candidates = [
        i
        for i in listed
        if _is_put(i)
        and (base is None or i.base == base)
        and i.expiry is not None
        and i.expiry >= horizon
        and i.strike is not None
        and i.strike <= ceiling
    ]
    if not candidates:
        return None

    def rank(i: Instrument) -> tuple[Decimal, datetime, Decimal, str, str]:
        assert i.strike is not None and i.expiry is not None
        return (-i.strike, i.expiry, i.contract_size, i.venue, i.symbol)

    return min(candidates, key=rank)


def needs_roll(put: Instrument, now: datetime, policy: PutPolicy) -> bool:
    """True once ``put`` has ``roll_days_before_expiry`` days or fewer left (or has expired)."""
    if put.expiry is None:
        raise ValueError(f"{put.symbol} has no expiry")
    return put.expiry - now <= timedelta(days=policy.roll_days_before_expiry)


def put_delta(put: Instrument, spot: Decimal, now: datetime, surface: VolSource) -> float:
    """Black–Scholes delta (negative) of one unit of ``put``'s underlying at the surface's vol."""
    if not _is_put(put):
        raise ValueError(f"{put.symbol} is not a put")
    assert put.strike is not None and put.expiry is not None
    sigma = surface.vol(put.strike, spot, put.expiry, now)
    g = option_greeks(float(spot), float(put.strike), year_fraction(now, put.expiry), sigma, False)
    return g.delta


def _book_items(
    put_book: Mapping[Instrument, Decimal] | Iterable[tuple[Instrument, Decimal]],
) -> list[tuple[Instrument, Decimal]]:
    if isinstance(put_book, Mapping):
        return list(put_book.items())
    return list(put_book)


def puts_needed(
    spot_position: Decimal,
    put_book: Mapping[Instrument, Decimal] | Iterable[tuple[Instrument, Decimal]],
    spot: Decimal,
    now: datetime,
    policy: PutPolicy,
    surface: VolSource,
    *,
    target: Instrument | None = None,
) -> Decimal:
    """Contracts of ``target`` to buy (positive) or sell (negative) to reach the coverage ratio.

    ``spot_position`` is the long position in underlying units (a short or flat one needs no
    puts); ``put_book`` maps each held put to its contracts (long positive). ``target`` is the
    put being traded, normally :func:`choose_put`'s answer; without it the largest holding not
    due for a roll is used, and with neither a ``ValueError`` is raised.

    Coverage is counted only on puts that are not due for a roll (:func:`needs_roll`): those are
    about to be sold, so their replacement is included in the answer. Notional mode counts
    ``contracts × contract_size``; delta mode counts ``contracts × contract_size × |delta|`` with
    each put's delta at the surface's vol. The result is rounded *up* to the target's lot size,
    so cover never ends below the ratio (the hedge invariant); a sell is therefore never larger
    than the excess.
    """
    items = _book_items(put_book)
    live = [(p, q) for p, q in items if not needs_roll(p, now, policy)]
    if target is None:
        held = [(q * p.contract_size, p.symbol, p) for p, q in live if q > 0]
        if not held:
            raise ValueError("puts_needed needs a target put when no live put is held")
        target = max(held, key=lambda h: (h[0], h[1]))[2]
    if not _is_put(target):
        raise ValueError(f"target {target.symbol} is not a put")

    wanted = max(spot_position, Decimal(0)) * policy.coverage_ratio
    if policy.coverage_mode == "notional":
        covered = sum((q * p.contract_size for p, q in live), Decimal(0))
        per_contract = target.contract_size
    else:
        covered = sum(
            (
                q * p.contract_size * Decimal(repr(abs(put_delta(p, spot, now, surface))))
                for p, q in live
            ),
            Decimal(0),
        )
        target_delta = abs(put_delta(target, spot, now, surface))
        if target_delta < MIN_TARGET_DELTA:
            raise ValueError(
                f"target {target.symbol} has delta {target_delta:.2e}: too far out of the money "
                "to cover by delta"
            )
        per_contract = target.contract_size * Decimal(repr(target_delta))
    contracts = (wanted - covered) / per_contract
    return round_to_step(contracts, target.lot_size, Rounding.UP)
