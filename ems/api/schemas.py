"""Request and response bodies of the REST API (pydantic v2).

Requests are strict (unknown fields are refused) and frozen. Every money or quantity value is a
``Decimal``: it may be sent as a JSON string or number and always comes back as a string, so no
digit is lost to binary floating point. Times are aware datetimes, returned in UTC.

Validation problems are turned into :class:`FieldProblem` values by :func:`describe_errors`, which
words each pydantic error the way a trader would read it, naming the field and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ems.domain import Fill, Liquidity, OrderType, Side, TimeInForce
from ems.orders import ChildOrder, ChildStatus, ParentOrder, ParentRole, ParentStatus
from ems.ports import EventRecord


def plain_decimal(value: Decimal) -> str:
    """A decimal as a plain string with no exponent and no trailing zeros (``"0.5"``, ``"100"``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


DecimalStr = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]
"""A decimal serialised to JSON as an exact string."""

PositiveAmount = Annotated[
    Decimal,
    Field(gt=0, max_digits=36, decimal_places=18, allow_inf_nan=False),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
"""A strictly positive decimal with at most 18 decimal places (quantities, prices)."""

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
"""An aware datetime, converted to UTC; naive datetimes are refused."""

CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$"
VENUE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,39}$"

_STRICT = ConfigDict(extra="forbid", frozen=True)


# --- requests ----------------------------------------------------------------------------------

Rate = Annotated[
    Decimal,
    Field(max_digits=20, decimal_places=18, allow_inf_nan=False),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
"""A share of market volume (0.1 = 10%), kept exact and sent on as a string."""


Bps = Annotated[
    Decimal,
    Field(max_digits=12, decimal_places=4, allow_inf_nan=False),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
"""Basis points (1 bp = 0.01%), exact, at most 4 decimal places; sent on as a string."""


class ExecutionStyle(BaseModel):
    """How any algorithm places its children: the price guards shared by every algorithm.

    Sent on to the algorithm only when given; the algorithms apply the documented defaults.
    """

    model_config = _STRICT

    i_would_price: PositiveAmount | None = Field(
        default=None,
        description=(
            "Opportunistic level: when the market trades at or better than this price (at or "
            "below it for a buy, at or above it for a sell), the algorithm takes liquidity ahead "
            "of its schedule. Must be on the good side of `limit_price`. Omit for none."
        ),
        examples=["58500"],
    )
    max_gap_bps: Bps = Field(
        default=Decimal(20),
        ge=1,
        le=1000,
        description=(
            "Void-zone guard, in basis points (1..1000): a crossing child never reaches for a "
            "book level that is further than this from the level before it."
        ),
    )
    max_depth_bps: Bps = Field(
        default=Decimal(50),
        ge=1,
        le=5000,
        description=(
            "How far past the best price a crossing child may reach into the book, in basis "
            "points (1..5000)."
        ),
    )
    min_rest_s: float = Field(
        default=5,
        ge=0,
        le=600,
        allow_inf_nan=False,
        description="Seconds a passive child rests before it may be repriced (0..600).",
    )
    reprice_ticks: int = Field(
        default=2,
        ge=1,
        le=1000,
        description=(
            "Reprice a resting child once the best price has moved this many ticks away "
            "from it (1..1000)."
        ),
    )

    def to_params(self) -> dict[str, Any]:
        """The parameters as the manager expects them: a JSON-safe mapping without the ``algo``
        tag (decimals as strings). The algorithm's own fields are given in full, defaults
        included; the execution-style fields only when the request set them."""
        style = set(ExecutionStyle.model_fields)
        unset_style = style - self.model_fields_set
        dumped = self.model_dump(mode="json", exclude={"algo", *unset_style})
        return {key: value for key, value in dumped.items() if value is not None}


_STYLE_EXAMPLE: dict[str, Any] = {"max_gap_bps": 15, "max_depth_bps": 40, "min_rest_s": 5}


class TwapParams(ExecutionStyle):
    """TWAP: the quantity spread evenly over the window in slices, each slice time shifted by a
    seeded random jitter so the schedule is hard to detect yet repeatable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"slice_interval_s": 60, "jitter_pct": 0.2, "seed": 7},
                {"algo": "twap", "slice_interval_s": 30, **_STYLE_EXAMPLE},
            ]
        },
    )

    algo: Literal["twap"] = Field(
        default="twap", description="Set automatically from the order's `algo`; may be omitted."
    )
    slice_interval_s: int = Field(
        default=30, ge=1, le=3600, description="Seconds between slices (1..3600)."
    )
    jitter_pct: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        allow_inf_nan=False,
        description="Random shift of each slice time, as a fraction of the interval (0..0.5).",
    )
    seed: int = Field(default=0, description="Seed of the jitter, so a schedule is repeatable.")


class VwapParams(ExecutionStyle):
    """VWAP: the quantity follows where the market's volume trades, by the desk's intraday
    volume profile blended with the volume actually observed since the start.

    Slices fire on a jittered grid as in TWAP. With `expected_volume` (the desk's forecast of
    the window's market volume) a busier or quieter tape than forecast pulls the target ahead
    of or behind the profile, by at most `max_deviation`; without it the target follows the
    profile.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "algo": "vwap",
                    "slice_interval_s": 30,
                    "expected_volume": "12000",
                    "max_deviation": 0.2,
                    **_STYLE_EXAMPLE,
                }
            ]
        },
    )

    algo: Literal["vwap"] = Field(
        default="vwap", description="Set automatically from the order's `algo`; may be omitted."
    )
    slice_interval_s: int = Field(
        default=30, ge=1, le=3600, description="Seconds between slices (1..3600)."
    )
    jitter_pct: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        allow_inf_nan=False,
        description="Random shift of each slice time, as a fraction of the interval (0..0.5).",
    )
    seed: int = Field(default=0, description="Seed of the jitter, so a schedule is repeatable.")
    expected_volume: PositiveAmount | None = Field(
        default=None,
        description=(
            "Forecast of the market volume traded over the whole window, in base units (> 0). "
            "Lets the live volume move the target; omit to follow the profile only."
        ),
        examples=["12000"],
    )
    max_deviation: float = Field(
        default=0.2,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description=(
            "Weight allowed for the live observed volume: the most the target share may move "
            "away from the profile because of it (0..1; 0 follows the profile only)."
        ),
    )


