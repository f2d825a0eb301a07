"""The store's routing records on SQLite and PostgreSQL: impact points, impact-curve fits,
routing decisions and the routing context of children (revision 0003)."""

from __future__ import annotations

import dataclasses
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, StatementError

from ems.domain import Side
from ems.orders import ParentStatus
from ems.ports import Batch, ImpactFitRecord, ImpactPoint, RouteRecord
from ems.store import SqlStore, create_store_engine, migrate
from tests.test_store import (
    _CHILD_0001,
    _PARENT_0001,
    STORE_TABLES,
    T0,
    _alembic,
    _columns,
    _head_revision,
    accepted,
    make_child,
    make_fill,
    make_parent,
    stored_parent,
)

ROUTING_TABLES = {"impact_points", "impact_fits", "route_decisions"}
CHILD_CONTEXT = {"decision_mid", "expected_cost_bps", "x_depth", "x_volume"}
LONG = Decimal("12.3456789012345678905")  # 19 places: one more than the store holds
LONG_ROUNDED = Decimal("12.345678901234567890")  # half-even: ...890|5 -> ...890


def make_point(n: int = 1, parent_id: str = "P1", **changes: Any) -> ImpactPoint:
    point = ImpactPoint(
        client_order_id=f"{parent_id}-{n}",
        parent_id=parent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        ts=T0 + timedelta(seconds=n),
        qty=Decimal("0.123456789012345678"),
        filled_qty=Decimal("0.1"),
        aggressive=True,
        decision_mid=Decimal("64999.125"),
        x_depth=Decimal("0.000000000000000001"),
        x_volume=Decimal("0.25"),
        expected_cost_bps=Decimal("3.5"),
        realised_cost_bps=Decimal("-1.234567"),
        fee_bps=Decimal("10"),
    )
    return dataclasses.replace(point, **changes)


def make_fit(venue: str = "binance", symbol: str = "BTC/USDT", **changes: Any) -> ImpactFitRecord:
    fit = ImpactFitRecord(
        venue=venue,
        symbol=symbol,
        a=Decimal("12.5"),
        b=Decimal("0.6"),
        a_low=Decimal("10.000000001"),
        a_high=Decimal("15"),
        b_low=Decimal("0.5"),
        b_high=Decimal("0.7"),
        n=40,
        fitted_at=T0,
    )
    return dataclasses.replace(fit, **changes)


def make_route(parent_id: str = "P1", seconds: int = 0, **changes: Any) -> RouteRecord:
    route = RouteRecord(
        parent_id=parent_id,
        ts=T0 + timedelta(seconds=seconds),
        side=Side.BUY,
        qty=Decimal("1.000000000000000001"),
        price=Decimal("65000.5"),
        aggressive=True,
        mid=Decimal("64999.25"),
        expected_cost_bps=Decimal("4.25"),
        quotes=(
            {
                "venue": "okx",
                "best_bid": "64999",
                "best_ask": "65000.5",
                "tradable": "true",
                "reason": "ok",
                "expected_cost_bps": "4.25",
                "capacity": "3",
            },
            {
                "venue": "binance",
                "best_bid": "",
                "best_ask": "",
                "tradable": "false",
                "reason": "stale_book",
                "expected_cost_bps": "",
                "capacity": "0",
            },
        ),
        allocations=(
            {
                "venue": "okx",
                "client_order_id": f"{parent_id}-1",
                "qty": "1.000000000000000001",
                "price": "65000.5",
                "expected_cost_bps": "4.25",
            },
        ),
        notes=("binance: stale book", "dispersion cap 100%"),
    )
    return dataclasses.replace(route, **changes)


# --- impact points -----------------------------------------------------------------------------


def test_an_impact_point_round_trips_exactly(store: SqlStore) -> None:
    stored_parent(store)
    point = make_point()

    store.commit(Batch(impact_points=[point]))
    [loaded] = store.impact_points()

    assert loaded == point
    decimals = ("qty", "filled_qty", "decision_mid", "x_depth", "x_volume")
    decimals += ("expected_cost_bps", "realised_cost_bps", "fee_bps")
    assert all(type(getattr(loaded, name)) is Decimal for name in decimals)
    assert loaded.side is Side.BUY and loaded.aggressive is True
    assert loaded.ts.utcoffset() == timedelta(0)


