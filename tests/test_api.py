"""The REST API: schemas, validation wording, error mapping, and the routes over the real app,
manager and store (a simulated venue behind the manager)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ems.api.app import create_app
from ems.api.auth import create_api_key
from ems.api.schemas import (
    ALGO_NAMES,
    PARAMS_BY_ALGO,
    SUBMIT_EXAMPLES,
    ChildPublic,
    ErrorResponse,
    FieldProblem,
    IcebergParams,
    ParentAmend,
    ParentCreate,
    ParentPublic,
    PovParams,
    TwapParams,
    VwapParams,
    describe_errors,
    plain_decimal,
)
from ems.clock import TestClock
from ems.manager import ParentOrderManager
from ems.ports import VenuePort
from ems.store import SqlStore
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
QUALITY_FIGURES = (
    "tracking_error_mean",
    "tracking_error_max",
    "participation_rate",
    "maker_share",
    "market_volume",
)

VALID: dict[str, Any] = {
    "client_id": "desk1-btc-0001",
    "symbol": "BTC/USDT",
    "side": "buy",
    "quantity": "0.5",
    "algo": "twap",
    "end_at": "2026-05-01T13:00:00Z",
}


def _problems(body: Mapping[str, Any]) -> list[FieldProblem]:
    with pytest.raises(ValidationError) as info:
        ParentCreate.model_validate(body)
    return describe_errors(info.value.errors())


# --- schemas (pure pydantic) -----------------------------------------------------------------


def test_a_valid_request() -> None:
    request = ParentCreate.model_validate(
        {
            **VALID,
            "symbol": " btc/usdt ",
            "quantity": 0.1,  # a JSON number is accepted and kept exact
            "end_at": "2026-05-01T15:00:00+02:00",
            "limit_price": "61000.50",
            "venues": ["binance", "coinbase"],
            "algo_params": {"slice_interval_s": 60},
        }
    )
    assert request.symbol == "BTC/USDT"
    assert request.quantity == Decimal("0.1")
    assert request.end_at == datetime(2026, 5, 1, 13, 0, tzinfo=UTC)
    assert request.end_at.tzinfo is UTC
    assert request.algo_parameters() == {"slice_interval_s": 60, "jitter_pct": 0.2, "seed": 0}
    assert request.venues == ("binance", "coinbase")
    with pytest.raises(ValidationError):
        request.quantity = Decimal(1)  # frozen: refused at run time


def test_defaults() -> None:
    request = ParentCreate.model_validate(VALID)
    assert request.start_at is None and request.limit_price is None and request.venues == ()
    assert request.algo_parameters() == {"slice_interval_s": 30, "jitter_pct": 0.2, "seed": 0}


@pytest.mark.parametrize(
    ("change", "field", "rule", "message"),
    [
        (
            {"quantity": "0"},
            "quantity",
            "greater_than",
            "quantity must be greater than 0 (got '0')",
        ),
        ({"quantity": -1}, "quantity", "greater_than", "quantity must be greater than 0 (got -1)"),
        (
            {"quantity": "lots"},
            "quantity",
            "decimal_parsing",
            "quantity must be a decimal number such as \"0.5\" (got 'lots')",
        ),
        ({"quantity": "NaN"}, "quantity", "finite_number", "quantity must be a finite number"),
        (
            {"quantity": "0.0000000000000000001"},
            "quantity",
            "decimal_max_places",
            "quantity may have at most 18 decimal places",
        ),
        (
            {"quantity": "1e400"},
            "quantity",
            "decimal_max_digits",
            "quantity may have at most 36 digits",
        ),
        (
            {"limit_price": "-5"},
            "limit_price",
            "greater_than",
            "limit_price must be greater than 0 (got '-5')",
        ),
        (
            {"end_at": "2026-05-01T13:00:00"},
            "end_at",
            "timezone_aware",
            "end_at needs a timezone, e.g. 2026-05-01T12:00:00Z; a time without one is ambiguous",
        ),
        (
            {"start_at": "2026-05-01T12:00:00"},
            "start_at",
            "timezone_aware",
            "start_at needs a timezone, e.g. 2026-05-01T12:00:00Z; a time without one is ambiguous",
        ),
        (
            {"end_at": "at noon"},
            "end_at",
            "datetime_from_date_parsing",
            "end_at must be an ISO-8601 time with a timezone, e.g. 2026-05-01T12:00:00Z "
            "(got 'at noon')",
        ),
        (
            {"start_at": "2026-05-01T14:00:00Z"},
            "end_at",
            "end_after_start",
            "end_at (2026-05-01T13:00:00+00:00) must be after start_at (2026-05-01T14:00:00+00:00)",
        ),
        (
            {"start_at": "2026-05-01T13:00:00Z"},
            "end_at",
            "end_after_start",
            "end_at (2026-05-01T13:00:00+00:00) must be after start_at (2026-05-01T13:00:00+00:00)",
        ),
        (
            {"algo": "sniper"},
            "algo",
            "unknown_algo",
            "algo 'sniper' is not available; choose one of: twap, vwap, pov, iceberg",
        ),
        (
            {"algo_params": {"slice_interval_s": 0}},
            "algo_params.slice_interval_s",
            "greater_than_equal",
            "algo_params.slice_interval_s must be at least 1 (got 0)",
        ),
        (
            {"algo_params": {"slice_interval_s": 3601}},
            "algo_params.slice_interval_s",
            "less_than_equal",
            "algo_params.slice_interval_s must be at most 3600 (got 3601)",
        ),
        (
            {"algo_params": {"jitter_pct": 0.6}},
            "algo_params.jitter_pct",
            "less_than_equal",
            "algo_params.jitter_pct must be at most 0.5 (got 0.6)",
        ),
        (
            {"algo_params": {"seed": "x"}},
            "algo_params.seed",
            "int_parsing",
            "algo_params.seed must be a whole number (got 'x')",
        ),
        (
            {"algo_params": {"slices": 4}},
            "algo_params.slices",
            "extra_forbidden",
            "algo_params.slices is not a field of this request; remove it or check its spelling",
        ),
        (
            {"algo_params": {"algo": "vwap"}},
            "algo_params.algo",
            "algo_mismatch",
            "algo_params.algo: the parameters are for vwap, but algo is twap",
        ),
        (
            {"algo_params": {"algo": "sniper"}},
            "algo_params",
            "union_tag_invalid",
            "algo_params.algo must name the order's algorithm, one of 'twap', 'vwap', 'pov', "
            "'iceberg' (got 'sniper')",
        ),
        (
            {"urgency": "high"},
            "urgency",
            "extra_forbidden",
            "urgency is not a field of this request; remove it or check its spelling",
        ),
        (
            {"client_id": "desk 1"},
            "client_id",
            "string_pattern_mismatch",
            "client_id may only contain letters, digits, '-' and '_' (1..36 characters)",
        ),
        ({"client_id": ""}, "client_id", "string_too_short", "client_id must not be empty"),
        (
            {"client_id": "x" * 37},
            "client_id",
            "string_too_long",
            "client_id must have at most 36 characters",
        ),
        (
            {"symbol": "BTCUSDT"},
            "symbol",
            "string_pattern_mismatch",
            "symbol must be a unified symbol BASE/QUOTE in capitals, e.g. BTC/USDT",
        ),
        ({"side": "hold"}, "side", "enum", "side must be buy or sell (got 'hold')"),
        (
            {"venues": ["binance", "binance"]},
            "venues",
            "unique_venues",
            "venues: list each venue once (binance repeated)",
        ),
        (
            {"venues": ["Bin ance"]},
            "venues",
            "venue_name",
            "venues: 'Bin ance' is not a venue name (lower-case letters, digits, '-', '_', '.'; "
            "e.g. binance)",
        ),
        ({"venues": "binance"}, "venues", "tuple_type", "venues must be a list"),
    ],
)
def test_each_rule_names_its_field(
    change: dict[str, Any], field: str, rule: str, message: str
) -> None:
    problems = _problems({**VALID, **change})
    assert problems == [FieldProblem(field=field, rule=rule, message=message)]


@pytest.mark.parametrize("missing", ["client_id", "symbol", "side", "quantity", "algo", "end_at"])
def test_required_fields(missing: str) -> None:
    body = {k: v for k, v in VALID.items() if k != missing}
    assert _problems(body) == [
        FieldProblem(field=missing, rule="missing", message=f"{missing} is required")
    ]


def test_unknown_algo_is_reported_once_even_with_parameters() -> None:
    problems = _problems({**VALID, "algo": "sniper", "algo_params": {"participation": 0.1}})
    assert [p.field for p in problems] == ["algo"]


def test_several_problems_are_all_reported() -> None:
    problems = _problems({**VALID, "quantity": "0", "side": "short", "extra": 1})
    assert {p.field for p in problems} == {"quantity", "side", "extra"}


# --- algorithm parameters: the tagged union --------------------------------------------------


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_each_algo_has_a_full_example_that_validates(algo: str) -> None:
    example = SUBMIT_EXAMPLES[algo]
    request = ParentCreate.model_validate(example)
    params = request.algo_parameters()
    assert request.algo == algo and type(request.algo_params) is PARAMS_BY_ALGO[algo]
    assert "algo" not in params
    assert json.loads(json.dumps(params)) == params  # a plain JSON-safe mapping
    assert set(example["algo_params"]) <= set(params)
    assert "algo" not in example["algo_params"]  # the tag comes from the order's algo


@pytest.mark.parametrize(
    ("algo", "given", "expected"),
    [
        ("twap", {}, {"slice_interval_s": 30, "jitter_pct": 0.2, "seed": 0}),
        (
            "vwap",
            {},
            {"slice_interval_s": 30, "jitter_pct": 0.2, "seed": 0, "max_deviation": 0.2},
        ),
        (
            "vwap",
            {"max_deviation": 0, "slice_interval_s": 10, "expected_volume": 1500.5},
            {
                "slice_interval_s": 10,
                "jitter_pct": 0.2,
                "seed": 0,
                "expected_volume": "1500.5",
                "max_deviation": 0.0,
            },
        ),
        ("pov", {"rate": "0.10"}, {"rate": "0.1"}),  # the band defaults to the algorithm's
        (
            "pov",
            {"rate": 0.1, "min_rate": "0.05", "max_rate": "0.5", "max_child_qty": "0.250"},
            {"rate": "0.1", "min_rate": "0.05", "max_rate": "0.5", "max_child_qty": "0.25"},
        ),
        (
            "iceberg",
            {"display_qty": "0.2"},
            {
                "display_qty": "0.2",
                "display_jitter_pct": 0.2,
                "refresh_delay_s": 1.0,
                "refresh_jitter_pct": 0.5,
                "seed": 0,
                "native": "auto",
            },
        ),
        (
            "iceberg",
            {"display_qty": 0.05, "native": "never", "seed": 3, "refresh_delay_s": 0},
            {
                "display_qty": "0.05",
                "display_jitter_pct": 0.2,
                "refresh_delay_s": 0,
                "refresh_jitter_pct": 0.5,
                "seed": 3,
                "native": "never",
            },
        ),
    ],
)
def test_algo_parameters_are_passed_on_with_their_defaults(
    algo: str, given: dict[str, Any], expected: dict[str, Any]
) -> None:
    request = ParentCreate.model_validate({**VALID, "algo": algo, "algo_params": given})
    assert request.algo_parameters() == expected


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_execution_style_fields_are_accepted_by_every_algo_and_passed_on_when_given(
    algo: str,
) -> None:
    own = {"pov": {"rate": "0.1"}, "iceberg": {"display_qty": "0.1"}}.get(algo, {})
    style = {
        "i_would_price": "59000.50",
        "max_gap_bps": 7.5,
        "max_depth_bps": "40",
        "min_rest_s": 2.5,
        "reprice_ticks": 3,
    }
    with_style = ParentCreate.model_validate(
        {**VALID, "algo": algo, "limit_price": "61000", "algo_params": {**own, **style}}
    ).algo_parameters()
    without = ParentCreate.model_validate(
        {**VALID, "algo": algo, "algo_params": own}
    ).algo_parameters()

    assert {key: with_style[key] for key in style} == {
        "i_would_price": "59000.5",
        "max_gap_bps": "7.5",
        "max_depth_bps": "40",
        "min_rest_s": 2.5,
        "reprice_ticks": 3,
    }
    assert not set(style) & set(without)  # unset: the algorithm's documented defaults apply
    assert {k: v for k, v in with_style.items() if k not in style} == without
    defaults = PARAMS_BY_ALGO[algo].model_fields
    assert (defaults["max_gap_bps"].default, defaults["max_depth_bps"].default) == (20, 50)
    assert (defaults["min_rest_s"].default, defaults["reprice_ticks"].default) == (5, 2)
    assert defaults["i_would_price"].default is None


@pytest.mark.parametrize(
    ("algo", "params", "field", "rule", "message"),
    [
        (
            "vwap",
            {"max_deviation": 1.5},
            "algo_params.max_deviation",
            "less_than_equal",
            "algo_params.max_deviation must be at most 1 (got 1.5)",
        ),
        (
            "vwap",
            {"max_deviation": -0.1},
            "algo_params.max_deviation",
            "greater_than_equal",
            "algo_params.max_deviation must be at least 0 (got -0.1)",
        ),
        (
            "vwap",
            {"expected_volume": "0"},
            "algo_params.expected_volume",
            "greater_than",
            "algo_params.expected_volume must be greater than 0 (got '0')",
        ),
        (
            "vwap",
            {"blend": 0.5},
            "algo_params.blend",
            "extra_forbidden",
            "algo_params.blend is not a field of this request; remove it or check its spelling",
        ),
        (
            "vwap",
            {"slice_interval_s": 0},
            "algo_params.slice_interval_s",
            "greater_than_equal",
            "algo_params.slice_interval_s must be at least 1 (got 0)",
        ),
        (
            "pov",
            {"rate": "0.1", "jitter_pct": 0.1},
            "algo_params.jitter_pct",
            "extra_forbidden",
            "algo_params.jitter_pct is not a field of this request; remove it or check its "
            "spelling",
        ),
        (
            "pov",
            {"rate": "0.1", "min_child_qty": "0.5", "max_child_qty": "0.25"},
            "algo_params.min_child_qty",
            "min_child_above_max_child",
            "algo_params.min_child_qty (0.5) must not be above algo_params.max_child_qty "
            "(0.25): the smallest child cannot be larger than the largest",
        ),
        (
            "iceberg",
            {"display_qty": "0.1", "refresh_jitter_pct": 1.5},
            "algo_params.refresh_jitter_pct",
            "less_than_equal",
            "algo_params.refresh_jitter_pct must be at most 1 (got 1.5)",
        ),
        (
            "pov",
            {},
            "algo_params.rate",
            "missing",
            'algo_params.rate is required for pov: the share of market volume to trade, e.g. "0.1"',
        ),
        (
            "pov",
            {"rate": "0"},
            "algo_params.rate",
            "greater_than",
            "algo_params.rate must be greater than 0 (got '0')",
        ),
        (
            "pov",
            {"rate": "0.51"},
            "algo_params.rate",
            "less_than_equal",
            "algo_params.rate must be at most 0.5 (got '0.51')",
        ),
        (
            "pov",
            {"rate": "0.1", "min_rate": "-0.01"},
            "algo_params.min_rate",
            "greater_than_equal",
            "algo_params.min_rate must be at least 0 (got '-0.01')",
        ),
        (
            "pov",
            {"rate": "0.1", "min_rate": "0.2"},
            "algo_params.min_rate",
            "min_rate_above_rate",
            "algo_params.min_rate (0.2) must not be above algo_params.rate (0.1): the floor of "
            "participation cannot exceed its target",
        ),
        (
            "pov",
            {"rate": "0.1", "max_rate": "0.05"},
            "algo_params.max_rate",
            "max_rate_below_rate",
            "algo_params.max_rate (0.05) must not be below algo_params.rate (0.1): the cap on "
            "participation cannot be under its target",
        ),
        (
            "pov",
            {"rate": "0.1", "max_rate": "0.6"},
            "algo_params.max_rate",
            "less_than_equal",
            "algo_params.max_rate must be at most 0.5 (got '0.6')",
        ),
        (
            "pov",
            {"rate": "0.1", "max_child_qty": "0"},
            "algo_params.max_child_qty",
            "greater_than",
            "algo_params.max_child_qty must be greater than 0 (got '0')",
        ),
        (
            "iceberg",
            {},
            "algo_params.display_qty",
            "missing",
            "algo_params.display_qty is required for iceberg: the quantity shown on the book at "
            'a time, e.g. "0.2"',
        ),
        (
            "iceberg",
            {"display_qty": "-1"},
            "algo_params.display_qty",
            "greater_than",
            "algo_params.display_qty must be greater than 0 (got '-1')",
        ),
        (
            "iceberg",
            {"display_qty": "0.6"},
            "algo_params.display_qty",
            "display_above_quantity",
            "algo_params.display_qty (0.6) is more than the order quantity (0.5): an iceberg "
            "shows only part of the order",
        ),
        (
            "iceberg",
            {"display_qty": "0.1", "display_jitter_pct": 0.6},
            "algo_params.display_jitter_pct",
            "less_than_equal",
            "algo_params.display_jitter_pct must be at most 0.5 (got 0.6)",
        ),
        (
            "iceberg",
            {"display_qty": "0.1", "refresh_delay_s": 3601},
            "algo_params.refresh_delay_s",
            "less_than_equal",
            "algo_params.refresh_delay_s must be at most 3600 (got 3601)",
        ),
        (
            "iceberg",
            {"display_qty": "0.1", "native": "always"},
            "algo_params.native",
            "literal_error",
            "algo_params.native must be one of 'auto' or 'never' (got 'always')",
        ),
        (
            "twap",
            {"i_would_price": "0"},
            "algo_params.i_would_price",
            "greater_than",
            "algo_params.i_would_price must be greater than 0 (got '0')",
        ),
        (
            "twap",
            {"max_gap_bps": 0},
            "algo_params.max_gap_bps",
            "greater_than_equal",
            "algo_params.max_gap_bps must be at least 1 (got 0)",
        ),
        (
            "vwap",
            {"max_gap_bps": 1001},
            "algo_params.max_gap_bps",
            "less_than_equal",
            "algo_params.max_gap_bps must be at most 1000 (got 1001)",
        ),
        (
            "twap",
            {"max_depth_bps": 5001},
            "algo_params.max_depth_bps",
            "less_than_equal",
            "algo_params.max_depth_bps must be at most 5000 (got 5001)",
        ),
        (
            "twap",
            {"min_rest_s": 601},
            "algo_params.min_rest_s",
            "less_than_equal",
            "algo_params.min_rest_s must be at most 600 (got 601)",
        ),
        (
            "twap",
            {"reprice_ticks": 0},
            "algo_params.reprice_ticks",
            "greater_than_equal",
            "algo_params.reprice_ticks must be at least 1 (got 0)",
        ),
        (
            "pov",
            {"rate": "0.1", "reprice_ticks": 1001},
            "algo_params.reprice_ticks",
            "less_than_equal",
            "algo_params.reprice_ticks must be at most 1000 (got 1001)",
        ),
    ],
)
def test_each_algo_rule_names_its_field(
    algo: str, params: dict[str, Any], field: str, rule: str, message: str
) -> None:
    problems = _problems({**VALID, "algo": algo, "algo_params": params})
    assert problems == [FieldProblem(field=field, rule=rule, message=message)]


@pytest.mark.parametrize(
    ("side", "i_would", "limit", "message"),
    [
        (
            "buy",
            "61500",
            "61000",
            "algo_params.i_would_price (61500) is above limit_price (61000): for a buy the "
            "I-would price is a better price than the limit, so it must be at or below it",
        ),
        (
            "sell",
            "60500",
            "61000",
            "algo_params.i_would_price (60500) is below limit_price (61000): for a sell the "
            "I-would price is a better price than the limit, so it must be at or above it",
        ),
    ],
)
def test_the_i_would_price_must_be_on_the_good_side_of_the_limit(
    side: str, i_would: str, limit: str, message: str
) -> None:
    body = {**VALID, "side": side, "limit_price": limit, "algo_params": {"i_would_price": i_would}}
    assert _problems(body) == [
        FieldProblem(
            field="algo_params.i_would_price", rule="i_would_beyond_limit", message=message
        )
    ]
    for fine in (i_would, None):  # at the limit, or with no limit at all
        ParentCreate.model_validate({**body, "limit_price": fine})


def test_params_of_another_algo_are_refused_naming_the_field() -> None:
    problems = _problems({**VALID, "algo": "twap", "algo_params": {"rate": "0.1"}})
    assert problems == [
        FieldProblem(
            field="algo_params.rate",
            rule="extra_forbidden",
            message="algo_params.rate is not a field of this request; remove it or check its "
            "spelling",
        )
    ]
    problems = _problems({**VALID, "algo": "pov", "algo_params": {"algo": "iceberg"}})
    assert [p.rule for p in problems] == ["missing"]  # the iceberg's display_qty
    problems = _problems(
        {**VALID, "algo": "pov", "algo_params": {"algo": "iceberg", "display_qty": "0.1"}}
    )
    assert problems == [
        FieldProblem(
            field="algo_params.algo",
            rule="algo_mismatch",
            message="algo_params.algo: the parameters are for iceberg, but algo is pov",
        )
    ]


def test_algo_params_models_are_frozen_and_strict() -> None:
    params = PovParams.model_validate({"rate": "0.2"})
    with pytest.raises(ValidationError):
        params.rate = Decimal("0.3")  # type: ignore[misc]
    with pytest.raises(ValidationError):
        VwapParams.model_validate({"max_deviation": 0.5, "colour": "red"})
    assert IcebergParams.model_validate({"display_qty": "1"}).native == "auto"
    assert TwapParams().to_params() == {"slice_interval_s": 30, "jitter_pct": 0.2, "seed": 0}


# --- amendments (pure pydantic) ----------------------------------------------------------------


def _amend_problems(body: Mapping[str, Any]) -> list[FieldProblem]:
    with pytest.raises(ValidationError) as info:
        ParentAmend.model_validate(body)
    return describe_errors(info.value.errors())


def test_a_valid_amendment() -> None:
    amend = ParentAmend.model_validate(
        {"quantity": "0.80", "limit_price": 61500, "end_at": "2026-05-01T16:00:00+02:00"}
    )
    assert (amend.quantity, amend.limit_price) == (Decimal("0.8"), Decimal(61500))
    assert amend.end_at == datetime(2026, 5, 1, 14, 0, tzinfo=UTC) and not amend.clear_limit
    cleared = ParentAmend.model_validate({"limit_price": None, "clear_limit": True})
    assert cleared.clear_limit and cleared.limit_price is None
    assert ParentAmend.model_validate({"clear_limit": True}).clear_limit


@pytest.mark.parametrize(
    ("body", "field", "rule", "message"),
    [
        (
            {},
            "body",
            "nothing_to_amend",
            "nothing to amend: give quantity, limit_price, end_at or clear_limit",
        ),
        (
            {"clear_limit": False},
            "body",
            "nothing_to_amend",
            "nothing to amend: give quantity, limit_price, end_at or clear_limit",
        ),
        (
            {"limit_price": None},
            "limit_price",
            "null_limit",
            'limit_price: null does not change the order; to remove the limit price send "clear_'
            'limit": true',
        ),
        (
            {"limit_price": "61000", "clear_limit": True},
            "clear_limit",
            "clear_limit_with_price",
            "clear_limit: true removes the limit price, so do not also send limit_price (61000); "
            "send one or the other",
        ),
        (
            {"quantity": "0"},
            "quantity",
            "greater_than",
            "quantity must be greater than 0 (got '0')",
        ),
        (
            {"end_at": "2026-05-01T14:00:00"},
            "end_at",
            "timezone_aware",
            "end_at needs a timezone, e.g. 2026-05-01T12:00:00Z; a time without one is ambiguous",
        ),
        (
            {"quantity": "1", "side": "sell"},
            "side",
            "extra_forbidden",
            "side is not a field of this request; remove it or check its spelling",
        ),
        (
            {"clear_limit": "maybe"},
            "clear_limit",
            "bool_parsing",
            "clear_limit must be true or false",
        ),
    ],
)
def test_each_amendment_rule_names_its_field(
    body: dict[str, Any], field: str, rule: str, message: str
) -> None:
    assert _amend_problems(body) == [FieldProblem(field=field, rule=rule, message=message)]


def test_decimals_serialise_as_exact_strings() -> None:
    assert plain_decimal(Decimal("0.50000000")) == "0.5"
    assert plain_decimal(Decimal("1E+3")) == "1000"
    assert plain_decimal(Decimal("-0.000")) == "0"
    assert plain_decimal(Decimal("123456789.123456789123456789")) == "123456789.123456789123456789"
    dumped = ParentCreate.model_validate({**VALID, "quantity": "0.10", "limit_price": 5e4})
    assert dumped.model_dump(mode="json")["quantity"] == "0.1"
    assert dumped.model_dump(mode="json")["limit_price"] == "50000"


def test_openapi_documents_the_api() -> None:
    api = create_app(None, None)  # type: ignore[arg-type]  # building the schema needs neither
    spec = api.openapi()
    assert spec["info"]["title"] == "Staged EMS"
    assert {t["name"] for t in spec["tags"]} == {
        "parents",
        "actions",
        "routing",
        "risk",
        "system",
    }
    assert set(spec["paths"]) == {
        "/v1/health",
        "/v1/parents",
        "/v1/parents/{parent_id}",
        "/v1/parents/{parent_id}/children",
        "/v1/parents/{parent_id}/fills",
        "/v1/parents/{parent_id}/events",
        "/v1/parents/{parent_id}/cancel",
        "/v1/parents/{parent_id}/pause",
        "/v1/parents/{parent_id}/resume",
        "/v1/parents/{parent_id}/routes",
        "/v1/impact-curves",
        "/v1/preview",
        "/v1/risk",
        "/v1/risk/state",
        "/v1/risk/limits",
        "/v1/risk/audit",
        "/v1/coverage",
        "/v1/coverage/decisions",
        "/v1/coverage/phase",
        "/v1/coverage/unwind",
    }
    assert set(spec["paths"]["/v1/risk/state"]) == {"put"}
    assert set(spec["paths"]["/v1/risk/limits"]["put"]["responses"]) >= {"200", "401", "403", "422"}
    post = spec["paths"]["/v1/parents"]["post"]
    assert set(post["responses"]) >= {"200", "201", "401", "403", "409", "422"}
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "security" not in spec["paths"]["/v1/health"]["get"]
    assert set(spec["components"]["securitySchemes"]) == {"BearerKey", "ApiKeyHeader"}
    schemas = spec["components"]["schemas"]
    assert schemas["ParentCreate"]["examples"]
    assert schemas["ParentCreate"]["properties"]["algo_params"]["discriminator"] == {
        "propertyName": "algo",
        "mapping": {
            "twap": "#/components/schemas/TwapParams",
            "vwap": "#/components/schemas/VwapParams",
            "pov": "#/components/schemas/PovParams",
            "iceberg": "#/components/schemas/IcebergParams",
        },
    }
    public = schemas.get("ParentPublic-Output", schemas.get("ParentPublic"))
    assert public["properties"]["quantity"]["type"] == "string"
    assert set(QUALITY_FIGURES) <= set(public["properties"])
    assert all(public["properties"][name].get("description") for name in QUALITY_FIGURES)


def test_openapi_documents_every_algo_and_the_amend_route() -> None:
    spec = create_app(None, None).openapi()  # type: ignore[arg-type]
    schemas = spec["components"]["schemas"]
    for name in ("TwapParams", "VwapParams", "PovParams", "IcebergParams"):
        schema = schemas[name]
        assert schema["description"] and schema["examples"], name
        assert all(prop.get("description") for prop in schema["properties"].values()), name
        assert {"i_would_price", "max_gap_bps", "max_depth_bps", "min_rest_s", "reprice_ticks"} <= (
            set(schema["properties"])
        )
    assert schemas["PovParams"]["required"] == ["rate"]
    assert schemas["IcebergParams"]["required"] == ["display_qty"]
    examples = spec["paths"]["/v1/parents"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert set(examples) == set(ALGO_NAMES)
    assert {name: ex["value"]["algo"] for name, ex in examples.items()} == {
        name: name for name in ALGO_NAMES
    }
    assert [body["algo"] for body in schemas["ParentCreate"]["examples"]] == list(ALGO_NAMES)

    patch = spec["paths"]["/v1/parents/{parent_id}"]["patch"]
    assert patch["tags"] == ["actions"] and patch["summary"] == "Amend a parent order"
    assert patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ParentAmend"
    )
    assert set(patch["responses"]) >= {"200", "401", "403", "404", "409", "422"}
    amend = schemas["ParentAmend"]
    assert set(amend["properties"]) == {"quantity", "limit_price", "end_at", "clear_limit"}
    assert amend["additionalProperties"] is False and amend["examples"]


# --- the app ---------------------------------------------------------------------------------


@dataclass
class Api:
    """A client of the real app with one key per role, and the store behind it."""

    http: httpx.AsyncClient
    store: SqlStore
    clock: TestClock
    manager: ParentOrderManager
    keys: dict[str, str]

    def auth(self, role: str = "trader") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def post(self, path: str, body: Any = None, role: str = "trader") -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth(role))

    async def get(self, path: str, role: str = "viewer", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth(role))


async def _api(
    store: SqlStore, venues: Mapping[str, VenuePort], clock: TestClock | None = None
) -> AsyncIterator[Api]:
    clock = clock or TestClock(NOW)
    manager = ParentOrderManager(store, venues, clock)
    keys = {role: create_api_key(store, f"{role}-1", role, NOW)[0] for role in ("viewer", "trader")}
    transport = httpx.ASGITransport(app=create_app(manager, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ems.test") as http:
        yield Api(http, store, clock, manager, keys)


@pytest.fixture
async def bare_api(store: SqlStore) -> AsyncIterator[Api]:
    """The app with a manager that has no venue: enough for everything refused up front."""
    async for api in _api(store, {}):
        yield api


def _assert_refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    ErrorResponse.model_validate(body)
    assert body["error"] == error
    return body


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"quantity": "0"}, "quantity", "quantity must be greater than 0"),
        ({"quantity": "-0.5"}, "quantity", "quantity must be greater than 0"),
        ({"start_at": "2026-05-01T14:00:00Z"}, "end_at", "end_at (2026-05-01T13:00:00+00:00) must"),
        ({"end_at": "2026-05-01T13:00:00"}, "end_at", "end_at needs a timezone"),
        ({"algo": "sniper"}, "algo", "algo 'sniper' is not available; choose one of: twap,"),
        ({"colour": "red"}, "colour", "colour is not a field of this request"),
        ({"side": "long"}, "side", "side must be buy or sell"),
    ],
)
async def test_invalid_requests_get_422_naming_the_field_and_store_nothing(
    bare_api: Api, change: dict[str, Any], field: str, fragment: str
) -> None:
    response = await bare_api.post("/v1/parents", {**VALID, **change})
    body = _assert_refused(response, 422, "invalid_request")
    assert body["errors"][0]["field"] == field
    assert fragment in body["message"] and fragment in body["errors"][0]["message"]
    assert bare_api.store.list_parents() == []
    assert bare_api.store.get_parent_by_client_id(VALID["client_id"]) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"client_id": "a",', "request body is not valid JSON: Expecting"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b"", "request body is required: send a JSON object"),
    ],
)
async def test_malformed_bodies_get_422(bare_api: Api, content: bytes, message: str) -> None:
    response = await bare_api.http.post(
        "/v1/parents",
        content=content,
        headers={**bare_api.auth(), "Content-Type": "application/json"},
    )
    body = _assert_refused(response, 422, "invalid_request")
    assert body["message"].startswith(message)
    assert body["errors"][0]["field"] == "body"
    assert bare_api.store.list_parents() == []


async def test_market_checks_are_422_naming_the_field(bare_api: Api) -> None:
    response = await bare_api.post("/v1/parents", VALID)
    body = _assert_refused(response, 422, "invalid_order")
    assert body["errors"] == [{"field": "symbol", "rule": "order_rule", "message": body["message"]}]
    assert body["message"].startswith("symbol: unknown symbol 'BTC/USDT'")
    assert bare_api.store.list_parents() == []


async def test_unknown_parents_are_404(bare_api: Api) -> None:
    for path in ("", "/children", "/fills", "/events"):
        response = await bare_api.get(f"/v1/parents/P404{path}")
        body = _assert_refused(response, 404, "not_found")
        assert body["message"] == "parent P404 does not exist"
    for action in ("cancel", "pause", "resume"):
        response = await bare_api.post(f"/v1/parents/P404/{action}")
        assert _assert_refused(response, 404, "not_found")["message"] == (
            "parent P404 does not exist"
        )
    response = await bare_api.http.patch(
        "/v1/parents/P404", json={"quantity": "1"}, headers=bare_api.auth()
    )
    assert _assert_refused(response, 404, "not_found")["message"] == "parent P404 does not exist"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({}, "body", "nothing to amend"),
        ({"quantity": "-1"}, "quantity", "quantity must be greater than 0"),
        ({"end_at": "2026-05-01T14:00:00"}, "end_at", "end_at needs a timezone"),
        ({"limit_price": None}, "limit_price", "to remove the limit price send"),
        ({"quantity": "1", "algo": "vwap"}, "algo", "algo is not a field of this request"),
    ],
)
async def test_invalid_amendments_get_422_naming_the_field(
    bare_api: Api, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = await bare_api.http.patch("/v1/parents/P1", json=body, headers=bare_api.auth())
    problem = _assert_refused(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == field
    assert fragment in problem["message"]


async def test_a_viewer_cannot_amend(bare_api: Api) -> None:
    response = await bare_api.http.patch(
        "/v1/parents/P1", json={"quantity": "1"}, headers=bare_api.auth("viewer")
    )
    assert _assert_refused(response, 403, "forbidden")["message"].startswith(
        "this action needs the trader role"
    )


async def test_query_parameters_are_checked(bare_api: Api) -> None:
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "sleeping"}, "status"),
    ):
        response = await bare_api.get("/v1/parents", **params)
        body = _assert_refused(response, 422, "invalid_request")
        assert body["errors"][0]["field"] == field, params
        assert body["message"].startswith(field)
    response = await bare_api.get("/v1/parents", limit=500, offset=0, status="working")
    assert response.status_code == 200
    assert response.json() == {"items": [], "limit": 500, "offset": 0, "next_offset": None}


async def test_unknown_routes_and_methods(bare_api: Api) -> None:
    response = await bare_api.http.get("/v2/parents", headers=bare_api.auth())
    assert _assert_refused(response, 404, "not_found")["message"] == (
        "no route GET /v2/parents; see /docs"
    )
    response = await bare_api.http.delete("/v1/parents", headers=bare_api.auth())
    _assert_refused(response, 405, "method_not_allowed")


async def test_docs_are_served(bare_api: Api) -> None:
    assert (await bare_api.http.get("/docs")).status_code == 200
    assert (await bare_api.http.get("/openapi.json")).json()["info"]["title"] == "Staged EMS"


def test_public_view_of_a_parent() -> None:
    from ems.domain import Side
    from ems.orders import ParentOrder, ParentStatus

    parent = ParentOrder(
        id="P1",
        client_id="c1",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=Decimal("2.000"),
        algo="twap",
        venues=("binance",),
        start_at=NOW,
        end_at=NOW + timedelta(hours=1),
        created_at=NOW,
        updated_at=NOW,
        limit_price=Decimal("61000.00"),
        algo_params={"slice_interval_s": 60},
        status=ParentStatus.WORKING,
        filled_qty=Decimal("0.5"),
        filled_notional=Decimal("30000.25"),
        fees=Decimal("0.0005"),
        maker_qty=Decimal("0.125"),
        market_volume=Decimal("12.50"),
        tracking_samples=3,
        tracking_abs_sum=Decimal("0.1"),
        tracking_max=Decimal("0.05"),
    )
    view = ParentPublic.of(parent).model_dump(mode="json")
    assert view == {
        "symbol": "BTC/USDT",
        "side": "buy",
        "venues": ["binance"],
        "id": "P1",
        "client_id": "c1",
        "status": "working",
        "quantity": "2",
        "filled_qty": "0.5",
        "remaining_qty": "1.5",
        "avg_price": "60000.5",
        "fees": "0.0005",
        "algo": "twap",
        "algo_params": {"slice_interval_s": 60},
        "start_at": "2026-05-01T12:00:00Z",
        "end_at": "2026-05-01T13:00:00Z",
        "limit_price": "61000",
        "reason": "",
        "created_at": "2026-05-01T12:00:00Z",
        "updated_at": "2026-05-01T12:00:00Z",
        "progress": 0.25,
        "tracking_error_mean": "0.03333333",  # 0.1 / 3 samples, shown to 8 places
        "tracking_error_max": "0.05",
        "participation_rate": "0.04",  # 0.5 filled of 12.5 traded
        "maker_share": "0.25",
        "market_volume": "12.5",
        "role": "trade",
        "reduce_only": False,
    }
    fresh = dataclasses.replace(
        parent,
        filled_qty=Decimal(0),
        filled_notional=Decimal(0),
        maker_qty=Decimal(0),
        market_volume=Decimal(0),
        tracking_samples=0,
        tracking_abs_sum=Decimal(0),
        tracking_max=Decimal(0),
    )
    figures = ParentPublic.of(fresh).model_dump(mode="json")
    assert {key: figures[key] for key in QUALITY_FIGURES} == {
        "tracking_error_mean": None,
        "tracking_error_max": None,
        "participation_rate": None,
        "maker_share": None,
        "market_volume": "0",
    }


# --- the full stack: manager, store and a simulated venue ------------------------------------

VENUE = "sim"


@pytest.fixture
async def api(store: SqlStore) -> AsyncIterator[Api]:
    """The app over the real manager, a store on each backend and a seeded synthetic venue."""
    clock = TestClock(NOW)
    venue = SimVenue.from_synthetic(
        clock=clock, config=binance_btcusdt_config(VENUE), seed=7, duration=timedelta(hours=3)
    )
    clock.advance(timedelta(seconds=1))
    async for client in _api(store, {VENUE: venue}, clock):
        yield client


def _order(client_id: str = "desk1-btc-0001", **changes: Any) -> dict[str, Any]:
    return {**VALID, "client_id": client_id, **changes}


async def _submit(api: Api, **changes: Any) -> dict[str, Any]:
    response = await api.post("/v1/parents", _order(**changes))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _run_until_terminal(api: Api, parent_id: str, limit: int = 2000) -> dict[str, Any]:
    for _ in range(limit):
        await api.manager.step()
        parent = (await api.get(f"/v1/parents/{parent_id}")).json()
        if parent["status"] in ("completed", "cancelled", "expired", "rejected"):
            return dict(parent)
        api.clock.advance(timedelta(seconds=1))
    raise AssertionError(f"{parent_id} did not finish")


async def test_submit_creates_a_durable_parent(api: Api) -> None:
    body = _order(
        limit_price="65000",
        venues=[VENUE],
        algo_params={"slice_interval_s": 60, "jitter_pct": 0.1, "seed": 3},
    )
    response = await api.post("/v1/parents", body)
    assert response.status_code == 201, response.text
    parent = response.json()
    assert response.headers["Location"] == f"/v1/parents/{parent['id']}"
    assert parent["status"] == "accepted"
    assert (parent["client_id"], parent["symbol"], parent["side"]) == (
        "desk1-btc-0001",
        "BTC/USDT",
        "buy",
    )
    assert (parent["quantity"], parent["filled_qty"], parent["remaining_qty"]) == (
        "0.5",
        "0",
        "0.5",
    )
    assert parent["avg_price"] is None and parent["fees"] == "0" and parent["progress"] == 0
    assert parent["limit_price"] == "65000" and parent["venues"] == [VENUE]
    assert parent["algo_params"] == {"slice_interval_s": 60, "jitter_pct": 0.1, "seed": 3}
    assert parent["start_at"] == "2026-05-01T12:00:01Z"
    assert parent["end_at"] == "2026-05-01T13:00:00Z"
    stored = api.store.get_parent(parent["id"])
    assert stored is not None and stored.quantity == Decimal("0.5")
    assert (await api.get(f"/v1/parents/{parent['id']}")).json() == parent


async def test_same_client_id_same_body_is_replayed_with_200(api: Api) -> None:
    first = await _submit(api)
    again = await api.post("/v1/parents", _order(quantity=0.5, end_at="2026-05-01T15:00:00+02:00"))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert len(api.store.list_parents()) == 1


async def test_same_client_id_other_body_is_409(api: Api) -> None:
    first = await _submit(api)
    response = await api.post("/v1/parents", _order(quantity="0.6"))
    body = _assert_refused(response, 409, "conflict")
    assert body["message"] == (
        f"client_id 'desk1-btc-0001' was already used for parent {first['id']} "
        "with a different request"
    )
    assert [p.quantity for p in api.store.list_parents()] == [Decimal("0.5")]


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"quantity": "0.123456"}, "quantity", "is not a multiple of the lot size 0.00001"),
        ({"quantity": "0.00002"}, "quantity", "is below the smallest tradable size"),
        ({"limit_price": "10000"}, "limit_price", "away from the market mid"),
        ({"limit_price": "61000.001"}, "limit_price", "is not a multiple of the tick size 0.01"),
        ({"end_at": "2026-05-01T11:00:00Z"}, "end_at", "must be after start_at"),
        (
            {"start_at": "2026-05-01T10:00:00Z", "end_at": "2026-05-01T11:00:00Z"},
            "end_at",
            "is in the past",
        ),
        ({"symbol": "ETH/USDT"}, "symbol", "unknown symbol 'ETH/USDT'"),
        ({"venues": ["kraken"]}, "venues", "unknown venue 'kraken'"),
    ],
)
async def test_market_rules_get_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str, fragment: str
) -> None:
    response = await api.post("/v1/parents", _order(**change))
    body = _assert_refused(response, 422, "invalid_order")
    assert body["errors"][0]["field"] == field
    assert body["message"].startswith(field) and fragment in body["message"]
    assert api.store.list_parents() == []


async def test_pause_resume_cancel(api: Api) -> None:
    parent_id = (await _submit(api))["id"]

    paused = await api.post(f"/v1/parents/{parent_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert (await api.post(f"/v1/parents/{parent_id}/pause")).json()["status"] == "paused"
    resumed = await api.post(f"/v1/parents/{parent_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "working"

    cancelled = await api.post(f"/v1/parents/{parent_id}/cancel", {"reason": "bottom failed"})
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == (
        "cancelling",
        "bottom failed",
    )
    for action, verb in (("pause", "paused"), ("resume", "resumed")):
        response = await api.post(f"/v1/parents/{parent_id}/{action}")
        assert _assert_refused(response, 409, "invalid_transition")["message"] == (
            f"parent {parent_id} is cancelling; it cannot be {verb}"
        )

    final = await _run_until_terminal(api, parent_id)
    assert final["status"] == "cancelled"
    response = await api.post(f"/v1/parents/{parent_id}/cancel")
    assert _assert_refused(response, 409, "invalid_transition")["message"] == (
        f"parent {parent_id} is cancelled; it cannot be cancelled"
    )
    kinds = [e["kind"] for e in (await api.get(f"/v1/parents/{parent_id}/events")).json()]
    assert kinds[:5] == [
        "parent_accepted",
        "parent_paused",
        "parent_paused",
        "parent_resumed",
        "parent_cancel_requested",
    ]
    assert kinds[-1] == "parent_wound_down"


async def test_cancel_without_a_body_records_who(api: Api) -> None:
    parent_id = (await _submit(api))["id"]
    response = await api.post(f"/v1/parents/{parent_id}/cancel")
    assert response.status_code == 200
    assert response.json()["reason"] == "cancelled by trader-1"


async def test_a_parent_runs_to_completion_and_shows_its_trail(api: Api) -> None:
    parent = await _submit(
        api,
        quantity="0.05",
        end_at="2026-05-01T12:03:00Z",
        algo_params={"slice_interval_s": 20, "seed": 1},
    )
    parent_id = parent["id"]
    final = await _run_until_terminal(api, parent_id)
    assert final["status"] == "completed", final
    assert final["filled_qty"] == "0.05" and final["remaining_qty"] == "0"
    assert final["progress"] == 1.0

    fills = (await api.get(f"/v1/parents/{parent_id}/fills")).json()
    assert fills and all(isinstance(f["qty"], str) and isinstance(f["price"], str) for f in fills)
    assert sum(Decimal(f["qty"]) for f in fills) == Decimal("0.05")
    notional = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills)
    assert Decimal(final["avg_price"]) == notional / Decimal("0.05")
    assert Decimal(final["fees"]) == sum(Decimal(f["fee"]) for f in fills)
    assert {f["notional"] for f in fills} == {
        plain_decimal(Decimal(f["qty"]) * Decimal(f["price"])) for f in fills
    }

    children = (await api.get(f"/v1/parents/{parent_id}/children")).json()
    assert children and [c["seq"] for c in children] == sorted(c["seq"] for c in children)
    assert all(c["parent_id"] == parent_id and c["venue"] == VENUE for c in children)
    assert sum(Decimal(c["filled_qty"]) for c in children) == Decimal("0.05")
    assert {f["client_order_id"] for f in fills} <= {c["client_order_id"] for c in children}

    events = (await api.get(f"/v1/parents/{parent_id}/events")).json()
    assert events[0]["kind"] == "parent_accepted" and events[-1]["kind"] == "parent_completed"
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert all(isinstance(v, str) for e in events for v in e["payload"].values())

    response = await api.post(f"/v1/parents/{parent_id}/pause")
    assert _assert_refused(response, 409, "invalid_transition")["message"] == (
        f"parent {parent_id} is completed; it cannot be paused"
    )


async def test_list_filters_and_pages(api: Api) -> None:
    ids = []
    for n in range(5):
        ids.append((await _submit(api, client_id=f"c{n}", quantity=f"0.0{n + 1}"))["id"])
        api.clock.advance(timedelta(seconds=1))
    await api.post(f"/v1/parents/{ids[1]}/pause")
    await api.post(f"/v1/parents/{ids[3]}/pause")

    page = (await api.get("/v1/parents")).json()
    assert [p["id"] for p in page["items"]] == ids[::-1]  # newest first
    assert (page["limit"], page["offset"], page["next_offset"]) == (100, 0, None)

    paused = (await api.get("/v1/parents", status="paused")).json()["items"]
    assert [p["id"] for p in paused] == [ids[3], ids[1]]
    assert (await api.get("/v1/parents", status="completed")).json()["items"] == []

    assert len((await api.get("/v1/parents", symbol="BTC/USDT")).json()["items"]) == 5
    assert len((await api.get("/v1/parents", symbol="btc/usdt")).json()["items"]) == 5
    assert (await api.get("/v1/parents", symbol="ETH/USDT")).json()["items"] == []

    first = (await api.get("/v1/parents", limit=2)).json()
    assert [p["id"] for p in first["items"]] == [ids[4], ids[3]] and first["next_offset"] == 2
    second = (await api.get("/v1/parents", limit=2, offset=first["next_offset"])).json()
    assert [p["id"] for p in second["items"]] == [ids[2], ids[1]]
    last = (await api.get("/v1/parents", limit=2, offset=4)).json()
    assert [p["id"] for p in last["items"]] == [ids[0]] and last["next_offset"] is None


@pytest.mark.parametrize("algo", ALGO_NAMES)
async def test_each_algo_runs_end_to_end_from_its_documented_example(api: Api, algo: str) -> None:
    example = SUBMIT_EXAMPLES[algo]
    body = {
        **{k: v for k, v in example.items() if k not in ("start_at", "limit_price")},
        "client_id": f"e2e-{algo}",
        "quantity": "0.3",
        "venues": [VENUE],
        "end_at": "2026-05-01T12:05:00Z",
    }
    expected_params = ParentCreate.model_validate(body).algo_parameters()

    response = await api.post("/v1/parents", body)

    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["algo"], created["algo_params"]) == (algo, expected_params)
    stored = api.store.get_parent(created["id"])
    assert stored is not None and stored.algo_params == expected_params
    final = await _run_until_terminal(api, created["id"])
    assert final["status"] == "completed", final
    assert (final["filled_qty"], final["remaining_qty"]) == ("0.3", "0")
    fills = (await api.get(f"/v1/parents/{created['id']}/fills")).json()
    assert sum(Decimal(f["qty"]) for f in fills) == Decimal("0.3")
    assert final["tracking_error_mean"] is not None and final["tracking_error_max"] is not None
    assert Decimal(final["market_volume"]) > 0 and final["participation_rate"] is not None
    assert final["maker_share"] is not None and 0 <= Decimal(final["maker_share"]) <= 1
    if algo == "iceberg":
        children = (await api.get(f"/v1/parents/{created['id']}/children")).json()
        assert all(Decimal(c["qty"]) <= Decimal("0.24") for c in children)  # 0.2 ± 20%
        assert all(c["display_qty"] is None for c in children)  # worked by the algo here


def test_public_view_of_a_child_shows_its_display_size() -> None:
    from ems.domain import OrderType, Side, TimeInForce
    from ems.orders import ChildOrder

    child = ChildOrder(
        client_order_id="P1-3",
        parent_id="P1",
        seq=3,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("1.50"),
        price=Decimal("60000"),
        time_in_force=TimeInForce.GTC,
        created_at=NOW,
        updated_at=NOW,
        display_qty=Decimal("0.250"),
    )
    assert ChildPublic.of(child).model_dump(mode="json")["display_qty"] == "0.25"
    plain = dataclasses.replace(child, display_qty=None)
    assert ChildPublic.of(plain).model_dump(mode="json")["display_qty"] is None
