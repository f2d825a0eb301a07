"""Pre-trade risk checks: limits validation, the order-rate throttle, child and parent checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ems.domain import InstrumentKind, Side
from risk.checks import ChildIntent, ParentIntent, RiskContext, check_child, check_parent
from risk.limits import DEFAULT_LIMITS, RiskLimits
from risk.throttle import OrderRateWindow, allows, record
from risk.types import Approved, Denied, DenyCode, TradingState

D = Decimal
NOW = datetime(2024, 8, 5, 12, 0, tzinfo=UTC)
VENUE = "binance"

LIMITS = RiskLimits(
    max_child_notional=D("50000"),
    max_parent_notional=D("1000000"),
    max_daily_notional=D("2000000"),
    max_position={"BTC": D("600")},
    price_collar_bps=D("100"),
    max_book_age=timedelta(seconds=5),
    max_orders_per_window=3,
    order_window=timedelta(seconds=10),
)


def child(**overrides: object) -> ChildIntent:
    fields: dict[str, object] = {
        "venue": VENUE,
        "symbol": "BTC/USDT",
        "kind": InstrumentKind.SPOT,
        "base": "BTC",
        "quote": "USDT",
        "side": Side.BUY,
        "qty": D("0.5"),
        "price": D("60000"),
    }
    fields.update(overrides)
    return ChildIntent(**fields)  # type: ignore[arg-type]


def perp(**overrides: object) -> ChildIntent:
    base = {"symbol": "BTC/USDT:USDT", "kind": InstrumentKind.PERPETUAL, "is_hedge": True}
    return child(**{**base, **overrides})


def ctx(**overrides: object) -> RiskContext:
    fields: dict[str, object] = {
        "now": NOW,
        "rate_window": OrderRateWindow(VENUE),
        "consensus_mid": D("60000"),
        "book_ts": NOW - timedelta(seconds=1),
        "positions": {"BTC": D("100")},
        "day_notional": D("0"),
    }
    fields.update(overrides)
    return RiskContext(**fields)  # type: ignore[arg-type]


def parent(**overrides: object) -> ParentIntent:
    fields: dict[str, object] = {
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": D("10"),
        "reference_price": D("60000"),
    }
    fields.update(overrides)
    return ParentIntent(**fields)  # type: ignore[arg-type]


def full_window(n: int = 3) -> OrderRateWindow:
    return OrderRateWindow(VENUE, tuple(NOW - timedelta(seconds=i) for i in reversed(range(n))))


# --- limits -------------------------------------------------------------------------------------


def test_default_limits_are_valid_and_frozen() -> None:
    assert DEFAULT_LIMITS.max_position["BTC"] == D("600")
    with pytest.raises(TypeError):
        DEFAULT_LIMITS.max_position["BTC"] = D("1")  # type: ignore[index]
    hash(DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"max_child_notional": D("0")}, ValueError, "max_child_notional must be positive"),
        ({"max_child_notional": 50000.0}, TypeError, "must be a Decimal"),
        ({"max_daily_notional": D("NaN")}, ValueError, "finite"),
        ({"max_child_notional": D("2000000")}, ValueError, "must not exceed max_parent"),
        ({"max_parent_notional": D("3000000")}, ValueError, "must not exceed max_daily"),
        ({"max_position": {"BTC": D("-1")}}, ValueError, "must not be negative"),
        ({"max_position": {"": D("1")}}, ValueError, "asset name"),
        ({"price_collar_bps": D("0")}, ValueError, "price_collar_bps"),
        ({"max_book_age": timedelta(0)}, ValueError, "max_book_age must be a positive"),
        ({"order_window": 10}, TypeError, "order_window must be a timedelta"),
        ({"max_orders_per_window": 0}, ValueError, "at least 1"),
    ],
)
def test_limits_refuse_bad_values_with_clear_messages(
    overrides: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        replace(LIMITS, **overrides)  # type: ignore[arg-type]


def test_limits_accept_whole_numbers_as_exact_decimals() -> None:
    limits = replace(LIMITS, max_position={"BTC": 600})  # type: ignore[dict-item]
    assert limits.max_position["BTC"] == D("600")
    assert isinstance(limits.max_position["BTC"], Decimal)


# --- throttle -----------------------------------------------------------------------------------


def test_throttle_allows_n_orders_per_window_then_denies_until_it_slides() -> None:
    window = OrderRateWindow(VENUE)
    for i in range(3):
        at = NOW + timedelta(seconds=i)
        assert allows(window, at, LIMITS)
        window = record(window, at, LIMITS)
    assert not allows(window, NOW + timedelta(seconds=3), LIMITS)
    # The first order (sent at NOW) still counts just before NOW + 10 s and slides out at it.
    assert not allows(window, NOW + timedelta(seconds=10) - timedelta(microseconds=1), LIMITS)
    assert allows(window, NOW + timedelta(seconds=10), LIMITS)


def test_record_drops_times_older_than_the_window() -> None:
    window = OrderRateWindow(VENUE, (NOW, NOW + timedelta(seconds=5)))
    later = record(window, NOW + timedelta(seconds=12), LIMITS)
    assert later.times == (NOW + timedelta(seconds=5), NOW + timedelta(seconds=12))
    assert later.venue == VENUE
    assert window.times == (NOW, NOW + timedelta(seconds=5))  # the input is untouched


def test_record_refuses_time_going_backwards_and_naive_times() -> None:
    window = record(OrderRateWindow(VENUE), NOW, LIMITS)
    with pytest.raises(ValueError, match="earlier than the last recorded"):
        record(window, NOW - timedelta(seconds=1), LIMITS)
    with pytest.raises(ValueError, match="naive"):
        record(window, datetime(2024, 8, 5, 12, 0, 1), LIMITS)
    with pytest.raises(ValueError, match="time order"):
        OrderRateWindow(VENUE, (NOW, NOW - timedelta(seconds=1)))


def test_check_child_feeds_the_throttle_per_venue() -> None:
    window = OrderRateWindow(VENUE)
    for i in range(3):
        at = NOW + timedelta(seconds=i)
        verdict = check_child(child(), ctx(now=at, book_ts=at, rate_window=window), LIMITS)
        assert verdict == Approved()
        window = record(window, at, LIMITS)
    at = NOW + timedelta(seconds=3)
    denied = check_child(child(), ctx(now=at, book_ts=at, rate_window=window), LIMITS)
    assert isinstance(denied, Denied) and denied.code is DenyCode.ORDER_RATE
    assert (
        denied.detail == "3 orders were sent to binance in the last 10 s; the limit is 3 per 10 s"
    )
    at = NOW + timedelta(seconds=10)
    slid = ctx(now=at, book_ts=at, rate_window=window)
    assert check_child(child(), slid, LIMITS) == Approved()
    with pytest.raises(ValueError, match="rate window is for okx"):
        check_child(child(), ctx(rate_window=OrderRateWindow("okx")), LIMITS)


# --- child checks: every code reachable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "context", "code", "detail"),
    [
        (
            child(),
            ctx(global_state=TradingState.HALTED),
            DenyCode.GLOBAL_HALTED,
            "trading is halted on all venues (kill switch)",
        ),
        (
            child(),
            ctx(venue_state=TradingState.HALTED),
            DenyCode.VENUE_HALTED,
            "trading on binance is halted",
        ),
        (
            child(),
            ctx(venue_state=TradingState.REDUCING),
            DenyCode.REDUCING_ONLY,
            "binance is reducing only: buy 0.5 BTC/USDT on binance would take the net BTC "
            "position from 100 to 100.5 BTC",
        ),
        (
            child(),
            ctx(book_ts=None),
            DenyCode.STALE_MARKET_DATA,
            "no order book for BTC/USDT, so the price cannot be checked",
        ),
        (
            child(),
            ctx(book_ts=NOW - timedelta(seconds=7.5)),
            DenyCode.STALE_MARKET_DATA,
            "the BTC/USDT order book is 7.5 s old, older than the limit of 5 s",
        ),
        (
            child(),
            ctx(consensus_mid=None),
            DenyCode.STALE_MARKET_DATA,
            "no consensus mid price for BTC/USDT, so the price cannot be checked",
        ),
        (
            child(price=D("61500")),
            ctx(),
            DenyCode.PRICE_COLLAR,
            "buy price 61,500 USDT is 250 bps above the consensus mid 60,000 USDT; "
            "the collar allows 100 bps",
        ),
        (
            child(side=Side.SELL, price=D("59000")),
            ctx(),
            DenyCode.PRICE_COLLAR,
            "sell price 59,000 USDT is 166.7 bps below the consensus mid 60,000 USDT; "
            "the collar allows 100 bps",
        ),
        (
            child(qty=D("1.0205750")),
            ctx(),
            DenyCode.CHILD_NOTIONAL,
            "child notional 61,234.5 USDT is above the limit 50,000 USDT",
        ),
        (
            child(),
            ctx(day_notional=D("1990000")),
            DenyCode.DAILY_NOTIONAL,
            "today's traded notional 1,990,000 USDT plus this order's 30,000 USDT makes "
            "2,020,000 USDT, above the daily limit 2,000,000 USDT",
        ),
        (
            child(),
            ctx(positions={"BTC": D("599.8")}),
            DenyCode.POSITION_LIMIT,
            "buy 0.5 BTC/USDT would take the net BTC position from 599.8 to 600.3 BTC, "
            "beyond the limit of ±600 BTC",
        ),
        (
            child(base="DOGE", symbol="DOGE/USDT", price=D("0.1"), qty=D("1000")),
            ctx(consensus_mid=D("0.1")),
            DenyCode.POSITION_LIMIT,
            "no position limit is configured for DOGE, so buy 1,000 DOGE/USDT may not trade it",
        ),
        (
            child(),
            ctx(rate_window=full_window()),
            DenyCode.ORDER_RATE,
            "3 orders were sent to binance in the last 10 s; the limit is 3 per 10 s",
        ),
    ],
)
def test_every_child_deny_code_is_reachable_with_a_trader_readable_detail(
    intent: ChildIntent, context: RiskContext, code: DenyCode, detail: str
) -> None:
    verdict = check_child(intent, context, LIMITS)
    assert verdict == Denied(code, detail)
    assert not verdict.ok


def test_a_child_within_every_limit_is_approved() -> None:
    verdict = check_child(child(), ctx(), LIMITS)
    assert verdict == Approved() and verdict.ok


def test_exactly_at_every_limit_passes() -> None:
    # Price exactly at mid + 100 bps, notional exactly the child limit, day total exactly the
    # daily limit, position exactly the limit, book exactly max_book_age old, last free slot.
    at_collar = D("60600")
    qty = LIMITS.max_child_notional / at_collar
    intent = child(price=at_collar, qty=qty)
    assert intent.notional == LIMITS.max_child_notional
    context = ctx(
        book_ts=NOW - LIMITS.max_book_age,
        day_notional=LIMITS.max_daily_notional - LIMITS.max_child_notional,
        positions={"BTC": D("600") - qty},
        rate_window=full_window(2),
    )
    assert check_child(intent, context, LIMITS) == Approved()
    sell = child(side=Side.SELL, price=D("59400"), qty=D("0.5"))
    assert check_child(sell, ctx(positions={"BTC": D("-599.5")}), LIMITS) == Approved()


def test_a_fat_finger_limit_price_is_refused_by_the_collar() -> None:
    fat_finger = child(price=D("600000"), qty=D("0.05"))  # an extra zero; notional within limit
    verdict = check_child(fat_finger, ctx(), LIMITS)
    assert isinstance(verdict, Denied) and verdict.code is DenyCode.PRICE_COLLAR
    assert "90,000 bps above" in verdict.detail
    # A very cheap buy or a very rich sell is passive, never a fat finger against us.
    assert check_child(child(price=D("30000")), ctx(), LIMITS) == Approved()
    assert check_child(child(side=Side.SELL, price=D("90000")), ctx(), LIMITS) == Approved()


def test_halted_denies_everything_even_reducing_and_reduce_only_orders() -> None:
    orders = [child(), child(side=Side.SELL), perp(side=Side.BUY, reduce_only=True)]
    for intent in orders:
        halted_all = check_child(intent, ctx(global_state=TradingState.HALTED), LIMITS)
        assert isinstance(halted_all, Denied) and halted_all.code is DenyCode.GLOBAL_HALTED
        halted_venue = check_child(intent, ctx(venue_state=TradingState.HALTED), LIMITS)
        assert isinstance(halted_venue, Denied) and halted_venue.code is DenyCode.VENUE_HALTED
    both = ctx(global_state=TradingState.HALTED, venue_state=TradingState.HALTED)
    verdict = check_child(child(), both, LIMITS)
    assert isinstance(verdict, Denied) and verdict.code is DenyCode.GLOBAL_HALTED


@pytest.mark.parametrize("state_field", ["global_state", "venue_state"])
def test_reducing_allows_reducing_orders_and_denies_increasing_ones(state_field: str) -> None:
    def verdict(intent: ChildIntent, position: str) -> object:
        context = ctx(positions={"BTC": D(position)}, **{state_field: TradingState.REDUCING})
        return check_child(intent, context, LIMITS)

    assert verdict(child(side=Side.SELL), "100") == Approved()  # long, selling
    assert verdict(child(side=Side.SELL, qty=D("0.5")), "0.5") == Approved()  # to exactly flat
    assert verdict(perp(side=Side.BUY), "-100") == Approved()  # short, buying back
    assert verdict(perp(side=Side.BUY, reduce_only=True), "100") == Approved()  # venue enforced
    for increasing, position in [
        (child(side=Side.BUY), "100"),
        (perp(side=Side.SELL), "-100"),
        (child(side=Side.BUY), "0"),
        (child(side=Side.SELL, qty=D("1")), "0.5"),  # passes zero into a new short
        (child(side=Side.BUY, reduce_only=True), "100"),  # spot cannot be reduce-only
    ]:
        denied = verdict(increasing, position)
        assert isinstance(denied, Denied) and denied.code is DenyCode.REDUCING_ONLY, increasing


def test_reducing_requires_option_orders_to_be_reduce_only() -> None:
    option = child(symbol="BTC-27SEP24-50000-P", kind=InstrumentKind.OPTION, price=D("60000"))
    reducing = ctx(global_state=TradingState.REDUCING)
    denied = check_child(option, reducing, LIMITS)
    assert isinstance(denied, Denied) and denied.code is DenyCode.REDUCING_ONLY
    assert "must be reduce-only" in denied.detail
    closing = replace(option, side=Side.SELL, reduce_only=True)
    assert check_child(closing, reducing, LIMITS) == Approved()


def test_a_hedge_that_reduces_net_exposure_passes_the_position_limit() -> None:
    over = ctx(positions={"BTC": D("650")})  # e.g. after the limit was lowered
    assert check_child(perp(side=Side.SELL), over, LIMITS) == Approved()
    assert check_child(child(side=Side.SELL), over, LIMITS) == Approved()
    denied = check_child(child(side=Side.BUY), over, LIMITS)
    assert isinstance(denied, Denied) and denied.code is DenyCode.POSITION_LIMIT
    # Contract size counts: 1 lot of a 100-BTC contract sells 100 BTC of exposure.
    big = perp(side=Side.SELL, qty=D("1"), price=D("60000"), contract_size=D("0.5"))
    assert check_child(big, ctx(positions={"BTC": D("-600")}), LIMITS) == Denied(
        DenyCode.POSITION_LIMIT,
        "hedge sell 1 BTC/USDT:USDT would take the net BTC position from -600 to -600.5 BTC, "
        "beyond the limit of ±600 BTC",
    )


def test_child_notional_includes_the_contract_size() -> None:
    intent = perp(qty=D("10"), contract_size=D("0.1"))  # 1 BTC of exposure, 60,000 USDT
    verdict = check_child(intent, ctx(), LIMITS)
    assert isinstance(verdict, Denied) and verdict.code is DenyCode.CHILD_NOTIONAL
    assert "60,000 USDT" in verdict.detail


def test_first_failure_wins_in_the_documented_order() -> None:
    everything_wrong = ctx(
        venue_state=TradingState.HALTED,
        book_ts=None,
        day_notional=D("1999999"),
        positions={"BTC": D("600")},
        rate_window=full_window(),
    )
    fat = child(price=D("70000"), qty=D("2"))
    expected = [
        DenyCode.VENUE_HALTED,
        DenyCode.STALE_MARKET_DATA,
        DenyCode.PRICE_COLLAR,
        DenyCode.CHILD_NOTIONAL,
        DenyCode.DAILY_NOTIONAL,
        DenyCode.POSITION_LIMIT,
        DenyCode.ORDER_RATE,
    ]
    fixes = [
        {"venue_state": TradingState.ACTIVE},
        {"book_ts": NOW},
        {},  # the price is fixed on the intent below
        {},  # the size is fixed on the intent below
        {"day_notional": D("0")},
        {"positions": {"BTC": D("0")}},
        {"rate_window": OrderRateWindow(VENUE)},
    ]
    context = everything_wrong
    for code, fix in zip(expected, fixes, strict=True):
        verdict = check_child(fat, context, LIMITS)
        assert isinstance(verdict, Denied) and verdict.code is code
        context = replace(context, **fix)  # type: ignore[arg-type]
        if code is DenyCode.PRICE_COLLAR:
            fat = replace(fat, price=D("60000"))
        if code is DenyCode.CHILD_NOTIONAL:
            fat = replace(fat, qty=D("0.5"))
    assert check_child(fat, context, LIMITS) == Approved()


def test_bad_inputs_raise_naming_the_field() -> None:
    with pytest.raises(ValueError, match="qty must be a positive Decimal"):
        child(qty=D("0"))
    with pytest.raises(ValueError, match="venue must not be empty"):
        child(venue="")
    with pytest.raises(ValueError, match="naive"):
        ctx(now=datetime(2024, 8, 5, 12, 0))
    with pytest.raises(ValueError, match="day_notional"):
        ctx(day_notional=D("-1"))
    with pytest.raises(ValueError, match="symbol must look like"):
        parent(symbol="BTCUSDT")


# --- parent checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "context", "code", "detail"),
    [
        (
            parent(),
            ctx(global_state=TradingState.HALTED),
            DenyCode.GLOBAL_HALTED,
            "trading is halted on all venues (kill switch)",
        ),
        (
            parent(),
            ctx(venue_state=TradingState.HALTED),
            DenyCode.VENUE_HALTED,
            "trading on this venue is halted",
        ),
        (
            parent(),
            ctx(global_state=TradingState.REDUCING),
            DenyCode.REDUCING_ONLY,
            "all venues are reducing only: parent buy 10 BTC/USDT would take the net BTC "
            "position from 100 to 110 BTC",
        ),
        (
            parent(quantity=D("20.5")),
            ctx(),
            DenyCode.PARENT_NOTIONAL,
            "parent notional 1,230,000 USDT is above the limit 1,000,000 USDT",
        ),
        (
            parent(quantity=D("15"), reference_price=D("100")),
            ctx(positions={"BTC": D("590")}),
            DenyCode.POSITION_LIMIT,
            "parent buy 15 BTC/USDT would take the net BTC position from 590 to 605 BTC, "
            "beyond the limit of ±600 BTC",
        ),
    ],
)
def test_every_parent_deny_code_is_reachable(
    intent: ParentIntent, context: RiskContext, code: DenyCode, detail: str
) -> None:
    assert check_parent(intent, context, LIMITS) == Denied(code, detail)


def test_parent_within_limits_and_exactly_at_them_is_approved() -> None:
    assert check_parent(parent(), ctx(), LIMITS) == Approved()
    at_limits = parent(quantity=D("500"), reference_price=D("2000"))  # 1,000,000 USDT
    assert check_parent(at_limits, ctx(positions={"BTC": D("100")}), LIMITS) == Approved()
    reducing = ctx(global_state=TradingState.REDUCING)
    assert check_parent(parent(side=Side.SELL), reducing, LIMITS) == Approved()
    assert parent(symbol="BTC/USDT:USDT").quote == "USDT"


# --- property: an approved child never breaches any limit ---------------------------------------

decimals = st.decimals(min_value=D("0.001"), max_value=D("5"), places=3)
# Weighted toward ACTIVE and fresh data so that a good share of the scenarios is approved.
states = st.sampled_from([TradingState.ACTIVE] * 6 + [TradingState.REDUCING, TradingState.HALTED])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ChildIntent, RiskContext, RiskLimits]:
    limits = RiskLimits(
        max_child_notional=draw(st.sampled_from([D("10000"), D("50000"), D("100000")])),
        max_parent_notional=D("1000000"),
        max_daily_notional=draw(st.sampled_from([D("1000000"), D("2000000")])),
        max_position={"BTC": draw(st.sampled_from([D("0"), D("5"), D("600")]))},
        price_collar_bps=draw(st.sampled_from([D("10"), D("50"), D("100")])),
        max_book_age=timedelta(seconds=draw(st.integers(1, 10))),
        max_orders_per_window=draw(st.integers(1, 4)),
        order_window=timedelta(seconds=draw(st.integers(1, 10))),
    )
    mid = draw(st.decimals(min_value=D("50000"), max_value=D("70000"), places=1))
    kind = draw(st.sampled_from([InstrumentKind.SPOT, InstrumentKind.PERPETUAL]))
    intent = child(
        kind=kind,
        side=draw(st.sampled_from(list(Side))),
        qty=draw(decimals),
        price=mid + draw(st.decimals(min_value=D("-1500"), max_value=D("1500"), places=1)),
        contract_size=draw(st.sampled_from([D("1"), D("0.01")])),
        reduce_only=draw(st.booleans()) and kind is not InstrumentKind.SPOT,
        is_hedge=draw(st.booleans()),
    )
    offsets = sorted(draw(st.lists(st.integers(0, 12), max_size=4)), reverse=True)
    context = ctx(
        consensus_mid=draw(st.sampled_from([mid] * 9 + [None])),
        book_ts=draw(
            st.sampled_from([NOW - timedelta(seconds=draw(st.integers(0, 7)))] * 9 + [None])
        ),
        positions={"BTC": draw(st.decimals(min_value=D("-10"), max_value=D("10"), places=2))},
        day_notional=draw(st.decimals(min_value=D("0"), max_value=D("1100000"), places=0)),
        venue_state=draw(states),
        global_state=draw(states),
        rate_window=OrderRateWindow(VENUE, tuple(NOW - timedelta(seconds=s) for s in offsets)),
    )
    return intent, context, limits


def breaches(intent: ChildIntent, c: RiskContext, limits: RiskLimits) -> list[str]:
    """Every limit the child would breach, recomputed from first principles."""
    found = []
    if TradingState.HALTED in (c.global_state, c.venue_state):
        found.append("halted")
    before = c.positions.get("BTC", D(0))
    signed_base = intent.qty * intent.contract_size * (1 if intent.side is Side.BUY else -1)
    after = before + signed_base
    if TradingState.REDUCING in (c.global_state, c.venue_state) and not intent.reduce_only:
        toward_zero = (abs(after) <= abs(before) and (after >= 0) == (before >= 0)) or after == 0
        if not toward_zero:
            found.append("reducing")
    if c.book_ts is None or c.consensus_mid is None or c.now - c.book_ts > limits.max_book_age:
        found.append("stale")
    else:
        band = c.consensus_mid * limits.price_collar_bps / D(10_000)
        if intent.side is Side.BUY and intent.price > c.consensus_mid + band:
            found.append("collar")
        if intent.side is Side.SELL and intent.price < c.consensus_mid - band:
            found.append("collar")
    notional = intent.qty * intent.price * intent.contract_size
    if notional > limits.max_child_notional:
        found.append("child notional")
    if c.day_notional + notional > limits.max_daily_notional:
        found.append("daily notional")
    if abs(after) > limits.max_position["BTC"] and abs(after) > abs(before):
        found.append("position")
    in_window = [t for t in c.rate_window.times if c.now - t < limits.order_window]
    if len(in_window) >= limits.max_orders_per_window:
        found.append("rate")
    return found


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_an_approved_child_never_breaches_any_limit(
    scenario: tuple[ChildIntent, RiskContext, RiskLimits],
) -> None:
    intent, context, limits = scenario
    verdict = check_child(intent, context, limits)
    found = breaches(intent, context, limits)
    if isinstance(verdict, Approved):
        assert found == [], found
    else:
        assert found, f"denied {verdict.code} although no limit is breached"
