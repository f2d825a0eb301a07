"""The hedge desk's pure planning: exposure by leg, spot gating, hedge orders, rolls, the gated
unwind and its durable state; plus the hedge algorithm and the stored coverage history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from algos import hedge as hedge_algo
from algos.base import MarketView, ParentView
from ems.domain import (
    BookLevel,
    Instrument,
    InstrumentKind,
    OptionRight,
    OrderBook,
    Side,
    TimeInForce,
)
from ems.hedging import HedgeConfig, HedgeDesk, PendingHedge
from ems.orders import ParentRole
from ems.ports import Batch, CoverageRecord
from ems.store import SqlStore
from ems.venues.sim_venue import binance_btcusdt_instrument, binance_usdm_btcusdt_instrument
from risk.put_policy import PutPolicy
from risk.types import DenyCode, MarketPhase
from risk.unwind import UnwindPlan, UnwindStatus
from risk.vol_surface import VolSurface
from tests.hedge_support import POLICY

NOW = datetime(2024, 8, 8, 12, tzinfo=UTC)
SPOT_PRICE = Decimal(60_000)
SPOT = binance_btcusdt_instrument("spot")
PERP = binance_usdm_btcusdt_instrument("perp")
PUT_POLICY = PutPolicy(
    strike_below_spot_pct=Decimal(10), min_days_to_expiry=20, roll_days_before_expiry=5
)


def put(strike: int, days: int, venue: str = "options") -> Instrument:
    expiry = NOW + timedelta(days=days)
    return Instrument(
        venue=venue,
        symbol=f"BTC/USDT:USDT-{expiry:%y%m%d}-{strike}-P",
        kind=InstrumentKind.OPTION,
        base="BTC",
        quote="USDT",
        tick_size=Decimal(5),
        lot_size=Decimal("0.01"),
        min_qty=Decimal("0.01"),
        min_notional=Decimal(0),
        settle="USDT",
        expiry=expiry,
        strike=Decimal(strike),
        right=OptionRight.PUT,
    )


LISTING = [put(50_000, 30), put(54_000, 30), put(56_000, 30), put(54_000, 3)]


def desk(**changes: object) -> HedgeDesk:
    values: dict[str, object] = {
        "asset": "BTC",
        "spot_symbol": "BTC/USDT",
        "hedge_symbol": "BTC/USDT:USDT",
        "policy": POLICY,
        "unwind": UnwindPlan(steps=4, min_interval=timedelta(hours=1)),
        "puts": PUT_POLICY,
    }
    values.update(changes)
    return HedgeDesk(HedgeConfig(**values), VolSurface().anchored(60_000))  # type: ignore[arg-type]


def holdings(spot: str = "0", short: str = "0", puts: dict[Instrument, str] | None = None):
    held = [(SPOT, Decimal(spot)), (PERP, -Decimal(short))]
    held += [(p, Decimal(q)) for p, q in (puts or {}).items()]
    return held


def test_exposure_splits_spot_short_and_put_cover_and_skips_puts_due_for_a_roll() -> None:
    hedger = desk()
    live, rolling = put(54_000, 30), put(54_000, 3)

    exposure = hedger.exposure(holdings("2", "1.5", {live: "0.6", rolling: "0.4"}), SPOT_PRICE, NOW)

    assert (exposure.spot_qty, exposure.perp_short_qty) == (Decimal(2), Decimal("1.5"))
    assert exposure.put_cover_qty == Decimal("0.6")
    assert {p.instrument.symbol: p.rolling for p in exposure.puts} == {
        live.symbol: False,
        rolling.symbol: True,
    }


def test_delta_mode_counts_each_put_by_its_delta() -> None:
    hedger = desk(puts=PutPolicy(coverage_mode="delta", min_days_to_expiry=20))
    option = put(54_000, 30)

    exposure = hedger.exposure(holdings("1", "1", {option: "1"}), SPOT_PRICE, NOW)

    held = exposure.puts[0]
    assert held.greeks is not None
    assert exposure.put_cover_qty == pytest.approx(
        Decimal(repr(abs(held.greeks.delta))), abs=Decimal("1e-8")
    )
    assert 0 < exposure.put_cover_qty < 1


def test_a_spot_buy_with_no_hedge_is_held_with_the_coverage_code_and_becomes_demand() -> None:
    hedger = desk()
    exposure = hedger.exposure(holdings(), SPOT_PRICE, NOW)

    allowed, denial = hedger.gate_spot_buy(
        "P1", exposure, Decimal(0), Decimal("0.5"), SPOT, SPOT_PRICE
    )

    assert allowed == 0
    assert denial is not None and denial.code is DenyCode.COVERAGE_BELOW_MINIMUM
    assert hedger.demand == Decimal("0.5")


@pytest.mark.parametrize(
    ("spot", "short", "puts", "working", "wanted", "allowed", "demand"),
    [
        ("0", "0.8", "0.3", "0", "2", "1", "1"),  # 0.8 short covers 1.0 spot at the 0.8 minimum
        ("0.5", "0.8", "0.3", "0.25", "2", "0.25", "1.75"),  # filled and working spot count
        ("0", "0.8", "0.6", "0", "0.4", "0.4", "0"),  # fits entirely: no demand left
        ("0", "8", "0.06", "0", "1", "0.2", "0.8"),  # the put leg binds: 0.06 / 0.3
    ],
)
def test_spot_buys_are_sized_to_the_filled_hedge(
    spot: str, short: str, puts: str, working: str, wanted: str, allowed: str, demand: str
) -> None:
    hedger = desk()
    exposure = hedger.exposure(holdings(spot, short, {put(54_000, 30): puts}), SPOT_PRICE, NOW)

    qty, denial = hedger.gate_spot_buy(
        "P1", exposure, Decimal(working), Decimal(wanted), SPOT, SPOT_PRICE
    )

    assert denial is None
    assert qty == Decimal(allowed)
    assert hedger.demand == Decimal(demand)


def test_the_hedge_leads_committed_spot_and_counts_working_hedges() -> None:
    hedger = desk()
    exposure = hedger.exposure(holdings("1"), SPOT_PRICE, NOW)

    plan = hedger.plan(exposure, Decimal("1.5"), [], {"perp": PERP}, LISTING, NOW)

    basis = [o for o in plan.orders if o.role is ParentRole.BASIS_HEDGE]
    puts = [o for o in plan.orders if o.role is ParentRole.PUT_HEDGE]
    assert [(o.side, o.qty, o.reduce_only) for o in basis] == [(Side.SELL, Decimal("1.5"), False)]
    # The highest strike at least 10 % below spot and at least 20 days out: 54,000 in 30 days.
    assert [(o.symbol, o.side, o.qty) for o in puts] == [
        (put(54_000, 30).symbol, Side.BUY, Decimal("0.75"))
    ]

    pending = [
        PendingHedge("H1", ParentRole.BASIS_HEDGE, PERP, Side.SELL, Decimal("1.5"), False),
        PendingHedge("H2", ParentRole.PUT_HEDGE, put(54_000, 30), Side.BUY, Decimal("0.75"), False),
    ]
    again = hedger.plan(exposure, Decimal("1.5"), pending, {"perp": PERP}, LISTING, NOW)
    assert again.orders == []


def test_a_gap_below_one_lot_with_no_spot_waiting_is_left_alone() -> None:
    hedger = desk(puts=None, policy=_basis_only())
    exposure = hedger.exposure(holdings("1", "0.9995"), SPOT_PRICE, NOW)

    plan = hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, [], NOW)

    assert plan.orders == []


def test_a_put_due_for_a_roll_is_sold_once_its_replacement_cover_is_held() -> None:
    hedger = desk()
    old, new = put(54_000, 3), put(54_000, 30)
    exposure = hedger.exposure(holdings("1", "1", {old: "0.5"}), SPOT_PRICE, NOW)

    first = hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, LISTING, NOW)
    assert [(o.symbol, o.side) for o in first.orders] == [(new.symbol, Side.BUY)]

    covered = hedger.exposure(holdings("1", "1", {old: "0.5", new: "0.5"}), SPOT_PRICE, NOW)
    second = hedger.plan(covered, Decimal(1), [], {"perp": PERP}, LISTING, NOW)

    assert [(o.symbol, o.side, o.qty, o.reduce_only) for o in second.orders] == [
        (old.symbol, Side.SELL, Decimal("0.5"), True)
    ]
    assert [r.kind for r in second.records] == ["put_roll"]


def test_an_over_hedge_is_held_before_confirmation_and_the_refusal_recorded_once() -> None:
    hedger = desk(puts=None, policy=_basis_only())
    exposure = hedger.exposure(holdings("1", "2"), SPOT_PRICE, NOW)

    first = hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, [], NOW)
    second = hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, [], NOW + timedelta(seconds=1))

    assert first.orders == [] and second.orders == []
    assert [(r.kind, r.code) for r in first.records] == [
        ("unwind_refused", DenyCode.UNWIND_NOT_CONFIRMED.value)
    ]
    assert second.records == []


def test_after_confirmation_the_hedge_is_released_in_steps_at_the_plan_interval() -> None:
    hedger = desk(puts=None, policy=_basis_only())
    exposure = hedger.exposure(holdings("1", "1"), SPOT_PRICE, NOW)
    hedger.set_phase(MarketPhase.CONFIRMED, "funding and breadth confirm", exposure, NOW, "pm")

    step = hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, [], NOW)
    assert [(o.side, o.qty, o.reduce_only) for o in step.orders] == [
        (Side.BUY, Decimal("0.25"), True)
    ]
    assert hedger.unwind.steps_done == 1

    after = hedger.exposure(holdings("1", "0.75"), SPOT_PRICE, NOW)
    too_soon = hedger.plan(after, Decimal(1), [], {"perp": PERP}, [], NOW + timedelta(minutes=30))
    assert too_soon.orders == []
    assert [r.code for r in too_soon.records] == [DenyCode.UNWIND_TOO_SOON.value]

    later = hedger.plan(after, Decimal(1), [], {"perp": PERP}, [], NOW + timedelta(hours=1))
    assert [o.qty for o in later.orders] == [Decimal("0.25")]


def test_falling_back_from_confirmation_pauses_the_unwind() -> None:
    hedger = desk(puts=None, policy=_basis_only())
    exposure = hedger.exposure(holdings("1", "1"), SPOT_PRICE, NOW)
    hedger.set_phase(MarketPhase.CONFIRMED, "confirmed", exposure, NOW, "pm")
    hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, [], NOW)

    hedger.set_phase(MarketPhase.REPAIR, "reclaim failed", exposure, NOW + timedelta(hours=2), "pm")
    over = hedger.exposure(holdings("1", "1.5"), SPOT_PRICE, NOW)
    plan = hedger.plan(over, Decimal(1), [], {"perp": PERP}, [], NOW + timedelta(hours=3))

    assert hedger.unwind.status is UnwindStatus.PAUSED
    assert [o for o in plan.orders if o.reduce_only] == []


def test_the_desk_state_survives_through_its_last_decision() -> None:
    hedger = desk()
    exposure = hedger.exposure(holdings("1", "1"), SPOT_PRICE, NOW)
    record = hedger.set_phase(MarketPhase.CONFIRMED, "signals", exposure, NOW, "pm")
    hedger.plan(exposure, Decimal(1), [], {"perp": PERP}, [], NOW)
    step = hedger.record("unwind_step", exposure, NOW, "step")

    restored = desk()
    restored.restore([record, step])

    assert restored.phase is MarketPhase.CONFIRMED
    assert restored.unwind == hedger.unwind
    assert restored.unwind_start_basis == Decimal(1)


def test_setting_a_phase_needs_evidence() -> None:
    hedger = desk()
    exposure = hedger.exposure(holdings(), SPOT_PRICE, NOW)
    with pytest.raises(ValueError, match="evidence"):
        hedger.set_phase(MarketPhase.CONFIRMED, "  ", exposure, NOW, "pm")


def _basis_only():
    from risk.coverage import CoveragePolicy

    ratios = {
        "min_basis_ratio": "0.8",
        "target_basis_ratio": "1.0",
        "min_put_ratio": "0",
        "target_put_ratio": "0",
    }
    zero = dict.fromkeys(ratios, "0")
    phases = {p.value: ratios for p in MarketPhase if p is not MarketPhase.CONFIRMED}
    return CoveragePolicy.from_mapping(
        {
            "drift_tolerance": "0.02",
            "max_drift_duration": 60,
            "phases": phases | {"confirmed": zero},
        }
    )


# --- the hedge algorithm ----------------------------------------------------------------------


def _book(asks: list[tuple[str, str]]) -> OrderBook:
    return OrderBook(
        venue="perp",
        symbol=PERP.symbol,
        ts=NOW,
        bids=(BookLevel(Decimal("59999.9"), Decimal(5)),),
        asks=tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in asks),
    )


def _view(qty: str) -> ParentView:
    return ParentView(
        side=Side.BUY,
        quantity=Decimal(qty),
        filled=Decimal(0),
        working=Decimal(0),
        start_at=NOW,
        end_at=NOW + timedelta(minutes=5),
        limit_price=None,
    )


def test_the_hedge_algorithm_crosses_for_everything_at_once() -> None:
    market = MarketView(book=_book([("60000", "1"), ("60000.5", "3")]), instrument=PERP)

    plan = hedge_algo.plan(_view("2"), market, hedge_algo.HedgeParams(), NOW)

    [child] = plan.slices
    assert (child.qty, child.price, child.time_in_force) == (
        Decimal(2),
        Decimal("60000.5"),
        TimeInForce.IOC,
    )


def test_the_hedge_algorithm_rests_when_the_void_guard_blocks_crossing() -> None:
    market = MarketView(book=_book([("61000", "5")]), instrument=PERP)  # a 166 bps gap

    plan = hedge_algo.plan(_view("1"), market, hedge_algo.HedgeParams(), NOW)

    [child] = plan.slices
    assert child.time_in_force is TimeInForce.GTC and child.price < Decimal(61000)


def test_the_hedge_algorithm_refuses_unknown_parameters() -> None:
    from ems.errors import InvalidOrder

    with pytest.raises(InvalidOrder, match="slice_interval_s"):
        hedge_algo.HedgeParams.from_mapping({"slice_interval_s": 5})


# --- the stored history -----------------------------------------------------------------------


def test_coverage_decisions_are_stored_exactly_and_read_back_oldest_first(store: SqlStore) -> None:
    first = CoverageRecord(
        ts=NOW,
        kind="hedge_fill",
        phase="stress",
        unwind_status="holding",
        spot_qty=Decimal("1.23456789"),
        perp_short_qty=Decimal("1.235"),
        put_cover_qty=Decimal(1) / 3,
        detail="sell 0.5 BTC/USDT:USDT",
        state='{"phase": "stress"}',
        basis_bps=Decimal("-3.2937"),
        basis_annualised=Decimal("0.109500"),
        parent_id="P1",
    )
    second = CoverageRecord(
        ts=NOW + timedelta(seconds=1),
        kind="spot_held",
        phase="stress",
        unwind_status="holding",
        spot_qty=Decimal(0),
        perp_short_qty=Decimal(0),
        put_cover_qty=Decimal(0),
        detail="held",
        state="{}",
        code=DenyCode.COVERAGE_BELOW_MINIMUM.value,
    )

    store.commit(Batch(coverage=[first]))
    store.add_coverage(second)

    log = store.coverage_log()
    assert [r.kind for r in log] == ["hedge_fill", "spot_held"]
    assert log[0].spot_qty == Decimal("1.23456789")
    assert log[0].basis_bps == Decimal("-3.2937")
    assert log[0].put_cover_qty == Decimal("0.333333333333333333")
    assert log[1].code == "coverage_below_minimum"
    assert store.coverage_log(kind="spot_held") == [log[1]]
    assert store.coverage_log(limit=1) == [log[1]]


# --- what a venue's balances let the hedge legs trade -------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "side", "balances", "expected"),
    [
        # spot: buys spend the quote (with fee and a 1 % margin), sells the base
        (SPOT, Side.BUY, {"USDT": "60660"}, "0.99999"),  # one unit costs 60,660.6
        (SPOT, Side.SELL, {"BTC": "0.123456"}, "0.12345"),
        # a perpetual short posts settle-asset margin, counted at 1x: no BTC needed to sell
        (PERP, Side.SELL, {"USDT": "60630", "BTC": "0"}, "0.999"),  # 60,630.3 a unit
        # an inverse option is paid in its settle asset (BTC), not its quote (USD)
        ("inverse_put", Side.BUY, {"BTC": "1", "USD": "0"}, "28.2"),
    ],
)
def test_capacity_comes_from_the_asset_each_leg_spends(
    instrument: Instrument | str, side: Side, balances: dict[str, str], expected: str
) -> None:
    from ems.domain import Balance
    from ems.routing import available_qty

    if instrument == "inverse_put":
        instrument = Instrument(
            venue="deribit",
            symbol="BTC/USD:BTC-241227-55000-P",
            kind=InstrumentKind.OPTION,
            base="BTC",
            quote="USD",
            settle="BTC",
            tick_size=Decimal("0.0005"),
            lot_size=Decimal("0.1"),
            min_qty=Decimal("0.1"),
            min_notional=Decimal(0),
            expiry=NOW + timedelta(days=140),
            strike=Decimal(55_000),
            right=OptionRight.PUT,
        )
    assert isinstance(instrument, Instrument)
    price = Decimal("0.0350") if instrument.kind is InstrumentKind.OPTION else Decimal(60_000)
    book = OrderBook(
        venue=instrument.venue,
        symbol=instrument.symbol,
        ts=NOW,
        bids=(BookLevel(price, Decimal(50)),),
        asks=(BookLevel(price, Decimal(50)),),
    )
    held = {asset: Balance(asset, Decimal(amount)) for asset, amount in balances.items()}

    assert available_qty(side, book, instrument, held) == Decimal(expected)