class PovParams(ExecutionStyle):
    """POV (percentage of volume): trade a fixed share of the market volume as it prints,
    never below ``min_rate`` and never above ``max_rate`` of it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "algo": "pov",
                    "rate": "0.1",
                    "min_rate": "0.05",
                    "max_rate": "0.15",
                    "max_child_qty": "0.5",
                    **_STYLE_EXAMPLE,
                }
            ]
        },
    )

    algo: Literal["pov"] = Field(
        default="pov", description="Set automatically from the order's `algo`; may be omitted."
    )
    rate: Rate = Field(
        gt=0,
        le=Decimal("0.5"),
        description="Target share of the market volume, above 0 and at most 0.5 (0.1 = 10%).",
        examples=["0.1"],
    )
    min_rate: Rate | None = Field(
        default=None,
        ge=0,
        description=(
            "Least share of the volume to keep up with (0..rate): below it the order catches "
            "up by crossing the spread. Defaults to half the rate; 0 means no floor."
        ),
    )
    max_rate: Rate | None = Field(
        default=None,
        ge=0,
        le=Decimal("0.5"),
        description=(
            "Most share of the volume, never exceeded even when catching up (rate..0.5). "
            "Defaults to 1.5 x rate, at most 0.5."
        ),
    )
    max_child_qty: PositiveAmount | None = Field(
        default=None, description="Largest single child order, in base units; omit for no cap."
    )
    min_child_qty: PositiveAmount | None = Field(
        default=None,
        description=(
            "Smallest new child, in base units (at most max_child_qty): a child waits until the "
            "shortfall reaches it, except for the order's last piece. Omit for the venue minimum."
        ),
    )

    @model_validator(mode="after")
    def _rates_in_order(self) -> PovParams:
        if self.min_rate is not None and self.min_rate > self.rate:
            raise PydanticCustomError(
                "min_rate_above_rate",
                "algo_params.min_rate ({min_rate}) must not be above algo_params.rate ({rate}): "
                "the floor of participation cannot exceed its target",
                {
                    "field": "algo_params.min_rate",
                    "min_rate": plain_decimal(self.min_rate),
                    "rate": plain_decimal(self.rate),
                },
            )
        if self.max_rate is not None and self.max_rate < self.rate:
            raise PydanticCustomError(
                "max_rate_below_rate",
                "algo_params.max_rate ({max_rate}) must not be below algo_params.rate ({rate}): "
                "the cap on participation cannot be under its target",
                {
                    "field": "algo_params.max_rate",
                    "max_rate": plain_decimal(self.max_rate),
                    "rate": plain_decimal(self.rate),
                },
            )
        low, high = self.min_child_qty, self.max_child_qty
        if low is not None and high is not None and low > high:
            raise PydanticCustomError(
                "min_child_above_max_child",
                "algo_params.min_child_qty ({low}) must not be above algo_params.max_child_qty "
                "({high}): the smallest child cannot be larger than the largest",
                {
                    "field": "algo_params.min_child_qty",
                    "low": plain_decimal(low),
                    "high": plain_decimal(high),
                },
            )
        return self


class IcebergParams(ExecutionStyle):
    """Iceberg: only a small display size shows on the book at a time, refilled after each fill
    with a seeded random size jitter; native venue icebergs are used where available."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "algo": "iceberg",
                    "display_qty": "0.25",
                    "display_jitter_pct": 0.2,
                    "refresh_delay_s": 1,
                    "seed": 7,
                    "native": "auto",
                    "i_would_price": "58500",
                }
            ]
        },
    )

    algo: Literal["iceberg"] = Field(
        default="iceberg", description="Set automatically from the order's `algo`; may be omitted."
    )
    display_qty: PositiveAmount = Field(
        description="Quantity shown on the book at a time, in base units (> 0).",
        examples=["0.25"],
    )
    display_jitter_pct: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        allow_inf_nan=False,
        description="Random change of each shown size, as a fraction of display_qty (0..0.5).",
    )
    refresh_delay_s: float = Field(
        default=1,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds to wait after a fill before showing the next tip (0..3600).",
    )
    refresh_jitter_pct: float = Field(
        default=0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Random change of each refresh delay, as a fraction of it (0..1).",
    )
    seed: int = Field(default=0, description="Seed of the size jitter, so a run is repeatable.")
    native: Literal["auto", "never"] = Field(
        default="auto",
        description=(
            "`auto` uses the venue's own iceberg orders where it has them; `never` always works "
            "the iceberg with plain orders."
        ),
    )


