"""The ``ems`` command line: run the server, manage API keys, submit, amend and watch parent
orders, and see or switch the risk desk's trading states (``ems risk ...``).

Commands that talk to a running server use its REST API over HTTP and read the API key from
the ``EMS_API_KEY`` environment variable or from a file (``--api-key-file``); a key is never
passed as a command-line argument, where it would end up in shell history and process lists.

Every failure prints one line, ``error: <what is wrong>``, on stderr and exits non-zero
(2 for a bad option value, 1 for anything else).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlencode

import httpx
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from ems.ports import CoverageKind
from risk.types import MarketPhase

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DB = "sqlite:///var/ems.db"  # as in ems.settings
API_KEY_ENV = "EMS_API_KEY"
TERMINAL_STATUSES = frozenset({"completed", "cancelled", "rejected", "expired"})
ALGOS = ("twap", "vwap", "pov", "iceberg")
ROLES = ("viewer", "trader", "admin")
HTTP_TIMEOUT_S = 15.0

EXIT_ERROR = 1
EXIT_USAGE = 2


class _OneLineErrors(TyperGroup):
    """Reports usage errors (missing option, unknown command...) as one line on stderr."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; on a usage error print one line and exit with its code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # prints the help, not an error
                exc.show()  # type: ignore[attr-defined]
                sys.exit(0)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="ems",
    help="Execution management for staged crypto accumulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
