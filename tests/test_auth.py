"""API keys: creation, hashing, verification, roles, and their enforcement over HTTP."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from ems.api.app import create_app
from ems.api.auth import Role, authenticate, create_api_key, hash_key, parse_role
from ems.clock import TestClock
from ems.manager import ParentOrderManager
from ems.ports import ApiKeyRecord
from ems.store import SqlStore

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


# --- keys and roles --------------------------------------------------------------------------


def test_create_api_key_stores_only_the_hash(store: SqlStore) -> None:
    plain, record = create_api_key(store, "alice", "trader", NOW)

    prefix, key_id, secret = plain.split("_", 2)
    assert prefix == "ems" and key_id == record.key_id and len(secret) >= 40
    assert record.key_hash == hashlib.sha256(plain.encode()).hexdigest() == hash_key(plain)
    assert record.role == "trader" and record.name == "alice" and record.created_at == NOW
    assert plain not in repr(record)
    stored = store.find_api_key(record.key_hash)
    assert stored == record
    assert plain not in repr(stored)


def test_each_key_is_unique(store: SqlStore) -> None:
    keys = {create_api_key(store, f"k{i}", "viewer", NOW)[0] for i in range(20)}
    assert len(keys) == 20


def test_authenticate_accepts_a_valid_key(store: SqlStore) -> None:
    plain, record = create_api_key(store, "bob", Role.ADMIN, NOW)
    principal = authenticate(store, plain)
    assert principal is not None
    assert (principal.key_id, principal.name, principal.role) == (record.key_id, "bob", Role.ADMIN)
    assert authenticate(store, f"  {plain}\n") is not None  # surrounding whitespace is ignored


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
        lambda k: k.replace("ems_", "xyz_"),  # wrong prefix
        lambda k: k.split("_", 2)[2],  # secret alone
        lambda k: "",
        lambda k: "ems_000000000000_" + "a" * 43,  # well-formed, unknown
    ],
)
def test_authenticate_refuses_wrong_keys(store: SqlStore, mangle: object) -> None:
    plain, _ = create_api_key(store, "carol", "viewer", NOW)
    assert callable(mangle)
    assert authenticate(store, mangle(plain)) is None


def test_authenticate_refuses_a_revoked_key(store: SqlStore) -> None:
    plain = "ems_0123456789ab_" + "r" * 43
    store.add_api_key(
        ApiKeyRecord(
            key_id="0123456789ab",
            name="old",
            role="admin",
            key_hash=hash_key(plain),
            created_at=NOW,
            revoked=True,
        )
    )
    assert authenticate(store, plain) is None


def test_role_order() -> None:
    assert Role.ADMIN.allows(Role.TRADER) and Role.ADMIN.allows(Role.VIEWER)
    assert Role.TRADER.allows(Role.VIEWER) and Role.TRADER.allows(Role.TRADER)
    assert not Role.VIEWER.allows(Role.TRADER)
    assert not Role.TRADER.allows(Role.ADMIN)
    assert parse_role(" Trader ") is Role.TRADER


@pytest.mark.parametrize(
    ("name", "role", "now", "message"),
    [
        ("alice", "superuser", NOW, "unknown role 'superuser'; use one of: viewer, trader, admin"),
        ("", "viewer", NOW, "name must be 1..64 characters"),
        ("a/b", "viewer", NOW, "name must be 1..64 characters"),
        ("alice", "viewer", datetime(2026, 5, 1, 12, 0), "naive datetime"),
    ],
)
def test_create_api_key_refuses_bad_input(
    store: SqlStore, name: str, role: str, now: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_api_key(store, name, role, now)


def test_keys_never_reach_the_logs(store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plain, record = create_api_key(store, "dave", "trader", NOW)
    authenticate(store, plain)
    authenticate(store, plain[:-2] + "zz")
    secret = plain.split("_", 2)[2]
    assert secret not in caplog.text and record.key_hash not in caplog.text
    assert record.key_id in caplog.text  # the public id is what identifies a key in logs


# --- enforcement over HTTP -------------------------------------------------------------------


@pytest.fixture
async def client(store: SqlStore) -> AsyncIterator[httpx.AsyncClient]:
    manager = ParentOrderManager(store, {}, TestClock(NOW))
    app = create_app(manager, store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ems.test") as http:
        yield http


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0", "time": "2026-05-01T12:00:00Z"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/parents"),
        ("GET", "/v1/parents/P1"),
        ("GET", "/v1/parents/P1/children"),
        ("GET", "/v1/parents/P1/fills"),
        ("GET", "/v1/parents/P1/events"),
        ("POST", "/v1/parents"),
        ("POST", "/v1/parents/P1/cancel"),
        ("POST", "/v1/parents/P1/pause"),
        ("POST", "/v1/parents/P1/resume"),
    ],
)
async def test_every_route_but_health_needs_a_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "unauthorized"
    assert "API key is required" in body["message"]


async def test_unknown_and_revoked_keys_get_401(client: httpx.AsyncClient, store: SqlStore) -> None:
    revoked = "ems_0123456789ab_" + "r" * 43
    store.add_api_key(
        ApiKeyRecord("0123456789ab", "old", "admin", hash_key(revoked), NOW, revoked=True)
    )
    for key in ("nonsense", "ems_000000000000_" + "a" * 43, revoked):
        response = await client.get("/v1/parents", headers=_bearer(key))
        assert response.status_code == 401, key
        assert response.json()["message"] == "the API key is not valid (unknown or revoked)"
        assert key not in response.text


async def test_bearer_and_x_api_key_headers_both_work(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    plain, _ = create_api_key(store, "eve", "viewer", NOW)
    assert (await client.get("/v1/parents", headers=_bearer(plain))).status_code == 200
    assert (await client.get("/v1/parents", headers={"X-API-Key": plain})).status_code == 200
    assert (
        await client.get("/v1/parents", headers={"Authorization": f"Basic {plain}"})
    ).status_code == 401


@pytest.mark.parametrize("path", ["/v1/parents", "/v1/parents/P1/cancel", "/v1/parents/P1/pause"])
async def test_viewer_cannot_act(client: httpx.AsyncClient, store: SqlStore, path: str) -> None:
    plain, _ = create_api_key(store, "viewer-1", "viewer", NOW)
    response = await client.post(path, headers=_bearer(plain), json={})
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "forbidden"
    assert body["message"] == (
        "this action needs the trader role; the key 'viewer-1' has the viewer role"
    )


async def test_trader_and_admin_pass_the_role_check(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    for role in ("trader", "admin"):
        plain, _ = create_api_key(store, f"{role}-1", role, NOW)
        # Past authorisation, the unknown parent is what stops the request.
        response = await client.post("/v1/parents/P404/pause", headers=_bearer(plain))
        assert response.status_code == 404, role
        assert response.json()["message"] == "parent P404 does not exist"
