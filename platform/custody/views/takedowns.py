"""Takedowns: every request with its status, where its work is now, what applying it would do,
applying it for a signed-in approver or admin, and its proof of removal.

Everything goes through custody.takedown, the code `custody takedown show | apply | proof` runs:
`where` is `find` with what the request kept (a passage index still missing is built and recorded
as machine work, signed by the service key and naming whoever the page passes), `plan_view` is
apply's own plan with nothing written, and `act` applies for the signed-in person, signed by the
dashboard's key attesting them; their roster roles (approver or admin) decide, as for `custody
takedown apply`, and the ledger checks again. No passage is ever shown: a request holds none,
and a hit is shown by dataset, record id, position, character offsets and the record text's
SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.home import Home
from custody.ledger.query import body, entries
from custody.takedown.apply import Applied, ApplyError, Say, apply, plan
from custody.takedown.find import Found
from custody.takedown.requests import RequestError, TakedownRequest, affected, all_requests, get
from custody.trust.acting import Acting
from custody.trust.permissions import ROLES, person_roles
from custody.views.common import when, without_empty
from custody.views.identity import NotAllowed, Service, SignedIn, Standing, acting_standing, attested
from custody.views.runs import taints
from custody.views.signatures import signed_by
from custody.wording import plural

OPEN, APPLIED = "open", "applied"
APPLIED_TYPE = "takedown.applied/"
APPLY_ROLES = person_roles("takedown.applied/v1", "", {}) or frozenset()  # approver, admin
NEEDS = " or ".join(r for r in ROLES if r in APPLY_ROLES)
MAX_HITS = 500  # records a page lists; the count is exact


def one_line(exc: BaseException) -> str:
    """An error as one line of text (the page shows refusals in one line)."""
    return " ".join(str(exc).split())


def describe_work(query: dict[str, Any], digits: int | None = 12) -> str:
    """What a request asks to remove, in words: never the work, only its digest or its source."""
    digest = query["sha256"] if digits is None else query["sha256"][:digits]
    kind = query["kind"]
    if kind == "text":
        return f"a passage of {plural(query.get('words') or 0, 'word')} (sha256 {digest})"
    if kind == "record-hash":
        return f"a record (text sha256 {digest})"
    if kind == "url-prefix":
        return f"every record whose source URL starts with {query['url_prefix']}"
    return f"every record from {query['domain']} or a host below it"


# -- the list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Application:
    """One `takedown.applied` entry: the versions it replaced and the runs it tainted."""

    index: int
    ts: str
    actor: str
    signed: str  # who signed it, in words (personally, or the dashboard attesting the person)
    body: dict[str, Any]

    def version_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "replaced": v["old"],
                "by": v["new"] or "no version (nothing was left)",
                "how": v["how"],
                "records holding the work": v["removed"],
                "distinct records left": v["records"] if v["new"] else 0,
            }
            for v in self.body["versions"]
        ]

    def run_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "run": r["run_id"],
                "why": f"read {', '.join(r['read'])}"
                if r["read"]
                else f"started from a checkpoint of run {r['inherits_from']}",
                "started at index": r["started_index"],
            }
            for r in self.body["tainted_runs"]
        ]

    def summary(self) -> str:
        versions, runs = self.body["versions"], self.body["tainted_runs"]
        return (
            f"applied at ledger index {self.index:,} by {self.actor} ({when(self.ts)}): "
            f"{plural(len(versions), 'dataset version')} replaced, {plural(len(runs), 'run')} tainted"
        )


@dataclass(frozen=True)
class TakedownRow:
    request: TakedownRequest
    applications: tuple[Application, ...]  # oldest first

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def status(self) -> str:
        return APPLIED if self.applications else OPEN

    def as_row(self) -> dict[str, Any]:
        asked = self.request.body
        return {
            "request": self.id,
            "status": self.status,
            "requested by": asked["requested_by"],
            "reason": asked["reason"],
            "work": describe_work(asked["query"]),
            "recorded by": self.request.actor,
            "time": when(self.request.ts),
            "index": self.request.ledger_index,
            "applied at": ", ".join(f"{a.index}" for a in self.applications),
        }

    def label(self) -> str:
        """`td-0a1b2c3d · open · Estate of A. Author` for a chooser."""
        return f"{self.id} · {self.status} · {self.request.body['requested_by']}"


def applications(home: Home) -> dict[str, list[Application]]:
    """Every `takedown.applied` entry by request id, oldest first, each with who signed it."""
    out: dict[str, list[Application]] = {}
    for row in entries(home.storage, APPLIED_TYPE):
        done = body(row)
        application = Application(row.idx, row.ts, row.actor, signed_by(home, row).label(), done)
        out.setdefault(done["id"], []).append(application)
    return out


def list_takedowns(home: Home) -> list[TakedownRow]:
    """Every request, newest first, open or applied (from the ledger alone: nothing is searched)."""
    done = applications(home)
    rows = [TakedownRow(r, tuple(done.get(r.id, []))) for r in all_requests(home)]
    return sorted(rows, key=lambda r: r.request.ledger_index, reverse=True)


def takedown_row(home: Home, request_id: str) -> TakedownRow:
    """One request with its applications (RequestError for an unknown or malformed id)."""
    taken = get(home, request_id)
    return TakedownRow(taken, tuple(applications(home).get(taken.id, [])))


# -- where the work is now ------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """`find` for a request: the records holding its work, what was made from them, the runs."""

    found: Found
    tainted: dict[str, tuple[str, ...]]  # run id -> the takedowns that tainted it

    @property
    def live(self) -> int:
        """Records in versions no takedown has replaced: what applying (again) would remove."""
        return len(self.found.live_hits())

    def live_versions(self) -> list[str]:
        return sorted({h.dataset for h in self.found.live_hits()})

    def derived(self) -> list[str]:
        """Datasets made from the holders that do not hold it; a version that replaced a holder says so."""
        replacements = {gone["replaced_by"] for gone in self.found.removed.values() if gone.get("replaced_by")}
        return [f"{name} (a replacement)" if name in replacements else name for name in self.found.derived]

    def state(self, dataset: str) -> str:
        gone = self.found.removed.get(dataset)
        if gone is None:
            return "live"
        instead = gone["replaced_by"] or "nothing left"
        return f"taken down by {gone['takedown']} → {instead}" + (" (erased)" if gone.get("erased") else "")

    def holder_rows(self) -> list[dict[str, Any]]:
        """One row per dataset version holding the work: live, or taken down (replaced by what)."""
        by_dataset: dict[str, list[str]] = {}
        for hit in self.found.hits:
            by_dataset.setdefault(hit.dataset, []).append(hit.record_id)
        return [
            {"dataset": name, "state": self.state(name), "records": len(ids), "record ids": ", ".join(ids[:10])}
            for name, ids in sorted(by_dataset.items())
        ]

    def hit_rows(self, limit: int = MAX_HITS) -> list[dict[str, Any]]:
        """The records holding it (the first `limit`), by where they are: never their text."""
        return [
            {
                "dataset": h.dataset,
                "record": h.record_id,
                "position": h.ordinal,
                "offsets": ", ".join(f"{a}–{b}" for a, b in h.spans),
                "text sha256": h.content_hash,
            }
            for h in self.found.hits[:limit]
        ]

    def run_rows(self) -> list[dict[str, Any]]:
        """Every run that read a holder or a dataset derived from one; "tainted by" once one is."""
        rows = [
            {
                "run": r["run_id"],
                "kind": r["kind"],
                "read": ", ".join(r["read"]),
                "checkpoints": len(r["checkpoints"]),
                "model sha256": r["model_digest"] or "",
                "tainted by": ", ".join(self.tainted.get(r["run_id"], ())),
            }
            for r in self.found.runs
        ]
        return without_empty(rows, "tainted by")


def where(home: Home, request_id: str, actor: Acting | str | None = None) -> Where:
    """Where the request's work is now (`actor`: whom an index built now names, as machine work)."""
    found = affected(home, get(home, request_id), actor)
    marked = {run: tuple(dict.fromkeys(t.takedown for t in ts)) for run, ts in taints(home).items()}
    return Where(found, marked)


