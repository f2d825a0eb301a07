"""The ``ems`` command line: option parsing, one-line errors, and the commands against a live
server (the real app, manager and store served by uvicorn on a local port)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from ems.api.app import create_app
from ems.api.auth import authenticate, create_api_key
from ems.api.schemas import ParentAmend, ParentCreate, plain_decimal
from ems.cli import (
    CliError,
    app,
    build_amend_body,
    build_submit_body,
    extended_end,
    parse_duration,
    parse_param,
    parse_positive_decimal,
    parse_time,
    quality_rows,
    read_api_key,
)
from ems.clock import LiveClock
from ems.domain import Side
from ems.intake import NewParent
from ems.manager import ParentOrderManager
from ems.store import SqlStore
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from tests.hedge_support import HedgedDesk, hedge_config, hedged_desk

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
DURATION_HELP = "--duration: use a number followed by s, m or h, e.g. 10m"

runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 5 m ", timedelta(minutes=5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["10x", "10", "m", "-5m", "1h30m", "", "ten minutes", "1e3s"])
def test_parse_duration_refuses_other_forms(text: str) -> None:
    with pytest.raises(CliError) as info:
        parse_duration(text)
    assert str(info.value) == DURATION_HELP
    assert info.value.exit_code == 2


def test_parse_duration_refuses_zero_and_names_the_option() -> None:
    with pytest.raises(CliError, match=r"^--slice-interval: must be longer than zero"):
        parse_duration("0s", "--slice-interval")


def test_parse_positive_decimal() -> None:
    assert parse_positive_decimal("0.50", "--qty") == Decimal("0.50")
    for bad in ("0", "-1", "abc", "NaN", "Infinity", ""):
        with pytest.raises(CliError, match=r"^--qty: use a positive number, e\.g\. 0\.5"):
            parse_positive_decimal(bad, "--qty")


def test_parse_time() -> None:
    assert parse_time("2026-05-01T14:00:00+02:00", "--end") == NOW
    assert parse_time("2026-05-01T12:00:00Z", "--end") == NOW
    with pytest.raises(CliError, match=r"^--end: add a timezone"):
        parse_time("2026-05-01T12:00:00", "--end")
    with pytest.raises(CliError, match=r"^--end: use an ISO-8601 time with a timezone"):
        parse_time("tomorrow", "--end")


def test_read_api_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("ems_from_file\n")
    assert read_api_key(key_file, {"EMS_API_KEY": "ems_from_env"}) == "ems_from_file"
    assert read_api_key(None, {"EMS_API_KEY": " ems_from_env "}) == "ems_from_env"
    with pytest.raises(CliError, match=r"^no API key: set EMS_API_KEY or pass --api-key-file"):
        read_api_key(None, {})
    with pytest.raises(CliError, match=r"^--api-key-file: cannot read .*missing"):
        read_api_key(tmp_path / "missing", {})
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(CliError, match=r"is empty$"):
        read_api_key(tmp_path / "empty", {})


def _body(**options: object) -> dict[str, object]:
    defaults: dict[str, object] = {
        "symbol": "btc/usdt",
        "side": "BUY",
        "qty": "0.5",
        "algo": "twap",
        "duration": "10m",
        "end": None,
        "start": None,
        "limit_price": None,
        "venues": [],
        "slice_interval": None,
        "jitter": None,
        "seed": None,
        "client_id": None,
        "now": NOW,
        "params": [],
    }
    return build_submit_body(**{**defaults, **options})  # type: ignore[arg-type]


def test_submit_body_is_a_valid_api_request() -> None:
    body = _body(limit_price="61000", venues=["Binance"], slice_interval="1m", jitter=0.1, seed=3)
    assert body["end_at"] == "2026-05-01T12:10:00+00:00"
    assert body["symbol"] == "BTC/USDT" and body["side"] == "buy" and body["quantity"] == "0.5"
    assert body["algo_params"] == {"slice_interval_s": 60, "jitter_pct": 0.1, "seed": 3}
    request = ParentCreate.model_validate(body)  # what the server will accept
    assert request.venues == ("binance",) and request.limit_price == Decimal(61000)
    assert str(body["client_id"]).startswith("cli-")
    assert _body()["client_id"] != _body()["client_id"]
    assert "algo_params" not in _body()


@pytest.mark.parametrize(
    ("algo", "params", "expected"),
    [
        ("pov", ["rate=0.1", "max_rate=0.2"], {"rate": "0.1", "max_rate": "0.2"}),
        (
            "iceberg",
            [" display_qty = 0.05 ", "native=never"],
            {"display_qty": "0.05", "native": "never"},
        ),
        (
            "vwap",
            ["max_deviation=0.3", "max_gap_bps=15"],
            {"max_deviation": "0.3", "max_gap_bps": "15"},
        ),
    ],
)
def test_submit_body_passes_algorithm_parameters_on(
    algo: str, params: list[str], expected: dict[str, str]
) -> None:
    body = _body(algo=algo, params=params)
    assert body["algo"] == algo and body["algo_params"] == expected
    ParentCreate.model_validate(body)  # the server's schema accepts the text values


def test_parse_param() -> None:
    assert parse_param("rate=0.1") == ("rate", "0.1")
    assert parse_param("  seed = 7 ") == ("seed", "7")
    for bad in ("rate", "=1", "rate=", "Rate=1", "rate 0.1"):
        with pytest.raises(CliError, match=r"^--param: use KEY=VALUE"):
            parse_param(bad)
    with pytest.raises(CliError, match=r"^--param: the algorithm is chosen with --algo"):
        parse_param("algo=pov")


def test_amend_body_is_a_valid_api_request() -> None:
    body = build_amend_body(
        qty="0.80",
        limit_price="61500",
        clear_limit=False,
        end="2026-05-01T15:00:00+02:00",
        extend=None,
    )
    assert body == {
        "quantity": "0.80",
        "limit_price": "61500",
        "end_at": "2026-05-01T13:00:00+00:00",
    }
    assert ParentAmend.model_validate(body).quantity == Decimal("0.8")
    cleared = build_amend_body(qty=None, limit_price=None, clear_limit=True, end=None, extend=None)
    assert cleared == {"clear_limit": True}
    ParentAmend.model_validate(cleared)
    extended = build_amend_body(
        qty=None, limit_price=None, clear_limit=False, end=None, extend="5m"
    )
    assert extended == {}  # the end time is filled in from the order's current one
    assert extended_end("2026-05-01T12:00:00Z", "5m") == NOW + timedelta(minutes=5)
    assert extended_end("2026-05-01T14:00:00+02:00", "1.5h") == NOW + timedelta(minutes=90)


def test_quality_rows() -> None:
    measured = {
        "symbol": "BTC/USDT",
        "tracking_error_mean": "0.0125",
        "tracking_error_max": "0.04",
        "participation_rate": "0.031",
        "maker_share": "0.6",
        "market_volume": "4.032258",
    }
    assert quality_rows(measured) == [
        ("tracking error", "mean 1.25%, worst 4.00% of the quantity off schedule"),
        ("participation", "3.10% of the 4.032258 BTC traded since the start"),
        ("maker share", "60.0% of the fills rested on the book"),
    ]
    fresh = {**measured, **dict.fromkeys(("tracking_error_mean", "tracking_error_max"))}
    fresh |= {"participation_rate": None, "maker_share": None, "market_volume": "0"}
    assert [value for _, value in quality_rows(fresh)] == ["-", "-", "-"]
    assert [value for _, value in quality_rows({"symbol": "BTC/USDT"})] == ["-", "-", "-"]


def test_submit_body_window_options() -> None:
    assert _body(duration=None, end="2026-05-01T13:00:00Z")["end_at"] == "2026-05-01T13:00:00+00:00"
    later = _body(start="2026-05-01T13:00:00Z", duration="1h")
    assert (later["start_at"], later["end_at"]) == (
        "2026-05-01T13:00:00+00:00",
        "2026-05-01T14:00:00+00:00",
    )
    with pytest.raises(CliError, match=r"^--duration and --end: give one or the other"):
        _body(end="2026-05-01T13:00:00Z")
    with pytest.raises(CliError, match=r"^--duration or --end is required"):
        _body(duration=None)
    with pytest.raises(CliError, match=r"^--slice-interval: use whole seconds"):
        _body(slice_interval="1.5s")


# --- the commands, offline -------------------------------------------------------------------

SUBMIT = ["submit", "--symbol", "BTC/USDT", "--side", "buy", "--qty", "0.5"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SUBMIT, "--duration", "10x"], DURATION_HELP),
        ([*SUBMIT], "--duration or --end is required, e.g. --duration 10m"),
        (
            [*SUBMIT[:4], "hold", *SUBMIT[5:], "--duration", "1m"],
            "--side: unknown side 'hold'; use one of: buy, sell",
        ),
        (
            [*SUBMIT[:6], "-2", "--duration", "1m"],
            "--qty: use a positive number, e.g. 0.5 (got '-2')",
        ),
        (
            [*SUBMIT, "--duration", "1m", "--algo", "sniper"],
            "--algo: unknown algo 'sniper'; use one of: twap, vwap, pov, iceberg",
        ),
        ([*SUBMIT, "--duration", "1m", "--param", "rate"], "--param: use KEY=VALUE"),
        (
            [*SUBMIT, "--duration", "1m", "--seed", "1", "--param", "seed=2"],
            "--param: seed is given twice",
        ),
        (["amend", "P1"], "nothing to amend: give --qty, --limit-price, --clear-limit, --end"),
        (
            ["amend", "P1", "--limit-price", "60000", "--clear-limit"],
            "--limit-price and --clear-limit: give one or the other, not both",
        ),
        (
            ["amend", "P1", "--end", "2026-05-01T12:00:00Z", "--extend", "5m"],
            "--end and --extend: give one or the other, not both",
        ),
        (["amend", "P1", "--extend", "soon"], "--extend: use a number followed by s, m or h"),
        (["amend", "P1", "--qty", "0"], "--qty: use a positive number, e.g. 0.5 (got '0')"),
        (["amend", "P 1", "--qty", "1"], "PARENT_ID: 'P 1' is not a parent id"),
        (
            [*SUBMIT, "--end", "2026-05-01T12:00:00"],
            "--end: add a timezone, e.g. 2026-05-01T12:00:00Z (Z means UTC)",
        ),
        (
            [*SUBMIT, "--duration", "1m", "--url", "ftp://example"],
            "--url: 'ftp://example' is not an http:// or https:// URL",
        ),
        (["status", "P1", "--interval", "soon"], "--interval: use a number followed by s, m or h"),
        (["submit", "--side", "buy"], "Missing option '--symbol'. (see 'ems submit --help')"),
        (["status"], "Missing argument 'parent_id'. (see 'ems status --help')"),
        (["frobnicate"], "No such command 'frobnicate'. (see 'ems --help')"),
        (
            ["api-key", "create", "--name", "x", "--role", "god"],
            "--role: unknown role 'god'; use one of: viewer, trader, admin",
        ),
    ],
)
def test_bad_options_give_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args, env={"EMS_API_KEY": "ems_x"})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1


def test_submit_without_a_key_says_where_to_put_it() -> None:
    result = runner.invoke(app, [*SUBMIT, "--duration", "1m"], env={"EMS_API_KEY": ""})
    assert result.exit_code == 2
    assert result.stderr == "error: no API key: set EMS_API_KEY or pass --api-key-file PATH\n"


def test_there_is_no_flag_for_the_key_itself() -> None:
    result = runner.invoke(app, [*SUBMIT, "--duration", "1m", "--api-key", "ems_x"])
    assert result.exit_code == 2
    assert "No such option: --api-key" in result.stderr


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = runner.invoke(
        app, [*SUBMIT, "--duration", "1m", "--url", url], env={"EMS_API_KEY": "ems_x"}
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot reach the EMS at {url}: connection refused or host unknown "
        "(is `ems serve` running?)\n"
    )


def test_api_key_create_prints_the_key_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'ems.db'}"  # the folder is created
    result = runner.invoke(
        app, ["api-key", "create", "--name", "alice", "--role", "viewer", "--db", url]
    )
    assert result.exit_code == 0, result.stderr
    plain = result.stdout.strip()
    assert result.stdout == f"{plain}\n" and plain.startswith("ems_")
    assert "shown only this once" in result.stderr and plain not in result.stderr
    store = SqlStore.open(url)
    try:
        principal = authenticate(store, plain)
    finally:
        store.close()
    assert principal is not None and principal.name == "alice" and principal.role == "viewer"


def test_api_key_create_refuses_a_bad_name_before_touching_the_database(tmp_path: Path) -> None:
    db = tmp_path / "ems.db"
    result = runner.invoke(app, ["api-key", "create", "--name", "a/b", "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --name: name must be 1..64 characters")
    assert not db.exists()


def test_api_key_create_hides_database_passwords() -> None:
    url = f"postgresql+psycopg://u:hunter2@127.0.0.1:{_closed_port()}/ems"
    result = runner.invoke(app, ["api-key", "create", "--name", "alice", "--db", url])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot open the database postgresql+psycopg://u:***@")
    assert "hunter2" not in result.stderr and result.stderr.count("\n") == 1


def test_serve_reports_a_missing_config_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.stderr == f"error: --config: {tmp_path / 'nope.toml'} is not a file\n"


# --- the commands against a live server ------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    store: SqlStore
    trader_key: str
    viewer_key: str


def _stepping(manager: ParentOrderManager, every_s: float) -> object:
    """A lifespan that steps the manager in the server's loop, as the composition root does."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await manager.step()
                await asyncio.sleep(every_s)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