AlgoName = Literal["twap", "vwap", "pov", "iceberg"]
"""The algorithms a parent order may use; extend together with :data:`AlgoParams`."""

ALGO_NAMES: tuple[str, ...] = ("twap", "vwap", "pov", "iceberg")

AlgoParams = Annotated[
    TwapParams | VwapParams | PovParams | IcebergParams, Field(discriminator="algo")
]
"""Algorithm parameters, a union discriminated by ``algo``."""

PARAMS_BY_ALGO: dict[str, type[ExecutionStyle]] = {
    "twap": TwapParams,
    "vwap": VwapParams,
    "pov": PovParams,
    "iceberg": IcebergParams,
}


class ParentBase(BaseModel):
    """Fields describing what a parent order trades, shared by requests and responses."""

    model_config = _STRICT

    symbol: str = Field(description="Unified symbol, BASE/QUOTE (e.g. `BTC/USDT`).")
    side: Side = Field(description="`buy` or `sell`.")
    venues: tuple[str, ...] = Field(
        default=(), description="Venues to trade on; empty means every venue listing the symbol."
    )


SUBMIT_EXAMPLES: dict[str, dict[str, Any]] = {
    "twap": {
        "client_id": "desk1-btc-0001",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "0.5",
        "algo": "twap",
        "end_at": "2026-05-01T12:00:00Z",
        "limit_price": "61000",
        "venues": ["binance"],
        "algo_params": {"slice_interval_s": 60, "jitter_pct": 0.2, "seed": 7},
    },
    "vwap": {
        "client_id": "desk1-btc-0002",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "5",
        "algo": "vwap",
        "start_at": "2026-05-01T13:00:00Z",
        "end_at": "2026-05-01T21:00:00Z",
        "limit_price": "62000",
        "algo_params": {
            "slice_interval_s": 30,
            "expected_volume": "12000",
            "max_deviation": 0.2,
            "max_gap_bps": 15,
            "max_depth_bps": 40,
        },
    },
    "pov": {
        "client_id": "desk1-btc-0003",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "2",
        "algo": "pov",
        "end_at": "2026-05-01T16:00:00Z",
        "limit_price": "61500",
        "venues": ["binance", "coinbase"],
        "algo_params": {
            "rate": "0.1",
            "min_rate": "0.05",
            "max_rate": "0.15",
            "max_child_qty": "0.25",
        },
    },
    "iceberg": {
        "client_id": "desk1-btc-0004",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "3",
        "algo": "iceberg",
        "end_at": "2026-05-02T00:00:00Z",
        "limit_price": "60000",
        "venues": ["binance"],
        "algo_params": {
            "display_qty": "0.2",
            "display_jitter_pct": 0.2,
            "refresh_delay_s": 1,
            "seed": 11,
            "native": "auto",
            "i_would_price": "58500",
            "min_rest_s": 10,
            "reprice_ticks": 3,
        },
    },
}
"""A complete example request for each algorithm (OpenAPI examples and tests)."""


