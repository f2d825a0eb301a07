"""Settings of one EMS process: frozen, strict, validated with messages a trader understands.

Loaded from a TOML file (``config/ems.example.toml`` shows every key) and the environment:
``EMS_DATABASE_URL`` (or ``EMS_DATABASE_URL_FILE`` naming a secret file) overrides the
database. Secrets are never stored in the TOML.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_DB = "sqlite:///var/ems.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimVenueSettings(_Strict):
    """A simulated venue replaying recorded data ("sample" = the packaged Binance recording)
    or a seeded synthetic market."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    kind: Literal["sim"] = "sim"
    source: Literal["recording", "synthetic"] = "recording"
    recording: str = "sample"
    seed: int = 0
    latency_ms: Annotated[int, Field(ge=0, le=10_000)] = 20
    maker_fee: Annotated[Decimal, Field(ge=0, le=Decimal("0.01"))] = Decimal("0.001")
    taker_fee: Annotated[Decimal, Field(ge=0, le=Decimal("0.01"))] = Decimal("0.001")
    balances: dict[str, Annotated[Decimal, Field(ge=0)]] = Field(
        default_factory=lambda: {"USDT": Decimal("10000000"), "BTC": Decimal("500")}
    )

    @model_validator(mode="after")
    def _recording_exists(self) -> SimVenueSettings:
        custom = self.source == "recording" and self.recording != "sample"
        if custom and not Path(self.recording).is_file():
            raise ValueError(f"recording file {self.recording!r} does not exist")
        return self


class Settings(_Strict):
    database_url: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    step_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    in_flight_grace_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    limit_collar: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.10")
    venues: tuple[SimVenueSettings, ...] = (SimVenueSettings(name="binance-sim"),)

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
