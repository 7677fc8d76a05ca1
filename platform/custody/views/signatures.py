"""Who signed an entry, in words: a person with their own key, or the dashboard attesting them.

The kind and keys come from `Home.attribute` (checked against the roster as it stood at the
entry); an attested entry's envelope also says how the person signed in to the dashboard and
when, which is what a reader needs to weigh an approval the person did not sign themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.home import Home
from custody.ledger.query import envelope
from custody.ledger.storage import EntryRow


@dataclass(frozen=True)
class SignedBy:
    kind: str  # person | attested | service | unsigned
    actor: str
    key: str | None  # person: the key that signed; attested: the key the roster binds to the person
    via: str | None = None  # attested: the dashboard's roster name
    method: str | None = None  # attested: password | oidc
    signed_in_at: str | None = None  # attested: when the person signed in (UTC)
    problem: str | None = None  # why the ledger would not admit it now (None: valid)

    @property
    def personal(self) -> bool:
        return self.kind == "person"

    def label(self) -> str:
        if self.kind == "person":
            text = f"personally (key {self.key})"
        elif self.kind == "attested":
            text = f"attested by {self.via} ({self.method} sign-in at {self.signed_in_at})"
        elif self.kind == "service":
            text = "by the home's service key"
        else:
            text = "unsigned (made before signatures)"
        return f"{text}; INVALID: {self.problem}" if self.problem else text


def signed_by(home: Home, row: EntryRow) -> SignedBy:
    who = home.attribute(row)
    attest = (envelope(row).get("attest") or {}) if who.kind == "attested" else {}
    return SignedBy(
        who.kind, who.actor, who.key, who.via, attest.get("method"), attest.get("signed_in_at"), who.problem
    )


def signed_by_rows(home: Home, rows: list[EntryRow]) -> dict[int, SignedBy]:
    """Each row's signer by index. Oldest first: the home's roster then only ever moves forward,
    where newest first would rebuild it from the start for every row."""
    return {row.idx: signed_by(home, row) for row in sorted(rows, key=lambda r: r.idx)}
