"""Preferences: pairs sampled from recorded weights, each person's judgements, judging for the
signed-in person and asking for new pairs.

Everything goes through custody.prefs.collect, the code `custody prefs show | judge | sample`
runs. Lists read the ledger only (`prefs.pair/v1`, `prefs.judged/v1`): a pair's texts are read from
the artifact store when one pair is shown, never for a list. A judgement is the person's own entry:
`act` records it signed by the dashboard's key attesting them, and their roster roles (reviewer or
approver) decide, as for `custody prefs judge`; the ledger checks again. New pairs are machine work
(`prefs.pair/v1`, signed by the service key, naming who asked), for whoever `custody prefs sample`
serves (`request_roles("prefs")`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from custody.datasets.names import is_intermediate, parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger.query import body, entries
from custody.prefs.collect import LANGUAGE_MODELS, Pair, PreferenceError, judge, pair_at, sample_pairs
from custody.trust.permissions import ROLES, person_roles, request_roles
from custody.views.common import when
from custody.views.identity import NotAllowed, Service, SignedIn, Standing, acting_standing, attested
from custody.views.signatures import signed_by_rows

PAIR, JUDGED = "prefs.pair/", "prefs.judged/"
JUDGE_ROLES = person_roles("prefs.judged/v1", "", {}) or frozenset()  # reviewer, approver
SAMPLE_ROLES = request_roles("prefs")  # whom `custody prefs sample` serves
JUDGE_NEEDS = " or ".join(r for r in ROLES if r in JUDGE_ROLES)
SAMPLE_NEEDS = ", ".join(r for r in ROLES if r in SAMPLE_ROLES)
CHOICE_WORDS = {"a": "A better", "b": "B better", "tie": "tie"}


@dataclass(frozen=True)
class Judgement:
    """One `prefs.judged` entry: who, what they chose, and which completions they flagged."""

    index: int
    pair_index: int
    who: str
    choice: str  # a | b | tie
    harmful: tuple[str, ...]
    ts: str
    signed: str  # personally, or the dashboard attesting the person

    def as_row(self) -> dict[str, Any]:
        return {
            "pair": self.pair_index,
            "who": self.who,
            "choice": CHOICE_WORDS[self.choice],
            "harmful": ", ".join(h.upper() for h in self.harmful),
            "signed": self.signed,
            "time": when(self.ts),
            "index": self.index,
        }


@dataclass(frozen=True)
class PairRow:
    """A sampled pair as the ledger lists it (its texts stay in the store until it is shown)."""

    index: int
    digest: str
    model_digest: str
    run_id: str | None
    prompts: str
    prompt_id: str
    ts: str
    judgements: tuple[Judgement, ...] = field(default_factory=tuple)

    def judged_by(self, person: str) -> bool:
        return any(j.who == person for j in self.judgements)

    def as_row(self) -> dict[str, Any]:
        return {
            "pair": self.index,
            "model sha256": self.model_digest[:16],
            "run": self.run_id or "",
            "prompt": f"{self.prompt_id} of {self.prompts}",
            "judgements": len(self.judgements),
            "by": ", ".join(j.who for j in self.judgements),
            "sampled": when(self.ts),
        }

    def label(self) -> str:
        return f"pair {self.index}: {self.prompt_id} of {self.prompts} ({len(self.judgements)} judged)"


def _judgements(home: Home) -> list[Judgement]:
    """Every judgement, oldest first (one pass over the prefs.judged entries)."""
    rows = list(entries(home.storage, JUDGED))
    signers = signed_by_rows(home, rows)
    found = []
    for row in rows:
        data = body(row)
        signer = signers[row.idx]
        found.append(
            Judgement(
                row.idx, data["pair_index"], signer.actor, data["choice"], tuple(data.get("harmful", [])), row.ts,
                signer.label(),
            )
        )  # fmt: skip
    return found


def list_pairs(home: Home) -> list[PairRow]:
    """Every sampled pair with its judgements, oldest first."""
    by_pair: dict[int, list[Judgement]] = {}
    for judgement in _judgements(home):
        by_pair.setdefault(judgement.pair_index, []).append(judgement)
    pairs = []
    for row in entries(home.storage, PAIR):
        data = body(row)
        pairs.append(
            PairRow(
                row.idx, data["pair_digest"], data["model_digest"], data.get("run_id"), data["prompts"],
                data["prompt_id"], row.ts, tuple(by_pair.get(row.idx, [])),
            )
        )  # fmt: skip
    return pairs


def recent_judgements(pairs: Iterable[PairRow], limit: int = 50) -> list[dict[str, Any]]:
    """The newest judgements as table rows: who, choice, flags, how it was signed, when. No text."""
    every = sorted((j for p in pairs for j in p.judgements), key=lambda j: -j.index)
    return [j.as_row() for j in every[:limit]]


@dataclass(frozen=True)
class Progress:
    pairs: int
    judged_by_me: int
    pending: int  # pairs this person has not judged
    judgements: int  # by everyone


def progress(pairs: list[PairRow], person: str | None) -> Progress:
    mine = sum(p.judged_by(person) for p in pairs) if person else 0
    return Progress(len(pairs), mine, len(pairs) - mine, sum(len(p.judgements) for p in pairs))


def pending(pairs: list[PairRow], person: str) -> list[PairRow]:
    """The pairs this person has not judged, oldest first (the next one is first)."""
    return [p for p in pairs if not p.judged_by(person)]


def texts(home: Home, pair_index: int) -> Pair:
    """One pair with its prompt and completions, read from the artifact store."""
    return pair_at(home, pair_index)


# -- judging --------------------------------------------------------------------------------


def may_judge(who: Standing | None) -> bool:
    return who is not None and not who.problem and bool(who.roles & JUDGE_ROLES)


def why_not_judge(signed_in: SignedIn | None, who: Standing | None, service: Service) -> str | None:
    """Why this person gets no judgement form, in one line (None: they may judge)."""
    if signed_in is None or who is None:
        return f"Sign in (sidebar) as a {JUDGE_NEEDS} to judge pairs; until then they are shown read-only."
    if not service.can_attest:
        return f"The dashboard is read-only: {service.why_read_only}"
    if who.problem:
        return who.problem
    if not may_judge(who):
        return (
            f"{who.name} (roster roles: {who.describe()}) may read the pairs but not judge them: "
            f"that takes a {JUDGE_NEEDS}."
        )
    return None


def act(
    home: Home, signed_in: SignedIn | None, service: Service, pair_index: int, choice: str, harmful: list[str]
) -> int:
    """Record the signed-in person's judgement of a pair, signed by the dashboard's key attesting them.

    The account is read again (its role now, not as it was at sign-in) and the person's roster
    roles must include reviewer or approver. Raises NotAllowed, NotPermitted or PreferenceError
    (judged already, no such pair, a choice other than a, b or tie); nothing is recorded then."""
    who = acting_standing(home, signed_in, service, f"sign in as a {JUDGE_NEEDS} to judge pairs")
    if not may_judge(who):
        raise NotAllowed(f"{who.name} (roster roles: {who.describe()}) may not judge pairs; needs role {JUDGE_NEEDS}")
    return judge(home, pair_index, choice, harmful, attested(signed_in, service))


# -- asking for new pairs -------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """Recorded weights a pair can be sampled from: a language model a finished run wrote."""

    run_id: str
    name: str
    kind: str
    digest: str
    index: int  # of its run.finished entry

    def label(self) -> str:
        return f"{self.run_id} ({self.kind}, sha256 {self.digest[:16]})"


def models(home: Home) -> list[Model]:
    """Finished runs that wrote a language model, newest first."""
    kinds: dict[str, tuple[str, str]] = {}
    for row in entries(home.storage, "run.started/"):
        data = body(row)
        kinds[data["run_id"]] = (data["name"], data["kind"])
    found: dict[str, Model] = {}
    for row in entries(home.storage, "run.finished/", newest_first=True):
        data = body(row)
        name, kind = kinds.get(data["run_id"], ("", ""))
        if kind in LANGUAGE_MODELS and data.get("model_digest") and data["run_id"] not in found:
            found[data["run_id"]] = Model(data["run_id"], name, kind, data["model_digest"], row.idx)
    return list(found.values())


def prompt_sets(home: Home) -> list[str]:
    """Registered dataset versions a pair's prompt can come from (not intermediate stage outputs)."""
    return [str(d.ref) for d in DatasetRegistry(home).all() if not is_intermediate(d.ref)]


