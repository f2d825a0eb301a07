"""Composition root: the looped live replay feed and venues built from settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ems.clock import TestClock
from ems.domain import OptionRight
from ems.main import build_manager, looped_recording
from ems.settings import SettingsError, SimOptionsVenueSettings, load_settings
from ems.store import SqlStore
from ems.venues.sim_venue import SimVenue, binance_btcusdt_config
from tests.replay_support import snapshot_time, spot_recording

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "ems.example.toml"


async def test_looped_recording_rebuilds_the_same_book_on_every_pass() -> None:
    events = spot_recording()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    span = events[-1].ts - snapshot_time(events) + timedelta(seconds=1)
    clock = TestClock(start)
    venue = SimVenue(
        binance_btcusdt_config("loop"), clock, {"BTC/USDT": looped_recording(events, start)}
    )
    probes = [timedelta(seconds=s) for s in (1, 60, 200, 340)]

    books = {}
    for n_pass in range(3):
        for probe in probes:
            clock.set(start + n_pass * span + probe)
            book = await venue.order_book("BTC/USDT", 10)
            books[(n_pass, probe)] = (book.bids, book.asks)

    for probe in probes:
        assert books[(0, probe)] == books[(1, probe)] == books[(2, probe)]
        assert books[(0, probe)][0] and books[(0, probe)][1]


async def test_example_config_builds_every_venue_and_a_working_manager(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE_CONFIG, database_url=f"sqlite:///{tmp_path / 'ems.db'}")
    store = SqlStore.open(settings.database_url)
    clock = TestClock(datetime(2030, 1, 1, tzinfo=UTC))

    manager = build_manager(settings, store, clock)

    assert list(manager.venues) == [v.name for v in settings.venues]
    for spec in settings.venues:
        venue = manager.venues[spec.name]
        if isinstance(spec, SimOptionsVenueSettings):
            spot = (await manager.venues[spec.underlying_venue].order_book("BTC/USDT", 1)).mid
            assert spot is not None
            symbol = min(  # the put nearest the money, of the nearest expiry
                (i for i in venue.instruments().values() if i.right is OptionRight.PUT),
                key=lambda i: (i.expiry, abs((i.strike or 0) - spot)),
            ).symbol
        else:
            (symbol,) = spec.symbols
        book = await venue.order_book(symbol, 5)
        assert book.best_bid is not None and book.best_ask is not None, spec.name
        assert book.best_bid < book.best_ask
    assert manager.hedge is not None  # the example hedges as the defaults do
    store.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"port": 0}, "port"),
        ({"database_url": "mysql://x"}, "database_url must start with"),
        ({"step_interval_s": -1}, "step_interval_s"),
        ({"hedging": {"asset": "BTC"}}, "hedging.spot_symbol: Field required"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    override: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, **override)


def test_duplicate_venue_names_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "dup.toml"
    config.write_text('[[venues]]\nname = "a"\n[[venues]]\nname = "a"\n')

    with pytest.raises(SettingsError, match="repeated: a"):
        load_settings(config)


def test_unknown_settings_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("stepinterval = 2\n")

    with pytest.raises(SettingsError, match="stepinterval"):
        load_settings(config)
