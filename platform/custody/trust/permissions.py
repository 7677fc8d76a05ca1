"""Which role may cause which ledger entry, and which entries the home's service key writes.

A person's action (a note, a review, a binding, a roster change, a run request) must be signed
by that person's key, or attested by the dashboard for a person signed in to it. What machines
produce on someone's request (registered manifests, check results, stage outputs, decisions,
training records, exports) is signed by the service key and names the person who asked, whom
the CLI knows by their key and their roles permit the request (`request_roles`).
"""

from __future__ import annotations

from typing import Any

ROLES = ("engineer", "reviewer", "approver", "admin", "attestor")
ROLE_HELP = {
    "engineer": "registers datasets, requests checks, preparation and training runs",
    "reviewer": "approves and rejects dataset findings",
    "approver": "everything a reviewer does, plus waivers and approving training runs",
    "admin": "manages the roster, dashboard accounts and policy bindings",
    "attestor": "a service (the dashboard) that signs for the person signed in to it",
}
ANYONE = frozenset({"engineer", "reviewer", "approver", "admin"})
ADMIN = frozenset({"admin"})


def person_roles(entry_type: str, subject: str, body: dict[str, Any]) -> frozenset[str] | None:
    """The roles of which one permits a person to cause this entry; None: the service writes it."""
    if entry_type.startswith(("people.", "policy.bound/", "user.", "artifact.erased/")):
        return ADMIN
    if entry_type.startswith("ledger.note/"):
        return ANYONE
    if entry_type.startswith("review."):
        if subject.startswith("run:") or body.get("action") == "waive":
            return frozenset({"approver"})
        return frozenset({"reviewer", "approver"})
    if entry_type.startswith("run.requested/"):
        return frozenset({"engineer"})
    if entry_type.startswith("prefs.judged/"):
        return frozenset({"reviewer", "approver"})  # a judgement is the reviewer's own, signed by them
    if entry_type.startswith("takedown.requested/"):
        return ANYONE  # whoever took the request signs it
    if entry_type.startswith("takedown.applied/"):
        return frozenset({"approver", "admin"})  # removing data from datasets and tainting runs is a decision
    if entry_type.startswith("optout.imported/"):
        # Whoever received an opt-out registry imports it; an import that withdraws entries lifts
        # opt-outs, a decision for an approver or an admin.
        return frozenset({"approver", "admin"}) if body.get("withdrawn") else ANYONE
    return None


def request_roles(command: str) -> frozenset[str]:
    """Who may ask the service to do `command` (checked by the CLI before it starts)."""
    return frozenset({"engineer"}) if command in ("register", "prepare", "run") else ANYONE
