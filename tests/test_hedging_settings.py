"""The ``[hedging]`` section and the ``sim_options`` venue kind: validation that names the key,
the hedged default desk and the manager the composition root builds from it."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ems.clock import TestClock
from ems.domain import InstrumentKind, OptionRight, Side
from ems.hedging import HedgeConfig
from ems.intake import NewParent
from ems.main import (
    build_manager,
    build_venue,
    build_venues,
    looped_recording,
    recording_of,
    replay_window,
)
from ems.orders import ParentRole
from ems.settings import (
    DEFAULT_HEDGING,
    PERP_SIM_SYMBOL,
    SPOT_SIM_SYMBOL,
    Settings,
    SettingsError,
    SimOptionsVenueSettings,
    SimVenueSettings,
    load_settings,
)
from ems.store import SqlStore
from ems.venues.options_venue import OptionsVenueConfig, SimOptionsVenue
from ems.venues.replay import BookSnapshot
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config, binance_usdm_config
from risk.coverage import CoveragePolicy, CoverageRequirement
from risk.put_policy import PutPolicy
from risk.types import MarketPhase
from risk.unwind import UnwindPlan, UnwindScope

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "ems.example.toml"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
D = Decimal
DELETE = object()
SPOT, PERP, OPTIONS = "binance-sim", "binance-usdm-sim", "options-sim"


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE_CONFIG.read_text())


def with_changes(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with each dotted path set to its value (``DELETE``: removed); a number in the
    path indexes a list."""
    raw = copy.deepcopy(raw)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return raw


def load(raw: dict[str, Any]) -> Settings:
    return load_settings(None, **raw)


def requirement(min_basis: str, target_basis: str, min_put: str, target_put: str) -> Any:
    return CoverageRequirement(D(min_basis), D(target_basis), D(min_put), D(target_put))


DOCUMENTED = HedgeConfig(
    asset="BTC",
    spot_symbol="BTC/USDT",
    hedge_symbol="BTC/USDT:USDT",
    policy=CoveragePolicy(
        {
            MarketPhase.STRESS: requirement("0.8", "1", "0.3", "0.5"),
            MarketPhase.CLEARING: requirement("0.8", "1", "0.3", "0.5"),
            MarketPhase.REPAIR: requirement("0.6", "0.8", "0.2", "0.3"),
            MarketPhase.CONFIRMED: requirement("0", "0", "0", "0"),
        },
        drift_tolerance=D("0.02"),
        max_drift_duration=timedelta(seconds=900),
    ),
    unwind=UnwindPlan(steps=4, min_interval=timedelta(hours=24), scope=UnwindScope.BOTH),
    puts=PutPolicy(
        coverage_mode="notional",
        strike_below_spot_pct=D(10),
        min_days_to_expiry=30,
        roll_days_before_expiry=7,
    ),
    initial_phase=MarketPhase.STRESS,
    auto_unwind=True,
    hedge_window=timedelta(minutes=10),
    basis_params={},
    put_params={"max_gap_bps": 2000, "max_depth_bps": 3000},
)
"""The default hedging as documented (config/ems.example.toml, ``DEFAULT_HEDGING``)."""


# ------------------------------------------------------------------------------- defaults
def test_the_default_desk_is_hedged_with_the_documented_policy() -> None:
    settings = load_settings(None)

    assert settings.hedging == DEFAULT_HEDGING
    assert settings.hedging.to_hedge_config() == DOCUMENTED
    assert [v.name for v in settings.venues] == [
        "binance-sim",
        "binance-sim-thin",
        "synthetic-sim",
        PERP,
        OPTIONS,
    ]
    perp = settings.venues[3]
    options = settings.venues[4]
    assert isinstance(perp, SimVenueSettings) and perp.market == "perpetual"
    assert perp.source == "recording" and perp.recording == "sample"
    assert isinstance(options, SimOptionsVenueSettings)
    assert (options.underlying_venue, options.underlying_symbol) == (SPOT, "BTC/USDT")


def test_the_example_config_loads_with_the_default_hedging() -> None:
    settings = load_settings(EXAMPLE_CONFIG)

    assert settings.hedging is not None
    assert settings.hedging.to_hedge_config() == DOCUMENTED
    assert [v.name for v in settings.venues] == [v.name for v in Settings().venues]


def test_hedging_is_off_when_venues_are_given_without_it_or_turned_off() -> None:
    assert load_settings(None, venues=[{"name": "spot"}]).hedging is None
    assert load_settings(None, hedging=False).hedging is None
    assert Settings(venues=(SimVenueSettings(name="spot"),)).hedging is None


