"""Opt-out registries in the ledger: importing a version, the versions in force, whom they affect.

`custody optout import FILE --registry NAME` checks every line of the file (lists.py), keeps the
file and its checked entries in the artifact store, matches the entries against every record of
every registered dataset version, and records one `optout.imported/v1` entry, signed by the
person importing, that names the file's digest, what changed since the registry's previous
import and which dataset versions it affects. A registry's newest import is the one in force;
several registries (by name) are in force together. An import that withdraws entries lifts
opt-outs, which is a decision: it needs an approver's or an admin's key (trust/permissions.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from custody.datasets.readers import Fields, read_records
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.optout import entry_types  # registers optout.imported/v1
from custody.optout.lists import Listed, Matcher, OptOut, OptOutFileError, authors_of, file_format, parse
from custody.store import sha256_file

IMPORTED = "optout.imported/"
DEFAULT_REGISTRY = "default"
AUTHOR_FIELD = "author"  # the record field an `author` entry is compared with
_NAME = re.compile(entry_types.REGISTRY_NAME)


class RegistryError(ValueError):
    """A registry name or file that cannot be imported."""


def subject(registry: str) -> str:
    return f"optout:{registry}"


@dataclass(frozen=True)
class Import:
    """One recorded import of a registry."""

    ledger_index: int
    ts: str
    actor: str
    body: dict

    @property
    def registry(self) -> str:
        return self.body["registry"]

    def entries(self, home: Home) -> list[OptOut]:
        return [OptOut(**doc) for doc in json.loads(home.store.read_bytes(self.body["entries_digest"]))]

    def as_json(self) -> dict:
        # `replaces` is left out of the entry when there was no previous import: say it as null
        return {
            "ledger_index": self.ledger_index,
            "ts": self.ts,
            "imported_by": self.actor,
            "replaces": None,
            **self.body,
        }


@dataclass(frozen=True)
class RegistryState:
    """The imports in force: the newest of each registry, by registry name."""

    imports: tuple[Import, ...] = ()

    @property
    def digest(self) -> str | None:
        """What the registries in force say, as one digest (None: nothing was ever imported)."""
        if not self.imports:
            return None
        listed = [{"registry": i.registry, "entries_digest": i.body["entries_digest"]} for i in self.imports]
        return hashlib.sha256(canonical_json(listed)).hexdigest()

    def describe(self) -> dict:
        return {
            "digest": self.digest,
            "registries": [
                {
                    "registry": i.registry,
                    "ledger_index": i.ledger_index,
                    "entries_digest": i.body["entries_digest"],
                    "entries": i.body["entries"],
                }
                for i in self.imports
            ],
        }

    def matcher(self, home: Home) -> Matcher:
        return Matcher(
            (Listed(i.registry, i.ledger_index, entry.kind, entry.line), entry)
            for i in self.imports
            for entry in i.entries(home)
        )


def _from_row(row) -> Import:
    return Import(row.idx, row.ts, row.actor, query.body(row))


def history(home: Home, registry: str | None = None) -> list[Import]:
    """Every import, oldest first (of one registry when named)."""
    rows = query.entries(home.storage, IMPORTED, subject=subject(registry) if registry else None)
    return [_from_row(row) for row in rows]


def current(home: Home) -> RegistryState:
    newest: dict[str, Import] = {}
    for imported in history(home):
        newest[imported.registry] = imported
    return RegistryState(tuple(newest[name] for name in sorted(newest)))


def _fields(dataset: RegisteredDataset, author_field: str) -> Fields:
    fields = dataset.manifest.fields
    return Fields(
        text=fields["text"],
        id=fields.get("id"),
        license=fields.get("license") or "license",
        source_url=fields.get("source_url") or "source_url",
        extra=(author_field,),
    )


def affected(
    home: Home, new: Matcher, old: Matcher | None = None, author_field: str = AUTHOR_FIELD
) -> tuple[list[dict], list[dict]]:
    """(affected, unread): every registered dataset version with records `new` matches, how many,
    how many `old` did not match, and per kind of entry; and the versions that could not be read.
    Versions a takedown replaced (`dataset.removed`) are left out."""
    found, unread = [], []
    # Versions a takedown replaced are not live (the gate denies them, their bytes may be erased).
    replaced = {row.subject.removeprefix("dataset:") for row in query.entries(home.storage, "dataset.removed/")}
    for dataset in DatasetRegistry(home).all():
        if str(dataset.ref) in replaced:
            continue
        records, fresh, kinds = 0, 0, Counter()
        problem = None
        for shard in dataset.manifest.shards:
            path = dataset.shard_path(shard)
            if not path.exists() or sha256_file(path) != shard.digest:
                problem = f"shard {shard.name} is {'missing' if not path.exists() else 'changed since registration'}"
                break
            for record in read_records(path, shard.format, _fields(dataset, author_field), 1 << 62, shard.name):
                authors = authors_of((record.extra or {}).get(author_field))
                hits = new.match(record.source_url, authors, record.content_hash)
                if not hits:
                    continue
                records += 1
                kinds.update({hit.kind for hit in hits})
                if old is None or not old.match(record.source_url, authors, record.content_hash):
                    fresh += 1
        ref = {"dataset": str(dataset.ref), "digest": dataset.digest}
        if problem is not None:
            unread.append({**ref, "problem": problem})
        elif records:
            found.append({**ref, "records": records, "new": fresh, "kinds": dict(sorted(kinds.items()))})
    return found, unread


def import_file(
    home: Home,
    path: Path,
    registry: str = DEFAULT_REGISTRY,
    actor=None,
    author_field: str = AUTHOR_FIELD,
    today: dt.date | None = None,
) -> Import:
    """Check an opt-out file, match it against every registered dataset, and record its import."""
    if not _NAME.fullmatch(registry):
        raise RegistryError(
            f"--registry {registry!r}: a registry name is lower-case letters, digits, '.', '_' and '-' (up to 64)"
        )
    path = Path(path)
    file_format(path)  # the suffix first: an OptOutFileError naming the file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OptOutFileError(path, "opt-out file not found") from None
    except IsADirectoryError:
        raise OptOutFileError(path, "is a directory, expected an opt-out file (.csv or .jsonl)") from None
    except OSError as exc:
        raise OptOutFileError(path, f"cannot read ({exc.strerror})") from None
    entries = parse(path, data, today)

    previous = history(home, registry)
    before = previous[-1] if previous else None
    old_entries = before.entries(home) if before else []
    keys, old_keys = {e.key for e in entries}, {e.key for e in old_entries}
    index_placeholder = -1  # the import's own ledger index is not known until it is recorded
    new_matcher = Matcher((Listed(registry, index_placeholder, e.kind, e.line), e) for e in entries)
    old_matcher = (
        Matcher((Listed(registry, before.ledger_index, e.kind, e.line), e) for e in old_entries) if before else None
    )
    hits, unread = affected(home, new_matcher, old_matcher, author_field)

    file_digest = home.store.put_bytes(data)
    entries_digest = home.store.put_bytes(canonical_json([e.as_json() for e in entries]))
    body = {
        "registry": registry,
        "file_name": path.name[:255],
        "file_digest": file_digest,
        "format": file_format(path),
        "entries": len(entries),
        "entries_digest": entries_digest,
        "kinds": dict(sorted(Counter(e.kind for e in entries).items())),
        "replaces": before.ledger_index if before else None,  # the entry leaves out a None
        "added": len(keys - old_keys),
        "withdrawn": len(old_keys - keys),
        "affected": hits,
        "unread": unread,
    }
    refs = [f"sha256:{file_digest}", f"sha256:{entries_digest}"]
    index = home.record("optout.imported/v1", subject(registry), body, refs=refs, actor=actor)
    return _from_row(query.at(home.storage, index))
