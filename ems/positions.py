"""Positions from our own fills reconciled against what each venue reports.

Derivatives (perpetuals, futures, options) are compared contract for contract with the venue's
reported position. Spot is compared through balances: a venue balance also holds what was there
before our first fill, so the first comparison of each (venue, asset) records that *offset* and
later ones check that the balance moved exactly as our fills say. A difference is a *break* only
when it is larger than the instrument's lot and is seen on two consecutive checks, so a fill the
venue has settled but not yet reported to us does not raise a false alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from ems.domain import ZERO, Instrument, InstrumentKind
from ems.errors import VenueError
from ems.ports import VenuePort

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PositionCheck:
    """One line of a reconciliation: ours against the venue's, and whether they agree."""

    venue: str
    item: str  # a symbol (derivatives) or an asset (spot balances)
    kind: str  # "derivative" | "option" | "spot_balance"
    ours: Decimal
    reported: Decimal
    offset: Decimal  # spot: the balance held apart from our fills, fixed at the first check
    tolerance: Decimal
    checked_at: datetime
    suspect: bool = False  # differs now; a break once it differs on two checks running
    is_break: bool = False

    @property
    def difference(self) -> Decimal:
        return self.reported - self.ours - self.offset


@dataclass(frozen=True, slots=True)
class VenueReport:
    """What one venue says it holds: balances (total per asset) and derivative positions."""

    balances: Mapping[str, Decimal]
    positions: Mapping[str, Decimal] | None  # signed contracts per symbol; None: not reported


def reconcile(
    venue: str,
    holdings: Iterable[tuple[Instrument, Decimal]],
    listed: Mapping[str, Instrument],
    report: VenueReport,
    offsets: dict[tuple[str, str], Decimal],
    previous: Mapping[tuple[str, str], PositionCheck],
    now: datetime,
) -> list[PositionCheck]:
    """Compare our holdings on ``venue`` with its report; ``offsets`` is updated in place."""
    ours_by_symbol: dict[str, Decimal] = {}
    spot_by_asset: dict[str, Decimal] = {}
    for held, qty in holdings:
        if held.venue != venue:
            continue
        if held.kind is InstrumentKind.SPOT:
            spot_by_asset[held.base] = spot_by_asset.get(held.base, ZERO) + qty
        else:
            ours_by_symbol[held.symbol] = qty
    checks: list[PositionCheck] = []
    if report.positions is not None:
        symbols = set(ours_by_symbol) | {s for s, q in report.positions.items() if q != 0}
        for symbol in sorted(symbols):
            instrument = listed.get(symbol)
            is_option = instrument is not None and instrument.kind is InstrumentKind.OPTION
            kind = "option" if is_option else "derivative"
            tolerance = instrument.lot_size / 2 if instrument else Decimal("1e-8")
            checks.append(
                _check(
                    venue,
                    symbol,
                    kind,
                    ours_by_symbol.get(symbol, ZERO),
                    report.positions.get(symbol, ZERO),
                    ZERO,
                    tolerance,
                    previous,
                    now,
                )
            )
    spot_lots = {i.base: i.lot_size for i in listed.values() if i.kind is InstrumentKind.SPOT}
    for asset in sorted(spot_lots):
        ours = spot_by_asset.get(asset, ZERO)
        reported = report.balances.get(asset, ZERO)
        offset = offsets.setdefault((venue, asset), reported - ours)
        checks.append(
            _check(
                venue,
                asset,
                "spot_balance",
                ours,
                reported,
                offset,
                spot_lots[asset] / 2,
                previous,
                now,
            )
        )
    return checks


def _check(
    venue: str,
    item: str,
    kind: str,
    ours: Decimal,
    reported: Decimal,
    offset: Decimal,
    tolerance: Decimal,
    previous: Mapping[tuple[str, str], PositionCheck],
    now: datetime,
) -> PositionCheck:
    suspect = abs(reported - ours - offset) > tolerance
    before = previous.get((venue, item))
    is_break = suspect and before is not None and before.suspect
    return PositionCheck(
        venue, item, kind, ours, reported, offset, tolerance, now, suspect, is_break
    )


async def venue_report(venue: VenuePort) -> VenueReport:
    """A venue's balances and, when it reports them, its derivative positions in contracts."""
    balances = {asset: b.total for asset, b in (await venue.balances()).items()}
    fetch = getattr(venue, "positions", None)
    if fetch is None:
        return VenueReport(balances, None)
    positions = {symbol: getattr(value, "qty", value) for symbol, value in (await fetch()).items()}
    return VenueReport(balances, positions)


class PositionReconciler:
    """Keeps the spot offsets and the last check of every (venue, item) between runs."""

    def __init__(self, interval: timedelta) -> None:
        self.interval = interval
        self.checks: dict[tuple[str, str], PositionCheck] = {}
        self.checked_at: datetime | None = None
        self._offsets: dict[tuple[str, str], Decimal] = {}

    def due(self, now: datetime) -> bool:
        return self.checked_at is None or now - self.checked_at >= self.interval

    async def run(
        self,
        venues: Mapping[str, VenuePort],
        holdings: list[tuple[Instrument, Decimal]],
        now: datetime,
    ) -> tuple[list[PositionCheck], list[str]]:
        """Check every venue; return the checks and a description of each *new* break."""
        self.checked_at = now
        checks: list[PositionCheck] = []
        for name, venue in venues.items():
            try:
                report = await venue_report(venue)
            except VenueError as exc:
                log.warning("positions of %s not reconciled: %s", name, exc)
                continue
            listed = venue.instruments()
            checks += reconcile(name, holdings, listed, report, self._offsets, self.checks, now)
        breaks: list[str] = []
        for check in checks:
            key = (check.venue, check.item)
            was_break = key in self.checks and self.checks[key].is_break
            self.checks[key] = check
            if check.is_break and not was_break:
                held = f" (+ {check.offset} held before)" if check.offset else ""
                breaks.append(
                    f"{check.venue} reports {check.reported} {check.item} where our fills give "
                    f"{check.ours}{held}: a difference of {check.difference}"
                )
        return checks, breaks
