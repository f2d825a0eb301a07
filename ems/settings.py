"""Settings of one EMS process: frozen, strict, validated with messages a trader understands.

Loaded from a TOML file (``config/ems.example.toml`` shows every key) and the environment:
``EMS_DATABASE_URL`` (or ``EMS_DATABASE_URL_FILE`` naming a secret file) overrides the
database. Secrets are never stored in the TOML: a ccxt venue names the environment variables
that hold its API key and secret (``config/venues.example.toml``).

``venues`` mixes kinds, told apart by ``kind``: ``"sim"`` (the default when ``kind`` is left
out), ``"sim_options"`` (simulated options quoted from a volatility surface around another
venue's price) or ``"ccxt"`` (a real exchange, live or on paper).

``[hedging]`` (optional) keeps a basis short and protective puts against the spot accumulated,
at what the market phase requires (``ems.hedging``). Left out, nothing is hedged, except in the
embedded default desk: with neither ``venues`` nor ``hedging`` given, the settings are the
hedged desk of ``./dev serve`` (simulated spot, USDⓈ-M perpetual and options venues, and
:data:`DEFAULT_HEDGING`); ``hedging = false`` turns its hedging off.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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

from risk.types import MarketPhase
from risk.unwind import UnwindScope

if TYPE_CHECKING:
    from ems.hedging import HedgeConfig
    from ems.venues.options_venue import OptionsVenueConfig
    from risk.coverage import CoveragePolicy
    from risk.put_policy import PutPolicy

DEFAULT_DB = "sqlite:///var/ems.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyedError(ValueError):
    """A rule broken by one key below the model that raised it: ``key`` is its dotted path
    relative to that model, and is appended to the location in the error message."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


_VENUE_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
SPOT_SIM_SYMBOL = "BTC/USDT"
PERP_SIM_SYMBOL = "BTC/USDT:USDT"


class SimVenueSettings(_Strict):
    """A simulated venue replaying recorded data ("sample" = the packaged Binance recording of
    its ``market``) or a seeded synthetic market.

    ``market = "spot"`` trades Binance BTC/USDT; ``"perpetual"`` trades the USDⓈ-M
    BTC/USDT:USDT perpetual on margin at ``leverage``, with Binance's futures fees (0.02 % maker,
    0.05 % taker) and 10,000,000 USDT unless ``maker_fee``, ``taker_fee`` or ``balances`` are
    given."""

    name: Annotated[str, Field(pattern=_VENUE_NAME)]
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

    @property
    def symbols(self) -> tuple[str, ...]:
        """The one symbol it trades: Binance BTC/USDT, or the USDⓈ-M BTC/USDT:USDT perpetual."""
        return (PERP_SIM_SYMBOL if self.market == "perpetual" else SPOT_SIM_SYMBOL,)


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9._]+/[A-Za-z0-9._]+(:[A-Za-z0-9._]+(-[A-Za-z0-9._]+)*)?$")
DEFAULT_PAPER_BALANCES = {"USDT": Decimal("1000000"), "BTC": Decimal("10")}


class CcxtVenueSettings(_Strict):
    """A real exchange through ccxt: live trading (API key and secret from the environment
    variables NAMED here) or, with ``paper = true``, its live market data matched by our
    simulator (no keys, simulated ``balances``)."""

    # never echo a rejected value back: a misplaced API key must not end up in an error message
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: Annotated[str, Field(pattern=_VENUE_NAME)]
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


_OPTION_LOT = Decimal("0.01")  # contracts of the simulated options venue trade in 0.01