@pytest.fixture
def live_server(sqlite_url: str) -> Iterator[LiveServer]:
    store = SqlStore.open(sqlite_url)
    clock = LiveClock()
    venue = SimVenue.from_synthetic(
        clock=clock, config=binance_btcusdt_config("sim"), seed=3, duration=timedelta(hours=1)
    )
    manager = ParentOrderManager(store, {"sim": venue}, clock)
    api = create_app(manager, store, lifespan=_stepping(manager, 0.05))  # type: ignore[arg-type]
    with _serving(api, store) as url:
        now = datetime.now(UTC)
        trader, _ = create_api_key(store, "trader-1", "trader", now)
        viewer, _ = create_api_key(store, "viewer-1", "viewer", now)
        yield LiveServer(url, store, trader, viewer)


@contextlib.contextmanager
def _serving(api: FastAPI, store: SqlStore) -> Iterator[str]:
    """Serve ``api`` with uvicorn on a free 127.0.0.1 port; yield its URL; stop and close the
    store afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()


def test_server_refusals_are_shown_in_one_line(live_server: LiveServer) -> None:
    env = {"EMS_API_KEY": live_server.trader_key}
    result = runner.invoke(
        app,
        [*SUBMIT, "--duration", "10m", "--url", live_server.url, "--venue", "kraken"],
        env=env,
    )
    assert result.exit_code == 1
    # The manager's market check, as worded by the API.
    assert result.stderr == (
        "error: the server refused (422): venues: unknown venue 'kraken'; configured venues: sim\n"
    )
    result = runner.invoke(
        app, [*SUBMIT[:6], "0.123456", "--duration", "10m", "--url", live_server.url], env=env
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: the server refused (422): quantity 0.123456 is not a multiple of the lot size"
    )
    assert live_server.store.list_parents() == []

    result = runner.invoke(app, ["status", "P404", "--url", live_server.url], env=env)
    assert result.exit_code == 1
    assert result.stderr == "error: the server refused (404): parent P404 does not exist\n"


def test_submit_then_watch_until_done(live_server: LiveServer) -> None:
    env = {"EMS_API_KEY": live_server.trader_key}
    end = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    args = [*SUBMIT[:6], "0.01", "--end", end, "--slice-interval", "1s"]
    args += ["--client-id", "cli-test-1", "--url", live_server.url]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr
    stored = live_server.store.get_parent_by_client_id("cli-test-1")
    assert stored is not None
    assert f"submitted {stored.id} (client id cli-test-1)" in result.stdout
    assert "buy 0.01 BTC/USDT by twap" in result.stdout

    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 0, again.stderr
    assert "client id cli-test-1 was already submitted; here is that order:" in again.stdout
    assert stored.id in again.stdout

    # A relative window is a new request on every run: say how to resend the same one.
    retry = [*args[:7], "--duration", "3s", *args[9:]]
    conflict = runner.invoke(app, retry, env=env)
    assert conflict.exit_code == 1
    assert conflict.stderr.startswith(
        "error: the server refused (409): client_id 'cli-test-1' was already used for parent"
    )
    assert "to resend the same order use --end" in conflict.stderr
    assert conflict.stderr.count("\n") == 1

    watch = ["status", stored.id, "--watch", "--interval", "0.2s", "--url", live_server.url]
    result = runner.invoke(app, watch, env={"EMS_API_KEY": live_server.viewer_key})
    assert result.exit_code == 0, result.stderr
    final = live_server.store.get_parent(stored.id)
    assert final is not None and final.is_terminal
    assert re.search(rf"^status +{final.status.value} *$", result.stdout, re.MULTILINE)
    assert re.search(r"^tracking error +mean [0-9.]+%, worst [0-9.]+%", result.stdout, re.M)
    assert re.search(r"^participation +([0-9.]+% of the [0-9.]+ BTC traded|-)", result.stdout, re.M)
    assert f"{stored.id} {final.status.value}" in result.stdout  # the progress line
    assert "/0.01 BTC" in result.stdout


def test_a_wrong_key_is_reported_with_where_keys_come_from(
    live_server: LiveServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("ems_000000000000_" + "x" * 43)
    result = runner.invoke(
        app, ["status", "P1", "--url", live_server.url, "--api-key-file", str(key_file)]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the server refused (401): the API key is not valid (unknown or revoked); "
        "check EMS_API_KEY or --api-key-file\n"
    )


def test_a_viewer_cannot_submit(live_server: LiveServer) -> None:
    result = runner.invoke(
        app,
        [*SUBMIT, "--duration", "10m", "--url", live_server.url],
        env={"EMS_API_KEY": live_server.viewer_key},
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the server refused (403): this action needs the trader role; "
        "the key 'viewer-1' has the viewer role\n"
    )


def test_serve_runs_the_api_with_config_and_flags(tmp_path: Path) -> None:
    """``ems serve`` as a process: the config file gives the port, ``--db`` overrides it."""
    port = _closed_port()
    config = tmp_path / "ems.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "from-config.db"}"\n'
        f"port = {port}\n"
        "step_interval_s = 0.2\n"
        '[[venues]]\nname = "synth"\nsource = "synthetic"\nseed = 1\n'
    )
    db = tmp_path / "flag" / "ems.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMS_DATABASE_URL": ""}
    command = [sys.executable, "-m", "ems.cli", "serve", "--config", str(config)]
    command += ["--db", f"sqlite:///{db}"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, process.stdout.read().decode() if process.stdout else ""
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert db.exists() and not (tmp_path / "from-config.db").exists()
        unauthenticated = httpx.get(f"http://127.0.0.1:{port}/v1/parents", timeout=5)
        assert unauthenticated.status_code == 401
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_amend_changes_a_working_order(live_server: LiveServer) -> None:
    env = {"EMS_API_KEY": live_server.trader_key}
    args = [*SUBMIT[:6], "0.01", "--duration", "10m", "--client-id", "cli-amend-1"]
    submitted = runner.invoke(app, [*args, "--url", live_server.url], env=env)
    assert submitted.exit_code == 0, submitted.stderr
    stored = live_server.store.get_parent_by_client_id("cli-amend-1")
    assert stored is not None

    result = runner.invoke(
        app,
        ["amend", stored.id, "--qty", "0.02", "--extend", "5m", "--url", live_server.url],
        env=env,
    )

    assert result.exit_code == 0, result.stderr
    amended = live_server.store.get_parent(stored.id)
    assert amended is not None
    assert amended.quantity == Decimal("0.02")
    assert amended.end_at == stored.end_at + timedelta(minutes=5)
    assert f"amended {stored.id}: quantity 0.02, end " in result.stdout
    assert "buy 0.02 BTC/USDT by twap" in result.stdout

    cleared = runner.invoke(
        app, ["amend", stored.id, "--clear-limit", "--url", live_server.url], env=env
    )
    assert cleared.exit_code == 0, cleared.stderr
    assert "no limit price" in cleared.stdout

    far = runner.invoke(
        app, ["amend", stored.id, "--extend", "30d", "--url", live_server.url], env=env
    )
    assert far.exit_code == 2  # 30d is not a duration the CLI knows
    late = runner.invoke(
        app,
        ["amend", stored.id, "--end", "2020-01-01T00:00:00Z", "--url", live_server.url],
        env=env,
    )
    assert late.exit_code == 1
    assert late.stderr.startswith("error: the server refused (422): end_at 2020-01-01T00:00:00")
    assert late.stderr.count("\n") == 1

    cancel = httpx.post(
        f"{live_server.url}/v1/parents/{stored.id}/cancel",
        headers={"Authorization": f"Bearer {live_server.trader_key}"},
        timeout=5,
    )
    assert cancel.status_code == 200
    refused = runner.invoke(
        app, ["amend", stored.id, "--qty", "0.03", "--url", live_server.url], env=env
    )
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: the server refused (409): parent {stored.id} is ")
    assert "it cannot be amended" in refused.stderr

    missing = runner.invoke(app, ["amend", "P404", "--qty", "1", "--url", live_server.url], env=env)
    assert missing.stderr == "error: the server refused (404): parent P404 does not exist\n"
    viewer = runner.invoke(
        app,
        ["amend", stored.id, "--qty", "1", "--url", live_server.url],
        env={"EMS_API_KEY": live_server.viewer_key},
    )
    assert viewer.stderr.startswith("error: the server refused (403): this action needs the trader")


# --- ems risk coverage | phase | unwind | decisions, against a hedged desk ---------------------


@dataclass
class HedgedServer:
    url: str
    store: SqlStore
    desk: HedgedDesk
    keys: dict[str, str]

    def env(self, role: str) -> dict[str, str]:
        return {"EMS_API_KEY": self.keys[role]}


async def _accumulate(desk: HedgedDesk, qty: str, window_s: int, run_s: int) -> None:
    """Buy ``qty`` BTC by TWAP through the manager and step the test clock for ``run_s``."""
    end = desk.clock.now() + timedelta(seconds=window_s)
    await desk.manager.submit(
        NewParent(
            "cli-cover-1",
            "BTC/USDT",
            Side.BUY,
            Decimal(qty),
            "twap",
            end,
            algo_params={"slice_interval_s": 10},
        )
    )
    until = desk.clock.now() + timedelta(seconds=run_s)
    while desk.clock.now() < until:
        desk.clock.advance(timedelta(milliseconds=500))
        await desk.manager.step()


@pytest.fixture
def hedged_server(sqlite_url: str) -> Iterator[HedgedServer]:
    """A hedged desk (recorded spot + perpetual, simulated options) that has accumulated some
    spot with its hedge, served by uvicorn; its test clock stands still while served."""
    store = SqlStore.open(sqlite_url)
    desk = hedged_desk(store, hedge_config(auto_unwind=False))
    asyncio.run(_accumulate(desk, "0.2", window_s=20, run_s=30))
    with _serving(create_app(desk.manager, store), store) as url:
        now = datetime.now(UTC)
        keys = {r: create_api_key(store, f"{r}-cli", r, now)[0] for r in ("viewer", "trader")}
        keys["admin"] = create_api_key(store, "admin-cli", "admin", now)[0]
        yield HedgedServer(url, store, desk, keys)


def test_risk_coverage_shows_the_hedge_against_the_phase(hedged_server: HedgedServer) -> None:
    result = runner.invoke(
        app, ["risk", "coverage", "--url", hedged_server.url], env=hedged_server.env("viewer")
    )

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("hedge coverage of BTC: phase stress")
    assert re.search(r"^spot +0\.2 BTC at [0-9.]+ *$", out, re.MULTILINE), out
    assert re.search(
        r"^basis short +[0-9.]+ BTC BTC/USDT:USDT = [0-9.]+ of spot \(min 0\.8", out, re.M
    ), out
    assert re.search(
        r"^put cover +[0-9.]+ BTC = [0-9.]+ of spot \(min 0\.3, target 0\.5\)", out, re.M
    ), out
    assert re.search(
        r"^unwind +holding, 0 of 4 step\(s\) taken, steps at least 60s apart", out, re.M
    ), out
    exposure = asyncio.run(hedged_server.desk.manager.coverage_exposure())
    assert exposure is not None and exposure.puts
    for put in exposure.puts:
        assert put.instrument.expiry is not None
        name = f"{put.instrument.strike}P {put.instrument.expiry.date()}"
        row = (
            rf"^ *{re.escape(name)} +{plain_decimal(put.contracts)} "
            rf"+{plain_decimal(put.cover_qty)} +[0-9.]+ +-0\."
        )
        assert re.search(row, out, re.MULTILINE), (row, out)
    assert re.search(r"^ *total +[0-9.]+ +[0-9.]+ +[0-9.]+ +-0\.", out, re.MULTILINE), out
    assert "funding on the hedge" in out


def test_risk_phase_then_unwind_then_decisions(hedged_server: HedgedServer) -> None:
    url = ["--url", hedged_server.url]
    refused = runner.invoke(app, ["risk", "unwind", *url], env=hedged_server.env("trader"))
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        "error: the server refused (409): unwind_not_confirmed: hedge unwind refused: "
        "confirmation not reached"
    )
    assert refused.stderr.count("\n") == 1

    phase = runner.invoke(
        app,
        ["risk", "phase", "confirmed", "--evidence", "funding positive 3 days", *url],
        env=hedged_server.env("admin"),
    )
    assert phase.exit_code == 0, phase.output
    assert phase.stdout.startswith(
        "phase stress → confirmed: confirmation reached (funding positive 3 days)"
    )
    assert "(by admin-cli (" in phase.stdout and "unwind unwinding)" in phase.stdout

    accepted = runner.invoke(app, ["risk", "unwind", *url], env=hedged_server.env("trader"))
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.startswith("unwind step requested by trader-cli (")
    assert "it is taken at the desk's next step" in accepted.stdout

    shown = runner.invoke(app, ["risk", "decisions", *url], env=hedged_server.env("viewer"))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    kinds = [line.split()[1] for line in lines]
    assert kinds[-3:] == ["unwind_refused", "phase", "unwind_requested"]
    assert "[unwind_not_confirmed]" in lines[-3] and "(by trader-cli (" in lines[-3]
    assert "hedge_fill" in kinds and "bps" in lines[kinds.index("hedge_fill")]

    only = runner.invoke(
        app,
        ["risk", "decisions", "--kind", "phase", "--limit", "5", *url],
        env=hedged_server.env("viewer"),
    )
    assert only.exit_code == 0, only.output
    (line,) = only.stdout.splitlines()
    assert " phase  phase confirmed, unwind unwinding, spot 0.2 " in line
    stored = hedged_server.store.coverage_log(kind="phase")
    assert [r.evidence for r in stored] == ["funding positive 3 days"]


def test_risk_phase_refusals_are_one_line(hedged_server: HedgedServer) -> None:
    url = ["--url", hedged_server.url]
    trader = runner.invoke(
        app, ["risk", "phase", "repair", "--evidence", "x", *url], env=hedged_server.env("trader")
    )
    assert trader.exit_code == 1
    assert trader.stderr == (
        "error: the server refused (403): this action needs the admin role; "
        "the key 'trader-cli' has the trader role\n"
    )
    admin = hedged_server.env("admin")
    for args, message in (
        (["bottom", "--evidence", "x"], "PHASE: unknown phase 'bottom'; use one of: stress,"),
        (["repair", "--evidence", "  "], "--evidence: name the signals"),
        (["repair", "--evidence", "x" * 2001], "--evidence: at most 2000 characters"),
        (["repair", "--evidence", "x", "--reason", " "], "--reason: 1..500 characters"),
    ):
        result = runner.invoke(app, ["risk", "phase", *args, *url], env=admin)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: {message}"), result.stderr
        assert result.stderr.count("\n") == 1
    missing = runner.invoke(app, ["risk", "phase", "repair", *url], env=admin)
    assert missing.exit_code == 2 and "--evidence" in missing.stderr
    assert hedged_server.store.coverage_log(kind="phase") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "bogus"], "--kind: unknown decision kind 'bogus'; use one of: phase,"),
        (["--limit", "0"], "--limit: use a number from 1 to 1000 (got 0)"),
        (["--limit", "1001"], "--limit: use a number from 1 to 1000 (got 1001)"),
    ],
)
def test_risk_decisions_refuses_bad_options(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["risk", "decisions", *args], env={"EMS_API_KEY": "ems_x"})

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1


def test_risk_coverage_without_hedging_says_how_to_enable_it(live_server: LiveServer) -> None:
    result = runner.invoke(
        app,
        ["risk", "coverage", "--url", live_server.url],
        env={"EMS_API_KEY": live_server.viewer_key},
    )

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: the server refused (404): hedging is not configured on this desk: add a "
        "[hedging] section"
    )
    assert result.stderr.count("\n") == 1
