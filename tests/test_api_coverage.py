"""The hedge-coverage routes of the REST API (``/v1/coverage``): the coverage view, the coverage
decisions, the market-phase switch and the unwind request, over the real app and manager, a
store on each backend and a hedged desk (recorded spot + USDⓈ-M perpetual, simulated options)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ems.api.app import create_app
from ems.api.auth import create_api_key
from ems.api.coverage_routes import NO_SPOT_PRICE, NOT_CONFIGURED
from ems.api.coverage_schemas import DECISION_KINDS, CoverageView, DecisionPublic
from ems.hedging import HedgeConfig
from ems.store import SqlStore
from risk.types import MarketPhase
from risk.unwind import UnwindStatus
from tests.hedge_support import (
    POLICY,
    SPOT_SYMBOL,
    HedgedDesk,
    hedge_config,
    hedged_desk,
)
from tests.test_api import NOW, Api, _assert_refused, api

__all__ = ["api"]  # the app without hedging, shared with test_api

STEP = timedelta(milliseconds=500)
EVIDENCE = "funding positive 3 days, reclaim of the 200-day average"
STRESS = POLICY.requirement(MarketPhase.STRESS)


@dataclass
class CoverageApi:
    """A client of the real app over a hedged desk, with one key per role."""

    http: httpx.AsyncClient
    desk: HedgedDesk
    store: SqlStore
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def get(self, path: str, role: str = "viewer", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth(role))

    async def set_phase(self, body: Any, role: str = "admin") -> httpx.Response:
        return await self.http.put("/v1/coverage/phase", json=body, headers=self.auth(role))

    async def unwind(self, role: str = "trader") -> httpx.Response:
        return await self.http.post("/v1/coverage/unwind", headers=self.auth(role))

    async def accumulate(self, qty: str, window_s: int, run_s: int) -> None:
        """Buy ``qty`` BTC by TWAP over ``window_s`` through the API, then step for ``run_s``."""
        body = {
            "client_id": "cover-acc-1",
            "symbol": SPOT_SYMBOL,
            "side": "buy",
            "quantity": qty,
            "algo": "twap",
            "end_at": (self.desk.clock.now() + timedelta(seconds=window_s)).isoformat(),
            "algo_params": {"slice_interval_s": 10},
        }
        response = await self.http.post("/v1/parents", json=body, headers=self.auth("trader"))
        assert response.status_code == 201, response.text
        await self.run(run_s)

    async def run(self, seconds: float) -> None:
        until = self.desk.clock.now() + timedelta(seconds=seconds)
        while self.desk.clock.now() < until:
            self.desk.clock.advance(STEP)
            await self.desk.manager.step()


@asynccontextmanager
async def serving(store: SqlStore, config: HedgeConfig | None = None) -> AsyncIterator[CoverageApi]:
    desk = hedged_desk(store, config)
    roles = ("viewer", "trader", "admin")
    keys = {role: create_api_key(store, f"{role}-1", role, NOW)[0] for role in roles}
    transport = httpx.ASGITransport(app=create_app(desk.manager, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ems.test") as http:
        yield CoverageApi(http, desk, store, keys)


@pytest.fixture
async def cover(store: SqlStore) -> AsyncIterator[CoverageApi]:
    """The app over a hedged desk in the stress phase, steps taken as soon as allowed."""
    async with serving(store) as client:
        yield client


@pytest.fixture
async def on_request(store: SqlStore) -> AsyncIterator[CoverageApi]:
    """The app over a hedged desk whose unwind steps are taken only on request."""
    async with serving(store, hedge_config(auto_unwind=False)) as client:
        yield client


def _decisions(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    for decision in body:
        DecisionPublic.model_validate(decision)
        assert "state" not in decision
    return body


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "role", "status"),
    [
        ("GET", "/v1/coverage", "viewer", 200),
        ("GET", "/v1/coverage/decisions", "viewer", 200),
        ("PUT", "/v1/coverage/phase", "viewer", 403),
        ("PUT", "/v1/coverage/phase", "trader", 403),
        ("PUT", "/v1/coverage/phase", "admin", 200),
        ("POST", "/v1/coverage/unwind", "viewer", 403),
        ("POST", "/v1/coverage/unwind", "trader", 409),  # allowed, refused by the risk module
        ("POST", "/v1/coverage/unwind", "admin", 409),
    ],
)
async def test_each_route_admits_the_roles_it_should(
    cover: CoverageApi, method: str, path: str, role: str, status: int
) -> None:
    body = {"phase": "clearing", "evidence": EVIDENCE} if method == "PUT" else None

    response = await cover.http.request(method, path, json=body, headers=cover.auth(role))

    assert response.status_code == status, response.text
    if status == 403:
        needed = "admin" if method == "PUT" else "trader"
        message = _assert_refused(response, 403, "forbidden")["message"]
        assert message.startswith(f"this action needs the {needed} role")
        assert cover.store.coverage_log() == []
        assert cover.desk.manager.hedge is not None
        assert cover.desk.manager.hedge.phase is MarketPhase.STRESS


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/coverage"),
        ("GET", "/v1/coverage/decisions"),
        ("PUT", "/v1/coverage/phase"),
        ("POST", "/v1/coverage/unwind"),
    ],
)
async def test_every_route_needs_a_key(cover: CoverageApi, method: str, path: str) -> None:
    response = await cover.http.request(method, path)

    _assert_refused(response, 401, "unauthorized")


# --- the coverage view ---------------------------------------------------------------------


async def test_coverage_after_accumulating_meets_the_phase_and_shows_the_put_book(
    cover: CoverageApi,
) -> None:
    await cover.accumulate("0.4", window_s=40, run_s=50)

    response = await cover.get("/v1/coverage")

    assert response.status_code == 200, response.text
    view = response.json()
    CoverageView.model_validate(view)
    assert (view["asset"], view["phase"], view["spot_symbol"]) == ("BTC", "stress", SPOT_SYMBOL)
    assert view["exposure"]["spot_qty"] == "0.4"
    assert Decimal(view["ratios"]["basis"]) >= STRESS.min_basis_ratio
    assert Decimal(view["ratios"]["put"]) >= STRESS.min_put_ratio
    assert view["required"] == {
        "min_basis_ratio": "0.8",
        "target_basis_ratio": "1",
        "min_put_ratio": "0.3",
        "target_put_ratio": "0.5",
    }
    assert view["drift"]["tolerance"] == "0.02" and view["drift"]["exceeded"] is False
    assert view["drift"]["max_duration_s"] == POLICY.max_drift_duration.total_seconds()
    assert view["demand"] == "0"
    assert view["last_basis_bps"] is not None
    assert view["unwind"] | {"evidence": ""} == {
        "status": "holding",
        "confirmed": False,
        "steps_done": 0,
        "steps": 4,
        "min_interval_s": 60.0,
        "scope": "both",
        "auto": True,
        "requested": False,
        "last_step_at": None,
        "next_step_at": None,
        "evidence": "",
        "start_basis": None,
        "start_puts": None,
    }
    exposure = await cover.desk.manager.coverage_exposure()
    assert exposure is not None and exposure.puts
    assert Decimal(view["spot_price"]) == exposure.spot_price
    hedge, now = cover.desk.manager.hedge, cover.desk.clock.now()
    assert hedge is not None and hedge.surface is not None
    held = {p["symbol"]: p for p in view["puts"]["held"]}
    assert set(held) == {p.instrument.symbol for p in exposure.puts}
    totals = dict.fromkeys(("value", "delta", "gamma", "vega", "theta"), 0.0)
    for put in exposure.puts:
        shown = held[put.instrument.symbol]
        greeks = hedge.surface.greeks(put.instrument, Decimal(view["spot_price"]), now)
        assert (shown["price"], shown["delta"], shown["gamma"]) == (
            greeks.price,
            greeks.delta,
            greeks.gamma,
        )
        assert (shown["vega"], shown["theta"]) == (greeks.vega, greeks.theta)
        assert Decimal(shown["contracts"]) == put.contracts
        assert Decimal(shown["strike"]) == put.instrument.strike
        assert (shown["venue"], shown["rolling"]) == (put.instrument.venue, False)
        units = float(put.contracts)
        totals["value"] += units * greeks.price
        for name in ("delta", "gamma", "vega", "theta"):
            totals[name] += units * getattr(greeks, name)
    shown_totals = view["puts"]["totals"]
    assert shown_totals["delta"] < 0  # puts: protection against a fall
    for name, total in totals.items():
        assert shown_totals[name] == pytest.approx(total, rel=1e-12)
    assert Decimal(shown_totals["cover_qty"]) == exposure.put_cover_qty
    assert Decimal(view["exposure"]["put_cover_qty"]) == exposure.put_cover_qty


async def test_coverage_with_no_spot_has_no_ratios(cover: CoverageApi) -> None:
    view = (await cover.get("/v1/coverage")).json()

    assert view["exposure"] == {"spot_qty": "0", "perp_short_qty": "0", "put_cover_qty": "0"}
    assert view["ratios"] == {"basis": None, "put": None}
    assert view["drift"]["shortfall_share"] == "0"
    assert view["puts"]["held"] == [] and view["puts"]["totals"]["contracts"] == "0"
    assert Decimal(view["spot_price"]) > 0


async def test_without_a_spot_price_the_coverage_is_503(cover: CoverageApi) -> None:
    cover.desk.spot.go_down()

    response = await cover.get("/v1/coverage")
    phase = await cover.set_phase({"phase": "confirmed", "evidence": EVIDENCE})

    for refused in (response, phase):
        assert _assert_refused(refused, 503, "service_unavailable")["message"] == NO_SPOT_PRICE
    assert cover.store.coverage_log() == []


# --- the phase and the decisions ---------------------------------------------------------------


async def test_a_confirmed_phase_is_stored_and_shown_in_the_decisions(cover: CoverageApi) -> None:
    refused = await cover.unwind()
    assert _assert_refused(refused, 409, "unwind_not_confirmed")["message"].startswith(
        "unwind_not_confirmed: hedge unwind refused: confirmation not reached"
    )

    response = await cover.set_phase(
        {"phase": "confirmed", "evidence": f"  {EVIDENCE} ", "reason": "risk committee"}
    )

    assert response.status_code == 200, response.text
    record = response.json()
    evidence = f"{EVIDENCE} (reason: risk committee)"
    assert (record["kind"], record["phase"], record["unwind_status"]) == (
        "phase",
        "confirmed",
        "unwinding",
    )
    assert record["evidence"] == evidence and record["actor"].startswith("admin-1 (")
    assert record["detail"].startswith("phase stress → confirmed: confirmation reached")
    assert "state" not in record
    hedge = cover.desk.manager.hedge
    assert hedge is not None and hedge.phase is MarketPhase.CONFIRMED
    assert hedge.unwind.status is UnwindStatus.UNWINDING
    (stored,) = _decisions(await cover.get("/v1/coverage/decisions", kind="phase"))
    assert stored == record
    history = _decisions(await cover.get("/v1/coverage/decisions"))
    assert [(d["kind"], d["code"]) for d in history] == [
        ("unwind_refused", "unwind_not_confirmed"),
        ("phase", None),
    ]
    assert history[0]["actor"].startswith("trader-1 (")
    view = (await cover.get("/v1/coverage")).json()
    assert view["phase"] == "confirmed"
    assert view["unwind"]["confirmed"] is True and view["unwind"]["evidence"] == evidence
    assert view["required"]["target_basis_ratio"] == "0"


async def test_decisions_are_filtered_by_kind_and_limited_newest_last(cover: CoverageApi) -> None:
    for phase in ("clearing", "repair", "stress"):
        response = await cover.set_phase({"phase": phase, "evidence": EVIDENCE})
        assert response.status_code == 200, response.text
    await cover.unwind()

    latest = _decisions(await cover.get("/v1/coverage/decisions", limit=2))
    phases = _decisions(await cover.get("/v1/coverage/decisions", kind="phase", limit=1000))
    none = _decisions(await cover.get("/v1/coverage/decisions", kind="hedge_fill"))

    assert [d["kind"] for d in latest] == ["phase", "unwind_refused"]
    assert [d["phase"] for d in phases] == ["clearing", "repair", "stress"]
    assert none == []


# --- the unwind ------------------------------------------------------------------------------


async def test_an_unwind_step_is_taken_on_request_and_the_next_is_too_soon(
    on_request: CoverageApi,
) -> None:
    await on_request.accumulate("0.3", window_s=30, run_s=40)
    before = (await on_request.get("/v1/coverage")).json()
    assert Decimal(before["exposure"]["perp_short_qty"]) >= Decimal("0.24")
    assert _assert_refused(await on_request.unwind(), 409, "unwind_not_confirmed")
    assert (await on_request.set_phase({"phase": "confirmed", "evidence": EVIDENCE})).is_success
    await on_request.run(5)  # steps only on request: nothing is released yet
    held = (await on_request.get("/v1/coverage")).json()
    assert held["exposure"] == before["exposure"]
    assert held["unwind"]["start_basis"] == before["exposure"]["perp_short_qty"]

    accepted = await on_request.unwind()

    assert accepted.status_code == 202, accepted.text
    record = accepted.json()
    assert (record["kind"], record["actor"][:10]) == ("unwind_requested", "trader-1 (")
    assert (await on_request.get("/v1/coverage")).json()["unwind"]["requested"] is True
    await on_request.run(5)
    view = (await on_request.get("/v1/coverage")).json()
    unwind = view["unwind"]
    assert (unwind["steps_done"], unwind["requested"]) == (1, False)
    last = datetime.fromisoformat(unwind["last_step_at"])
    assert datetime.fromisoformat(unwind["next_step_at"]) == last + timedelta(seconds=60)
    short = Decimal(view["exposure"]["perp_short_qty"])
    assert short < Decimal(before["exposure"]["perp_short_qty"])

    too_soon = await on_request.unwind()

    message = _assert_refused(too_soon, 409, "unwind_too_soon")["message"]
    allowed_at = last + timedelta(seconds=60)
    assert message.startswith(f"unwind_too_soon: next step allowed at {allowed_at.isoformat()}")
    refusals = _decisions(await on_request.get("/v1/coverage/decisions", kind="unwind_refused"))
    assert [r["code"] for r in refusals] == ["unwind_not_confirmed", "unwind_too_soon"]
    (step,) = _decisions(await on_request.get("/v1/coverage/decisions", kind="unwind_step"))
    assert step["detail"].startswith("unwind step 1 of 4 taken")
    assert datetime.fromisoformat(step["ts"]) == last.astimezone(UTC)


# --- refusals of bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"phase": "bottom", "evidence": EVIDENCE}, "phase", "phase must be one of"),
        ({"phase": "CONFIRMED", "evidence": EVIDENCE}, "phase", "(got 'CONFIRMED')"),
        ({"evidence": EVIDENCE}, "phase", "phase is required"),
        ({"phase": "confirmed", "evidence": ""}, "evidence", "evidence must not be empty"),
        ({"phase": "confirmed", "evidence": "   "}, "evidence", "evidence must not be empty"),
        ({"phase": "confirmed", "evidence": "x" * 2001}, "evidence", "at most 2000 characters"),
        ({"phase": "confirmed", "evidence": 3}, "evidence", "evidence must be a string"),
        ({"phase": "confirmed"}, "evidence", "evidence is required"),
        ({"phase": "confirmed", "evidence": "e", "reason": ""}, "reason", "must not be empty"),
        ({"phase": "confirmed", "evidence": "e", "reason": "r" * 501}, "reason", "at most 500"),
        ({"phase": "confirmed", "evidence": "e", "actor": "pm"}, "actor", "not a field"),
    ],
)
async def test_a_bad_phase_change_is_422_naming_the_field(
    cover: CoverageApi, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = await cover.set_phase(body)

    problem = _assert_refused(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == field, problem
    assert fragment in problem["message"], problem
    assert cover.store.coverage_log() == []
    assert cover.desk.manager.hedge is not None
    assert cover.desk.manager.hedge.phase is MarketPhase.STRESS


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"kind": "bogus"}, "kind", "kind must be one of 'phase', 'spot_held'"),
        ({"kind": ""}, "kind", "kind must be one of"),
        ({"limit": 0}, "limit", "limit must be at least 1"),
        ({"limit": 1001}, "limit", "limit must be at most 1000"),
        ({"limit": "many"}, "limit", "limit must be a whole number"),
    ],
)
async def test_a_bad_decisions_query_is_422_naming_the_field(
    cover: CoverageApi, params: dict[str, Any], field: str, fragment: str
) -> None:
    response = await cover.get("/v1/coverage/decisions", **params)

    problem = _assert_refused(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == field, problem
    assert fragment in problem["message"], problem


@pytest.mark.parametrize("kind", DECISION_KINDS)
async def test_every_known_kind_is_a_valid_filter(cover: CoverageApi, kind: str) -> None:
    assert _decisions(await cover.get("/v1/coverage/decisions", kind=kind)) == []


# --- a desk without hedging ----------------------------------------------------------------------


async def test_without_hedging_the_coverage_routes_say_how_to_enable_it(api: Api) -> None:
    api.keys["admin"] = create_api_key(api.store, "admin-1", "admin", NOW)[0]
    body = {"phase": "confirmed", "evidence": EVIDENCE}

    responses = [
        await api.get("/v1/coverage"),
        await api.http.put("/v1/coverage/phase", json=body, headers=api.auth("admin")),
        await api.post("/v1/coverage/unwind"),
    ]

    for response in responses:
        message = _assert_refused(response, 404, "not_found")["message"]
        assert message == NOT_CONFIGURED
        assert message.startswith("hedging is not configured on this desk: add a [hedging]")
    assert (await api.get("/v1/coverage/decisions")).json() == []
    assert api.store.coverage_log() == []


async def test_the_coverage_routes_are_documented(cover: CoverageApi) -> None:
    document = (await cover.http.get("/openapi.json")).json()

    paths = document["paths"]
    assert set(paths["/v1/coverage"]) == {"get"}
    assert paths["/v1/coverage/phase"]["put"]["tags"] == ["risk"]
    assert {"401", "403", "404", "409", "422", "503"} <= set(
        paths["/v1/coverage/unwind"]["post"]["responses"]
    )
    examples = document["components"]["schemas"]["PhaseUpdate"]["examples"]
    assert examples[0]["phase"] == "confirmed"