class SimOptionsVenueSettings(_Strict):
    """A simulated options venue (``ems.venues.options_venue``): European puts and calls on the
    base asset of ``underlying_symbol``, settled in its quote currency, quoted from the BTC
    volatility surface at the mid price of ``underlying_symbol`` on the venue named
    ``underlying_venue`` (another entry of ``venues``).

    Strikes are every multiple of ``strike_step`` from ``strikes_below_pct`` % below to
    ``strikes_above_pct`` % above the listing spot (the underlying's first mid, or
    ``listing_spot``, which must be given when the underlying is a ccxt venue: its price is not
    known before it starts); expiries are the next ``weekly_expiries`` Fridays and the last
    Fridays of the next ``monthly_expiries`` months, 08:00 UTC. Quotes are ``spread_bps`` wide
    around the surface's value, ``levels`` deep, ``level_qty`` contracts a level; fees follow
    Deribit (``fee_rate_underlying`` of the underlying, capped at ``fee_cap_premium`` of the
    premium). Defaults are those of ``OptionsVenueConfig``; ``balances`` starts with 10,000,000
    of the quote currency (USDT)."""

    name: Annotated[str, Field(pattern=_VENUE_NAME)]
    kind: Literal["sim_options"]
    underlying_venue: Annotated[str, Field(pattern=_VENUE_NAME)]
    underlying_symbol: str = SPOT_SIM_SYMBOL
    listing_spot: Annotated[Decimal, Field(gt=0)] | None = None
    strike_step: Annotated[Decimal, Field(gt=0, le=1_000_000)] = Decimal(1000)
    strikes_below_pct: Annotated[Decimal, Field(ge=0, lt=100)] = Decimal(50)
    strikes_above_pct: Annotated[Decimal, Field(ge=0, le=1000)] = Decimal(30)
    weekly_expiries: Annotated[int, Field(ge=0, le=52)] = 4
    monthly_expiries: Annotated[int, Field(ge=0, le=36)] = 6
    rights: Annotated[tuple[Literal["put", "call"], ...], Field(min_length=1)] = ("put", "call")
    spread_bps: Annotated[float, Field(ge=0, le=10_000)] = 400.0
    levels: Annotated[int, Field(ge=1, le=100)] = 5
    level_qty: Annotated[Decimal, Field(gt=0, le=1_000_000)] = Decimal(5)
    fee_rate_underlying: Annotated[Decimal, Field(ge=0, le=Decimal("0.01"))] = Decimal("0.0003")
    fee_cap_premium: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.125")
    balances: dict[str, Annotated[Decimal, Field(ge=0)]] | None = None

    @field_validator("underlying_symbol")
    @classmethod
    def _plain_symbol(cls, symbol: str) -> str:
        if not _SYMBOL.match(symbol) or "-" in symbol:
            raise ValueError(
                "must be the unified symbol of a spot or perpetual market, like BTC/USDT or "
                f"BTC/USDT:USDT; got {symbol!r}"
            )
        return symbol

    @model_validator(mode="after")
    def _listing(self) -> SimOptionsVenueSettings:
        if self.weekly_expiries + self.monthly_expiries == 0:
            raise KeyedError(
                "weekly_expiries",
                f"venue {self.name!r} lists no expiry: weekly_expiries and monthly_expiries are "
                "both 0",
            )
        if self.level_qty % _OPTION_LOT != 0:
            raise KeyedError(
                "level_qty",
                f"must be a whole number of {_OPTION_LOT} contracts, got {self.level_qty}",
            )
        if len(set(self.rights)) != len(self.rights):
            raise KeyedError("rights", f"lists a right twice: {list(self.rights)}")
        if self.underlying_venue == self.name:
            raise KeyedError(
                "underlying_venue", f"venue {self.name!r} cannot be its own underlying"
            )
        if self.underlying_asset == self.quote_asset:
            raise KeyedError(
                "underlying_symbol",
                f"{self.underlying_symbol}: the underlying and the quote currency must differ",
            )
        return self

    @property
    def underlying_asset(self) -> str:
        """The base asset of the underlying (``BTC`` for BTC/USDT)."""
        return self.underlying_symbol.split("/")[0]

    @property
    def quote_asset(self) -> str:
        """The currency premiums are paid and settled in (``USDT`` for BTC/USDT)."""
        return self.underlying_symbol.split("/")[1].split(":")[0]

    def starting_balances(self) -> dict[str, Decimal]:
        """``balances``, or 10,000,000 of the quote currency."""
        if self.balances is None:
            return {self.quote_asset: Decimal(10_000_000)}
        return dict(self.balances)

    def to_config(self) -> OptionsVenueConfig:
        """The venue's ``OptionsVenueConfig``."""
        from ems.venues.options_venue import OptionsVenueConfig

        return OptionsVenueConfig(
            name=self.name,
            underlying=self.underlying_asset,
            quote=self.quote_asset,
            strike_step=self.strike_step,
            strikes_below_pct=self.strikes_below_pct,
            strikes_above_pct=self.strikes_above_pct,
            weekly_expiries=self.weekly_expiries,
            monthly_expiries=self.monthly_expiries,
            rights=self.rights,
            spread_bps=self.spread_bps,
            levels=self.levels,
            level_qty=self.level_qty,
            fee_rate_underlying=self.fee_rate_underlying,
            fee_cap_premium=self.fee_cap_premium,
            balances=self.starting_balances(),
        )


