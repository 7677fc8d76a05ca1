"""`custody find`: where is this passage or record, and what was made from it?

Every registered dataset version (sources and derived ones alike) is looked up in its passage
index (built and recorded on first use); every candidate record is then confirmed against its own
words, so a reported hit always shares at least MIN_WORDS consecutive words with the passage (or,
for `--record-hash`, has exactly that text SHA-256). Downstream of the datasets holding a hit: the
datasets derived from them (through the lineage), the runs that read any of those, and those runs'
checkpoints and final models.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.ledger import query
from custody.takedown.fingerprints import MIN_WORDS, NGRAM, shared_runs, shingle_hashes, winnow, words
from custody.takedown.index import index_for

RECORD_HASH = re.compile(r"^[0-9a-f]{64}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


class FindError(ValueError):
    """A query that cannot be answered as asked (too short a passage, a malformed hash)."""


@dataclass(frozen=True)
class Hit:
    dataset: str
    dataset_digest: str
    record_id: str
    ordinal: int  # position of the record in the dataset, from 0
    spans: tuple[tuple[int, int], ...]  # character offsets of the shared text in the record
    content_hash: str = ""  # the record text's SHA-256

    def as_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "dataset_digest": self.dataset_digest,
            "record_id": self.record_id,
            "ordinal": self.ordinal,
            "spans": [list(s) for s in self.spans],
            "content_hash": self.content_hash,
        }


@dataclass
class Found:
    query: dict
    hits: list[Hit] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)  # datasets made from a holder, not themselves hits
    runs: list[dict] = field(default_factory=list)
    indexed_now: list[str] = field(default_factory=list)  # indexes built by this query
    # versions a takedown replaced, NAME@VERSION -> {takedown, replaced_by, erased}: hits in them are
    # still reported while their bytes are in the store; erased ones cannot be read, only listed
    removed: dict[str, dict] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "query": self.query,
            "hits": [h.as_json() for h in self.hits],
            "datasets": sorted({h.dataset for h in self.hits}),
            "derived": self.derived,
            "runs": self.runs,
            "indexed_now": self.indexed_now,
            "removed": self.removed,
        }

    def live_hits(self) -> list[Hit]:
        """Hits in versions no takedown has replaced."""
        return [h for h in self.hits if h.dataset not in self.removed]


def _confirm(dataset: RegisteredDataset, ordinals: np.ndarray, check) -> list[Hit]:
    """Read the candidate records (from the shards holding one, each re-hashed against the
    manifest first) and keep those `check(text, content_hash)` confirms."""
    wanted = sorted({int(o) for o in ordinals})
    hits, first = [], 0
    for shard in dataset.manifest.shards:
        inside = {o - first for o in wanted if first <= o < first + shard.records}
        for position, record in sorted(dataset.records_at(shard, inside).items()) if inside else []:
            spans = check(record.text, record.content_hash)
            if spans is not None:
                hits.append(
                    Hit(
                        str(dataset.ref), dataset.digest, record.id, first + position, tuple(spans), record.content_hash
                    )
                )
        first += shard.records
    return hits


def removed_versions(home: Home) -> dict[str, dict]:
    """Every dataset version a takedown replaced: NAME@VERSION -> its `dataset.removed` body and index."""
    out = {}
    for row in query.entries(home.storage, "dataset.removed/"):
        out[row.subject.removeprefix("dataset:")] = {**query.body(row), "ledger_index": row.idx}
    return out


def erased(home: Home, dataset: RegisteredDataset) -> bool:
    """Whether any of the version's shards has left the store (`custody store gc`)."""
    return not dataset.body.get("in_place") and not all(home.store.exists(s.digest) for s in dataset.manifest.shards)


def _search(home: Home, query_json: dict, candidates, check, actor: str | None, scan=None) -> Found:
    """Every live or not yet erased version's hits: index candidates confirmed by `check`, or,
    for what no index holds, `scan(dataset)` reading every record."""
    found = Found(query_json)
    registry = DatasetRegistry(home)
    gone = removed_versions(home)
    for dataset in registry.all():
        ref = str(dataset.ref)
        if ref in gone:
            found.removed[ref] = {
                "takedown": gone[ref]["takedown"],
                "replaced_by": gone[ref]["replaced_by"],
                "erased": erased(home, dataset),
            }
            if found.removed[ref]["erased"]:
                continue  # nothing left to confirm a candidate against
        if scan is not None:
            found.hits += scan(dataset)
            continue
        index, built = index_for(home, dataset, actor)
        if built:
            found.indexed_now.append(str(dataset.ref))
        ordinals = candidates(index)
        if len(ordinals):
            found.hits += _confirm(dataset, ordinals, check)
    _downstream(home, registry, found)
    return found


def passage_shingles(passage: str) -> np.ndarray:
    """The shingle hashes of a passage long enough to be found (FindError otherwise)."""
    passage_words = words(passage).words
    if len(passage_words) < MIN_WORDS:
        raise FindError(
            f"the passage has {len(passage_words)} words; at least {MIN_WORDS} are needed "
            "(shorter runs of words are shared by unrelated texts too often to mean anything)"
        )
    return shingle_hashes(passage_words)


def find_text(home: Home, passage: str, actor: str | None = None) -> Found:
    """Records sharing at least MIN_WORDS consecutive words with `passage`."""
    return find_shingles(home, passage_shingles(passage), actor)


