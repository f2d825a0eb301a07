"""API keys: creation, verification and roles.

A key looks like ``ems_<key_id>_<secret>``: ``key_id`` is a short public hex id (safe to show
in lists and logs), ``secret`` comes from :func:`secrets.token_urlsafe`. Only the SHA-256 hex
digest of the whole key is stored; the plain key is shown once, when it is created, and never
logged or returned by the API.

Roles are ordered ``viewer < trader < admin``: viewers read, traders also act on orders,
admins may do everything.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from ems.domain import ensure_utc
from ems.ports import ApiKeyRecord, StorePort

log = logging.getLogger(__name__)

KEY_PREFIX = "ems"
_KEY_RE = re.compile(r"^ems_([0-9a-f]{12})_([A-Za-z0-9_-]{32,128})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


class Role(enum.StrEnum):
    """What a key may do; each role includes the ones below it."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < trader < admin."""
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        """True when this role is at least ``required``."""
        return self.rank >= required.rank


_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request (never holds the key itself)."""

    key_id: str
    name: str
    role: Role


def hash_key(plain_key: str) -> str:
    """SHA-256 hex digest of a whole API key, as stored."""
    return hashlib.sha256(plain_key.encode("utf-8")).hexdigest()


def parse_role(role: str) -> Role:
    """The :class:`Role` named ``role``; raises ``ValueError`` listing the valid roles."""
    try:
        return Role(role.strip().lower())
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {role!r}; use one of: {valid}") from None


def check_key_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a valid key owner name."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            "name must be 1..64 characters: letters, digits, spaces, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )


def create_api_key(
    store: StorePort, name: str, role: str | Role, clock_now: datetime
) -> tuple[str, ApiKeyRecord]:
    """Create and store a new API key; return ``(plain_key, record)``.

    The plain key is returned only here: show it once and discard it. ``name`` says whose key
    it is (1..64 letters, digits, spaces, ``._@-``); ``clock_now`` is the creation time (aware).
    Raises ``ValueError`` for an unknown role, a bad name or a naive time.
    """
    check_key_name(name)
    parsed_role = parse_role(role) if isinstance(role, str) else role
    created_at = ensure_utc(clock_now)
    key_id = secrets.token_hex(6)
    plain_key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        key_id=key_id,
        name=name,
        role=parsed_role.value,
        key_hash=hash_key(plain_key),
        created_at=created_at,
    )
    store.add_api_key(record)
    log.info("api key %s created for %s with role %s", key_id, name, parsed_role.value)
    return plain_key, record


def authenticate(store: StorePort, presented: str) -> Principal | None:
    """The principal owning ``presented`` if it is a valid, unrevoked key; else ``None``.

    The stored digest is compared in constant time, and nothing about the key but its public
    id is ever logged.
    """
    match = _KEY_RE.fullmatch(presented.strip())
    if match is None:
        log.info("api key refused: not in the ems_<id>_<secret> format")
        return None
    key_id = match.group(1)
    digest = hash_key(match.group(0))
    record = store.find_api_key(digest)
    if record is None or not hmac.compare_digest(record.key_hash, digest):
        log.info("api key %s refused: unknown", key_id)
        return None
    if not hmac.compare_digest(record.key_id, key_id):
        log.warning("api key %s refused: id does not match its stored record", key_id)
        return None
    if record.revoked:
        log.info("api key %s refused: revoked", key_id)
        return None
    try:
        role = Role(record.role)
    except ValueError:
        log.warning("api key %s refused: stored role %r is unknown", key_id, record.role)
        return None
    return Principal(key_id=record.key_id, name=record.name, role=role)
