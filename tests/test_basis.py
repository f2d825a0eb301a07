"""Basis and funding arithmetic, checked against hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from risk.basis import (
    FundingAccrual,
    annualised_basis,
    annualised_funding,
    basis_bps,
    funding_payment,
)

D = Decimal
T0 = datetime(2025, 11, 20, 8, 0, tzinfo=UTC)


def test_basis_bps_contango_and_backwardation() -> None:
    assert basis_bps(D("101000"), D("100000")) == D(100)
    assert basis_bps(D("99500"), D("100000")) == D(-50)
    assert basis_bps(D("60000"), D("60000")) == 0


def test_basis_bps_refuses_non_positive_prices() -> None:
    with pytest.raises(ValueError, match="spot_price must be positive"):
        basis_bps(D(1), D(0))
    with pytest.raises(ValueError, match="future_price must be positive"):
        basis_bps(D(-1), D(1))


def test_annualised_basis_of_a_dated_future() -> None:
    # 2 % premium with 73 days (a fifth of a year) left: 10 % a year, simple.
    assert annualised_basis(D(102), D(100), T0 + timedelta(days=73), T0) == D("0.1")
    # Backwardation of 0.5 % with half a year (182.5 days) left: -1 % a year.
    half_year = T0 + timedelta(days=182, hours=12)
    assert annualised_basis(D("99.5"), D(100), half_year, T0) == D("-0.01")


def test_annualised_basis_counts_seconds_exactly() -> None:
    # 1 bp over one hour: 0.0001 × 8760 hours a year.
    assert annualised_basis(D("100.01"), D(100), T0 + timedelta(hours=1), T0) == D("0.876")


def test_annualised_basis_refuses_expired_and_naive() -> None:
    with pytest.raises(ValueError, match="expired"):
        annualised_basis(D(101), D(100), T0, T0)
    with pytest.raises(ValueError, match="naive"):
        annualised_basis(D(101), D(100), datetime(2026, 3, 27), T0)


def test_annualised_funding() -> None:
    assert annualised_funding(D("0.0001"), 8) == D("0.1095")  # 0.01 % every 8 h
    assert annualised_funding(D("-0.00005"), D(1)) == D("-0.438")  # hourly, negative
    with pytest.raises(ValueError, match="interval_hours"):
        annualised_funding(D("0.0001"), 0)


def test_funding_sign_convention_shorts_receive_positive_funding() -> None:
    # Short 2 BTC at mark 50 000, rate +0.01 %: 2 × 50 000 × 0.0001 = 10 received.
    assert funding_payment(D(-2), D(50000), D("0.0001")) == D(10)
    assert funding_payment(D(2), D(50000), D("0.0001")) == D(-10)  # longs pay
    assert funding_payment(D(-2), D(50000), D("-0.0001")) == D(-10)  # negative rate: shorts pay
    assert funding_payment(D(0), D(50000), D("0.0001")) == 0


def test_funding_accrual_sums_gross_and_net_and_dedupes_by_time() -> None:
    accrual = FundingAccrual()
    accrual = accrual.accrue(D(-10), D(60000), D("0.0001"), T0)  # +60
    accrual = accrual.accrue(D(-10), D(61000), D("-0.00002"), T0 + timedelta(hours=8))  # -12.2
    assert accrual.net == D("47.8")
    assert accrual.received == D(60)
    assert accrual.paid == D("12.2")
    assert accrual.events == 2
    assert accrual.last_at == T0 + timedelta(hours=8)
    # The same funding event replayed is counted once.
    assert accrual.accrue(D(-10), D(61000), D("-0.00002"), T0 + timedelta(hours=8)) is accrual
    with pytest.raises(ValueError, match="time order"):
        accrual.accrue(D(-10), D(60000), D("0.0001"), T0 + timedelta(hours=4))


def test_funding_accrual_is_immutable() -> None:
    accrual = FundingAccrual()
    with pytest.raises(AttributeError):
        accrual.net = D(1)  # type: ignore[misc]