def test_costs_and_relative_sizes_are_rounded_half_even_but_prices_are_exact(
    store: SqlStore,
) -> None:
    stored_parent(store)
    third = Decimal(1) / Decimal(3)
    point = make_point(
        x_depth=third,
        x_volume=LONG,
        expected_cost_bps=LONG,
        realised_cost_bps=-third,
        fee_bps=Decimal("0.1234567890123456775"),
    )

    store.commit(Batch(impact_points=[point]))
    [loaded] = store.impact_points()

    assert loaded.x_depth == Decimal("0.333333333333333333")
    assert loaded.x_volume == loaded.expected_cost_bps == LONG_ROUNDED
    assert loaded.realised_cost_bps == Decimal("-0.333333333333333333")
    assert loaded.fee_bps == Decimal("0.123456789012345678")


@pytest.mark.parametrize("field", ["decision_mid", "qty", "filled_qty"])
def test_an_impact_point_price_or_quantity_with_too_many_places_is_refused(
    store: SqlStore, field: str
) -> None:
    parent = stored_parent(store)
    point = make_point(**{field: LONG})

    with pytest.raises(StatementError, match="decimal places"):
        store.commit(Batch(parents=[parent], impact_points=[point]))

    assert store.impact_points() == []


def test_a_second_point_for_the_same_child_is_skipped(store: SqlStore) -> None:
    stored_parent(store)
    first = make_point(1)
    store.commit(Batch(impact_points=[first]))

    again = make_point(1, realised_cost_bps=Decimal(99))
    store.commit(Batch(impact_points=[again, again, make_point(2)]))

    points = store.impact_points()
    assert [p.client_order_id for p in points] == ["P1-2", "P1-1"]
    assert points[1] == first


def test_impact_points_are_newest_first_and_filtered(store: SqlStore) -> None:
    stored_parent(store)
    points = [
        make_point(1, venue="binance", ts=T0 + timedelta(seconds=1)),
        make_point(2, venue="okx", ts=T0 + timedelta(seconds=2)),
        make_point(3, venue="binance", symbol="ETH/USDT", ts=T0 + timedelta(seconds=3)),
        make_point(4, venue="binance", ts=T0 + timedelta(seconds=4)),
        make_point(5, venue="binance", ts=T0 + timedelta(seconds=4)),  # same time, stored later
    ]
    store.commit(Batch(impact_points=points[:3]))
    store.commit(Batch(impact_points=points[3:]))

    def ids(**filters: Any) -> list[str]:
        return [p.client_order_id for p in store.impact_points(**filters)]

    assert ids() == ["P1-5", "P1-4", "P1-3", "P1-2", "P1-1"]
    assert ids(venue="binance") == ["P1-5", "P1-4", "P1-3", "P1-1"]
    assert ids(symbol="ETH/USDT") == ["P1-3"]
    assert ids(venue="binance", symbol="BTC/USDT") == ["P1-5", "P1-4", "P1-1"]
    assert ids(since=T0 + timedelta(seconds=3)) == ["P1-5", "P1-4", "P1-3"]  # inclusive
    plus_two = timezone(timedelta(hours=2))
    assert ids(since=datetime(2024, 3, 1, 14, 0, 4, tzinfo=plus_two)) == ["P1-5", "P1-4"]
    assert ids(venue="binance", limit=2) == ["P1-5", "P1-4"]
    assert ids(limit=0) == []
    assert ids(venue="kraken") == []


