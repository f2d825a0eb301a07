"""Request and response bodies of the risk routes (``/v1/risk``): the desk's state, the trading
state switch (the kill switch), the pre-trade limits and the audit trail.

Like :mod:`ems.api.schemas`, requests are strict and frozen, decimals travel as JSON strings and
every validation error names the field it is about. Durations are whole or fractional seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ems.api.schemas import VENUE_PATTERN, DecimalStr, UtcDatetime, plain_decimal
from ems.ports import AuditRecord
from risk.limits import RiskLimits
from risk.types import TradingState

_STRICT = ConfigDict(extra="forbid", frozen=True)
_OUT = ConfigDict(frozen=True)

GLOBAL_SCOPE = "global"
"""The ``scope`` that means the whole desk rather than one venue."""

ASSET_PATTERN = r"^[A-Z0-9]{1,20}$"

Notional = Annotated[
    Decimal,
    Field(gt=0, max_digits=36, decimal_places=18, allow_inf_nan=False),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
"""A strictly positive amount of quote currency, exact, sent on as a string."""

PositionLimit = Annotated[
    Decimal,
    Field(ge=0, max_digits=36, decimal_places=18, allow_inf_nan=False),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
"""A position limit in base units, zero or more (zero: the asset may not be held)."""

CollarBps = Annotated[
    Decimal,
    Field(gt=0, lt=10_000, max_digits=12, decimal_places=4, allow_inf_nan=False),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
"""A price collar in basis points, strictly between 0 and 10,000."""

Seconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
"""A positive duration in seconds, at most a day."""

Reason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="Why the change is made (1..500 characters); kept in the audit trail.",
        examples=["exchange incident: withdrawals suspended"],
    ),
]


class RiskLimitsBody(BaseModel):
    """The pre-trade limits, mirroring :class:`risk.limits.RiskLimits` (notionals in the desk's
    quote currency, e.g. USDT)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "max_child_notional": "50000",
                    "max_parent_notional": "5000000",
                    "max_daily_notional": "20000000",
                    "max_position": {"BTC": "600", "ETH": "10000"},
                    "price_collar_bps": "100",
                    "max_book_age_s": 5,
                    "max_orders_per_window": 20,
                    "order_window_s": 10,
                }
            ]
        },
    )

    max_child_notional: Notional = Field(
        description="Largest single child order, qty × price × contract size; ≤ the parent limit."
    )
    max_parent_notional: Notional = Field(
        description="Largest parent order, quantity × reference price; ≤ the daily limit."
    )
    max_daily_notional: Notional = Field(
        description="Most quote currency traded per UTC day across all venues."
    )
    max_position: dict[str, PositionLimit] = Field(
        description=(
            "Largest absolute net position per base asset in base units (≥ 0). An asset that is "
            "not listed may not be traded at all."
        ),
        max_length=200,
    )
    price_collar_bps: CollarBps = Field(
        description=(
            "Refuse a buy priced above mid × (1 + collar) or a sell below mid × (1 − collar); "
            "basis points, strictly between 0 and 10000."
        )
    )
    option_collar_bps: CollarBps = Field(
        default=Decimal(1500),
        description=(
            "The collar for options (their books are far wider than spot's), against the "
            "option's own consensus mid; basis points, strictly between 0 and 10000."
        ),
    )
    max_book_age_s: Seconds = Field(
        description="Market data older than this many seconds is stale and blocks trading."
    )
    max_orders_per_window: int = Field(
        ge=1, le=100_000, description="Orders allowed per venue within `order_window_s` (≥ 1)."
    )
    order_window_s: Seconds = Field(description="The order-rate window, in seconds.")

    @field_validator("max_position")
    @classmethod
    def _asset_names(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        """Each key is a base asset in capitals, e.g. BTC."""
        for asset in value:
            if not re.fullmatch(ASSET_PATTERN, asset):
                raise PydanticCustomError(
                    "asset_name",
                    "max_position: '{asset}' is not an asset name (capital letters and digits, "
                    "e.g. BTC)",
                    {"field": f"max_position.{asset}", "asset": asset},
                )
        return value

    @model_validator(mode="after")
    def _notionals_in_order(self) -> Self:
        """child ≤ parent ≤ daily: a child larger than its parent could never be sent."""
        if self.max_child_notional > self.max_parent_notional:
            raise PydanticCustomError(
                "child_above_parent",
                "max_child_notional ({child}) must not exceed max_parent_notional ({parent})",
                {
                    "field": "max_child_notional",
                    "child": plain_decimal(self.max_child_notional),
                    "parent": plain_decimal(self.max_parent_notional),
                },
            )
        if self.max_parent_notional > self.max_daily_notional:
            raise PydanticCustomError(
                "parent_above_daily",
                "max_parent_notional ({parent}) must not exceed max_daily_notional ({daily})",
                {
                    "field": "max_parent_notional",
                    "parent": plain_decimal(self.max_parent_notional),
                    "daily": plain_decimal(self.max_daily_notional),
                },
            )
        return self

    def to_limits(self) -> RiskLimits:
        """The engine's value; raises ``ValueError``/``TypeError`` if it adds a rule of its own."""
        return RiskLimits(
            max_child_notional=self.max_child_notional,
            max_parent_notional=self.max_parent_notional,
            max_daily_notional=self.max_daily_notional,
            max_position=dict(self.max_position),
            price_collar_bps=self.price_collar_bps,
            option_collar_bps=self.option_collar_bps,
            max_book_age=timedelta(seconds=self.max_book_age_s),
            max_orders_per_window=self.max_orders_per_window,
            order_window=timedelta(seconds=self.order_window_s),
        )

    @classmethod
    def of(cls, limits: RiskLimits) -> Self:
        """The API view of the engine's limits."""
        return cls.model_construct(
            max_child_notional=limits.max_child_notional,
            max_parent_notional=limits.max_parent_notional,
            max_daily_notional=limits.max_daily_notional,
            max_position=dict(sorted(limits.max_position.items())),
            price_collar_bps=limits.price_collar_bps,
            option_collar_bps=limits.option_collar_bps,
            max_book_age_s=limits.max_book_age.total_seconds(),
            max_orders_per_window=limits.max_orders_per_window,
            order_window_s=limits.order_window.total_seconds(),
        )


class LimitsUpdate(RiskLimitsBody):
    """A full replacement of the pre-trade limits, with the reason for the audit trail."""

    reason: Reason


class TradingStateUpdate(BaseModel):
    """Set the trading state of the whole desk (`scope: "global"`) or of one venue.

    `halted` is the kill switch: nothing is sent there any more. `reducing` lets only orders
    that reduce exposure through; `active` allows everything again.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"scope": "binance", "state": "halted", "reason": "exchange incident"},
                {"scope": "global", "state": "active", "reason": "incident over"},
            ]
        },
    )

    scope: str = Field(
        min_length=1,
        max_length=40,
        pattern=rf"^(global|{VENUE_PATTERN[1:-1]})$",
        description='"global" for the whole desk, or a configured venue name.',
        examples=["global", "binance"],
    )
    state: TradingState = Field(description="active, reducing or halted.")
    reason: Reason

    @property
    def venue(self) -> str | None:
        """The venue the change is about, or None for the whole desk."""
        return None if self.scope == GLOBAL_SCOPE else self.scope


# --- responses -----------------------------------------------------------------------------


class VenueRisk(BaseModel):
    """One venue's trading state and routing health."""

    model_config = _OUT

    venue: str
    state: TradingState = Field(description="The venue's own trading state.")
    tradable: bool = Field(
        description=(
            "Whether routing would send it new orders now (kill switch, circuit breaker, error "
            "rate; book freshness is judged per symbol when a slice is routed)."
        )
    )
    reason: str = Field(description="ok, kill_switch, circuit_open or error_rate.")
    detail: str = Field(description="The reason in words, empty when tradable.")


class HoldingView(BaseModel):
    """What we hold of one instrument on one venue, from our own fills."""

    model_config = _OUT

    venue: str
    symbol: str
    kind: str
    qty: DecimalStr


class PositionCheckView(BaseModel):
    """One line of the position reconciliation."""

    model_config = _OUT

    venue: str
    item: str = Field(description="A symbol (derivatives, options) or an asset (spot balance).")
    kind: str = Field(description="derivative | option | spot_balance")
    ours: DecimalStr = Field(description="From our own fills.")
    reported: DecimalStr = Field(description="What the venue reports.")
    offset: DecimalStr = Field(description="Spot: balance held apart from our fills.")
    difference: DecimalStr
    matched: bool
    is_break: bool = Field(alias="break")
    checked_at: UtcDatetime


class RiskView(BaseModel):
    """The risk desk at a glance."""

    model_config = _OUT

    as_of: UtcDatetime
    global_state: TradingState = Field(description="The whole desk's trading state.")
    venues: list[VenueRisk]
    limits: RiskLimitsBody
    positions: dict[str, DecimalStr] = Field(
        description="Signed net position per base asset (long positive), from our own fills."
    )
    day_notional: DecimalStr = Field(description="Quote currency traded since UTC midnight.")
    holdings: list[HoldingView] = Field(
        default_factory=list,
        description="Signed quantity held per instrument and venue (contracts for derivatives).",
    )
    reconciliation: list[PositionCheckView] = Field(
        default_factory=list,
        description=(
            "The last comparison of our fills with each venue's balances and positions; a "
            "`break` is a difference beyond half a lot seen on two checks running."
        ),
    )


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class AuditPublic(BaseModel):
    """One administrative change: who, when, what and why; `before`/`after` are the setting's
    values (a state name, or the limits as in `GET /v1/risk`)."""

    model_config = _OUT

    ts: UtcDatetime
    actor: str = Field(description="The API key that made the change: its name and key id.")
    action: str = Field(description="trading_state or risk_limits.")
    scope: str = Field(description='"global" or a venue name.')
    before: Any
    after: Any
    reason: str

    @classmethod
    def of(cls, record: AuditRecord) -> Self:
        """The API view of a stored audit record."""
        return cls(
            ts=record.ts,
            actor=record.actor,
            action=record.action,
            scope=record.scope,
            before=_decoded(record.before),
            after=_decoded(record.after),
            reason=record.reason,
        )


def positions_view(positions: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Positions sorted by asset, for a stable answer."""
    return dict(sorted(positions.items()))
