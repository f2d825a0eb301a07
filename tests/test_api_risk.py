"""The risk routes of the REST API and the ``ems risk`` commands: trading states (the kill
switch), pre-trade limits and their audit trail, over the real app, manager, store (SQLite and
PostgreSQL) and a simulated venue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ems.api.auth import create_api_key
from ems.api.risk_schemas import RiskLimitsBody
from ems.cli import app as cli_app
from ems.manager import DESK_LIMITS
from ems.store import SqlStore
from risk.types import TradingState
from tests.test_api import NOW, VENUE, Api, _assert_refused, _order, api
from tests.test_cli import LiveServer, live_server, runner

__all__ = ["api", "live_server"]  # fixtures shared with test_api and test_cli

LIMITS: dict[str, Any] = {
    "max_child_notional": "40000",
    "max_parent_notional": "4000000",
    "max_daily_notional": "10000000",
    "max_position": {"BTC": "500", "ETH": "0"},
    "price_collar_bps": "75.5",
    "max_book_age_s": 3,
    "max_orders_per_window": 12,
    "order_window_s": 10,
}


@pytest.fixture
async def risk_api(api: Api) -> AsyncIterator[Api]:
    """The app of ``tests.test_api`` with an admin key as well."""
    api.keys["admin"] = create_api_key(api.store, "admin-1", "admin", NOW)[0]
    yield api


async def _put(client: Api, path: str, body: Any, role: str = "admin") -> httpx.Response:
    return await client.http.put(path, json=body, headers=client.auth(role))


def _halt(scope: str = VENUE, state: str = "halted") -> dict[str, str]:
    return {"scope": scope, "state": state, "reason": "exchange incident"}


async def test_admin_halts_a_venue_and_it_shows_in_the_state_and_the_audit(risk_api: Api) -> None:
    response = await _put(risk_api, "/v1/risk/state", _halt())

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["actor"].startswith("admin-1 (") and record["scope"] == VENUE
    assert (record["before"], record["after"]) == ("active", "halted")
    assert record["reason"] == "exchange incident"
    view = (await risk_api.get("/v1/risk")).json()
    assert view["global_state"] == "active"
    (venue,) = view["venues"]
    assert venue["venue"] == VENUE and venue["state"] == "halted"
    assert (venue["tradable"], venue["reason"]) == (False, "kill_switch")
    assert risk_api.manager.risk.state_of(VENUE) is TradingState.HALTED
    audit = (await risk_api.get("/v1/risk/audit")).json()
    assert [(a["action"], a["scope"], a["after"]) for a in audit] == [
        ("trading_state", VENUE, "halted")
    ]
    assert audit[0]["actor"] == record["actor"]

    await _put(risk_api, "/v1/risk/state", _halt("global", "reducing"))
    await _put(risk_api, "/v1/risk/state", _halt(VENUE, "active"))
    view = (await risk_api.get("/v1/risk")).json()
    assert view["global_state"] == "reducing"
    assert view["venues"][0]["state"] == "active" and view["venues"][0]["tradable"]
    audit = (await risk_api.get("/v1/risk/audit", limit=2)).json()
    assert [(a["scope"], a["after"]) for a in audit] == [("global", "reducing"), (VENUE, "active")]


async def test_a_viewer_reads_the_risk_state(risk_api: Api) -> None:
    response = await risk_api.get("/v1/risk")

    assert response.status_code == 200, response.text
    view = response.json()
    assert view["limits"] == RiskLimitsBody.of(DESK_LIMITS).model_dump(mode="json")
    assert view["limits"]["max_child_notional"] == str(DESK_LIMITS.max_child_notional)
    assert view["limits"]["max_book_age_s"] == DESK_LIMITS.max_book_age.total_seconds()
    assert view["positions"] == {} and view["day_notional"] == "0"
    assert view["venues"] == [
        {"venue": VENUE, "state": "active", "tradable": True, "reason": "ok", "detail": ""}
    ]
    assert (await risk_api.get("/v1/risk/audit")).json() == []


@pytest.mark.parametrize("role", ["trader", "viewer"])
async def test_only_an_admin_changes_risk_settings(risk_api: Api, role: str) -> None:
    for path, body in (
        ("/v1/risk/state", _halt()),
        ("/v1/risk/limits", {**LIMITS, "reason": "new mandate"}),
    ):
        response = await _put(risk_api, path, body, role)
        message = _assert_refused(response, 403, "forbidden")["message"]
        assert message.startswith("this action needs the admin role")
    assert risk_api.store.audit_log() == []
    assert risk_api.manager.risk.state_of(VENUE) is TradingState.ACTIVE
    assert risk_api.manager.risk.limits == DESK_LIMITS
    response = await risk_api.http.put("/v1/risk/state", json=_halt())
    _assert_refused(response, 401, "unauthorized")


async def test_limits_update_is_applied_and_audited_with_before_and_after(risk_api: Api) -> None:
    response = await _put(risk_api, "/v1/risk/limits", {**LIMITS, "reason": "new mandate"})

    assert response.status_code == 200, response.text
    limits = risk_api.manager.risk.limits
    assert limits.max_child_notional == Decimal(40000)
    assert limits.max_position == {"BTC": Decimal(500), "ETH": Decimal(0)}
    assert limits.price_collar_bps == Decimal("75.5")
    assert limits.max_book_age == timedelta(seconds=3)
    assert limits.max_orders_per_window == 12
    record = response.json()
    assert record["action"] == "risk_limits" and record["actor"].startswith("admin-1")
    assert record["before"]["max_child_notional"] == str(DESK_LIMITS.max_child_notional)
    assert record["after"]["max_child_notional"] == "40000"
    assert record["after"]["max_position"] == {"BTC": "500", "ETH": "0"}
    (stored,) = (await risk_api.get("/v1/risk/audit", action="risk_limits")).json()
    assert stored == record
    assert (await risk_api.get("/v1/risk/audit", action="trading_state")).json() == []
    view = (await risk_api.get("/v1/risk")).json()
    assert view["limits"]["price_collar_bps"] == "75.5"
    assert view["limits"]["max_book_age_s"] == 3


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"max_child_notional": "5000000.01"}, "max_child_notional", "must not exceed"),
        ({"max_parent_notional": "20000000"}, "max_parent_notional", "must not exceed"),
        ({"max_daily_notional": "-1"}, "max_daily_notional", "greater than 0"),
        ({"max_position": {"BTC": "-1"}}, "max_position.BTC", "at least 0"),
        ({"max_position": {"btc": "1"}}, "max_position.btc", "'btc' is not an asset name"),
        ({"price_collar_bps": "10000"}, "price_collar_bps", "less than 10000"),
        ({"price_collar_bps": "0"}, "price_collar_bps", "greater than 0"),
        ({"order_window_s": 0}, "order_window_s", "greater than 0"),
        ({"max_orders_per_window": 0}, "max_orders_per_window", "at least 1"),
        ({"max_drawdown": "5"}, "max_drawdown", "not a field of this request"),
        ({"reason": ""}, "reason", "reason must not be empty"),
    ],
)
async def test_invalid_limits_are_422_naming_the_field_and_change_nothing(
    risk_api: Api, change: dict[str, Any], field: str, fragment: str
) -> None:
    body = {**LIMITS, "reason": "new mandate", **change}
    response = await _put(risk_api, "/v1/risk/limits", body)

    problem = _assert_refused(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == field, problem
    assert fragment in problem["message"], problem
    assert risk_api.manager.risk.limits == DESK_LIMITS
    assert risk_api.store.audit_log() == []


async def test_a_limit_refused_by_the_engine_names_the_field(risk_api: Api) -> None:
    # 1e-7 s is positive for the API but rounds to a zero timedelta in the engine.
    body = {**LIMITS, "reason": "new mandate", "max_book_age_s": 1e-7}
    response = await _put(risk_api, "/v1/risk/limits", body)

    problem = _assert_refused(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == "max_book_age_s"
    assert "positive duration" in problem["message"]
    assert risk_api.store.audit_log() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_halt("kraken"), "scope"),
        (_halt("Not A Venue"), "scope"),
        ({**_halt(), "state": "paused"}, "state"),
        ({**_halt(), "reason": ""}, "reason"),
        ({**_halt(), "reason": "x" * 501}, "reason"),
        ({"scope": VENUE, "state": "halted"}, "reason"),
    ],
)
async def test_invalid_state_changes_are_422_naming_the_field(
    risk_api: Api, body: dict[str, Any], field: str
) -> None:
    response = await _put(risk_api, "/v1/risk/state", body)

    problem = _assert_refused(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == field, problem
    assert risk_api.store.audit_log() == []
    if body["scope"] == "kraken":
        assert problem["message"] == (f"scope: unknown venue 'kraken'; configured venues: {VENUE}")


async def test_a_halted_venue_receives_nothing(risk_api: Api) -> None:
    assert (await _put(risk_api, "/v1/risk/state", _halt())).status_code == 200
    venue = risk_api.manager.venues[VENUE]
    response = await risk_api.post("/v1/parents", _order(end_at="2026-05-01T12:05:00Z"))
    assert response.status_code == 201, response.text
    parent_id = response.json()["id"]

    for _ in range(6):
        risk_api.clock.advance(timedelta(seconds=20))
        await risk_api.manager.step()

    assert venue.submissions == []  # type: ignore[attr-defined]
    events = (await risk_api.get(f"/v1/parents/{parent_id}/events")).json()
    notes = [e["payload"] for e in events if e["kind"] == "parent_note"]
    assert [n["code"] for n in notes] == ["venue_halted"], notes
    children = (await risk_api.get(f"/v1/parents/{parent_id}/children")).json()
    assert children == []


# --- the command line ----------------------------------------------------------------------


def _admin(server: LiveServer) -> dict[str, str]:
    key, _ = create_api_key(server.store, "admin-cli", "admin", datetime.now(UTC))
    return {"EMS_API_KEY": key}


def _states(store: SqlStore) -> list[tuple[str, str, str]]:
    return [(r.scope, r.after, r.actor.split(" ")[0]) for r in store.audit_log()]


def test_cli_halts_and_resumes_a_venue(live_server: LiveServer) -> None:
    env = _admin(live_server)
    url = ["--url", live_server.url]

    result = runner.invoke(
        cli_app, ["risk", "halt", "--venue", "sim", "--reason", "incident", *url], env=env
    )
    assert result.exit_code == 0, result.output
    assert "sim: active → halted by admin-cli" in result.stdout
    shown = runner.invoke(cli_app, ["risk", "show", *url], env=env)
    assert shown.exit_code == 0, shown.output
    assert "sim" in shown.stdout and "halted" in shown.stdout and "kill_switch" in shown.stdout

    result = runner.invoke(cli_app, ["risk", "reduce", "--reason", "month end", *url], env=env)
    assert result.exit_code == 0, result.output
    assert "the whole desk: active → reducing" in result.stdout
    result = runner.invoke(
        cli_app, ["risk", "resume", "--venue", "sim", "--reason", "over", *url], env=env
    )
    assert result.exit_code == 0, result.output
    assert _states(live_server.store) == [
        ("sim", '"halted"', "admin-cli"),
        ("global", '"reducing"', "admin-cli"),
        ("sim", '"active"', "admin-cli"),
    ]


def test_cli_risk_refusals_are_one_line(live_server: LiveServer) -> None:
    url = ["--url", live_server.url]
    trader = {"EMS_API_KEY": live_server.trader_key}
    result = runner.invoke(cli_app, ["risk", "halt", "--reason", "x", *url], env=trader)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the server refused (403): this action needs the admin")
    assert result.stderr.count("\n") == 1

    admin = _admin(live_server)
    result = runner.invoke(
        cli_app, ["risk", "halt", "--venue", "kraken", "--reason", "x", *url], env=admin
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the server refused (422): scope: unknown venue 'kraken'; configured venues: sim\n"
    )
    result = runner.invoke(cli_app, ["risk", "halt", "--reason", " ", *url], env=admin)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --reason: say why")
    result = runner.invoke(cli_app, ["risk", "halt", *url], env=admin)
    assert result.exit_code == 2 and "--reason" in result.stderr
    assert live_server.store.audit_log() == []

    viewer = {"EMS_API_KEY": live_server.viewer_key}
    result = runner.invoke(cli_app, ["risk", "show", *url], env=viewer)
    assert result.exit_code == 0, result.output
    assert "trading: active" in result.stdout and "max child" in result.stdout
