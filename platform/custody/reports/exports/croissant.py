"""Croissant 1.1 JSON-LD (MLCommons) for one dataset version, with the Responsible-AI vocabulary
(`rai:`, Croissant RAI 1.0) filled from custody's records, never typed by hand.

- distribution: a `cr:FileObject` per shard with its SHA-256 (what the manifest names). A
  compressed shard (`.jsonl.zst`, `.jsonl.gz`) is said to be compressed: the shard is an
  `application/zstd` (or `application/gzip`) object and the JSON Lines inside it a second
  FileObject `containedIn` it, as Croissant describes a file inside an archive.
- record sets: the declared fields (text, id, license, source_url) read from those files.
- license (an SPDX URL for a single id, else the expression), a BibTeX `citeAs`.
- RAI: collection, its type and time frame from the card; raw data from its sources; the
  preparation protocols from the stages of the version's lineage with their settings and counts;
  personal information from the card and the PII check's summary; biases from the card and the
  toxicity summary; limitations and use cases from the card. `custody:trace` says, for each RAI
  property, where custody recorded it (a card field, a ledger entry).

The JSON-LD @context is written inline (no remote context to fetch). The file is written by hand,
not with mlcroissant: the tests validate it with mlcroissant (docs/reports.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from custody.reports import ExportError
from custody.reports.exports import dataset_sections, root_registrations

name = "croissant"  # its key in reports/exports/catalog.py

CONFORMS_TO = ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]

# The Croissant 1.1 @context, as mlcroissant writes it for 1.1 (mlcroissant._src.core.rdf), plus
# custody's own prefix for the trace.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

# The trace is one JSON literal (as cr:data is): its keys name RAI properties but state nothing about any node.
TRACE_TERM = {"custody:trace": {"@id": "custody:trace", "@type": "@json"}}

# custody shard format -> (the shard's media type, the media type of what is read, compressed?)
FORMATS = {
    "jsonl": ("application/jsonlines", "application/jsonlines", False),
    "jsonl.gz": ("application/gzip", "application/jsonlines", True),
    "jsonl.zst": ("application/zstd", "application/jsonlines", True),
    "parquet": ("application/x-parquet", "application/x-parquet", False),
    "csv": ("text/csv", "text/csv", False),
    "txt": ("text/plain", "text/plain", False),
}
DATA_TYPES = {"text": "sc:Text", "id": "sc:Text", "license": "sc:Text", "source_url": "sc:URL"}
FIELD_DESCRIPTIONS = {
    "text": "the record's text",
    "id": "the record's id (unique within the dataset)",
    "license": "the record's own license (SPDX), when it has one",
    "source_url": "where the record was retrieved from, when known",
}
# a card source's kind -> the RAI spec's recommended rai:dataCollectionType value
COLLECTION_TYPES = {
    "scraped": "Web Scraping",
    "public": "Secondary Data analysis",
    "licensed": "Secondary Data analysis",
    "user": "User-generated content data",
    "synthetic": "Others",
    "internal": "Others",
}
SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")


def extend_content(home: Any, content: dict[str, Any]) -> dict[str, Any]:
    """What the report content leaves out and the RAI protocols need: each custody stage of the
    lineage with the settings it ran with (its recorded config artifact), the options it was given
    and its `stage.completed` entry (counts, reasons), oldest first; and which optional declared
    fields the shards hold."""
    if content["kind"] != "dataset":
        return content
    return {**content, "croissant": {"stages": _stages(home, content), "columns": _columns(home, content)}}


OPTIONAL = ("license", "source_url")  # declared fields a record may leave out (text and id it may not)


def _columns(home: Any, content: dict[str, Any]) -> list[str] | None:
    """Which optional declared fields every shard holds, read from the shards (a record set's field
    must exist in each file it reads; a missing column fails mlcroissant's reading). None: the
    shards could not be read here, and only text and id are declared."""
    from custody.datasets.names import parse_ref
    from custody.datasets.registry import DatasetRegistry

    declared = content["dataset"]["manifest"]["fields"]
    wanted = {f for f in OPTIONAL if declared.get(f)}
    if not wanted:
        return []
    try:
        dataset = DatasetRegistry(home).get(parse_ref(content["target"]))
        for shard in dataset.manifest.shards:
            seen: set[str] = set()
            for record in dataset.shard_records(shard):
                seen |= {f for f in wanted if getattr(record, f) is not None}
                if seen == wanted:
                    break
            wanted &= seen
            if not wanted:
                break
    except (OSError, ValueError, LookupError):
        return None
    return sorted(wanted)


def _stages(home: Any, content: dict[str, Any]) -> list[dict[str, Any]]:
    from custody.ledger.query import body, entries
    from custody.reports.claims import cite

    stages = []
    for reg in reversed(root_registrations(dataset_sections(content)[0])):
        stage = reg.get("stage")
        if not stage:
            continue
        config = _artifact(home, stage["config_digest"])
        completed = None
        for row in entries(home.storage, "stage.completed/", reg["subject"]):
            if body(row)["output_digest"] == reg["manifest_digest"]:
                completed = row
        summary = None
        if completed is not None:
            summary = _artifact(home, body(completed)["summary_digest"])
        stages.append(
            {
                "name": stage["name"],
                "output": f"{reg['name']}@{reg['version']}",
                "registered_at": reg["ledger_index"],
                "config": config,
                "options": _artifact(home, stage["options_digest"]) if stage.get("options_digest") else None,
                "completed": cite(completed) if completed is not None else None,
                "reasons": (summary or {}).get("reasons", {}),
            }
        )
    return stages


def _artifact(home: Any, digest: str) -> Any:
    try:
        return json.loads(home.store.read_bytes(digest))
    except (OSError, ValueError, LookupError) as exc:
        raise ExportError(f"croissant: artifact sha256:{digest} cannot be read ({exc})") from exc


def export(content: dict[str, Any]) -> bytes:
    if content["kind"] != "dataset":
        raise ExportError("croissant describes a dataset: give NAME@VERSION, not a run id")
    doc = document(content)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def document(content: dict[str, Any]) -> dict[str, Any]:
    section = dataset_sections(content)[0]
    reg, checks = section["reg"], section["checks"]
    card = reg["card"]
    ref = f"{reg['name']}@{reg['version']}"
    stages = content.get("croissant", {}).get("stages", [])
    rai, trace = _rai(content, reg, checks, stages)
    extra = content.get("croissant", {})
    distribution, record_sets = _files(reg["manifest"], extra.get("columns"))
    doc: dict[str, Any] = {
        "@context": {**CONTEXT, "custody": f"https://{content['origin']}/croissant#", **TRACE_TERM},
        "@type": "sc:Dataset",
        "name": reg["name"],
        "alternateName": card["dataset"]["title"],
        "identifier": ref,
        "description": card["dataset"].get("description") or card["dataset"]["title"],
        "conformsTo": CONFORMS_TO,
        "version": reg["version"],
        "datePublished": reg["ts"],
        "citeAs": _citation(content, reg),
    }
    license_value = _license(card["license"].get("declared"))
    if license_value:
        doc["license"] = license_value
    if card["dataset"].get("homepage"):
        doc["url"] = card["dataset"]["homepage"]
    if card["dataset"]["languages"]:
        doc["inLanguage"] = card["dataset"]["languages"]
    if card["governance"].get("owner"):
        doc["creator"] = {"@type": "sc:Organization", "name": card["governance"]["owner"]}
    doc.update(rai)
    doc["distribution"] = distribution
    doc["recordSet"] = record_sets
    doc["custody:trace"] = {
        "dataset": ref,
        "manifest_sha256": reg["manifest_digest"],
        "ledger_origin": content["origin"],
        "registered_at": reg["ledger_index"],
        "rai": trace,
    }
    return doc


# -- files and records ------------------------------------------------------------------------


def _inner_name(shard: str) -> str:
    for suffix in (".zst", ".gz"):
        if shard.endswith(suffix):
            return shard[: -len(suffix)]
    return shard


def _files(manifest: dict[str, Any], columns: list[str] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The distribution (a FileObject per shard, and what a compressed one contains) and one record
    set per shard format, reading text, id and the optional declared `columns` every shard holds."""
    distribution: list[dict[str, Any]] = []
    groups: dict[str, list[str]] = {}  # shard format -> the file objects records are read from
    for shard in manifest["shards"]:
        fmt = shard["format"]
        if fmt not in FORMATS:
            raise ExportError(f"croissant: shard {shard['name']} has a format it cannot describe ({fmt})")
        outer, inner, compressed = FORMATS[fmt]
        distribution.append(
            {
                "@type": "cr:FileObject",
                "@id": shard["name"],
                "name": shard["name"],
                "contentUrl": shard["name"],
                "contentSize": f"{shard['bytes']} B",
                "encodingFormat": outer,
                "sha256": shard["digest"],
            }
        )
        read_from = shard["name"]
        if compressed:
            read_from = _inner_name(shard["name"])
            method = "zstd (RFC 8878)" if fmt.endswith(".zst") else "gzip (RFC 1952)"
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": read_from,
                    "name": read_from,
                    "description": f"the JSON Lines that {shard['name']} decompresses to: {method}",
                    "contentUrl": read_from,
                    "containedIn": {"@id": shard["name"]},
                    "encodingFormat": inner,
                }
            )
        groups.setdefault(fmt, []).append(read_from)
    record_sets = []
    for fmt, files in groups.items():
        set_id = "records" if len(groups) == 1 else f"records-{fmt.replace('.', '-')}"
        if len(files) == 1:
            source = {"fileObject": {"@id": files[0]}}
        else:
            file_set = {
                "@type": "cr:FileSet",
                "@id": f"files-{fmt.replace('.', '-')}",
                "name": f"files-{fmt.replace('.', '-')}",
                "encodingFormat": FORMATS[fmt][1],
                "includes": files,
            }
            if FORMATS[fmt][2]:
                file_set["containedIn"] = [{"@id": s["name"]} for s in manifest["shards"] if s["format"] == fmt]
            distribution.append(file_set)
            source = {"fileSet": {"@id": file_set["@id"]}}
        record_sets.append(_record_set(set_id, fmt, source, manifest["fields"], columns or []))
    return distribution, record_sets


