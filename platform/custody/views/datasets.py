"""Datasets: the list with its filters, and one dataset's provenance for its page.

A version a takedown replaced (`dataset.removed/v1`) stays listed, marked with the takedown and
the version that replaced it: the gate denies it (rule takedown.applied), and its page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from custody.checks.catalog import CHECKS
from custody.checks.results import CheckResult, latest_results
from custody.datasets.names import is_intermediate
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.takedown.find import erased, removed_versions
from custody.views.common import without_empty
from custody.views.decisions import DecisionInfo, all_decisions, latest_by_subject, reviews_of
from custody.views.license_mix import license_categories, license_mix

NO_DECISION = "not gated"  # no gate decision has named the dataset yet
DECISION_ORDER = ("allow", "needs-review", "deny", NO_DECISION)


@dataclass(frozen=True)
class DatasetRow:
    ref: str
    name: str
    version: str
    title: str
    records: int
    bytes: int
    registered_by: str
    registered_at: str
    index: int
    digest: str
    declared_license: str
    license_category: str
    checks: str  # "license:pass, pii:flag, ..."
    decision: str  # the latest gate decision as it concerns this dataset, or NO_DECISION
    decision_index: int | None
    derived_from: str
    intermediate: bool  # an output a stage chain passed on to its next stage: hidden unless asked for
    taken_down: TakenDown | None = None  # a takedown replaced it

    def as_row(self) -> dict[str, Any]:
        return {
            "dataset": self.ref,
            "title": self.title,
            "taken down": self.taken_down.short() if self.taken_down else "",
            "decision": self.decision,
            "records": self.records,
            "license": self.declared_license,
            "category": self.license_category,
            "checks": self.checks,
            "registered by": self.registered_by,
            "derived from": self.derived_from,
        }


@dataclass(frozen=True)
class TakenDown:
    """A takedown replaced this version (its `dataset.removed` entry)."""

    takedown: str
    replaced_by: str | None  # None: nothing was left, no version replaces it
    index: int  # of the dataset.removed entry

    def short(self) -> str:
        return f"{self.takedown} → {self.replaced_by or 'nothing left'}"

    def sentence(self) -> str:
        instead = f"replaced by {self.replaced_by}" if self.replaced_by else "no version replaces it (nothing was left)"
        return (
            f"Taken down by {self.takedown} (ledger index {self.index:,}): {instead}. The gate denies this "
            "version (rule takedown.applied) unless a waiver lifts it."
        )


def taken_down(home: Home) -> dict[str, TakenDown]:
    """Every version a takedown replaced, NAME@VERSION -> what replaced it."""
    return {
        ref: TakenDown(found["takedown"], found["replaced_by"], found["ledger_index"])
        for ref, found in removed_versions(home).items()
    }


def table_rows(rows: list[DatasetRow]) -> list[dict[str, Any]]:
    """The list's rows; the "taken down" column only where a version in it was taken down."""
    return without_empty([row.as_row() for row in rows], "taken down")


def _declared(dataset: RegisteredDataset) -> str:
    card = dataset.card.as_json()
    declared = (card.get("license") or {}).get("declared")
    return declared if isinstance(declared, str) else ""


def list_datasets(home: Home, decisions: list[DecisionInfo] | None = None) -> list[DatasetRow]:
    latest = latest_by_subject(all_decisions(home) if decisions is None else decisions)
    gone = taken_down(home)
    names = CHECKS.names()  # once: each call reads the installed packages' entry points again
    rows = []
    for dataset in DatasetRegistry(home).all():
        ref = str(dataset.ref)
        checks = latest_results(home, dataset, names)
        category = ""
        if "license" in checks:
            category = checks["license"].summary(home).get("category") or ""
        decision = latest.get(ref)
        rows.append(
            DatasetRow(
                ref,
                dataset.ref.name,
                dataset.ref.version,
                dataset.card.dataset.title,
                dataset.manifest.records,
                dataset.manifest.bytes,
                dataset.actor,
                dataset.ts,
                dataset.index,
                dataset.digest,
                _declared(dataset),
                category,
                ", ".join(f"{c.check}:{c.status}" for c in checks.values()),
                decision.for_subject(ref) if decision else NO_DECISION,
                decision.index if decision else None,
                ", ".join(p["dataset"] for p in dataset.parents),
                is_intermediate(dataset.ref),
                gone.get(ref),
            )
        )
    return rows


