"""The execution algorithms by name, each with one interface.

An algorithm module provides ``NAME``, a ``Params`` class with ``from_mapping(raw)`` (raising
``InvalidOrder`` naming ``algo_params.<key>``), ``target_quantity(view, market, params, now)``
(the cumulative quantity its schedule wants done by ``now``) and
``plan(view, market, params, now) -> Plan``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from algos import twap
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
}


def get(name: str) -> AlgoSpec:
    """The algorithm called ``name``; raises ``InvalidOrder`` naming the field ``algo``."""
    try:
        return ALGOS[name]
    except KeyError:
        raise InvalidOrder(
            f"unknown algo {name!r}; available: {', '.join(sorted(ALGOS))}", field="algo"
        ) from None
