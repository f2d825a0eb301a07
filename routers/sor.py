"""Smart order router (pure): split one slice across venues at the least expected all-in cost.

Cost model (aggressive slices)
------------------------------
Costs are in bps of the consolidated decision mid ``M`` (median of the venue mids). Taking ``q``
on venue ``v`` costs, in bps·base units (divide by ``q`` for the average in bps)::

    C_v(q) = Σ_i q_i · c_i  +  q · a_v · (q / D_v) ** b_v
    c_i    = 10⁴ · (p_i · (1 + f_v) − M) / M        (buy; sell: 10⁴ · (M − p_i · (1 − f_v)) / M)

The first term walks the venue's visible book level by level (``q_i`` taken at level price
``p_i``) with the taker fee ``f_v`` on each lot's notional: what each marginal lot pays. The
second is the learned impact penalty ``a · x ** b`` (``routers.impact``; ``x = q / D_v``, ``D_v``
the displayed top-10 depth taken) for what the visible book does not show (refill, other takers,
latency), charged on the whole quantity, so its marginal cost is ``a (1 + b) x ** b``. A venue
without a fit uses the square-root prior ``a = SQRT_PRIOR_A_BPS`` (10 bps), ``b = 0.5``.

Algorithm and why it is optimal
-------------------------------
Each ``C_v`` is convex: the walk is piecewise linear with non-decreasing level costs ``c_i``
(levels sorted best first), and ``q ** (1 + b)`` is convex for ``b >= 0`` (a fitted ``b < 0`` is
treated as 0, with a note). The problem ``min Σ C_v(q_v)`` s.t. ``Σ q_v = Q``,
``0 <= q_v <= cap_v`` is then a separable convex program with one linear constraint, and the
KKT conditions are sufficient: an allocation is optimal iff some multiplier ``λ`` has every
venue's marginal cost equal to ``λ`` where ``0 < q_v < cap_v``, at most ``λ`` where
``q_v = cap_v`` and at least ``λ`` where ``q_v = 0`` (one-sided derivatives at level kinks).
This is water-filling: ``q_v(λ) = max{q <= cap_v : C_v'(q⁻) <= λ}`` is non-decreasing in ``λ``
and has a closed form per level (invert the impact marginal inside the level where ``λ``
falls, found by bisection over the levels' starting marginals). We bisect ``λ`` until
``Σ q_v(λ)`` is within a quarter of the smallest lot of ``Q``; where a marginal is flat (a
level with no impact), the residual between ``q_v(λ⁻)`` and ``q_v(λ⁺)`` goes to the flat venues
cheapest first. It is the continuous limit of the greedy "give the next lot to the venue with
the cheapest marginal lot" (a priority queue), which is optimal for separable convex costs for
the same reason, and it needs no per-lot loop. (tests/test_sor.py checks the lot-rounded split
against an exhaustive search over every split of two venues.)

Then the discrete rules, which make the problem non-convex and are handled on top:

- lots: every ``q_v`` is rounded down to its venue's lot; the rounding remainder is given, a
  lot (or a few) at a time, to the venue whose next step is cheapest per unit while any venue
  can still absorb it; what none can absorb is ``unrouted``;
- minimums: an allocation below ``min_tradable_qty`` at its own limit price (the smallest
  first) is either dropped, its quantity re-allocated by re-solving over the other venues, or
  raised to the minimum with the rest re-solved around it, whichever routes more and then
  costs less;
- a last check compares the result with every single-venue plan (each venue alone up to its
  capacity) and keeps the plan that routes the most, then costs the least, so lot rounding and
  minimum drops can never leave the split worse than the best single venue.

Constraints: each venue's capacity is ``min(available_qty, visible depth within request.price,
max_share · Q)`` rounded down to its lot (``max_share`` is waived, with a note, when only one
venue is tradable); unhealthy venues get nothing. A child's limit is the worst level it must
reach on its venue, rounded never more aggressive (``instrument.passive_price``), so never
beyond ``request.price``.

Passive slices
--------------
Split in proportion to each venue's learned ``fill_probability`` (proportional water-filling:
venues whose share exceeds their capacity are capped and the rest re-split), rounded down to
lots with the remainder given to the venues furthest below their share, a venue below its
minimum dropped (the smallest first) and the slice re-split without it. Each child joins its
own venue's touch on our side (or one tick inside the far touch of a one-sided book), never
beyond ``request.price``. Its expected cost is the (usually negative) distance to the mid plus
the maker fee, if filled; no impact.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from statistics import median
from typing import Final

from ems.domain import ZERO, BookLevel, OrderBook, Side
from routers import impact
from routers.types import (
    Allocation,
    RouteDecision,
    RouteRequest,
    VenueQuote,
    VenueState,
)

BPS: Final = 10_000.0
SQRT_PRIOR_A_BPS: Final = impact.PRIOR_A_BPS
"""Impact coefficient for a venue without a fit: ``10 · sqrt(x)`` bps (square-root law)."""
SQRT_PRIOR_B: Final = impact.PRIOR_B
CONSOLIDATED: Final = "consolidated"
_MAX_BISECTIONS: Final = 200


# --- the cost curve of one venue ------------------------------------------------------------


@dataclass(slots=True)
class _Curve:
    """Expected all-in cost of taking ``q`` on one venue (convex in ``q``), in bps·base units.

    Levels are those within the limit price, best first, cut once ``needed`` is covered.
    ``starts``/``ends`` bound each level in cumulative quantity; ``unit`` is its cost per unit
    ``c_i``; ``walked`` the walk cost up to its start; ``keys`` the marginal cost at its start.
    """

    state: VenueState
    prices: list[Decimal]
    cum: list[Decimal]
    price_f: list[float]
    starts: list[float]
    ends: list[float]
    unit: list[float]
    walked: list[float]
    notional: list[float]
    keys: list[float]
    a: float
    b: float
    depth: float
    fee: float
    mid: float
    clamped_b: bool

    @property
    def visible(self) -> Decimal:
        """Quantity the visible book offers within the limit (up to what was needed)."""
        return self.cum[-1] if self.cum else ZERO

    def _level(self, q: float) -> int:
        return min(bisect.bisect_left(self.ends, q), len(self.ends) - 1)

    def impact_bps(self, q: float) -> float:
        """Average impact penalty in bps for taking ``q``."""
        if q <= 0 or self.a <= 0:
            return 0.0
        return self.a * (q / self.depth) ** self.b

    def cost(self, q: float) -> float:
        """Total expected cost of taking ``q`` (bps of the mid × base units)."""
        if q <= 0:
            return 0.0
        i = self._level(q)
        walk = self.walked[i] + self.unit[i] * (q - self.starts[i])
        return walk + q * self.impact_bps(q)

    def average_price(self, q: float) -> float:
        i = self._level(q)
        return (self.notional[i] + self.price_f[i] * (q - self.starts[i])) / q

    def _impact_marginal(self, q: float) -> float:
        if self.a <= 0:
            return 0.0
        if self.b == 0:
            return self.a
        return self.a * (1 + self.b) * (q / self.depth) ** self.b

    def marginal(self, q: float) -> float:
        """Marginal cost of the next unit at ``q`` (right derivative)."""
        i = min(bisect.bisect_right(self.ends, q), len(self.ends) - 1)
        return self.unit[i] + self._impact_marginal(q)

    def fill_at(self, lam: float, cap: float) -> float:
        """Most quantity whose marginal cost stays within ``lam`` (``q_v(λ)``), up to ``cap``."""
        i = bisect.bisect_right(self.keys, lam) - 1
        if i < 0:
            return 0.0
        room = lam - self.unit[i]
        q = self.ends[i]
        if self.a > 0 and self.b > 0:
            # Invert a·(1+b)·(q/D)^b = room in log space: 1/b may be large.
            ratio = room / (self.a * (1 + self.b))
            inverse = 0.0
            if ratio > 0:
                inverse = self.depth * math.exp(min(math.log(ratio) / self.b, 700.0))
            q = max(self.starts[i], min(q, inverse))
        return min(q, cap)

    def worst_price(self, qty: Decimal) -> Decimal:
        """Price of the deepest level taking ``qty`` must reach."""
        i = min(bisect.bisect_left(self.cum, qty), len(self.cum) - 1)
        return self.prices[i]


def _within(side: Side, price: Decimal, limit: Decimal | None) -> bool:
    if limit is None:
        return True
    return price <= limit if side is Side.BUY else price >= limit


def _build_curve(
    state: VenueState, side: Side, mid: float, limit: Decimal | None, needed: Decimal | None
) -> _Curve | None:
    """The cost curve of ``state`` for a ``side`` order (None: nothing to take within limit)."""
    far = state.book.asks if side is Side.BUY else state.book.bids
    levels = [lv for lv in far if lv.qty > 0 and lv.price > 0]
    prices = [lv.price for lv in levels]
    if prices != sorted(prices, reverse=side is Side.SELL):  # books come best first
        levels.sort(key=lambda lv: lv.price, reverse=side is Side.SELL)
    depth = float(impact.displayed_depth(state.book, side))
    fee = float(state.instrument.taker_fee)
    fit = state.impact
    a, b = (SQRT_PRIOR_A_BPS, SQRT_PRIOR_B) if fit is None else (fit.a, fit.b)
    clamped = b < 0
    a, b = max(a, 0.0), max(b, 0.0)
    curve = _Curve(state, [], [], [], [], [], [], [], [], [], a, b, depth, fee, mid, clamped)
    cum, start, walked, notional = ZERO, 0.0, 0.0, 0.0
    for level in levels:
        if not _within(side, level.price, limit):
            break
        p = float(level.price)
        c = BPS * ((p * (1 + fee) - mid) if side is Side.BUY else (mid - p * (1 - fee))) / mid
        cum += level.qty
        end = float(cum)
        curve.prices.append(level.price)
        curve.cum.append(cum)
        curve.price_f.append(p)
        curve.starts.append(start)
        curve.ends.append(end)
        curve.unit.append(c)
        curve.walked.append(walked)
        curve.notional.append(notional)
        curve.keys.append(c + curve._impact_marginal(start))
        walked += c * (end - start)
        notional += p * (end - start)
        start = end
        if needed is not None and cum >= needed:
            break
    if not curve.prices or depth <= 0 or mid <= 0:
        return None
    return curve


# --- public helpers -------------------------------------------------------------------------


def consolidated_book(books: Iterable[OrderBook]) -> OrderBook:
    """One book for the whole market: every venue's levels merged, quantity summed per price.

    Venue ``"consolidated"``, timestamp of the freshest book. The result may be crossed when one
    venue's bid is above another's ask (an arbitrage the venues' own books do not show).
    """
    books = list(books)
    if not books:
        raise ValueError("consolidated_book needs at least one book")
    symbols = {book.symbol for book in books}
    if len(symbols) > 1:
        raise ValueError(f"cannot consolidate books of different symbols: {sorted(symbols)}")
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    for book in books:
        for merged, levels in ((bids, book.bids), (asks, book.asks)):
            for level in levels:
                if level.qty > 0:
                    merged[level.price] = merged.get(level.price, ZERO) + level.qty
    return OrderBook(
        venue=CONSOLIDATED,
        symbol=books[0].symbol,
        ts=max(book.ts for book in books),
        bids=tuple(BookLevel(p, bids[p]) for p in sorted(bids, reverse=True)),
        asks=tuple(BookLevel(p, asks[p]) for p in sorted(asks)),
    )


def expected_cost_bps(
    side: Side, qty: Decimal, state: VenueState, mid: Decimal, *, limit: Decimal | None = None
) -> float | None:
    """Expected all-in cost (bps of ``mid``) of taking ``qty`` on this venue alone.

    Taker fee + the fee-adjusted walk of the visible book + the impact penalty (the venue's fit,
    or the square-root prior). Health and balances are not considered. None when the visible
    book (within ``limit``, if given) cannot take ``qty``, or ``qty`` is not positive.
    """
    if mid <= 0:
        raise ValueError(f"mid must be positive, got {mid}")
    if qty <= 0:
        return None
    curve = _build_curve(state, side, float(mid), limit, qty)
    if curve is None or curve.visible < qty:
        return None
    q = float(qty)
    return curve.cost(q) / q


# --- routing ----------------------------------------------------------------------------------


def route(request: RouteRequest, venues: Sequence[VenueState]) -> RouteDecision:
    """Split ``request`` across ``venues`` (see the module docstring for the model).

    Returns one allocation per venue that gets quantity, a quote for every venue, the
    quantity-weighted expected cost and what could not be routed, with notes explaining
    exclusions, waived dispersion and dropped allocations.
    """
    _validate(request, venues)
    notes: list[str] = []
    for state in venues:
        if not state.health.tradable:
            notes.append(f"{state.venue}: excluded ({_health_reason(state)})")
    mid = _decision_mid(venues)
    reference = mid if mid is not None else _fallback_reference(venues)
    if reference is None:
        notes.append("no venue has a price: nothing routed")
        quotes = tuple(
            VenueQuote(
                s.venue,
                s.book.best_bid,
                s.book.best_ask,
                False,
                _health_reason(s) if not s.health.tradable else "no_book",
                None,
                ZERO,
            )
            for s in venues
        )
        return RouteDecision((), quotes, None, None, request.qty, tuple(notes))
    if mid is None:
        notes.append(f"no two-sided book: costs in bps of the median touch {reference}")
    if request.aggressive:
        return _route_aggressive(request, venues, mid, reference, notes)
    return _route_passive(request, venues, mid, reference, notes)


def _validate(request: RouteRequest, venues: Sequence[VenueState]) -> None:
    if request.qty <= 0:
        raise ValueError(f"qty must be positive, got {request.qty}")
    if request.price <= 0:
        raise ValueError(f"price must be positive, got {request.price}")
    if not ZERO < request.max_share <= 1:
        raise ValueError(f"max_share must be in (0, 1], got {request.max_share}")
    names = [state.venue for state in venues]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate venues: {names}")


def _health_reason(state: VenueState) -> str:
    health = state.health
    return f"{health.reason.value}: {health.detail}" if health.detail else health.reason.value


def _decision_mid(venues: Sequence[VenueState]) -> Decimal | None:
    """Median of the mids of the healthy venues (of all venues when none is healthy)."""
    healthy = [s.book.mid for s in venues if s.health.tradable and s.book.mid is not None]
    mids = healthy or [s.book.mid for s in venues if s.book.mid is not None]
    return Decimal(median(mids)) if mids else None


def _fallback_reference(venues: Sequence[VenueState]) -> Decimal | None:
    """Median of the healthy venues' touches, when no venue has a two-sided book."""
    prices = [
        p
        for s in venues
        for p in (s.book.best_bid, s.book.best_ask)
        if p is not None and s.health.tradable
    ]
    return Decimal(median(prices)) if prices else None


def _total(allocation: dict[str, Decimal]) -> Decimal:
    return sum(allocation.values(), ZERO)


def _decision(
    request: RouteRequest,
    allocations: list[Allocation],
    quotes: list[VenueQuote],
    mid: Decimal | None,
    notes: list[str],
) -> RouteDecision:
    routed = sum((a.qty for a in allocations), ZERO)
    expected = None
    if routed > 0:
        expected = sum(float(a.qty) * a.expected_cost_bps for a in allocations) / float(routed)
    unrouted = request.qty - routed
    if unrouted > 0:
        notes.append(f"unrouted {unrouted}: capacity, lots and minimums allow {routed}")
    return RouteDecision(
        allocations=tuple(allocations),
        quotes=tuple(quotes),
        expected_cost_bps=expected,
        mid=mid,
        unrouted=unrouted,
        notes=tuple(notes),
    )


# --- aggressive -----------------------------------------------------------------------------


def _route_aggressive(
    request: RouteRequest,
    venues: Sequence[VenueState],
    mid: Decimal | None,
    reference: Decimal,
    notes: list[str],
) -> RouteDecision:
    side, qty = request.side, request.qty
    ref = float(reference)
    every: dict[str, _Curve | None] = {}
    curves: dict[str, _Curve] = {}
    capacity: dict[str, Decimal] = {}
    reasons: dict[str, str] = {}
    usable: dict[str, bool] = {}
    for state in venues:
        name = state.venue
        curve = every[name] = _build_curve(state, side, ref, request.price, qty)
        usable[name] = state.health.tradable and bool(
            state.book.asks if side is Side.BUY else state.book.bids
        )
        if not state.health.tradable:
            reasons[name] = _health_reason(state)
            continue
        if not usable[name]:
            reasons[name] = "no_book: nothing to take on the far side"
            continue
        if curve is None:
            reasons[name] = f"no liquidity within the limit {request.price}"
            continue
        if curve.clamped_b:
            notes.append(f"{name}: fitted impact exponent below 0 treated as 0")
        cap = state.instrument.round_qty(min(state.available_qty, curve.visible, qty))
        if cap <= 0:
            reasons[name] = (
                f"capacity below one lot (available {state.available_qty}, "
                f"visible within limit {curve.visible})"
            )
            continue
        minimum = state.instrument.min_tradable_qty(curve.worst_price(cap))
        if cap < minimum:
            reasons[name] = f"capacity {cap} below the venue minimum {minimum}"
            continue
        curves[name] = curve
        capacity[name] = cap

    _apply_share_cap(request, venues, capacity, reasons, notes, curves)
    plan = _best_aggressive_plan(request, curves, capacity, notes)

    allocations = []
    for state in venues:
        name = state.venue
        if plan.get(name, ZERO) <= 0:
            continue
        curve = curves[name]
        q = plan[name]
        q_f = float(q)
        allocations.append(
            Allocation(
                venue=name,
                qty=q,
                price=state.instrument.passive_price(side, curve.worst_price(q)),
                expected_cost_bps=curve.cost(q_f) / q_f,
                fee_bps=BPS * curve.average_price(q_f) * curve.fee / ref,
                impact_bps=curve.impact_bps(q_f),
            )
        )
    quotes = []
    for state in venues:
        name = state.venue
        whole = state.instrument.round_qty(qty)
        curve_or_none = every[name]
        cost = None
        if (
            curve_or_none is not None
            and whole > 0
            and state.available_qty >= whole
            and curve_or_none.visible >= whole
        ):
            cost = curve_or_none.cost(float(whole)) / float(whole)
        quotes.append(_quote(state, usable, reasons, capacity, cost))
    return _decision(request, allocations, quotes, mid, notes)


def _quote(
    state: VenueState,
    usable: Mapping[str, bool],
    reasons: Mapping[str, str],
    capacity: Mapping[str, Decimal],
    cost: float | None,
) -> VenueQuote:
    """The stored view of one venue for a decision: its touch, tradability, cost, capacity."""
    name = state.venue
    return VenueQuote(
        venue=name,
        best_bid=state.book.best_bid,
        best_ask=state.book.best_ask,
        tradable=usable[name],
        reason=reasons.get(name, "ok"),
        expected_cost_bps=cost,
        capacity=capacity.get(name, ZERO),
    )


def _apply_share_cap(
    request: RouteRequest,
    venues: Sequence[VenueState],
    capacity: dict[str, Decimal],
    reasons: dict[str, str],
    notes: list[str],
    curves: dict[str, _Curve] | None = None,
    prices: dict[str, Decimal] | None = None,
) -> None:
    """Cap every venue at ``max_share`` of the slice; waived when a single venue is tradable."""
    if len(capacity) == 1:
        if request.max_share < 1:
            notes.append(
                f"only one tradable venue ({next(iter(capacity))}): max_share "
                f"{request.max_share} not applied"
            )
        return
    if request.max_share >= 1:
        return
    share = request.qty * request.max_share
    for state in venues:
        name = state.venue
        if name not in capacity:
            continue
        cap = state.instrument.round_qty(min(capacity[name], share))
        if curves is not None:
            price = curves[name].worst_price(cap) if cap > 0 else None
        else:
            price = prices[name] if prices is not None else None
        minimum = state.instrument.min_tradable_qty(price) if price is not None else None
        if cap <= 0 or (minimum is not None and cap < minimum):
            reasons[name] = f"max_share cap {cap} below the venue minimum"
            del capacity[name]
            if curves is not None:
                curves.pop(name, None)
            continue
        capacity[name] = cap


def _best_aggressive_plan(
    request: RouteRequest,
    curves: dict[str, _Curve],
    capacity: dict[str, Decimal],
    notes: list[str],
) -> dict[str, Decimal]:
    """The split with minimums enforced, or a single venue when it routes more or costs less.

    While some allocation is below its venue's minimum, the smallest such venue is either
    dropped or fixed at its minimum (whichever plan routes more, then costs less) and the rest
    of the slice is re-solved over the other venues.
    """

    def key(candidate: dict[str, Decimal]) -> tuple[Decimal, float]:
        cost = sum(curves[n].cost(float(q)) for n, q in candidate.items() if q > 0)
        return (-_total(candidate), cost)

    def solve(active: dict[str, Decimal], fixed: dict[str, Decimal]) -> dict[str, Decimal]:
        plan = _water_fill(request.qty - _total(fixed), curves, active)
        plan.update(fixed)
        return plan

    active, fixed = dict(capacity), dict[str, Decimal]()
    plan = solve(active, fixed)
    while True:
        below = []
        for name, q in plan.items():
            if name in fixed or q <= 0:
                continue
            minimum = _minimum(curves[name], q)
            if q < minimum:
                below.append((q, name, minimum))
        if not below:
            break
        q, name, minimum = min(below)
        rest = {n: c for n, c in active.items() if n != name}
        options = [(solve(rest, fixed), "re-allocated")]
        raised = _minimum(curves[name], minimum)
        raised = max(raised, _minimum(curves[name], raised))
        if raised <= capacity[name] and _total(fixed) + raised <= request.qty:
            with_fixed = {**fixed, name: raised}
            options.append((solve(rest, with_fixed), f"raised to {raised}"))
        plan, how = min(options, key=lambda option: key(option[0]))
        notes.append(f"{name}: allocation {q} below the venue minimum {minimum}, {how}")
        active = rest
        if how != "re-allocated":
            fixed = {**fixed, name: raised}

    best, best_key = plan, key(plan)
    for name, cap in sorted(capacity.items()):
        single = {name: cap}
        single_key = key(single)
        if single_key < best_key:
            best, best_key = single, single_key
    if best is not plan:
        notes.append(f"{next(iter(best))} alone beats the split after lot and minimum rounding")
    return {n: q for n, q in best.items() if q > 0}


def _minimum(curve: _Curve, qty: Decimal) -> Decimal:
    """The venue's smallest tradable quantity at the limit price an order of ``qty`` needs."""
    return curve.state.instrument.min_tradable_qty(curve.worst_price(qty))


def _water_fill(
    qty: Decimal, curves: dict[str, _Curve], capacity: dict[str, Decimal]
) -> dict[str, Decimal]:
    """Cheapest split of ``qty`` under ``capacity`` (continuous optimum, then lot-rounded)."""
    names = sorted(capacity)
    if not names:
        return {}
    if _total(capacity) <= qty:
        return dict(capacity)
    caps = {n: float(capacity[n]) for n in names}
    target = float(qty)
    # Lot rounding follows, so the continuous split need not be finer than a fraction of a lot.
    tolerance = min(float(curves[n].state.instrument.lot_size) for n in names) * 0.25

    def filled(lam: float) -> dict[str, float]:
        return {n: curves[n].fill_at(lam, caps[n]) for n in names}

    lo = min(curves[n].keys[0] for n in names) - 1.0
    hi = max(curves[n].marginal(caps[n]) for n in names) + 1.0
    low, high = filled(lo), filled(hi)
    for _ in range(_MAX_BISECTIONS):
        lam = (lo + hi) / 2
        if lam in (lo, hi):
            break
        at = filled(lam)
        total = sum(at.values())
        if abs(total - target) <= tolerance:
            low = high = at
            break
        if total < target:
            lo, low = lam, at
        else:
            hi, high = lam, at
    continuous = dict(low)
    residual = target - sum(continuous.values())
    # Venues whose marginal is flat at λ (a level without impact) share what is left between
    # the two sides of the jump, cheapest first.
    for name in sorted(names, key=lambda n: (curves[n].marginal(continuous[n]), n)):
        if residual <= 0:
            break
        extra = min(high[name] - continuous[name], residual)
        if extra > 0:
            continuous[name] += extra
            residual -= extra

    plan: dict[str, Decimal] = {}
    for name in names:
        instrument = curves[name].state.instrument
        plan[name] = min(capacity[name], instrument.round_qty(Decimal(repr(continuous[name]))))
    _place_remainder(qty, plan, capacity, curves)
    return plan


def _place_remainder(
    qty: Decimal,
    plan: dict[str, Decimal],
    capacity: dict[str, Decimal],
    curves: dict[str, _Curve],
) -> None:
    """Give what lot rounding left over to the venues whose next step is cheapest per unit."""
    excess = _total(plan) - qty
    if excess > 0:  # float round-trip overshoot: trim the largest allocation
        name = max(plan, key=lambda n: (plan[n], n))
        lot = curves[name].state.instrument.lot_size
        plan[name] -= (excess / lot).to_integral_value(rounding=ROUND_CEILING) * lot
    while True:
        remainder = qty - _total(plan)
        best: tuple[float, str, Decimal] | None = None
        for name in plan:
            lot = curves[name].state.instrument.lot_size
            units = int(min(capacity[name] - plan[name], remainder) // lot)
            if units <= 0:
                continue
            step = max(1, units // 8) * lot
            q = float(plan[name])
            per_unit = (curves[name].cost(q + float(step)) - curves[name].cost(q)) / float(step)
            if best is None or (per_unit, name) < best[:2]:
                best = (per_unit, name, step)
        if best is None:
            return
        plan[best[1]] += best[2]


# --- passive --------------------------------------------------------------------------------


def _passive_price(state: VenueState, request: RouteRequest) -> Decimal | None:
    """Join the venue's touch on our side (one tick inside a one-sided book), capped by limit."""
    side, instrument, book = request.side, state.instrument, state.book
    touch = book.touch(side)
    if touch is None:
        far = book.far_touch(side)
        if far is None:
            return None
        touch = far - instrument.tick_size if side is Side.BUY else far + instrument.tick_size
    price = instrument.passive_price(side, touch)
    cap = instrument.passive_price(side, request.price)
    price = min(price, cap) if side is Side.BUY else max(price, cap)
    return price if price > 0 else None


def _passive_cost(state: VenueState, side: Side, price: Decimal, ref: float) -> tuple[float, float]:
    """(expected all-in cost, fee) in bps of ``ref`` for a passive child filled at ``price``."""
    p, fee = float(price), float(state.instrument.maker_fee)
    move = (p - ref) if side is Side.BUY else (ref - p)
    return BPS * (move + p * fee) / ref, BPS * p * fee / ref


PASSIVE_COST_TOLERANCE_BPS = 0.25


def _cheapest_passive(
    request: RouteRequest,
    by_name: Mapping[str, VenueState],
    capacity: dict[str, Decimal],
    reasons: dict[str, str],
) -> dict[str, Decimal]:
    """Venues a passive slice should rest on: those whose maker fee is within
    ``PASSIVE_COST_TOLERANCE_BPS`` of the cheapest, then the next cheapest ones only while the
    chosen venues cannot hold the whole slice.

    Only fees are compared: where a venue's touch sits (a lower bid, a wider spread) would look
    cheaper to rest on, but such a price is also less likely to be hit, and that trade-off is
    what the fill probabilities weigh when the slice is split among the chosen venues."""
    costs = {n: BPS * float(by_name[n].instrument.maker_fee) for n in capacity}
    if not costs:
        return capacity
    best = min(costs.values())
    chosen: dict[str, Decimal] = {}
    room = ZERO
    for name in sorted(costs, key=lambda n: (costs[n], n)):
        if costs[name] <= best + PASSIVE_COST_TOLERANCE_BPS or room < request.qty:
            chosen[name] = capacity[name]
            room += capacity[name]
        else:
            reasons[name] = f"maker fee {costs[name]:.2f} bps is above the cheapest {best:.2f} bps"
    return chosen


def _route_passive(
    request: RouteRequest,
    venues: Sequence[VenueState],
    mid: Decimal | None,
    reference: Decimal,
    notes: list[str],
) -> RouteDecision:
    side, qty, ref = request.side, request.qty, float(reference)
    prices: dict[str, Decimal] = {}
    capacity: dict[str, Decimal] = {}
    reasons: dict[str, str] = {}
    usable: dict[str, bool] = {}
    for state in venues:
        name = state.venue
        price = _passive_price(state, request)
        usable[name] = state.health.tradable and price is not None
        if not state.health.tradable:
            reasons[name] = _health_reason(state)
            continue
        if price is None:
            reasons[name] = "no_book: no price to join"
            continue
        prices[name] = price
        cap = state.instrument.round_qty(min(state.available_qty, qty))
        minimum = state.instrument.min_tradable_qty(price)
        if cap <= 0 or cap < minimum:
            reasons[name] = f"capacity {cap} below the venue minimum {minimum}"
            continue
        capacity[name] = cap
    _apply_share_cap(request, venues, capacity, reasons, notes, prices=prices)

    by_name = {state.venue: state for state in venues}
    capacity = _cheapest_passive(request, by_name, capacity, reasons)
    weights = {n: Decimal(repr(min(max(by_name[n].fill_probability, 0.0), 1.0))) for n in capacity}
    if weights and all(w == 0 for w in weights.values()):
        notes.append("every fill probability is 0: split evenly")
        weights = dict.fromkeys(weights, Decimal(1))
    for name in sorted(n for n, w in weights.items() if w == 0):
        reasons[name] = "fill probability 0"
        del weights[name]
    active = {n: capacity[n] for n in weights}
    while True:
        targets = _proportional(qty, {n: weights[n] for n in active}, active)
        plan = {n: by_name[n].instrument.round_qty(t) for n, t in targets.items()}
        _place_passive_remainder(qty, plan, targets, active, by_name, weights)
        below = [
            (q, n, by_name[n].instrument.min_tradable_qty(prices[n]))
            for n, q in plan.items()
            if 0 < q < by_name[n].instrument.min_tradable_qty(prices[n])
        ]
        if not below:
            break
        q, name, minimum = min(below)
        notes.append(f"{name}: allocation {q} below the venue minimum {minimum}, re-allocated")
        del active[name]

    allocations = []
    for state in venues:
        name = state.venue
        if plan.get(name, ZERO) <= 0:
            continue
        cost, fee = _passive_cost(state, side, prices[name], ref)
        allocations.append(Allocation(name, plan[name], prices[name], cost, fee, 0.0))
    quotes = []
    for state in venues:
        name = state.venue
        whole = state.instrument.round_qty(qty)
        cost_whole = None
        if name in prices and whole > 0 and state.available_qty >= whole:
            cost_whole = _passive_cost(state, side, prices[name], ref)[0]
        quotes.append(_quote(state, usable, reasons, capacity, cost_whole))
    return _decision(request, allocations, quotes, mid, notes)


def _proportional(
    qty: Decimal, weights: dict[str, Decimal], capacity: dict[str, Decimal]
) -> dict[str, Decimal]:
    """Split ``qty`` in proportion to ``weights``; venues over capacity are capped and the rest
    re-split among the others (exact decimals, before lot rounding)."""
    targets: dict[str, Decimal] = {}
    free = set(weights)
    rest = qty
    while free:
        total = sum((weights[n] for n in free), ZERO)
        if total <= 0:
            break
        over = {n for n in free if rest * weights[n] / total > capacity[n]}
        if not over:
            targets.update({n: rest * weights[n] / total for n in free})
            break
        for name in over:
            targets[name] = capacity[name]
            rest -= capacity[name]
        free -= over
    return {n: targets.get(n, ZERO) for n in weights}


def _place_passive_remainder(
    qty: Decimal,
    plan: dict[str, Decimal],
    targets: dict[str, Decimal],
    capacity: dict[str, Decimal],
    by_name: dict[str, VenueState],
    weights: dict[str, Decimal],
) -> None:
    """Give what lot rounding left over to the venues furthest below their proportional share."""
    while True:
        remainder = qty - _total(plan)
        best: tuple[Decimal, Decimal, str, Decimal] | None = None
        for name in plan:
            lot = by_name[name].instrument.lot_size
            units = int(min(capacity[name] - plan[name], remainder) // lot)
            if units <= 0:
                continue
            step = max(1, units // 8) * lot
            candidate = (targets[name] - plan[name], weights[name], name, step)
            if (
                best is None
                or candidate[:2] > best[:2]
                or (candidate[:2] == best[:2] and name < best[2])
            ):
                best = candidate
        if best is None:
            return
        plan[best[2]] += best[3]
