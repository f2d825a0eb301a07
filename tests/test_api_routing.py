"""The routing routes of the REST API: impact-cost curves, a parent's routing decisions and the
pre-trade cost preview, over the real app, manager, store and a simulated venue."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ems.api.app import create_app
from ems.api.routing_schemas import (
    CURVE_GRID,
    PreviewPublic,
    RoutePublic,
    curve_points,
)
from ems.api.schemas import SUBMIT_EXAMPLES, ParentCreate, ParentPreview, describe_errors
from ems.domain import Side
from ems.ports import Batch, ImpactFitRecord, ImpactPoint, RouteRecord
from ems.preview import PreviewResult, VenuePreview
from tests.test_api import (
    NOW,
    VALID,
    VENUE,
    Api,
    _assert_refused,
    _order,
    _run_until_terminal,
    _submit,
    api,
    bare_api,
)
from tests.test_store import accepted, make_parent

__all__ = ["api", "bare_api"]  # fixtures shared with test_api

PREVIEW: dict[str, Any] = {k: v for k, v in VALID.items() if k != "client_id"}
BPS = Decimal(10_000)


def _fit(venue: str = "binance", symbol: str = "BTC/USDT", **changes: Any) -> ImpactFitRecord:
    fit = ImpactFitRecord(
        venue=venue,
        symbol=symbol,
        a=Decimal(10),
        b=Decimal("0.5"),
        a_low=Decimal(8),
        a_high=Decimal(12),
        b_low=Decimal("0.4"),
        b_high=Decimal("0.6"),
        n=25,
        fitted_at=NOW,
    )
    return dataclasses.replace(fit, **changes)


def _point(n: int, parent_id: str, venue: str = "binance", **changes: Any) -> ImpactPoint:
    point = ImpactPoint(
        client_order_id=f"{parent_id}-{n}",
        parent_id=parent_id,
        venue=venue,
        symbol="BTC/USDT",
        side=Side.BUY,
        ts=NOW + timedelta(seconds=n),
        qty=Decimal("0.05"),
        filled_qty=Decimal("0.05"),
        aggressive=True,
        decision_mid=Decimal("60000.05"),
        x_depth=Decimal("0.125"),
        x_volume=Decimal("0.01"),
        expected_cost_bps=Decimal("3.5"),
        realised_cost_bps=Decimal("4.000000000000000001"),
        fee_bps=Decimal(10),
    )
    return dataclasses.replace(point, **changes)


def _route(parent_id: str, seconds: int, **changes: Any) -> RouteRecord:
    route = RouteRecord(
        parent_id=parent_id,
        ts=NOW + timedelta(seconds=seconds),
        side=Side.BUY,
        qty=Decimal("0.05"),
        price=Decimal("60012.5"),
        aggressive=True,
        mid=Decimal("60000.05"),
        expected_cost_bps=Decimal("3.25"),
        quotes=(
            {"venue": "binance", "best_bid": "60000", "best_ask": "60000.1", "tradable": "true"},
            {"venue": "okx", "best_bid": "", "best_ask": "", "tradable": "false"},
        ),
        allocations=({"venue": "binance", "client_order_id": f"{parent_id}-1", "qty": "0.05"},),
        notes=("okx: stale book",),
    )
    return dataclasses.replace(route, **changes)


async def _a_parent(api: Api) -> str:
    """A stored parent, written straight to the store (no venue is needed to read its routes)."""
    parent = make_parent(1, id="P1", client_id="c1")
    api.store.create_parent(parent, accepted(parent))
    return parent.id


# --- schemas (pure) ----------------------------------------------------------------------------


def test_a_preview_body_is_a_submission_body_without_the_need_for_a_client_id() -> None:
    without = ParentPreview.model_validate(PREVIEW)
    with_id = ParentPreview.model_validate(VALID)
    created = ParentCreate.model_validate(VALID)

    assert without.client_id is None and with_id.client_id == VALID["client_id"]
    assert without.model_dump(exclude={"client_id"}) == created.model_dump(exclude={"client_id"})
    assert without.algo_parameters() == created.algo_parameters()
    with pytest.raises(ValidationError) as info:
        ParentCreate.model_validate(PREVIEW)
    assert [p.message for p in describe_errors(info.value.errors())] == ["client_id is required"]


@pytest.mark.parametrize("algo", list(SUBMIT_EXAMPLES))
def test_every_documented_example_is_a_valid_preview(algo: str) -> None:
    body = {k: v for k, v in SUBMIT_EXAMPLES[algo].items() if k != "client_id"}

    assert ParentPreview.model_validate(body).algo == algo


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": "0"},
        {"quantity": "lots"},
        {"start_at": "2026-05-01T14:00:00Z"},
        {"end_at": "2026-05-01T13:00:00"},
        {"algo": "sniper"},
        {"side": "long"},
        {"colour": "red"},
        {"client_id": "no spaces"},
        {"venues": ["binance", "binance"]},
        {"algo": "iceberg", "algo_params": {"display_qty": "5"}},
        {"limit_price": "60000", "algo_params": {"i_would_price": "61000"}},
    ],
)
def test_a_preview_is_refused_by_exactly_the_rules_of_a_submission(change: dict[str, Any]) -> None:
    def problems(model: type[ParentCreate] | type[ParentPreview]) -> list[Any]:
        with pytest.raises(ValidationError) as info:
            model.model_validate({**VALID, **change})
        return describe_errors(info.value.errors())

    assert problems(ParentPreview) == problems(ParentCreate)


def test_the_fitted_curve_is_evaluated_on_the_grid_with_its_band() -> None:
    fit = _fit(a=Decimal(10), b=Decimal("0.5"))

    points = {str(p.x): p for p in curve_points(fit)}

    assert list(points) == [str(Decimal(x)) for x in CURVE_GRID]
    quarter = curve_points(fit, ("0.25",))[0]
    assert quarter.cost_bps == Decimal(5)  # 10 * 0.25 ** 0.5
    assert quarter.cost_bps_low == Decimal("3.482202")  # 8 * 0.25 ** 0.6, to 6 places
    assert quarter.cost_bps_high == Decimal("6.892190")  # 12 * 0.25 ** 0.4
    assert points["1"].cost_bps == Decimal(10)
    assert (points["1"].cost_bps_low, points["1"].cost_bps_high) == (Decimal(8), Decimal(12))
    costs = [p.cost_bps for p in points.values()]
    assert costs == sorted(costs)
    assert all(p.cost_bps_low <= p.cost_bps <= p.cost_bps_high for p in points.values())


def test_a_curve_with_no_finite_value_leaves_those_sizes_out() -> None:
    fit = _fit(b=Decimal(-400), b_low=Decimal(-400), b_high=Decimal(-399))

    assert [str(p.x) for p in curve_points(fit, ("0.01", "1"))] == ["1"]


def test_preview_estimates_are_rounded_for_display_and_exact_values_kept() -> None:
    result = PreviewResult(
        symbol="BTC/USDT",
        side=Side.SELL,
        quantity=Decimal("0.50"),
        mid=Decimal("60000.05"),
        total_expected_cost_bps=Decimal("4.12345678901234567890123"),
        total_expected_cost=Decimal("12.3703725936") / 3,
        venues=(
            VenuePreview(
                venue="sim",
                tradable=True,
                reason="ok",
                best_bid=Decimal("60000"),
                best_ask=Decimal("60000.1"),
                expected_cost_bps=Decimal("5.0000004"),
                expected_cost=Decimal("15.6"),
                allocated_qty=Decimal("0.5"),
            ),
            VenuePreview("dark", False, "stale_book", None, None, None, None, Decimal(0)),
        ),
    )

    view = PreviewPublic.of(result).model_dump(mode="json")

    assert view == {
        "symbol": "BTC/USDT",
        "side": "sell",
        "quantity": "0.5",
        "mid": "60000.05",
        "total_expected_cost_bps": "4.123457",
        "total_expected_cost": "4.12345753",
        "venues": [
            {
                "venue": "sim",
                "tradable": True,
                "reason": "ok",
                "best_bid": "60000",
                "best_ask": "60000.1",
                "expected_cost_bps": "5",
                "expected_cost": "15.6",
                "allocated_qty": "0.5",
            },
            {
                "venue": "dark",
                "tradable": False,
                "reason": "stale_book",
                "best_bid": None,
                "best_ask": None,
                "expected_cost_bps": None,
                "expected_cost": None,
                "allocated_qty": "0",
            },
        ],
    }


def test_public_view_of_a_route_keeps_its_strings() -> None:
    view = RoutePublic.of(_route("P1", 3)).model_dump(mode="json")

    assert view["ts"] == "2026-05-01T12:00:03Z"
    assert (view["qty"], view["price"], view["mid"]) == ("0.05", "60012.5", "60000.05")
    assert view["quotes"][1] == {
        "venue": "okx",
        "best_bid": "",
        "best_ask": "",
        "tradable": "false",
    }
    assert view["notes"] == ["okx: stale book"]


def test_openapi_documents_the_routing_routes() -> None:
    spec = create_app(None, None).openapi()  # type: ignore[arg-type]
    paths = spec["paths"]

    assert {"/v1/impact-curves", "/v1/parents/{parent_id}/routes", "/v1/preview"} <= set(paths)
    assert "routing" in {t["name"] for t in spec["tags"]}
    curves = paths["/v1/impact-curves"]["get"]
    assert curves["tags"] == ["routing"]
    assert {p["name"] for p in curves["parameters"]} == {"venue", "symbol", "limit"}
    assert paths["/v1/parents/{parent_id}/routes"]["get"]["tags"] == ["parents"]
    assert set(paths["/v1/parents/{parent_id}/routes"]["get"]["responses"]) >= {"200", "404"}
    preview = paths["/v1/preview"]["post"]
    assert preview["tags"] == ["routing"]
    assert set(preview["responses"]) >= {"200", "401", "403", "422"}
    body = preview["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/ParentPreview")
    assert set(body["examples"]) == set(SUBMIT_EXAMPLES)
    assert all("client_id" not in ex["value"] for ex in body["examples"].values())
    schemas = spec["components"]["schemas"]
    assert "client_id" not in schemas["ParentPreview"].get("required", [])
    assert "client_id" in schemas["ParentCreate"]["required"]
    assert schemas["PreviewPublic"]["examples"] and schemas["RoutePublic"]["examples"]


# --- the app without venues --------------------------------------------------------------------


async def test_no_curves_yet_is_an_empty_list_not_a_404(bare_api: Api) -> None:
    for params in ({}, {"venue": "binance"}, {"venue": "binance", "symbol": "BTC/USDT"}):
        response = await bare_api.get("/v1/impact-curves", **params)
        assert response.status_code == 200, response.text
        assert response.json() == {"curves": []}


async def test_impact_curves_show_the_current_fit_its_points_and_the_curve(bare_api: Api) -> None:
    parent_id = await _a_parent(bare_api)
    store = bare_api.store
    store.save_impact_fit(_fit("binance", n=1, fitted_at=NOW - timedelta(hours=1)))
    store.save_impact_fit(_fit("binance", n=25))
    store.save_impact_fit(_fit("okx", a=Decimal("20.5")))
    store.commit(
        Batch(
            impact_points=[
                _point(1, parent_id, "binance"),
                _point(2, parent_id, "binance", aggressive=False, filled_qty=Decimal(0)),
                _point(3, parent_id, "kraken"),  # points, but no fit yet
            ]
        )
    )

    response = await bare_api.get("/v1/impact-curves")

    assert response.status_code == 200, response.text
    curves = response.json()["curves"]
    assert [(c["venue"], c["symbol"]) for c in curves] == [
        ("binance", "BTC/USDT"),
        ("kraken", "BTC/USDT"),
        ("okx", "BTC/USDT"),
    ]
    binance, kraken, okx = curves
    assert binance["fit"] == {
        "a": "10",
        "b": "0.5",
        "a_low": "8",
        "a_high": "12",
        "b_low": "0.4",
        "b_high": "0.6",
        "n": 25,
        "fitted_at": "2026-05-01T12:00:00Z",
    }
    assert [p["client_order_id"] for p in binance["points"]] == ["P1-2", "P1-1"]  # newest first
    assert binance["points"][1] == {
        "client_order_id": "P1-1",
        "parent_id": "P1",
        "side": "buy",
        "ts": "2026-05-01T12:00:01Z",
        "qty": "0.05",
        "filled_qty": "0.05",
        "aggressive": True,
        "decision_mid": "60000.05",
        "x_depth": "0.125",
        "x_volume": "0.01",
        "expected_cost_bps": "3.5",
        "realised_cost_bps": "4.000000000000000001",
        "fee_bps": "10",
    }
    assert [p["x"] for p in binance["curve"]] == list(CURVE_GRID)
    assert binance["curve"][-1] == {
        "x": "1",
        "cost_bps": "10",
        "cost_bps_low": "8",
        "cost_bps_high": "12",
    }
    assert (kraken["fit"], kraken["curve"], len(kraken["points"])) == (None, [], 1)
    assert okx["fit"]["a"] == "20.5" and okx["points"] == []
    assert okx["curve"][-1]["cost_bps"] == "20.5"


async def test_impact_curves_are_filtered_and_points_limited_per_curve(bare_api: Api) -> None:
    parent_id = await _a_parent(bare_api)
    store = bare_api.store
    store.save_impact_fit(_fit("binance"))
    store.save_impact_fit(_fit("okx"))
    points = [_point(n, parent_id, "binance" if n % 2 else "okx") for n in range(1, 9)]
    store.commit(Batch(impact_points=points))

    async def curves(**params: Any) -> list[dict[str, Any]]:
        response = await bare_api.get("/v1/impact-curves", **params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["curves"]
        return result

    only_okx = await curves(venue="okx")
    assert [c["venue"] for c in only_okx] == ["okx"]
    assert [p["client_order_id"] for p in only_okx[0]["points"]] == [
        "P1-8",
        "P1-6",
        "P1-4",
        "P1-2",
    ]
    limited = await curves(limit=2)
    assert {c["venue"]: [p["client_order_id"] for p in c["points"]] for c in limited} == {
        "binance": ["P1-7", "P1-5"],
        "okx": ["P1-8", "P1-6"],
    }
    both = await curves(venue="binance", symbol=" btc/usdt ", limit=1)
    assert [(c["venue"], len(c["points"])) for c in both] == [("binance", 1)]
    assert await curves(symbol="ETH/USDT") == []


async def test_impact_curve_queries_are_checked(bare_api: Api) -> None:
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 5001}, "limit"),
        ({"venue": "Not A Venue"}, "venue"),
        ({"symbol": "X"}, "symbol"),
    ):
        response = await bare_api.get("/v1/impact-curves", **params)
        body = _assert_refused(response, 422, "invalid_request")
        assert body["errors"][0]["field"] == field, params


async def test_routing_reads_need_a_key_and_preview_needs_a_trader(bare_api: Api) -> None:
    for path in ("/v1/impact-curves", "/v1/parents/P1/routes"):
        _assert_refused(await bare_api.http.get(path), 401, "unauthorized")
    _assert_refused(await bare_api.http.post("/v1/preview", json=PREVIEW), 401, "unauthorized")
    response = await bare_api.post("/v1/preview", PREVIEW, role="viewer")
    assert _assert_refused(response, 403, "forbidden")["message"].startswith(
        "this action needs the trader role"
    )


async def test_routes_of_an_unknown_parent_are_404(bare_api: Api) -> None:
    response = await bare_api.get("/v1/parents/P404/routes")

    assert _assert_refused(response, 404, "not_found")["message"] == "parent P404 does not exist"


async def test_routes_of_a_parent_are_in_time_order(bare_api: Api) -> None:
    parent_id = await _a_parent(bare_api)
    assert (await bare_api.get(f"/v1/parents/{parent_id}/routes")).json() == []
    bare_api.store.commit(
        Batch(
            routes=[
                _route(parent_id, 9, notes=("late",)),
                _route(parent_id, 1, mid=None, expected_cost_bps=None, notes=()),
            ]
        )
    )

    response = await bare_api.get(f"/v1/parents/{parent_id}/routes")

    assert response.status_code == 200, response.text
    early, late = response.json()
    assert (early["ts"], late["ts"]) == ("2026-05-01T12:00:01Z", "2026-05-01T12:00:09Z")
    assert (early["mid"], early["expected_cost_bps"], early["notes"]) == (None, None, [])
    assert late == RoutePublic.of(_route(parent_id, 9, notes=("late",))).model_dump(mode="json")


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": "0"},
        {"quantity": "-0.5"},
        {"start_at": "2026-05-01T14:00:00Z"},
        {"end_at": "2026-05-01T13:00:00"},
        {"algo": "sniper"},
        {"colour": "red"},
        {"side": "long"},
        {"client_id": ""},
    ],
)
async def test_an_invalid_preview_gets_the_422_of_an_invalid_submission(
    bare_api: Api, change: dict[str, Any]
) -> None:
    preview = await bare_api.post("/v1/preview", {**VALID, **change})
    submit = await bare_api.post("/v1/parents", {**VALID, **change})

    assert _assert_refused(preview, 422, "invalid_request") == submit.json()
    assert bare_api.store.list_parents() == []


async def test_a_malformed_preview_body_gets_422(bare_api: Api) -> None:
    response = await bare_api.http.post(
        "/v1/preview",
        content=b"[1]",
        headers={**bare_api.auth(), "Content-Type": "application/json"},
    )

    body = _assert_refused(response, 422, "invalid_request")
    assert body["message"].startswith("request body must be a JSON object")


# --- the full stack: manager, store and a simulated venue --------------------------------------


async def test_a_preview_prices_the_order_per_venue_and_in_total(api: Api) -> None:
    response = await api.post("/v1/preview", {**PREVIEW, "venues": [VENUE]})

    assert response.status_code == 200, response.text
    body = response.json()
    PreviewPublic.model_validate(body)
    assert (body["symbol"], body["side"], body["quantity"]) == ("BTC/USDT", "buy", "0.5")
    [venue] = body["venues"]
    assert venue["venue"] == VENUE and venue["tradable"] is True
    assert Decimal(venue["best_bid"]) < Decimal(body["mid"]) < Decimal(venue["best_ask"])
    assert Decimal(venue["allocated_qty"]) == Decimal("0.5")
    total_bps, total = (
        Decimal(body["total_expected_cost_bps"]),
        Decimal(body["total_expected_cost"]),
    )
    assert total_bps > 0  # fees at least
    assert venue["expected_cost_bps"] == body["total_expected_cost_bps"]  # one venue takes it all
    # The cost in quote currency is the bps of the mid on the notional (both rounded for display).
    expected = total_bps / BPS * Decimal(body["mid"]) * Decimal("0.5")
    assert abs(total - expected) <= Decimal("0.01")
    # Nothing stored, nothing sent.
    assert api.store.list_parents() == []
    assert api.manager.parent("preview") is None


async def test_a_bigger_order_is_expected_to_cost_more(api: Api) -> None:
    small = (await api.post("/v1/preview", {**PREVIEW, "quantity": "0.05"})).json()
    large = (await api.post("/v1/preview", {**PREVIEW, "quantity": "5"})).json()

    assert Decimal(large["total_expected_cost_bps"]) > Decimal(small["total_expected_cost_bps"])
    assert Decimal(large["total_expected_cost"]) > Decimal(small["total_expected_cost"])


async def test_a_preview_with_a_client_id_in_use_changes_nothing(api: Api) -> None:
    parent = await _submit(api)

    response = await api.post("/v1/preview", {**VALID, "quantity": "2"})

    assert response.status_code == 200, response.text
    assert response.json()["quantity"] == "2"
    assert [p.id for p in api.store.list_parents()] == [parent["id"]]
    assert api.store.list_parents()[0].quantity == Decimal("0.5")


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": "0.123456"},
        {"quantity": "0.00002"},
        {"limit_price": "10000"},
        {"limit_price": "61000.001"},
        {"symbol": "ETH/USDT"},
        {"venues": ["kraken"]},
    ],
)
async def test_market_rules_refuse_a_preview_as_they_refuse_a_submission(
    api: Api, change: dict[str, Any]
) -> None:
    preview = await api.post("/v1/preview", {**PREVIEW, **change})
    submit = await api.post("/v1/parents", _order(**change))

    assert _assert_refused(preview, 422, "invalid_order") == submit.json()
    assert api.store.list_parents() == []


async def test_a_routed_parent_shows_its_decisions_and_feeds_the_curves(api: Api) -> None:
    parent = await _submit(
        api,
        quantity="0.05",
        end_at="2026-05-01T12:03:00Z",
        venues=[VENUE],
        algo_params={"slice_interval_s": 20, "seed": 1},
    )
    final = await _run_until_terminal(api, parent["id"])
    assert final["status"] == "completed", final

    routes = (await api.get(f"/v1/parents/{parent['id']}/routes")).json()
    children = (await api.get(f"/v1/parents/{parent['id']}/children")).json()

    assert routes, "the manager records a routing decision per routed slice"
    assert [r["ts"] for r in routes] == sorted(r["ts"] for r in routes)
    sent = {a["client_order_id"] for r in routes for a in r["allocations"]}
    assert sent <= {c["client_order_id"] for c in children}
    assert all(r["parent_id"] == parent["id"] and r["side"] == "buy" for r in routes)
    assert all(q["venue"] == VENUE for r in routes for q in r["quotes"])

    curves = (await api.get("/v1/impact-curves", venue=VENUE)).json()["curves"]
    assert [(c["venue"], c["symbol"]) for c in curves] == [(VENUE, "BTC/USDT")]
    points = curves[0]["points"]
    assert points and {p["parent_id"] for p in points} == {parent["id"]}
    assert {p["client_order_id"] for p in points} <= {c["client_order_id"] for c in children}