# -- applying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanView:
    """What applying a request would do now, or why it cannot be applied (nothing is written)."""

    request: str
    versions: list[dict[str, Any]]
    tainted: list[dict[str, Any]]
    running: list[dict[str, Any]]
    error: str | None = None

    def fingerprint(self) -> str:
        """A short digest of what the plan says: a confirmation is for this plan only."""
        said = json.dumps([self.request, self.versions, self.tainted, self.running], sort_keys=True)
        return hashlib.sha256(said.encode("utf-8")).hexdigest()[:12]

    def summary(self) -> str:
        return f"replace {plural(len(self.versions), 'dataset version')} and taint {plural(len(self.tainted), 'run')}"


def plan_view(home: Home, request_id: str, actor: Acting | str | None = None) -> PlanView:
    try:
        the_plan = plan(home, request_id, actor)
    except (ApplyError, RequestError) as exc:
        return PlanView(request_id, [], [], [], one_line(exc))
    versions = [
        {
            "replace": str(c.old.ref),
            "with": str(c.new_ref),
            "how": "records removed" if c.how == "removed" else f"derived again from {c.parent}'s new version",
            "records holding the work": len(c.remove),
        }
        for c in the_plan.changes
    ]
    tainted = [
        {
            "run": t["run_id"],
            "why": f"read {', '.join(t['read'])}"
            if t["read"]
            else f"started from a checkpoint of run {t['inherits_from']}",
            "started at index": t["started_index"],
        }
        for t in the_plan.tainted
    ]
    running = [{"run": r["run_id"], "started at index": r["started_index"]} for r in the_plan.running]
    return PlanView(the_plan.request.id, versions, tainted, running)