def visible(rows: list[DatasetRow], include_intermediate: bool = False) -> list[DatasetRow]:
    """The rows lists, charts and counts show: intermediate stage outputs only when asked for
    (lineage needs them recorded; a person looking for data does not want them in the way)."""
    return rows if include_intermediate else [row for row in rows if not row.intermediate]


def filter_datasets(
    rows: list[DatasetRow],
    text: str = "",
    decisions: list[str] | None = None,
    categories: list[str] | None = None,
    registrants: list[str] | None = None,
) -> list[DatasetRow]:
    """Rows matching every filter given (an empty filter matches everything)."""
    needle = text.strip().lower()
    return [
        row
        for row in rows
        if (not needle or needle in row.ref.lower() or needle in row.title.lower())
        and (not decisions or row.decision in decisions)
        and (not categories or row.license_category in categories)
        and (not registrants or row.registered_by in registrants)
    ]


def by_decision(rows: list[DatasetRow]) -> dict[str, int]:
    """Datasets per latest decision, in a fixed order (allow, needs-review, deny, not gated)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.decision] = counts.get(row.decision, 0) + 1
    rank = {name: i for i, name in enumerate(DECISION_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


# -- one dataset ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetDetail:
    dataset: RegisteredDataset
    checks: dict[str, CheckResult]
    summaries: dict[str, dict[str, Any]]
    decisions: list[dict[str, Any]]  # every decision that mentions it, oldest first
    reviews: list[dict[str, Any]]  # oldest first, each with who signed it
    lineage_dot: str
    ancestors: list[str]
    descendants: list[str]
    taken_down: TakenDown | None = None
    erased: bool = False  # its shards have left the store (`custody store gc`): only digests remain

    def license_mix(self) -> dict[str, int]:
        """Records per license expression, those taking the card's license counted under it."""
        return license_mix(self.summaries.get("license", {}))

    def license_categories(self) -> dict[str, int]:
        return license_categories(self.summaries.get("license", {}))

    def pii_by_entity(self) -> dict[str, int]:
        """Records containing each entity type."""
        return dict(self.summaries.get("pii", {}).get("records_by_entity", {}))

    def pii_risk(self) -> PiiRisk | None:
        """The pii check's pii-codex risk ratings, when its result has them (pii 1.1.0 and later)."""
        ratings = self.summaries.get("pii", {}).get("risk")
        return pii_risk(ratings, self.summaries["pii"]) if ratings else None

    def toxicity_histogram(self) -> list[dict[str, Any]]:
        histogram = self.summaries.get("toxicity", {}).get("score_histogram")
        if not histogram:
            return []
        edges, counts = histogram["edges"], histogram["counts"]
        return [{"score": f"{edges[i]:.1f}–{edges[i + 1]:.1f}", "records": n} for i, n in enumerate(counts)]


@dataclass(frozen=True)
class PiiRisk:
    """pii-codex's view of a dataset's PII findings (levels: 1 non-, 2 semi-, 3 identifiable)."""

    source: str  # pii-codex/VERSION
    score: float | None  # mean over records of each record's mean level (1 without findings)
    highest: str | None  # the highest level found, by name
    by_level: dict[str, int]  # findings per level, lowest first ("2 semi-identifiable": n)
    by_category: dict[str, int]  # findings per pii-codex category
    entities: list[dict[str, Any]]  # one row per entity type found: findings, level, category
    redacted_by: str | None  # the redact-pii output these bytes come from, if any


