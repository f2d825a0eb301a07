"""Positions of linear perpetual futures, as the simulated venue keeps them.

A position is a signed quantity of contracts (positive long, negative short) with the average
price it was entered at. A fill in the direction of the position (or from flat) moves the entry
price to the quantity-weighted average; a fill against it closes contracts at the entry price and
realises ``closed * (fill price - entry) * contract_size`` for a long (the opposite for a short);
whatever exceeds the position opens a new one the other way at the fill price.

Initial margin is ``|qty| * entry * contract_size / leverage`` in the settle asset. Everything is
a ``Decimal``; nothing here touches balances (the venue does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ems.domain import ZERO, Side

_USDM_SAMPLE = Path(__file__).parent / "data" / "binance-usdm-btcusdt-20240808.gz"


def default_usdm_sample_path() -> Path:
    """The Binance USDⓈ-M BTCUSDT perpetual sample shipped with the package (about 6 minutes)."""
    return _USDM_SAMPLE


@dataclass(frozen=True, slots=True)
class PerpPosition:
    """One open position as reported by ``SimVenue.positions()``.

    ``qty`` is signed (negative: short). ``unrealised_pnl`` is valued at ``mark_price`` (``None``
    when the venue has no book to mark against; the PnL is then zero). ``margin`` is the initial
    margin the position holds locked; ``realised_pnl`` sums what closing trades have realised so
    far on this symbol (fees and funding excluded).
    """

    symbol: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal | None
    unrealised_pnl: Decimal
    margin: Decimal
    realised_pnl: Decimal

    @property
    def side(self) -> Side | None:
        """BUY for a long, SELL for a short, ``None`` when flat."""
        if self.qty == 0:
            return None
        return Side.BUY if self.qty > 0 else Side.SELL


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding settlement: ``amount`` moved the settle balance (negative: paid)."""

    symbol: str
    at: datetime
    rate: Decimal
    mark_price: Decimal
    position: Decimal
    amount: Decimal


@dataclass(slots=True)
class PositionState:
    """The mutable position of one symbol (see the module for the rules)."""

    contract_size: Decimal = Decimal(1)
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    realised_pnl: Decimal = ZERO

    def closable(self, side: Side) -> Decimal:
        """How much an order of ``side`` can trade before the position would flip (0: none)."""
        if self.qty == 0 or (self.qty > 0) == (side is Side.BUY):
            return ZERO
        return abs(self.qty)

    def apply_fill(self, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Trade ``qty`` contracts at ``price``; return the PnL this realises."""
        if qty <= 0 or price <= 0:
            raise ValueError("a fill needs a positive quantity and price")
        closed = min(qty, self.closable(side))
        realised = ZERO
        if closed:
            direction = 1 if self.qty > 0 else -1
            realised = closed * (price - self.entry_price) * direction * self.contract_size
            self.qty += side.sign * closed
            self.realised_pnl += realised
            if self.qty == 0:
                self.entry_price = ZERO
        opened = qty - closed
        if opened:
            size = abs(self.qty)
            self.entry_price = (size * self.entry_price + opened * price) / (size + opened)
            self.qty += side.sign * opened
        return realised

    def margin(self, leverage: Decimal) -> Decimal:
        """Initial margin the position holds: its notional at entry over ``leverage``."""
        return abs(self.qty) * self.entry_price * self.contract_size / leverage

    def unrealised(self, mark: Decimal | None) -> Decimal:
        """PnL of closing the whole position at ``mark`` (zero without a mark)."""
        if mark is None or self.qty == 0:
            return ZERO
        return self.qty * (mark - self.entry_price) * self.contract_size

    def report(self, symbol: str, mark: Decimal | None, leverage: Decimal) -> PerpPosition:
        """The public snapshot of this position."""
        return PerpPosition(
            symbol=symbol,
            qty=self.qty,
            entry_price=self.entry_price,
            mark_price=mark,
            unrealised_pnl=self.unrealised(mark),
            margin=self.margin(leverage),
            realised_pnl=self.realised_pnl,
        )
