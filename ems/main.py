"""Composition root: settings → store, venues, manager, API, engine loop.

Recorded sims are replayed in a loop shifted to the present. Recordings of the same minutes
(the packaged Binance spot and USDⓈ-M samples) share one :class:`ReplayWindow`, so a recorded
instant is replayed at the same moment on every venue, pass after pass: the basis between the
spot and perpetual books is the recorded one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import uvicorn
from fastapi import FastAPI

from ems.api.app import create_app
from ems.clock import Clock, LiveClock
from ems.intake import IntakeLimits
from ems.manager import ManagerConfig, ParentOrderManager
from ems.ports import VenuePort
from ems.profiles import default_volume_profile
from ems.routing import RoutingConfig
from ems.settings import (
    Settings,
    SettingsError,
    SimOptionsVenueSettings,
    SimVenueSettings,
    VenueSettings,
)
from ems.store import SqlStore
from ems.venues.replay import (
    BookDiff,
    BookSnapshot,
    MarketEvent,
    default_sample_path,
    load_recorded,
)
from ems.venues.sim_venue import SimVenue, SimVenueConfig, binance_btcusdt_instrument
from risk.vol_surface import VolSurface

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayWindow:
    """The recorded minutes a loop replays: each pass opens at the recorded instant ``origin``
    and closes after ``end``; the next pass opens ``period`` (the window plus one second) later.
    """

    origin: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.origin:
            raise ValueError(f"replay window ends at {self.end}, before its origin {self.origin}")

    @property
    def period(self) -> timedelta:
        return self.end - self.origin + timedelta(seconds=1)


def _snapshot_index(events: Sequence[MarketEvent]) -> int:
    for index, event in enumerate(events):
        if isinstance(event, BookSnapshot):
            return index
    raise ValueError("the recording has no book snapshot to start a replay from")


def replay_window(*recordings: Sequence[MarketEvent]) -> ReplayWindow:
    """The minutes every recording covers: from the latest opening snapshot to the earliest last
    event. ``ValueError`` when they share no time (recordings of different days)."""
    if not recordings:
        raise ValueError("no recording to replay")
    origin = max(events[_snapshot_index(events)].ts for events in recordings)
    end = min(events[-1].ts for events in recordings)
    if end <= origin:
        raise ValueError(
            f"the recordings share no time: the last opens at {origin}, the first ends at {end}"
        )
    return ReplayWindow(origin, end)


def looped_recording(
    events: Sequence[MarketEvent], start: datetime, window: ReplayWindow | None = None
) -> Iterator[MarketEvent]:
    """Replay a recording endlessly from ``start`` on, each pass shifted to follow the last.

    ``window`` (default: from the recording's snapshot to its last event) is the recorded span
    replayed: the recorded instant ``window.origin`` is replayed at ``start``, and every later
    pass ``window.period`` after the one before, so recordings looped in the same window stay
    aligned. Every pass opens with the recording's snapshot, followed by the diffs recorded just
    before it and the events recorded before the origin (all re-stamped to the origin), so the
    book is rebuilt by the sequence rules on each pass exactly as on the first; events after
    ``window.end`` are left out.
    """
    first = _snapshot_index(events)
    snapshot = events[first]
    if window is None:
        window = ReplayWindow(snapshot.ts, events[-1].ts)
    if snapshot.ts > window.origin:
        raise ValueError(
            f"the recording opens at {snapshot.ts}, after the replay window's origin "
            f"{window.origin}"
        )
    if events[-1].ts < window.end:
        raise ValueError(
            f"the recording ends at {events[-1].ts}, before the replay window's end {window.end}"
        )
    origin = window.origin
    bridging = [
        dataclasses.replace(e, ts=origin) for e in events[:first] if isinstance(e, BookDiff)
    ]
    rest = [
        event if event.ts >= origin else dataclasses.replace(event, ts=origin)
        for event in events[first + 1 :]
        if event.ts <= window.end
    ]
    body = [dataclasses.replace(snapshot, ts=origin), *bridging, *rest]
    shift = start - origin
    while True:
        for event in body:
            yield dataclasses.replace(event, ts=event.ts + shift)
        shift += window.period


@functools.cache
def _packaged_sample(market: str) -> tuple[MarketEvent, ...]:
    from ems.venues.perp import default_usdm_sample_path

    path = default_usdm_sample_path() if market == "perpetual" else default_sample_path()
    return tuple(load_recorded(path))


def recording_of(spec: SimVenueSettings) -> Sequence[MarketEvent]:
    """The events a recorded sim replays: the packaged sample of its market, or its file."""
    if spec.recording == "sample":
        return _packaged_sample(spec.market)
    return load_recorded(Path(spec.recording))


def build_venue(
    spec: VenueSettings,
    clock: Clock,
    *,
    window: ReplayWindow | None = None,
    events: Sequence[MarketEvent] | None = None,
    underlying: VenuePort | None = None,
) -> VenuePort:
    """The venue ``spec`` describes: simulated (starting at ``clock.now()``), or a ccxt exchange,
    live or on paper. A ccxt venue must be ``await venue.start()``-ed (markets) before use and
    ``await venue.close()``-d at shutdown.

    A recorded sim loops ``events`` (default: its recording) in ``window`` (default: the whole
    recording); an options sim needs its ``underlying`` venue, already built."""
    if isinstance(spec, SimOptionsVenueSettings):
        if underlying is None:
            raise ValueError(f"options venue {spec.name!r} needs its underlying venue built first")
        return build_options_venue(spec, clock, underlying)
    if not isinstance(spec, SimVenueSettings):
        from ems.venues.paper_venue import ccxt_venue_from_settings

        return ccxt_venue_from_settings(spec, clock)
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
    recorded = recording_of(spec) if events is None else events
    feed: Iterable[MarketEvent] = looped_recording(recorded, clock.now(), window)
    return SimVenue(config, clock, {instrument.symbol: feed})


def options_surface(listing_spot: Decimal) -> VolSurface:
    """The volatility surface options are quoted from: the BTC smile anchored at the spot they
    were listed around (sticky strike)."""
    return VolSurface().anchored(float(listing_spot))


def listing_spot(spec: SimOptionsVenueSettings, underlying: VenuePort, clock: Clock) -> Decimal:
    """The price options are listed around: ``listing_spot``, else the underlying's mid now."""
    if spec.listing_spot is not None:
        return spec.listing_spot
    if isinstance(underlying, SimVenue):
        underlying.advance_to(clock.now())
        mid = underlying.mark_price(spec.underlying_symbol)
        if mid is not None:
            return mid
    raise SettingsError(
        f"venue {spec.name!r}: {spec.underlying_venue!r} has no {spec.underlying_symbol} price "
        "to list options around; set listing_spot"
    )


def build_options_venue(
    spec: SimOptionsVenueSettings,
    clock: Clock,
    underlying: VenuePort,
    spot: Decimal | None = None,
) -> VenuePort:
    """A simulated options venue quoting around the mid of ``underlying``'s
    ``spec.underlying_symbol``, listed around ``spot`` (default: :func:`listing_spot`) and
    quoted from the surface anchored there."""
    from ems.venues.options_venue import SimOptionsVenue, underlying_mid

    spot = listing_spot(spec, underlying, clock) if spot is None else spot
    return SimOptionsVenue(
        spec.to_config(),
        clock,
        options_surface(spot),
        underlying_mid(underlying, spec.underlying_symbol),
        spot,
    )


class DeskVenues(NamedTuple):
    """The venues built from settings, in their order, and the volatility surface that values
    options (the first options venue's, else the unanchored BTC smile)."""

    venues: dict[str, VenuePort]
    surface: VolSurface


def shared_window(recordings: Iterable[Sequence[MarketEvent]]) -> ReplayWindow | None:
    """The window recorded sims loop in together; ``None`` (each loops on its own) without
    recordings or when they share no minutes."""
    recorded = list(recordings)
    if not recorded:
        return None
    try:
        return replay_window(*recorded)
    except ValueError as exc:
        log.warning("recorded venues replay unaligned: %s", exc)
        return None


def build_venues(settings: Settings, clock: Clock) -> DeskVenues:
    """Every venue of ``settings``: recorded sims looped in their shared window, options sims
    after the venue they price off."""
    recordings = {
        spec.name: recording_of(spec)
        for spec in settings.venues
        if isinstance(spec, SimVenueSettings) and spec.source == "recording"
    }
    window = shared_window(recordings.values())
    built: dict[str, VenuePort] = {}
    for spec in settings.venues:
        if not isinstance(spec, SimOptionsVenueSettings):
            built[spec.name] = build_venue(
                spec, clock, window=window, events=recordings.get(spec.name)
            )
    surface: VolSurface | None = None
    for spec in settings.venues:
        if isinstance(spec, SimOptionsVenueSettings):
            underlying = built[spec.underlying_venue]
            spot = listing_spot(spec, underlying, clock)
            built[spec.name] = build_options_venue(spec, clock, underlying, spot)
            if surface is None:
                surface = options_surface(spot)
    venues = {spec.name: built[spec.name] for spec in settings.venues}
    return DeskVenues(venues, surface or VolSurface())


def build_manager(settings: Settings, store: SqlStore, clock: Clock) -> ParentOrderManager:
    """The manager over every configured venue, hedging as ``[hedging]`` says."""
    desk = build_venues(settings, clock)
    hedging = settings.hedging
    config = ManagerConfig(
        in_flight_grace=timedelta(seconds=settings.in_flight_grace_s),
        intake=IntakeLimits(limit_collar=settings.limit_collar),
        routing=RoutingConfig(
            max_venue_share=settings.max_venue_share,
            refit_interval=timedelta(seconds=settings.refit_interval_s),
        ),
        hedging=None if hedging is None else hedging.to_hedge_config(),
    )
    return ParentOrderManager(
        store,
        desk.venues,
        clock,
        config=config,
        volume_profile=default_volume_profile(),
        surface=desk.surface,
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
