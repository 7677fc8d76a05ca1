"""Registering datasets and finding them again. The ledger is the registry of record.

A registration reads every shard once while copying it into the content-addressed store (or
hashing it where it lies, with --in-place), validates every record, and only then publishes the
shards, the manifest and the card and appends one `dataset.registered/v1` entry. Any error
before that point leaves the store and the ledger exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from custody.datasets import entry_types  # noqa: F401  registers dataset.registered/v1
from custody.datasets.card import DatasetCard, load_card
from custody.datasets.manifest import DocumentInfo, Manifest, ShardInfo
from custody.datasets.names import DatasetRef, parse_ref
from custody.datasets.readers import (
    DEFAULT_MAX_RECORD_BYTES,
    DatasetInputError,
    Fields,
    Record,
    in_reservation_folder,
    is_document,
    jsonl_records_at,
    read_records,
    reservation_host,
    shard_format,
)
from custody.datasets.shard_scan import ShardTask, scan_shards
from custody.home import Home
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.store import Staged, sha256_file

REGISTERED = "dataset.registered/"
Progress = Callable[[int], None]  # called with bytes processed


class RegistrationConflict(ValueError):
    """NAME@VERSION is already registered with different content."""


class DatasetNotFound(LookupError):
    pass


class IntegrityError(ValueError):
    """A shard's bytes no longer match the digest its manifest recorded."""


@dataclass(frozen=True)
class RegisteredDataset:
    home: Home
    ref: DatasetRef
    index: int
    actor: str
    ts: str
    body: dict
    manifest: Manifest
    card: DatasetCard

    @property
    def digest(self) -> str:
        return self.body["manifest_digest"]

    @property
    def parents(self) -> list[dict]:
        return self.body.get("parents", [])

    def shard_path(self, shard: ShardInfo) -> Path:
        if self.body.get("in_place"):
            return Path(self.body["locations"][shard.name])
        return self.home.store.path_for(shard.digest)

    def verify_shards(self) -> list[tuple[str, str]]:
        """(shard, problem) for every shard whose bytes are missing or changed."""
        problems = []
        for shard in self.manifest.shards:
            path = self.shard_path(shard)
            if not path.exists():
                problems.append((shard.name, f"missing ({path if self.body.get('in_place') else 'not in store'})"))
            elif sha256_file(path) != shard.digest:
                problems.append((shard.name, "bytes do not match the manifest digest"))
        for doc in self.manifest.documents:  # LICENSE/README texts are evidence too
            if not self.home.store.verify(doc.digest):
                problems.append((doc.name, "document is missing from the store or changed"))
        return problems

    def records(self, verify: bool = True) -> Iterator[tuple[ShardInfo, Record]]:
        """Every record, shard by shard; each shard is re-hashed against the manifest first."""
        for shard in self.manifest.shards:
            for record in self.shard_records(shard, verify):
                yield shard, record

    def records_at(self, shard: ShardInfo, positions: set[int]) -> dict[int, Record]:
        """Some records of one shard by their 0-based position in it, after re-hashing the shard
        against the manifest: plain JSONL is read once and only those lines parsed."""
        if shard.format != "jsonl":
            return {i: r for i, r in enumerate(self.shard_records(shard)) if i in positions}
        return jsonl_records_at(self.shard_path(shard), self.verified_bytes(shard), positions, self._fields())

    def verified_bytes(self, shard: ShardInfo) -> bytes:
        """The shard's bytes, read once and checked against the manifest (IntegrityError if not)."""
        path = self.shard_path(shard)
        data = path.read_bytes() if path.exists() else None
        if data is None or hashlib.sha256(data).hexdigest() != shard.digest:
            raise IntegrityError(
                f"{self.ref}: shard {shard.name} does not match its manifest digest "
                f"({'missing' if data is None else 'changed since registration'})"
            )
        return data

    def _fields(self) -> Fields:
        return Fields(**{k: v for k, v in self.manifest.fields.items() if k in ("text", "id", "license", "source_url")})

    def shard_records(self, shard: ShardInfo, verify: bool = True) -> Iterator[Record]:
        """The records of one shard, after re-hashing it against the manifest (IntegrityError if changed)."""
        fields = self._fields()
        path = self.shard_path(shard)
        if verify and (not path.exists() or sha256_file(path) != shard.digest):
            raise IntegrityError(
                f"{self.ref}: shard {shard.name} does not match its manifest digest "
                f"({'missing' if not path.exists() else 'changed since registration'})"
            )
        yield from read_records(path, shard.format, fields, max_record_bytes=1 << 62, name=shard.name)


