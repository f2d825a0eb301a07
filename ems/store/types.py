"""Column types that keep money exact and time zone-aware on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, Text, TypeDecorator

DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18


def canonical_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing fractional zeros and never in exponent form (``1E+2`` -> 100).

    Built from the digit tuple so no decimal context can round it.
    """
    if not value.is_finite():
        raise ValueError(f"cannot store the non-finite decimal {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return Decimal(0)
    digit_list = list(digits)
    if exponent > 0:
        digit_list.extend([0] * exponent)
        exponent = 0
    while exponent < 0 and digit_list[-1] == 0:
        digit_list.pop()
        exponent += 1
    return Decimal((sign, tuple(digit_list), exponent))


class ExactDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` stored without loss: ``NUMERIC(38, 18)`` on PostgreSQL, canonical text on
    SQLite. Values PostgreSQL could not hold exactly (more than 18 decimal places or 20 integer
    digits) are refused on every backend rather than rounded; floats are refused too."""

    impl = Numeric(DECIMAL_PRECISION, DECIMAL_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
        number = canonical_decimal(Decimal(value))
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > DECIMAL_SCALE:
            raise ValueError(
                f"decimal {number} has {-exponent} decimal places; at most {DECIMAL_SCALE} "
                "are stored exactly"
            )
        if len(number.as_tuple().digits) + exponent > DECIMAL_PRECISION - DECIMAL_SCALE:
            raise ValueError(
                f"decimal {number} has more than {DECIMAL_PRECISION - DECIMAL_SCALE} integer digits"
            )
        return format(number, "f") if dialect.name == "sqlite" else number

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"the database returned the float {value!r} for an exact decimal")
        return canonical_decimal(Decimal(value))


class RoundedDecimal(ExactDecimal):
    """A computed ``Decimal`` (a sum of ratios, a statistic) rounded half-even to 18 decimal places
    before it is stored, instead of being refused like ``ExactDecimal`` would.

    For figures that are not money and may carry more places than any database holds, e.g.
    ``Decimal(1) / 3``. Values with more than 20 integer digits are still refused.
    """

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, Decimal) and value.is_finite():
            value = round_to_scale(value)
        return super().process_bind_param(value, dialect)


_SCALE = Decimal(1).scaleb(-DECIMAL_SCALE)
_WIDE = Context(prec=DECIMAL_PRECISION + DECIMAL_SCALE)  # quantize never runs out of digits


def round_to_scale(value: Decimal) -> Decimal:
    """``value`` rounded half-even to the 18 decimal places the store holds (values with fewer
    places are returned unchanged)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= -DECIMAL_SCALE:
        return value
    return value.quantize(_SCALE, rounding=ROUND_HALF_EVEN, context=_WIDE)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime``: ``timestamptz`` on PostgreSQL, fixed-width ISO-8601 text with
    offset on SQLite (so text order is time order). Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused; use aware UTC")
        moment = value.astimezone(UTC)
        return moment.isoformat(timespec="microseconds") if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            raise ValueError(f"the database returned the naive datetime {moment.isoformat()}")
        return moment.astimezone(UTC)
