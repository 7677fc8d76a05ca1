"""A preference dataset's records for a reward-model or DPO run, checked before anything trains.

Each record holds `prompt`, `chosen` and `rejected` (non-empty, different completions) and
`reviewers`: the roster names of the people whose judgements chose (`custody prefs export` writes
them; docs/rlhf.md). A reviewer must be on the roster now, not revoked, with a role that reviews
(reviewer or approver): a revoked key may have been someone else's, so its judgements stop
counting. Records are read from shard bytes re-hashed against the manifest, and split by text
digest into trained-on and held-out, the rule every custody run uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from custody.datasets.registry import RegisteredDataset
from custody.train.data import in_val_split, verified_records
from custody.trust.roster import Roster

FIELDS = ("prompt", "chosen", "rejected", "reviewers")
REVIEWING_ROLES = frozenset({"reviewer", "approver"})


class PreferenceDataError(ValueError):
    """A preference record that cannot be trained on; names the dataset, shard, line and field."""


@dataclass(frozen=True)
class Preference:
    prompt: str
    chosen: str
    rejected: str


@dataclass
class PreferenceSet:
    """One approved preference dataset, split into trained-on and held-out pairs."""

    dataset: RegisteredDataset
    train: list[Preference] = field(default_factory=list)
    held_out: list[Preference] = field(default_factory=list)
    reviewers: dict[str, str] = field(default_factory=dict)  # name -> key fingerprint


def _text(value: object, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        what = "is missing" if value is None else "must be a non-empty string"
        raise PreferenceDataError(f"{where}: field '{name}' {what}")
    return value


def _reviewers(value: object, where: str, roster: Roster | None) -> dict[str, str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PreferenceDataError(f"{where}: field 'reviewers' must list the roster names of the people who judged")
    found = {}
    for name in value:
        if roster is None:  # a home from before signed entries: names cannot be checked against keys
            found[name] = ""
            continue
        member = roster.by_name(name)
        if member is None:
            revoked = [m for m in roster.members if m.name == name and m.revoked_index is not None]
            why = f"was revoked at ledger index {revoked[-1].revoked_index}" if revoked else "is not on the roster"
            raise PreferenceDataError(f"{where}: field 'reviewers': {name!r} {why}")
        if not member.roles & REVIEWING_ROLES:
            held = ", ".join(sorted(member.roles))
            raise PreferenceDataError(f"{where}: field 'reviewers': {name!r} holds {held}, not reviewer or approver")
        found[name] = member.key.fingerprint
    return found


def preference_set(dataset: RegisteredDataset, held_out: float, roster: Roster | None) -> PreferenceSet:
    """The dataset's verified preference records; the first bad one stops the run before it trains."""
    found = PreferenceSet(dataset)
    for shard, record in verified_records(dataset, extra=FIELDS):
        where = f"{dataset.ref}: {shard.name}:{record.position}"
        fields = record.extra or {}
        prompt = _text(fields.get("prompt"), where, "prompt")
        chosen = _text(fields.get("chosen"), where, "chosen")
        rejected = _text(fields.get("rejected"), where, "rejected")
        if chosen == rejected:
            raise PreferenceDataError(f"{where}: fields 'chosen' and 'rejected' are the same completion")
        found.reviewers.update(_reviewers(fields.get("reviewers"), where, roster))
        pair = Preference(prompt, chosen, rejected)
        (found.held_out if in_val_split(record.content_hash, held_out) else found.train).append(pair)
    if not found.train:
        raise PreferenceDataError(f"{dataset.ref}: no preference pairs left to train on after holding out {held_out}")
    return found


def preference_reviewers(datasets: list[RegisteredDataset], held_out: float, roster: Roster) -> dict[str, str]:
    """Every reviewer the datasets' records name (checked against the roster), for the gate."""
    found: dict[str, str] = {}
    for dataset in datasets:
        found.update(preference_set(dataset, held_out, roster if roster.signed else None).reviewers)
    return found
