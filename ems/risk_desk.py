"""The manager's risk desk: the state the pure pre-trade checks need, kept from our own fills.

It keeps signed positions per asset (spot long positive, a short perpetual negative, by the
contract size of each instrument), the notional traded since UTC midnight, the trading state of
each venue and of the whole desk (ACTIVE / REDUCING / HALTED), and a rolling order-rate window per
venue. ``check`` turns a proposed child into a ``ChildIntent`` and a ``RiskContext`` and asks
``risk.checks.check_child`` for a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from ems.domain import ZERO, Fill, Instrument, InstrumentKind, OrderBook, Side
from risk.checks import ChildIntent, RiskContext, check_child
from risk.limits import DEFAULT_LIMITS, RiskLimits
from risk.throttle import OrderRateWindow, record
from risk.types import TradingState, Verdict


class RiskDesk:
    """Positions, daily notional, trading states and order rates for pre-trade checks."""

    def __init__(self, limits: RiskLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.global_state = TradingState.ACTIVE
        self.venue_states: dict[str, TradingState] = {}
        self._positions: dict[str, Decimal] = {}
        self._holdings: dict[tuple[str, str], tuple[Instrument, Decimal]] = {}
        self._day: tuple[int, int, int] | None = None
        self._day_notional = ZERO
        self._rates: dict[str, OrderRateWindow] = {}

    @property
    def positions(self) -> Mapping[str, Decimal]:
        """Signed net position per asset in base units, from our own fills."""
        return dict(self._positions)

    @property
    def holdings(self) -> list[tuple[Instrument, Decimal]]:
        """Signed quantity held of each instrument (in its own units: contracts for
        derivatives), from our own fills; flat instruments are left out."""
        return [(inst, qty) for inst, qty in self._holdings.values() if qty != 0]

    def day_notional(self, now: datetime) -> Decimal:
        return self._day_notional if self._day == _day_of(now) else ZERO

    def state_of(self, venue: str) -> TradingState:
        return self.venue_states.get(venue, TradingState.ACTIVE)

    def set_state(self, state: TradingState, venue: str | None = None) -> None:
        """Set the trading state of one venue, or of the whole desk when ``venue`` is None."""
        if venue is None:
            self.global_state = state
        else:
            self.venue_states[venue] = state

    def rebuild(
        self,
        fills: Iterable[Fill],
        instruments: Mapping[tuple[str, str], Instrument],
        now: datetime,
    ) -> None:
        """Recompute positions and today's notional from every recorded fill (after a restart)."""
        self._positions.clear()
        self._holdings.clear()
        self._day, self._day_notional = _day_of(now), ZERO
        for fill in fills:
            instrument = instruments.get((fill.venue, fill.symbol))
            if instrument is not None:
                self.on_fill(fill, instrument, count_notional=_day_of(fill.ts) == self._day)

    def on_fill(self, fill: Fill, instrument: Instrument, *, count_notional: bool = True) -> None:
        """Account one of our fills."""
        held = self._holdings.get(instrument.key, (instrument, ZERO))[1]
        self._holdings[instrument.key] = (instrument, held + fill.side.sign * fill.qty)
        if instrument.kind is not InstrumentKind.OPTION:  # an option's exposure is its delta
            change = fill.side.sign * fill.qty * instrument.contract_size
            self._positions[instrument.base] = self._positions.get(instrument.base, ZERO) + change
        if count_notional:
            day = _day_of(fill.ts)
            if day != self._day:
                self._day, self._day_notional = day, ZERO
            self._day_notional += fill.qty * fill.price * instrument.contract_size

    def check(
        self,
        instrument: Instrument,
        side: Side,
        qty: Decimal,
        price: Decimal,
        book: OrderBook,
        consensus_mid: Decimal | None,
        now: datetime,
        *,
        reduce_only: bool = False,
        is_hedge: bool = False,
    ) -> Verdict:
        """The pre-trade verdict on one proposed child."""
        intent = ChildIntent(
            venue=instrument.venue,
            symbol=instrument.symbol,
            kind=instrument.kind,
            base=instrument.base,
            quote=instrument.quote,
            side=side,
            qty=qty,
            price=price,
            contract_size=instrument.contract_size,
            reduce_only=reduce_only,
            is_hedge=is_hedge,
        )
        context = RiskContext(
            now=now,
            rate_window=self._rates.get(instrument.venue) or OrderRateWindow(instrument.venue),
            consensus_mid=consensus_mid,
            book_ts=book.ts,
            positions=self._positions,
            day_notional=self.day_notional(now),
            venue_state=self.venue_states.get(instrument.venue, TradingState.ACTIVE),
            global_state=self.global_state,
        )
        return check_child(intent, context, self.limits)

    def order_sent(self, venue: str, now: datetime) -> None:
        """Count an order against the venue's rate window."""
        window = self._rates.get(venue) or OrderRateWindow(venue)
        self._rates[venue] = record(window, now, self.limits)


def _day_of(moment: datetime) -> tuple[int, int, int]:
    return (moment.year, moment.month, moment.day)


def limits_to_json(limits: RiskLimits) -> str:
    """The limits as JSON text (decimals as strings, durations in seconds)."""
    return json.dumps(
        {
            "max_child_notional": str(limits.max_child_notional),
            "max_parent_notional": str(limits.max_parent_notional),
            "max_daily_notional": str(limits.max_daily_notional),
            "max_position": {asset: str(v) for asset, v in sorted(limits.max_position.items())},
            "price_collar_bps": str(limits.price_collar_bps),
            "option_collar_bps": str(limits.option_collar_bps),
            "max_book_age_s": limits.max_book_age.total_seconds(),
            "max_orders_per_window": limits.max_orders_per_window,
            "order_window_s": limits.order_window.total_seconds(),
        },
        sort_keys=True,
    )


def limits_from_json(text: str) -> RiskLimits:
    """Inverse of ``limits_to_json``."""
    raw = json.loads(text)
    return RiskLimits(
        max_child_notional=Decimal(raw["max_child_notional"]),
        max_parent_notional=Decimal(raw["max_parent_notional"]),
        max_daily_notional=Decimal(raw["max_daily_notional"]),
        max_position={asset: Decimal(v) for asset, v in raw["max_position"].items()},
        price_collar_bps=Decimal(raw["price_collar_bps"]),
        option_collar_bps=Decimal(raw.get("option_collar_bps", "1500")),  # absent before 0005
        max_book_age=timedelta(seconds=raw["max_book_age_s"]),
        max_orders_per_window=int(raw["max_orders_per_window"]),
        order_window=timedelta(seconds=raw["order_window_s"]),
    )
