"""Local accounts for the dashboard: a name, a role and a salted scrypt hash of the password.

Accounts live in HOME/accounts.json (mode 0600), never in the ledger: a password hash is a
secret, and the ledger is meant to be exported. Adding a user, changing a role and removing a
user are ledger entries (name and role only), so who could act when is auditable.

Roles: `viewer` reads; `reviewer` also approves, rejects and waives findings (never on a dataset
they registered); `admin` also manages accounts.

Hashing: scrypt (RFC 7914) from the standard library with N=2**15, r=8, p=1 and a 16-byte random
salt per password, encoded with its parameters so they can be raised later without breaking old
hashes. Verification takes the same time whether or not the user exists.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from custody.ledger.entry import EntryBody, entry_type

Role = Literal["viewer", "reviewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "reviewer", "admin")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**15, 8, 1, 32
FILE = "accounts.json"


class AccountError(ValueError):
    """A bad name, role or password, an unknown user, or an unreadable accounts file."""


@entry_type("user.added/v1")
class UserAdded(EntryBody):
    name: str
    role: Role


@entry_type("user.role_changed/v1")
class UserRoleChanged(EntryBody):
    name: str
    role: Role
    previous: Role


@entry_type("user.removed/v1")
class UserRemoved(EntryBody):
    name: str


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    created: str

    @property
    def can_review(self) -> bool:
        return self.role in ("reviewer", "admin")


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = [base64.b64encode(v).decode() for v in (salt, key)]
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encoded[0]}${encoded[1]}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * 2, dklen=KEY_BYTES)


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the user does not exist, so timing does not reveal names.
    Made on the first sign-in, not at import: scrypt at this cost would slow every command."""
    return hash_password("custody-dummy-password", salt=b"\0" * 16)


class Accounts:
    """The accounts of one home."""

    def __init__(self, home_path: Path) -> None:
        self.path = Path(home_path) / FILE

    def _read(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
            users = data["users"]
            if data.get("version") != 1 or not isinstance(users, dict):
                raise ValueError("unsupported layout")
            return users
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise AccountError(f"{self.path}: not a custody accounts file ({exc})") from None

    def _write(self, users: dict[str, dict]) -> None:
        temporary = self.path.with_suffix(".json.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "users": users}, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    def list(self) -> list[Account]:
        return [Account(name, u["role"], u["created"]) for name, u in sorted(self._read().items())]

    def get(self, name: str) -> Account | None:
        user = self._read().get(name)
        return Account(name, user["role"], user["created"]) if user else None

    def add(self, name: str, role: str, password: str) -> Account:
        _check_name(name)
        _check_role(role)
        _check_password(password)
        users = self._read()
        if name in users:
            raise AccountError(f"user '{name}' already exists (change a role with `custody user role`)")
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        users[name] = {"role": role, "hash": hash_password(password), "created": created}
        self._write(users)
        return Account(name, role, created)  # type: ignore[arg-type]

    def set_role(self, name: str, role: str) -> str:
        _check_role(role)
        users = self._read()
        if name not in users:
            raise AccountError(f"no user '{name}'")
        previous = users[name]["role"]
        users[name]["role"] = role
        self._write(users)
        return previous

    def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        users = self._read()
        if name not in users:
            raise AccountError(f"no user '{name}'")
        users[name]["hash"] = hash_password(password)
        self._write(users)

    def remove(self, name: str) -> None:
        users = self._read()
        if users.pop(name, None) is None:
            raise AccountError(f"no user '{name}'")
        self._write(users)

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account if the password is right; None otherwise (in the same time either way)."""
        user = self._read().get(name)
        ok = check_password(password, user["hash"] if user else _dummy_hash())
        if not (user and ok):
            return None
        return Account(name, user["role"], user["created"])


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise AccountError(
            f"user name {name!r}: 1-64 characters (letters, digits, '.', '_', '@', '-'), "
            "starting with a letter or digit"
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: must be one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