def may_sample(who: Standing | None) -> bool:
    return who is not None and not who.problem and bool(who.roles & SAMPLE_ROLES)


def why_not_sample(signed_in: SignedIn | None, who: Standing | None, service: Service) -> str | None:
    if signed_in is None or who is None:
        return f"Sign in (sidebar) as an {SAMPLE_NEEDS} to sample new pairs (or run `custody prefs sample`)."
    if not service.can_attest:
        return f"The dashboard is read-only: {service.why_read_only}"
    if who.problem:
        return who.problem
    if not may_sample(who):
        return f"{who.name} (roster roles: {who.describe()}) may not ask for new pairs."
    return None


def sample(
    home: Home,
    signed_in: SignedIn | None,
    service: Service,
    model_digest: str,
    prompts: str,
    count: int,
    seed: int = 0,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
) -> list[Pair]:
    """Sample `count` new pairs for the signed-in person: `custody prefs sample` with the same checks.

    The pairs are machine work, signed by the service key and naming the person (as the CLI
    records them). Raises NotAllowed or PreferenceError; nothing is recorded then."""
    who = acting_standing(home, signed_in, service, "sign in to sample new pairs")
    if not may_sample(who):
        raise NotAllowed(f"{who.name} (roster roles: {who.describe()}) may not ask for new pairs")
    try:
        prompt_set = DatasetRegistry(home).get(parse_ref(prompts))
    except (LookupError, ValueError) as exc:
        raise PreferenceError(f"prompt set {prompts}: {exc}") from None
    return sample_pairs(
        home, f"sha256:{model_digest}", prompt_set, count, attested(signed_in, service), seed, max_new_tokens,
        temperature,
    )  # fmt: skip


def sample_command(model_digest: str, prompts: str, count: int) -> str:
    return f"custody prefs sample sha256:{model_digest} {prompts} --pairs {count}"