def test_impact_points_refuse_a_negative_limit(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        store.impact_points(limit=-1)


# --- children's routing context ----------------------------------------------------------------


def test_the_routing_context_of_a_child_round_trips(store: SqlStore) -> None:
    parent = make_parent()
    routed = make_child(
        parent,
        1,
        decision_mid=Decimal("64999.125"),
        expected_cost_bps=Decimal("3.25"),
        x_depth=Decimal("0.015"),
        x_volume=Decimal("0.000002"),
    )
    unrouted = make_child(parent, 2)

    store.commit(Batch(parents=[parent], children=[routed, unrouted]))
    loaded = store.children(parent.id)

    assert loaded == [routed, unrouted]
    assert all(
        type(getattr(loaded[0], name)) is Decimal
        for name in ("decision_mid", "expected_cost_bps", "x_depth", "x_volume")
    )
    assert (unrouted.decision_mid, unrouted.expected_cost_bps) == (None, None)
    assert (loaded[1].x_depth, loaded[1].x_volume) == (None, None)


def test_a_childs_cost_and_sizes_are_rounded_and_its_mid_is_exact(store: SqlStore) -> None:
    parent = make_parent()
    child = make_child(
        parent, expected_cost_bps=LONG, x_depth=Decimal(2) / 3, x_volume=Decimal(1) / 7
    )

    store.commit(Batch(parents=[parent], children=[child]))
    [loaded] = store.children(parent.id)

    assert loaded.expected_cost_bps == LONG_ROUNDED
    assert loaded.x_depth == Decimal("0.666666666666666667")
    assert loaded.x_volume == Decimal("0.142857142857142857")

    refused = make_child(parent, 2, decision_mid=LONG)
    with pytest.raises(StatementError, match="decimal places"):
        store.commit(Batch(children=[refused]))
    assert len(store.children(parent.id)) == 1


# --- routing decisions -------------------------------------------------------------------------


def test_a_routing_decision_round_trips_exactly(store: SqlStore) -> None:
    parent = stored_parent(store)
    route = make_route(parent.id)
    unpriced = make_route(parent.id, 1, mid=None, expected_cost_bps=None, quotes=(), notes=())

    store.commit(Batch(routes=[route, unpriced]))
    loaded = store.route_decisions(parent.id)

    assert loaded == [route, unpriced]
    assert loaded[0].qty == Decimal("1.000000000000000001") and type(loaded[0].mid) is Decimal
    assert loaded[0].side is Side.BUY and loaded[0].ts.utcoffset() == timedelta(0)
    assert [list(q) for q in loaded[0].quotes] == [list(q) for q in route.quotes]  # key order
    assert loaded[0].notes == ("binance: stale book", "dispersion cap 100%")
    assert (loaded[1].mid, loaded[1].expected_cost_bps, loaded[1].quotes) == (None, None, ())


def test_routing_decisions_are_in_time_order_per_parent(store: SqlStore) -> None:
    first, other = stored_parent(store, 1), stored_parent(store, 2)
    late = make_route(first.id, 9, notes=("late",))
    early = make_route(first.id, 1, notes=("early",))
    tie = make_route(first.id, 9, notes=("tie, stored after late",))

    store.commit(Batch(routes=[late, make_route(other.id, 5)]))
    store.commit(Batch(routes=[early, tie]))

    assert [r.notes[0] for r in store.route_decisions(first.id)] == [
        "early",
        "late",
        "tie, stored after late",
    ]
    assert [r.parent_id for r in store.route_decisions(other.id)] == [other.id]
    assert store.route_decisions("nope") == []


def test_a_routing_decision_cost_is_rounded_half_even(store: SqlStore) -> None:
    parent = stored_parent(store)

    store.commit(Batch(routes=[make_route(parent.id, expected_cost_bps=LONG)]))

    assert store.route_decisions(parent.id)[0].expected_cost_bps == LONG_ROUNDED


@pytest.mark.parametrize(
    "changes",
    [
        {"quotes": ({"venue": "okx", "capacity": Decimal(3)},)},
        {"allocations": ({"venue": "okx", "qty": 1},)},
        {"allocations": ("okx",)},
        {"notes": (("not", "a", "string"),)},
    ],
    ids=["decimal-in-quotes", "int-in-allocations", "string-as-allocation", "tuple-note"],
)
def test_a_routing_decision_holding_anything_but_strings_is_refused(
    store: SqlStore, changes: dict[str, Any]
) -> None:
    parent = make_parent()

    with pytest.raises(TypeError, match="string"):
        store.commit(Batch(parents=[parent], routes=[make_route(parent.id, **changes)]))

    assert store.get_parent(parent.id) is None


# --- one transaction ---------------------------------------------------------------------------


def test_a_batch_stores_points_and_routes_with_the_rest(store: SqlStore) -> None:
    parent = make_parent()
    child = make_child(parent, expected_cost_bps=Decimal("3.5"), decision_mid=Decimal("64999"))
    point = make_point(1, parent.id)
    route = make_route(parent.id)
    batch = Batch(
        parents=[parent],
        children=[child],
        fills=[(parent.id, make_fill(child))],
        events=[(parent.id, accepted(parent))],
        impact_points=[point],
        routes=[route],
    )

    store.commit(batch)

    assert store.get_parent(parent.id) == dataclasses.replace(parent, trade_ids={"T1"})
    assert store.children(parent.id)[0].decision_mid == Decimal("64999")
    assert store.impact_points() == [point]
    assert store.route_decisions(parent.id) == [route]


def test_a_batch_of_only_points_or_only_routes_is_written(store: SqlStore) -> None:
    parent = stored_parent(store)
    assert Batch(impact_points=[make_point(1)]) and Batch(routes=[make_route()])

    store.commit(Batch(impact_points=[make_point(1)]))
    store.commit(Batch(routes=[make_route()]))

    assert store.impact_points() == [make_point(1)]
    assert store.route_decisions(parent.id) == [make_route()]


def _bad_child(parent_id: str) -> dict[str, Any]:
    return {"children": [make_child(make_parent(2), 2, qty=LONG)]}


def _point_of_unknown_parent(parent_id: str) -> dict[str, Any]:
    return {"impact_points": [make_point(9, "P404")]}


def _point_with_inexact_mid(parent_id: str) -> dict[str, Any]:
    return {"impact_points": [make_point(9, parent_id, decision_mid=LONG)]}


def _route_of_unknown_parent(parent_id: str) -> dict[str, Any]:
    return {"routes": [make_route("P404")]}


def _route_with_inexact_price(parent_id: str) -> dict[str, Any]:
    return {"routes": [make_route(parent_id, price=LONG)]}


@pytest.mark.parametrize(
    "bad",
    [
        _bad_child,
        _point_of_unknown_parent,
        _point_with_inexact_mid,
        _route_of_unknown_parent,
        _route_with_inexact_price,
    ],
)
def test_a_failing_batch_leaves_no_point_no_route_and_nothing_else(
    store: SqlStore, bad: Any
) -> None:
    existing = stored_parent(store, 1)
    store.commit(Batch(impact_points=[make_point(1, existing.id)], routes=[make_route("P1")]))
    parent = make_parent(2)
    child = make_child(parent)
    good: dict[str, list[Any]] = {
        "parents": [dataclasses.replace(existing, status=ParentStatus.WORKING), parent],
        "children": [child],
        "fills": [(parent.id, make_fill(child))],
        "events": [(parent.id, accepted(parent))],
        "impact_points": [make_point(2, existing.id), make_point(1, parent.id)],
        "routes": [make_route(existing.id, 5), make_route(parent.id)],
    }
    for key, extra in bad(parent.id).items():
        good[key] = good[key] + extra

    with pytest.raises((IntegrityError, StatementError)):
        store.commit(Batch(**good))

    assert store.get_parent(parent.id) is None
    assert store.get_parent(existing.id) == existing
    assert store.children(parent.id) == [] and store.fills(parent.id) == []
    assert store.events(parent.id) == []
    assert [p.client_order_id for p in store.impact_points()] == ["P1-1"]
    assert store.route_decisions(parent.id) == []
    assert store.route_decisions(existing.id) == [make_route("P1")]


# --- impact-curve fits -------------------------------------------------------------------------


def test_a_fit_round_trips_exactly(store: SqlStore) -> None:
    fit = make_fit()

    store.save_impact_fit(fit)

    assert store.impact_fits() == [fit]
    loaded = store.impact_fits()[0]
    assert all(
        type(getattr(loaded, name)) is Decimal
        for name in ("a", "b", "a_low", "a_high", "b_low", "b_high")
    )
    assert type(loaded.n) is int and loaded.fitted_at.utcoffset() == timedelta(0)


def test_the_newest_fit_per_venue_and_symbol_is_the_current_one(store: SqlStore) -> None:
    history = [
        make_fit("binance", n=1, fitted_at=T0),
        make_fit("binance", n=3, fitted_at=T0 + timedelta(minutes=2)),
        make_fit("binance", n=2, fitted_at=T0 + timedelta(minutes=1)),  # saved late, but older
        make_fit("okx", n=10, fitted_at=T0 + timedelta(minutes=5)),
        make_fit("okx", n=11, fitted_at=T0 + timedelta(minutes=5)),  # same time, saved later
        make_fit("binance", "ETH/USDT", n=20, fitted_at=T0),
    ]
    for fit in history:
        store.save_impact_fit(fit)

    current = store.impact_fits()

    assert [(f.venue, f.symbol, f.n) for f in current] == [
        ("binance", "BTC/USDT", 3),
        ("binance", "ETH/USDT", 20),
        ("okx", "BTC/USDT", 11),
    ]
    assert [f.n for f in store.impact_fits(venue="binance")] == [3, 20]
    assert [f.n for f in store.impact_fits(symbol="BTC/USDT")] == [3, 11]
    assert [f.n for f in store.impact_fits(venue="okx", symbol="BTC/USDT")] == [11]
    assert store.impact_fits(venue="kraken") == []


def test_no_fit_yet_reads_as_an_empty_list(store: SqlStore) -> None:
    assert store.impact_fits() == []
    assert store.impact_points() == []


def test_fit_coefficients_are_rounded_half_even_to_18_places(store: SqlStore) -> None:
    store.save_impact_fit(make_fit(a=Decimal.from_float(0.1), b=LONG, a_low=Decimal(1) / 3))

    [loaded] = store.impact_fits()

    assert loaded.a == Decimal("0.100000000000000006")  # the binary float 0.1000...0555, rounded
    assert loaded.b == LONG_ROUNDED
    assert loaded.a_low == Decimal("0.333333333333333333")


@pytest.mark.parametrize("bad", [Decimal("Infinity"), Decimal("NaN")])
def test_a_non_finite_fit_is_refused_and_the_current_one_kept(
    store: SqlStore, bad: Decimal
) -> None:
    store.save_impact_fit(make_fit(n=1))

    with pytest.raises(StatementError, match="non-finite"):
        store.save_impact_fit(make_fit(n=2, a_high=bad, fitted_at=T0 + timedelta(hours=1)))

    assert [f.n for f in store.impact_fits()] == [1]


def test_a_naive_fit_time_is_refused(store: SqlStore) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        store.save_impact_fit(make_fit(fitted_at=datetime(2024, 3, 1, 12, 0)))

    assert store.impact_fits() == []


# --- migration 0003 ----------------------------------------------------------------------------


def _tables(db_url: str) -> set[str]:
    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _revision(db_url: str) -> str | None:
    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_the_head_revision_adds_the_routing_tables(db_url: str) -> None:
    migrate(db_url)

    assert _revision(db_url) == _head_revision() == "0005"
    assert _tables(db_url) == STORE_TABLES | ROUTING_TABLES | {"alembic_version"}
    assert _columns(db_url, "child_orders") >= CHILD_CONTEXT


def test_revision_0003_keeps_existing_rows_and_downgrades_cleanly(db_url: str) -> None:
    _alembic(db_url, "upgrade", "0002")
    engine = create_store_engine(db_url)
    try:
        with engine.execution_options(ems_write=True).begin() as connection:
            connection.execute(text(_PARENT_0001))
            connection.execute(text(_CHILD_0001))
    finally:
        engine.dispose()

    migrate(db_url)  # 0002 -> 0003 with a parent and a child stored

    with closing(SqlStore(db_url)) as store:
        [child] = store.children("P1")
        assert child.qty == Decimal("0.5")
        assert (child.decision_mid, child.expected_cost_bps) == (None, None)
        assert (child.x_depth, child.x_volume) == (None, None)
        child.decision_mid, child.x_depth = Decimal("60000.5"), Decimal(1) / 3
        store.commit(Batch(children=[child], impact_points=[make_point(1)], routes=[make_route()]))
        store.save_impact_fit(make_fit())
        assert store.children("P1")[0].x_depth == Decimal("0.333333333333333333")

    _alembic(db_url, "downgrade", "0002")

    assert _revision(db_url) == "0002"
    assert not ROUTING_TABLES & _tables(db_url)
    assert not CHILD_CONTEXT & _columns(db_url, "child_orders")
    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            parents = connection.execute(text("SELECT id FROM parent_orders")).all()
            rows = connection.execute(text("SELECT client_order_id, qty FROM child_orders")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in parents] == ["P1"]
    assert [(row[0], Decimal(row[1])) for row in rows] == [("P1-1", Decimal("0.5"))]

    migrate(db_url)  # and up again: empty routing tables, no context on the old child

    assert _tables(db_url) >= ROUTING_TABLES
    with closing(SqlStore(db_url)) as store:
        assert store.children("P1")[0].decision_mid is None
        assert store.impact_points() == [] and store.impact_fits() == []
        assert store.route_decisions("P1") == []


def test_downgrading_to_the_first_revision_passes_through_0003(db_url: str) -> None:
    migrate(db_url)

    _alembic(db_url, "downgrade", "base")

    assert _tables(db_url) == {"alembic_version"}
    migrate(db_url)
    assert _tables(db_url) == STORE_TABLES | ROUTING_TABLES | {"alembic_version"}


def test_times_in_other_zones_come_back_in_utc(store: SqlStore) -> None:
    stored_parent(store)
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2024, 3, 1, 14, 0, 0, 123456, tzinfo=plus_two)

    store.commit(Batch(impact_points=[make_point(ts=moment)], routes=[make_route(ts=moment)]))
    store.save_impact_fit(make_fit(fitted_at=moment))

    utc = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert store.impact_points()[0].ts == utc
    assert store.route_decisions("P1")[0].ts == utc
    assert store.impact_fits()[0].fitted_at == utc
    assert store.impact_points()[0].ts.tzinfo == UTC
