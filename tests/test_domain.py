"""Value types: instruments of every kind, precision and rounding direction, books, clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ems.clock import TestClock
from ems.domain import (
    BookLevel,
    Instrument,
    InstrumentKind,
    OptionRight,
    OrderBook,
    Rounding,
    Side,
    ensure_utc,
    round_to_step,
)
from ems.errors import InvalidOrder

EXPIRY = datetime(2024, 12, 27, 8, tzinfo=UTC)


def instrument(kind: InstrumentKind = InstrumentKind.SPOT, **extra: object) -> Instrument:
    fields: dict[str, object] = {
        "venue": "sim",
        "symbol": "BTC/USDT",
        "kind": kind,
        "base": "BTC",
        "quote": "USDT",
        "tick_size": Decimal("0.01"),
        "lot_size": Decimal("0.00001"),
        "min_qty": Decimal("0.00001"),
        "min_notional": Decimal("5"),
    }
    fields.update(extra)
    return Instrument(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        (InstrumentKind.SPOT, {}),
        (InstrumentKind.PERPETUAL, {"settle": "USDT", "contract_size": Decimal("0.001")}),
        (InstrumentKind.FUTURE, {"settle": "BTC", "expiry": EXPIRY}),
        (
            InstrumentKind.OPTION,
            {"expiry": EXPIRY, "strike": Decimal("50000"), "right": OptionRight.PUT},
        ),
    ],
)
def test_every_instrument_kind_the_desk_trades_can_be_described(
    kind: InstrumentKind, extra: dict[str, object]
) -> None:
    inst = instrument(kind, **extra)

    assert inst.kind is kind
    assert inst.round_qty(Decimal("0.123456789")) == Decimal("0.12345")


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        (InstrumentKind.FUTURE, {}, "needs an expiry"),
        (InstrumentKind.OPTION, {"expiry": EXPIRY}, "needs a strike and a right"),
        (InstrumentKind.SPOT, {"tick_size": Decimal(0)}, "tick_size must be positive"),
        (InstrumentKind.SPOT, {"min_notional": Decimal(-1)}, "must not be negative"),
    ],
)
def test_incomplete_instruments_are_refused(
    kind: InstrumentKind, extra: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        instrument(kind, **extra)


@pytest.mark.parametrize(
    ("value", "step", "rounding", "expected"),
    [
        ("61837.635", "0.01", Rounding.DOWN, "61837.63"),
        ("61837.635", "0.01", Rounding.UP, "61837.64"),
        ("-1.005", "0.01", Rounding.DOWN, "-1.01"),
        ("-1.005", "0.01", Rounding.UP, "-1.00"),
        ("0.5", "0.5", Rounding.UP, "0.5"),
    ],
)
def test_rounding_goes_in_the_direction_asked(
    value: str, step: str, rounding: Rounding, expected: str
) -> None:
    assert round_to_step(Decimal(value), Decimal(step), rounding) == Decimal(expected)


@given(st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("100000"), places=8))
def test_passive_price_never_becomes_more_aggressive(price: Decimal) -> None:
    inst = instrument()

    assert inst.passive_price(Side.BUY, price) <= price
    assert inst.passive_price(Side.SELL, price) >= price
    assert inst.passive_price(Side.BUY, price) % inst.tick_size == 0


def test_min_tradable_quantity_meets_min_notional_on_a_lot_multiple() -> None:
    inst = instrument()

    qty = inst.min_tradable_qty(Decimal("61837.64"))

    assert qty == Decimal("0.00009")  # 0.00008 BTC is 4.95 USDT: below the 5 USDT minimum
    assert inst.notional(qty, Decimal("61837.64")) >= inst.min_notional


@pytest.mark.parametrize(
    ("qty", "price", "message"),
    [
        ("0", "61000", "quantity must be positive"),
        ("0.000015", "61000", "not a multiple of the lot size"),
        ("0.001", "61000.005", "not a multiple of the tick"),
        ("0.00005", "61000", "notional .* is below the minimum 5"),
    ],
)
def test_order_validation_names_the_broken_rule(qty: str, price: str, message: str) -> None:
    with pytest.raises(InvalidOrder, match=message):
        instrument().validate_order(Decimal(qty), Decimal(price))


def test_book_sides_touches_and_mid() -> None:
    book = OrderBook(
        "sim",
        "BTC/USDT",
        EXPIRY,
        bids=(BookLevel(Decimal("100"), Decimal(1)),),
        asks=(BookLevel(Decimal("101"), Decimal(2)),),
    )

    assert book.mid == Decimal("100.5")
    assert book.touch(Side.BUY) == Decimal("100") and book.far_touch(Side.BUY) == Decimal("101")
    assert book.touch(Side.SELL) == Decimal("101") and book.far_touch(Side.SELL) == Decimal("100")


def test_naive_datetimes_are_refused_and_offsets_become_utc() -> None:
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2024, 1, 1))

    paris = datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))
    assert ensure_utc(paris) == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert ensure_utc(paris).tzinfo is UTC


def test_test_clock_moves_only_forward_when_told() -> None:
    clock = TestClock(EXPIRY)

    clock.advance(timedelta(seconds=2))

    assert clock.now() == EXPIRY + timedelta(seconds=2)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="cannot move the clock back"):
        clock.set(EXPIRY)