def _venue_kind(value: Any) -> str:
    """The ``kind`` of a venue entry; ``"sim"`` when left out."""
    if isinstance(value, dict):
        return str(value.get("kind", "sim"))
    return str(getattr(value, "kind", "sim"))


VenueSettings = Annotated[
    Annotated[SimVenueSettings, Tag("sim")]
    | Annotated[SimOptionsVenueSettings, Tag("sim_options")]
    | Annotated[CcxtVenueSettings, Tag("ccxt")],
    Discriminator(
        _venue_kind,
        custom_error_type="venue_kind",
        custom_error_message=(
            "venue kind must be 'sim' or 'ccxt' (a real exchange), or 'sim_options' (simulated "
            "options)"
        ),
    ),
]
"""One entry of ``venues``: a simulated venue, a simulated options venue or a ccxt exchange,
by ``kind``."""


Ratio = Annotated[Decimal, Field(ge=0, le=2)]


class PhaseCoverageSettings(_Strict):
    """The hedge one market phase requires, as ratios of the spot position (0 to 2 each):
    below ``min_*`` spot buys are held; ``target_*`` is what the hedger aims for."""

    min_basis_ratio: Ratio
    target_basis_ratio: Ratio
    min_put_ratio: Ratio
    target_put_ratio: Ratio

    @model_validator(mode="after")
    def _min_below_target(self) -> PhaseCoverageSettings:
        for leg in ("basis", "put"):
            low, high = getattr(self, f"min_{leg}_ratio"), getattr(self, f"target_{leg}_ratio")
            if low > high:
                raise KeyedError(
                    f"min_{leg}_ratio", f"{low} must not exceed target_{leg}_ratio {high}"
                )
        return self


class PhasesSettings(_Strict):
    """One coverage requirement per market phase; every phase must be given."""

    stress: PhaseCoverageSettings
    clearing: PhaseCoverageSettings
    repair: PhaseCoverageSettings
    confirmed: PhaseCoverageSettings


class CoverageSettings(_Strict):
    """``[hedging.coverage]``: the coverage policy (``risk.coverage.CoveragePolicy``).

    ``drift_tolerance``: how far a leg may sit from its target, as a share of the spot notional;
    ``max_drift_duration``: how many seconds such a drift may last before it is reported."""

    drift_tolerance: Annotated[Decimal, Field(ge=0, lt=1)]
    max_drift_duration: Annotated[float, Field(ge=0, le=30 * 86_400)]
    phases: PhasesSettings

    def to_policy(self) -> CoveragePolicy:
        from risk.coverage import CoveragePolicy, CoveragePolicyError

        try:
            return CoveragePolicy.from_mapping(self.model_dump())
        except CoveragePolicyError as exc:  # the rules above mirror it; this keeps the key
            key, _, message = str(exc).partition(" ")
            if re.fullmatch(r"[a-z_]+(\.[a-z_]+)*:?", key):
                raise KeyedError(key.rstrip(":"), message) from None
            raise


class UnwindSettings(_Strict):
    """``[hedging.unwind]``: how the hedge is released once the bottom is confirmed
    (``risk.unwind.UnwindPlan``): ``steps`` equal steps, at least ``min_interval`` seconds
    apart, on the ``scope`` legs (``basis``, ``puts`` or ``both``)."""

    steps: Annotated[int, Field(ge=1, le=100)] = 4
    min_interval: Annotated[float, Field(ge=0, le=365 * 86_400)] = 86_400.0
    scope: UnwindScope = UnwindScope.BOTH


