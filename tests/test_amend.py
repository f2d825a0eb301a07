"""Amending a parent mid-flight over HTTP: the real app, manager and store (both databases),
with a simulated venue replaying the recorded Binance BTC/USDT book on the test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import httpx
import pytest

from ems.api.app import create_app
from ems.api.auth import create_api_key
from ems.clock import TestClock
from ems.domain import Side
from ems.manager import ParentOrderManager
from ems.orders import ChildStatus, ParentOrder
from ems.store import SqlStore
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from tests.replay_support import run_until_done, snapshot_time, spot_recording

VENUE = "binance-sim"
SYMBOL = "BTC/USDT"
LOT = Decimal("0.00001")
TICK = Decimal("0.01")
STEP = timedelta(milliseconds=500)


@dataclass
class Desk:
    """A trader's HTTP client of the real app, with the engine and the replay behind it."""

    http: httpx.AsyncClient
    store: SqlStore
    clock: TestClock
    manager: ParentOrderManager
    venue: SimVenue
    headers: dict[str, str]

    async def submit(self, client_id: str, **changes: Any) -> dict[str, Any]:
        body = {
            "client_id": client_id,
            "symbol": SYMBOL,
            "side": "buy",
            "quantity": "0.4",
            "algo": "twap",
            "end_at": (self.clock.now() + timedelta(minutes=2)).isoformat(),
            "algo_params": {"slice_interval_s": 10, "seed": 5},
            **changes,
        }
        response = await self.http.post("/v1/parents", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        parent: dict[str, Any] = response.json()
        return parent

    async def amend(self, parent_id: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.patch(f"/v1/parents/{parent_id}", json=body, headers=self.headers)

    async def show(self, parent_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/parents/{parent_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        parent: dict[str, Any] = response.json()
        return parent

    async def children(self, parent_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/v1/parents/{parent_id}/children", headers=self.headers)
        assert response.status_code == 200, response.text
        children: list[dict[str, Any]] = response.json()
        return children

    def parent(self, parent_id: str) -> ParentOrder:
        parent = self.manager.parent(parent_id)
        assert parent is not None
        return parent

    def working(self, parent_id: str) -> Decimal:
        return sum((c.working_qty for c in self.manager.live_children(parent_id)), Decimal(0))

    async def step(self, parent_id: str) -> ParentOrder:
        """Advance the clock one step, run the engine and check the no-overfill rule."""
        self.clock.advance(STEP)
        await self.manager.step()
        parent = self.parent(parent_id)
        assert parent.filled_qty + self.working(parent_id) <= parent.quantity
        return parent

    async def step_until(
        self, parent_id: str, done: Callable[[ParentOrder], bool], limit: int = 600
    ) -> ParentOrder:
        for _ in range(limit):
            parent = await self.step(parent_id)
            if done(parent):
                return parent
        raise AssertionError(f"{parent_id}: condition not reached in {limit} steps")

    async def mid(self) -> Decimal:
        mid = (await self.venue.order_book(SYMBOL, 5)).mid
        assert mid is not None
        return mid


@pytest.fixture
async def desk(store: SqlStore) -> AsyncIterator[Desk]:
    events = spot_recording()
    clock = TestClock(snapshot_time(events) + timedelta(seconds=5))
    venue = SimVenue(binance_btcusdt_config(VENUE), clock, {SYMBOL: events})
    manager = ParentOrderManager(store, {VENUE: venue}, clock)
    key, _ = create_api_key(store, "amender", "trader", clock.now())
    transport = httpx.ASGITransport(app=create_app(manager, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ems") as http:
        yield Desk(http, store, clock, manager, venue, {"Authorization": f"Bearer {key}"})


def _lots(value: Decimal) -> Decimal:
    """``value`` rounded up to a whole number of lots."""
    return (value / LOT).to_integral_value(rounding=ROUND_CEILING) * LOT


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    return body


async def test_an_accepted_parent_is_amended_before_it_starts(desk: Desk) -> None:
    start = desk.clock.now() + timedelta(minutes=1)
    parent = await desk.submit(
        "amend-accepted", start_at=start.isoformat(), end_at=_iso(start + timedelta(minutes=2))
    )
    assert parent["status"] == "accepted"
    limit = (await desk.mid() * Decimal("1.02")).quantize(TICK)
    new_end = start + timedelta(minutes=3)

    response = await desk.amend(
        parent["id"], {"quantity": "0.6", "limit_price": str(limit), "end_at": new_end.isoformat()}
    )

    assert response.status_code == 200, response.text
    amended = response.json()
    assert amended["status"] == "accepted"
    assert (amended["quantity"], amended["remaining_qty"]) == ("0.6", "0.6")
    assert Decimal(amended["limit_price"]) == limit
    assert amended["end_at"] == _iso(new_end) and amended["start_at"] == _iso(start)
    assert await desk.show(parent["id"]) == amended
    stored = desk.store.get_parent(parent["id"])
    assert stored is not None
    assert (stored.quantity, stored.limit_price, stored.end_at) == (Decimal("0.6"), limit, new_end)
    [record] = [e for e in desk.store.events(parent["id"]) if e.kind == "parent_amended"]
    assert record.payload["quantity"] == "0.6" and record.payload["clear_limit"] == "False"

    cleared = await desk.amend(parent["id"], {"limit_price": None, "clear_limit": True})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["limit_price"] is None and cleared.json()["quantity"] == "0.6"


async def test_a_working_parent_amended_up_replans_and_completes_at_the_new_quantity(
    desk: Desk,
) -> None:
    parent_id = (await desk.submit("amend-up", quantity="0.4"))["id"]
    old_end = desk.parent(parent_id).end_at
    start = desk.parent(parent_id).start_at
    before = await desk.step_until(
        parent_id, lambda p: p.filled_qty > 0 and bool(desk.manager.live_children(p.id))
    )
    live_at_amend = {c.client_order_id for c in desk.manager.live_children(parent_id)}
    last_seq = before.next_child_seq - 1
    new_end = old_end + timedelta(minutes=1)

    response = await desk.amend(parent_id, {"quantity": "1", "end_at": new_end.isoformat()})

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["quantity"]) == ("working", "1")
    assert response.json()["end_at"] == _iso(new_end)

    # The re-plan: the children working at the amendment are cancelled on the next steps...
    for _ in range(4):
        await desk.step(parent_id)
    children = {c["client_order_id"]: c for c in await desk.children(parent_id)}
    assert all(
        children[cid]["status"] in ("pending_cancel", "cancelled", "filled")
        for cid in live_at_amend
    )
    # ...and new ones follow the new quantity: before the old end, filled + working goes past
    # the old quantity of 0.4 (the new schedule wants 1 * 2/3 done by then).
    most = Decimal(0)
    while desk.clock.now() < old_end - timedelta(seconds=5):
        parent = await desk.step(parent_id)
        most = max(most, parent.filled_qty + desk.working(parent_id))
    assert most > Decimal("0.4")

    # The old end time no longer applies: still working after it.
    while desk.clock.now() < old_end + timedelta(seconds=5):
        parent = await desk.step(parent_id)
    assert parent.status.value == "working" and parent.filled_qty < 1

    final = await run_until_done(
        desk.manager, desk.clock, parent_id, new_end + timedelta(seconds=30)
    )

    assert final.status.value == "completed", final.reason
    assert final.filled_qty == Decimal(1)
    fills = desk.store.fills(parent_id)
    assert sum(f.qty for f in fills) == Decimal(1)
    assert len({(f.venue, f.trade_id) for f in fills}) == len(fills)
    assert all(start <= f.ts <= new_end + timedelta(seconds=30) for f in fills)
    assert any(f.ts > old_end for f in fills)
    shown = await desk.show(parent_id)
    assert (shown["status"], shown["filled_qty"], shown["remaining_qty"]) == ("completed", "1", "0")
    children_after = await desk.children(parent_id)
    assert sum(Decimal(c["filled_qty"]) for c in children_after) == Decimal(1)
    assert any(c["seq"] > last_seq and Decimal(c["filled_qty"]) > 0 for c in children_after)


async def test_quantity_down_but_never_below_what_is_filled_or_still_working(
    desk: Desk,
) -> None:
    parent_id = (await desk.submit("amend-down", quantity="0.5"))["id"]
    parent = await desk.step_until(
        parent_id, lambda p: p.filled_qty >= Decimal("0.05") and desk.working(p.id) > 0
    )
    filled, working = parent.filled_qty, desk.working(parent_id)

    below_filled = await desk.amend(parent_id, {"quantity": str(filled - LOT)})

    body = _refused(below_filled, 422, "invalid_order")
    assert body["errors"][0]["field"] == "quantity"
    expected = f"quantity {filled - LOT} is below the {filled} already filled"
    assert body["message"] == expected

    # Between filled and filled + working: a working child could overfill it before its
    # cancel is confirmed, so it is refused too, saying what would be accepted.
    squeezed = await desk.amend(parent_id, {"quantity": str(filled + working - LOT)})

    body = _refused(squeezed, 422, "invalid_order")
    assert body["errors"][0]["field"] == "quantity"
    assert f"plus the {working} still working" in body["message"]
    assert f"amend to at least {filled + working}" in body["message"]
    assert desk.parent(parent_id).quantity == Decimal("0.5")

    new_quantity = _lots(filled + working + Decimal("0.05"))
    assert new_quantity < Decimal("0.5")
    response = await desk.amend(parent_id, {"quantity": str(new_quantity)})
    assert response.status_code == 200, response.text
    assert Decimal(response.json()["quantity"]) == new_quantity

    end = desk.parent(parent_id).end_at + timedelta(seconds=30)
    final = await run_until_done(desk.manager, desk.clock, parent_id, end)

    assert final.status.value == "completed", final.reason
    assert final.filled_qty == new_quantity
    assert sum(f.qty for f in desk.store.fills(parent_id)) == new_quantity
    assert sum(Decimal(c["filled_qty"]) for c in await desk.children(parent_id)) == new_quantity


async def test_a_paused_parent_is_amended_and_completes_within_its_new_limit(desk: Desk) -> None:
    parent_id = (await desk.submit("amend-paused", quantity="0.3"))["id"]
    await desk.step_until(parent_id, lambda p: p.filled_qty > 0)
    paused = await desk.http.post(f"/v1/parents/{parent_id}/pause", headers=desk.headers)
    assert paused.status_code == 200, paused.text
    await desk.step_until(parent_id, lambda p: not desk.manager.live_children(p.id))
    mid = await desk.mid()
    limit = (mid * Decimal("1.01")).quantize(TICK)
    end = desk.parent(parent_id).end_at + timedelta(seconds=30)

    outside = await desk.amend(
        parent_id, {"limit_price": str((mid * Decimal("0.8")).quantize(TICK))}
    )
    body = _refused(outside, 422, "invalid_order")
    assert body["errors"][0]["field"] == "limit_price" and "collar" in body["message"]
    late = await desk.amend(parent_id, {"end_at": "2020-01-01T00:00:00Z"})
    assert _refused(late, 422, "invalid_order")["errors"][0]["field"] == "end_at"

    response = await desk.amend(parent_id, {"quantity": "0.45", "limit_price": str(limit)})

    assert response.status_code == 200, response.text
    amended = response.json()
    assert (amended["status"], amended["quantity"]) == ("paused", "0.45")
    assert Decimal(amended["limit_price"]) == limit
    for _ in range(6):  # still paused: nothing is sent
        await desk.step(parent_id)
    assert not desk.manager.live_children(parent_id)

    resumed = await desk.http.post(f"/v1/parents/{parent_id}/resume", headers=desk.headers)
    assert resumed.status_code == 200 and resumed.json()["status"] == "working"
    final = await run_until_done(desk.manager, desk.clock, parent_id, end)

    assert final.status.value == "completed", final.reason
    assert final.filled_qty == Decimal("0.45")
    fills = desk.store.fills(parent_id)
    assert sum(f.qty for f in fills) == Decimal("0.45")
    amended_at = desk.parent(parent_id).updated_at
    assert all(f.price <= limit for f in fills if f.ts >= amended_at)
    assert all(f.side is Side.BUY for f in fills)


async def test_schedule_quality_figures_are_shown_once_measured(desk: Desk) -> None:
    parent_id = (await desk.submit("quality", quantity="0.1"))["id"]
    fresh = await desk.show(parent_id)
    assert (fresh["tracking_error_mean"], fresh["tracking_error_max"]) == (None, None)
    assert (fresh["participation_rate"], fresh["maker_share"]) == (None, None)
    assert fresh["market_volume"] == "0"

    end = desk.parent(parent_id).end_at + timedelta(seconds=30)
    final = await run_until_done(desk.manager, desk.clock, parent_id, end)
    shown = await desk.show(parent_id)

    assert final.status.value == "completed"
    stored = desk.store.get_parent(parent_id)
    assert stored is not None and stored.tracking_samples > 0 and stored.market_volume > 0
    mean, worst = Decimal(shown["tracking_error_mean"]), Decimal(shown["tracking_error_max"])
    assert 0 <= mean <= worst <= 1
    assert Decimal(shown["market_volume"]) == stored.market_volume
    assert Decimal(shown["participation_rate"]) == (Decimal("0.1") / stored.market_volume).quantize(
        Decimal("1E-8")
    )
    maker = sum(
        (f.qty for f in desk.store.fills(parent_id) if f.liquidity.value == "maker"), Decimal(0)
    )
    assert Decimal(shown["maker_share"]) == (maker / Decimal("0.1")).quantize(Decimal("1E-8"))


async def test_finished_or_winding_down_parents_cannot_be_amended(desk: Desk) -> None:
    done_id = (await desk.submit("amend-done", quantity="0.01"))["id"]
    end = desk.parent(done_id).end_at + timedelta(seconds=30)
    assert (await run_until_done(desk.manager, desk.clock, done_id, end)).status.value == (
        "completed"
    )
    response = await desk.amend(done_id, {"quantity": "0.02"})
    assert _refused(response, 409, "invalid_transition")["message"] == (
        f"parent {done_id} is completed; it cannot be amended"
    )
    # Even a body the market checks would refuse gets 409: the state is the answer.
    response = await desk.amend(done_id, {"quantity": "0.000001"})
    assert response.status_code == 409

    live_id = (await desk.submit("amend-cancel", quantity="0.2"))["id"]
    await desk.step_until(live_id, lambda p: bool(desk.manager.live_children(p.id)))
    cancelled = await desk.http.post(f"/v1/parents/{live_id}/cancel", headers=desk.headers)
    assert cancelled.json()["status"] == "cancelling"

    response = await desk.amend(live_id, {"quantity": "0.3"})

    assert _refused(response, 409, "invalid_transition")["message"] == (
        f"parent {live_id} is cancelling; it cannot be amended"
    )
    final = await desk.step_until(live_id, lambda p: p.is_terminal)
    assert final.status.value == "cancelled"
    response = await desk.amend(live_id, {"end_at": _iso(desk.clock.now() + timedelta(hours=1))})
    assert _refused(response, 409, "invalid_transition")["message"] == (
        f"parent {live_id} is cancelled; it cannot be amended"
    )
    assert [e.kind for e in desk.store.events(live_id)].count("parent_amended") == 0
    assert desk.store.get_parent(live_id).quantity == Decimal("0.2")  # type: ignore[union-attr]
    assert ChildStatus.OPEN not in {c.status for c in desk.store.children(live_id)}
