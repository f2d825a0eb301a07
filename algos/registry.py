"""The execution algorithms by name, each with one interface.

An algorithm module provides ``NAME``, a parameters class with ``from_mapping(raw)`` (raising
``InvalidOrder`` naming ``algo_params.<key>``; every algorithm also accepts the pricing keys of
``algos.pricing.ExecutionStyle``), ``target(view, market, params, now)`` (the cumulative
quantity its schedule wants done by ``now``) and ``plan(view, market, params, now) -> Plan``.

Registered: ``twap``, ``vwap``, ``pov``, ``iceberg`` and ``hedge`` (the risk module's hedge
legs: complete now).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from algos import hedge, iceberg, pov, twap, vwap
from algos.base import MarketView, ParentView, Plan
from ems.errors import InvalidOrder


@dataclass(frozen=True, slots=True)
class AlgoSpec:
    name: str
    parse: Callable[[Mapping[str, Any]], Any]
    target: Callable[[ParentView, MarketView, Any, datetime], Decimal]
    plan: Callable[[ParentView, MarketView, Any, datetime], Plan]


ALGOS: dict[str, AlgoSpec] = {
    twap.NAME: AlgoSpec(twap.NAME, twap.TwapParams.from_mapping, twap.target, twap.plan),
    vwap.NAME: AlgoSpec(vwap.NAME, vwap.VwapParams.from_mapping, vwap.target, vwap.plan),
    pov.NAME: AlgoSpec(pov.NAME, pov.PovParams.from_mapping, pov.target, pov.plan),
    hedge.NAME: AlgoSpec(hedge.NAME, hedge.HedgeParams.from_mapping, hedge.target, hedge.plan),
    iceberg.NAME: AlgoSpec(
        iceberg.NAME, iceberg.IcebergParams.from_mapping, iceberg.target, iceberg.plan
    ),
}


def get(name: str) -> AlgoSpec:
    """The algorithm called ``name``; raises ``InvalidOrder`` naming the field ``algo``."""
    try:
        return ALGOS[name]
    except KeyError:
        raise InvalidOrder(
            f"unknown algo {name!r}; available: {', '.join(sorted(ALGOS))}", field="algo"
        ) from None
