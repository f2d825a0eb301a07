"""Iceberg (pure): one clip at a time, seeded sizes and refresh delays, native display."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos import iceberg
from algos.base import MarketView, ParentView, SliceIntent, WorkingChild
from algos.pricing import ExecutionStyle
from ems.domain import BookLevel, OrderBook, Side, TimeInForce
from ems.errors import InvalidOrder
from ems.venues.sim_venue import binance_btcusdt_instrument

T0 = datetime(2024, 8, 8, 23, 0, tzinfo=UTC)
BTCUSDT = binance_btcusdt_instrument("sim")
D = Decimal


def book() -> OrderBook:
    step = D("0.5")
    return OrderBook(
        venue="sim",
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(D("61837.63") - i * step, D("20")) for i in range(10)),
        asks=tuple(BookLevel(D("61837.64") + i * step, D("20")) for i in range(10)),
    )


def market(native: bool = False) -> MarketView:
    return MarketView(book=book(), instrument=BTCUSDT, native_iceberg=native)


def view(
    qty: str,
    filled: str = "0",
    children: tuple[WorkingChild, ...] = (),
    last_fill_at: datetime | None = None,
    minutes: int = 60,
    side: Side = Side.BUY,
) -> ParentView:
    return ParentView(
        side=side,
        quantity=D(qty),
        filled=D(filled),
        working=sum((c.working_qty for c in children), D(0)),
        start_at=T0,
        end_at=T0 + timedelta(minutes=minutes),
        limit_price=None,
        children=children,
        last_fill_at=last_fill_at,
    )


def params(**kwargs: object) -> iceberg.IcebergParams:
    raw: dict[str, object] = {"display_qty": "0.5", **kwargs}
    return iceberg.IcebergParams.from_mapping(raw)


# --- parameters -------------------------------------------------------------------------------


def test_defaults() -> None:
    p = params()

    assert (p.display_jitter_pct, p.refresh_delay_s, p.refresh_jitter_pct) == (0.2, 1.0, 0.5)
    assert (p.seed, p.native) == (0, "auto")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "algo_params.display_qty"),
        ({"display_qty": "0"}, "algo_params.display_qty"),
        ({"display_qty": "1", "display_jitter_pct": 0.6}, "algo_params.display_jitter_pct"),
        ({"display_qty": "1", "refresh_delay_s": -1}, "algo_params.refresh_delay_s"),
        ({"display_qty": "1", "refresh_jitter_pct": 1.5}, "algo_params.refresh_jitter_pct"),
        ({"display_qty": "1", "native": "always"}, "algo_params.native"),
        ({"display_qty": "1", "seed": "x"}, "algo_params.seed"),
        ({"display_qty": "1", "show": "1"}, "algo_params.show"),
    ],
)
def test_bad_params_name_their_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOrder) as caught:
        iceberg.IcebergParams.from_mapping(raw)

    assert caught.value.field == field


# --- seeded randomness -----------------------------------------------------------------------


def test_clip_sizes_are_seeded_jittered_and_change_after_each_fill() -> None:
    fills = [D(i) / 10 for i in range(30)]

    sizes = [iceberg.clip_size(params(seed=1), f, BTCUSDT) for f in fills]
    again = [iceberg.clip_size(params(seed=1), f, BTCUSDT) for f in fills]
    other = [iceberg.clip_size(params(seed=2), f, BTCUSDT) for f in fills]

    assert sizes == again
    assert sizes != other
    assert len(set(sizes)) > 20
    assert all(D("0.4") <= s <= D("0.6") for s in sizes)
    assert all(s % BTCUSDT.lot_size == 0 for s in sizes)


def test_refresh_delays_are_seeded_around_the_configured_delay() -> None:
    p = params(refresh_delay_s=10, refresh_jitter_pct=0.3, seed=4)

    delays = [iceberg.refresh_delay(p, D(i) / 10) for i in range(30)]

    assert delays == [iceberg.refresh_delay(p, D(i) / 10) for i in range(30)]
    assert all(timedelta(seconds=7) <= d <= timedelta(seconds=13) for d in delays)
    assert len(set(delays)) > 20


# --- one step ---------------------------------------------------------------------------------


def test_first_clip_joins_passively_with_a_seeded_size() -> None:
    p = params(seed=9)

    plan = iceberg.plan(view("10"), market(), p, T0)

    (intent,) = plan.slices
    assert intent.qty == iceberg.clip_size(p, D(0), BTCUSDT)
    assert intent.price == D("61837.63") and intent.time_in_force is TimeInForce.GTC
    assert intent.display_qty is None


def test_nothing_new_while_a_clip_is_working() -> None:
    clip = WorkingChild("C-1", D("61837.63"), D("0.5"), TimeInForce.GTC, T0, False)

    plan = iceberg.plan(view("10", children=(clip,)), market(), params(), T0 + timedelta(seconds=1))

    assert plan.slices == () and plan.cancel == ()


def test_next_clip_waits_for_the_seeded_refresh_delay_after_the_last_fill() -> None:
    p = params(refresh_delay_s=10, refresh_jitter_pct=0.5, seed=3)
    filled_at = T0 + timedelta(minutes=1)
    delay = iceberg.refresh_delay(p, D("0.5"))

    early = iceberg.plan(
        view("10", "0.5", last_fill_at=filled_at), market(), p, filled_at + delay / 2
    )
    due = iceberg.plan(view("10", "0.5", last_fill_at=filled_at), market(), p, filled_at + delay)

    assert early.slices == () and early.hold_reason == ""
    (intent,) = due.slices
    assert intent.qty == iceberg.clip_size(p, D("0.5"), BTCUSDT)


def test_without_a_last_fill_time_the_next_clip_goes_at_once() -> None:
    plan = iceberg.plan(view("10", "0.5"), market(), params(refresh_delay_s=60), T0)

    assert len(plan.slices) == 1


def test_native_venue_gets_one_child_for_everything_showing_one_clip() -> None:
    p = params(seed=2)

    plan = iceberg.plan(view("10", "1.5"), market(native=True), p, T0)

    (intent,) = plan.slices
    assert intent.qty == D("8.5")
    assert intent.display_qty == iceberg.clip_size(p, D("1.5"), BTCUSDT)
    assert not intent.aggressive


def test_native_never_works_synthetically_even_on_a_native_venue() -> None:
    plan = iceberg.plan(view("10"), market(native=True), params(native="never"), T0)

    (intent,) = plan.slices
    assert intent.display_qty is None and intent.qty <= D("0.6")


def test_behind_pace_a_rested_clip_is_cancelled_then_a_clip_crosses() -> None:
    p = params(display_jitter_pct=0)
    clip = WorkingChild("C-1", D("61837.63"), D("0.5"), TimeInForce.GTC, T0, False)
    halfway = T0 + timedelta(minutes=5)

    first = iceberg.plan(view("10", children=(clip,), minutes=10), market(), p, halfway)
    second = iceberg.plan(view("10", minutes=10), market(), p, halfway + timedelta(seconds=1))

    assert first.cancel == ("C-1",) and first.slices == ()
    (intent,) = second.slices
    assert intent.aggressive and intent.time_in_force is TimeInForce.IOC
    assert intent.qty == D("0.5")  # still one clip at a time


def test_i_would_price_takes_one_clip_at_once() -> None:
    p = params(display_jitter_pct=0, i_would_price="61900")

    plan = iceberg.plan(view("10"), market(), p, T0)

    (intent,) = plan.slices
    assert intent.aggressive and intent.reason == "i-would price" and intent.qty == D("0.5")


def test_a_last_piece_within_the_largest_display_goes_as_one_clip() -> None:
    p = params(display_jitter_pct=0.2)  # largest clip 0.6

    plan = iceberg.plan(view("10", "9.45"), market(), p, T0)

    assert plan.slices[0].qty == D("0.55")


# --- a simulated run ----------------------------------------------------------------------------


@dataclass
class Venue:
    """A fake venue: a resting clip fills whole ``fill_after`` after it was placed; IOCs fill
    at once; cancels take effect before the next step."""

    fill_after: timedelta
    filled: Decimal = Decimal(0)
    last_fill_at: datetime | None = None
    live: list[WorkingChild] = field(default_factory=list)
    sent: list[tuple[datetime, SliceIntent]] = field(default_factory=list)

    def match(self, now: datetime) -> None:
        for child in list(self.live):
            if now - child.created_at >= self.fill_after:
                self.live.remove(child)
                self.filled += child.working_qty
                self.last_fill_at = now

    def accept(self, now: datetime, intent: SliceIntent, cancels: tuple[str, ...]) -> None:
        self.live = [c for c in self.live if c.client_order_id not in cancels]
        self.sent.append((now, intent))
        if intent.aggressive:
            self.filled += intent.qty
            self.last_fill_at = now
        else:
            cid = f"C-{len(self.sent)}"
            self.live.append(
                WorkingChild(cid, intent.price, intent.qty, intent.time_in_force, now, False)
            )


def run_iceberg(
    qty: Decimal, p: iceberg.IcebergParams, fill_after: timedelta, minutes: int = 60
) -> Venue:
    venue = Venue(fill_after)
    now = T0
    while now <= T0 + timedelta(minutes=minutes) and venue.filled < qty:
        venue.match(now)
        v = ParentView(
            side=Side.BUY,
            quantity=qty,
            filled=venue.filled,
            working=sum((c.working_qty for c in venue.live), D(0)),
            start_at=T0,
            end_at=T0 + timedelta(minutes=minutes),
            limit_price=None,
            children=tuple(venue.live),
            last_fill_at=venue.last_fill_at,
        )
        plan = iceberg.plan(v, market(), p, now)
        venue.live = [c for c in venue.live if c.client_order_id not in plan.cancel]
        for intent in plan.slices:
            assert not venue.live, "a new clip while another one is still working"
            venue.accept(now, intent, plan.cancel)
        assert len(venue.live) <= 1
        assert sum((c.working_qty for c in venue.live), D(0)) <= p.max_display
        now += timedelta(seconds=1)
    return venue


def test_run_shows_one_seeded_clip_at_a_time_and_sums_exactly_to_the_parent() -> None:
    p = params(display_qty="0.3", display_jitter_pct=0.25, refresh_delay_s=4, seed=12)

    venue = run_iceberg(D("5.01234"), p, fill_after=timedelta(seconds=3))

    sizes = [intent.qty for _, intent in venue.sent]
    assert venue.filled == sum(sizes) == D("5.01234")
    assert len(sizes) >= 15
    assert all(q <= p.max_display for q in sizes)
    assert len(set(sizes)) > 8  # randomised display sizes
    # Each replenishment waited its seeded delay after the fill that emptied the book.
    fills_before: Decimal = D(0)
    previous_fill: datetime | None = None
    for placed, intent in venue.sent:
        if previous_fill is not None:
            assert placed >= previous_fill + iceberg.refresh_delay(p, fills_before)
        fills_before += intent.qty
        previous_fill = placed + timedelta(seconds=3)


def test_the_same_seed_replays_the_same_clips_and_another_seed_does_not() -> None:
    def clips(seed: int) -> list[Decimal]:
        p = params(display_qty="0.3", seed=seed, refresh_delay_s=0)
        return [i.qty for _, i in run_iceberg(D("3"), p, timedelta(seconds=2)).sent]

    assert clips(5) == clips(5)
    assert clips(5) != clips(6)


@settings(max_examples=60, deadline=None)
@given(
    display_lots=st.integers(min_value=20, max_value=100_000),
    clips=st.integers(min_value=0, max_value=60),
    extra=st.floats(min_value=0, max_value=1),
    jitter=st.floats(min_value=0, max_value=0.5),
    seed=st.integers(0, 1000),
    fill_after=st.integers(min_value=1, max_value=20),
)
def test_property_never_more_than_one_display_working_and_exact_completion(
    display_lots: int, clips: int, extra: float, jitter: float, seed: int, fill_after: int
) -> None:
    lots = max(9, display_lots * clips + int(display_lots * extra))
    qty = D(lots) * BTCUSDT.lot_size
    display = D(display_lots) * BTCUSDT.lot_size
    p = iceberg.IcebergParams(
        display_qty=display, display_jitter_pct=jitter, refresh_delay_s=0.5, seed=seed
    )

    venue = run_iceberg(qty, p, timedelta(seconds=fill_after), minutes=24 * 60)

    assert venue.filled == qty
    assert all(i.qty <= p.max_display for _, i in venue.sent)


def test_style_params_reach_the_pricing() -> None:
    p = params(max_gap_bps=5, min_rest_s=1)

    assert p.style == ExecutionStyle(max_gap_bps=D(5), min_rest_s=1.0)