class ParentRequest(ParentBase):
    """The fields and rules of a proposed parent order, shared by :class:`ParentCreate` (which
    requires ``client_id``) and :class:`ParentPreview` (where it is optional and unused)."""

    model_config = _STRICT

    symbol: str = Field(
        min_length=3,
        max_length=64,
        pattern=SYMBOL_PATTERN,
        description="Unified symbol, BASE/QUOTE (e.g. `BTC/USDT`); lower case is accepted.",
        examples=["BTC/USDT"],
    )
    algo: AlgoName = Field(
        description=(
            "Execution algorithm: `twap` (even slices over the window), `vwap` (follows the "
            "market's volume), `pov` (a share of the volume as it trades) or `iceberg` (a small "
            "size shown at a time). Its parameters go in `algo_params`."
        ),
        examples=["twap"],
    )
    venues: tuple[str, ...] = Field(
        default=(),
        max_length=32,
        description="Venues to trade on; empty means every venue listing the symbol.",
        examples=[["binance", "coinbase"]],
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=36,
        pattern=CLIENT_ID_PATTERN,
        description="Your idempotency id: 1..36 letters, digits, `-` or `_`.",
        examples=["desk1-btc-0001"],
    )
    quantity: PositiveAmount = Field(
        description="Total base quantity, > 0, as a string or number.", examples=["0.5"]
    )
    end_at: UtcDatetime = Field(
        description="When the order must be done; ISO-8601 with a timezone.",
        examples=["2026-05-01T12:00:00Z"],
    )
    start_at: UtcDatetime | None = Field(
        default=None, description="When to start; omit to start now. ISO-8601 with a timezone."
    )
    limit_price: PositiveAmount | None = Field(
        default=None,
        description="Worst price to pay (buy) or accept (sell); omit for no limit.",
        examples=["61000"],
    )
    algo_params: AlgoParams = Field(
        default_factory=TwapParams,
        description=(
            "Parameters of the chosen algorithm (its `algo` tag is filled in from the order's "
            "`algo`), plus the execution-style fields every algorithm accepts."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _tag_algo_params(cls, data: Any) -> Any:
        """Copy ``algo`` into ``algo_params`` so the parameters union can pick its member."""
        if not isinstance(data, Mapping):
            return data
        algo = data.get("algo")
        if not isinstance(algo, str) or algo not in ALGO_NAMES:
            return data
        params = data.get("algo_params")
        if params is None:
            params = {}
        if isinstance(params, Mapping) and "algo" not in params:
            return {**data, "algo_params": {**params, "algo": algo}}
        return data

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper_symbol(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("venues")
    @classmethod
    def _check_venues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for venue in value:
            if not re.fullmatch(VENUE_PATTERN, venue):
                raise PydanticCustomError(
                    "venue_name",
                    "venues: '{venue}' is not a venue name (lower-case letters, digits, '-', '_', "
                    "'.'; e.g. binance)",
                    {"venue": venue},
                )
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise PydanticCustomError(
                "unique_venues",
                "venues: list each venue once ({duplicates} repeated)",
                {"duplicates": ", ".join(duplicates)},
            )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if self.algo_params.algo != self.algo:
            raise PydanticCustomError(
                "algo_mismatch",
                "algo_params.algo: the parameters are for {params_algo}, but algo is {algo}",
                {
                    "field": "algo_params.algo",
                    "params_algo": self.algo_params.algo,
                    "algo": self.algo,
                },
            )
        if self.start_at is not None and self.end_at <= self.start_at:
            raise PydanticCustomError(
                "end_after_start",
                "end_at ({end}) must be after start_at ({start})",
                {
                    "field": "end_at",
                    "end": self.end_at.astimezone(UTC).isoformat(),
                    "start": self.start_at.astimezone(UTC).isoformat(),
                },
            )
        params = self.algo_params
        if isinstance(params, IcebergParams) and params.display_qty > self.quantity:
            raise PydanticCustomError(
                "display_above_quantity",
                "algo_params.display_qty ({display}) is more than the order quantity "
                "({quantity}): an iceberg shows only part of the order",
                {
                    "field": "algo_params.display_qty",
                    "display": plain_decimal(params.display_qty),
                    "quantity": plain_decimal(self.quantity),
                },
            )
        _check_i_would(params.i_would_price, self.limit_price, self.side)
        return self

    def algo_parameters(self) -> dict[str, Any]:
        """The algorithm parameters as a plain mapping for the manager."""
        return self.algo_params.to_params()


class ParentCreate(ParentRequest):
    """A request for a new parent order.

    ``client_id`` makes the request idempotent: sending the same id with the same body again
    returns the existing order; the same id with a different body is refused.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{**body} for body in SUBMIT_EXAMPLES.values()]  # one per algorithm
        },
    )

    client_id: str = Field(
        min_length=1,
        max_length=36,
        pattern=CLIENT_ID_PATTERN,
        description="Your idempotency id: 1..36 letters, digits, `-` or `_`.",
        examples=["desk1-btc-0001"],
    )


class ParentPreview(ParentRequest):
    """A proposed parent order to price before submitting it: the body of a submission, with
    the same rules, except that ``client_id`` may be left out (it is ignored). Nothing is stored
    and no order is sent."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {key: value for key, value in body.items() if key != "client_id"}
                for body in SUBMIT_EXAMPLES.values()
            ]
        },
    )


