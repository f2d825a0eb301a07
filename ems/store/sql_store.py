"""``SqlStore``: the ``StorePort`` on SQLite or PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, insert
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ems.domain import Fill, ensure_utc
from ems.errors import Conflict
from ems.events import Event
from ems.orders import PARENT_TERMINAL, ChildOrder, ParentOrder, ParentStatus
from ems.ports import (
    ApiKeyRecord,
    AuditRecord,
    Batch,
    CoverageRecord,
    EventRecord,
    ImpactFitRecord,
    ImpactPoint,
    RouteRecord,
)
from ems.store.engine import WRITE, create_store_engine, upgrade
from ems.store.tables import (
    ApiKeyRow,
    AuditRow,
    ChildRow,
    CoverageRow,
    EventRow,
    FillRow,
    ImpactFitRow,
    ImpactPointRow,
    ParentRow,
    RouteDecisionRow,
    child_from_row,
    child_row,
    event_from_row,
    event_values,
    fill_from_row,
    fill_values,
    impact_fit_from_row,
    impact_fit_row,
    impact_point_from_row,
    impact_point_values,
    parent_from_row,
    parent_row,
    plain,
    route_from_row,
    route_values,
)


class SqlStore:
    """``StorePort`` on SQLite or PostgreSQL; one engine per store, one session per call."""

    def __init__(self, url: str) -> None:
        """Connect to ``url`` (the schema must already be migrated; see ``open``)."""
        self._engine = create_store_engine(url)
        self._writer: Engine = self._engine.execution_options(**{WRITE: True})
        self._reader: Engine
        if self._engine.dialect.name == "postgresql":
            # Reads that span several queries (a parent and its trade ids) see one snapshot.
            self._reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        else:
            self._reader = self._engine

    @classmethod
    def open(cls, url: str) -> SqlStore:
        """Migrate the database at ``url`` to the latest revision and return a store on it."""
        store = cls(url)
        try:
            upgrade(store._engine)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Dispose of the engine and its pooled connections."""
        self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def _read(self) -> Session:
        return Session(self._reader)

    # -- writes --

    def create_parent(self, parent: ParentOrder, accepted: Event) -> tuple[ParentOrder, bool]:
        """Insert ``parent`` and its acceptance event atomically; idempotent by ``client_id``."""
        existing = self.get_parent_by_client_id(parent.client_id)
        if existing is not None:
            return existing, False
        try:
            with self._write() as session:
                session.add(parent_row(parent))
                session.flush()
                session.execute(insert(EventRow), [event_values(parent.id, accepted)])
        except IntegrityError:
            # Another writer inserted the same client id between our read and our insert.
            existing = self.get_parent_by_client_id(parent.client_id)
            if existing is None:
                raise
            return existing, False
        return parent, True

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction; on any error nothing of it is stored.

        Parents and children are upserted; fills whose ``(venue, trade_id)`` and impact points
        whose ``client_order_id`` are stored already are skipped; events and routing decisions
        are appended.
        """
        if not batch:
            return
        with self._write() as session:
            for parent in batch.parents:
                session.merge(parent_row(parent))
            session.flush()  # children may belong to a parent first stored by this batch
            for child in batch.children:
                session.merge(child_row(child))
            session.flush()
            if batch.fills:
                rows = [fill_values(parent_id, fill) for parent_id, fill in batch.fills]
                self._insert_fills(session, rows)
            if batch.events:
                rows = [event_values(parent_id, event) for parent_id, event in batch.events]
                session.execute(insert(EventRow), rows)
            if batch.impact_points:
                self._insert_impact_points(
                    session, [impact_point_values(point) for point in batch.impact_points]
                )
            if batch.routes:
                session.execute(
                    insert(RouteDecisionRow), [route_values(route) for route in batch.routes]
                )
            if batch.coverage:
                session.add_all(CoverageRow(**plain(r, frozenset())) for r in batch.coverage)

    @staticmethod
    def _insert_fills(session: Session, rows: list[dict[str, Any]]) -> None:
        """Insert fills, skipping any whose ``(venue, trade_id)`` is stored already."""
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            upsert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            statement = upsert(FillRow).on_conflict_do_nothing(index_elements=["venue", "trade_id"])
            session.execute(statement, rows)
            return
        for row in rows:
            key = (FillRow.venue == row["venue"], FillRow.trade_id == row["trade_id"])
            if session.exec(select(FillRow.id).where(*key)).first() is None:
                session.execute(insert(FillRow), [row])

    @staticmethod
    def _insert_impact_points(session: Session, rows: list[dict[str, Any]]) -> None:
        """Insert impact points, skipping any whose child has a point stored already."""
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            upsert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            statement = upsert(ImpactPointRow).on_conflict_do_nothing(
                index_elements=["client_order_id"]
            )
            session.execute(statement, rows)
            return
        for row in rows:
            key = ImpactPointRow.client_order_id == row["client_order_id"]
            if session.exec(select(ImpactPointRow.id).where(key)).first() is None:
                session.execute(insert(ImpactPointRow), [row])

    def save_impact_fit(self, fit: ImpactFitRecord) -> None:
        """Append ``fit`` to the history of its venue and symbol; the newest (by ``fitted_at``,
        then by the order saved) is the current one. Coefficients are rounded half-even to 18
        decimal places; non-finite ones are refused."""
        with self._write() as session:
            session.add(impact_fit_row(fit))

    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new API key; raises ``Conflict`` if its id or hash is taken."""
        try:
            with self._write() as session:
                session.add(ApiKeyRow(**plain(record, frozenset())))
        except IntegrityError as exc:
            raise Conflict(f"API key {record.key_id} or its hash is already stored") from exc

    def add_audit(self, record: AuditRecord) -> None:
        """Append an administrative change to the audit log."""
        with self._write() as session:
            session.add(AuditRow(**plain(record, frozenset())))

    def add_coverage(self, record: CoverageRecord) -> None:
        """Append one coverage decision outside a step's batch (e.g. a phase change)."""
        with self._write() as session:
            session.add(CoverageRow(**plain(record, frozenset())))

    # -- reads --

    def coverage_log(self, *, kind: str | None = None, limit: int = 1000) -> list[CoverageRecord]:
        """The newest ``limit`` coverage decisions (optionally of one kind), oldest first."""
        with self._read() as session:
            query = select(CoverageRow)
            if kind is not None:
                query = query.where(CoverageRow.kind == kind)
            rows = session.exec(query.order_by(col(CoverageRow.id).desc()).limit(limit)).all()
            return [CoverageRecord(**row.model_dump(exclude={"id"})) for row in reversed(rows)]

    def audit_log(self, *, action: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        """The newest ``limit`` audit records (optionally of one action), oldest first."""
        with self._read() as session:
            query = select(AuditRow)
            if action is not None:
                query = query.where(AuditRow.action == action)
            rows = session.exec(query.order_by(col(AuditRow.id).desc()).limit(limit)).all()
            return [
                AuditRecord(
                    ts=row.ts,
                    actor=row.actor,
                    action=row.action,
                    scope=row.scope,
                    before=row.before,
                    after=row.after,
                    reason=row.reason,
                )
                for row in reversed(rows)
            ]

    def get_parent(self, parent_id: str) -> ParentOrder | None:
        """The parent with id ``parent_id``, or None."""
        with self._read() as session:
            row = session.get(ParentRow, parent_id)
            return None if row is None else self._parents(session, [row])[0]

    def get_parent_by_client_id(self, client_id: str) -> ParentOrder | None:
        """The parent submitted with ``client_id``, or None."""
        with self._read() as session:
            row = session.exec(select(ParentRow).where(ParentRow.client_id == client_id)).first()
            return None if row is None else self._parents(session, [row])[0]

    def list_parents(
        self,
        *,
        status: ParentStatus | None = None,
        symbol: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ParentOrder]:
        """Parents newest first (``created_at`` descending, then id descending), filtered."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must not be negative, got {limit} and {offset}")
        query = select(ParentRow)
        if status is not None:
            query = query.where(ParentRow.status == status.value)
        if symbol is not None:
            query = query.where(ParentRow.symbol == symbol)
        query = query.order_by(col(ParentRow.created_at).desc(), col(ParentRow.id).desc())
        with self._read() as session:
            rows = session.exec(query.limit(limit).offset(offset)).all()
            return self._parents(session, rows)

    def active_parents(self) -> list[ParentOrder]:
        """Every parent not in a terminal status, oldest first, with ``trade_ids`` loaded."""
        terminal = [status.value for status in PARENT_TERMINAL]
        query = (
            select(ParentRow)
            .where(col(ParentRow.status).not_in(terminal))
            .order_by(col(ParentRow.created_at), col(ParentRow.id))
        )
        with self._read() as session:
            return self._parents(session, session.exec(query).all())

    def children(self, parent_id: str) -> list[ChildOrder]:
        """Children of a parent by ``seq``, each with its own ``trade_ids``."""
        with self._read() as session:
            rows = session.exec(
                select(ChildRow)
                .where(ChildRow.parent_id == parent_id)
                .order_by(col(ChildRow.seq), col(ChildRow.client_order_id))
            ).all()
            trades = session.exec(
                select(FillRow.client_order_id, FillRow.trade_id).where(
                    FillRow.parent_id == parent_id
                )
            ).all()
        by_child: dict[str, list[str]] = defaultdict(list)
        for client_order_id, trade_id in trades:
            by_child[client_order_id].append(trade_id)
        return [child_from_row(row, by_child[row.client_order_id]) for row in rows]

    def fills(self, parent_id: str) -> list[Fill]:
        """Fills of a parent in time order (insertion order among equal times)."""
        with self._read() as session:
            rows = session.exec(
                select(FillRow)
                .where(FillRow.parent_id == parent_id)
                .order_by(col(FillRow.ts), col(FillRow.id))
            ).all()
            return [fill_from_row(row) for row in rows]

    def fills_since(self, since: datetime | None = None) -> list[Fill]:
        """Every fill (all parents) at or after ``since``, in time order."""
        with self._read() as session:
            query = select(FillRow)
            if since is not None:
                query = query.where(FillRow.ts >= ensure_utc(since))
            rows = session.exec(query.order_by(col(FillRow.ts), col(FillRow.id))).all()
            return [fill_from_row(row) for row in rows]

    def events(self, parent_id: str) -> list[EventRecord]:
        """The event log of a parent in append order."""
        with self._read() as session:
            rows = session.exec(
                select(EventRow).where(EventRow.parent_id == parent_id).order_by(col(EventRow.seq))
            ).all()
        return [event_from_row(row) for row in rows]

    def impact_points(
        self,
        *,
        venue: str | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        limit: int = 10_000,
    ) -> list[ImpactPoint]:
        """Impact points newest first (``ts`` descending, then the order stored, newest first),
        of ``venue`` and ``symbol`` when given, at or after ``since``; at most ``limit``."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = select(ImpactPointRow)
        if venue is not None:
            query = query.where(ImpactPointRow.venue == venue)
        if symbol is not None:
            query = query.where(ImpactPointRow.symbol == symbol)
        if since is not None:
            query = query.where(ImpactPointRow.ts >= since)
        query = query.order_by(col(ImpactPointRow.ts).desc(), col(ImpactPointRow.id).desc())
        with self._read() as session:
            rows = session.exec(query.limit(limit)).all()
            return [impact_point_from_row(row) for row in rows]

    def impact_fits(
        self, *, venue: str | None = None, symbol: str | None = None
    ) -> list[ImpactFitRecord]:
        """The current fit of every (venue, symbol), filtered, ordered by venue then symbol.

        Current means the newest ``fitted_at``; among fits of the same time, the last saved.
        """
        rank = (
            func.row_number()
            .over(
                partition_by=(ImpactFitRow.venue, ImpactFitRow.symbol),
                order_by=(col(ImpactFitRow.fitted_at).desc(), col(ImpactFitRow.id).desc()),
            )
            .label("rank")
        )
        ranked: Select[tuple[int, int]] = sa_select(col(ImpactFitRow.id).label("id"), rank)
        if venue is not None:
            ranked = ranked.where(col(ImpactFitRow.venue) == venue)
        if symbol is not None:
            ranked = ranked.where(col(ImpactFitRow.symbol) == symbol)
        newest = ranked.subquery()
        query = (
            select(ImpactFitRow)
            .join(newest, col(ImpactFitRow.id) == newest.c.id)
            .where(newest.c.rank == 1)
            .order_by(col(ImpactFitRow.venue), col(ImpactFitRow.symbol))
        )
        with self._read() as session:
            return [impact_fit_from_row(row) for row in session.exec(query).all()]

    def route_decisions(self, parent_id: str) -> list[RouteRecord]:
        """Routing decisions of a parent in time order (the order stored among equal times)."""
        with self._read() as session:
            rows = session.exec(
                select(RouteDecisionRow)
                .where(RouteDecisionRow.parent_id == parent_id)
                .order_by(col(RouteDecisionRow.ts), col(RouteDecisionRow.id))
            ).all()
            return [route_from_row(row) for row in rows]

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The API key with this hash (revoked or not), or None."""
        with self._read() as session:
            row = session.exec(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash)).first()
            return None if row is None else ApiKeyRecord(**row.model_dump())

    @staticmethod
    def _parents(session: Session, rows: Iterable[ParentRow]) -> list[ParentOrder]:
        """Rebuild parents from ``rows``, loading every parent's trade ids in one query."""
        rows = list(rows)
        if not rows:
            return []
        trades = session.exec(
            select(FillRow.parent_id, FillRow.trade_id).where(
                col(FillRow.parent_id).in_([row.id for row in rows])
            )
        ).all()
        by_parent: dict[str, list[str]] = defaultdict(list)
        for parent_id, trade_id in trades:
            by_parent[parent_id].append(trade_id)
        return [parent_from_row(row, by_parent[row.id]) for row in rows]
