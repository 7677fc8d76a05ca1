"""Provenance check: where did this come from, and is it still what was registered?

Dataset-level findings: required card fields missing, shards whose bytes changed, sources on
the deny list (or off a configured allow list), lineage with a missing or changed parent.
Per record: its `source_url` against the same lists; whether its site reserved it from AI
training (robots.txt, Content-Usage, TDMRep, Content-Signal: custody.optout.signals, from the
dataset's `reservations/HOST/` snapshots and the record's own `headers` and `html_meta`); and
whether an imported opt-out registry lists it (by domain, URL prefix, author or text hash).
Findings count records, never repeat their text (docs/optout.md).
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody.checks.base import Check, CheckReport, Emit, Finding, RecordRow, Tally
from custody.datasets.manifest import ShardInfo
from custody.datasets.readers import reservation_host
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.optout import registry as optout_registry
from custody.optout.lists import Matcher, authors_of
from custody.optout.signals import DEFAULT_AGENTS, SIGNAL_NAMES, Evaluator, Snapshot, field_values
from custody.paths import policies_dir
from custody.store import ArtifactError, sha256_file
from custody.wording import plural

DEFAULT_REQUIRED_FIELDS = (
    "dataset.title",
    "sources",
    "collection.process",
    "collection.time_frame",
    "license.declared",
    "personal_data.present",
    "use.intended",
    "use.out_of_scope",
    "governance.owner",
    "governance.steward",
)


class SourceListError(ValueError):
    """A deny or allow list file is malformed."""


@dataclass(frozen=True)
class SourceRule:
    id: str
    names: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    reason: str = ""

    def matches_name(self, name: str) -> bool:
        lowered = name.lower()
        return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.names)

    def matches_url(self, url: str) -> bool:
        lowered = url.lower()
        return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.urls)


def load_source_rules(path: Path, table: str = "deny") -> tuple[SourceRule, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceListError(f"{path}: source list not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceListError(f"{path}: not valid TOML ({exc})") from exc
    unknown = set(data) - {"version", "deny", "allow"}
    if unknown:
        raise SourceListError(f"{path}: unknown key '{sorted(unknown)[0]}'")
    rules = []
    entries = data.get(table, [])
    if not isinstance(entries, list):
        raise SourceListError(f"{path}: '{table}' must be an array of tables ([[{table}]])")
    for i, item in enumerate(entries):
        if not isinstance(item, dict):
            raise SourceListError(f"{path}: {table}[{i}] must be a table")
        extra = set(item) - {"id", "names", "urls", "reason"}
        if extra or not isinstance(item.get("id"), str):
            raise SourceListError(f"{path}: {table}[{i}]: needs an 'id'; unknown keys {sorted(extra)}")
        for key in ("names", "urls"):
            values = item.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise SourceListError(f"{path}: {table}[{i}].{key} must be a list of strings")
        rules.append(
            SourceRule(item["id"], tuple(item.get("names", [])), tuple(item.get("urls", [])), item.get("reason", ""))
        )
    return tuple(rules)


def default_deny_rules() -> tuple[SourceRule, ...]:
    return load_source_rules(policies_dir() / "sources-deny.toml")


def reservation_snapshots(dataset: RegisteredDataset) -> tuple[list[Snapshot], list[tuple[str, str]]]:
    """(snapshots, problems): the `reservations/HOST/` documents of a dataset, then of its
    ancestors (a derived dataset's records came from the same sites), nearest first."""
    found: list[Snapshot] = []
    problems: list[tuple[str, str]] = []
    registry = DatasetRegistry(dataset.home)
    seen: set[str] = set()
    todo = [dataset]
    while todo:
        current = todo.pop(0)
        if current.digest in seen:
            continue
        seen.add(current.digest)
        for doc in current.manifest.documents:
            if reservation_host(doc.name) is None:
                continue
            try:
                data = dataset.home.store.read_bytes(doc.digest)
            except ArtifactError as exc:
                if current is not dataset:  # the dataset's own documents are checked as shard.integrity
                    problems.append((f"{current.ref}:{doc.name}", str(exc)))
                continue
            found.append(Snapshot(doc.name, doc.digest, data, str(current.ref)))
        for parent in current.parents:
            match = registry.find(parent["dataset"])
            if match is not None and match.digest == parent["digest"]:
                todo.append(match)
    return found, problems


@dataclass(kw_only=True)
class ProvenanceCheck(Check):
    name = "provenance"
    version = "1.1.0"
    required_fields: tuple[str, ...] = DEFAULT_REQUIRED_FIELDS
    deny: tuple[SourceRule, ...] = field(default_factory=default_deny_rules)
    allow: tuple[SourceRule, ...] = ()  # empty: every source not denied is allowed
    agents: tuple[str, ...] = DEFAULT_AGENTS  # AI crawlers whose robots.txt rules reserve a record
    headers_field: str = "headers"  # a record's response headers, as fetched
    meta_field: str = "html_meta"  # a record's HTML <meta> names and contents
    author_field: str = optout_registry.AUTHOR_FIELD  # compared with a registry's `author` entries
    # What `open` reads from the dataset's home: site snapshots and the opt-out registries in force.
    _snapshots: list[Snapshot] = field(default_factory=list, init=False, repr=False, compare=False)
    _snapshot_problems: list[tuple[str, str]] = field(default_factory=list, init=False, repr=False, compare=False)
    _registries: optout_registry.RegistryState = field(
        default_factory=optout_registry.RegistryState, init=False, repr=False, compare=False
    )
    _evaluator: Evaluator | None = field(default=None, init=False, repr=False, compare=False)
    _matcher: Matcher | None = field(default=None, init=False, repr=False, compare=False)

    def open(self, dataset: RegisteredDataset) -> None:
        self._snapshots, self._snapshot_problems = reservation_snapshots(dataset)
        self._registries = optout_registry.current(dataset.home)
        self._evaluator = Evaluator(self._snapshots, tuple(self.agents))
        self._matcher = self._registries.matcher(dataset.home) if self._registries.imports else None

    def close(self) -> None:
        self._evaluator = self._matcher = None

    def config(self) -> dict[str, Any]:
        rule = lambda r: {"id": r.id, "names": list(r.names), "urls": list(r.urls)}  # noqa: E731
        return {
            "required_fields": list(self.required_fields),
            "deny": [rule(r) for r in self.deny],
            "allow": [rule(r) for r in self.allow],
            "reservations": {
                "agents": list(self.agents),
                "fields": {"headers": self.headers_field, "meta": self.meta_field, "author": self.author_field},
                "snapshots": [s.describe() for s in self._snapshots],
            },
            "opt_out": self._registries.describe(),
        }

    def _denied(self, name: str | None, url: str | None) -> SourceRule | None:
        for candidate in self.deny:
            if (name and candidate.matches_name(name)) or (url and candidate.matches_url(url)):
                return candidate
        return None

    def _allowed(self, name: str | None, url: str | None) -> bool:
        return not self.allow or any(
            (name and r.matches_name(name)) or (url and r.matches_url(url)) for r in self.allow
        )

    def scan_shard(self, dataset: RegisteredDataset, shard: ShardInfo, emit: Emit) -> Tally:
        path = dataset.shard_path(shard)
        if not path.exists():
            return {"broken": f"missing ({path if dataset.body.get('in_place') else 'not in store'})"}
        if sha256_file(path) != shard.digest:
            # Its bytes are not the registered ones: rows would describe other data.
            return {"broken": "bytes do not match the manifest digest"}
        from custody.datasets.readers import Fields, read_records

        fields = dataset.manifest.fields
        reader_fields = Fields(
            text=fields["text"],
            id=fields.get("id"),
            license=fields.get("license") or "license",
            source_url=fields.get("source_url") or "source_url",
            extra=(self.headers_field, self.meta_field, self.author_field),
        )
        evaluator = self._evaluator or Evaluator((), tuple(self.agents))
        denied: Counter[str] = Counter()
        reserved: Counter[str] = Counter()  # "signal|source": records
        signals: Counter[str] = Counter()  # signal: records
        registries: Counter[str] = Counter()  # registry: records
        kinds: Counter[str] = Counter()  # kind of entry: records
        reserved_records = opted_out_records = unreadable = 0
        for record in read_records(path, shard.format, reader_fields, 1 << 62, shard.name):
            extra = record.extra or {}
            headers = field_values(extra.get(self.headers_field))
            meta = field_values(extra.get(self.meta_field))
            if headers is None or meta is None:
                unreadable += 1
            reservations = evaluator.evaluate(record.source_url, headers, meta, (shard.name, shard.digest))
            listed = (
                self._matcher.match(record.source_url, authors_of(extra.get(self.author_field)), record.content_hash)
                if self._matcher is not None
                else []
            )
            verdict, reason, details = "pass", "", None
            if reservations or listed:
                details = json.dumps(
                    {"reserved": [r.as_json() for r in reservations], "opted_out": [x.as_json() for x in listed]},
                    sort_keys=True,
                )
            if reservations:
                reserved_records += 1
                reserved.update({f"{r.signal}|{_source(r)}" for r in reservations})
                signals.update({r.signal for r in reservations})
            if listed:
                opted_out_records += 1
                registries.update({x.registry for x in listed})
                kinds.update({x.kind for x in listed})
            if record.source_url:
                rule = self._denied(None, record.source_url)
                if rule:
                    verdict, reason = "fail", f"source.denied:{rule.id}"
                    denied[rule.id] += 1
            if verdict == "pass" and listed:
                verdict, reason = "fail", f"opted_out:{listed[0].kind}"
            elif verdict == "pass" and reservations:
                verdict, reason = "fail", f"reserved:{reservations[0].signal}"
            elif verdict == "pass" and record.source_url and not self._allowed(None, record.source_url):
                verdict, reason = "flag", "source.not_allowed"
            emit(RecordRow.of(shard.name, record, verdict, reason, details=details))
        return {
            "denied": dict(denied),
            "reserved": dict(sorted(reserved.items())),
            "reserved_signals": dict(sorted(signals.items())),
            "reserved_records": reserved_records,
            "opted_out_registries": dict(sorted(registries.items())),
            "opted_out_kinds": dict(sorted(kinds.items())),
            "opted_out_records": opted_out_records,
            "unreadable_fields": unreadable,
        }

    def finish(self, dataset: RegisteredDataset, tallies: list[Tally]) -> CheckReport:
        findings: list[Finding] = []
        missing = [f for f in self.required_fields if dataset.card.value(f) is None]
        findings += [Finding(f"card.missing:{f}", "fail", f"card field '{f}' is required but missing") for f in missing]
        for source in dataset.card.sources:
            if not source.retrieved_at:
                findings.append(
                    Finding(
                        f"card.source_undated:{source.name}", "flag", f"source '{source.name}' has no retrieval time"
                    )
                )
            rule = self._denied(source.name, source.uri)
            if rule:
                findings.append(
                    Finding(
                        f"source.denied:{rule.id}", "fail", f"source '{source.name}' is on the deny list: {rule.reason}"
                    )
                )
            elif not self._allowed(source.name, source.uri):
                findings.append(
                    Finding(
                        f"source.not_allowed:{source.name}", "flag", f"source '{source.name}' is not on the allow list"
                    )
                )
        broken = [
            (shard.name, tally["broken"])
            for shard, tally in zip(dataset.manifest.shards, tallies, strict=True)
            if "broken" in tally
        ]
        for doc in dataset.manifest.documents:  # LICENSE/README texts are evidence too
            if not dataset.home.store.verify(doc.digest):
                broken.append((doc.name, "document is missing from the store or changed"))
        findings += [Finding(f"shard.integrity:{name}", "fail", f"shard {name}: {problem}") for name, problem in broken]
        findings += self._lineage_findings(dataset)

        denied_records: Counter[str] = Counter()
        for tally in tallies:
            denied_records.update(tally.get("denied", {}))
        for rule_id, count in sorted(denied_records.items()):
            findings.append(
                Finding(
                    f"records.denied_source:{rule_id}", "fail", f"{count} records come from a denied source ({rule_id})"
                )
            )
        reservations, opt_out, more = self._reservation_summary(tallies)
        findings += more
        summary = {
            "missing_card_fields": missing,
            "broken_shards": sorted(name for name, _ in broken),
            "denied_records": dict(sorted(denied_records.items())),
            "sources": [json.loads(s.model_dump_json()) for s in dataset.card.sources],
            "reservations": reservations,
            "opt_out": opt_out,
        }
        return CheckReport(summary, findings)

    def _reservation_summary(self, tallies: list[Tally]) -> tuple[dict, dict, list[Finding]]:
        """Counts of reserved and opted-out records (by signal and source, by registry and kind),
        and their findings; a record is counted once under each signal or registry that names it."""
        reserved: Counter[str] = Counter()
        by_signal: Counter[str] = Counter()
        by_registry: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        reserved_records = opted_records = unreadable = 0
        for tally in tallies:
            reserved.update(tally.get("reserved", {}))
            by_signal.update(tally.get("reserved_signals", {}))
            by_registry.update(tally.get("opted_out_registries", {}))
            by_kind.update(tally.get("opted_out_kinds", {}))
            reserved_records += tally.get("reserved_records", 0)
            opted_records += tally.get("opted_out_records", 0)
            unreadable += tally.get("unreadable_fields", 0)
        by_source: Counter[str] = Counter()
        sources_of: dict[str, list[str]] = {}
        for key, count in sorted(reserved.items()):
            signal, source = key.split("|", 1)
            by_source[source] += count
            sources_of.setdefault(signal, []).append(source)

        findings: list[Finding] = []
        digests = {s.name: s.digest for s in self._snapshots}
        for signal, count in sorted(by_signal.items()):
            where = ", ".join(
                f"{source} (sha256 {digests[source][:12]})" if source in digests else source
                for source in sources_of[signal]
            )
            findings.append(
                Finding(
                    f"records.reserved:{signal}",
                    "fail",
                    f"{_records(count)} reserved from AI training by {SIGNAL_NAMES[signal]}, read from {where}",
                )
            )
        imports = {i.registry: i for i in self._registries.imports}
        for registry, count in sorted(by_registry.items()):
            index = imports[registry].ledger_index if registry in imports else "?"
            findings.append(
                Finding(
                    f"records.opted_out:{registry}",
                    "fail",
                    f"{_records(count)} on the opt-out registry '{registry}' (imported at ledger index {index})",
                )
            )
        problems = self._snapshot_problems + (self._evaluator.problems if self._evaluator else [])
        for name, problem in problems:
            findings.append(Finding(f"reservations.snapshot:{name}", "fail", f"reservation snapshot {name}: {problem}"))
        if unreadable:
            findings.append(
                Finding(
                    "records.reservation_fields_unreadable",
                    "flag",
                    f"{plural(unreadable, 'record')} with a '{self.headers_field}' or '{self.meta_field}' field in a "
                    "form custody cannot read (docs/optout.md): their own reservations were not read",
                )
            )
        reservations = {
            "agents": list(self.agents),
            "snapshots": [s.describe() for s in self._snapshots],
            "records": reserved_records,
            "by_signal": dict(sorted(by_signal.items())),
            "by_source": dict(sorted(by_source.items())),
            "unreadable_fields": unreadable,
        }
        opt_out = {
            **self._registries.describe(),
            "records": opted_records,
            "by_registry": dict(sorted(by_registry.items())),
            "by_kind": dict(sorted(by_kind.items())),
        }
        return reservations, opt_out, findings

    def _lineage_findings(self, dataset: RegisteredDataset) -> list[Finding]:
        findings = []
        registry = DatasetRegistry(dataset.home)
        for parent in dataset.parents:
            found = registry.find(parent["dataset"])
            if found is None:
                findings.append(
                    Finding(
                        f"lineage.parent_missing:{parent['dataset']}",
                        "fail",
                        f"parent {parent['dataset']} is not registered",
                    )
                )
            elif found.digest != parent["digest"]:
                findings.append(
                    Finding(
                        f"lineage.parent_changed:{parent['dataset']}",
                        "fail",
                        f"parent {parent['dataset']} has digest {found.digest[:12]}, "
                        f"lineage recorded {parent['digest'][:12]}",
                    )
                )
            elif found.verify_shards():
                findings.append(
                    Finding(
                        f"lineage.parent_corrupt:{parent['dataset']}",
                        "fail",
                        f"parent {parent['dataset']} no longer matches its manifest",
                    )
                )
        return findings


def _source(reservation) -> str:
    """Where a reservation was read: a site snapshot by name, or the records' own fields."""
    if reservation.via in ("robots.txt", "tdmrep.json"):
        return reservation.snapshot
    return "records' own headers" if reservation.via == "header" else "records' own HTML meta"


def _records(count: int) -> str:
    return f"{plural(count, 'record')} {'is' if count == 1 else 'are'}"