def _check_i_would(i_would: Decimal | None, limit: Decimal | None, side: Side) -> None:
    """The I-would price must be on the good side of the limit price."""
    if i_would is None or limit is None:
        return
    wrong = i_would > limit if side is Side.BUY else i_would < limit
    if wrong:
        relation, side_word = ("above", "buy") if side is Side.BUY else ("below", "sell")
        raise PydanticCustomError(
            "i_would_beyond_limit",
            "algo_params.i_would_price ({i_would}) is {relation} limit_price ({limit}): for a "
            "{side} the I-would price is a better price than the limit, so it must be "
            "{other} it",
            {
                "field": "algo_params.i_would_price",
                "i_would": plain_decimal(i_would),
                "limit": plain_decimal(limit),
                "relation": relation,
                "side": side_word,
                "other": "at or below" if side is Side.BUY else "at or above",
            },
        )


class ParentAmend(BaseModel):
    """A change to a live parent order: new quantity, limit price or end time.

    Give at least one. Working children are cancelled and the schedule re-plans from what is
    already filled. To remove the limit price send `"clear_limit": true` (with `limit_price`
    omitted or null).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"quantity": "0.8"},
                {"limit_price": "61500", "end_at": "2026-05-01T14:00:00Z"},
                {"limit_price": None, "clear_limit": True},
            ]
        },
    )

    quantity: PositiveAmount | None = Field(
        default=None,
        description="New total quantity (> 0); never below what is already filled.",
        examples=["0.8"],
    )
    limit_price: PositiveAmount | None = Field(
        default=None,
        description="New limit price; null only together with `clear_limit: true`.",
        examples=["61500"],
    )
    end_at: UtcDatetime | None = Field(
        default=None,
        description="New end time; ISO-8601 with a timezone, in the future.",
        examples=["2026-05-01T14:00:00Z"],
    )
    clear_limit: bool = Field(
        default=False, description="Remove the limit price: the order may trade at any price."
    )

    @model_validator(mode="after")
    def _one_change(self) -> ParentAmend:
        if self.clear_limit and self.limit_price is not None:
            raise PydanticCustomError(
                "clear_limit_with_price",
                "clear_limit: true removes the limit price, so do not also send limit_price "
                "({limit}); send one or the other",
                {"field": "clear_limit", "limit": plain_decimal(self.limit_price)},
            )
        if (
            "limit_price" in self.model_fields_set
            and self.limit_price is None
            and not self.clear_limit
        ):
            raise PydanticCustomError(
                "null_limit",
                "limit_price: null does not change the order; to remove the limit price send "
                '"clear_limit": true',
                {"field": "limit_price"},
            )
        if (
            self.quantity is None
            and self.limit_price is None
            and self.end_at is None
            and not self.clear_limit
        ):
            raise PydanticCustomError(
                "nothing_to_amend",
                "nothing to amend: give quantity, limit_price, end_at or clear_limit",
                {"field": "body"},
            )
        return self


class CancelRequest(BaseModel):
    """Optional body of a cancel: why the order is being cancelled."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"examples": [{"reason": "bottom failed"}]}
    )

    reason: str = Field(default="", max_length=200, description="Free text, kept in the log.")


# --- responses ---------------------------------------------------------------------------------