def test_a_hedging_table_alone_hedges_the_default_venues(tmp_path: Path) -> None:
    config = tmp_path / "ems.toml"
    config.write_text(
        '[hedging]\nasset = "BTC"\nspot_symbol = "BTC/USDT"\nhedge_symbol = "BTC/USDT:USDT"\n'
        "[hedging.coverage]\ndrift_tolerance = 0.05\nmax_drift_duration = 60\n"
        + "".join(
            f"[hedging.coverage.phases.{phase}]\nmin_basis_ratio = 0.5\ntarget_basis_ratio = 1\n"
            "min_put_ratio = 0\ntarget_put_ratio = 0\n"
            for phase in ("stress", "clearing", "repair", "confirmed")
        )
    )

    settings = load_settings(config)
    assert settings.hedging is not None
    hedge = settings.hedging.to_hedge_config()

    assert [v.name for v in settings.venues] == [v.name for v in Settings().venues]
    assert hedge.puts is None and hedge.unwind == UnwindPlan()
    assert hedge.policy.requirement(MarketPhase.REPAIR).min_basis_ratio == D("0.5")
    assert hedge.policy.drift_tolerance == D("0.05")


def test_options_settings_default_to_the_options_venue_config() -> None:
    spec = SimOptionsVenueSettings(name="opts", kind="sim_options", underlying_venue=SPOT)

    assert spec.to_config() == OptionsVenueConfig(name="opts", balances={"USDT": D(10_000_000)})


@pytest.mark.parametrize("market", ["spot", "perpetual"])
def test_sim_settings_name_the_symbol_their_venue_lists(market: str) -> None:
    spec = SimVenueSettings.model_validate({"name": "v", "market": market, "source": "synthetic"})

    venue = build_venue(spec, TestClock(T0))

    assert tuple(venue.instruments()) == spec.symbols
    assert spec.symbols == ((PERP_SIM_SYMBOL,) if market == "perpetual" else (SPOT_SIM_SYMBOL,))


