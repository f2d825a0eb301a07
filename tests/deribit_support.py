"""Reading the recorded Deribit options capture (``shared/data/market/deribit-options-ws-*.txt``).

Each line after the header is ``<local ts>: <raw JSON-RPC message>``; ticker notifications
(``params.channel`` starting with ``ticker.``) carry Deribit's mark price (in coin units), mark
implied volatility (in percent), the underlying price (the forward of the option's expiry), the
index price and Deribit's own greeks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from ems.domain import Instrument, InstrumentKind, OptionRight
from tests.shared_data import MARKET

SHARED_MARKET = MARKET
DERIBIT_FILE = SHARED_MARKET / "deribit-options-ws-20210722.txt"

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
DERIBIT_EXPIRY_HOUR_UTC = 8


@dataclass(frozen=True, slots=True)
class OptionName:
    """The parts of a Deribit option name such as ``BTC-31DEC21-34000-P``."""

    underlying: str
    expiry: datetime
    strike: Decimal
    right: OptionRight


def parse_option_name(name: str) -> OptionName:
    """Split a Deribit option name; the expiry is 08:00 UTC on the named date."""
    try:
        underlying, date, strike, right = name.split("-")
        day, month, year = int(date[:-5]), _MONTHS[date[-5:-2]], 2000 + int(date[-2:])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"not a Deribit option name: {name!r}") from exc
    if right not in ("C", "P"):
        raise ValueError(f"not a Deribit option name: {name!r} (right must be C or P)")
    expiry = datetime(year, month, day, DERIBIT_EXPIRY_HOUR_UTC, tzinfo=UTC)
    return OptionName(
        underlying=underlying,
        expiry=expiry,
        strike=Decimal(strike),
        right=OptionRight.CALL if right == "C" else OptionRight.PUT,
    )


@dataclass(frozen=True, slots=True)
class DeribitTicker:
    """One ticker notification: Deribit's marks and greeks for one option at one instant."""

    instrument_name: str
    option: OptionName
    timestamp: datetime
    underlying_price: float
    index_price: float
    mark_price: float  # in coin units (BTC or ETH)
    mark_iv: float  # percent
    interest_rate: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float

    @property
    def is_call(self) -> bool:
        return self.option.right is OptionRight.CALL

    @property
    def mark_price_usd(self) -> float:
        """Deribit's mark converted to USD at the index price."""
        return self.mark_price * self.index_price

    def instrument(self) -> Instrument:
        """The option as a domain instrument (Deribit-like precision, USD-quoted)."""
        return Instrument(
            venue="deribit",
            symbol=self.instrument_name,
            kind=InstrumentKind.OPTION,
            base=self.option.underlying,
            quote="USD",
            tick_size=Decimal("0.01"),
            lot_size=Decimal("0.1"),
            min_qty=Decimal("0.1"),
            min_notional=Decimal(0),
            expiry=self.option.expiry,
            strike=self.option.strike,
            right=self.option.right,
        )


def parse_capture(lines: list[str]) -> list[DeribitTicker]:
    """Every ticker notification in a capture's lines, in file order."""
    tickers: list[DeribitTicker] = []
    for line in lines:
        _, sep, payload = line.partition(": ")
        if not sep or not payload.startswith("{"):
            continue
        message = json.loads(payload)
        params = message.get("params") or {}
        if not str(params.get("channel", "")).startswith("ticker."):
            continue
        data = params["data"]
        greeks = data["greeks"]
        tickers.append(
            DeribitTicker(
                instrument_name=data["instrument_name"],
                option=parse_option_name(data["instrument_name"]),
                timestamp=datetime.fromtimestamp(data["timestamp"] / 1000, tz=UTC),
                underlying_price=float(data["underlying_price"]),
                index_price=float(data["index_price"]),
                mark_price=float(data["mark_price"]),
                mark_iv=float(data["mark_iv"]),
                interest_rate=float(data["interest_rate"]),
                delta=float(greeks["delta"]),
                gamma=float(greeks["gamma"]),
                vega=float(greeks["vega"]),
                theta=float(greeks["theta"]),
                rho=float(greeks["rho"]),
            )
        )
    return tickers


@cache
def _load(path: Path) -> tuple[DeribitTicker, ...]:
    return tuple(parse_capture(path.read_text().splitlines()))


def deribit_tickers() -> list[DeribitTicker]:
    """All recorded Deribit tickers; skips the calling test if the shared data is missing."""
    if not DERIBIT_FILE.is_file():
        pytest.skip(f"recorded Deribit capture not found at {DERIBIT_FILE} (shared data missing)")
    return list(_load(DERIBIT_FILE))
