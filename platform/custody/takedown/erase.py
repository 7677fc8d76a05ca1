"""Erasing what a takedown removed: the shards of replaced versions leave the artifact store.

A shard is erased once no live dataset version (one no takedown replaced) names it; shards
registered in place lie outside the home and are only reported. Each erasure is recorded first
(`artifact.erased/v1`, signed by an admin, naming the takedown), in one transaction, and the
files are deleted after it commits: an erasure the ledger does not hold never happens, and a
crash between the two leaves files that the next `gc` erases without recording them again. The
ledger keeps digests only, so `custody ledger verify` still passes; manifests, cards, decisions
and passage indexes (digests, ids and offsets, no text) stay as the evidence of what was there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger import query
from custody.takedown.find import removed_versions


@dataclass
class Erasable:
    digest: str
    size: int
    shards: list[str] = field(default_factory=list)  # NAME@VERSION:shard names it holds
    takedowns: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"digest": self.digest, "bytes": self.size, "shards": self.shards, "takedowns": self.takedowns}


@dataclass
class Collected:
    erased: list[Erasable]
    outside: list[str]  # in-place shards of replaced versions: the files are not the home's to delete
    recorded_at: int | None = None

    def as_json(self) -> dict:
        return {
            "erased": [e.as_json() for e in self.erased],
            "bytes": sum(e.size for e in self.erased),
            "outside_home": self.outside,
            "recorded_at": self.recorded_at,
        }


def collect(home: Home, takedown: str | None = None) -> Collected:
    """What `gc` would erase now (all takedowns, or one), without erasing anything."""
    gone = removed_versions(home)
    kept: set[str] = set()
    replaced = []
    for dataset in DatasetRegistry(home).all():
        if str(dataset.ref) not in gone:
            kept.update(s.digest for s in dataset.manifest.shards)
        elif takedown is None or gone[str(dataset.ref)]["takedown"] == takedown:
            replaced.append(dataset)
    erasable: dict[str, Erasable] = {}
    outside = []
    for dataset in replaced:
        for shard in dataset.manifest.shards:
            where = f"{dataset.ref}:{shard.name}"
            if dataset.body.get("in_place"):
                outside.append(f"{where} at {dataset.body['locations'][shard.name]}")
            elif shard.digest not in kept and home.store.exists(shard.digest):
                item = erasable.setdefault(shard.digest, Erasable(shard.digest, shard.bytes))
                item.shards.append(where)
                if gone[str(dataset.ref)]["takedown"] not in item.takedowns:
                    item.takedowns.append(gone[str(dataset.ref)]["takedown"])
    return Collected(sorted(erasable.values(), key=lambda e: e.digest), outside)


def gc(home: Home, actor, takedown: str | None = None) -> Collected:
    """Erase the shards no live version names (recorded first, then deleted); returns what went."""
    found = collect(home, takedown)
    already = {query.body(r)["digest"] for r in query.entries(home.storage, "artifact.erased/")}
    entries = [
        home.entry(
            "artifact.erased/v1",
            f"artifact:{item.digest}",
            {"digest": item.digest, "reason": f"takedown {', '.join(item.takedowns)}: {', '.join(item.shards)}"},
            refs=[f"sha256:{item.digest}"],
            actor=actor,
        )
        for item in found.erased
        if item.digest not in already
    ]
    if entries:
        found.recorded_at = home.append(entries)[0]
        home.checkpoint()
    for item in found.erased:
        home.store.erase(item.digest)
    return found