def _record_set(
    set_id: str, fmt: str, source: dict[str, Any], declared: dict[str, str | None], columns: list[str]
) -> dict[str, Any]:
    fields = []
    for key in ("text", "id", *OPTIONAL):
        column = declared.get(key)
        if not column or (key in OPTIONAL and key not in columns):
            continue
        if fmt == "txt":  # a .txt file is one record: its content, named by the file
            if key not in ("text", "id"):
                continue
            extract = {"fileProperty": "content" if key == "text" else "filename"}
        else:
            extract = {"column": column}
        fields.append(
            {
                "@type": "cr:Field",
                "@id": f"{set_id}/{key}",
                "name": key,
                "description": FIELD_DESCRIPTIONS[key],
                "dataType": DATA_TYPES[key],
                "source": {**source, "extract": extract},
            }
        )
    record_set: dict[str, Any] = {
        "@type": "cr:RecordSet",
        "@id": set_id,
        "name": set_id,
        "description": f"the records of the {fmt} shards",
        "field": fields,
    }
    if declared.get("id"):
        record_set["key"] = {"@id": f"{set_id}/id"}
    return record_set


# -- license and citation ---------------------------------------------------------------------


def _license(expression: str | None) -> str | None:
    """A single SPDX id as its spdx.org URL (what Croissant recommends); any other expression
    (`MIT OR Apache-2.0`, `LicenseRef-…`) as written, so an OR is never read as two licenses."""
    if not expression:
        return None
    if SPDX_ID.fullmatch(expression) and not expression.startswith("LicenseRef-"):
        return f"https://spdx.org/licenses/{expression}.html"
    return expression


