"""Who the dashboard acts as: its own roster key (role attestor), for the person signed in to it.

The dashboard never holds a person's key. `custody dashboard --key FILE` hands it the path of its
own key ($CUSTODY_DASHBOARD_KEY, never the key material); each entry it records is signed with
that key and attests the signed-in person, how they signed in and when. The person's ROSTER
roles decide what they may do; their dashboard account can only narrow that (a viewer account
never acts). Without an attestor key the dashboard is read-only, and says why.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.accounts import Account, Accounts
from custody.home import Home
from custody.ledger.entry import utc_now
from custody.trust.acting import Attested, NotPermitted, Person, person_for_key
from custody.trust.sshkeys import SigningKeyError

DASHBOARD_KEY_ENV = "CUSTODY_DASHBOARD_KEY"  # the path of the dashboard's key, set by `custody dashboard`
ATTESTOR = "attestor"


@dataclass(frozen=True)
class Service:
    """The dashboard's own roster identity, or why it has none (and is read-only)."""

    person: Person | None
    why_read_only: str | None = None

    @property
    def can_attest(self) -> bool:
        return self.person is not None


def dashboard_service(home: Home, path: Path | None) -> Service:
    """The roster member holding the key at `path`, if they are an attestor."""
    if not home.roster().signed:
        return Service(None, "this home was made before signed entries, so the dashboard cannot attest in it")
    if path is None:
        return Service(
            None, "it was started without its key (`custody dashboard --key FILE`: a roster key with role attestor)"
        )
    try:
        person = person_for_key(home.roster(), path)
    except (SigningKeyError, NotPermitted) as exc:
        return Service(None, f"its key cannot sign for this home: {exc}")
    if ATTESTOR not in person.roles:
        roles = ", ".join(sorted(person.roles)) or "no role"
        return Service(
            None,
            f"its key belongs to {person.name} ({roles}), who is not an attestor "
            f"(an admin adds the dashboard with `custody people add NAME --key FILE.pub --role {ATTESTOR}`)",
        )
    return Service(person)


def service_from_env(home: Home) -> Service:
    value = os.environ.get(DASHBOARD_KEY_ENV)
    return dashboard_service(home, Path(value) if value else None)


@dataclass(frozen=True)
class SignedIn:
    """A person signed in to the dashboard: their account, how (password | oidc) and when (UTC)."""

    account: Account
    method: str
    at: str

    @property
    def name(self) -> str:
        return self.account.name


def sign_in(account: Account, method: str, at: str | None = None) -> SignedIn:
    return SignedIn(account, method, at or utc_now())


def issued_at(claims: Mapping[str, Any]) -> str | None:
    """When an identity provider signed the person in: the ID token's `iat` (seconds), in UTC."""
    issued = claims.get("iat")
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        return None
    return dt.datetime.fromtimestamp(issued, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Standing:
    """What a signed-in person may do: their roster roles and key, or why they cannot act at all."""

    name: str
    roles: frozenset[str]
    key: str | None  # the fingerprint the roster binds to the name
    problem: str | None = None

    def describe(self) -> str:
        return ", ".join(sorted(self.roles)) or "no role"


class NotAllowed(PermissionError):
    """The signed-in person (or nobody) may not act through this dashboard."""


def acting_standing(home: Home, signed_in: SignedIn | None, service: Service, signed_out: str) -> Standing:
    """The signed-in person's standing now, or NotAllowed saying why they cannot act (`signed_out`
    when nobody is signed in). The account is read again: its role now, not as it was at sign-in."""
    if signed_in is None:
        raise NotAllowed(signed_out)
    if not service.can_attest:
        raise NotAllowed(f"the dashboard is read-only: {service.why_read_only}")
    current = Accounts(home.path).get(signed_in.name)
    if current is None:
        raise NotAllowed(f"account {signed_in.name!r} no longer exists")
    who = standing(home, current)
    if who.problem:
        raise NotAllowed(who.problem)
    return who


def standing(home: Home, account: Account) -> Standing:
    member = home.roster().by_name(account.name)
    roles = member.roles if member is not None else frozenset()
    key = member.key.fingerprint if member is not None else None
    if not account.can_review:
        return Standing(
            account.name, roles, key, f"{account.name}'s account is a {account.role}: viewers can read but not act"
        )
    if member is None:
        return Standing(
            account.name,
            roles,
            key,
            f"{account.name} is not an active member of this home's roster, so the dashboard cannot act for them "
            f"(an admin adds them with `custody people add {account.name} --key FILE.pub --role reviewer`)",
        )
    return Standing(account.name, roles, key)


def attested(signed_in: SignedIn, service: Service) -> Attested:
    """The signed-in person, as the dashboard attests them in an entry it signs."""
    if service.person is None:
        raise NotPermitted(f"the dashboard is read-only: {service.why_read_only}")
    return Attested(signed_in.name, service.person, signed_in.method, signed_in.at)
