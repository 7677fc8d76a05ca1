"""`custody prefs export`: judgements of pairs from one model and prompt set, as a registered preference dataset.

Per pair, the judgements decide:
- a completion any reviewer flagged harmful is never the chosen one: the other is, when it is not
  flagged too; a pair with both flagged is dropped;
- otherwise the majority of a-or-b votes wins; a tie vote, or an even split, drops the pair.

Each record holds `prompt`, `chosen`, `rejected`, `reviewers` (roster names), `judged_at`,
`judgements` (ledger indices) and `pair` (the pair's digest); its `text` is the prompt and both
completions, so the PII and toxicity checks read everything a reward model will. The dataset is
registered with the prompt set as its parent and the model's digest in its stage settings, and
`prefs.exported/v1` names the weights, the prompts and every judgement it rests on.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from custody.datasets.card import DatasetCard
from custody.datasets.names import DatasetRef
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home, actor_name
from custody.ledger import query
from custody.prefs.collect import Pair, PreferenceError, judgements_of, pairs_of

STAGE = "prefs-export"


def decide(pair: Pair, judgements: list[tuple[int, str, dict[str, Any], str]]) -> tuple[str | None, str | None]:
    """('a' or 'b', None) for the chosen completion, or (None, why the pair is dropped)."""
    if not judgements:
        return None, "unjudged"
    harmful = {flag for _, _, body, _ in judgements for flag in body.get("harmful", [])}
    if harmful == {"a", "b"}:
        return None, "harmful_both"
    if harmful:
        return ("b" if harmful == {"a"} else "a"), None
    votes = Counter(body["choice"] for _, _, body, _ in judgements if body["choice"] != "tie")
    if votes["a"] == votes["b"]:
        return None, "ties"
    return ("a" if votes["a"] > votes["b"] else "b"), None


def preference_records(home: Home, pairs: list[Pair]) -> tuple[list[dict[str, Any]], list[int], dict[str, int]]:
    """(records, judgement indices used, dropped pairs by reason)."""
    records, used = [], []
    dropped = {"ties": 0, "harmful_both": 0, "unjudged": 0}
    for pair in pairs:
        judgements = judgements_of(home, pair.digest)
        winner, why = decide(pair, judgements)
        if winner is None:
            dropped[why] += 1
            continue
        chosen, rejected = (pair.a, pair.b) if winner == "a" else (pair.b, pair.a)
        records.append(
            {
                "id": pair.digest[:16],
                "text": f"{pair.prompt}\n\n{chosen}\n\n{rejected}",
                "prompt": pair.prompt,
                "chosen": chosen,
                "rejected": rejected,
                "reviewers": sorted({who for _, who, _, _ in judgements}),
                "judged_at": [ts for _, _, _, ts in judgements],
                "judgements": [index for index, _, _, _ in judgements],
                "pair": pair.digest,
            }
        )
        used += [index for index, _, _, _ in judgements]
    return records, used, dropped


def _card(
    prompts: RegisteredDataset, model_digest: str, reviewers: list[str], license_id: str, judged_until: str
) -> DatasetCard:
    base = prompts.card.as_json()
    base["dataset"] = {
        **base["dataset"],
        "title": f"Preferences between completions of {prompts.ref} by model sha256:{model_digest[:16]}",
        "description": "Pairs of completions sampled from recorded weights, each judged by people on the roster.",
    }
    completions = {
        "name": f"completions of custody model sha256:{model_digest}",
        "uri": f"custody:model/sha256:{model_digest}",
        "kind": "synthetic",
        "license": license_id,
        "retrieved_at": judged_until,  # the newest judgement: exporting the same ledger again gives the same card
        "digest": f"sha256:{model_digest}",
    }
    base["sources"] = [*base.get("sources", []), completions]
    base["annotation"] = {
        "who": ", ".join(reviewers),
        "how": "pairwise judgements (better completion, tie, harmful flags), each a signed ledger entry",
        "guidelines": "docs/rlhf.md",
    }
    return DatasetCard.model_validate(base)


def completions_license(prompts: RegisteredDataset, given: str | None) -> str:
    """The license the completions are shared under: `given`, else the prompt set's declared one."""
    found = given or prompts.card.license.declared
    if not found:
        raise PreferenceError(
            f"{prompts.ref} declares no license: give the completions' license with --license SPDX-EXPRESSION"
        )
    from custody.licenses.spdx import parse_expression

    parsed = parse_expression(found)
    if parsed.error:
        raise PreferenceError(f"--license {found!r}: not a valid SPDX license expression ({parsed.error})")
    return found


def export(
    home: Home,
    model_digest: str,
    prompts: RegisteredDataset,
    ref: DatasetRef,
    actor: Any = None,
    license_id: str | None = None,
) -> tuple[RegisteredDataset, int, dict[str, Any]]:
    """Register the preference dataset and record `prefs.exported/v1`; (dataset, entry index, body)."""
    license_id = completions_license(prompts, license_id)
    pairs = [p for p in pairs_of(home, model_digest) if p.prompts == str(prompts.ref)]
    if not pairs:
        raise PreferenceError(f"no pairs were sampled from sha256 {model_digest[:16]} on {prompts.ref}")
    records, used, dropped = preference_records(home, pairs)
    if not records:
        raise PreferenceError(
            f"none of the {len(pairs)} pairs from sha256 {model_digest[:16]} on {prompts.ref} has a deciding "
            f"judgement (dropped: {', '.join(f'{k} {v}' for k, v in dropped.items() if v)})"
        )
    reviewers = sorted({name for r in records for name in r["reviewers"]})
    config = {"model_digest": model_digest, "prompts": str(prompts.ref), "judgements": used}
    dataset, created = DatasetRegistry(home).register_derived(
        ref,
        [prompts],
        STAGE,
        config,
        records,
        card=_card(prompts, model_digest, reviewers, license_id, max(t for r in records for t in r["judged_at"])),
        actor=actor_name(actor),
    )
    if not created:  # the same judgements exported again under the same name: nothing new to record
        row = query.latest(home.storage, "prefs.exported/", ref.subject)
        if row is not None and query.body(row)["dataset_digest"] == dataset.digest:
            return dataset, row.idx, query.body(row)
    body = {
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "model_digest": model_digest,
        "run_id": pairs[0].run_id,
        "prompts": str(prompts.ref),
        "prompts_digest": prompts.digest,
        "pairs": len(records),
        "judgements": used,
        "reviewers": reviewers,
        "dropped": dropped,
    }
    refs = [f"sha256:{dataset.digest}", f"sha256:{model_digest}", f"ledger:{dataset.index}"]
    index = home.record("prefs.exported/v1", ref.subject, body, refs=refs, actor=actor_name(actor))
    return dataset, index, body