class ParentPublic(ParentBase):
    """A parent order as the API shows it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "P01HZX3Q8V2",
                    "client_id": "desk1-btc-0001",
                    "status": "working",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": "0.5",
                    "filled_qty": "0.125",
                    "remaining_qty": "0.375",
                    "avg_price": "60012.5",
                    "fees": "7.5",
                    "algo": "twap",
                    "algo_params": {"slice_interval_s": 60, "jitter_pct": 0.2, "seed": 7},
                    "venues": ["binance"],
                    "start_at": "2026-05-01T11:00:00Z",
                    "end_at": "2026-05-01T12:00:00Z",
                    "limit_price": "61000",
                    "reason": "",
                    "created_at": "2026-05-01T11:00:00Z",
                    "updated_at": "2026-05-01T11:15:00Z",
                    "progress": 0.25,
                    "tracking_error_mean": "0.0125",
                    "tracking_error_max": "0.04",
                    "participation_rate": "0.031",
                    "maker_share": "0.6",
                    "market_volume": "4.032258",
                }
            ]
        },
    )

    id: str
    client_id: str
    status: ParentStatus
    quantity: DecimalStr
    filled_qty: DecimalStr
    remaining_qty: DecimalStr
    avg_price: DecimalStr | None = Field(description="Average fill price; null before a fill.")
    fees: DecimalStr
    algo: str
    algo_params: dict[str, Any]
    start_at: UtcDatetime
    end_at: UtcDatetime
    limit_price: DecimalStr | None
    reason: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    progress: float = Field(ge=0, le=1, description="filled_qty / quantity, 0..1.")
    tracking_error_mean: DecimalStr | None = Field(
        description=(
            "Schedule quality: mean gap between the filled quantity and the algorithm's target "
            "curve, as a share of the quantity (0.01 = 1%); null before the first sample."
        )
    )
    tracking_error_max: DecimalStr | None = Field(
        description="Largest such gap seen, as a share of the quantity; null before a sample."
    )
    participation_rate: DecimalStr | None = Field(
        description=(
            "filled_qty / market_volume: our share of what traded on the order's venues since "
            "its start; null until market volume is seen."
        )
    )
    maker_share: DecimalStr | None = Field(
        description="Share of the filled quantity that rested on the book (maker); null before "
        "a fill."
    )
    market_volume: DecimalStr = Field(
        description="Base quantity traded by the market on the order's venues since its start."
    )
    role: ParentRole = Field(
        default=ParentRole.TRADE,
        description=(
            "`trade` for a trader's order; `basis_hedge` / `put_hedge` for the hedge legs the "
            "risk module places itself."
        ),
    )
    reduce_only: bool = Field(
        default=False, description="Every child may only reduce a position (hedge releases)."
    )

    @classmethod
    def of(cls, parent: ParentOrder) -> ParentPublic:
        """The public view of a stored parent order."""
        progress = float(parent.filled_qty / parent.quantity) if parent.quantity > 0 else 0.0
        sampled = parent.tracking_samples > 0
        return cls(
            id=parent.id,
            client_id=parent.client_id,
            status=parent.status,
            role=parent.role,
            reduce_only=parent.reduce_only,
            symbol=parent.symbol,
            side=parent.side,
            quantity=parent.quantity,
            filled_qty=parent.filled_qty,
            remaining_qty=parent.remaining_qty,
            avg_price=parent.avg_price,
            fees=parent.fees,
            algo=parent.algo,
            algo_params=dict(parent.algo_params),
            venues=tuple(parent.venues),
            start_at=parent.start_at,
            end_at=parent.end_at,
            limit_price=parent.limit_price,
            reason=parent.reason,
            created_at=parent.created_at,
            updated_at=parent.updated_at,
            progress=min(1.0, max(0.0, progress)),
            tracking_error_mean=_share(parent.tracking_error_mean),
            tracking_error_max=_share(parent.tracking_max) if sampled else None,
            participation_rate=_share(parent.participation_rate),
            maker_share=_share(parent.maker_share),
            market_volume=parent.market_volume,
        )


SHARE_PLACES = 8
"""Decimal places shown for the schedule-quality shares (ratios, not money)."""


def _share(value: Decimal | None) -> Decimal | None:
    """A ratio rounded half-even to :data:`SHARE_PLACES` places for display."""
    if value is None:
        return None
    return value.quantize(Decimal(1).scaleb(-SHARE_PLACES), rounding=ROUND_HALF_EVEN)


class ParentPage(BaseModel):
    """One page of parent orders, newest first."""

    model_config = _STRICT

    items: list[ParentPublic]
    limit: int
    offset: int
    next_offset: int | None = Field(
        description="Offset of the next page, or null when this page is the last."
    )


class ChildPublic(BaseModel):
    """A child order sent to one venue on behalf of a parent."""

    model_config = _STRICT

    client_order_id: str
    parent_id: str
    seq: int
    venue: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    qty: DecimalStr
    price: DecimalStr | None
    display_qty: DecimalStr | None = Field(
        description="Size shown on the book for a native iceberg child; null for a plain order."
    )
    status: ChildStatus
    filled_qty: DecimalStr
    avg_price: DecimalStr | None
    fees: DecimalStr
    venue_order_id: str | None
    reason: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    submitted_at: UtcDatetime | None

    @classmethod
    def of(cls, child: ChildOrder) -> ChildPublic:
        """The public view of a stored child order."""
        return cls(
            client_order_id=child.client_order_id,
            parent_id=child.parent_id,
            seq=child.seq,
            venue=child.venue,
            symbol=child.symbol,
            side=child.side,
            order_type=child.order_type,
            time_in_force=child.time_in_force,
            qty=child.qty,
            price=child.price,
            display_qty=child.display_qty,
            status=child.status,
            filled_qty=child.filled_qty,
            avg_price=child.avg_price,
            fees=child.fees,
            venue_order_id=child.venue_order_id,
            reason=child.reason,
            created_at=child.created_at,
            updated_at=child.updated_at,
            submitted_at=child.submitted_at,
        )


class FillPublic(BaseModel):
    """One execution of a child order."""

    model_config = _STRICT

    venue: str
    trade_id: str
    client_order_id: str
    symbol: str
    side: Side
    price: DecimalStr
    qty: DecimalStr
    notional: DecimalStr
    fee: DecimalStr
    fee_currency: str
    liquidity: Liquidity
    ts: UtcDatetime

    @classmethod
    def of(cls, fill: Fill) -> FillPublic:
        """The public view of a recorded fill."""
        return cls(
            venue=fill.venue,
            trade_id=fill.trade_id,
            client_order_id=fill.client_order_id,
            symbol=fill.symbol,
            side=fill.side,
            price=fill.price,
            qty=fill.qty,
            notional=fill.notional,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=fill.liquidity,
            ts=fill.ts,
        )


class EventPublic(BaseModel):
    """One entry of a parent's append-only event log."""

    model_config = _STRICT

    seq: int
    parent_id: str
    kind: str
    ts: UtcDatetime
    payload: dict[str, str]

    @classmethod
    def of(cls, record: EventRecord) -> EventPublic:
        """The public view of an event-log record."""
        return cls(
            seq=record.seq,
            parent_id=record.parent_id,
            kind=record.kind,
            ts=record.ts,
            payload=dict(record.payload),
        )


