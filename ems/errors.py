"""Error hierarchy of the EMS.

Venue errors are typed by what a caller may safely do next:

* ``RetryableVenueError``: nothing happened at the venue; the same idempotent call may be retried.
* ``SubmitOutcomeUnknown``: the request may or may not have reached the venue; the order is
  *in flight* and must be reconciled by client order id, never re-sent blindly.
* ``VenueRejected``: the venue refused the request; retrying the same request will fail again.
"""

from __future__ import annotations


class EmsError(Exception):
    """Base of every error the EMS raises on purpose."""


class InvalidOrder(EmsError):
    """An order breaks an instrument or business rule; the message names the rule.

    ``field`` names the request field at fault, when there is one, so the API can say so.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(EmsError):
    """An event does not apply to an order in its current state."""

    def __init__(self, entity: str, state: str, event: str) -> None:
        super().__init__(f"{entity}: event {event} is not allowed in state {state}")
        self.entity = entity
        self.state = state
        self.event = event


class Overfill(EmsError):
    """A fill would take an order past its quantity."""


class NotFound(EmsError):
    """A requested entity does not exist."""


class Conflict(EmsError):
    """A request conflicts with what is already stored (e.g. same client id, other body)."""


class VenueError(EmsError):
    """Base for errors coming from a venue, translated at the adapter edge."""

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class RetryableVenueError(VenueError):
    """Transient failure known not to have changed venue state (network down, 429, 5xx)."""


class RateLimited(RetryableVenueError):
    """The venue asked us to slow down."""


class VenueUnavailable(RetryableVenueError):
    """The venue cannot be reached or is in maintenance."""


class SubmitOutcomeUnknown(VenueError):
    """A submit timed out or lost its connection: the order is in flight until reconciled."""


class VenueRejected(VenueError):
    """The venue refused the request (insufficient balance, bad precision, post-only cross...)."""


class OrderNotFoundAtVenue(VenueError):
    """The venue does not know the order (by client order id)."""
