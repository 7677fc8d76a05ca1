"""Collecting preferences: pairs of completions sampled from recorded weights, and people's judgements.

`sample_pairs` draws two completions of each prompt of a registered prompt set from a recorded
language model (loaded only when its bytes hash to the digest), stores them as one JSON artifact
and records `prefs.pair/v1`. `judge` records a person's `prefs.judged/v1`: which completion is
better (or a tie) and which are harmful. The judgement is the reviewer's own entry: the ledger
admits it only when signed by a key the roster gives a reviewing role, or attested by the
dashboard for such a person, and one person judges a pair once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.evals.run_eval import EvalError, resolve
from custody.home import Home, actor_name
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.prefs import entry_types  # noqa: F401  registers prefs.pair, prefs.judged, prefs.exported
from custody.train.data import verified_records

LANGUAGE_MODELS = ("pretrain", "finetune", "transfer", "dpo")
CHOICES = ("a", "b", "tie")


class PreferenceError(ValueError):
    """A sampling, judgement or export that cannot be done as asked; nothing is recorded."""


@dataclass(frozen=True)
class Pair:
    """A recorded pair with its texts, read back from the artifact store."""

    index: int
    digest: str
    model_digest: str
    run_id: str | None
    prompts: str
    prompt_id: str
    prompt: str
    a: str
    b: str
    ts: str


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample_pairs(
    home: Home,
    target: str,
    prompts: RegisteredDataset,
    count: int,
    actor: Any = None,
    seed: int = 0,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
) -> list[Pair]:
    """Record `count` new pairs from the prompts not yet sampled for these weights, in record order."""
    from custody.train.checkpoint import load_checkpoint
    from custody.train.preference import encode_prompt, sample_completions
    from custody.train.tokenizer import load_tokenizer

    if count < 1:
        raise PreferenceError(f"--pairs {count}: ask for at least one pair")
    try:
        weights = resolve(home, target)
    except EvalError as exc:
        raise PreferenceError(str(exc)) from None
    if weights.kind not in LANGUAGE_MODELS:
        raise PreferenceError(
            f"run {weights.run_id} trained a {weights.kind} model, not a language model to sample from"
        )
    checkpoint = load_checkpoint(weights.path, weights.digest)
    tokenizer_digest = checkpoint.state["meta"]["tokenizer_digest"]
    tokenizer = load_tokenizer(home.store.path_for(tokenizer_digest), tokenizer_digest)
    model = checkpoint.build_model()
    done = {p.prompt_id for p in pairs_of(home, weights.digest) if p.prompts == str(prompts.ref)}
    todo = [(r.id, r.text) for _, r in verified_records(prompts) if r.id not in done][:count]
    if not todo:
        raise PreferenceError(f"every prompt of {prompts.ref} already has a pair from sha256 {weights.digest[:16]}")
    sampling = {"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed}
    entries = []
    for number, (prompt_id, prompt) in enumerate(todo):
        ids = encode_prompt(tokenizer, prompt)
        # Decoded exactly, leading space included: the prompt's text and a completion's together
        # encode to the tokens the model sampled, so a reward model and DPO train on what it said.
        a, b = (
            tokenizer.decode([t for t in c if t != tokenizer.eot_id])
            for c in sample_completions(model, ids, 2, max_new_tokens, tokenizer.eot_id, temperature, seed + number)
        )
        pair_digest = home.store.put_bytes(canonical_json({"prompt": prompt, "completions": [a, b]}))
        body = {
            "model_digest": weights.digest,
            "run_id": weights.run_id,
            "prompts": str(prompts.ref),
            "prompts_digest": prompts.digest,
            "prompt_id": prompt_id,
            "pair_digest": pair_digest,
            "completion_digests": [_text_digest(a), _text_digest(b)],
            "sampling": sampling,
        }
        refs = [f"sha256:{weights.digest}", f"sha256:{pair_digest}", f"ledger:{prompts.index}"]
        entries.append(home.entry("prefs.pair/v1", f"model:{weights.digest}", body, refs, actor_name(actor)))
    return [pair_at(home, index) for index in home.append(entries)]  # one transaction for all pairs


def _pair(home: Home, row) -> Pair:
    body = query.body(row)
    texts = json.loads(home.store.read_bytes(body["pair_digest"]))
    a, b = texts["completions"]
    return Pair(
        row.idx, body["pair_digest"], body["model_digest"], body.get("run_id"), body["prompts"], body["prompt_id"],
        texts["prompt"], a, b, row.ts,
    )  # fmt: skip


def pair_at(home: Home, index: int) -> Pair:
    row = query.at(home.storage, index)
    if row is None or not row.type.startswith("prefs.pair/"):
        raise PreferenceError(f"ledger entry {index} is not a sampled preference pair (prefs.pair)")
    return _pair(home, row)


def pairs_of(home: Home, model_digest: str | None = None) -> list[Pair]:
    """Every pair sampled (from these weights), oldest first."""
    subject = f"model:{model_digest}" if model_digest else None
    return [_pair(home, row) for row in query.entries(home.storage, "prefs.pair/", subject)]


def judgements_of(home: Home, pair_digest: str) -> list[tuple[int, str, dict[str, Any], str]]:
    """(ledger index, who, body, time) of every judgement of a pair, oldest first."""
    return [
        (row.idx, home.attribute(row).actor, query.body(row), row.ts)
        for row in query.entries(home.storage, "prefs.judged/", f"pair:{pair_digest}")
    ]


def pending_for(home: Home, person: str, model_digest: str | None = None) -> list[Pair]:
    """The pairs this person has not judged yet, oldest first."""
    return [
        p for p in pairs_of(home, model_digest) if all(who != person for _, who, _, _ in judgements_of(home, p.digest))
    ]


@dataclass(frozen=True)
class Judgement:
    pair: int  # the prefs.pair entry's ledger index
    choice: str
    harmful: tuple[str, ...] = ()


def _checked(home: Home, judgement: Judgement, person: str, where: str) -> dict[str, Any]:
    if judgement.choice not in CHOICES:
        raise PreferenceError(f"{where}choice {judgement.choice!r}: one of a, b or tie")
    bad = [h for h in judgement.harmful if h not in ("a", "b")]
    if bad:
        raise PreferenceError(f"{where}harmful {bad[0]!r}: a or b (the completion to flag)")
    pair = pair_at(home, judgement.pair)
    for index, who, _, _ in judgements_of(home, pair.digest):
        if who == person:
            raise PreferenceError(f"{where}{person} already judged pair {judgement.pair} (ledger index {index})")
    return {
        "pair_index": judgement.pair,
        "pair_digest": pair.digest,
        "choice": judgement.choice,
        "harmful": sorted(set(judgement.harmful)),
    }


def judge_all(home: Home, judgements: list[Judgement], actor: Any, where: str = "--") -> list[int]:
    """Record one person's judgements, all or none: every one is checked before the first is
    recorded (a pair judged twice in the same list counts as judged already)."""
    person = actor_name(actor)
    bodies, seen = [], set()
    for number, judgement in enumerate(judgements, 1):
        at = where if where == "--" else f"{where}:{number}: "
        if judgement.pair in seen:
            raise PreferenceError(f"{at}{person} judges pair {judgement.pair} twice")
        seen.add(judgement.pair)
        bodies.append(_checked(home, judgement, person, at))
    entries = [
        home.entry("prefs.judged/v1", f"pair:{b['pair_digest']}", b, refs=[f"ledger:{b['pair_index']}"], actor=actor)
        for b in bodies
    ]
    return home.append(entries) if entries else []


def judge(home: Home, pair_index: int, choice: str, harmful: list[str], actor: Any) -> int:
    """Record one person's judgement of a pair; returns its ledger index."""
    return judge_all(home, [Judgement(pair_index, choice, tuple(harmful))], actor)[0]