# ------------------------------------------------------------------------------ validation
OPTS = "venues.4"  # options-sim in the example config
OPTS_KEY = "venues.4.sim_options"


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        # [hedging]
        ({"hedging": True}, "hedging", "give a [hedging] table"),
        ({"hedging.phase": "stress"}, "hedging.phase", "Extra inputs"),
        ({"hedging.asset": "btc"}, "hedging.asset", "should match pattern"),
        ({"hedging.asset": DELETE}, "hedging.asset", "Field required"),
        ({"hedging.spot_symbol": "BTC/USDT:USDT"}, "hedging.spot_symbol", "spot symbol"),
        ({"hedging.spot_symbol": "ETH/USDT"}, "hedging.spot_symbol", "does not trade BTC"),
        ({"hedging.spot_symbol": "BTC/USDC"}, "hedging.spot_symbol", "no venue lists BTC/USDC"),
        ({"hedging.hedge_symbol": "BTC/USDT"}, "hedging.hedge_symbol", "perpetual or dated"),
        (
            {"hedging.hedge_symbol": "BTC/USDT:USDT-300329-50000-P"},
            "hedging.hedge_symbol",
            "perpetual or dated future",
        ),
        (
            {"hedging.hedge_symbol": "BTC/USDT:USDT-300329"},
            "hedging.hedge_symbol",
            "no venue lists BTC/USDT:USDT-300329",
        ),
        ({"hedging.initial_phase": "panic"}, "hedging.initial_phase", "'stress'"),
        ({"hedging.auto_unwind": "maybe"}, "hedging.auto_unwind", "boolean"),
        ({"hedging.hedge_window_s": 0}, "hedging.hedge_window_s", "greater than 0"),
        ({"hedging.put_params.max_gap_bps": 0}, "hedging.put_params.max_gap_bps", "above 0"),
        (
            {"hedging.basis_params.urgency": 2},
            "hedging.basis_params.urgency",
            "unknown hedge parameter",
        ),
        # [hedging.coverage]
        ({"hedging.coverage": DELETE}, "hedging.coverage", "Field required"),
        ({"hedging.coverage.drift_tolerance": 1}, "hedging.coverage.drift_tolerance", "less"),
        (
            {"hedging.coverage.max_drift_duration": -1},
            "hedging.coverage.max_drift_duration",
            "greater than or equal to 0",
        ),
        (
            {"hedging.coverage.phases.stress.min_basis_ratio": 3},
            "hedging.coverage.phases.stress.min_basis_ratio",
            "less than or equal to 2",
        ),
        (
            {"hedging.coverage.phases.clearing.target_put_ratio": "lots"},
            "hedging.coverage.phases.clearing.target_put_ratio",
            "decimal",
        ),
        (
            {"hedging.coverage.phases.repair.min_put_ratio": 0.5},
            "hedging.coverage.phases.repair.min_put_ratio",
            "0.5 must not exceed target_put_ratio 0.3",
        ),
        (
            {"hedging.coverage.phases.stress.min_basis_ratio": 1.2},
            "hedging.coverage.phases.stress.min_basis_ratio",
            "must not exceed target_basis_ratio",
        ),
        (
            {"hedging.coverage.phases.confirmed": DELETE},
            "hedging.coverage.phases.confirmed",
            "Field required",
        ),
        (
            {"hedging.coverage.phases.bottom": {}},
            "hedging.coverage.phases.bottom",
            "Extra inputs",
        ),
        (
            {"hedging.coverage.phases.stress.max_basis_ratio": 1},
            "hedging.coverage.phases.stress.max_basis_ratio",
            "Extra inputs",
        ),
        (
            {"hedging.coverage.phases.stress.target_put_ratio": DELETE},
            "hedging.coverage.phases.stress.target_put_ratio",
            "Field required",
        ),
        # [hedging.unwind]
        ({"hedging.unwind.steps": 0}, "hedging.unwind.steps", "greater than or equal to 1"),
        ({"hedging.unwind.min_interval": -5}, "hedging.unwind.min_interval", "greater"),
        ({"hedging.unwind.scope": "all"}, "hedging.unwind.scope", "'basis', 'puts' or 'both'"),
        # [hedging.puts]
        ({"hedging.puts.coverage_mode": "gamma"}, "hedging.puts.coverage_mode", "'notional'"),
        (
            {"hedging.puts.strike_below_spot_pct": 100},
            "hedging.puts.strike_below_spot_pct",
            "less than 100",
        ),
        ({"hedging.puts.min_days_to_expiry": 0}, "hedging.puts.min_days_to_expiry", "greater"),
        (
            {"hedging.puts.roll_days_before_expiry": 30},
            "hedging.puts.roll_days_before_expiry",
            "30 must be below min_days_to_expiry (30)",
        ),
        (
            {"hedging.puts": DELETE},
            "hedging.puts",
            "hedging.coverage.phases.stress.min_put_ratio asks for put cover",
        ),
        (
            {"venues": example()["venues"][:4]},
            "hedging.puts",
            "no venue lists BTC options",
        ),
        # a sim_options venue
        ({f"{OPTS}.kind": "options"}, "venues.4", "venue kind must be"),
        ({f"{OPTS}.strike_spacing": 500}, f"{OPTS_KEY}.strike_spacing", "Extra inputs"),
        ({f"{OPTS}.underlying_venue": DELETE}, f"{OPTS_KEY}.underlying_venue", "Field required"),
        (
            {f"{OPTS}.underlying_venue": "nope"},
            f"{OPTS_KEY}.underlying_venue",
            "prices off 'nope', which is not configured",
        ),
        (
            {f"{OPTS}.underlying_venue": "options-sim"},
            f"{OPTS_KEY}.underlying_venue",
            "cannot be its own underlying",
        ),
        (
            {f"{OPTS}.underlying_symbol": "BTC/USDT:USDT"},
            f"{OPTS_KEY}.underlying_symbol",
            "'binance-sim' does not list BTC/USDT:USDT (it lists BTC/USDT)",
        ),
        ({f"{OPTS}.underlying_symbol": "BTCUSDT"}, f"{OPTS_KEY}.underlying_symbol", "unified"),
        ({f"{OPTS}.underlying_symbol": "USDT/USDT"}, f"{OPTS_KEY}.underlying_symbol", "differ"),
        ({f"{OPTS}.listing_spot": "0"}, f"{OPTS_KEY}.listing_spot", "greater than 0"),
        ({f"{OPTS}.strike_step": "0"}, f"{OPTS_KEY}.strike_step", "greater than 0"),
        ({f"{OPTS}.strikes_below_pct": 100}, f"{OPTS_KEY}.strikes_below_pct", "less than 100"),
        ({f"{OPTS}.strikes_above_pct": -1}, f"{OPTS_KEY}.strikes_above_pct", "greater"),
        (
            {f"{OPTS}.weekly_expiries": 0, f"{OPTS}.monthly_expiries": 0},
            f"{OPTS_KEY}.weekly_expiries",
            "lists no expiry",
        ),
        ({f"{OPTS}.monthly_expiries": -1}, f"{OPTS_KEY}.monthly_expiries", "greater"),
        ({f"{OPTS}.rights": []}, f"{OPTS_KEY}.rights", "at least 1 item"),
        ({f"{OPTS}.rights": ["put", "put"]}, f"{OPTS_KEY}.rights", "lists a right twice"),
        ({f"{OPTS}.rights": ["straddle"]}, f"{OPTS_KEY}.rights.0", "'put' or 'call'"),
        ({f"{OPTS}.spread_bps": -1}, f"{OPTS_KEY}.spread_bps", "greater than or equal to 0"),
        ({f"{OPTS}.levels": 0}, f"{OPTS_KEY}.levels", "greater than or equal to 1"),
        ({f"{OPTS}.level_qty": "0.005"}, f"{OPTS_KEY}.level_qty", "whole number of 0.01"),
        ({f"{OPTS}.fee_cap_premium": 2}, f"{OPTS_KEY}.fee_cap_premium", "less than or equal"),
        ({f"{OPTS}.balances": {"USDT": "-1"}}, f"{OPTS_KEY}.balances.USDT", "greater"),
    ],
)
def test_every_hedging_and_options_error_names_its_key(
    changes: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load(with_changes(example(), changes))

    text = str(raised.value)
    assert f"{key}: " in text, text
    assert message in text, text


def test_an_options_venue_on_a_ccxt_venue_needs_a_listing_spot() -> None:
    paper = {
        "name": "paper",
        "kind": "ccxt",
        "exchange": "binance",
        "symbols": ["BTC/USDT"],
        "paper": True,
    }
    options = {"name": "opts", "kind": "sim_options", "underlying_venue": "paper"}

    with pytest.raises(SettingsError, match=r"venues\.1\.sim_options\.listing_spot: "):
        load_settings(None, venues=[paper, options])
    settings = load_settings(None, venues=[paper, {**options, "listing_spot": "60000"}])
    assert isinstance(settings.venues[1], SimOptionsVenueSettings)


# ------------------------------------------------------------------------ replay alignment
def test_looped_spot_and_perpetual_recordings_share_one_shift_on_every_pass() -> None:
    spot = recording_of(SimVenueSettings(name="s"))
    perp = recording_of(SimVenueSettings.model_validate({"name": "p", "market": "perpetual"}))
    window = replay_window(spot, perp)
    start = T0

    for events in (spot, perp):
        loop = looped_recording(events, start, window)
        replayed = list(itertools.takewhile(lambda e: e.ts < start + 2 * window.period, loop))
        recorded = [e for e in events if window.origin < e.ts <= window.end]
        for n_pass in range(2):
            opens = start + n_pass * window.period
            this_pass = [e for e in replayed if opens <= e.ts < opens + window.period]
            assert isinstance(this_pass[0], BookSnapshot) and this_pass[0].ts == opens
            after_origin = [e for e in this_pass if e.ts > opens]
            assert len(after_origin) == len(recorded)
            shifts = {r.ts - e.ts for e, r in zip(recorded, after_origin, strict=True)}
            assert shifts == {start - window.origin + n_pass * window.period}


def test_disjoint_recordings_have_no_shared_window() -> None:
    spot = recording_of(SimVenueSettings(name="s"))
    a_day_later = [dataclasses.replace(e, ts=e.ts + timedelta(days=1)) for e in spot]

    with pytest.raises(ValueError, match="share no time"):
        replay_window(spot, a_day_later)


async def test_the_default_desk_replays_spot_and_perpetual_books_in_step() -> None:
    """At the same replay time the looped books are the recorded books of the same instant."""
    clock = TestClock(T0)
    desk = build_venues(Settings(), clock)
    spot_spec = SimVenueSettings(name=SPOT)
    perp_spec = SimVenueSettings.model_validate({"name": PERP, "market": "perpetual"})
    spot_events, perp_events = recording_of(spot_spec), recording_of(perp_spec)
    window = replay_window(spot_events, perp_events)
    symbols = {SPOT: SPOT_SIM_SYMBOL, PERP: PERP_SIM_SYMBOL}

    for n_pass in range(2):
        ref_clock = TestClock(window.origin)
        references = {  # the recordings as recorded, not looped
            SPOT: SimVenue(binance_btcusdt_config(SPOT), ref_clock, {SPOT_SIM_SYMBOL: spot_events}),
            PERP: SimVenue(binance_usdm_config(PERP), ref_clock, {PERP_SIM_SYMBOL: perp_events}),
        }
        for seconds in (1, 90, 200, 330):
            offset = timedelta(seconds=seconds)
            clock.set(T0 + n_pass * window.period + offset)
            ref_clock.set(window.origin + offset)
            for name, symbol in symbols.items():
                book = await desk.venues[name].order_book(symbol, 10)
                reference = await references[name].order_book(symbol, 10)
                assert (book.bids, book.asks) == (reference.bids, reference.asks), (
                    name,
                    n_pass,
                    seconds,
                )


# --------------------------------------------------------------------------- the default desk
@pytest.fixture
def sqlite_store(tmp_path: Path) -> Any:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'ems.db'}")
    yield store
    store.close()