class PutSettings(_Strict):
    """``[hedging.puts]``: which protective puts are bought (``risk.put_policy.PutPolicy``):
    cover counted by ``notional`` (underlying units) or ``delta``, strikes at least
    ``strike_below_spot_pct`` % below spot, expiries at least ``min_days_to_expiry`` days out,
    rolled with ``roll_days_before_expiry`` days or fewer left."""

    coverage_mode: Literal["notional", "delta"] = "notional"
    strike_below_spot_pct: Annotated[Decimal, Field(ge=0, lt=100)] = Decimal(10)
    min_days_to_expiry: Annotated[int, Field(ge=1, le=3650)] = 30
    roll_days_before_expiry: Annotated[int, Field(ge=0, le=3650)] = 7

    @model_validator(mode="after")
    def _roll_before_horizon(self) -> PutSettings:
        if self.roll_days_before_expiry >= self.min_days_to_expiry:
            raise KeyedError(
                "roll_days_before_expiry",
                f"{self.roll_days_before_expiry} must be below min_days_to_expiry "
                f"({self.min_days_to_expiry}), or a put would be due for a roll when bought",
            )
        return self

    def to_policy(self) -> PutPolicy:
        from risk.put_policy import PutPolicy

        return PutPolicy(
            coverage_mode=self.coverage_mode,
            strike_below_spot_pct=self.strike_below_spot_pct,
            min_days_to_expiry=self.min_days_to_expiry,
            roll_days_before_expiry=self.roll_days_before_expiry,
        )


AlgoParams = dict[str, bool | int | float | str]
DEFAULT_PUT_PARAMS: AlgoParams = {"max_gap_bps": 2000, "max_depth_bps": 3000}
"""Options books are wide: put hedges may cross further than the pricing defaults allow."""
_ASSET = r"^[A-Z0-9]{2,12}$"


class HedgingSettings(_Strict):
    """``[hedging]``: keep a basis short and protective puts against the ``asset`` accumulated
    (``ems.hedging.HedgeConfig``).

    - ``spot_symbol``: the spot market of ``asset`` whose fills are hedged and whose price values
      the hedge (on every venue listing it);
    - ``hedge_symbol``: the perpetual or dated future of ``asset`` shorted, on every venue
      listing it;
    - ``initial_phase``: the market phase at start (``stress``, ``clearing``, ``repair`` or
      ``confirmed``; a phase set later is stored and survives restarts);
    - ``auto_unwind``: take unwind steps as soon as allowed (else only on request);
    - ``hedge_window_s``: how long a hedge parent may stay live;
    - ``basis_params`` / ``put_params``: pricing keys of the hedge algorithm on each leg
      (``max_gap_bps``, ``max_depth_bps``, ``min_rest_s``, ``reprice_ticks``);
    - ``[hedging.coverage]``, ``[hedging.unwind]``, ``[hedging.puts]``: see their sections;
      ``[hedging.puts]`` is required when a phase asks for put cover.
    """

    asset: Annotated[str, Field(pattern=_ASSET)]
    spot_symbol: str
    hedge_symbol: str
    initial_phase: MarketPhase = MarketPhase.STRESS
    auto_unwind: bool = True
    hedge_window_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    coverage: CoverageSettings
    unwind: UnwindSettings = Field(default_factory=UnwindSettings)
    puts: PutSettings | None = None
    basis_params: AlgoParams = Field(default_factory=dict)
    put_params: AlgoParams = Field(default_factory=lambda: dict(DEFAULT_PUT_PARAMS))

    @field_validator("spot_symbol")
    @classmethod
    def _spot(cls, symbol: str) -> str:
        if not _SYMBOL.match(symbol) or ":" in symbol:
            raise ValueError(f"must be a spot symbol like BTC/USDT, got {symbol!r}")
        return symbol

    @field_validator("hedge_symbol")
    @classmethod
    def _derivative(cls, symbol: str) -> str:
        if not _SYMBOL.match(symbol) or ":" not in symbol or _is_option_symbol(symbol):
            raise ValueError(
                "must be a perpetual or dated future, like BTC/USDT:USDT or "
                f"BTC/USDT:USDT-250328; got {symbol!r}"
            )
        return symbol

    @field_validator("basis_params", "put_params")
    @classmethod
    def _hedge_algo_params(cls, params: AlgoParams) -> AlgoParams:
        from algos.hedge import HedgeParams
        from ems.errors import InvalidOrder

        try:
            HedgeParams.from_mapping(params)
        except InvalidOrder as exc:
            key = (exc.field or "").removeprefix("algo_params.")
            if key:
                raise KeyedError(key, str(exc)) from None
            raise ValueError(str(exc)) from None
        return params

    @model_validator(mode="after")
    def _consistent(self) -> HedgingSettings:
        for key in ("spot_symbol", "hedge_symbol"):
            base = getattr(self, key).split("/")[0]
            if base != self.asset:
                raise KeyedError(
                    key, f"{getattr(self, key)} does not trade {self.asset} (the hedged asset)"
                )
        if self.puts is None:
            for phase, ratios in self.coverage.phases:
                for ratio in ("min_put_ratio", "target_put_ratio"):
                    if getattr(ratios, ratio) > 0:
                        raise KeyedError(
                            "puts",
                            f"missing: hedging.coverage.phases.{phase}.{ratio} asks for put "
                            "cover, so [hedging.puts] must say which puts to buy (or set the "
                            "put ratios to 0)",
                        )
        self.coverage.to_policy()
        return self

    @property
    def needs_puts(self) -> bool:
        """Whether some phase asks for put cover."""
        return any(
            ratios.min_put_ratio > 0 or ratios.target_put_ratio > 0
            for _, ratios in self.coverage.phases
        )

    def to_hedge_config(self) -> HedgeConfig:
        """The manager's ``HedgeConfig``."""
        from ems.hedging import HedgeConfig
        from risk.unwind import UnwindPlan

        return HedgeConfig(
            asset=self.asset,
            spot_symbol=self.spot_symbol,
            hedge_symbol=self.hedge_symbol,
            policy=self.coverage.to_policy(),
            unwind=UnwindPlan(
                steps=self.unwind.steps,
                min_interval=timedelta(seconds=self.unwind.min_interval),
                scope=self.unwind.scope,
            ),
            puts=None if self.puts is None else self.puts.to_policy(),
            initial_phase=self.initial_phase,
            auto_unwind=self.auto_unwind,
            hedge_window=timedelta(seconds=self.hedge_window_s),
            basis_params=dict(self.basis_params),
            put_params=dict(self.put_params),
        )