class Health(BaseModel):
    """Liveness of the service."""

    model_config = _STRICT

    status: Literal["ok"] = "ok"
    version: str
    time: UtcDatetime


class FieldProblem(BaseModel):
    """One problem with a request: the field at fault, the rule it breaks, and a sentence."""

    model_config = _STRICT

    field: str = Field(description="Dotted path of the field, or `body` for the whole request.")
    rule: str = Field(description="Short machine-readable name of the rule.")
    message: str = Field(description="What is wrong, in plain words, naming the field.")


class ErrorResponse(BaseModel):
    """Body of every error response."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_request",
                    "message": "quantity must be greater than 0 (got '-1')",
                    "errors": [
                        {
                            "field": "quantity",
                            "rule": "greater_than",
                            "message": "quantity must be greater than 0 (got '-1')",
                        }
                    ],
                }
            ]
        },
    )

    error: str = Field(description="Machine-readable error code, e.g. `invalid_request`.")
    message: str = Field(description="One readable sentence describing the problem.")
    errors: list[FieldProblem] = Field(default_factory=list)


# --- wording of validation errors --------------------------------------------------------------

_LOCATION_PREFIXES = frozenset({"body", "query", "path", "header", "cookie"})


def field_path(loc: Sequence[int | str]) -> str:
    """Dotted field path of a pydantic location, without the request part (``body``, ``query``)
    and without the union tag pydantic inserts after ``algo_params``."""
    parts = list(loc)
    if parts and parts[0] in _LOCATION_PREFIXES:
        parts = parts[1:]
    out: list[str] = []
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1] == "algo_params" and part in ALGO_NAMES:
            continue
        if isinstance(part, int):
            if out:
                out[-1] = f"{out[-1]}[{part}]"
                continue
            # A JSON decoding position, not a field.
            continue
        out.append(str(part))
    return ".".join(out) or "body"


def _bound(value: Any) -> Any:
    """A limit as a trader writes it: ``1`` rather than the float field's ``1.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_PATTERN_WORDING = {
    "client_id": "client_id may only contain letters, digits, '-' and '_' (1..36 characters)",
    "symbol": "symbol must be a unified symbol BASE/QUOTE in capitals, e.g. BTC/USDT",
}

_MISSING_WORDING = {
    "algo_params.rate": (
        'algo_params.rate is required for pov: the share of market volume to trade, e.g. "0.1"'
    ),
    "algo_params.display_qty": (
        "algo_params.display_qty is required for iceberg: the quantity shown on the book at a "
        'time, e.g. "0.2"'
    ),
}