def pii_risk(ratings: dict[str, Any], summary: dict[str, Any]) -> PiiRisk:
    names = ratings["levels"]
    counts = summary.get("entity_counts", {})
    entities = []
    for entity, n in counts.items():
        rating = ratings["entities"].get(entity)
        entities.append(
            {
                "entity": entity,
                "findings": n,
                "level": f"{rating['level']} {rating['level_name']}" if rating else "unrated",
                "category": rating["category"] if rating else "",
                "pii-codex type": rating["codex_type"] if rating else "",
            }
        )
    entities.sort(key=lambda row: (row["level"], row["findings"]), reverse=True)
    highest = ratings.get("max_level")
    return PiiRisk(
        source=ratings["source"],
        score=ratings.get("score_mean"),
        highest=f"{highest} {names[str(highest)]}" if highest else None,
        by_level={f"{level} {name}": ratings["findings_by_level"].get(level, 0) for level, name in names.items()},
        by_category=dict(ratings["findings_by_category"]),
        entities=entities,
        redacted_by=(summary.get("redaction") or {}).get("dataset"),
    )


def dataset_detail(home: Home, ref: str, decisions: list[DecisionInfo] | None = None) -> DatasetDetail:
    registry = DatasetRegistry(home)
    dataset = registry.get(ref)
    checks = latest_results(home, dataset, CHECKS.names())
    summaries = {name: check.summary(home) for name, check in checks.items()}
    mentioned = [
        {**d.as_row(), "for this dataset": d.for_subject(ref)}
        for d in (all_decisions(home) if decisions is None else decisions)
        if ref in d.subjects
    ]
    reviews = reviews_of(home, dataset.ref.subject)  # each says who signed it
    ancestors, descendants = registry.lineage(dataset.ref)
    return DatasetDetail(
        dataset,
        checks,
        summaries,
        mentioned,
        reviews,
        lineage_dot(dataset, ancestors, descendants),
        [_lineage_name(node) for _, node in ancestors],
        [str(node.ref) for _, node in descendants],
        taken_down(home).get(str(dataset.ref)),
        erased(home, dataset),
    )


def _lineage_name(node: RegisteredDataset | dict) -> str:
    return str(node.ref) if isinstance(node, RegisteredDataset) else f"{node['dataset']} (not registered here)"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lineage_dot(
    dataset: RegisteredDataset,
    ancestors: list[tuple[int, RegisteredDataset | dict]],
    descendants: list[tuple[int, RegisteredDataset]],
) -> str:
    """Graphviz DOT: parents point at children, each edge labelled with the stage that made it."""
    nodes: dict[str, str] = {str(dataset.ref): "filled"}
    edges: set[tuple[str, str, str]] = set()
    known: list[RegisteredDataset] = [dataset]
    for _, node in ancestors:
        if isinstance(node, RegisteredDataset):
            nodes.setdefault(str(node.ref), "solid")
            known.append(node)
        else:
            nodes.setdefault(node["dataset"], "dashed")
    for _, node in descendants:
        nodes.setdefault(str(node.ref), "solid")
        known.append(node)
    for child in known:
        stage = (child.body.get("stage") or {}).get("name", "")
        for parent in child.parents:
            if parent["dataset"] in nodes:
                edges.add((parent["dataset"], str(child.ref), stage))
    # Top to bottom at a fixed font size: a chain of stages laid out left to right gets wider than
    # the page, and the chart is then shrunk until its text cannot be read.
    lines = [
        "digraph lineage {",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica", fontsize=14, margin="0.2,0.1"];',
        '  edge [fontname="Helvetica", fontsize=12, fontcolor="#444444"];',
    ]
    for name, style in nodes.items():
        fill = ', fillcolor="#dbeafe"' if style == "filled" else ""
        lines.append(f"  {_quote(name)} [style={_quote('rounded,' + style)}{fill}];")
    for parent, child, stage in sorted(edges):
        lines.append(f"  {_quote(parent)} -> {_quote(child)} [label={_quote(stage)}];")
    lines.append("}")
    return "\n".join(lines)
