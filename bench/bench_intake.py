"""Parent-order intake over HTTP: orders per second, each durable before its 2xx.

Baseline (same run): a minimal FastAPI + SQLModel app whose POST inserts one row into a SQLite
file and commits. Measured: the EMS app (auth, validation against the simulated venue's book,
idempotency check, parent + event written in one transaction) on a SQLite file.

Both servers are real uvicorn servers on 127.0.0.1 in this process's threads; the client sends
a bounded number of requests with bounded concurrency.

    python bench/bench_intake.py [--requests 1000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from sqlmodel import Field, Session, SQLModel, create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ems.api.app import create_app
from ems.api.auth import create_api_key
from ems.clock import TestClock
from ems.manager import ParentOrderManager
from ems.store import SqlStore
from ems.venues.replay import BookSnapshot, default_sample_path, load_recorded
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config


class MinimalOrder(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(index=True, unique=True)
    symbol: str
    side: str
    quantity: str


def minimal_app(db: Path) -> FastAPI:
    engine = create_engine(f"sqlite:///{db}", connect_args={"check_same_thread": False})
    SQLModel.metadata.create_all(engine)
    app = FastAPI()

    @app.post("/v1/parents", status_code=201)
    def create(body: dict[str, object]) -> dict[str, object]:
        row = MinimalOrder(
            client_id=str(body["client_id"]),
            symbol=str(body["symbol"]),
            side=str(body["side"]),
            quantity=str(body["quantity"]),
        )
        with Session(engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        return {"id": row.id}

    return app


def ems_app(db: Path) -> tuple[FastAPI, str]:
    events = load_recorded(default_sample_path())
    clock = TestClock(next(e.ts for e in events if isinstance(e, BookSnapshot)))
    venue = SimVenue(binance_btcusdt_config("binance-sim"), clock, {"BTC/USDT": events})
    store = SqlStore.open(f"sqlite:///{db}")
    manager = ParentOrderManager(store, {"binance-sim": venue}, clock)
    key, _ = create_api_key(store, "bench", "trader", clock.now())
    return create_app(manager, store), key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def load(
    url: str, headers: dict[str, str], n: int, concurrency: int, end_at: str
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {
                "client_id": f"bench-{i}",
                "symbol": "BTC/USDT",
                "side": "buy",
                "quantity": "0.5",
                "algo": "twap",
                "end_at": end_at,
            }
            t0 = time.perf_counter()
            response = await client.post(url, json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 201:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def report(label: str, n: int, elapsed: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(f"{label}: {n / elapsed:8,.0f} orders/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    n = min(args.requests, 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        base = minimal_app(Path(tmp) / "minimal.db")
        with Server(base) as server:
            url = f"http://127.0.0.1:{server.port}/v1/parents"
            elapsed, lat = asyncio.run(load(url, {}, n, args.concurrency, ""))
        report("baseline  minimal FastAPI+SQLModel insert", n, elapsed, lat)

        app, key = ems_app(Path(tmp) / "ems.db")
        clock_end = (app.state.manager.clock.now() + timedelta(minutes=30)).isoformat()
        with Server(app) as server:
            url = f"http://127.0.0.1:{server.port}/v1/parents"
            headers = {"Authorization": f"Bearer {key}"}
            elapsed2, lat2 = asyncio.run(load(url, headers, n, args.concurrency, clock_end))
        report("measured  EMS parent intake (durable)    ", n, elapsed2, lat2)
        print(
            f"          EMS intake costs {elapsed2 / elapsed:.2f}x the baseline time per order "
            f"({n} requests, concurrency {args.concurrency}, SQLite file, 2 cores shared "
            "by client and server)"
        )


if __name__ == "__main__":
    main()
