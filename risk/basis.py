"""Basis and funding arithmetic for the hedge legs (pure, exact ``Decimal``).

Conventions:

* Basis is ``future − spot``: positive (contango) when the future trades above spot.
* Annualisation is simple (not compounded), over a 365-day year: a dated future's basis is
  scaled by ``365 days ÷ time to expiry``; a perpetual has no expiry, so its carry is the
  funding rate scaled by the number of funding intervals in a year.
* Funding sign, from *our* side: a position pays ``position × mark × rate`` where
  ``position`` is signed (long > 0, short < 0). With a positive rate longs pay and **shorts
  receive**; with a negative rate shorts pay. :func:`funding_payment` returns the cash *received*
  (positive = we receive, negative = we pay), in quote currency.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from ems.domain import ensure_utc

ZERO = Decimal(0)
BPS = Decimal(10_000)
HOURS_PER_YEAR = Decimal(365 * 24)
SECONDS_PER_YEAR = Decimal(365 * 24 * 3600)


def _positive(name: str, value: Decimal) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def basis_bps(future_price: Decimal, spot_price: Decimal) -> Decimal:
    """Basis in basis points of spot: ``(future − spot) ÷ spot × 10 000``."""
    _positive("future_price", future_price)
    _positive("spot_price", spot_price)
    return (future_price - spot_price) / spot_price * BPS


def annualised_basis(
    future_price: Decimal, spot_price: Decimal, expiry: datetime, now: datetime
) -> Decimal:
    """Simple annualised basis of a dated future, as a fraction (0.12 = 12 % a year).

    ``(future ÷ spot − 1) × 365 days ÷ (expiry − now)``. An expired future (``expiry ≤ now``)
    has no carry left to annualise and raises ``ValueError``. For perpetuals use
    :func:`annualised_funding`.
    """
    _positive("future_price", future_price)
    _positive("spot_price", spot_price)
    remaining = ensure_utc(expiry) - ensure_utc(now)
    if remaining <= timedelta(0):
        raise ValueError(f"the future expired at {expiry.isoformat()}; no basis to annualise")
    seconds = Decimal(remaining.days * 86_400 + remaining.seconds) + Decimal(
        remaining.microseconds
    ) / Decimal(1_000_000)
    return (future_price / spot_price - 1) * SECONDS_PER_YEAR / seconds


def annualised_funding(rate_per_interval: Decimal, interval_hours: Decimal | int) -> Decimal:
    """Simple annualised perpetual funding: ``rate × (365 × 24 ÷ interval_hours)``.

    0.01 % every 8 hours → 0.0001 × 1095 = 0.1095 (10.95 % a year).
    """
    hours = Decimal(interval_hours)
    _positive("interval_hours", hours)
    return rate_per_interval * HOURS_PER_YEAR / hours


def funding_payment(position_qty: Decimal, mark_price: Decimal, rate: Decimal) -> Decimal:
    """Cash received for one funding event (negative = paid), in quote currency.

    ``position_qty`` is signed in base units (long > 0, short < 0; convert contracts with the
    instrument's contract size first). Received = ``−position × mark × rate``: a short with a
    positive rate receives.
    """
    _positive("mark_price", mark_price)
    return -(position_qty * mark_price * rate)


@dataclass(frozen=True, slots=True)
class FundingAccrual:
    """Running funding total of one perpetual position, a value replaced on each event.

    - ``net``: total received minus total paid (quote currency; positive = income).
    - ``received`` / ``paid``: gross amounts, both ≥ 0.
    - ``events`` / ``last_at``: how many funding events were accrued and the latest one's time.

    Funding events are identified by their timestamp: accruing the same ``at`` again is a
    no-op (a replayed event is counted once); an event older than ``last_at`` raises.
    """

    net: Decimal = ZERO
    received: Decimal = ZERO
    paid: Decimal = ZERO
    events: int = 0
    last_at: datetime | None = None

    def accrue(
        self, position_qty: Decimal, mark_price: Decimal, rate: Decimal, at: datetime
    ) -> FundingAccrual:
        """The accrual after one funding event of ``rate`` at ``mark_price`` for the position."""
        at = ensure_utc(at)
        if self.last_at is not None:
            if at == self.last_at:
                return self
            if at < self.last_at:
                raise ValueError(
                    f"funding at {at.isoformat()} is older than the last accrued "
                    f"({self.last_at.isoformat()}); events must arrive in time order"
                )
        amount = funding_payment(position_qty, mark_price, rate)
        return replace(
            self,
            net=self.net + amount,
            received=self.received + max(amount, ZERO),
            paid=self.paid + max(-amount, ZERO),
            events=self.events + 1,
            last_at=at,
        )
