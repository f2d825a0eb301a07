"""Pre-trade risk limits: one frozen, validated value the checks read.

Every money or quantity limit is an exact ``Decimal``; notional limits are in the desk's quote
currency (USDT in the default configuration). A float is refused rather than silently converted,
because ``Decimal(0.1)`` is not ``Decimal("0.1")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType


def _exact(name: str, value: object) -> Decimal:
    """Return ``value`` as a finite Decimal; ints are exact, floats and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(
            f"{name} must be a Decimal (for example Decimal('50000')), "
            f"got {type(value).__name__} {value!r}"
        )
    exact = Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"{name} must be a finite number, got {exact}")
    return exact


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits every parent and child order is checked against.

    - ``max_child_notional``: largest single child order, qty × price × contract size (quote).
    - ``max_parent_notional``: largest parent order, quantity × reference price (quote).
    - ``max_daily_notional``: most quote currency traded per day across all venues.
    - ``max_position``: largest absolute net position per base asset, in base units, across
      venues and instruments (spot long plus perpetual short net out). An asset that is not
      listed may not be traded at all.
    - ``price_collar_bps``: a buy priced above mid × (1 + collar) or a sell priced below
      mid × (1 − collar) is refused (1 bp = 0.01 %).
    - ``max_book_age``: market data older than this is stale and blocks trading.
    - ``max_orders_per_window`` / ``order_window``: per-venue order-rate throttle.
    - ``option_collar_bps``: the collar for options, whose books are far wider than spot's
      (a 4 % spread is usual): measured against the option's own consensus mid.
    """

    max_child_notional: Decimal
    max_parent_notional: Decimal
    max_daily_notional: Decimal
    max_position: Mapping[str, Decimal] = field(hash=False)
    price_collar_bps: Decimal
    max_book_age: timedelta
    max_orders_per_window: int
    order_window: timedelta
    option_collar_bps: Decimal = Decimal(1500)

    def __post_init__(self) -> None:
        for name in ("max_child_notional", "max_parent_notional", "max_daily_notional"):
            value = _exact(name, getattr(self, name))
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
            object.__setattr__(self, name, value)
        if self.max_child_notional > self.max_parent_notional:
            raise ValueError(
                f"max_child_notional {self.max_child_notional} must not exceed "
                f"max_parent_notional {self.max_parent_notional}"
            )
        if self.max_parent_notional > self.max_daily_notional:
            raise ValueError(
                f"max_parent_notional {self.max_parent_notional} must not exceed "
                f"max_daily_notional {self.max_daily_notional}"
            )

        if not isinstance(self.max_position, Mapping):
            raise TypeError("max_position must map an asset (e.g. 'BTC') to a Decimal limit")
        positions: dict[str, Decimal] = {}
        for asset, limit in self.max_position.items():
            if not isinstance(asset, str) or not asset.strip():
                raise ValueError(f"max_position has an empty or non-text asset name {asset!r}")
            value = _exact(f"max_position[{asset!r}]", limit)
            if value < 0:
                raise ValueError(f"max_position[{asset!r}] must not be negative, got {value}")
            positions[asset] = value
        object.__setattr__(self, "max_position", MappingProxyType(positions))

        for name in ("price_collar_bps", "option_collar_bps"):
            collar = _exact(name, getattr(self, name))
            if not Decimal(0) < collar < Decimal(10_000):
                raise ValueError(f"{name} must be between 0 and 10,000 bps, got {collar}")
            object.__setattr__(self, name, collar)

        for name in ("max_book_age", "order_window"):
            span = getattr(self, name)
            if not isinstance(span, timedelta):
                raise TypeError(f"{name} must be a timedelta, got {type(span).__name__}")
            if span <= timedelta(0):
                raise ValueError(f"{name} must be a positive duration, got {span}")
        if isinstance(self.max_orders_per_window, bool) or not isinstance(
            self.max_orders_per_window, int
        ):
            raise TypeError("max_orders_per_window must be a whole number")
        if self.max_orders_per_window < 1:
            raise ValueError(
                f"max_orders_per_window must be at least 1, got {self.max_orders_per_window}"
            )


DEFAULT_LIMITS = RiskLimits(
    max_child_notional=Decimal("50000"),
    max_parent_notional=Decimal("5000000"),
    max_daily_notional=Decimal("20000000"),
    max_position={"BTC": Decimal("600"), "ETH": Decimal("10000")},
    price_collar_bps=Decimal("100"),
    max_book_age=timedelta(seconds=5),
    max_orders_per_window=20,
    order_window=timedelta(seconds=10),
)
"""Conservative defaults sized for accumulating about 500 BTC in tranches, in USDT."""
