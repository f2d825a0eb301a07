"""Single-venue routing: send a slice where the opposite side of the book is best.

Pure: decides from book snapshots only. The smart order router (splitting across venues by
expected cost and learned impact) builds on this interface.
"""

from __future__ import annotations

from collections.abc import Mapping

from ems.domain import OrderBook, Side


def choose_venue(side: Side, books: Mapping[str, OrderBook]) -> str | None:
    """Venue whose far touch is best for ``side`` (lowest ask for a buy); ties by name.

    Venues with an empty opposite side are skipped; None when no venue can trade.
    """
    priced = [
        (book.far_touch(side), name)
        for name, book in sorted(books.items())
        if book.far_touch(side) is not None
    ]
    if not priced:
        return None
    if side is Side.BUY:
        return min(priced, key=lambda pair: (pair[0], pair[1]))[1]
    return max(priced, key=lambda pair: (pair[0], _reverse(pair[1])))[1]


def _reverse(name: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in name)
