"""Provenance check: where did this come from, and is it still what was registered?

Dataset-level findings: required card fields missing, shards whose bytes changed, sources on
the deny list (or off a configured allow list), lineage with a missing or changed parent.
Per record: its `source_url` against the same lists.
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
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.paths import policies_dir
from custody.store import sha256_file

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


@dataclass(kw_only=True)
class ProvenanceCheck(Check):
    name = "provenance"
    version = "1.0.0"
    required_fields: tuple[str, ...] = DEFAULT_REQUIRED_FIELDS
    deny: tuple[SourceRule, ...] = field(default_factory=default_deny_rules)
    allow: tuple[SourceRule, ...] = ()  # empty: every source not denied is allowed

    def config(self) -> dict[str, Any]:
        rule = lambda r: {"id": r.id, "names": list(r.names), "urls": list(r.urls)}  # noqa: E731
        return {
            "required_fields": list(self.required_fields),
            "deny": [rule(r) for r in self.deny],
            "allow": [rule(r) for r in self.allow],
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
        )
        denied: Counter[str] = Counter()
        for record in read_records(path, shard.format, reader_fields, 1 << 62, shard.name):
            verdict, reason = "pass", ""
            if record.source_url:
                rule = self._denied(None, record.source_url)
                if rule:
                    verdict, reason = "fail", f"source.denied:{rule.id}"
                    denied[rule.id] += 1
                elif not self._allowed(None, record.source_url):
                    verdict, reason = "flag", "source.not_allowed"
            emit(RecordRow.of(shard.name, record, verdict, reason))
        return {"denied": dict(denied)}

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
        summary = {
            "missing_card_fields": missing,
            "broken_shards": sorted(name for name, _ in broken),
            "denied_records": dict(sorted(denied_records.items())),
            "sources": [json.loads(s.model_dump_json()) for s in dataset.card.sources],
        }
        return CheckReport(summary, findings)

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
