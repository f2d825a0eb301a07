"""End to end: a TWAP parent over HTTP, worked on the replay clock over the recorded book."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx

from ems.api.app import create_app
from ems.api.auth import create_api_key
from ems.clock import TestClock
from ems.manager import ParentOrderManager
from ems.store import SqlStore
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from tests.replay_support import (
    check_fills_against_recorded_book,
    run_until_done,
    snapshot_time,
    spot_recording,
)

VENUE = "binance-sim"


async def test_twap_parent_submitted_over_http_fills_exactly_on_the_recorded_book(
    store: SqlStore,
) -> None:
    # Arrange: the real app, manager, store and a venue replaying the recorded Binance book.
    events = spot_recording()
    clock = TestClock(snapshot_time(events) + timedelta(seconds=5))
    venue = SimVenue(binance_btcusdt_config(VENUE), clock, {"BTC/USDT": events})
    manager = ParentOrderManager(store, {VENUE: venue}, clock, id_factory=lambda: "PINTEGRATION1")
    app = create_app(manager, store)
    key, _ = create_api_key(store, "integration", "trader", clock.now())
    headers = {"Authorization": f"Bearer {key}"}
    end = clock.now() + timedelta(minutes=4)
    body = {
        "client_id": "it-twap-1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "1.5",
        "algo": "twap",
        "end_at": end.isoformat(),
        "algo_params": {"algo": "twap", "slice_interval_s": 15, "jitter_pct": 0.2, "seed": 11},
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ems") as client:
        created = await client.post("/v1/parents", json=body, headers=headers)
        assert created.status_code == 201, created.text
        parent_id = created.json()["id"]

        # Act: run the engine on the replay clock until the parent is done.
        final = await run_until_done(manager, clock, parent_id, until=end + timedelta(seconds=30))

        shown = (await client.get(f"/v1/parents/{parent_id}", headers=headers)).json()
        children = (await client.get(f"/v1/parents/{parent_id}/children", headers=headers)).json()
        fills_json = (await client.get(f"/v1/parents/{parent_id}/fills", headers=headers)).json()

    # Assert: complete, exact, and every fill explained by the recorded book.
    assert final.status.value == "completed"
    assert shown["status"] == "completed"
    assert Decimal(shown["filled_qty"]) == Decimal("1.5")
    child_rows = children if isinstance(children, list) else children["items"]
    fill_rows = fills_json if isinstance(fills_json, list) else fills_json["items"]
    assert sum(Decimal(c["filled_qty"]) for c in child_rows) == Decimal("1.5")
    assert len(child_rows) >= 8, "a TWAP works in slices, not one order"
    assert all(c["client_order_id"] == f"{parent_id}-{c['seq']}" for c in child_rows)

    fills = store.fills(parent_id)
    assert len(fills) == len(fill_rows)
    assert sum(f.qty for f in fills) == Decimal("1.5")
    assert len({(f.venue, f.trade_id) for f in fills}) == len(fills)
    for fill in fills:
        assert fill.fee == fill.price * fill.qty * Decimal("0.001")  # maker = taker = 10 bps
        assert fill.fee_currency == "USDT"
    assert final.fees == sum(f.fee for f in fills)
    assert check_fills_against_recorded_book(fills, events) == len(fills)
    assert len(venue.submissions) == len(set(venue.submissions)) == len(child_rows)
