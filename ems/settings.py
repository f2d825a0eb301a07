"""Settings of one EMS process: frozen, strict, validated with messages a trader understands.

Loaded from a TOML file (``config/ems.example.toml`` shows every key) and the environment:
``EMS_DATABASE_URL`` (or ``EMS_DATABASE_URL_FILE`` naming a secret file) overrides the
database. Secrets are never stored in the TOML: a ccxt venue names the environment variables
that hold its API key and secret (``config/venues.example.toml``).

``venues`` mixes kinds, told apart by ``kind``: ``"sim"`` (the default when ``kind`` is left
out) or ``"ccxt"`` (a real exchange, live or on paper).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_DB = "sqlite:///var/ems.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimVenueSettings(_Strict):
    """A simulated venue replaying recorded data ("sample" = the packaged Binance recording of
    its ``market``) or a seeded synthetic market.

    ``market = "spot"`` trades Binance BTC/USDT; ``"perpetual"`` trades the USDⓈ-M
    BTC/USDT:USDT perpetual on margin at ``leverage``, with Binance's futures fees (0.02 % maker,
    0.05 % taker) and 10,000,000 USDT unless ``maker_fee``, ``taker_fee`` or ``balances`` are
    given."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    kind: Literal["sim"] = "sim"
    market: Literal["spot", "perpetual"] = "spot"
    source: Literal["recording", "synthetic"] = "recording"
    recording: str = "sample"
    seed: int = 0
    latency_ms: Annotated[int, Field(ge=0, le=10_000)] = 20
    maker_fee: Annotated[Decimal, Field(ge=0, le=Decimal("0.01"))] = Decimal("0.001")
    taker_fee: Annotated[Decimal, Field(ge=0, le=Decimal("0.01"))] = Decimal("0.001")
    balances: dict[str, Annotated[Decimal, Field(ge=0)]] = Field(
        default_factory=lambda: {"USDT": Decimal("10000000"), "BTC": Decimal("500")}
    )
    leverage: Annotated[Decimal, Field(ge=1, le=125)] = Decimal(5)
    # Derive a distinct venue from the same recording: shift every price by a whole number of
    # ticks (0.01 for BTC/USDT, 0.10 for the perpetual) and scale every displayed quantity.
    price_offset: Annotated[Decimal, Field(ge=-1000, le=1000)] = Decimal(0)
    depth_scale: Annotated[Decimal, Field(gt=0, le=100)] = Decimal(1)

    @model_validator(mode="before")
    @classmethod
    def _perpetual_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("market") == "perpetual":
            data = {
                "maker_fee": Decimal("0.0002"),
                "taker_fee": Decimal("0.0005"),
                "balances": {"USDT": Decimal("10000000")},
                **data,
            }
        return data

    @model_validator(mode="after")
    def _recording_exists(self) -> SimVenueSettings:
        custom = self.source == "recording" and self.recording != "sample"
        if custom and not Path(self.recording).is_file():
            raise ValueError(f"recording file {self.recording!r} does not exist")
        tick = Decimal("0.10") if self.market == "perpetual" else Decimal("0.01")
        if self.price_offset % tick != 0:
            raise ValueError(
                f"price_offset {self.price_offset} must be a whole number of {tick} ticks"
            )
        if self.market == "spot" and "leverage" in self.model_fields_set:
            raise ValueError("leverage only applies to market = 'perpetual'")
        return self


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9._]+/[A-Za-z0-9._]+(:[A-Za-z0-9._]+(-[A-Za-z0-9._]+)*)?$")
DEFAULT_PAPER_BALANCES = {"USDT": Decimal("1000000"), "BTC": Decimal("10")}