def _collect_inputs(paths: Iterable[Path]) -> tuple[list[tuple[str, Path, str]], list[tuple[str, Path]]]:
    shards: list[tuple[str, Path, str]] = []
    docs: list[tuple[str, Path]] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise DatasetInputError(root, "not found")
        if root.is_dir():
            files = sorted(
                p for p in root.rglob("*") if not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            for path in files:
                if path.is_symlink():
                    raise DatasetInputError(path, "symbolic links inside a dataset folder are not followed")
                if not path.is_file():
                    continue
                _classify(path, path.relative_to(root).as_posix(), shards, docs)
        else:
            _classify(root, root.name, shards, docs)
    names = [n for n, *_ in shards] + [n for n, _ in docs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise DatasetInputError(duplicate, "two inputs have the same name; register them from distinct folders")
    snapshots = [(reservation_host(n), n.rsplit("/", 1)[1], path) for n, path in docs if reservation_host(n)]
    for i, (host, kind, path) in enumerate(snapshots):
        if any((host, kind) == (other, other_kind) for other, other_kind, _ in snapshots[:i]):
            raise DatasetInputError(path, f"a second {kind} for host {host} (host folders are compared without case)")
    if not shards:
        raise DatasetInputError(
            ", ".join(str(p) for p in paths), "no data files (JSONL, JSONL.gz/.zst, Parquet, CSV, .txt)"
        )
    return shards, docs


def _classify(path: Path, name: str, shards: list, docs: list) -> None:
    if in_reservation_folder(name):
        if reservation_host(name) is None:
            raise DatasetInputError(
                path, "a reservation snapshot folder (reservations/HOST/) holds only robots.txt and tdmrep.json"
            )
        _check_snapshot(path)
        docs.append((name, path))
        return
    if is_document(path):
        docs.append((name, path))
        return
    fmt = shard_format(path)
    if fmt is None:
        raise DatasetInputError(path, "unsupported file type (JSONL, JSONL.gz/.zst, Parquet, CSV, .txt)")
    if path.stat().st_size == 0:
        raise DatasetInputError(path, "empty file")
    shards.append((name, path, fmt))


def _check_snapshot(path: Path) -> None:
    """A site's robots.txt or tdmrep.json as a crawl kept it: UTF-8, and tdmrep.json an array of
    rules each with a location (the evaluator, custody.optout, reads the rest leniently)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetInputError(path, f"invalid UTF-8 at byte {exc.start}") from None
    if path.name != "tdmrep.json":
        return
    try:
        rules = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetInputError(path, f"malformed JSON ({exc.msg})", exc.lineno) from None
    if not isinstance(rules, list):
        raise DatasetInputError(path, "a tdmrep.json is a JSON array of rules")
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise DatasetInputError(path, "must be a JSON object", field=f"[{i}]")
        if not isinstance(rule.get("location"), str) or not rule["location"].strip():
            raise DatasetInputError(path, "is missing or not a string", field=f"[{i}].location")


class DatasetRegistry:
    def __init__(self, home: Home) -> None:
        self.home = home

    # -- lookups ----------------------------------------------------------------------------
    def find(self, ref: DatasetRef | str) -> RegisteredDataset | None:
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        row = query.first(self.home.storage, REGISTERED, ref.subject)
        return self._load(row) if row else None

    def get(self, ref: DatasetRef | str) -> RegisteredDataset:
        found = self.find(ref)
        if found is None:
            raise DatasetNotFound(f"dataset {ref} is not registered (see `custody dataset list`)")
        return found

    def all(self) -> list[RegisteredDataset]:
        return [self._load(row) for row in query.entries(self.home.storage, REGISTERED)]

    def versions(self, name: str) -> list[str]:
        """Every registered version of `name` (read from the ledger's subjects; no manifests loaded)."""
        prefix = f"dataset:{name}@"
        rows = query.entries(self.home.storage, REGISTERED)
        return [row.subject.removeprefix(prefix) for row in rows if row.subject.startswith(prefix)]

    def by_digest(self, digest: str) -> list[RegisteredDataset]:
        return [d for d in self.all() if d.digest == digest]

    def _load(self, row) -> RegisteredDataset:
        body = query.body(row)
        manifest = Manifest.from_json(json.loads(self.home.store.read_bytes(body["manifest_digest"])))
        card = DatasetCard.model_validate(json.loads(self.home.store.read_bytes(body["card_digest"])))
        return RegisteredDataset(
            self.home, DatasetRef(body["name"], body["version"]), row.idx, row.actor, row.ts, body, manifest, card
        )

    def lineage(
        self, ref: DatasetRef | str
    ) -> tuple[list[tuple[int, RegisteredDataset | dict]], list[tuple[int, RegisteredDataset]]]:
        """Ancestors and descendants as (depth, dataset); a missing ancestor appears as its parent record."""
        root = self.get(ref)
        everything = self.all()
        ancestors: list[tuple[int, RegisteredDataset | dict]] = []

        def up(node: RegisteredDataset, depth: int) -> None:
            for parent in node.parents:
                match = next((d for d in everything if str(d.ref) == parent["dataset"]), None)
                if match is None or match.digest != parent["digest"]:
                    ancestors.append((depth, parent))
                else:
                    ancestors.append((depth, match))
                    up(match, depth + 1)

        def down(node: RegisteredDataset, depth: int, out: list) -> None:
            for child in everything:
                if any(p["digest"] == node.digest and p["dataset"] == str(node.ref) for p in child.parents):
                    out.append((depth, child))
                    down(child, depth + 1, out)

        descendants: list[tuple[int, RegisteredDataset]] = []
        up(root, 1)
        down(root, 1, descendants)
        return ancestors, descendants

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        paths: Iterable[Path],
        ref: DatasetRef,
        card: DatasetCard | Path,
        fields: Fields | None = None,
        in_place: bool = False,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        actor: str | None = None,
        parents: list[RegisteredDataset] | None = None,
        stage: dict | None = None,
        progress: Progress | None = None,
        workers: int | None = None,
    ) -> tuple[RegisteredDataset, bool]:
        """Register; returns (dataset, created). Identical content again is a no-op (created False).
        Shards are read once each, `workers` at a time (default: one per usable core; see
        custody.datasets.shard_scan), with the same manifest whatever the number."""
        fields = fields or Fields()
        card = card if isinstance(card, DatasetCard) else load_card(Path(card))
        shards, docs = _collect_inputs(paths)
        staged: list[Staged] = []
        copies: list[Path] = []
        try:
            tasks = []
            for name, path, fmt in shards:
                copy_to = None if in_place else self.home.store.staging_path()
                copies += [copy_to] if copy_to else []
                tasks.append(ShardTask(name, str(path), fmt, fields, max_record_bytes, copy_to and str(copy_to)))
            shard_infos, locations = [], {}
            # closing: on an error, the workers still reading stop before their copies are removed
            with closing(scan_shards(tasks, workers, lambda _, scan: progress and progress(scan.size))) as scans:
                for (name, path, fmt), task, scan in zip(shards, tasks, scans, strict=False):
                    if scan.error is not None:
                        raise DatasetInputError(path, *scan.error)
                    if scan.records == 0:
                        raise DatasetInputError(path, "no records")
                    if task.copy_to is not None:
                        staged.append(Staged(self.home.store, Path(task.copy_to), scan.digest, scan.size))
                    else:
                        locations[name] = str(path.resolve())
                    shard_infos.append(ShardInfo(name, fmt, scan.digest, scan.size, scan.records))
            doc_infos = []
            for name, path in docs:
                item = self.home.store.stage_file(path)
                staged.append(item)
                doc_infos.append(DocumentInfo(name, item.digest, item.size))
            manifest = Manifest(
                ref.name,
                ref.version,
                {"text": fields.text, "id": fields.id, "license": fields.license, "source_url": fields.source_url},
                tuple(shard_infos),
                tuple(doc_infos),
            )
            card_bytes = canonical_json(card.as_json())
            card_digest = hashlib.sha256(card_bytes).hexdigest()
            existing = self.find(ref)
            if existing is not None:
                if existing.digest == manifest.digest and existing.body["card_digest"] == card_digest:
                    for item in staged:
                        item.discard()
                    for copy in copies:
                        copy.unlink(missing_ok=True)
                    return existing, False
                raise RegistrationConflict(
                    f"{ref} is already registered (ledger index {existing.index}) with different "
                    f"{'content' if existing.digest != manifest.digest else 'card'}; register a new version"
                )
            for item in staged:
                item.commit()
            self.home.store.put_bytes(manifest.canonical())
            self.home.store.put_bytes(card_bytes)
        except BaseException:
            for item in staged:
                item.discard()
            for copy in copies:
                copy.unlink(missing_ok=True)
            raise
        body = {
            "name": ref.name,
            "version": ref.version,
            "manifest_digest": manifest.digest,
            "card_digest": card_digest,
            "records": manifest.records,
            "bytes": manifest.bytes,
            "shards": len(shard_infos),
            "in_place": in_place,
            "locations": locations,
            "parents": [{"dataset": str(p.ref), "digest": p.digest} for p in parents or []],
        }
        refs = [f"sha256:{manifest.digest}", f"sha256:{card_digest}"]
        # The reservation snapshots a crawl kept (robots.txt, tdmrep.json), named by digest in the
        # entry itself: evidence of what the sites said when the data was registered.
        refs += list(dict.fromkeys(f"sha256:{d.digest}" for d in doc_infos if reservation_host(d.name)))
        if stage is not None:
            config_digest = self.home.store.put_bytes(canonical_json(stage["config"]))
            body["stage"] = {"name": stage["name"], "config_digest": config_digest}
            if stage.get("decisions_digest"):
                body["stage"]["decisions_digest"] = stage["decisions_digest"]
            refs.append(f"sha256:{config_digest}")
            if stage.get("options") is not None:
                options_digest = self.home.store.put_bytes(canonical_json(stage["options"]))
                body["stage"]["options_digest"] = options_digest
                refs.append(f"sha256:{options_digest}")
        self.home.record("dataset.registered/v1", ref.subject, body, refs=refs, actor=actor)
        self.home.checkpoint()
        return self.get(ref), True

    def register_derived(
        self,
        ref: DatasetRef,
        parents: list[RegisteredDataset],
        stage_name: str,
        stage_config: dict,
        records: Iterable[dict] | Path,
        card: DatasetCard | None = None,
        decisions_digest: str | None = None,
        actor: str | None = None,
        stage_options: dict | None = None,
    ) -> tuple[RegisteredDataset, bool]:
        """Register a stage's output (records, or a shard already written) with parents, stage config
        and the options the stage was built with (None: not known)."""
        if card is None:
            base = parents[0].card
            title = f"{base.dataset.title} ({stage_name})"
            card = base.model_copy(update={"dataset": base.dataset.model_copy(update={"title": title})})
        stage = {
            "name": stage_name,
            "config": stage_config,
            "decisions_digest": decisions_digest,
            "options": stage_options,
        }
        if isinstance(records, Path):
            return self.register([records], ref, card, Fields(id="id"), parents=parents, actor=actor, stage=stage)
        with tempfile.TemporaryDirectory(prefix="custody-derive-") as workdir:
            shard = write_records_shard(records, Path(workdir) / "part-00000.jsonl.zst")
            return self.register([shard], ref, card, Fields(id="id"), parents=parents, actor=actor, stage=stage)


def write_records_shard(records: Iterable[dict], path: Path) -> Path:
    """Write records as a zstd-compressed JSONL shard, streaming."""
    import zstandard

    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
    return path
