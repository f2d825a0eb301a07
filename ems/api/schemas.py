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
from decimal import Decimal
from typing import Annotated, Any, Literal

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
from ems.orders import ChildOrder, ChildStatus, ParentOrder, ParentStatus
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


class TwapParams(BaseModel):
    """Parameters of the TWAP algorithm: even slices over the window, with seeded jitter."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"slice_interval_s": 60, "jitter_pct": 0.2, "seed": 7}]},
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

    def to_params(self) -> dict[str, Any]:
        """The algorithm's parameters as the manager expects them (without the ``algo`` tag)."""
        return self.model_dump(exclude={"algo"})


AlgoName = Literal["twap"]
"""The algorithms a parent order may use; extend together with :data:`AlgoParams`."""

ALGO_NAMES: tuple[str, ...] = ("twap",)

AlgoParams = Annotated[TwapParams, Field(discriminator="algo")]
"""Algorithm parameters, a union discriminated by ``algo`` (add ``| VwapParams`` and so on)."""


class ParentBase(BaseModel):
    """Fields describing what a parent order trades, shared by requests and responses."""

    model_config = _STRICT

    symbol: str = Field(description="Unified symbol, BASE/QUOTE (e.g. `BTC/USDT`).")
    side: Side = Field(description="`buy` or `sell`.")
    venues: tuple[str, ...] = Field(
        default=(), description="Venues to trade on; empty means every venue listing the symbol."
    )


class ParentCreate(ParentBase):
    """A request for a new parent order.

    ``client_id`` makes the request idempotent: sending the same id with the same body again
    returns the existing order; the same id with a different body is refused.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "client_id": "desk1-btc-0001",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": "0.5",
                    "algo": "twap",
                    "end_at": "2026-05-01T12:00:00Z",
                    "limit_price": "61000",
                    "venues": ["binance"],
                    "algo_params": {"slice_interval_s": 60, "jitter_pct": 0.2, "seed": 7},
                }
            ]
        },
    )

    symbol: str = Field(
        min_length=3,
        max_length=64,
        pattern=SYMBOL_PATTERN,
        description="Unified symbol, BASE/QUOTE (e.g. `BTC/USDT`); lower case is accepted.",
        examples=["BTC/USDT"],
    )
    algo: AlgoName = Field(description="Execution algorithm.", examples=["twap"])
    venues: tuple[str, ...] = Field(
        default=(),
        max_length=32,
        description="Venues to trade on; empty means every venue listing the symbol.",
        examples=[["binance", "coinbase"]],
    )
    client_id: str = Field(
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
        default_factory=TwapParams, description="Parameters of the chosen algorithm."
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
    def _cross_field_rules(self) -> ParentCreate:
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
        return self

    def algo_parameters(self) -> dict[str, Any]:
        """The algorithm parameters as a plain mapping for the manager."""
        return self.algo_params.to_params()


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

    @classmethod
    def of(cls, parent: ParentOrder) -> ParentPublic:
        """The public view of a stored parent order."""
        progress = float(parent.filled_qty / parent.quantity) if parent.quantity > 0 else 0.0
        return cls(
            id=parent.id,
            client_id=parent.client_id,
            status=parent.status,
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
        )


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


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_PATTERN_WORDING = {
    "client_id": "client_id may only contain letters, digits, '-' and '_' (1..36 characters)",
    "symbol": "symbol must be a unified symbol BASE/QUOTE in capitals, e.g. BTC/USDT",
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
    values = {k: v for k, v in ctx.items() if k != "field"}
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
    if not message.startswith(field):
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
