"""The SQL store on SQLite and PostgreSQL: exactness, atomicity, idempotency, reads, migrations."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError

from ems.domain import Fill, Liquidity, OrderType, Side, TimeInForce
from ems.errors import Conflict
from ems.events import (
    ChildAccepted,
    ChildFilled,
    ChildSubmitted,
    Event,
    ParentAccepted,
    ParentFillApplied,
    ParentNote,
    ParentStarted,
    from_payload,
)
from ems.orders import ChildOrder, ChildStatus, ParentOrder, ParentStatus
from ems.ports import ApiKeyRecord, Batch
from ems.store import (
    ALEMBIC_INI,
    MIGRATIONS_DIR,
    SqlStore,
    canonical_decimal,
    create_store_engine,
    metadata,
    migrate,
    round_to_scale,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
EXACT = Decimal("1234567.000000000000000001")
TINY = Decimal("0.00001")
STORE_TABLES = {
    "parent_orders",
    "child_orders",
    "fills",
    "events",
    "api_keys",
    "impact_points",
    "impact_fits",
    "route_decisions",
    "audit_log",
    "coverage_decisions",
}


def make_parent(n: int = 1, **changes: Any) -> ParentOrder:
    parent = ParentOrder(
        id=f"P{n}",
        client_id=f"client-{n}",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=EXACT,
        algo="twap",
        venues=("binance", "okx"),
        start_at=T0,
        end_at=T0 + timedelta(hours=4),
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
        limit_price=Decimal("65000.5"),
        algo_params={"slices": 12, "jitter": 0.25, "mode": "passive"},
        request_hash="abc123",
        arrival_mid=Decimal("64999.25"),
    )
    return dataclasses.replace(parent, **changes)


def make_child(parent: ParentOrder, seq: int = 1, **changes: Any) -> ChildOrder:
    child = ChildOrder(
        client_order_id=f"{parent.id}-{seq}",
        parent_id=parent.id,
        seq=seq,
        venue="binance",
        symbol=parent.symbol,
        side=parent.side,
        order_type=OrderType.LIMIT,
        qty=EXACT,
        price=TINY,
        time_in_force=TimeInForce.POST_ONLY,
        created_at=T0,
        updated_at=T0,
        status=ChildStatus.OPEN,
        venue_order_id=f"V-{seq}",
        submitted_at=T0 + timedelta(microseconds=1),
    )
    return dataclasses.replace(child, **changes)


def make_fill(child: ChildOrder, trade_id: str = "T1", **changes: Any) -> Fill:
    fill = Fill(
        venue=child.venue,
        trade_id=trade_id,
        client_order_id=child.client_order_id,
        symbol=child.symbol,
        side=child.side,
        price=EXACT,
        qty=TINY,
        fee=Decimal("0.000000000000000001"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        ts=T0 + timedelta(seconds=1),
    )
    return dataclasses.replace(fill, **changes)


def accepted(parent: ParentOrder) -> ParentAccepted:
    return ParentAccepted(ts=parent.created_at, parent_id=parent.id)


def stored_parent(store: SqlStore, n: int = 1, **changes: Any) -> ParentOrder:
    parent = make_parent(n, **changes)
    store.create_parent(parent, accepted(parent))
    return parent


# --- exact decimals and UTC times -----------------------------------------------------------


def test_parent_round_trips_exactly(store: SqlStore) -> None:
    parent = make_parent()

    store.create_parent(parent, accepted(parent))
    loaded = store.get_parent(parent.id)

    assert loaded == parent
    assert loaded is not None
    assert loaded.quantity == Decimal("1234567.000000000000000001")
    assert type(loaded.quantity) is Decimal and type(loaded.limit_price) is Decimal
    assert loaded.created_at.utcoffset() == timedelta(0)


def test_child_round_trips_exactly(store: SqlStore) -> None:
    parent = stored_parent(store)
    child = make_child(parent, filled_qty=TINY, filled_notional=EXACT, fees=Decimal("1E-18"))

    store.commit(Batch(children=[child]))
    loaded = store.children(parent.id)

    assert loaded == [child]
    assert all(
        type(getattr(loaded[0], name)) is Decimal
        for name in ("qty", "price", "filled_qty", "filled_notional", "fees")
    )


def test_schedule_quality_and_display_size_round_trip(store: SqlStore) -> None:
    parent = make_parent(
        maker_qty=Decimal("0.75"),
        market_volume=Decimal("1234.56789"),
        tracking_samples=42,
        tracking_abs_sum=Decimal("3.000000000000000001"),
        tracking_max=Decimal("0.25"),
    )
    iceberg = make_child(parent, 1, display_qty=Decimal("0.01"))
    plain = make_child(parent, 2)

    store.commit(Batch(parents=[parent], children=[iceberg, plain]))
    loaded = store.get_parent(parent.id)
    children = store.children(parent.id)

    assert loaded == parent
    assert (loaded.maker_qty, loaded.market_volume) == (Decimal("0.75"), Decimal("1234.56789"))
    assert loaded.tracking_samples == 42 and type(loaded.tracking_samples) is int
    assert loaded.tracking_abs_sum == Decimal("3.000000000000000001")
    assert loaded.tracking_error_mean == Decimal("3.000000000000000001") / 42
    assert children == [iceberg, plain]
    assert [c.display_qty for c in children] == [Decimal("0.01"), None]
    assert type(children[0].display_qty) is Decimal


def test_a_new_parent_has_zero_schedule_figures(store: SqlStore) -> None:
    parent = stored_parent(store)

    loaded = store.get_parent(parent.id)

    assert loaded is not None
    assert (loaded.maker_qty, loaded.market_volume, loaded.tracking_samples) == (0, 0, 0)
    assert (loaded.tracking_abs_sum, loaded.tracking_max) == (0, 0)
    assert loaded.tracking_error_mean is None and loaded.participation_rate is None


def test_tracking_figures_with_endless_decimals_are_rounded_half_even_to_18_places(
    store: SqlStore,
) -> None:
    third = Decimal(1) / Decimal(3)  # 28 significant digits
    parent = make_parent(quantity=Decimal(3))
    for filled in (Decimal(0), Decimal(1), Decimal(2)):  # samples exactly 1/3 behind the target
        parent.filled_qty = filled
        parent.record_tracking(filled + 1, market_volume=Decimal(10))
    assert parent.tracking_abs_sum == third * 3 and parent.tracking_max == third
    assert -parent.tracking_abs_sum.as_tuple().exponent > 18  # more places than stored

    store.commit(Batch(parents=[parent]))  # nothing raises
    loaded = store.get_parent(parent.id)

    assert loaded is not None and loaded.tracking_samples == 3
    assert loaded.tracking_abs_sum == Decimal("1.000000000000000000")
    assert loaded.tracking_max == Decimal("0.333333333333333333")
    assert loaded.tracking_abs_sum == round_to_scale(parent.tracking_abs_sum)
    assert loaded.tracking_error_mean == Decimal(1) / 3


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (Decimal("0.1234567890123456785"), Decimal("0.123456789012345678")),  # half to even
        (Decimal("0.1234567890123456775"), Decimal("0.123456789012345678")),
        (Decimal("0.12345678901234567851"), Decimal("0.123456789012345679")),
        (Decimal("12345678901234567890.5"), Decimal("12345678901234567890.5")),
        (Decimal("0.5"), Decimal("0.5")),
    ],
)
def test_rounded_tracking_figures(store: SqlStore, given: Decimal, stored: Decimal) -> None:
    parent = make_parent(tracking_max=given, tracking_abs_sum=given)

    store.commit(Batch(parents=[parent]))
    loaded = store.get_parent(parent.id)

    assert loaded is not None
    assert (loaded.tracking_max, loaded.tracking_abs_sum) == (stored, stored)


def test_money_is_still_refused_rather_than_rounded(store: SqlStore) -> None:
    parent = make_parent(maker_qty=Decimal(1) / Decimal(3))

    with pytest.raises(StatementError, match="decimal places"):
        store.commit(Batch(parents=[parent]))

    assert store.get_parent(parent.id) is None


def test_fill_round_trips_exactly(store: SqlStore) -> None:
    parent = stored_parent(store)
    child = make_child(parent)
    fill = make_fill(child)

    store.commit(Batch(children=[child], fills=[(parent.id, fill)]))
    loaded = store.fills(parent.id)

    assert loaded == [fill]
    assert (loaded[0].price, loaded[0].qty) == (EXACT, TINY)
    assert all(type(getattr(loaded[0], name)) is Decimal for name in ("price", "qty", "fee"))


def test_event_payload_round_trips_back_to_the_original_event(store: SqlStore) -> None:
    parent = make_parent()
    child = make_child(parent)
    fill = make_fill(child)
    later: list[Event] = [
        ParentStarted(ts=T0 + timedelta(seconds=1), parent_id=parent.id),
        ChildSubmitted(ts=T0 + timedelta(seconds=2), client_order_id=child.client_order_id),
        ChildAccepted(ts=T0 + timedelta(seconds=3), client_order_id="P1-1", venue_order_id="V1"),
        ChildFilled.of(fill),
        ParentFillApplied(
            ts=fill.ts,
            parent_id=parent.id,
            trade_id="T1",
            venue="binance",
            price=EXACT,
            qty=TINY,
            fee=Decimal("0.5"),
        ),
        ParentNote(ts=T0 + timedelta(seconds=9), parent_id=parent.id, code="held", detail="thin"),
    ]

    store.create_parent(parent, accepted(parent))
    store.commit(Batch(children=[child], events=[(parent.id, event) for event in later]))
    records = store.events(parent.id)

    originals = [accepted(parent), *later]
    assert [record.kind for record in records] == [event.kind for event in originals]
    assert [from_payload(r.kind, dict(r.payload)) for r in records] == originals
    assert [record.ts for record in records] == [event.ts for event in originals]
    assert {record.parent_id for record in records} == {parent.id}


def test_decimals_are_stored_as_exact_text_or_numeric_never_as_float(
    store: SqlStore, db_url: str
) -> None:
    stored_parent(store)

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                query = "SELECT typeof(quantity), quantity FROM parent_orders"
            else:
                query = "SELECT pg_typeof(quantity)::text, quantity::text FROM parent_orders"
            kind, raw = connection.execute(text(query)).one()
    finally:
        engine.dispose()

    assert kind in ("text", "numeric")
    assert Decimal(raw) == EXACT


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (Decimal("0.00001"), "0.00001"),
        (Decimal("0.0000100000"), "0.00001"),
        (Decimal("100"), "100"),
        (Decimal("1E+2"), "100"),
        (Decimal("1E-18"), "0.000000000000000001"),
        (Decimal("12345678901234567890.123456789012345678"), None),  # 38 digits, no rounding
        (Decimal("-0.00"), "0"),
    ],
)
def test_decimals_come_back_in_one_canonical_form_on_every_backend(
    store: SqlStore, given: Decimal, expected: str | None
) -> None:
    parent = stored_parent(store, filled_notional=given)

    loaded = store.get_parent(parent.id)

    assert loaded is not None
    assert loaded.filled_notional == given
    assert format(loaded.filled_notional, "f") == (expected or str(given))
    assert loaded.filled_notional.as_tuple() == Decimal(expected or given).as_tuple()


def test_canonical_decimal_does_not_depend_on_the_decimal_context() -> None:
    value = Decimal("12345678901234567890.12345678901234567800")

    assert str(canonical_decimal(value)) == "12345678901234567890.123456789012345678"


@pytest.mark.parametrize(
    "bad",
    [Decimal("0.0000000000000000001"), Decimal("123456789012345678901"), Decimal("NaN")],
    ids=["19-places", "21-integer-digits", "nan"],
)
def test_decimal_postgres_cannot_hold_exactly_is_refused_and_nothing_written(
    store: SqlStore, bad: Decimal
) -> None:
    parent = make_parent(quantity=bad)

    with pytest.raises(StatementError, match="decimal"):
        store.commit(Batch(parents=[parent], events=[(parent.id, accepted(parent))]))

    assert store.get_parent(parent.id) is None
    assert store.events(parent.id) == []


def test_float_for_a_decimal_is_refused(store: SqlStore) -> None:
    parent = make_parent(quantity=0.1)

    with pytest.raises(StatementError, match="expected a Decimal"):
        store.create_parent(parent, accepted(parent))

    assert store.get_parent(parent.id) is None


def test_naive_datetime_is_refused_and_nothing_written(store: SqlStore) -> None:
    parent = make_parent(updated_at=datetime(2024, 3, 1, 12, 0))

    with pytest.raises(StatementError, match="naive datetime"):
        store.create_parent(parent, accepted(parent))

    assert store.get_parent(parent.id) is None


def test_aware_datetime_in_another_zone_comes_back_as_the_same_instant_in_utc(
    store: SqlStore,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    parent = stored_parent(store, start_at=datetime(2024, 3, 1, 14, 0, 0, 123456, tzinfo=plus_two))

    loaded = store.get_parent(parent.id)

    assert loaded is not None
    assert loaded.start_at == datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert loaded.start_at.tzinfo is not None and loaded.start_at.utcoffset() == timedelta(0)


# --- create_parent ---------------------------------------------------------------------------


def test_create_parent_returns_it_as_new_and_records_the_acceptance(store: SqlStore) -> None:
    parent = make_parent()

    result, created = store.create_parent(parent, accepted(parent))

    assert created is True and result is parent
    assert [record.kind for record in store.events(parent.id)] == ["parent_accepted"]


def test_create_parent_with_a_known_client_id_returns_the_existing_and_writes_nothing(
    store: SqlStore,
) -> None:
    first = stored_parent(store, 1)
    retry = make_parent(2, client_id=first.client_id)

    result, created = store.create_parent(retry, accepted(retry))

    assert created is False
    assert result == first
    assert store.get_parent(retry.id) is None
    assert store.events(retry.id) == []
    assert len(store.events(first.id)) == 1


def test_concurrent_create_parent_with_one_client_id_creates_exactly_one(store: SqlStore) -> None:
    contenders = [make_parent(n, client_id="same") for n in range(1, 9)]

    with ThreadPoolExecutor(max_workers=len(contenders)) as pool:
        results = list(pool.map(lambda p: store.create_parent(p, accepted(p)), contenders))

    assert sum(created for _, created in results) == 1
    winner = next(parent for parent, created in results if created)
    assert {parent.id for parent, _ in results} == {winner.id}
    assert store.list_parents() == [winner]


# --- commit ----------------------------------------------------------------------------------


def test_commit_upserts_parents_and_children(store: SqlStore) -> None:
    parent = stored_parent(store)
    child = make_child(parent, status=ChildStatus.PENDING_SUBMIT, venue_order_id=None)
    store.commit(Batch(children=[child]))
    parent.status = ParentStatus.WORKING
    parent.next_child_seq = 2
    child.status = ChildStatus.OPEN
    child.venue_order_id = "V-9"

    store.commit(Batch(parents=[parent], children=[child]))

    assert store.get_parent(parent.id) == parent
    assert store.children(parent.id) == [child]


def test_commit_stores_a_new_parent_with_its_children_in_one_batch(store: SqlStore) -> None:
    parent = make_parent()
    children = [make_child(parent, 2), make_child(parent, 1)]

    store.commit(Batch(parents=[parent], children=children))

    assert store.get_parent(parent.id) == parent
    assert [child.seq for child in store.children(parent.id)] == [1, 2]


def test_a_fill_with_a_known_venue_and_trade_id_is_stored_once(store: SqlStore) -> None:
    parent = stored_parent(store)
    child = make_child(parent)
    fill = make_fill(child, "T1")
    store.commit(Batch(children=[child], fills=[(parent.id, fill)]))

    store.commit(Batch(fills=[(parent.id, fill), (parent.id, fill)]))

    assert store.fills(parent.id) == [fill]


def test_the_same_trade_id_on_another_venue_is_another_fill(store: SqlStore) -> None:
    parent = stored_parent(store)
    child = make_child(parent)
    on_binance = make_fill(child, "T1")
    on_okx = make_fill(child, "T1", venue="okx")

    store.commit(Batch(children=[child], fills=[(parent.id, on_binance), (parent.id, on_okx)]))

    assert {fill.venue for fill in store.fills(parent.id)} == {"binance", "okx"}


def test_trade_ids_are_loaded_per_parent_and_per_child(store: SqlStore) -> None:
    parent = stored_parent(store)
    first, second = make_child(parent, 1), make_child(parent, 2)
    fills = [make_fill(first, "T1"), make_fill(first, "T2"), make_fill(second, "T3")]

    store.commit(Batch(children=[first, second], fills=[(parent.id, f) for f in fills]))

    loaded = store.get_parent(parent.id)
    assert loaded is not None and loaded.trade_ids == {"T1", "T2", "T3"}
    assert [c.trade_ids for c in store.children(parent.id)] == [{"T1", "T2"}, {"T3"}]
    assert store.active_parents()[0].trade_ids == {"T1", "T2", "T3"}


def test_fills_are_returned_in_time_order(store: SqlStore) -> None:
    parent = stored_parent(store)
    child = make_child(parent)
    late = make_fill(child, "late", ts=T0 + timedelta(seconds=5))
    early = make_fill(child, "early", ts=T0 + timedelta(seconds=1))

    store.commit(Batch(children=[child], fills=[(parent.id, late), (parent.id, early)]))

    assert [fill.trade_id for fill in store.fills(parent.id)] == ["early", "late"]


def _child_of_unknown_parent(parent: ParentOrder) -> ChildOrder:
    return make_child(make_parent(99), 1)


def _child_with_too_many_decimal_places(parent: ParentOrder) -> ChildOrder:
    return make_child(parent, 2, qty=Decimal("1.0000000000000000001"))


@pytest.mark.parametrize(
    "bad_child", [_child_of_unknown_parent, _child_with_too_many_decimal_places]
)
def test_a_failing_batch_leaves_no_trace(store: SqlStore, bad_child: object) -> None:
    existing = stored_parent(store, 1)
    parent = make_parent(2)
    child = make_child(parent)
    changed = dataclasses.replace(existing, status=ParentStatus.WORKING)
    assert callable(bad_child)
    batch = Batch(
        parents=[changed, parent],
        children=[child, bad_child(parent)],
        fills=[(parent.id, make_fill(child))],
        events=[(parent.id, accepted(parent)), (existing.id, ParentStarted(ts=T0, parent_id="P1"))],
    )

    with pytest.raises((IntegrityError, StatementError)):
        store.commit(batch)

    assert store.get_parent(parent.id) is None
    assert store.children(parent.id) == []
    assert store.fills(parent.id) == []
    assert store.events(parent.id) == []
    assert store.get_parent(existing.id) == existing
    assert len(store.events(existing.id)) == 1


def test_an_empty_batch_writes_nothing(store: SqlStore) -> None:
    store.commit(Batch())

    assert store.list_parents() == []


# --- reads -----------------------------------------------------------------------------------


def test_list_parents_is_newest_first_with_filters_and_pagination(store: SqlStore) -> None:
    btc_old = stored_parent(store, 1)
    eth = stored_parent(store, 2, symbol="ETH/USDT")
    btc_new = stored_parent(store, 3, status=ParentStatus.WORKING)

    newest_first = store.list_parents()
    btc = store.list_parents(symbol="BTC/USDT")
    working = store.list_parents(status=ParentStatus.WORKING)
    page = store.list_parents(limit=1, offset=1)
    none_left = store.list_parents(limit=10, offset=3)

    assert [p.id for p in newest_first] == [btc_new.id, eth.id, btc_old.id]
    assert [p.id for p in btc] == [btc_new.id, btc_old.id]
    assert working == [btc_new]
    assert page == [eth]
    assert none_left == []


def test_list_parents_breaks_created_at_ties_by_id(store: SqlStore) -> None:
    for n in (1, 3, 2):
        stored_parent(store, n, created_at=T0)

    assert [p.id for p in store.list_parents()] == ["P3", "P2", "P1"]


def test_list_parents_refuses_a_negative_limit(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        store.list_parents(limit=-1)


def test_active_parents_excludes_terminal_ones(store: SqlStore) -> None:
    statuses = list(ParentStatus)
    for n, status in enumerate(statuses, start=1):
        stored_parent(store, n, status=status)

    active = store.active_parents()

    assert {p.status for p in active} == {s for s in statuses if not s.is_terminal}
    assert len(active) == 5


def test_events_keep_append_order_across_batches(store: SqlStore) -> None:
    parent = stored_parent(store)
    notes = [
        ParentNote(ts=T0 + timedelta(seconds=10 - n), parent_id=parent.id, code=f"n{n}", detail="")
        for n in range(5)
    ]

    store.commit(Batch(events=[(parent.id, note) for note in notes[:3]]))
    store.commit(Batch(events=[(parent.id, note) for note in notes[3:]]))
    records = store.events(parent.id)

    assert [r.payload.get("code") for r in records] == [None, "n0", "n1", "n2", "n3", "n4"]
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert len({r.seq for r in records}) == len(records)


def test_unknown_ids_read_as_nothing(store: SqlStore) -> None:
    assert store.get_parent("nope") is None
    assert store.get_parent_by_client_id("nope") is None
    assert store.children("nope") == []
    assert store.fills("nope") == []
    assert store.events("nope") == []
    assert store.find_api_key("nope") is None


def test_get_parent_by_client_id_finds_the_parent(store: SqlStore) -> None:
    parent = stored_parent(store)

    assert store.get_parent_by_client_id(parent.client_id) == parent


# --- API keys --------------------------------------------------------------------------------


def test_api_key_is_found_by_its_hash(store: SqlStore) -> None:
    record = ApiKeyRecord(
        key_id="k1", name="desk", role="trader", key_hash="h1", created_at=T0, revoked=True
    )

    store.add_api_key(record)

    assert store.find_api_key("h1") == record


def test_an_api_key_with_a_taken_id_or_hash_is_a_conflict(store: SqlStore) -> None:
    store.add_api_key(ApiKeyRecord("k1", "desk", "trader", "h1", T0))

    with pytest.raises(Conflict):
        store.add_api_key(ApiKeyRecord("k2", "other", "viewer", "h1", T0))
    with pytest.raises(Conflict):
        store.add_api_key(ApiKeyRecord("k1", "other", "viewer", "h2", T0))

    assert store.find_api_key("h2") is None


# --- engine and migrations -------------------------------------------------------------------


def _head_revision() -> str | None:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrating_twice_is_a_no_op_that_keeps_the_data(db_url: str) -> None:
    migrate(db_url)
    with closing(SqlStore(db_url)) as store:
        stored_parent(store)

    migrate(db_url)

    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert revision == _head_revision() == "0005"
    assert tables == STORE_TABLES | {"alembic_version"}
    with closing(SqlStore(db_url)) as store:
        assert [p.id for p in store.list_parents()] == ["P1"]


def test_the_migrated_schema_matches_the_table_models(db_url: str) -> None:
    migrate(db_url)

    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_migrate_works_from_any_working_directory(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    migrate(sqlite_url)

    with closing(SqlStore(sqlite_url)) as store:
        assert store.list_parents() == []


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    finally:
        engine.dispose()

    assert (journal, foreign_keys) == ("wal", 1)


def _alembic(db_url: str, action: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade revision`` on ``db_url`` as ``migrate`` does."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    engine = create_store_engine(db_url)
    try:
        with engine.execution_options(ems_write=True).begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def _columns(db_url: str, table: str) -> set[str]:
    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            return {column["name"] for column in inspect(connection).get_columns(table)}
    finally:
        engine.dispose()


_PARENT_0001 = (
    "INSERT INTO parent_orders (id, client_id, symbol, side, quantity, algo, venues, start_at, "
    "end_at, created_at, updated_at, limit_price, algo_params, status, filled_qty, "
    "filled_notional, fees, next_child_seq, request_hash, reason, arrival_mid) VALUES "
    "('P1', 'c1', 'BTC/USDT', 'buy', '1.5', 'twap', '[\"binance\"]', "
    "'2024-03-01T12:00:00.000000+00:00', '2024-03-01T13:00:00.000000+00:00', "
    "'2024-03-01T12:00:00.000000+00:00', '2024-03-01T12:00:00.000000+00:00', NULL, '{}', "
    "'working', '0.5', '30000', '3', 2, 'h', '', '60000')"
)
_CHILD_0001 = (
    "INSERT INTO child_orders (client_order_id, parent_id, seq, venue, symbol, side, order_type, "
    "qty, price, time_in_force, created_at, updated_at, status, filled_qty, filled_notional, "
    "fees, venue_order_id, submitted_at, reason) VALUES ('P1-1', 'P1', 1, 'binance', "
    "'BTC/USDT', 'buy', 'limit', '0.5', '60000', 'gtc', '2024-03-01T12:00:00.000000+00:00', "
    "'2024-03-01T12:00:00.000000+00:00', 'filled', '0.5', '30000', '3', 'V1', NULL, '')"
)

NEW_PARENT_COLUMNS = {
    "maker_qty",
    "market_volume",
    "tracking_samples",
    "tracking_abs_sum",
    "tracking_max",
}


def test_revision_0002_fills_existing_rows_and_downgrades_cleanly(db_url: str) -> None:
    _alembic(db_url, "upgrade", "0001")
    engine = create_store_engine(db_url)
    try:
        with engine.execution_options(ems_write=True).begin() as connection:
            connection.execute(text(_PARENT_0001))
            connection.execute(text(_CHILD_0001))
    finally:
        engine.dispose()

    migrate(db_url)  # 0001 -> 0002 with a parent and a child stored

    with closing(SqlStore(db_url)) as store:
        parent = store.get_parent("P1")
        [child] = store.children("P1")
        assert parent is not None and parent.filled_qty == Decimal("0.5")
        assert (parent.maker_qty, parent.market_volume, parent.tracking_samples) == (0, 0, 0)
        assert (parent.tracking_abs_sum, parent.tracking_max) == (0, 0)
        assert type(parent.maker_qty) is Decimal and type(parent.tracking_samples) is int
        assert child.display_qty is None and child.qty == Decimal("0.5")
        parent.tracking_samples, parent.tracking_abs_sum = 1, Decimal("0.1")
        store.commit(Batch(parents=[parent]))

    _alembic(db_url, "downgrade", "0001")

    assert not NEW_PARENT_COLUMNS & _columns(db_url, "parent_orders")
    assert "display_qty" not in _columns(db_url, "child_orders")
    engine = create_store_engine(db_url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            rows = connection.execute(text("SELECT id FROM parent_orders")).all()
    finally:
        engine.dispose()
    assert revision == "0001" and [row[0] for row in rows] == ["P1"]

    migrate(db_url)  # and up again: the figures start from zero

    assert _columns(db_url, "parent_orders") >= NEW_PARENT_COLUMNS
    with closing(SqlStore(db_url)) as store:
        parent = store.get_parent("P1")
        assert parent is not None and parent.tracking_samples == 0
