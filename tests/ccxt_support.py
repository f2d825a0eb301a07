"""Run ccxt's own static fixtures offline against the installed ccxt (no network).

The fixtures live in ``../shared/data/ccxt-fixtures`` (see the data README there):

* request fixtures: an offline exchange gets the stored markets and currencies, dummy
  credentials and BOTH ``httpProxy`` and ``httpsProxy`` set to one dummy address. ccxt then builds
  and signs the request, stores it in ``last_request_url`` / ``last_request_body`` and refuses to
  send it (``InvalidProxySettings``); the stored request is compared with the fixture's ``url`` /
  ``output``, ignoring only the *values* of the fixture's ``skipKeys``;
* response fixtures: ``exchange.fetch`` returns the stored ``httpResponse`` and the unified result
  is compared with ``parsedResponse``.

For binance the markets come from ``markets/binance.tick-size.json``: the stored
``binance.json`` gives precision as decimal places, while ccxt 4.5.90 expects tick sizes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tests.shared_data import CCXT_FIXTURES

FIXTURES = CCXT_FIXTURES
DUMMY_PROXY = "http://fake:8080"
MARKET_FILES = {"binance": "binance.tick-size.json"}


def require_fixtures() -> Path:
    """The fixture folder, or skip the calling test with a message saying where it was sought."""
    if not (FIXTURES / "request").is_dir():
        pytest.skip(
            f"ccxt fixtures not found at {FIXTURES} (expected ../shared/data/ccxt-fixtures)"
        )
    return FIXTURES


@cache
def _load(relative: str) -> Any:
    return json.loads((require_fixtures() / relative).read_text())


def fixture_file(kind: str, exchange_id: str) -> dict[str, Any]:
    """The whole ``request/<id>.json`` or ``response/<id>.json`` document."""
    data: dict[str, Any] = _load(f"{kind}/{exchange_id}.json")
    return data


def fixture_case(kind: str, exchange_id: str, method: str, description: str) -> dict[str, Any]:
    """One case of a fixture file, found by its method and exact description."""
    cases = fixture_file(kind, exchange_id)["methods"].get(method, [])
    matches = [case for case in cases if case.get("description") == description]
    assert len(matches) == 1, (
        f"{kind}/{exchange_id}.json: {len(matches)} {method} cases described {description!r}"
    )
    return matches[0]


def case_counts(kind: str, exchange_id: str) -> dict[str, int]:
    """Number of cases per unified method in a fixture file."""
    methods = fixture_file(kind, exchange_id)["methods"]
    return {method: len(cases) for method, cases in methods.items()}


def markets(exchange_id: str, *, complete: bool = False) -> dict[str, Any]:
    """The stored markets ``load_markets`` would return (tick-size precision for binance).

    ``complete``: the binance snapshot predates some unified market keys (spot markets lack
    ``linear`` and ``inverse``, which ccxt 4.5.90 reads when PARSING an order, not when building
    a request). A live ``load_markets`` builds every market on ccxt's ``safe_market_structure``,
    so with ``complete`` the missing keys get its defaults; keys in the snapshot are kept as is.
    """
    stored: dict[str, Any] = _load(
        f"markets/{MARKET_FILES.get(exchange_id, exchange_id + '.json')}"
    )
    if not complete:
        return stored
    defaults = ccxt.Exchange().safe_market_structure()
    return {symbol: {**defaults, **market} for symbol, market in stored.items()}


def offline_exchange(
    exchange_id: str, *, options: Mapping[str, Any] | None = None, complete_markets: bool = False
) -> Any:
    """An async ccxt exchange loaded from the fixtures that can build requests but never send.

    ``options`` are the fixture file's exchange options; ``complete_markets`` is for parsing
    responses (see ``markets``). Close the exchange when done.
    """
    exchange = getattr(ccxt_async, exchange_id)(
        {
            "apiKey": "key",
            "secret": "secretsecret",
            "password": "password",
            "uid": "uid",
            "httpProxy": DUMMY_PROXY,
            "httpsProxy": DUMMY_PROXY,
            "enableRateLimit": False,
        }
    )
    exchange.set_markets(
        markets(exchange_id, complete=complete_markets), _load(f"currencies/{exchange_id}.json")
    )
    if options:
        exchange.extend_exchange_options(exchange.deep_extend(exchange.options, dict(options)))
    return exchange


async def capture_request(call: Awaitable[Any], exchange: Any) -> tuple[str, str | None]:
    """Await a unified call that ccxt must refuse to send; return the request it built."""
    with pytest.raises(ccxt.InvalidProxySettings):
        await call
    return exchange.last_request_url, exchange.last_request_body


def stub_response(exchange: Any, http_response: Any) -> None:
    """Make every HTTP call of ``exchange`` return ``http_response`` (already decoded JSON)."""

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return http_response

    exchange.fetch = fetch


# --------------------------------------------------------------------------- comparisons


def parse_query(text: str | None) -> dict[str, str]:
    """A query string or urlencoded body as a dict; a repeated key is an error."""
    pairs = parse_qsl(text or "", keep_blank_values=True, strict_parsing=bool(text))
    result = dict(pairs)
    assert len(result) == len(pairs), f"repeated keys in {text!r}"
    return result


def _collect_mismatches(
    computed: Any, stored: Any, skip_keys: frozenset[str], path: str, problems: list[str]
) -> None:
    if isinstance(stored, dict) and isinstance(computed, dict):
        missing = sorted(set(stored) - set(computed))
        extra = sorted(set(computed) - set(stored))
        if missing:
            problems.append(f"{path or '.'}: missing keys {missing}")
        if extra:
            problems.append(f"{path or '.'}: unexpected keys {extra}")
        for key in sorted(set(stored) & set(computed)):
            if key not in skip_keys:
                _collect_mismatches(
                    computed[key], stored[key], skip_keys, f"{path}.{key}", problems
                )
    elif isinstance(stored, list) and isinstance(computed, list):
        if len(stored) != len(computed):
            problems.append(f"{path}: {len(computed)} items, fixture has {len(stored)}")
        for index, (mine, theirs) in enumerate(zip(computed, stored, strict=False)):
            _collect_mismatches(mine, theirs, skip_keys, f"{path}[{index}]", problems)
    elif computed != stored or type(computed) is not type(stored):
        problems.append(f"{path}: {computed!r} != fixture {stored!r}")


def assert_same(computed: Any, stored: Any, skip_keys: frozenset[str] = frozenset()) -> None:
    """Equal structures: same keys everywhere, same values except under ``skip_keys``."""
    problems: list[str] = []
    _collect_mismatches(computed, stored, skip_keys, "", problems)
    assert not problems, "request differs from the ccxt fixture:\n  " + "\n  ".join(problems)


def request_payload(url: str, body: str | None, output_type: str) -> dict[str, Any]:
    """The parameters of a built request: the JSON or urlencoded body, else the query string."""
    if body:
        if output_type == "json" or body.lstrip().startswith(("{", "[")):
            payload: dict[str, Any] = json.loads(body)
            return payload
        return parse_query(body)
    return parse_query(urlsplit(url).query)


def assert_request_matches(
    case: Mapping[str, Any],
    exchange_id: str,
    url: str,
    body: str | None,
    *,
    derived: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Assert the request ccxt built equals the fixture's; return its parameters.

    The path must be equal; the host is not compared because ccxt recorded many cases against
    testnet or demo hosts (ccxt's own static test ignores it too). Keys must be the same set;
    values are compared exactly except under the fixture's ``skipKeys`` (timestamps,
    signatures, generated client ids), which must still be present.

    ``derived`` is for cases ccxt has no fixture for: top-level parameters of the stored request
    to set (or, with ``None``, to remove) before comparing. Say so in the test.
    """
    document = fixture_file("request", exchange_id)
    skip_keys = frozenset(document.get("skipKeys", ()))
    output_type = document.get("outputType", "json")
    stored_url = case["url"]
    assert urlsplit(url).path == urlsplit(stored_url).path, f"{url} != fixture {stored_url}"
    stored_body = case.get("output")
    if stored_body is None:
        assert not body, f"unexpected body {body!r}"
    mine = request_payload(url, body, output_type)
    theirs = request_payload(stored_url, stored_body, output_type)
    for key, value in (derived or {}).items():
        assert (key in theirs) or value is not None, f"derived: fixture has no {key!r}"
        if value is None:
            del theirs[key]
        else:
            theirs[key] = value
    assert_same(mine, theirs, skip_keys)
    return mine


def _numeric(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(value))


def assert_unified_equal(computed: Any, stored: Any, path: str = "") -> None:
    """Compare a parsed ccxt structure with a stored one; ``50`` equals ``50.0``, nothing else."""
    if isinstance(stored, dict):
        assert isinstance(computed, dict), f"{path}: {computed!r} is not a dict"
        assert set(computed) == set(stored), (
            f"{path}: keys differ: extra {sorted(set(computed) - set(stored))}, "
            f"missing {sorted(set(stored) - set(computed))}"
        )
        for key in stored:
            assert_unified_equal(computed[key], stored[key], f"{path}.{key}")
    elif isinstance(stored, list):
        assert isinstance(computed, list) and len(computed) == len(stored), (
            f"{path}: {computed!r} != {stored!r}"
        )
        for index, (mine, theirs) in enumerate(zip(computed, stored, strict=True)):
            assert_unified_equal(mine, theirs, f"{path}[{index}]")
    elif _numeric(stored) is not None and _numeric(computed) is not None:
        assert _numeric(computed) == _numeric(stored), f"{path}: {computed!r} != {stored!r}"
    else:
        assert computed == stored and type(computed) is type(stored), (
            f"{path}: {computed!r} != {stored!r}"
        )