api_key_app = typer.Typer(help="Create API keys for the REST API.", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")
risk_app = typer.Typer(
    help="See the risk desk; halt, reduce or resume trading on a venue or the whole desk "
    "(needs an admin key).",
    no_args_is_help=True,
)
app.add_typer(risk_app, name="risk")

_KEY_FILE_HELP = f"File holding the API key (else ${API_KEY_ENV})."

_out = Console(highlight=False, soft_wrap=True)


class CliError(Exception):
    """A failure to report as one line, with the process exit code to use."""

    def __init__(
        self, message: str, exit_code: int = EXIT_ERROR, *, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status  # the HTTP status when the server refused the request


def _usage(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


def _fail(error: CliError) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(error.exit_code)


# --- parsing of option values ----------------------------------------------------------------

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, option: str = "--duration") -> timedelta:
    """Parse ``30s``, ``10m`` or ``1.5h``; raise :class:`CliError` naming ``option`` otherwise."""
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise _usage(f"{option}: use a number followed by s, m or h, e.g. 10m")
    seconds = Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise _usage(f"{option}: must be longer than zero, e.g. 10m")
    return timedelta(seconds=float(seconds))


def parse_positive_decimal(text: str, option: str) -> Decimal:
    """Parse a positive, finite decimal such as ``0.5``; the error names ``option``."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _usage(f"{option}: use a positive number, e.g. 0.5 (got {text!r})") from None
    if not value.is_finite() or value <= 0:
        raise _usage(f"{option}: use a positive number, e.g. 0.5 (got {text!r})")
    return value


def parse_time(text: str, option: str) -> datetime:
    """Parse an ISO-8601 time with a timezone (``2026-05-01T12:00:00Z``) into UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _usage(
            f"{option}: use an ISO-8601 time with a timezone, e.g. 2026-05-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _usage(f"{option}: add a timezone, e.g. 2026-05-01T12:00:00Z (Z means UTC)")
    return moment.astimezone(UTC)


def _choice(text: str, choices: tuple[str, ...], option: str, what: str) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise _usage(f"{option}: unknown {what} {text!r}; use one of: {', '.join(choices)}")
    return value


def read_api_key(api_key_file: Path | None, environ: Mapping[str, str] = os.environ) -> str:
    """The API key from ``api_key_file`` if given, else from ``$EMS_API_KEY``."""
    if api_key_file is not None:
        try:
            key = api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _usage(f"--api-key-file: cannot read {api_key_file}: {exc.strerror}") from None
        if not key:
            raise _usage(f"--api-key-file: {api_key_file} is empty")
        return key
    key = environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise _usage(f"no API key: set {API_KEY_ENV} or pass --api-key-file PATH")
    return key


# --- HTTP ------------------------------------------------------------------------------------


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0][:300] if text else response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return str(body)[:300]


class Api:
    """A small client of the EMS REST API that turns every failure into a :class:`CliError`."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """Send one request; return the response when it is a success."""
        try:
            with httpx.Client(
                base_url=self.url, headers=self._headers, timeout=HTTP_TIMEOUT_S
            ) as client:
                response = client.request(method, path, json=body)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise _usage(f"--url: {self.url!r} is not an http:// or https:// URL") from None
        except httpx.ConnectError:
            raise CliError(
                f"cannot reach the EMS at {self.url}: connection refused or host unknown "
                "(is `ems serve` running?)"
            ) from None
        except httpx.TimeoutException:
            raise CliError(
                f"the EMS at {self.url} did not answer within {HTTP_TIMEOUT_S:.0f}s"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.url} failed: {exc}") from None
        if response.status_code >= 400:
            message = _server_message(response)
            if response.status_code == 401:
                message = f"{message}; check {API_KEY_ENV} or --api-key-file"
            raise CliError(
                f"the server refused ({response.status_code}): {message}",
                status=response.status_code,
            )
        return response

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request and decode the JSON answer."""
        response = self.call(method, path, body)
        try:
            return response.json()
        except ValueError:
            raise CliError(f"the server at {self.url} did not answer with JSON") from None


# --- display ---------------------------------------------------------------------------------


def _pct(parent: Mapping[str, Any]) -> str:
    return f"{float(parent.get('progress', 0.0)) * 100:.1f}%"


def parent_table(parent: Mapping[str, Any]) -> Table:
    """A two-column summary of a parent order as returned by the API."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("id", parent["id"]),
        ("client id", parent["client_id"]),
        ("status", parent["status"]),
        ("order", f"{parent['side']} {parent['quantity']} {parent['symbol']} by {parent['algo']}"),
        ("filled", f"{parent['filled_qty']} ({_pct(parent)}), {parent['remaining_qty']} left"),
        ("avg price", parent.get("avg_price") or "-"),
        ("fees", parent["fees"]),
        ("limit price", parent.get("limit_price") or "none"),
        ("venues", ", ".join(parent.get("venues") or []) or "all listing the symbol"),
        ("window", f"{parent['start_at']} → {parent['end_at']}"),
    ]
    rows.extend(quality_rows(parent))
    if parent.get("reason"):
        rows.append(("reason", parent["reason"]))
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def _percent(share: Any, places: int = 2) -> str:
    return f"{Decimal(str(share)) * 100:.{places}f}%"


def quality_rows(parent: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The schedule-quality lines of the status table (``-`` where nothing is measured yet)."""
    base = str(parent.get("symbol", "")).split("/")[0]
    mean, worst = parent.get("tracking_error_mean"), parent.get("tracking_error_max")
    tracking = (
        f"mean {_percent(mean)}, worst {_percent(worst)} of the quantity off schedule"
        if mean is not None and worst is not None
        else "-"
    )
    volume = parent.get("market_volume")
    rate = parent.get("participation_rate")
    if rate is not None and volume is not None:
        participation = f"{_percent(rate)} of the {volume} {base} traded since the start"
    else:
        participation = "-"
    maker = parent.get("maker_share")
    return [
        ("tracking error", tracking),
        ("participation", participation),
        ("maker share", f"{_percent(maker, 1)} of the fills rested on the book" if maker else "-"),
    ]


def _watch(api: Api, parent: Mapping[str, Any], interval: float) -> Mapping[str, Any]:
    parent_id = parent["id"]
    total = float(Decimal(parent["quantity"]))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[filled]}/{task.fields[quantity]} {task.fields[base]}"),
        TimeElapsedColumn(),
    )
    base = str(parent["symbol"]).split("/")[0]
    with Progress(*columns, console=_out, transient=False) as progress:
        task = progress.add_task(
            f"{parent_id} {parent['status']}",
            total=total,
            filled=parent["filled_qty"],
            quantity=parent["quantity"],
            base=base,
        )
        while True:
            progress.update(
                task,
                completed=float(Decimal(parent["filled_qty"])),
                description=f"{parent_id} {parent['status']}",
                filled=parent["filled_qty"],
            )
            if parent["status"] in TERMINAL_STATUSES:
                return parent
            time.sleep(interval)
            parent = api.json("GET", f"/v1/parents/{parent_id}")


# --- commands --------------------------------------------------------------------------------


_CONFIG_HELP = "TOML settings file (see config/ems.example.toml)."


def _settings(config: Path | None, **overrides: Any) -> Any:
    """Settings from ``config``, the environment and explicit options, in rising priority."""
    from ems.settings import SettingsError, load_settings

    if config is not None and not config.is_file():
        raise _usage(f"--config: {config} is not a file")
    try:
        return load_settings(config, **overrides)
    except SettingsError as exc:
        raise _usage(f"--config: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read settings: {exc}") from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on. [default: 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="TCP port. [default: 8000]")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL (else $EMS_DATABASE_URL). [default: sqlite:///var/ems.db]"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help=_CONFIG_HELP)] = None,
) -> None:
    """Run the EMS: the order manager and the REST API (docs at /docs)."""
    try:
        settings = _settings(config, host=host, port=port, database_url=db)
        from ems.main import serve as run_server

        run_server(settings)
    except CliError as exc:
        _fail(exc)