_OPTION_SYMBOL = re.compile(r"-\d{6}-\d+(\.\d+)?-[PC]$")


def _is_option_symbol(symbol: str) -> bool:
    return bool(_OPTION_SYMBOL.search(symbol))


def _hedged(
    min_basis: str, target_basis: str, min_put: str, target_put: str
) -> PhaseCoverageSettings:
    return PhaseCoverageSettings(
        min_basis_ratio=Decimal(min_basis),
        target_basis_ratio=Decimal(target_basis),
        min_put_ratio=Decimal(min_put),
        target_put_ratio=Decimal(target_put),
    )


DEFAULT_HEDGING = HedgingSettings(
    asset="BTC",
    spot_symbol=SPOT_SIM_SYMBOL,
    hedge_symbol=PERP_SIM_SYMBOL,
    initial_phase=MarketPhase.STRESS,
    auto_unwind=True,
    coverage=CoverageSettings(
        drift_tolerance=Decimal("0.02"),
        max_drift_duration=900.0,
        phases=PhasesSettings(
            stress=_hedged("0.8", "1.0", "0.3", "0.5"),
            clearing=_hedged("0.8", "1.0", "0.3", "0.5"),
            repair=_hedged("0.6", "0.8", "0.2", "0.3"),
            confirmed=_hedged("0", "0", "0", "0"),
        ),
    ),
    unwind=UnwindSettings(steps=4, min_interval=86_400.0, scope=UnwindScope.BOTH),
    puts=PutSettings(
        coverage_mode="notional",
        strike_below_spot_pct=Decimal(10),
        min_days_to_expiry=30,
        roll_days_before_expiry=7,
    ),
)
"""The hedging of the embedded default desk: BTC against the USDⓈ-M perpetual and puts; in
stress and clearing a basis short of 0.8 (target 1.0) and puts on 0.3 (target 0.5) of the
spot, in repair 0.6/0.8 and 0.2/0.3, none once confirmed; drift 2 % of spot for at most 15
minutes; unwound in 4 steps a day apart; puts by notional, 10 % below spot, at least 30 days
out, rolled with 7 days left."""

DEFAULT_VENUES: tuple[SimVenueSettings | SimOptionsVenueSettings, ...] = (
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
    SimVenueSettings.model_validate({"name": "binance-usdm-sim", "market": "perpetual"}),
    SimOptionsVenueSettings(
        name="options-sim",
        kind="sim_options",
        underlying_venue="binance-sim",
        underlying_symbol=SPOT_SIM_SYMBOL,
    ),
)
"""The venues of the embedded default desk: Binance spot BTC/USDT replayed (and a thinner copy
half a dollar up), a synthetic spot market, the Binance USDⓈ-M perpetual replayed over the same
minutes, and simulated options on BTC priced off ``binance-sim``."""