async def test_the_default_build_has_perpetual_and_options_sims_and_a_hedge_desk(
    sqlite_store: SqlStore,
) -> None:
    clock = TestClock(T0)

    manager = build_manager(Settings(), sqlite_store, clock)

    perp, options, spot = manager.venues[PERP], manager.venues[OPTIONS], manager.venues[SPOT]
    assert isinstance(perp, SimVenue) and isinstance(options, SimOptionsVenue)
    assert perp.instruments()[PERP_SIM_SYMBOL].kind is InstrumentKind.PERPETUAL
    assert manager.hedge is not None and manager.hedge.config == DOCUMENTED
    spot_book = await spot.order_book(SPOT_SIM_SYMBOL, 1)
    assert spot_book.mid is not None
    surface = manager.hedge.surface
    assert surface is not None and surface.reference_spot is not None
    assert abs(D(surface.reference_spot) - spot_book.mid) < 50  # anchored at the first mid
    puts = [
        i
        for i in options.instruments().values()
        if i.right is OptionRight.PUT
        and i.strike is not None
        and i.strike <= spot_book.mid * D("0.9")
        and i.expiry is not None
        and i.expiry >= T0 + timedelta(days=30)
    ]
    assert puts, "the options sim lists the puts the policy buys"
    perp_book = await perp.order_book(PERP_SIM_SYMBOL, 1)
    assert perp_book.mid is not None and abs(perp_book.mid - spot_book.mid) < 100