class CcxtVenueSettings(_Strict):
    """A real exchange through ccxt: live trading (API key and secret from the environment
    variables NAMED here) or, with ``paper = true``, its live market data matched by our
    simulator (no keys, simulated ``balances``)."""

    # never echo a rejected value back: a misplaced API key must not end up in an error message
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    kind: Literal["ccxt"]
    exchange: str
    symbols: Annotated[tuple[str, ...], Field(min_length=1)]
    sandbox: bool = False
    paper: bool = False
    api_key_env: str | None = None
    api_secret_env: str | None = None
    rate_limit: bool = True
    websocket: bool = True
    book_max_age_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    latency_ms: Annotated[int, Field(ge=0, le=10_000)] = 20
    balances: dict[str, Annotated[Decimal, Field(ge=0)]] | None = None

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, exchange: str) -> str:
        from ems.venues.ccxt_venue import exchange_ids  # ccxt is imported by venues only

        known = exchange_ids()
        if exchange not in known:
            close = difflib.get_close_matches(exchange.lower(), sorted(known), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(
                f"{exchange!r} is not a ccxt exchange id (see ccxt.exchanges, e.g. binance, "
                f"binanceusdm, coinbase){hint}"
            )
        return exchange

    @field_validator("symbols")
    @classmethod
    def _unified_symbols(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        bad = [symbol for symbol in symbols if not _SYMBOL.match(symbol)]
        if bad:
            raise ValueError(
                f"symbols must be ccxt unified symbols like BTC/USDT or BTC/USDT:USDT; got {bad}"
            )
        repeated = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
        if repeated:
            raise ValueError(f"symbols must be unique; repeated: {', '.join(repeated)}")
        return symbols

    @field_validator("api_key_env", "api_secret_env")
    @classmethod
    def _env_var_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                "must be the NAME of an environment variable (capital letters, digits and "
                "underscores, not starting with a digit, e.g. EMS_BINANCE_KEY), never the key "
                "itself"
            )
        return name

    @model_validator(mode="after")
    def _live_needs_keys(self) -> CcxtVenueSettings:
        if not self.paper:
            missing = [
                key for key in ("api_key_env", "api_secret_env") if getattr(self, key) is None
            ]
            if missing:
                raise ValueError(
                    f"venue {self.name!r} trades live, so it needs {' and '.join(missing)}: the "
                    "names of the environment variables holding the exchange API key and "
                    "secret (e.g. EMS_BINANCE_KEY / EMS_BINANCE_SECRET); set paper = true to "
                    "trade on paper without keys"
                )
            paper_only = sorted({"balances", "latency_ms"} & self.model_fields_set)
            if paper_only:
                raise ValueError(
                    f"venue {self.name!r}: {', '.join(paper_only)} only apply to paper venues "
                    "(a live venue has the exchange's balances and latency)"
                )
        if self.api_key_env is not None and self.api_key_env == self.api_secret_env:
            raise ValueError(
                f"venue {self.name!r}: api_key_env and api_secret_env name the same variable"
            )
        return self

    def paper_balances(self) -> dict[str, Decimal]:
        """Starting balances of a paper venue (``balances``, or 1,000,000 USDT and 10 BTC)."""
        return dict(DEFAULT_PAPER_BALANCES if self.balances is None else self.balances)


def _venue_kind(value: Any) -> str:
    """The ``kind`` of a venue entry; ``"sim"`` when left out."""
    if isinstance(value, dict):
        return str(value.get("kind", "sim"))
    return str(getattr(value, "kind", "sim"))


VenueSettings = Annotated[
    Annotated[SimVenueSettings, Tag("sim")] | Annotated[CcxtVenueSettings, Tag("ccxt")],
    Discriminator(
        _venue_kind,
        custom_error_type="venue_kind",
        custom_error_message="venue kind must be 'sim' or 'ccxt'",
    ),
]
"""One entry of ``venues``: a simulated venue or a ccxt exchange, by ``kind``."""


class Settings(_Strict):
    database_url: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    step_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    in_flight_grace_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    limit_collar: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.10")
    max_venue_share: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.6")
    refit_interval_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    venues: tuple[VenueSettings, ...] = (
        SimVenueSettings(name="binance-sim"),
        SimVenueSettings(
            name="binance-sim-thin",
            price_offset=Decimal("0.50"),
            depth_scale=Decimal("0.4"),
            latency_ms=45,
            maker_fee=Decimal("0.0008"),
            taker_fee=Decimal("0.0009"),
        ),
        SimVenueSettings(name="synthetic-sim", source="synthetic", seed=42, latency_ms=35),
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if not url.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
            raise ValueError(
                "database_url must start with sqlite:/// or postgresql+psycopg:// "
                f"(got {url.split('://')[0]}://...)"
            )
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @model_validator(mode="after")
    def _unique_venue_names(self) -> Settings:
        names = [v.name for v in self.venues]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"venue names must be unique; repeated: {', '.join(duplicates)}")
        if not self.venues:
            raise ValueError("at least one venue must be configured")
        return self


class SettingsError(ValueError):
    """Settings could not be loaded; the message says which key and why."""


def load_settings(path: str | Path | None = None, **overrides: object) -> Settings:
    """Read settings from ``path`` (TOML), then the environment, then explicit overrides."""
    raw: dict[str, object] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    env_url = _database_url_from_env()
    if env_url:
        raw["database_url"] = env_url
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc


def _database_url_from_env() -> str | None:
    secret_file = os.environ.get("EMS_DATABASE_URL_FILE")
    if secret_file:
        return Path(secret_file).read_text().strip()
    return os.environ.get("EMS_DATABASE_URL")
