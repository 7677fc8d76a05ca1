"""License check: may we train on this? Declared, per-record and shipped-text licenses.

- The card's declared SPDX expression is parsed and normalized; one that does not parse is a
  finding, not a crash. Card sources' licenses likewise.
- Per-record `license` fields are aggregated; records without one inherit the declared license.
- Every license category is resolved into the most restrictive one for the dataset (as the
  Data Provenance Initiative does).
- LICENSE / COPYING / README texts shipped with the data are matched against reference texts;
  a detected license the declaration does not name is a mismatch finding.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from custody.checks.base import Check, CheckReport, Emit, Finding, RecordRow, Tally
from custody.datasets.manifest import ShardInfo
from custody.datasets.registry import RegisteredDataset
from custody.licenses.categories import category_of_expression, most_restrictive
from custody.licenses.detect import DEFAULT_MIN_SCORE, LicenseDetector
from custody.licenses.spdx import ParsedExpression, parse_expression


@lru_cache(maxsize=4096)
def _parse(expression: str) -> ParsedExpression:
    return parse_expression(expression)


@lru_cache(maxsize=1)
def _detector() -> LicenseDetector:
    return LicenseDetector.default()


@dataclass(kw_only=True)
class LicenseCheck(Check):
    name = "license"
    version = "1.0.0"
    min_detection_score: float = DEFAULT_MIN_SCORE
    # A collaborator, not a setting: positional, so the registry does not list it as an option.
    detector: LicenseDetector = field(default_factory=_detector, repr=False, kw_only=False)

    def config(self) -> dict[str, Any]:
        from importlib.resources import files

        categories = files("custody.licenses").joinpath("data/categories.toml").read_bytes()
        return {
            "min_detection_score": self.min_detection_score,
            "categories_digest": hashlib.sha256(categories).hexdigest(),
        }

    def model_digest(self) -> str | None:
        """The reference texts are this check's 'model'."""
        return self.detector.digest()

    def _declared(self, dataset: RegisteredDataset) -> tuple[ParsedExpression | None, str]:
        """The card's parsed declaration and its category ("unknown" when absent or invalid)."""
        text = dataset.card.license.declared
        declared = _parse(text) if text else None
        return declared, category_of_expression(declared) if declared is not None and declared.ok else "unknown"

    def scan_shard(self, dataset: RegisteredDataset, shard: ShardInfo, emit: Emit) -> Tally:
        declared, declared_category = self._declared(dataset)
        record_licenses: Counter[str] = Counter()
        record_categories: Counter[str] = Counter()
        unparseable: Counter[str] = Counter()
        inherited = 0
        for record in dataset.shard_records(shard):
            if record.license is None:
                inherited += 1
                verdict = "pass" if declared is not None and declared.ok else "flag"
                reason = "inherits declared license" if verdict == "pass" else "no license on record or card"
                details = json.dumps({"category": declared_category})
                emit(RecordRow.of(shard.name, record, verdict, reason, details=details))
                continue
            parsed = _parse(record.license)
            if not parsed.ok:
                unparseable[record.license[:200]] += 1
                details = json.dumps({"category": "unknown"})
                emit(RecordRow.of(shard.name, record, "flag", "license.unparseable", details=details))
                record_categories["unknown"] += 1
                continue
            category = category_of_expression(parsed)
            record_licenses[parsed.normalized] += 1
            record_categories[category] += 1
            verdict = "flag" if category == "unknown" else "pass"
            reason = "" if verdict == "pass" else "license.unknown_category"
            details = json.dumps({"license": parsed.normalized, "category": category})
            emit(RecordRow.of(shard.name, record, verdict, reason, details=details))
        return {
            "inherited": inherited,
            "record_licenses": dict(record_licenses),
            "record_categories": dict(record_categories),
            "unparseable": dict(unparseable),
        }

    def finish(self, dataset: RegisteredDataset, tallies: list[Tally]) -> CheckReport:
        findings: list[Finding] = []
        declared_text = dataset.card.license.declared
        declared, declared_category = self._declared(dataset)
        if declared is None:
            findings.append(Finding("license.undeclared", "flag", "the card declares no license"))
        elif not declared.ok:
            findings.append(
                Finding(
                    "license.unparseable",
                    "fail",
                    f"declared license {declared_text!r} is not a valid SPDX expression: {declared.error}",
                )
            )
        categories = [declared_category]

        sources = []
        for source in dataset.card.sources:
            if not source.license:
                sources.append({"source": source.name, "license": None, "category": "unknown"})
                continue
            parsed = _parse(source.license)
            category = category_of_expression(parsed) if parsed.ok else "unknown"
            if not parsed.ok:
                findings.append(
                    Finding(
                        f"license.source_unparseable:{source.name}",
                        "flag",
                        f"source '{source.name}' license {source.license!r}: {parsed.error}",
                    )
                )
            categories.append(category)
            sources.append(
                {"source": source.name, "license": parsed.normalized or source.license, "category": category}
            )

        record_licenses: Counter[str] = Counter()
        record_categories: Counter[str] = Counter()
        unparseable: Counter[str] = Counter()
        for tally in tallies:
            record_licenses.update(tally["record_licenses"])
            record_categories.update(tally["record_categories"])
            unparseable.update(tally["unparseable"])
        if unparseable:
            findings.append(
                Finding(
                    "license.records_unparseable",
                    "flag",
                    f"{sum(unparseable.values())} records carry a license that is not valid SPDX",
                )
            )
        categories.extend(record_categories)

        detected = self._detect_documents(dataset, declared, findings)
        category = most_restrictive(categories)
        summary = {
            "declared": {
                "expression": declared_text,
                "normalized": declared.normalized if declared else None,
                "error": declared.error if declared else None,
                "category": declared_category,
            },
            "sources": sources,
            "record_licenses": dict(sorted(record_licenses.items(), key=lambda kv: (-kv[1], kv[0]))),
            "record_categories": dict(sorted(record_categories.items())),
            "records_inheriting_declared": sum(t["inherited"] for t in tallies),
            "unparseable_record_licenses": dict(sorted(unparseable.items(), key=lambda kv: (-kv[1], kv[0]))[:20]),
            "detected": detected,
            "category": category,
        }
        return CheckReport(summary, findings)

    def _detect_documents(
        self, dataset: RegisteredDataset, declared: ParsedExpression | None, findings: list[Finding]
    ) -> list[dict]:
        detected = []
        declared_ids = set(declared.license_ids) if declared is not None and declared.ok else set()
        for doc in dataset.manifest.documents:
            text = dataset.home.store.read_bytes(doc.digest).decode("utf-8", errors="replace")
            match = self.detector.best(text, min_score=self.min_detection_score)
            if match is None:
                detected.append({"document": doc.name, "license": None, "score": None})
                continue
            equivalent = set(self.detector.equivalents(match.license_id))
            detected.append(
                {
                    "document": doc.name,
                    "license": match.license_id,
                    "score": round(match.score, 4),
                    "equivalents": sorted(equivalent),
                }
            )
            if declared_ids and not (equivalent & declared_ids):
                findings.append(
                    Finding(
                        f"license.mismatch:{doc.name}",
                        "flag",
                        f"{doc.name} reads as {match.license_id} (score {match.score:.2f}) but the "
                        f"card declares {declared.normalized}",
                    )
                )
        return detected