_TYPE_WORDING = {
    "missing": "{field} is required",
    "extra_forbidden": "{field} is not a field of this request; remove it or check its spelling",
    "greater_than": "{field} must be greater than {gt} (got {input})",
    "greater_than_equal": "{field} must be at least {ge} (got {input})",
    "less_than": "{field} must be less than {lt} (got {input})",
    "less_than_equal": "{field} must be at most {le} (got {input})",
    "string_too_short": "{field} must have at least {min_length} character(s)",
    "string_too_long": "{field} must have at most {max_length} characters",
    "too_short": "{field} must have at least {min_length} item(s)",
    "too_long": "{field} must have at most {max_length} items",
    "string_type": "{field} must be a string",
    "decimal_parsing": '{field} must be a decimal number such as "0.5" (got {input})',
    "decimal_type": '{field} must be a decimal number such as "0.5" (got {input})',
    "decimal_max_places": "{field} may have at most {decimal_places} decimal places",
    "decimal_max_digits": "{field} may have at most {max_digits} digits",
    "decimal_whole_digits": "{field} has too many digits before the decimal point",
    "finite_number": "{field} must be a finite number",
    "int_parsing": "{field} must be a whole number (got {input})",
    "int_type": "{field} must be a whole number (got {input})",
    "int_from_float": "{field} must be a whole number (got {input})",
    "float_parsing": "{field} must be a number (got {input})",
    "float_type": "{field} must be a number (got {input})",
    "bool_parsing": "{field} must be true or false",
    "timezone_aware": (
        "{field} needs a timezone, e.g. 2026-05-01T12:00:00Z; a time without one is ambiguous"
    ),
    "datetime_parsing": (
        "{field} must be an ISO-8601 time with a timezone, e.g. 2026-05-01T12:00:00Z (got {input})"
    ),
    "datetime_from_date_parsing": (
        "{field} must be an ISO-8601 time with a timezone, e.g. 2026-05-01T12:00:00Z (got {input})"
    ),
    "datetime_type": "{field} must be an ISO-8601 time with a timezone, e.g. 2026-05-01T12:00:00Z",
    "enum": "{field} must be one of {expected} (got {input})",
    "literal_error": "{field} must be one of {expected} (got {input})",
    "list_type": "{field} must be a list",
    "tuple_type": "{field} must be a list",
    "dict_type": "{field} must be a JSON object",
    "model_type": "{field} must be a JSON object",
    "model_attributes_type": "{field} must be a JSON object",
    "union_tag_not_found": "{field} could not be matched to an algorithm",
    "union_tag_invalid": (
        "{field}.algo must name the order's algorithm, one of {expected_tags} (got '{tag}')"
    ),
}


def _describe(error: Mapping[str, Any]) -> FieldProblem:
    kind = str(error.get("type", "value_error"))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    field = str(ctx.get("field") or field_path(error.get("loc", ())))
    values = {k: _bound(v) for k, v in ctx.items() if k != "field"}
    values["field"] = field
    values["input"] = _shown(error.get("input"))
    if kind == "json_invalid":
        problem = str(ctx.get("error", "malformed JSON"))
        positions = [p for p in error.get("loc", ()) if isinstance(p, int)]
        if positions and "column" not in problem and "position" not in problem:
            problem = f"{problem} at character {positions[-1]}"
        return FieldProblem(
            field="body", rule=kind, message=f"request body is not valid JSON: {problem}"
        )
    if field == "body" and kind == "missing":
        return FieldProblem(
            field="body", rule=kind, message="request body is required: send a JSON object"
        )
    if kind == "missing" and field in _MISSING_WORDING:
        return FieldProblem(field=field, rule=kind, message=_MISSING_WORDING[field])
    if field == "body" and kind in ("dict_type", "model_type", "model_attributes_type"):
        return FieldProblem(
            field="body",
            rule=kind,
            message="request body must be a JSON object sent as Content-Type: application/json",
        )
    if field == "algo" and kind == "literal_error":
        return FieldProblem(
            field=field,
            rule="unknown_algo",
            message=f"algo {values['input']} is not available; choose one of: "
            + ", ".join(ALGO_NAMES),
        )
    if field == "side" and kind == "enum":
        return FieldProblem(
            field=field, rule=kind, message=f"side must be buy or sell (got {values['input']})"
        )
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return FieldProblem(field=field, rule=kind, message=f"{field} must not be empty")
    if kind == "string_pattern_mismatch":
        wording = _PATTERN_WORDING.get(field, f"{field} has an invalid format")
        return FieldProblem(field=field, rule=kind, message=wording)
    template = _TYPE_WORDING.get(kind)
    if template is not None:
        try:
            return FieldProblem(field=field, rule=kind, message=template.format(**values))
        except (KeyError, IndexError, ValueError):
            pass
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if field != "body" and not message.startswith(field):
        message = f"{field}: {message}"
    return FieldProblem(field=field, rule=kind, message=message)


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldProblem]:
    """Word pydantic/FastAPI validation errors for a trader: one problem per field and rule.

    An error about the algorithm parameters is dropped when ``algo`` itself is unknown, since it
    only restates that problem.
    """
    problems = [_describe(error) for error in errors]
    if any(p.field == "algo" for p in problems):
        problems = [
            p
            for p in problems
            if not (p.field.startswith("algo_params") and p.rule.startswith("union_tag"))
        ]
    unique: dict[tuple[str, str, str], FieldProblem] = {}
    for problem in problems:
        unique.setdefault((problem.field, problem.rule, problem.message), problem)
    return list(unique.values())
