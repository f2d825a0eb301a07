"""A hedged desk for tests: recorded Binance spot and USDⓈ-M perpetual (the same minutes) and a
simulated options venue quoting from the volatility surface, behind one real manager."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import cache

import pytest

from ems.clock import TestClock
from ems.hedging import HedgeConfig, HedgeExposure
from ems.manager import ManagerConfig, ParentOrderManager
from ems.ports import StorePort
from ems.venues.options_venue import OptionsVenueConfig, SimOptionsVenue, underlying_mid
from ems.venues.replay import BookSnapshot, MarketEvent, load_recorded
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config, binance_usdm_config
from risk.coverage import CoveragePolicy
from risk.put_policy import PutPolicy
from risk.types import MarketPhase
from risk.unwind import UnwindPlan
from risk.vol_surface import VolSurface
from tests.replay_support import SHARED_MARKET, snapshot_time, spot_recording

USDM_FILE = SHARED_MARKET / "binance-usdm-btcusdt-20240808.gz"
SPOT, PERP, OPTIONS = "binance-sim", "binance-usdm-sim", "options-sim"
SPOT_SYMBOL, PERP_SYMBOL = "BTC/USDT", "BTC/USDT:USDT"

HEDGED = {
    "min_basis_ratio": 0.8,
    "target_basis_ratio": 1.0,
    "min_put_ratio": 0.3,
    "target_put_ratio": 0.5,
}
POLICY = CoveragePolicy.from_mapping(
    {
        "drift_tolerance": 0.02,
        "max_drift_duration": 120,
        "phases": {
            "stress": HEDGED,
            "clearing": HEDGED,
            "repair": HEDGED,
            "confirmed": {
                "min_basis_ratio": 0,
                "target_basis_ratio": 0,
                "min_put_ratio": 0,
                "target_put_ratio": 0,
            },
        },
    }
)
PUTS = PutPolicy(
    strike_below_spot_pct=Decimal(10), min_days_to_expiry=20, roll_days_before_expiry=5
)


@cache
def _usdm_events() -> tuple[MarketEvent, ...]:
    return tuple(load_recorded(USDM_FILE))


def usdm_recording() -> list[MarketEvent]:
    if not USDM_FILE.is_file():
        pytest.skip(f"recorded market data not found at {USDM_FILE}")
    return list(_usdm_events())


@dataclass
class HedgedDesk:
    manager: ParentOrderManager
    clock: TestClock
    spot: SimVenue
    perp: SimVenue
    options: SimOptionsVenue


def hedge_config(**changes: object) -> HedgeConfig:
    values: dict[str, object] = {
        "asset": "BTC",
        "spot_symbol": SPOT_SYMBOL,
        "hedge_symbol": PERP_SYMBOL,
        "policy": POLICY,
        "unwind": UnwindPlan(steps=4, min_interval=timedelta(seconds=60)),
        "puts": PUTS,
        "initial_phase": MarketPhase.STRESS,
    }
    values.update(changes)
    return HedgeConfig(**values)  # type: ignore[arg-type]


def hedged_desk(store: StorePort, config: HedgeConfig | None = None) -> HedgedDesk:
    """Spot + perpetual + options venues on the test clock, two seconds after both books start."""
    spot_events, perp_events = spot_recording(), usdm_recording()
    start = max(snapshot_time(spot_events), snapshot_time(perp_events)) + timedelta(seconds=2)
    clock = TestClock(start)
    spot = SimVenue(binance_btcusdt_config(SPOT), clock, {SPOT_SYMBOL: spot_events})
    perp = SimVenue(binance_usdm_config(PERP), clock, {PERP_SYMBOL: perp_events})
    snapshot = next(e for e in spot_events if isinstance(e, BookSnapshot))
    listing_spot = (snapshot.bids[0][0] + snapshot.asks[0][0]) / 2
    surface = VolSurface().anchored(float(listing_spot))
    options = SimOptionsVenue(
        OptionsVenueConfig(name=OPTIONS, balances={"USDT": Decimal(2_000_000)}),
        clock,
        surface,
        underlying_mid(spot, SPOT_SYMBOL),
        listing_spot,
    )
    manager = ParentOrderManager(
        store,
        {SPOT: spot, PERP: perp, OPTIONS: options},
        clock,
        config=ManagerConfig(hedging=config or hedge_config()),
        surface=surface,
    )
    return HedgedDesk(manager, clock, spot, perp, options)


def assert_covered(exposure: HedgeExposure, phase: MarketPhase = MarketPhase.STRESS) -> None:
    """The hedge invariant on filled quantities: each leg at or above the phase minimum."""
    requirement = POLICY.requirement(phase)
    assert exposure.perp_short_qty >= requirement.min_basis_ratio * exposure.spot_qty, exposure
    assert exposure.put_cover_qty >= requirement.min_put_ratio * exposure.spot_qty, exposure
