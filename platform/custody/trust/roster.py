"""The roster: who holds which key with which roles, as the ledger stood at each index.

It is rebuilt from the ledger alone: the home's first entry names the service key and the first
admin; `people.added/v1` and `people.revoked/v1` entries change it from the index after their
own. A key is bound to one name at a time; a name to one key at a time (rotate by revoking and
adding again).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from custody.ledger import query
from custody.ledger.storage import Storage
from custody.trust.sshkeys import PublicKey, SigningKeyError, parse_public_key

ROSTER_TYPES = ("home.initialized/", "people.")
SERVICE_PRINCIPAL = "custody-service"


@dataclass
class Member:
    name: str
    key: PublicKey
    roles: frozenset[str]
    added_index: int
    added_ts: str
    revoked_index: int | None = None
    revoked_ts: str | None = None

    def active_at(self, index: int) -> bool:
        """Whether an entry at `index` may be signed with this key (revocation counts from its index on)."""
        return self.added_index < index and (self.revoked_index is None or index < self.revoked_index)

    def as_json(self) -> dict:
        doc = {
            "name": self.name,
            "key": self.key.openssh,
            "fingerprint": self.key.fingerprint,
            "roles": sorted(self.roles),
            "added_index": self.added_index,
            "added_at": self.added_ts,
        }
        if self.revoked_index is not None:
            doc.update(revoked_index=self.revoked_index, revoked_at=self.revoked_ts)
        return doc


@dataclass
class Roster:
    service_key: PublicKey | None = None
    origin: str | None = None
    members: list[Member] = field(default_factory=list)
    size: int = 0  # entries [0, size) have been applied
    _by_key: dict[str, Member] = field(default_factory=dict)  # active members by fingerprint
    _by_name: dict[str, Member] = field(default_factory=dict)  # active members by name

    @property
    def signed(self) -> bool:
        """A home whose entries are all signed (made by custody 0.2 or later)."""
        return self.service_key is not None

    def by_key(self, fingerprint: str) -> Member | None:
        return self._by_key.get(fingerprint)

    def by_name(self, name: str) -> Member | None:
        return self._by_name.get(name)

    def active(self) -> list[Member]:
        return sorted(self._by_name.values(), key=lambda m: m.name)

    def apply(self, index: int, doc: dict) -> None:
        """Take one entry into account (call in index order; non-roster entries only advance size)."""
        kind, body, ts = doc.get("type", ""), doc.get("body", {}), doc.get("ts", "")
        if kind == "home.initialized/v2" and index == 0:
            self.origin = body["origin"]
            self.service_key = parse_public_key(body["service_key"], "home.initialized")
            admin = body.get("admin")
            if admin:
                self._add(
                    Member(admin["name"], parse_public_key(admin["key"], "admin"), frozenset(admin["roles"]), 0, ts)
                )
        elif kind == "people.added/v1":
            self._add(
                Member(body["name"], parse_public_key(body["key"], "people.added"), frozenset(body["roles"]), index, ts)
            )
        elif kind == "people.revoked/v1":
            member = self._by_name.get(body["name"])
            if member is not None and member.key.fingerprint == body["fingerprint"]:
                member.revoked_index, member.revoked_ts = index, ts
                del self._by_name[member.name]
                del self._by_key[member.key.fingerprint]
        self.size = max(self.size, index + 1)

    def _add(self, member: Member) -> None:
        # The admission check refuses duplicates; a ledger edited behind its back keeps the first.
        if member.name in self._by_name or member.key.fingerprint in self._by_key:
            return
        self.members.append(member)
        self._by_name[member.name] = member
        self._by_key[member.key.fingerprint] = member

    def refresh(self, storage: Storage, size: int) -> Roster:
        """Bring the roster up to ledger size `size` (reads only roster entries)."""
        if self.size == 0 and size > 0:
            first = query.at(storage, 0)
            if first is not None:
                self.apply(0, query.envelope(first))
        for row in query.entries(storage, "people.", start=max(self.size, 1), stop=size):
            self.apply(row.idx, query.envelope(row))
        self.size = max(self.size, size)
        return self

    def allowed_signers(self) -> str:
        """The roster as an OpenSSH allowed_signers file, with the times each key was valid."""
        lines = ["# custody roster: check an exported entry with `ssh-keygen -Y verify -f THIS -I NAME -n custody`"]
        if self.service_key is not None:
            lines.append(
                f'{SERVICE_PRINCIPAL} namespaces="custody" {self.service_key.openssh} {self.origin or ""}'.rstrip()
            )
        for m in self.members:
            options = ['namespaces="custody"', f'valid-after="{_ssh_time(m.added_ts)}"']
            if m.revoked_ts:
                options.append(f'valid-before="{_ssh_time(m.revoked_ts, round_up=True)}"')
            lines.append(f"{m.name} {','.join(options)} {m.key.openssh}")
        return "\n".join(lines) + "\n"


def _ssh_time(ts: str, round_up: bool = False) -> str:
    """An entry timestamp as allowed_signers wants it: YYYYMMDDHHMMSSZ (UTC), whole seconds.

    valid-before is exclusive, so a revocation time is rounded up: an entry signed earlier in the
    same second still verifies (custody itself orders by ledger index, not by clock)."""
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if round_up and moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.strftime("%Y%m%d%H%M%SZ")


class RosterHistory:
    """Every roster entry of one ledger, read once and extended as the ledger grows, so the roster
    at any index (attributing old entries, admitting new ones) needs no re-reading."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict]] = []
        self.read_up_to = 0  # entries [0, read_up_to) have been looked at
        self._built: dict[int, Roster] = {}  # by the number of events applied

    def at(self, storage: Storage, size: int) -> Roster:
        """The roster before entry `size` (do not modify it: copy it first)."""
        if size > self.read_up_to:
            self._read(storage, size)
        count = bisect.bisect_left(self.events, size, key=lambda event: event[0])
        roster = self._built.get(count)
        if roster is None:
            roster = Roster()
            for index, doc in self.events[:count]:
                roster.apply(index, doc)
            self._built[count] = roster
        roster.size = size
        return roster

    def _read(self, storage: Storage, size: int) -> None:
        if self.read_up_to == 0:
            first = query.at(storage, 0)
            if first is not None:
                self.events.append((0, query.envelope(first)))
        rows = query.entries(storage, "people.", start=max(self.read_up_to, 1), stop=size)
        self.events += [(row.idx, query.envelope(row)) for row in rows]
        self.read_up_to = size