def _bibtex(value: str) -> str:
    return value.replace("{", "(").replace("}", ")")


def _citation(content: dict[str, Any], reg: dict[str, Any]) -> str:
    card = reg["card"]
    key = re.sub(r"[^A-Za-z0-9]+", "-", f"{reg['name']}-{reg['version']}").strip("-")
    lines = [f"@misc{{{key},", f"  title = {{{_bibtex(card['dataset']['title'])}}},"]
    if card["governance"].get("owner"):
        lines.append(f"  author = {{{_bibtex(card['governance']['owner'])}}},")
    lines.append(f"  year = {{{reg['ts'][:4]}}},")
    lines.append(f"  version = {{{_bibtex(reg['version'])}}},")
    if card["dataset"].get("homepage"):
        lines.append(f"  url = {{{card['dataset']['homepage']}}},")
    lines.append(
        f"  note = {{custody dataset {reg['name']}@{reg['version']}, manifest sha256 {reg['manifest_digest']}, "
        f"registered in ledger {content['origin']} at index {reg['ledger_index']}}}"
    )
    return "\n".join(lines) + "\n}"


# -- Responsible AI ---------------------------------------------------------------------------


def _rai(
    content: dict[str, Any], reg: dict[str, Any], checks: dict[str, Any], stages: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rai: properties, and for each where custody recorded it."""
    card = reg["card"]
    at_card = {"from": "card", "ledger_index": reg["ledger_index"], "card_sha256": reg["card_digest"]}
    rai: dict[str, Any] = {}
    trace: dict[str, Any] = {}

    def put(prop: str, value: Any, source: dict[str, Any]) -> None:
        if value in (None, "", []):
            return
        rai[f"rai:{prop}"] = value
        trace[f"rai:{prop}"] = source

    collection, crawl = card["collection"], card["crawl"]
    put("dataCollection", collection_text(collection, crawl), {**at_card, "fields": COLLECTION_FIELDS})
    put(
        "dataCollectionType",
        sorted({COLLECTION_TYPES[s["kind"]] for s in card["sources"]}),
        {**at_card, "fields": ["sources[].kind"]},
    )
    frame = collection.get("time_frame")
    if frame:
        put(
            "dataCollectionTimeframe",
            [str(frame["start"]), str(frame["end"])],
            {**at_card, "fields": ["collection.time_frame.start", "collection.time_frame.end"]},
        )
    put(
        "dataCollectionRawData",
        "\n".join(source_line(s) for s in card["sources"]),
        {**at_card, "fields": ["sources[]"]},
    )

    before = [preparation_line(p) for p in card["preparation"]]
    filtering = [s for s in stages if not _modified(s)]
    rewriting = [s for s in stages if _modified(s)]
    put(
        "dataPreprocessingProtocol",
        before + [stage_line(s) for s in filtering],
        {
            "from": "card preparation[] (before registration), then custody stages that kept or dropped records",
            "card_sha256": reg["card_digest"],
            "stages": [_stage_trace(s) for s in filtering],
        },
    )
    put(
        "dataManipulationProtocol",
        "\n".join(stage_line(s) for s in rewriting),
        {"from": "custody stages that rewrote records", "stages": [_stage_trace(s) for s in rewriting]},
    )

    pii = checks.get("pii")
    put(
        "personalSensitiveInformation",
        personal_lines(card["personal_data"], pii),
        {
            **at_card,
            "fields": ["personal_data.present", "personal_data.categories", "personal_data.anonymization"],
            "pii_check": pii["ledger_index"] if pii else None,
        },
    )
    toxicity = checks.get("toxicity")
    put(
        "dataBiases",
        bias_lines(card["bias"], toxicity),
        {
            **at_card,
            "fields": ["bias.attributes_examined", "bias.methods", "bias.findings", "bias.mitigations"],
            "toxicity_check": toxicity["ledger_index"] if toxicity else None,
        },
    )
    put(
        "dataLimitations",
        limitation_lines(card["suitability"], card["use"]),
        {**at_card, "fields": ["suitability.known_gaps", "suitability.noise", "use.out_of_scope"]},
    )
    put("dataUseCases", list(card["use"]["intended"]), {**at_card, "fields": ["use.intended"]})
    governance = card["governance"]
    put(
        "dataReleaseMaintenancePlan",
        "; ".join(
            f"{label}: {governance[key]}"
            for key, label in (("maintenance", "maintenance"), ("update_mechanism", "updates"))
            if governance.get(key)
        ),
        {**at_card, "fields": ["governance.maintenance", "governance.update_mechanism"]},
    )
    return rai, trace


COLLECTION_FIELDS = [
    "collection.process",
    "collection.original_purpose",
    "collection.consent_basis",
    "crawl.crawler",
    "crawl.robots_txt_respected",
    "crawl.tdm_opt_outs_respected",
]


def _yes(value: bool | None) -> str:
    return "not stated" if value is None else ("yes" if value else "no")


def collection_text(collection: dict[str, Any], crawl: dict[str, Any]) -> str:
    """The card's collection process, then its purpose, consent basis and crawler, each labelled."""
    parts = [collection["process"]] if collection.get("process") else []
    if collection.get("original_purpose"):
        parts.append(f"Original purpose: {collection['original_purpose']}.")
    if collection.get("consent_basis"):
        parts.append(f"Consent basis: {collection['consent_basis']}.")
    if crawl.get("crawler"):
        parts.append(
            f"Crawler: {crawl['crawler']} (robots.txt respected: {_yes(crawl.get('robots_txt_respected'))}; "
            f"TDM opt-outs respected: {_yes(crawl.get('tdm_opt_outs_respected'))})."
        )
    return " ".join(parts)


def source_line(source: dict[str, Any]) -> str:
    parts = [source["kind"]]
    if source.get("uri"):
        parts.append(source["uri"])
    parts.append(f"license {source.get('license') or 'not stated'}")
    if source.get("retrieved_at"):
        parts.append(f"retrieved {source['retrieved_at']}")
    if source.get("digest"):
        parts.append(source["digest"])
    return f"{source['name']} ({'; '.join(parts)})"


def preparation_line(step: dict[str, Any]) -> str:
    tool = f" with {step['tool']}" if step.get("tool") else ""
    what = f": {step['description']}" if step.get("description") else ""
    return f"{step['op']}{tool}{what} (before registration in custody)"


def _settings(stage: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (stage["config"] or {}).items() if k not in ("stage", "version")}


def _modified(stage: dict[str, Any]) -> bool:
    return bool(stage["completed"] and stage["completed"]["modified"])


def stage_line(stage: dict[str, Any]) -> str:
    """`custody stage dedup-exact 1 (mix@1 -> mix@2): settings {...}; kept 9, modified 0, dropped 3 (...)`."""
    done = stage["completed"]
    version = (stage["config"] or {}).get("version", "")
    line = f"custody stage {stage['name']} {version}".rstrip()
    if done:
        line += f" ({done['input']} -> {done['output']})"
    else:
        line += f" (-> {stage['output']})"
    line += f": settings {json.dumps(_settings(stage), sort_keys=True)}"
    if stage["options"]:
        line += f"; options given {json.dumps(stage['options'], sort_keys=True)}"
    if done:
        line += f"; kept {done['kept']}, modified {done['modified']}, dropped {done['dropped']}"
        if stage["reasons"]:
            line += f" (reasons: {', '.join(f'{r} {n}' for r, n in stage['reasons'].items())})"
    return line


def _stage_trace(stage: dict[str, Any]) -> dict[str, Any]:
    return {
        "stage": stage["name"],
        "output": stage["output"],
        "dataset.registered": stage["registered_at"],
        "stage.completed": stage["completed"]["ledger_index"] if stage["completed"] else None,
    }


def personal_lines(personal: dict[str, Any], pii: dict[str, Any] | None) -> list[str]:
    lines = []
    declared = [f"personal data present: {personal.get('present') or 'not stated'}"]
    if personal.get("categories"):
        declared.append(f"categories: {', '.join(personal['categories'])}")
    if personal.get("anonymization"):
        declared.append(f"anonymization: {personal['anonymization']}")
    lines.append(f"Card: {'; '.join(declared)}")
    if pii is None:
        lines.append("PII check: no result on these bytes")
        return lines
    summary = pii["summary"]
    lines.append(
        f"PII check ({summary.get('model')}, ledger index {pii['ledger_index']}): "
        f"{summary['records_with_pii']} of {summary['records_scanned']} records contain detected PII "
        f"(rate {summary['rate']})"
    )
    spans = summary.get("entity_counts", {})
    for entity, records in summary.get("records_by_entity", {}).items():
        lines.append(f"PII check: {entity} in {records} records ({spans.get(entity, 0)} spans)")
    redaction = summary.get("redaction")
    if redaction:
        lines.append(f"Redacted by custody stage {redaction['stage']} in {redaction['dataset']}")
    return lines


def bias_lines(bias: dict[str, Any], toxicity: dict[str, Any] | None) -> list[str]:
    lines = []
    if bias.get("attributes_examined"):
        lines.append(f"Attributes examined: {', '.join(bias['attributes_examined'])}")
    for key, label in (("methods", "Methods"), ("findings", "Findings"), ("mitigations", "Mitigations")):
        if bias.get(key):
            lines.append(f"{label}: {bias[key]}")
    if toxicity is None:
        lines.append("Toxicity check: no result on these bytes")
        return lines
    summary = toxicity["summary"]
    records = summary["scored"] + summary["empty"] + summary["unscored"]
    lines.append(
        f"Toxicity check (ledger index {toxicity['ledger_index']}): {summary['above_threshold']} of {records} "
        f"records score above {summary['threshold']} (rate {summary['rate_above_threshold']})"
    )
    for category, values in summary.get("by_category", {}).items():
        lines.append(
            f"Toxicity check: {category} above {summary['threshold']} in {values['above_threshold']} records "
            f"(rate {values['rate_above_threshold']}, mean score {values['mean']})"
        )
    return lines


def limitation_lines(suitability: dict[str, Any], use: dict[str, Any]) -> list[str]:
    lines = list(suitability["known_gaps"])
    if suitability.get("noise"):
        lines.append(f"Noise: {suitability['noise']}")
    lines += [f"Out of scope: {u}" for u in use["out_of_scope"]]
    return lines
