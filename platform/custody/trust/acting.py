"""The identity a command acts with: the key it was given, looked up on the roster.

`--as NAME` is only an assertion checked against the key's roster name; it never decides who
acts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from custody.trust import sshsig
from custody.trust.permissions import ROLES
from custody.trust.roster import Roster
from custody.trust.sshkeys import Signer, SigningKeyError, load_signer

KEY_ENV = "CUSTODY_KEY"


class NotPermitted(ValueError):
    """The key is not on the roster, is revoked, or its roles do not permit the action."""


@dataclass(frozen=True)
class Person:
    """Someone on the roster, holding their key in this process (or through ssh-agent)."""

    name: str
    signer: Signer
    roles: frozenset[str]

    def sign(self, message: bytes) -> bytes:
        return sshsig.sign(self.signer, message)

    @property
    def fingerprint(self) -> str:
        return self.signer.public.fingerprint


@dataclass(frozen=True)
class Attested:
    """A person signed in to a service (the dashboard) that signs for them with its own key."""

    person: str
    via: Person  # the service's roster identity, with role attestor
    method: str  # how the person signed in: password | oidc
    signed_in_at: str

    @property
    def name(self) -> str:
        return self.person

    def attestation(self) -> dict[str, str]:
        return {"via": self.via.name, "method": self.method, "signed_in_at": self.signed_in_at}


Acting = Person | Attested


def key_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get(KEY_ENV)
    return Path(env) if env else None


def person_for_key(roster: Roster, path: Path, asserted: str | None = None) -> Person:
    """Load the key at `path` and find its holder on the roster; check an `--as` assertion."""
    signer = load_signer(path)
    member = roster.by_key(signer.public.fingerprint)
    if member is None:
        revoked = [m for m in roster.members if m.key == signer.public and m.revoked_index is not None]
        if revoked:
            raise NotPermitted(
                f"{path}: the key of {revoked[-1].name} was revoked at ledger index {revoked[-1].revoked_index}"
            )
        raise NotPermitted(
            f"{path}: key {signer.public.fingerprint} is not on this home's roster "
            "(an admin adds it with `custody people add NAME --key FILE.pub --role ROLE`)"
        )
    if asserted is not None and asserted != member.name:
        raise NotPermitted(f"--as {asserted}: the key {path} belongs to {member.name}, not {asserted}")
    return Person(member.name, signer, member.roles)


def require_roles(person: Person, allowed: frozenset[str], what: str) -> None:
    if not person.roles & allowed:
        raise NotPermitted(
            f"{person.name} ({', '.join(sorted(person.roles))}) may not {what}; "
            f"needs role {' or '.join(r for r in ROLES if r in allowed)}"
        )


__all__ = ["KEY_ENV", "Acting", "Attested", "NotPermitted", "Person", "SigningKeyError", "person_for_key"]