class Settings(_Strict):
    database_url: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    step_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    in_flight_grace_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    limit_collar: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.10")
    max_venue_share: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.6")
    refit_interval_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    venues: tuple[VenueSettings, ...] = DEFAULT_VENUES
    hedging: HedgingSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_desk(cls, data: Any) -> Any:
        """Neither ``venues`` nor ``hedging`` given: the hedged default desk; ``hedging =
        false``: no hedging."""
        if not isinstance(data, dict):
            return data
        if "hedging" not in data and "venues" not in data:
            return {**data, "hedging": DEFAULT_HEDGING}
        if data.get("hedging") is False:
            return {**data, "hedging": None}
        return data

    @field_validator("hedging", mode="before")
    @classmethod
    def _hedging_table(cls, value: Any) -> Any:
        if value is True:
            raise ValueError(
                "give a [hedging] table (see config/ems.example.toml), or hedging = false for "
                "no hedging"
            )
        return value

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

    @model_validator(mode="after")
    def _options_underlyings(self) -> Settings:
        by_name = {v.name: v for v in self.venues}
        for index, venue in enumerate(self.venues):
            if not isinstance(venue, SimOptionsVenueSettings):
                continue
            at = f"venues.{index}.sim_options"
            underlying = by_name.get(venue.underlying_venue)
            if underlying is None:
                raise KeyedError(
                    f"{at}.underlying_venue",
                    f"venue {venue.name!r} prices off {venue.underlying_venue!r}, which is not "
                    f"configured (venues: {', '.join(by_name)})",
                )
            if isinstance(underlying, SimOptionsVenueSettings):
                raise KeyedError(
                    f"{at}.underlying_venue",
                    f"venue {venue.name!r} prices off options venue {underlying.name!r}; the "
                    "underlying must be a spot or perpetual venue",
                )
            if venue.underlying_symbol not in underlying.symbols:
                raise KeyedError(
                    f"{at}.underlying_symbol",
                    f"venue {underlying.name!r} does not list {venue.underlying_symbol} (it lists "
                    f"{', '.join(underlying.symbols)})",
                )
            if isinstance(underlying, CcxtVenueSettings) and venue.listing_spot is None:
                raise KeyedError(
                    f"{at}.listing_spot",
                    f"venue {venue.name!r} prices off ccxt venue {underlying.name!r}, whose price "
                    "is not known before it starts: set listing_spot (the price to list strikes "
                    "around and anchor the volatility surface at)",
                )
        return self

    @model_validator(mode="after")
    def _hedge_venues(self) -> Settings:
        hedging = self.hedging
        if hedging is None:
            return self
        listed = [v for v in self.venues if not isinstance(v, SimOptionsVenueSettings)]
        for key in ("spot_symbol", "hedge_symbol"):
            symbol = getattr(hedging, key)
            if not any(symbol in v.symbols for v in listed):
                offered = sorted({s for v in listed for s in v.symbols})
                raise KeyedError(
                    f"hedging.{key}",
                    f"no venue lists {symbol} (the venues list {', '.join(offered)})",
                )
        if hedging.needs_puts and not self._lists_options(hedging.asset):
            raise KeyedError(
                "hedging.puts",
                f"the coverage policy asks for put cover, but no venue lists {hedging.asset} "
                "options: add a venue with kind = 'sim_options' (or a ccxt venue listing them), "
                "or set the put ratios to 0",
            )
        return self

    def _lists_options(self, asset: str) -> bool:
        for venue in self.venues:
            if isinstance(venue, SimOptionsVenueSettings):
                if venue.underlying_asset == asset:
                    return True
            elif any(_is_option_symbol(s) and s.split("/")[0] == asset for s in venue.symbols):
                return True
        return False


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
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise SettingsError(f"invalid settings: {problems}") from exc


def _problem(err: Any) -> str:
    """One validation error as ``dotted.key: message``."""
    loc = [str(part) for part in err["loc"]]
    message = err["msg"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        loc.extend(cause.key.split("."))
        message = str(cause)
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return f"{'.'.join(loc) or 'settings'}: {message}"


def _database_url_from_env() -> str | None:
    secret_file = os.environ.get("EMS_DATABASE_URL_FILE")
    if secret_file:
        return Path(secret_file).read_text().strip()
    return os.environ.get("EMS_DATABASE_URL")
