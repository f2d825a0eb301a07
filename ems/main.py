"""Composition root: settings → store, venues, manager, API, engine loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ems.api.app import create_app
from ems.clock import Clock, LiveClock
from ems.intake import IntakeLimits
from ems.manager import ManagerConfig, ParentOrderManager
from ems.ports import VenuePort
from ems.profiles import default_volume_profile
from ems.routing import RoutingConfig
from ems.settings import Settings, SimVenueSettings, VenueSettings
from ems.store import SqlStore
from ems.venues.replay import (
    BookDiff,
    BookSnapshot,
    MarketEvent,
    default_sample_path,
    load_recorded,
)
from ems.venues.sim_venue import SimVenue, SimVenueConfig, binance_btcusdt_instrument

log = logging.getLogger(__name__)


def looped_recording(events: list[MarketEvent], start: datetime) -> Iterator[MarketEvent]:
    """Replay a recording endlessly from ``start`` on, each pass shifted to follow the last.

    Every pass opens with the recording's snapshot, followed by the diffs recorded just before
    it (re-stamped to the snapshot's time), so the book is rebuilt by the sequence rules on each
    pass exactly as on the first.
    """
    first = next(i for i, event in enumerate(events) if isinstance(event, BookSnapshot))
    snapshot = events[first]
    bridging = [
        dataclasses.replace(e, ts=snapshot.ts) for e in events[:first] if isinstance(e, BookDiff)
    ]
    body = [snapshot, *bridging, *events[first + 1 :]]
    span = body[-1].ts - body[0].ts + timedelta(seconds=1)
    shift = start - body[0].ts
    while True:
        for event in body:
            yield dataclasses.replace(event, ts=event.ts + shift)
        shift += span


def build_venue(spec: VenueSettings, clock: Clock) -> VenuePort:
    """The venue ``spec`` describes: simulated (starting at ``clock.now()``), or a ccxt exchange,
    live or on paper. A ccxt venue must be ``await venue.start()``-ed (markets) before use and
    ``await venue.close()``-d at shutdown."""
    if not isinstance(spec, SimVenueSettings):
        from ems.venues.paper_venue import ccxt_venue_from_settings

        return ccxt_venue_from_settings(spec, clock)
    from ems.venues.perp import default_usdm_sample_path
    from ems.venues.sim_venue import binance_usdm_btcusdt_instrument

    perpetual = spec.market == "perpetual"
    make_instrument = binance_usdm_btcusdt_instrument if perpetual else binance_btcusdt_instrument
    instrument = make_instrument(spec.name, maker_fee=spec.maker_fee, taker_fee=spec.taker_fee)
    config = SimVenueConfig(
        spec.name,
        (instrument,),
        balances=dict(spec.balances),
        latency=timedelta(milliseconds=spec.latency_ms),
        price_offset=spec.price_offset,
        depth_scale=spec.depth_scale,
        leverage=spec.leverage,
    )
    if spec.source == "synthetic":
        from ems.venues.synthetic import MarketModel

        model = (
            MarketModel(tick_size=instrument.tick_size, lot_size=instrument.lot_size)
            if perpetual
            else None
        )
        return SimVenue.from_synthetic(clock=clock, config=config, seed=spec.seed, model=model)
    sample = default_usdm_sample_path() if perpetual else default_sample_path()
    path = sample if spec.recording == "sample" else Path(spec.recording)
    feed: Iterable[MarketEvent] = looped_recording(load_recorded(path), clock.now())
    return SimVenue(config, clock, {instrument.symbol: feed})


def build_manager(settings: Settings, store: SqlStore, clock: Clock) -> ParentOrderManager:
    venues: Mapping[str, VenuePort] = {v.name: build_venue(v, clock) for v in settings.venues}
    config = ManagerConfig(
        in_flight_grace=timedelta(seconds=settings.in_flight_grace_s),
        intake=IntakeLimits(limit_collar=settings.limit_collar),
        routing=RoutingConfig(
            max_venue_share=settings.max_venue_share,
            refit_interval=timedelta(seconds=settings.refit_interval_s),
        ),
    )
    return ParentOrderManager(
        store, venues, clock, config=config, volume_profile=default_volume_profile()
    )


async def run_engine(manager: ParentOrderManager, interval: float, stop: asyncio.Event) -> None:
    """Step the manager every ``interval`` seconds until ``stop`` is set.

    A failed step is logged and the next one starts from the store (the manager rebuilds its
    state after a failed write), so one bad step never stops the engine.
    """
    while not stop.is_set():
        try:
            await manager.step()
        except Exception:
            log.exception("engine step failed; continuing")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def _prepare_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def serve(settings: Settings) -> None:
    """Run the API and the engine until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _prepare_sqlite_dir(settings.database_url)
    store = SqlStore.open(settings.database_url)
    manager = build_manager(settings, store, LiveClock())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for venue in manager.venues.values():
            start = getattr(venue, "start", None)
            if start is not None:
                await start()  # exchange venues load their markets
        await manager.recover()
        stop = asyncio.Event()
        engine = asyncio.create_task(run_engine(manager, settings.step_interval_s, stop))
        log.info("engine running with venues: %s", ", ".join(manager.venues))
        try:
            yield
        finally:
            stop.set()
            await engine
            for venue in manager.venues.values():
                close = getattr(venue, "close", None)
                if close is not None:
                    await close()
            store.close()

    app = create_app(manager, store, lifespan=lifespan)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