def may_apply(who: Standing | None) -> bool:
    """Whether this person's roster roles let them apply a takedown (the ledger checks again)."""
    return who is not None and not who.problem and bool(who.roles & APPLY_ROLES)


def why_not_apply(signed_in: SignedIn | None, who: Standing | None, service: Service) -> str | None:
    """Why this person gets no Apply button, in words (None: they may apply)."""
    if signed_in is None or who is None:
        return f"Sign in (sidebar) as an {NEEDS} to apply a takedown."
    if not service.can_attest:
        return f"The dashboard is read-only: {service.why_read_only}"
    if who.problem:
        return who.problem
    if not may_apply(who):
        return f"{who.name} (roster roles: {who.describe()}) may not apply a takedown: that takes an {NEEDS}."
    return None


def act(
    home: Home,
    signed_in: SignedIn | None,
    service: Service,
    request_id: str,
    include_running: bool = False,
    say: Say = lambda _line: None,
) -> Applied:
    """Apply a request for the signed-in person, signed by the dashboard's key attesting them.

    The account is read again (its role now, not as it was at sign-in), and the person's roster
    roles must include approver or admin. Raises NotAllowed, NotPermitted, ApplyError or
    RequestError; nothing is taken down then."""
    who = acting_standing(home, signed_in, service, f"sign in as an {NEEDS} to apply a takedown")
    if not may_apply(who):
        raise NotAllowed(f"{who.name} (roster roles: {who.describe()}) may not apply a takedown; needs role {NEEDS}")
    return apply(home, request_id, attested(signed_in, service), include_running=include_running, say=say)


# -- the proof of removal -------------------------------------------------------------------


def proof_file_name(request_id: str) -> str:
    return f"takedown-{request_id}.proof.json"


def verify_command(request_id: str) -> str:
    return f"custody takedown verify-proof {proof_file_name(request_id)} --key VERIFIER_KEY"


def proof_bytes(home: Home, request_id: str) -> bytes:
    """The proof file `custody takedown proof` writes (NotApplied before the request is applied).
    Building it signs a checkpoint of the current head, so every entry it proves is covered."""
    from custody.takedown.proof import build_proof

    return (json.dumps(build_proof(home, request_id), indent=1, sort_keys=True) + "\n").encode("utf-8")


def proof_download(home_path: Path, request_id: str) -> bytes:
    """For a deferred download: runs on Streamlit's own thread, so it opens its own home."""
    home = Home.open(home_path)
    try:
        return proof_bytes(home, request_id)
    finally:
        home.close()