def find_shingles(home: Home, shingles: np.ndarray, actor: str | None = None) -> Found:
    """Records sharing at least MIN_WORDS consecutive words with the passage these shingle hashes
    come from (what a takedown request keeps instead of the passage)."""
    if len(shingles) < MIN_WORDS - NGRAM + 1:
        raise FindError(f"{len(shingles)} shingles cover fewer than {MIN_WORDS} words")
    wanted = winnow(shingles)
    members = set(shingles.tolist())

    def check(text: str, _content_hash: str) -> list[tuple[int, int]] | None:
        return shared_runs(members, words(text)) or None

    query_json = {"kind": "text", "words": len(shingles) + NGRAM - 1, "min_words": MIN_WORDS}
    return _search(home, query_json, lambda index: index.records_with(wanted), check, actor)


def find_record_hash(home: Home, record_hash: str, actor: str | None = None) -> Found:
    """Records whose text has this SHA-256 (as `content_hash` in the check rows and manifests)."""
    record_hash = record_hash.strip().lower().removeprefix("sha256:")
    if not RECORD_HASH.fullmatch(record_hash):
        raise FindError(f"--record-hash {record_hash!r} is not a SHA-256 (64 hexadecimal characters)")

    def check(text: str, content_hash: str) -> list[tuple[int, int]] | None:
        return [(0, len(text))] if content_hash == record_hash else None

    query_json = {"kind": "record-hash", "sha256": record_hash}
    return _search(home, query_json, lambda index: index.records_hashed(record_hash), check, actor)


def source_query(url_prefix: str | None = None, domain: str | None = None) -> dict:
    """The query for records from a URL prefix or a domain, checked (FindError when malformed)."""
    if (url_prefix is None) == (domain is None):
        raise FindError("give one of --url-prefix URL or --domain DOMAIN")
    if url_prefix is not None:
        if not url_prefix.strip():
            raise FindError("--url-prefix is empty")
        return {"kind": "url-prefix", "url_prefix": url_prefix.strip()}
    host = domain.strip().lower().strip(".")
    if not DOMAIN.fullmatch(host):
        raise FindError(f"--domain {domain!r} is not a domain name (e.g. example.org)")
    return {"kind": "domain", "domain": host}


def find_source(
    home: Home, url_prefix: str | None = None, domain: str | None = None, actor: str | None = None
) -> Found:
    """Records whose source URL starts with `url_prefix`, or whose host is `domain` or below it."""
    query_json = source_query(url_prefix, domain)
    if query_json["kind"] == "url-prefix":
        matches = _prefix_matcher(query_json["url_prefix"])
    else:
        matches = _domain_matcher(query_json["domain"])

    def check(text: str, _content_hash: str) -> list[tuple[int, int]]:
        return [(0, len(text))]  # the index matched the record's own source URL: the whole record

    return _search(home, query_json, lambda index: index.records_from(matches), check, actor)


FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
RECORD_CORE = ("text", "id")


def field_value_digest(value: object) -> str:
    """How a field value is compared and recorded: SHA-256 of its text, case-folded, spaces collapsed
    (so a request about an author or a person keeps no copy of the name)."""
    text = " ".join(str(value).split()).casefold()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def field_query(assignment: str) -> dict:
    """`KEY=VALUE` as a query that holds the key and the value's digest (FindError when malformed)."""
    key, sep, value = assignment.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not FIELD_KEY.fullmatch(key) or key in RECORD_CORE:
        raise FindError(
            f"--field {assignment[:80]!r}: expected KEY=VALUE with KEY a record field such as author or source "
            "(letters, digits, '_', '.', '-'; not text or id: use --text-file or --record-hash)"
        )
    if not value:
        raise FindError(f"--field {key}=: the value is empty")
    return {"kind": "field", "field": key, "sha256": field_value_digest(value)}


def find_field(home: Home, key: str, value_digest: str, actor: str | None = None) -> Found:
    """Records whose field `key` has the value with this digest (`field_value_digest`). No index
    holds record fields: every record of every version is read (seconds per GB)."""
    from custody.train.data import verified_records

    def scan(dataset: RegisteredDataset) -> list[Hit]:
        hits = []
        for ordinal, (_, record) in enumerate(verified_records(dataset, extra=(key,))):
            value = (record.extra or {}).get(key)
            if value is not None and field_value_digest(value) == value_digest:
                hit = Hit(
                    str(dataset.ref), dataset.digest, record.id, ordinal, ((0, len(record.text)),), record.content_hash
                )
                hits.append(hit)
        return hits

    query_json = {"kind": "field", "field": key, "sha256": value_digest}
    return _search(home, query_json, None, None, actor, scan=scan)


def _prefix_matcher(prefix: str):
    return lambda url: url.startswith(prefix)


def _domain_matcher(host: str):
    def matches(url: str) -> bool:
        found = (urlsplit(url).hostname or "").lower()
        return found == host or found.endswith("." + host)

    return matches


def _downstream(home: Home, registry: DatasetRegistry, found: Found) -> None:
    """Datasets derived from the holders, and every run (with its checkpoints) that read any of them."""
    holders = {h.dataset for h in found.hits}
    derived: set[str] = set()
    for ref in holders:
        _, descendants = registry.lineage(ref)
        derived.update(str(d.ref) for _, d in descendants)
    found.derived = sorted(derived - holders)
    touched = holders | derived
    for row in query.entries(home.storage, "run.started/"):
        started = query.body(row)
        read = [d["ref"] for d in started["datasets"] if d["ref"] in touched or d.get("source") in touched]
        if not read:
            continue
        run_id = started["run_id"]
        subject = f"run:{run_id}"
        checkpoints = [
            query.body(r)["checkpoint_digest"] for r in query.entries(home.storage, "run.checkpoint/", subject)
        ]
        finished = query.latest(home.storage, "run.finished/", subject)
        model = query.body(finished).get("model_digest") if finished is not None else None
        found.runs.append(
            {
                "run_id": run_id,
                "kind": started["kind"],
                "read": read,
                "started_index": row.idx,
                "checkpoints": checkpoints,
                "model_digest": model,
            }
        )
