"""Pre-trade preview: what a proposed parent order is expected to cost before it is sent.

``ParentOrderManager.preview(new)`` answers with a :class:`PreviewResult`: per venue, the cost of
doing the whole parent there alone, and in total the cost of the router's split across venues.
Costs are all-in (fees, walking the book, expected impact), signed so that positive is a cost
for our side, in basis points of the decision mid and in quote currency. Nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ems.domain import Side


@dataclass(frozen=True, slots=True)
class VenuePreview:
    """One venue's part of a preview.

    ``expected_cost_bps`` and ``expected_cost`` are for the whole parent on this venue alone
    (None when the venue cannot take it: not tradable, no book); ``allocated_qty`` is what the
    router's split gives this venue (zero when none).
    """

    venue: str
    tradable: bool
    reason: str
    best_bid: Decimal | None
    best_ask: Decimal | None
    expected_cost_bps: Decimal | None
    expected_cost: Decimal | None
    allocated_qty: Decimal


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """The expected cost of a proposed parent: in total (the router's split) and per venue.

    ``mid`` is the consolidated mid the costs are measured from; ``total_expected_cost_bps``
    and ``total_expected_cost`` (quote currency) are None when no venue could take any of it.
    """

    symbol: str
    side: Side
    quantity: Decimal
    mid: Decimal | None
    total_expected_cost_bps: Decimal | None
    total_expected_cost: Decimal | None
    venues: tuple[VenuePreview, ...]