def load_roster(storage: Storage, size: int | None = None) -> Roster:
    """The roster as it stood before entry `size` (default: the whole ledger)."""
    return Roster().refresh(storage, storage.head()[0] if size is None else size)


__all__ = ["SERVICE_PRINCIPAL", "Member", "Roster", "SigningKeyError", "load_roster"]


def roster_change_problem(doc: dict, roster: Roster) -> str | None:
    """Why a roster entry cannot apply to `roster` (a duplicate, an unknown revocation), or None."""
    kind, body = doc.get("type", ""), doc.get("body", {})
    if kind == "people.added/v1":
        if roster.by_name(body["name"]) is not None:
            return f"{body['name']} is already on the roster (revoke the old key first to rotate it)"
        holder = roster.by_key(body["fingerprint"])
        if holder is not None:
            return f"key {body['fingerprint']} already belongs to {holder.name}"
        if roster.service_key is not None and parse_public_key(body["key"], "people.added") == roster.service_key:
            return "the home's service key cannot be a person"
        if parse_public_key(body["key"], "people.added").fingerprint != body["fingerprint"]:
            return "fingerprint does not match the key"
    elif kind == "people.revoked/v1":
        member = roster.by_name(body["name"])
        if member is None:
            return f"{body['name']} is not on the roster"
        if member.key.fingerprint != body["fingerprint"]:
            return f"{body['name']}'s key is {member.key.fingerprint}, not {body['fingerprint']}"
        admins = [m for m in roster.active() if "admin" in m.roles]
        if admins == [member]:
            return f"{member.name} is the last admin; add another admin before revoking this key"
    return None
