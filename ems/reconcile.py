"""The one reconciliation path, shared by start-up recovery and the running manager.

A child whose venue state we may not know (never acknowledged, or submitted with an unknown
outcome) is looked up at the venue by its client order id. What the venue says is turned into
ordinary child events; a child the venue does not know after a grace period is declared never
to have arrived, so its quantity returns to the parent and a *new* child (new id) may take it.
Nothing is ever re-sent under the same id.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ems.errors import OrderNotFoundAtVenue, RetryableVenueError, SubmitOutcomeUnknown
from ems.events import (
    ChildAccepted,
    ChildCancelled,
    ChildEvent,
    ChildExpired,
    ChildFilled,
    ChildRejected,
)
from ems.orders import ChildOrder, ChildStatus
from ems.ports import VenueOrderState, VenueOrderStatus, VenuePort

NOT_AT_VENUE = "not found at the venue after the in-flight grace period"


def events_from_venue_state(
    child: ChildOrder, state: VenueOrderState, now: datetime
) -> list[ChildEvent]:
    """Events that bring ``child`` to what the venue reports; fills already known are skipped."""
    cid = child.client_order_id
    if state.status is VenueOrderStatus.REJECTED:
        if child.status.outcome_unknown:
            return [ChildRejected(ts=now, client_order_id=cid, reason=state.reason or "rejected")]
        return []
    events: list[ChildEvent] = []
    if child.status.outcome_unknown:
        events.append(
            ChildAccepted(ts=now, client_order_id=cid, venue_order_id=state.venue_order_id)
        )
    filled = child.filled_qty
    for fill in state.fills:
        if fill.trade_id not in child.trade_ids:
            events.append(ChildFilled.of(fill))
            filled += fill.qty
    if filled < child.qty and not child.is_terminal:
        if state.status is VenueOrderStatus.CANCELLED:
            events.append(ChildCancelled(ts=now, client_order_id=cid, reason=state.reason))
        elif state.status is VenueOrderStatus.EXPIRED:
            events.append(ChildExpired(ts=now, client_order_id=cid))
    return events


async def reconcile_child(
    child: ChildOrder, venue: VenuePort, now: datetime, grace: timedelta
) -> list[ChildEvent]:
    """Ask the venue about ``child`` by client id and return the events to apply.

    Returns no events when the venue cannot be asked right now; the next step tries again.
    """
    try:
        state = await venue.fetch_order(child.client_order_id, child.symbol)
    except OrderNotFoundAtVenue:
        since = child.submitted_at or child.created_at
        if child.status.outcome_unknown and now - since >= grace:
            return [
                ChildRejected(ts=now, client_order_id=child.client_order_id, reason=NOT_AT_VENUE)
            ]
        if child.status is ChildStatus.PENDING_CANCEL and now - child.updated_at >= grace:
            return [
                ChildCancelled(ts=now, client_order_id=child.client_order_id, reason=NOT_AT_VENUE)
            ]
        return []
    except (RetryableVenueError, SubmitOutcomeUnknown):
        return []
    return events_from_venue_state(child, state, now)