async def test_a_desk_without_hedging_has_no_hedge_desk(sqlite_store: SqlStore) -> None:
    settings = load_settings(None, venues=[{"name": SPOT, "source": "synthetic"}])

    manager = build_manager(settings, sqlite_store, TestClock(T0))

    assert manager.hedge is None and manager.config.hedging is None


async def test_the_default_desk_hedges_a_spot_buy_within_the_stress_minimum(
    sqlite_store: SqlStore,
) -> None:
    clock = TestClock(T0)
    manager = build_manager(Settings(), sqlite_store, clock)
    await manager.recover()
    stress = DOCUMENTED.policy.requirement(MarketPhase.STRESS)
    parent, _ = await manager.submit(
        NewParent(
            "acc-1",
            SPOT_SIM_SYMBOL,
            Side.BUY,
            D("0.2"),
            "twap",
            clock.now() + timedelta(minutes=1),
            algo_params={"slice_interval_s": 10},
        )
    )

    while clock.now() < T0 + timedelta(seconds=45):
        clock.advance(timedelta(milliseconds=500))
        await manager.step()
        exposure = await manager.coverage_exposure()
        assert exposure is not None
        assert exposure.perp_short_qty >= stress.min_basis_ratio * exposure.spot_qty, exposure
        assert exposure.put_cover_qty >= stress.min_put_ratio * exposure.spot_qty, exposure

    exposure = await manager.coverage_exposure()
    assert exposure is not None and exposure.spot_qty > 0
    assert exposure.perp_short_qty / exposure.spot_qty >= stress.min_basis_ratio
    assert exposure.put_cover_qty / exposure.spot_qty >= stress.min_put_ratio
    parents = sqlite_store.list_parents(limit=200)
    shorts = [p for p in parents if p.role is ParentRole.BASIS_HEDGE]
    puts = [p for p in parents if p.role is ParentRole.PUT_HEDGE]
    assert shorts and {(p.symbol, p.venues) for p in shorts} == {(PERP_SIM_SYMBOL, (PERP,))}
    assert puts and all(p.venues == (OPTIONS,) for p in puts)
    assert sum(p.filled_qty for p in shorts) == exposure.perp_short_qty
    done = manager.parent(parent.id)
    assert done is not None and done.filled_qty == exposure.spot_qty