@api_key_app.command("create")
def api_key_create(
    name: Annotated[str, typer.Option("--name", help="Whose key this is, e.g. alice.")],
    role: Annotated[str, typer.Option(help="viewer, trader or admin.")] = "trader",
    db: Annotated[
        str | None,
        typer.Option(help="Database URL (else from --config or $EMS_DATABASE_URL)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help=_CONFIG_HELP)] = None,
) -> None:
    """Create an API key and print it once (on stdout); only its hash is stored."""
    from ems.api.auth import check_key_name, create_api_key

    try:
        role = _choice(role, ROLES, "--role", "role")
        try:
            check_key_name(name)
        except ValueError as exc:
            raise _usage(f"--name: {exc}") from None
        url = db if db is not None else _settings(config).database_url
        store = _open_store(url)
        try:
            plain, record = create_api_key(store, name, role, datetime.now(UTC))
        except ValueError as exc:
            raise _usage(f"--name: {exc}") from None
        finally:
            store.close()
    except CliError as exc:
        _fail(exc)
    typer.echo(
        f"created API key {record.key_id} for {record.name!r} with role {record.role}; "
        "it is shown only this once, so store it now (e.g. in a file for --api-key-file):",
        err=True,
    )
    typer.echo(plain)


def _open_store(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from ems.store import SqlStore

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _usage(f"--db: {url!r} is not a database URL, e.g. {DEFAULT_DB}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        return SqlStore.open(url)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else str(exc)
        shown = parsed.render_as_string(hide_password=True)
        raise CliError(f"cannot open the database {shown}: {reason.splitlines()[0]}") from None
    except ModuleNotFoundError as exc:
        raise CliError(f"--db: no driver for {parsed.get_backend_name()} ({exc.name})") from None


@app.command()
def submit(
    symbol: Annotated[str, typer.Option(help="Unified symbol, e.g. BTC/USDT.")],
    side: Annotated[str, typer.Option(help="buy or sell.")],
    qty: Annotated[str, typer.Option("--qty", help="Total quantity, e.g. 0.5.")],
    algo: Annotated[
        str, typer.Option(help="Execution algorithm: twap, vwap, pov or iceberg.")
    ] = "twap",
    duration: Annotated[
        str | None, typer.Option(help="How long to work the order from now: 30s, 10m, 2h.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="End time instead of --duration (ISO-8601, UTC).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Start time (ISO-8601); default now.")
    ] = None,
    limit_price: Annotated[
        str | None, typer.Option("--limit-price", help="Worst price to pay (buy) or accept.")
    ] = None,
    venue: Annotated[
        list[str] | None, typer.Option("--venue", help="Venue to use; repeat for several.")
    ] = None,
    slice_interval: Annotated[
        str | None,
        typer.Option("--slice-interval", help="TWAP/VWAP slice interval, e.g. 30s."),
    ] = None,
    jitter: Annotated[
        float | None, typer.Option(help="TWAP jitter, fraction of an interval (0..0.5).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="TWAP jitter seed.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Algorithm parameter KEY=VALUE, e.g. --param rate=0.1 or --param "
            "display_qty=0.2; repeat for several (each algorithm's are listed at /docs).",
        ),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", help="Idempotency id; resending it never doubles an order."),
    ] = None,
    url: Annotated[str, typer.Option(help="EMS base URL.", envvar="EMS_URL")] = DEFAULT_URL,
    api_key_file: Annotated[
        Path | None, typer.Option("--api-key-file", help=_KEY_FILE_HELP)
    ] = None,
) -> None:
    """Submit a parent order and print it."""
    body: dict[str, Any] = {}
    try:
        body = build_submit_body(
            symbol=symbol,
            side=side,
            qty=qty,
            algo=algo,
            duration=duration,
            end=end,
            start=start,
            limit_price=limit_price,
            venues=venue or [],
            slice_interval=slice_interval,
            jitter=jitter,
            seed=seed,
            client_id=client_id,
            now=datetime.now(UTC),
            params=param or [],
        )
        api = Api(url, read_api_key(api_key_file))
        response = api.call("POST", "/v1/parents", body)
        parent = response.json()
    except CliError as exc:
        if exc.status == 409 and duration is not None:
            exc = CliError(
                f"{exc} (--duration sets a new end time on every run; to resend the same "
                f"order use --end {body['end_at']} with the original end time)"
            )
        _fail(exc)
    if response.status_code == 200:
        _out.print(f"client id {body['client_id']} was already submitted; here is that order:")
    else:
        _out.print(f"submitted {parent['id']} (client id {body['client_id']})")
    _out.print(parent_table(parent))


def build_submit_body(
    *,
    symbol: str,
    side: str,
    qty: str,
    algo: str,
    duration: str | None,
    end: str | None,
    start: str | None,
    limit_price: str | None,
    venues: list[str],
    slice_interval: str | None,
    jitter: float | None,
    seed: int | None,
    client_id: str | None,
    now: datetime,
    params: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``POST /v1/parents`` body for the ``submit`` options; raises :class:`CliError`.

    ``params`` are ``KEY=VALUE`` algorithm parameters passed on as text; the server checks them
    against the chosen algorithm and names any it refuses.
    """
    if duration is not None and end is not None:
        raise _usage("--duration and --end: give one or the other, not both")
    start_at = parse_time(start, "--start") if start is not None else None
    if end is not None:
        end_at = parse_time(end, "--end")
    elif duration is not None:
        end_at = (start_at or now) + parse_duration(duration, "--duration")
    else:
        raise _usage("--duration or --end is required, e.g. --duration 10m")
    body: dict[str, Any] = {
        "client_id": client_id or f"cli-{secrets.token_hex(8)}",
        "symbol": symbol.strip().upper(),
        "side": _choice(side, ("buy", "sell"), "--side", "side"),
        "quantity": str(parse_positive_decimal(qty, "--qty")),
        "algo": _choice(algo, ALGOS, "--algo", "algo"),
        "end_at": end_at.isoformat(),
    }
    if start_at is not None:
        body["start_at"] = start_at.isoformat()
    if limit_price is not None:
        body["limit_price"] = str(parse_positive_decimal(limit_price, "--limit-price"))
    if venues:
        body["venues"] = [v.strip().lower() for v in venues]
    algo_params: dict[str, Any] = {}
    if slice_interval is not None:
        interval = parse_duration(slice_interval, "--slice-interval").total_seconds()
        if interval != int(interval):
            raise _usage("--slice-interval: use whole seconds, e.g. 30s")
        algo_params["slice_interval_s"] = int(interval)
    if jitter is not None:
        algo_params["jitter_pct"] = jitter
    if seed is not None:
        algo_params["seed"] = seed
    for item in params:
        key, value = parse_param(item)
        if key in algo_params:
            raise _usage(f"--param: {key} is given twice")
        algo_params[key] = value
    if algo_params:
        body["algo_params"] = algo_params
    return body


_PARAM_RE = re.compile(r"^\s*([a-z][a-z0-9_]{0,39})\s*=\s*(\S.*?)\s*$")


def parse_param(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (``rate=0.1``); raise :class:`CliError` naming ``--param`` otherwise."""
    match = _PARAM_RE.fullmatch(text)
    if match is None:
        raise _usage(f"--param: use KEY=VALUE, e.g. --param rate=0.1 (got {text!r})")
    if match.group(1) == "algo":
        raise _usage("--param: the algorithm is chosen with --algo")
    return match.group(1), match.group(2)


@app.command()
def status(
    parent_id: Annotated[str, typer.Argument(help="Parent order id, e.g. P1A2B3C4D5E6.")],
    watch: Annotated[
        bool, typer.Option("--watch", help="Show a live progress bar until the order ends.")
    ] = False,
    interval: Annotated[str, typer.Option(help="Refresh interval with --watch.")] = "1s",
    url: Annotated[str, typer.Option(help="EMS base URL.", envvar="EMS_URL")] = DEFAULT_URL,
    api_key_file: Annotated[
        Path | None, typer.Option("--api-key-file", help=_KEY_FILE_HELP)
    ] = None,
) -> None:
    """Show a parent order; with --watch, follow its progress until it ends."""
    try:
        every = parse_duration(interval, "--interval").total_seconds()
        _check_parent_id(parent_id)
        api = Api(url, read_api_key(api_key_file))
        parent = api.json("GET", f"/v1/parents/{parent_id}")
        if watch:
            try:
                parent = _watch(api, parent, every)
            except KeyboardInterrupt:
                typer.echo(f"stopped watching; {parent_id} keeps working", err=True)
                raise typer.Exit(130) from None
    except CliError as exc:
        _fail(exc)
    _out.print(parent_table(parent))


@app.command()
def amend(
    parent_id: Annotated[str, typer.Argument(help="Parent order id, e.g. P1A2B3C4D5E6.")],
    qty: Annotated[
        str | None, typer.Option("--qty", help="New total quantity (not below what is filled).")
    ] = None,
    limit_price: Annotated[
        str | None, typer.Option("--limit-price", help="New limit price.")
    ] = None,
    clear_limit: Annotated[
        bool, typer.Option("--clear-limit", help="Remove the limit price.")
    ] = False,
    end: Annotated[
        str | None, typer.Option("--end", help="New end time (ISO-8601 with a timezone).")
    ] = None,
    extend: Annotated[
        str | None,
        typer.Option("--extend", help="Move the end time later by this much: 30s, 5m, 2h."),
    ] = None,
    url: Annotated[str, typer.Option(help="EMS base URL.", envvar="EMS_URL")] = DEFAULT_URL,
    api_key_file: Annotated[
        Path | None, typer.Option("--api-key-file", help=_KEY_FILE_HELP)
    ] = None,
) -> None:
    """Change a working order's quantity, limit price or end time; the schedule re-plans."""
    try:
        _check_parent_id(parent_id)
        body = build_amend_body(
            qty=qty, limit_price=limit_price, clear_limit=clear_limit, end=end, extend=extend
        )
        api = Api(url, read_api_key(api_key_file))
        if extend is not None:
            current = api.json("GET", f"/v1/parents/{parent_id}")
            body["end_at"] = extended_end(current["end_at"], extend).isoformat()
        parent = api.json("PATCH", f"/v1/parents/{parent_id}", body)
    except CliError as exc:
        _fail(exc)
    _out.print(f"amended {parent['id']}: {_amend_summary(body)}")
    _out.print(parent_table(parent))


def build_amend_body(
    *,
    qty: str | None,
    limit_price: str | None,
    clear_limit: bool,
    end: str | None,
    extend: str | None,
) -> dict[str, Any]:
    """The ``PATCH /v1/parents/{id}`` body for the ``amend`` options; raises :class:`CliError`.

    With ``--extend`` the new end time depends on the order's current one, so ``end_at`` is
    left out here and filled in by :func:`extended_end` once the order has been read.
    """
    if limit_price is not None and clear_limit:
        raise _usage("--limit-price and --clear-limit: give one or the other, not both")
    if end is not None and extend is not None:
        raise _usage("--end and --extend: give one or the other, not both")
    if qty is None and limit_price is None and not clear_limit and end is None and extend is None:
        raise _usage(
            "nothing to amend: give --qty, --limit-price, --clear-limit, --end or --extend"
        )
    body: dict[str, Any] = {}
    if qty is not None:
        body["quantity"] = str(parse_positive_decimal(qty, "--qty"))
    if limit_price is not None:
        body["limit_price"] = str(parse_positive_decimal(limit_price, "--limit-price"))
    if clear_limit:
        body["clear_limit"] = True
    if end is not None:
        body["end_at"] = parse_time(end, "--end").isoformat()
    if extend is not None:
        parse_duration(extend, "--extend")  # checked before anything is sent
    return body


def extended_end(current_end: str, extend: str) -> datetime:
    """The order's end time ``current_end`` (as the API returns it) moved later by ``extend``."""
    try:
        moment = datetime.fromisoformat(current_end.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"the server returned an unreadable end time {current_end!r}") from None
    return moment.astimezone(UTC) + parse_duration(extend, "--extend")


def _amend_summary(body: Mapping[str, Any]) -> str:
    changes = []
    if "quantity" in body:
        changes.append(f"quantity {body['quantity']}")
    if "limit_price" in body:
        changes.append(f"limit price {body['limit_price']}")
    if body.get("clear_limit"):
        changes.append("no limit price")
    if "end_at" in body:
        changes.append(f"end {body['end_at']}")
    return ", ".join(changes)


def _check_parent_id(parent_id: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", parent_id):
        raise _usage(f"PARENT_ID: {parent_id!r} is not a parent id")


# --- risk ------------------------------------------------------------------------------------


def risk_tables(view: Mapping[str, Any]) -> list[Table]:
    """``GET /v1/risk`` as tables: trading states and health per venue, then limits and
    positions."""
    states = Table(title=f"trading: {view['global_state']} (whole desk)", title_justify="left")
    for column in ("venue", "state", "routing"):
        states.add_column(column)
    for venue in view.get("venues", []):
        routing = "tradable" if venue["tradable"] else f"blocked: {venue['reason']}"
        if venue.get("detail") and not venue["tradable"]:
            routing = f"{routing} ({venue['detail']})"
        states.add_row(venue["venue"], venue["state"], routing)
    desk = Table(show_header=False, box=None, pad_edge=False)
    desk.add_column(style="bold")
    desk.add_column()
    limits = view["limits"]
    positions = view.get("positions") or {}
    rows = [
        ("positions", ", ".join(f"{a} {q}" for a, q in positions.items()) or "none"),
        ("notional today", view["day_notional"]),
        ("max child", limits["max_child_notional"]),
        ("max parent", limits["max_parent_notional"]),
        ("max daily", limits["max_daily_notional"]),
        ("max position", ", ".join(f"{a} {q}" for a, q in limits["max_position"].items())),
        ("price collar", f"{limits['price_collar_bps']} bps"),
        ("option collar", f"{limits['option_collar_bps']} bps"),
        ("max book age", f"{limits['max_book_age_s']:g}s"),
        (
            "order rate",
            f"{limits['max_orders_per_window']} per {limits['order_window_s']:g}s per venue",
        ),
    ]
    for label, value in rows:
        desk.add_row(label, str(value))
    return [states, desk]


_VENUE_HELP = "Only this venue (default: the whole desk)."
_REASON_HELP = "Why (1..500 characters); kept in the audit trail."


def _set_state(
    state: str, venue: str | None, reason: str, url: str, api_key_file: Path | None
) -> None:
    """Send ``PUT /v1/risk/state`` and print the change in one line."""
    try:
        scope = venue.strip().lower() if venue is not None else "global"
        if not scope:
            raise _usage("--venue: give a venue name, e.g. binance")
        reason = reason.strip()
        if not reason:
            raise _usage("--reason: say why, e.g. --reason 'exchange incident'")
        if len(reason) > 500:
            raise _usage("--reason: at most 500 characters")
        api = Api(url, read_api_key(api_key_file))
        record = api.json(
            "PUT", "/v1/risk/state", {"scope": scope, "state": state, "reason": reason}
        )
    except CliError as exc:
        _fail(exc)
    where = "the whole desk" if record["scope"] == "global" else record["scope"]
    _out.print(
        f"{where}: {record['before']} → {record['after']} by {record['actor']} ({record['reason']})"
    )


_UrlOpt = Annotated[str, typer.Option(help="EMS base URL.", envvar="EMS_URL")]
_KeyFileOpt = Annotated[Path | None, typer.Option("--api-key-file", help=_KEY_FILE_HELP)]
_VenueOpt = Annotated[str | None, typer.Option("--venue", help=_VENUE_HELP)]
_ReasonOpt = Annotated[str, typer.Option("--reason", help=_REASON_HELP)]


@risk_app.command("show")
def risk_show(url: _UrlOpt = DEFAULT_URL, api_key_file: _KeyFileOpt = None) -> None:
    """Show trading states, venue health, limits, positions and today's notional."""
    try:
        view = Api(url, read_api_key(api_key_file)).json("GET", "/v1/risk")
    except CliError as exc:
        _fail(exc)
    for table in risk_tables(view):
        _out.print(table)


@risk_app.command("halt")
def risk_halt(
    reason: _ReasonOpt,
    venue: _VenueOpt = None,
    url: _UrlOpt = DEFAULT_URL,
    api_key_file: _KeyFileOpt = None,
) -> None:
    """Kill switch: send nothing more to the venue (or anywhere, without --venue)."""
    _set_state("halted", venue, reason, url, api_key_file)


@risk_app.command("reduce")
def risk_reduce(
    reason: _ReasonOpt,
    venue: _VenueOpt = None,
    url: _UrlOpt = DEFAULT_URL,
    api_key_file: _KeyFileOpt = None,
) -> None:
    """Allow only orders that reduce exposure on the venue (or the whole desk)."""
    _set_state("reducing", venue, reason, url, api_key_file)


@risk_app.command("resume")
def risk_resume(
    reason: _ReasonOpt,
    venue: _VenueOpt = None,
    url: _UrlOpt = DEFAULT_URL,
    api_key_file: _KeyFileOpt = None,
) -> None:
    """Trade normally again on the venue (or the whole desk): state active."""
    _set_state("active", venue, reason, url, api_key_file)


# --- hedge coverage (ems risk coverage | phase | unwind | decisions) -------------------------

PHASES = tuple(phase.value for phase in MarketPhase)
DECISION_KINDS = tuple(kind.value for kind in CoverageKind)
EVIDENCE_MAX = 2000


def _ratio_text(ratio: Any, minimum: Any, target: Any) -> str:
    shown = "-" if ratio is None else str(ratio)
    return f"{shown} of spot (min {minimum}, target {target})"


def _unwind_text(unwind: Mapping[str, Any]) -> str:
    text = (
        f"{unwind['status']}, {unwind['steps_done']} of {unwind['steps']} step(s) taken, "
        f"steps at least {unwind['min_interval_s']:g}s apart"
    )
    if unwind.get("next_step_at"):
        text += f", next step from {unwind['next_step_at']}"
    if unwind.get("requested"):
        text += ", a step is requested"
    elif not unwind.get("auto", True):
        text += ", steps on request (ems risk unwind)"
    return text


def _greek(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _put_name(held: Mapping[str, Any]) -> str:
    """A held put as strike, right and expiry date (``55000P 2026-06-26``), * when rolling."""
    expiry = str(held.get("expiry") or "")[:10] or "-"
    name = f"{held.get('strike') or held['symbol']}P {expiry}"
    return name + (" *" if held["rolling"] else "")


def coverage_tables(view: Mapping[str, Any]) -> list[Table]:
    """``GET /v1/coverage`` as tables: the coverage against the phase's requirement, then the
    put book with its greeks and the funding per venue."""
    asset = view["asset"]
    exposure, ratios, required = view["exposure"], view["ratios"], view["required"]
    unwind, drift = view["unwind"], view["drift"]
    summary = Table(
        title=f"hedge coverage of {asset}: phase {view['phase']}",
        title_justify="left",
        show_header=False,
        box=None,
        pad_edge=False,
    )
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column()
    spot = f"{exposure['spot_qty']} {asset} at {view['spot_price']}"
    if Decimal(str(view["demand"])) > 0:
        spot += f"; {view['demand']} {asset} more held until the hedge catches up"
    drift_text = (
        f"{drift['shortfall_share']} of spot notional below target (tolerance {drift['tolerance']})"
    )
    if drift.get("since"):
        drift_text += f", since {drift['since']}"
    if drift["exceeded"]:
        drift_text += ", EXCEEDED"
    evidence = unwind.get("evidence") or ""
    rows = [
        ("as of", str(view["as_of"])),
        ("phase", str(view["phase"]) + (f" ({evidence})" if evidence else "")),
        ("unwind", _unwind_text(unwind)),
        ("spot", spot),
        (
            "basis short",
            f"{exposure['perp_short_qty']} {asset} {view['hedge_symbol']} = "
            + _ratio_text(
                ratios["basis"], required["min_basis_ratio"], required["target_basis_ratio"]
            ),
        ),
        (
            "put cover",
            f"{exposure['put_cover_qty']} {asset} = "
            + _ratio_text(ratios["put"], required["min_put_ratio"], required["target_put_ratio"]),
        ),
        ("drift", drift_text),
        (
            "last basis",
            "-" if view.get("last_basis_bps") is None else f"{view['last_basis_bps']} bps",
        ),
    ]
    for label, value in rows:
        summary.add_row(label, value)

    book = view["puts"]
    puts = Table(
        title="put book",
        title_justify="left",
        caption="position greeks: contracts × contract size × the put's greek; * rolling",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("put", "contracts", "cover", "value", "delta", "gamma", "vega", "theta"):
        puts.add_column(column, no_wrap=True, justify="left" if column == "put" else "right")
    for held in book["held"]:
        units = float(Decimal(str(held["contracts"])) * Decimal(str(held["contract_size"])))
        position = [
            None if held[g] is None else units * float(held[g])
            for g in ("price", "delta", "gamma", "vega", "theta")
        ]
        puts.add_row(
            _put_name(held),
            held["contracts"],
            held["cover_qty"],
            *(_greek(value) for value in position),
        )
    totals = book["totals"]
    puts.add_row(
        "total",
        totals["contracts"],
        totals["cover_qty"],
        *(_greek(totals[g]) for g in ("value", "delta", "gamma", "vega", "theta")),
        style="bold",
    )

    funding = Table(
        title="funding on the hedge",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("venue", "net", "received", "paid", "events", "last"):
        funding.add_column(column, justify="left" if column in ("venue", "last") else "right")
    for venue, accrual in view.get("funding", {}).items():
        funding.add_row(
            venue,
            accrual["net"],
            accrual["received"],
            accrual["paid"],
            str(accrual["events"]),
            accrual.get("last_at") or "-",
        )
    if not view.get("funding"):
        funding.add_row("none yet", "", "", "", "", "")
    return [summary, puts, funding]


def decision_line(decision: Mapping[str, Any]) -> str:
    """One coverage decision on one line: when, what, the state after it and why."""
    code = f" [{decision['code']}]" if decision.get("code") else ""
    basis = f", basis {decision['basis_bps']} bps" if decision.get("basis_bps") else ""
    return (
        f"{decision['ts']}  {decision['kind']}{code}  phase {decision['phase']}, unwind "
        f"{decision['unwind_status']}, spot {decision['spot_qty']} short "
        f"{decision['perp_short_qty']} puts {decision['put_cover_qty']}{basis}: "
        f"{decision['detail']} (by {decision['actor']})"
    )


@risk_app.command("coverage")
def risk_coverage(url: _UrlOpt = DEFAULT_URL, api_key_file: _KeyFileOpt = None) -> None:
    """Show the hedge coverage: phase, unwind, exposure and ratios against the phase's
    requirement, drift, the put book with its greeks and funding."""
    try:
        view = Api(url, read_api_key(api_key_file)).json("GET", "/v1/coverage")
    except CliError as exc:
        _fail(exc)
    for table in coverage_tables(view):
        _out.print(table)


@risk_app.command("phase")
def risk_phase(
    phase: Annotated[str, typer.Argument(help="stress, clearing, repair or confirmed.")],
    evidence: Annotated[
        str,
        typer.Option(
            "--evidence", help="The signals behind the phase (1..2000 characters); stored."
        ),
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why now (1..500 characters), optional.")
    ] = None,
    url: _UrlOpt = DEFAULT_URL,
    api_key_file: _KeyFileOpt = None,
) -> None:
    """Set the market phase (admin key); confirmed starts the gated hedge unwind."""
    try:
        body: dict[str, Any] = {"phase": _choice(phase, PHASES, "PHASE", "phase")}
        body["evidence"] = evidence.strip()
        if not body["evidence"]:
            raise _usage("--evidence: name the signals, e.g. --evidence 'funding positive 3d'")
        if len(body["evidence"]) > EVIDENCE_MAX:
            raise _usage(f"--evidence: at most {EVIDENCE_MAX} characters")
        if reason is not None:
            body["reason"] = reason.strip()
            if not body["reason"] or len(body["reason"]) > 500:
                raise _usage("--reason: 1..500 characters, e.g. --reason 'risk committee'")
        record = Api(url, read_api_key(api_key_file)).json("PUT", "/v1/coverage/phase", body)
    except CliError as exc:
        _fail(exc)
    _out.print(
        f"{record['detail']} (by {record['actor']}; unwind {record['unwind_status']})",
        markup=False,
    )


@risk_app.command("unwind")
def risk_unwind(url: _UrlOpt = DEFAULT_URL, api_key_file: _KeyFileOpt = None) -> None:
    """Request the next hedge unwind step (trader key); refused unless confirmed and the
    plan's interval has passed."""
    try:
        record = Api(url, read_api_key(api_key_file)).json("POST", "/v1/coverage/unwind")
    except CliError as exc:
        _fail(exc)
    _out.print(
        f"unwind step requested by {record['actor']}: it is taken at the desk's next step "
        f"(unwind {record['unwind_status']}, phase {record['phase']})",
        markup=False,
    )


@risk_app.command("decisions")
def risk_decisions(
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only this kind, e.g. phase or unwind_refused.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="The most recent decisions to show, 1..1000.")
    ] = 50,
    url: _UrlOpt = DEFAULT_URL,
    api_key_file: _KeyFileOpt = None,
) -> None:
    """Show the coverage decisions, newest last: phase changes, spot held, hedge orders and
    fills, refusals, unwind steps."""
    try:
        query: dict[str, Any] = {"limit": limit}
        if kind is not None:
            query["kind"] = _choice(kind, DECISION_KINDS, "--kind", "decision kind")
        if not 1 <= limit <= 1000:
            raise _usage(f"--limit: use a number from 1 to 1000 (got {limit})")
        path = f"/v1/coverage/decisions?{urlencode(query)}"
        decisions = Api(url, read_api_key(api_key_file)).json("GET", path)
    except CliError as exc:
        _fail(exc)
    if not decisions:
        _out.print("no coverage decisions" + (f" of kind {kind}" if kind else ""))
    for decision in decisions:
        _out.print(decision_line(decision), markup=False)


def main() -> None:
    """Entry point for ``python -m ems.cli``."""
    app()


if __name__ == "__main__":
    main()
