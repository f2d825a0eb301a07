"""Smart order router (pure): cost model, optimality, constraints, passive split, quotes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ems.domain import BookLevel, Instrument, InstrumentKind, OrderBook, Side
from routers import sor
from routers.types import (
    HealthReason,
    ImpactFit,
    RouteDecision,
    RouteRequest,
    VenueHealth,
    VenueState,
)

T0 = datetime(2024, 8, 8, 12, 0, tzinfo=UTC)
D = Decimal


def instrument(
    venue: str,
    lot: str = "0.001",
    min_qty: str = "0.001",
    min_notional: str = "5",
    taker: str = "0.001",
    maker: str = "0.0002",
    tick: str = "0.01",
) -> Instrument:
    return Instrument(
        venue=venue,
        symbol="BTC/USDT",
        kind=InstrumentKind.SPOT,
        base="BTC",
        quote="USDT",
        tick_size=D(tick),
        lot_size=D(lot),
        min_qty=D(min_qty),
        min_notional=D(min_notional),
        maker_fee=D(maker),
        taker_fee=D(taker),
    )


def ladder(
    venue: str, bid: str, ask: str, qty: str = "1", n: int = 10, step: str = "0.5"
) -> OrderBook:
    return OrderBook(
        venue=venue,
        symbol="BTC/USDT",
        ts=T0,
        bids=tuple(BookLevel(D(bid) - i * D(step), D(qty)) for i in range(n)),
        asks=tuple(BookLevel(D(ask) + i * D(step), D(qty)) for i in range(n)),
    )


def fit(venue: str, a: float, b: float) -> ImpactFit:
    return ImpactFit(venue, "BTC/USDT", a, b, a, a, b, b, 100, T0)


def state(
    venue: str,
    book: OrderBook | None = None,
    *,
    available: str = "1000",
    healthy: bool = True,
    impact: ImpactFit | None = None,
    fill_probability: float = 0.5,
    **instrument_args: str,
) -> VenueState:
    health = (
        VenueHealth(venue, True)
        if healthy
        else VenueHealth(venue, False, HealthReason.STALE_BOOK, "book is 9.0s old")
    )
    return VenueState(
        venue=venue,
        book=book if book is not None else ladder(venue, "99.99", "100.01"),
        instrument=instrument(venue, **instrument_args),
        health=health,
        available_qty=D(available),
        impact=impact,
        fill_probability=fill_probability,
    )


def buy(qty: str, price: str = "1000", share: str = "1") -> RouteRequest:
    return RouteRequest(Side.BUY, D(qty), D(price), True, D(share))


def sell(qty: str, price: str = "1", share: str = "1") -> RouteRequest:
    return RouteRequest(Side.SELL, D(qty), D(price), True, D(share))


def allocated(decision: RouteDecision) -> dict[str, Decimal]:
    return {a.venue: a.qty for a in decision.allocations}


def total_cost(decision: RouteDecision) -> float:
    """Expected cost in bps·base units (bps of the mid times quantity)."""
    return sum(float(a.qty) * a.expected_cost_bps for a in decision.allocations)


# --- the cost model ---------------------------------------------------------------------------


def test_expected_cost_walks_the_book_with_fees_and_adds_the_impact_penalty() -> None:
    book = OrderBook(
        "x",
        "BTC/USDT",
        T0,
        bids=(BookLevel(D("99"), D("5")),),
        asks=(BookLevel(D("101"), D("1")), BookLevel(D("102"), D("1"))),
    )
    no_impact = state("x", book, impact=fit("x", 0.0, 0.5), taker="0.001")
    # 1 at 101 and 0.5 at 102, each paying 10 bps of its notional, against a mid of 100.
    walk = (1 * (101 * 1.001 - 100) + 0.5 * (102 * 1.001 - 100)) / 100 * 1e4 / 1.5
    got = sor.expected_cost_bps(Side.BUY, D("1.5"), no_impact, D(100))
    assert got == pytest.approx(walk, rel=1e-12)

    with_impact = state("x", book, impact=fit("x", 12.0, 0.6), taker="0.001")
    x = 1.5 / 2  # relative to the displayed ask depth
    got = sor.expected_cost_bps(Side.BUY, D("1.5"), with_impact, D(100))
    assert got == pytest.approx(walk + 12.0 * x**0.6, rel=1e-12)

    # Without a fit, the square-root prior with the coefficient the module states.
    prior = state("x", book, impact=None, taker="0.001")
    got = sor.expected_cost_bps(Side.BUY, D("1.5"), prior, D(100))
    assert got == pytest.approx(walk + sor.SQRT_PRIOR_A_BPS * math.sqrt(x), rel=1e-12)

    # Selling 2 into the single bid level at 99: (100 − 99·0.999) / 100.
    sold = sor.expected_cost_bps(Side.SELL, D("2"), no_impact, D(100))
    assert sold == pytest.approx((100 - 99 * 0.999) / 100 * 1e4, rel=1e-12)


def test_expected_cost_is_none_beyond_the_visible_book_or_the_limit() -> None:
    venue = state("x", ladder("x", "99.99", "100.01", qty="1", n=3))
    assert sor.expected_cost_bps(Side.BUY, D("3"), venue, D(100)) is not None
    assert sor.expected_cost_bps(Side.BUY, D("3.001"), venue, D(100)) is None
    assert sor.expected_cost_bps(Side.BUY, D("2"), venue, D(100), limit=D("100.50")) is None
    assert sor.expected_cost_bps(Side.BUY, D("2"), venue, D(100), limit=D("100.51")) is not None
    assert sor.expected_cost_bps(Side.BUY, D("0"), venue, D(100)) is None


def test_consolidated_book_sums_quantity_per_price_across_venues() -> None:
    a = OrderBook(
        "a",
        "BTC/USDT",
        T0,
        bids=(BookLevel(D("99"), D("1")), BookLevel(D("98"), D("2"))),
        asks=(BookLevel(D("101"), D("1")),),
    )
    b = OrderBook(
        "b",
        "BTC/USDT",
        T0.replace(second=3),
        bids=(BookLevel(D("99.5"), D("1")), BookLevel(D("99"), D("4"))),
        asks=(BookLevel(D("100.5"), D("2")), BookLevel(D("101"), D("3"))),
    )
    merged = sor.consolidated_book([a, b])
    assert merged.venue == "consolidated"
    assert merged.ts == b.ts
    assert merged.bids == (
        BookLevel(D("99.5"), D("1")),
        BookLevel(D("99"), D("5")),
        BookLevel(D("98"), D("2")),
    )
    assert merged.asks == (BookLevel(D("100.5"), D("2")), BookLevel(D("101"), D("4")))
    with pytest.raises(ValueError):
        sor.consolidated_book([])


# --- aggressive routing: worked examples --------------------------------------------------------


def test_identical_venues_share_the_slice_evenly() -> None:
    venues = [state("a"), state("b")]
    decision = sor.route(buy("1.2"), venues)
    assert allocated(decision) == {"a": D("0.600"), "b": D("0.600")}
    assert decision.unrouted == 0
    assert decision.mid == D("100.00")
    for allocation in decision.allocations:
        assert allocation.price == D("100.01")
        assert allocation.fee_bps == pytest.approx(10.001)
        assert allocation.impact_bps == pytest.approx(sor.SQRT_PRIOR_A_BPS * math.sqrt(0.06))


def test_the_split_equalises_marginal_costs() -> None:
    # Same books, but b's learned impact is four times a's: a takes more, and at the optimum
    # the marginal impact costs a·(1+b)·x^b are equal: 5·1.5·xa^.5 = 20·1.5·xb^.5 → xa = 16 xb.
    venues = [state("a", impact=fit("a", 5, 0.5)), state("b", impact=fit("b", 20, 0.5))]
    decision = sor.route(buy("0.85"), venues)
    got = allocated(decision)
    assert got["a"] + got["b"] == D("0.85")
    assert float(got["a"]) == pytest.approx(0.8, abs=0.0015)
    assert float(got["b"]) == pytest.approx(0.05, abs=0.0015)


def test_a_cheaper_book_draws_the_flow_until_its_marginal_cost_matches() -> None:
    # cheap: ask 100.00 (no spread cost against the mid of 100), 0.5 per level, depth 5;
    # dear: ask 100.02 (2 bps), 5 per level, depth 50; both 10 bps taker and the sqrt prior.
    cheap = state("cheap", ladder("cheap", "99.98", "100.00", qty="0.5"))
    dear = state("dear", ladder("dear", "100.00", "100.02", qty="5"))
    decision = sor.route(buy("2"), [cheap, dear])
    got = allocated(decision)
    assert sum(got.values()) == D("2")
    # Marginal costs 10 + 15·sqrt(q/5) and 12 + 15·sqrt((2 − q)/50) are equal at q ≈ 0.4751.
    assert got == {"cheap": D("0.475"), "dear": D("1.525")}
    prices = {a.venue: a.price for a in decision.allocations}
    assert prices == {"cheap": D("100.00"), "dear": D("100.02")}
    single = min(q.expected_cost_bps for q in decision.quotes if q.expected_cost_bps is not None)
    assert decision.expected_cost_bps is not None
    assert decision.expected_cost_bps < single


def test_limit_price_bounds_every_child_and_the_depth_it_may_take() -> None:
    venue = state("a", ladder("a", "99.99", "100.01", qty="1", n=10))
    decision = sor.route(buy("5", price="101.2"), [venue])
    # Levels at 100.01, 100.51 and 101.01 are within the limit; 101.51 is not.
    assert allocated(decision) == {"a": D("3.000")}
    assert decision.allocations[0].price == D("101.01")
    assert decision.unrouted == D("2.000")
    assert decision.quotes[0].expected_cost_bps is None  # cannot do the whole slice alone
    assert decision.quotes[0].capacity == D("3.000")

    decision = sor.route(sell("5", price="98.8"), [venue])
    assert allocated(decision) == {"a": D("3.000")}
    assert decision.allocations[0].price == D("98.99")


def test_balances_cap_each_venue() -> None:
    venues = [state("a", available="0.2"), state("b", available="10")]
    decision = sor.route(buy("2"), venues)
    assert allocated(decision) == {"a": D("0.200"), "b": D("1.800")}


def test_unhealthy_venues_get_nothing_and_are_quoted_with_their_reason() -> None:
    cheap_but_stale = state("stale", ladder("stale", "99", "99.5"), healthy=False)
    decision = sor.route(buy("1"), [cheap_but_stale, state("ok")])
    assert allocated(decision) == {"ok": D("1.000")}
    quote = {q.venue: q for q in decision.quotes}["stale"]
    assert not quote.tradable
    assert quote.reason.startswith("stale_book")
    assert quote.capacity == 0
    assert quote.expected_cost_bps is not None  # still priced, for review
    assert any("stale" in note and "stale_book" in note for note in decision.notes)
    # The decision mid ignores the unhealthy venue's book.
    assert decision.mid == D("100.00")


def test_max_share_disperses_and_is_waived_for_a_single_tradable_venue() -> None:
    venues = [state("a"), state("b"), state("c", ladder("c", "99", "103"))]
    decision = sor.route(buy("3", share="0.4"), venues)
    got = allocated(decision)
    assert all(q <= D("1.2") for q in got.values())
    assert sum(got.values()) == D("3")
    assert got["c"] == D("0.6")  # dear, but the other two are capped

    alone = sor.route(buy("3", share="0.4"), [state("a"), state("b", healthy=False)])
    assert allocated(alone) == {"a": D("3.000")}
    assert any("only one tradable venue (a)" in note for note in alone.notes)


def test_an_allocation_below_the_minimum_is_dropped_when_that_is_cheaper() -> None:
    # Alone the optimum gives b about 0.12 (its book is five times thinner); its minimum is 0.6
    # (60 USDT at 100.01). Forcing 0.6 onto b costs more impact than a taking the whole slice.
    a = state("a", ladder("a", "99.99", "100.01", qty="5"), impact=fit("a", 5, 0.5))
    b = state("b", ladder("b", "99.99", "100.01", qty="1"), impact=fit("b", 6, 0.5))
    split = allocated(sor.route(buy("1"), [a, b]))
    assert D("0.1") < split["b"] < D("0.15")

    b = state("b", b.book, impact=fit("b", 6, 0.5), min_notional="60")
    decision = sor.route(buy("1"), [a, b])
    assert allocated(decision) == {"a": D("1.000")}
    assert any(
        note.startswith("b: allocation") and "minimum 0.600, re-allocated" in note
        for note in decision.notes
    )
    on_a = sor.expected_cost_bps(Side.BUY, D("0.4"), a, D(100))
    on_b = sor.expected_cost_bps(Side.BUY, D("0.6"), b, D(100))
    assert on_a is not None and on_b is not None
    assert total_cost(decision) < 0.4 * on_a + 0.6 * on_b


def test_an_allocation_below_the_minimum_is_raised_to_it_when_that_is_cheaper() -> None:
    # b's share (1.23) is below its minimum (150 USDT at 100.51: 1.493); dropping it would make
    # a walk three levels of its 1-lot ladder, so b is raised to its minimum instead.
    a = state("a", impact=fit("a", 5, 0.5))
    b = state("b", impact=fit("b", 6, 0.5), min_notional="150")
    decision = sor.route(buy("3"), [a, b])
    assert allocated(decision) == {"a": D("1.507"), "b": D("1.493")}
    assert any("raised to 1.493" in note for note in decision.notes)
    alone = sor.expected_cost_bps(Side.BUY, D("3"), a, D(100))
    assert alone is not None and total_cost(decision) < 3 * alone


def test_the_lot_rounding_remainder_goes_where_it_fits() -> None:
    venues = [state("coarse", lot="0.1", min_qty="0.1"), state("fine", lot="0.00001")]
    decision = sor.route(buy("1.23456"), venues)
    got = allocated(decision)
    assert sum(got.values()) == D("1.23456")
    assert got["coarse"] % D("0.1") == 0
    assert decision.unrouted == 0

    only_coarse = sor.route(buy("1.23456"), [state("coarse", lot="0.1", min_qty="0.1")])
    assert allocated(only_coarse) == {"coarse": D("1.2")}
    assert only_coarse.unrouted == D("0.03456")


def test_fitted_negative_exponent_is_treated_as_convex() -> None:
    decision = sor.route(buy("1"), [state("a", impact=fit("a", 5, -0.3)), state("b")])
    assert sum(allocated(decision).values()) == D("1")
    assert any("exponent below 0" in note for note in decision.notes)


def test_invalid_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="qty"):
        sor.route(buy("0"), [state("a")])
    with pytest.raises(ValueError, match="max_share"):
        sor.route(buy("1", share="0"), [state("a")])
    with pytest.raises(ValueError, match="duplicate"):
        sor.route(buy("1"), [state("a"), state("a")])


def test_no_venue_no_route() -> None:
    decision = sor.route(buy("1"), [])
    assert decision.allocations == ()
    assert decision.unrouted == D("1")
    assert decision.expected_cost_bps is None


# --- aggressive routing: properties -------------------------------------------------------------

LOTS = ("0.001", "0.002", "0.005", "0.01")  # every slice below is a multiple of 0.01


@st.composite
def venue_states(draw: st.DrawFn, name: str, mid: Decimal) -> VenueState:
    tick = D("0.01")
    skew = draw(st.integers(-30, 30)) * tick
    half = draw(st.integers(1, 20)) * tick
    n = draw(st.integers(1, 15))
    gaps = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    asks, bids, price_up, price_down = [], [], mid + skew + half, mid + skew - half
    for gap, size in zip(gaps, sizes, strict=True):
        asks.append(BookLevel(price_up, D(size) / 100))
        bids.append(BookLevel(price_down, D(size) / 100))
        price_up += gap * tick
        price_down -= gap * tick
    book = OrderBook(name, "BTC/USDT", T0, tuple(bids), tuple(asks))
    impact = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda a, b: fit(name, a, b),
                st.floats(0, 40, allow_nan=False),
                st.floats(0, 1.5, allow_nan=False),
            ),
        )
    )
    return VenueState(
        venue=name,
        book=book,
        instrument=instrument(
            name,
            lot=draw(st.sampled_from(LOTS)),
            min_qty=draw(st.sampled_from(("0.001", "0.01", "0.05"))),
            min_notional=draw(st.sampled_from(("0", "5", "10"))),
            taker=draw(st.sampled_from(("0", "0.0002", "0.001", "0.002"))),
        ),
        health=VenueHealth(name, True)
        if draw(st.booleans() | st.just(True))
        else VenueHealth(name, False, HealthReason.CIRCUIT_OPEN),
        available_qty=D(draw(st.integers(0, 3000))) / 100,
        impact=impact,
    )


@st.composite
def markets(draw: st.DrawFn) -> tuple[RouteRequest, list[VenueState]]:
    mid = D(100)
    n = draw(st.integers(2, 5))
    venues = [draw(venue_states(f"v{i}", mid)) for i in range(n)]
    side = draw(st.sampled_from(Side))
    qty = D(draw(st.integers(1, 2000))) / 100
    offset = D(draw(st.integers(0, 400))) / 100
    price = mid + offset if side is Side.BUY else mid - offset
    share = draw(st.sampled_from(("1", "1", "0.6", "0.5", "0.34", "0.25")))
    return RouteRequest(side, qty, price, True, D(share)), venues


def check_constraints(
    request: RouteRequest, venues: list[VenueState], decision: RouteDecision
) -> None:
    by_name = {v.venue: v for v in venues}
    total = sum((a.qty for a in decision.allocations), D(0))
    assert total <= request.qty
    assert total + decision.unrouted == request.qty
    assert len({a.venue for a in decision.allocations}) == len(decision.allocations)
    single = any("only one tradable venue" in note for note in decision.notes)
    if single:
        assert len(decision.allocations) <= 1
    for allocation in decision.allocations:
        venue = by_name[allocation.venue]
        assert venue.health.tradable, "an unhealthy venue got an allocation"
        assert allocation.qty > 0
        assert allocation.qty % venue.instrument.lot_size == 0
        assert allocation.qty == venue.instrument.round_qty(allocation.qty)
        assert allocation.qty >= venue.instrument.min_tradable_qty(allocation.price)
        assert allocation.qty <= venue.available_qty
        if not single:
            assert allocation.qty <= request.max_share * request.qty
        assert allocation.price % venue.instrument.tick_size == 0
        far = venue.book.asks if request.side is Side.BUY else venue.book.bids
        if request.side is Side.BUY:
            assert allocation.price <= request.price
            reachable = sum((lv.qty for lv in far if lv.price <= allocation.price), D(0))
        else:
            assert allocation.price >= request.price
            reachable = sum((lv.qty for lv in far if lv.price >= allocation.price), D(0))
        assert allocation.qty <= reachable, "the limit price does not reach enough depth"
        assert math.isfinite(allocation.expected_cost_bps)
    for quote in decision.quotes:
        if not by_name[quote.venue].health.tradable:
            assert not quote.tradable and quote.capacity == 0
            assert quote.reason.startswith(by_name[quote.venue].health.reason.value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets())
def test_split_respects_every_constraint(market: tuple[RouteRequest, list[VenueState]]) -> None:
    request, venues = market
    decision = sor.route(request, venues)
    check_constraints(request, venues, decision)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets())
def test_split_is_never_worse_than_the_best_single_venue(
    market: tuple[RouteRequest, list[VenueState]],
) -> None:
    request, venues = market
    request = RouteRequest(request.side, request.qty, request.price, True)  # max_share 1
    decision = sor.route(request, venues)
    whole = [
        q.expected_cost_bps
        for q in decision.quotes
        if q.tradable and q.capacity >= request.qty and q.expected_cost_bps is not None
    ]
    assume(whole)
    assert decision.unrouted == 0
    assert decision.expected_cost_bps is not None
    assert decision.expected_cost_bps <= min(whole) + 1e-9 * (1 + abs(min(whole)))


def brute_force(request: RouteRequest, a: VenueState, b: VenueState, mid: Decimal) -> float:
    """Least total cost over every split of the slice on the 0.01 grid (both venues)."""
    lot = D("0.01")

    def cost(venue: VenueState, q: Decimal) -> float | None:
        if q == 0:
            return 0.0
        if q > venue.available_qty:
            return None
        unit = sor.expected_cost_bps(request.side, q, venue, mid, limit=request.price)
        return None if unit is None else unit * float(q)

    best = math.inf
    steps = int(request.qty / lot)
    for k in range(steps + 1):
        qa = k * lot
        ca, cb = cost(a, qa), cost(b, request.qty - qa)
        if ca is not None and cb is not None:
            best = min(best, ca + cb)
    return best


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 300),
    st.sampled_from(Side),
    st.data(),
)
def test_split_matches_an_exhaustive_search_on_two_venues(
    hundredths: int, side: Side, data: st.DataObject
) -> None:
    venues = [data.draw(venue_states(name, D(100))) for name in ("a", "b")]
    # Plain venues: healthy, lot 0.01 and no minimums, so the only question is the split.
    venues = [
        VenueState(
            v.venue,
            v.book,
            instrument(v.venue, lot="0.01", min_qty="0.01", min_notional="0"),
            VenueHealth(v.venue, True),
            v.available_qty,
            v.impact,
        )
        for v in venues
    ]
    qty = D(hundredths) / 100
    price = D(104) if side is Side.BUY else D(96)
    request = RouteRequest(side, qty, price, True)
    decision = sor.route(request, venues)
    assert decision.mid is not None
    best = brute_force(request, venues[0], venues[1], decision.mid)
    assume(math.isfinite(best))
    assert decision.unrouted == 0
    assert total_cost(decision) <= best + 1e-7 * (1 + abs(best))


# --- passive routing ------------------------------------------------------------------------------


def passive(side: Side, qty: str, price: str, share: str = "1") -> RouteRequest:
    return RouteRequest(side, D(qty), D(price), False, D(share))


def test_passive_split_follows_fill_probabilities() -> None:
    venues = [
        state("a", ladder("a", "99.99", "100.01"), fill_probability=0.6),
        state("b", ladder("b", "99.98", "100.02"), fill_probability=0.3),
        state("c", ladder("c", "99.97", "100.03"), fill_probability=0.1),
    ]
    decision = sor.route(passive(Side.BUY, "1", "100.5"), venues)
    assert allocated(decision) == {"a": D("0.600"), "b": D("0.300"), "c": D("0.100")}
    # Each child joins its own venue's bid.
    assert {a.venue: a.price for a in decision.allocations} == {
        "a": D("99.99"),
        "b": D("99.98"),
        "c": D("99.97"),
    }
    a = decision.allocations[0]
    assert a.impact_bps == 0
    assert a.expected_cost_bps == pytest.approx((99.99 * 1.0002 - 100) / 100 * 1e4)

    # Dispersion caps a at half; the rest is re-split 3:1 between b and c.
    capped = sor.route(passive(Side.BUY, "1", "100.5", share="0.5"), venues)
    assert allocated(capped) == {"a": D("0.500"), "b": D("0.375"), "c": D("0.125")}

    # Sells join the asks, and never below the limit.
    sold = sor.route(passive(Side.SELL, "1", "100.02"), venues)
    assert {a.venue: a.price for a in sold.allocations} == {
        "a": D("100.02"),
        "b": D("100.02"),
        "c": D("100.03"),
    }


def test_passive_slice_rests_on_the_cheapest_maker_fee_first() -> None:
    venues = [
        state("a", ladder("a", "99.99", "100.01"), maker="0.0002"),
        state("b", ladder("b", "99.99", "100.01"), maker="0.0001"),
        state("c", ladder("c", "99.99", "100.01"), maker="0.00012"),
    ]

    alone = sor.route(passive(Side.BUY, "1", "100.5"), venues)
    capped = sor.route(passive(Side.BUY, "1", "100.5", share="0.6"), venues)

    # b and c are within the tolerance of each other; a's fee is a full bp dearer.
    assert set(allocated(alone)) == {"b", "c"}
    assert any("maker fee" in q.reason for q in alone.quotes if q.venue == "a")
    # Capped at 60 %, b and c still hold the whole slice between them.
    assert set(allocated(capped)) == {"b", "c"} and sum(allocated(capped).values()) == D(1)


def test_passive_buy_never_rests_above_the_limit() -> None:
    venues = [state("a", ladder("a", "100.40", "100.60"), fill_probability=0.9)]
    decision = sor.route(passive(Side.BUY, "1", "100.333"), venues)
    assert decision.allocations[0].price == D("100.33")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 1.0, allow_nan=False), min_size=2, max_size=5),
    st.integers(100, 5000),
)
def test_passive_split_is_proportional_within_a_lot(
    probabilities: list[float], thousandths: int
) -> None:
    venues = [
        state(f"v{i}", ladder(f"v{i}", "99.99", "100.01"), fill_probability=p, min_notional="0")
        for i, p in enumerate(probabilities)
    ]
    qty = D(thousandths) / 1000
    decision = sor.route(passive(Side.BUY, str(qty), "101"), venues)
    got = allocated(decision)
    assert sum(got.values()) == qty
    assert decision.unrouted == 0
    weight = sum(probabilities)
    for i, p in enumerate(probabilities):
        share = float(qty) * p / weight
        assert abs(float(got.get(f"v{i}", D(0))) - share) <= 0.001 + 1e-9


def test_passive_respects_balances_and_health() -> None:
    venues = [
        state("a", fill_probability=0.9, available="0.1"),
        state("b", fill_probability=0.1),
        state("c", fill_probability=0.9, healthy=False),
    ]
    decision = sor.route(passive(Side.BUY, "1", "101"), venues)
    assert allocated(decision) == {"a": D("0.100"), "b": D("0.900")}
    assert {q.venue: q.tradable for q in decision.quotes} == {"a": True, "b": True, "c": False}
