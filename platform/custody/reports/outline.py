"""What a human-readable report says, as a list of blocks that Markdown and HTML both render.

Blocks: ("h", level, text) · ("p", text) · ("table", headers, rows) · ("bars", title, {label: n}) ·
("hist", title, edges, counts) · ("line", title, {series: [(x, y)]}). Charts become SVG in HTML
and tables in Markdown. Record text never appears: only digests, counts, rates and names.
"""

from __future__ import annotations

from typing import Any

from custody.policy.refs import describe
from custody.reports.fields import provenance_fields

Block = tuple


def _short(digest: str | None) -> str:
    return f"{digest[:16]}…" if digest else ""


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def outline(content: dict[str, Any]) -> list[Block]:
    blocks = dataset_blocks(content) if content["kind"] == "dataset" else run_blocks(content)
    return blocks + anchor_blocks(content)


def _header(content: dict[str, Any], title: str) -> list[Block]:
    anchors = content.get("anchors", {})
    return [
        ("h", 1, title),
        (
            "p",
            f"Generated {content['generated_at']} by {content['generator']} from ledger {content['origin']} "
            f"(tree size {anchors.get('tree_size', '?')}). Every statement citing a ledger index is proved "
            "in the anchors below; verify offline with `custody verify-report FILE --key VERIFIER_KEY`.",
        ),
    ]


def dataset_blocks(content: dict[str, Any]) -> list[Block]:
    reg = content["dataset"]
    title = reg["card"]["dataset"]["title"]
    blocks = _header(content, f"Provenance report: {content['target']} — {title}")
    blocks += [("h", 2, "Provenance fields")]
    rows = provenance_fields(reg, content["lineage"], content["decisions"])
    blocks.append(
        (
            "table",
            ["#", "field", "value", "SPDX 3.0.1", "CycloneDX 1.6", "HF card", "EU AI Act"],
            [[r["number"], r["field"], r["value"], r["spdx"], r["cyclonedx"], r["hf"], r["ai_act"]] for r in rows],
        )
    )
    blocks += shard_blocks(reg)
    blocks += check_blocks(content["checks"])
    blocks += decision_blocks(content["decisions"], content["reviews"])
    blocks += lineage_blocks(content["lineage"])
    if content.get("energy"):  # reports made before totals were gathered have none
        blocks.append(("h", 2, "Energy, CO2e and water spent on it"))
        blocks += energy_blocks(
            content["energy"], (("checks", "checks run on it"), ("stages", "stages that produced it"))
        )
    blocks += export_blocks(content.get("preferences", []))
    blocks.append(("h", 2, "Runs that used it"))
    if content["runs"]:
        blocks.append(
            (
                "table",
                ["run", "kind", "datasets read", "status", "ledger index"],
                [
                    [
                        r["started"]["run_id"],
                        r["started"]["kind"],
                        ", ".join(d["ref"] for d in r["started"]["datasets"]),
                        (r["finished"] or {}).get("status", "running or unrecorded"),
                        r["started"]["ledger_index"],
                    ]
                    for r in content["runs"]
                ],
            )
        )
    else:
        blocks.append(("p", "No recorded run has read this dataset or a dataset derived from it."))
    return blocks + takedown_blocks(content)


def takedown_blocks(content: dict[str, Any]) -> list[Block]:
    """Takedowns that removed a work from this version, made it, or tainted this run. No work text:
    the request names who asked and why; records appear as counts and digests."""
    blocks: list[Block] = [("h", 2, "Takedowns")]
    items = content.get("takedowns", [])
    if not items:
        what = "this run" if content["kind"] == "run" else "this dataset version"
        return [*blocks, ("p", f"No takedown has touched {what}.")]
    rows = []
    for item in items:
        request, applied = item.get("request") or {}, item.get("applied") or {}
        who, why = request.get("requested_by", "?"), request.get("reason", "?")
        asked = f"{who}: {why} (ledger index {request.get('ledger_index', '?')})"
        decided = (
            f"applied by {applied['actor']} (ledger index {applied['ledger_index']})" if applied else "not applied"
        )
        mark = item.get("mark")
        if "made" in item:
            old = next(v for v in applied["versions"] if v["new"] == item["made"])
            effect = f"this version replaces {old['old']} without {old['removed']:,} record(s) ({old['how']})"
        elif mark is not None and mark.get("type", "").startswith("run.tainted/"):
            effect = (
                f"tainted: read {', '.join(mark['read'])}"
                if mark["read"]
                else f"tainted: started from run {mark['inherits_from']}"
            )
        else:
            effect = f"taken down; replaced by {mark['replaced_by'] or 'no version (nothing was left)'}"
        rows.append([(applied or request).get("id", ""), asked, decided, effect])
    return [*blocks, ("table", ["takedown", "requested by, reason", "decision", "effect here"], rows)]


def _dropped(dropped: dict[str, int]) -> str:
    named = {"ties": "tied or split", "harmful_both": "both harmful", "unjudged": "unjudged"}
    return ", ".join(f"{named.get(k, k)} {_num(v)}" for k, v in dropped.items() if v) or "none"


def export_blocks(exports: list[dict[str, Any]], title: str = "Preferences", level: int = 2) -> list[Block]:
    """How `custody prefs export` made a preference dataset: from which weights and prompts, and how
    many people's judgements (each `prefs.judged` entry is listed by index in the cited export)."""
    if not exports:
        return []
    rows = [
        [
            e["model_digest"],
            e.get("run_id") or "",
            f"{e['prompts']} (sha256 {_short(e['prompts_digest'])})",
            _num(e["pairs"]),
            _num(len(e["judgements"])),
            ", ".join(e["reviewers"]),
            _dropped(e["dropped"]),
            e["ledger_index"],
        ]
        for e in exports
    ]
    headers = ["sampled from model sha256", "run", "prompts", "pairs", "judgements", "reviewers", "pairs dropped"]
    return [
        ("h", level, title),
        (
            "p",
            "Exported from people's judgements of pairs of completions sampled from recorded weights "
            "(`custody prefs export`); the cited entry lists every judgement it rests on by ledger index.",
        ),
        ("table", [*headers, "ledger index"], rows),
    ]


def preference_blocks(content: dict[str, Any]) -> list[Block]:
    """A reward or DPO run: what it measured on pairs and prompts it never trained on (its cited
    run.finished), who judged its pairs, the preference datasets, and the models it rests on."""
    sources = content.get("preferences")
    finished = content["run"]["finished"] or {}
    measured = finished.get("preference")
    if sources is None and not measured:
        return []
    blocks: list[Block] = [("h", 2, "Preferences")]
    if measured:
        index = finished["ledger_index"]
        rows = [["method", measured["method"], index]]
        rows.append(
            [
                "pairs trained on, held out",
                f"{_num(measured['pairs_trained'])}, {_num(measured['pairs_held_out'])}",
                index,
            ]
        )
        rows.append(["reviewers (roster names)", ", ".join(measured["reviewers"]) or "none named", index])
        if measured["method"] == "bradley-terry":
            accuracy = measured.get("held_out_accuracy")
            rows.append(
                [
                    "held-out ranking accuracy (chosen scored above rejected)",
                    f"{accuracy:.2%}" if accuracy is not None else "no held-out pairs",
                    index,
                ]
            )
        else:
            rows += [
                ["beta", _num(measured.get("beta")), index],
                ["held-out prompts scored", _num(measured.get("eval_prompts")), index],
                [
                    "mean reward before → after",
                    f"{_num(measured.get('reward_before'))} → {_num(measured.get('reward_after'))}",
                    index,
                ],
                [
                    "KL to the reference (nats per completion), bound",
                    f"{_num(measured.get('kl'))}, {_num(measured.get('max_kl'))}",
                    index,
                ],
            ]
            if measured.get("stopped"):
                rows.append(["stopped early", measured["stopped"], index])
        blocks.append(("table", ["measure", "value", "ledger index"], rows))
    else:
        blocks.append(("p", "No measures recorded: the run has not finished."))
    models = (sources or {}).get("models", [])
    weights = [
        [
            m["role"],
            m["digest"],
            (m["written_by"] or {}).get("run_id", "not recorded in this ledger"),
            (m["written_by"] or {}).get("ledger_index", ""),
        ]
        for m in models
    ]
    if finished.get("model_digest"):
        weights.append(["this run's weights", finished["model_digest"], finished["run_id"], finished["ledger_index"]])
    if weights:
        blocks.append(("table", ["weights", "sha256", "written by run", "ledger index"], weights))
    for item in (sources or {}).get("datasets", []):
        if item["exported"]:
            blocks += export_blocks(item["exported"], title=item["ref"], level=3)
        else:
            blocks.append(
                ("p", f"{item['ref']}: registered directly, not exported from judgements recorded in this ledger.")
            )
    return blocks


def shard_blocks(reg: dict[str, Any]) -> list[Block]:
    shards = reg["manifest"]["shards"]
    return [
        ("h", 2, f"Shards of {reg['name']}@{reg['version']}"),
        (
            "table",
            ["shard", "format", "records", "bytes", "sha256"],
            [[s["name"], s["format"], _num(s["records"]), _num(s["bytes"]), s["digest"]] for s in shards],
        ),
    ]


def check_blocks(checks: dict[str, dict[str, Any]], level: int = 2) -> list[Block]:
    blocks: list[Block] = [("h", level, "Checks")]
    if not checks:
        return [*blocks, ("p", "No check results on these bytes.")]
    blocks.append(
        (
            "table",
            ["check", "version", "status", "records", "verdicts", "findings", "ledger index", "result sha256"],
            [
                [
                    c["check"],
                    c["version"],
                    c["status"],
                    _num(c["records"]),
                    ", ".join(f"{k} {v}" for k, v in c["verdicts"].items()),
                    ", ".join(f"{f['id']} ({f['severity']})" for f in c.get("findings", [])),
                    c["ledger_index"],
                    _short(c["result_digest"]),
                ]
                for c in checks.values()
            ],
        )
    )
    license_ = checks.get("license", {}).get("summary", {})
    if license_.get("record_licenses"):
        blocks.append(("bars", "License mix (records per license)", license_["record_licenses"]))
    if license_.get("category"):
        blocks.append(("p", f"License category of the mixture (most restrictive wins): {license_['category']}."))
    pii = checks.get("pii", {}).get("summary", {})
    if pii:
        blocks.append(
            (
                "p",
                f"PII: {_num(pii.get('records_with_pii'))} of {_num(pii.get('records_scanned'))} records "
                f"(rate {_num(pii.get('rate'))}) contain a detected entity; types and counts only, never values.",
            )
        )
        if pii.get("records_by_entity"):
            blocks.append(("bars", "PII: records per entity type", pii["records_by_entity"]))
        blocks.extend(pii_risk_blocks(pii))
    tox = checks.get("toxicity", {}).get("summary", {})
    if tox:
        blocks.append(
            (
                "p",
                f"Toxicity: {_num(tox.get('above_threshold'))} records above threshold {_num(tox.get('threshold'))} "
                f"(rate {_num(tox.get('rate_above_threshold'))}), scorer {tox.get('scorer', {}).get('name', '')}.",
            )
        )
        histogram = tox.get("score_histogram")
        if histogram:
            blocks.append(("hist", "Toxicity: records per score", histogram["edges"], histogram["counts"]))
    return blocks


def pii_risk_blocks(pii: dict[str, Any]) -> list[Block]:
    """pii-codex's risk score and distributions, when the pii result has them (pii 1.1.0 on)."""
    ratings = pii.get("risk")
    if not ratings:
        return []
    names = ratings["levels"]
    highest = ratings.get("max_level")
    redaction = pii.get("redaction")
    blocks: list[Block] = [
        (
            "p",
            f"PII risk ({ratings['source']}): score {_num(ratings.get('score_mean'))}, the mean over records of "
            "each record's mean risk level (1 non-identifiable, 2 semi-identifiable, 3 identifiable; 1 for a "
            f"record without findings); highest level found: "
            f"{f'{highest} {names[str(highest)]}' if highest else 'none'}"
            + (f"; these bytes come from the redact-pii output {redaction['dataset']}." if redaction else "."),
        ),
        (
            "bars",
            "PII: findings per risk level",
            {f"{level} {name}": ratings["findings_by_level"].get(level, 0) for level, name in names.items()},
        ),
    ]
    if ratings.get("findings_by_category"):
        blocks.append(("bars", "PII: findings per risk category", ratings["findings_by_category"]))
    rows = []
    for entity, n in pii.get("entity_counts", {}).items():
        rating = ratings["entities"].get(entity)
        if rating:
            rows.append([entity, _num(n), f"{rating['level']} {rating['level_name']}", rating["category"]])
        else:
            rows.append([entity, _num(n), "unrated", ""])
    if rows:
        blocks.append(("table", ["entity", "findings", "risk level", "category"], rows))
    return blocks


def signed(review: dict[str, Any]) -> str:
    """Who signed a review, as its claim proves: the reviewer's own key, or the dashboard attesting them."""
    attest = review.get("attest")
    if attest:
        return (
            f"attested by {attest.get('via')} ({attest.get('method')} sign-in at {attest.get('signed_in_at')}; "
            f"signed with the dashboard's key {review.get('signed_with', '')})"
        )
    if review.get("signed_with"):
        return f"personally, with key {review['signed_with']}"
    return "unsigned (made before signatures)"


def decision_blocks(decisions: list[dict[str, Any]], reviews: list[dict[str, Any]]) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Gate decisions")]
    if decisions:
        blocks.append(
            (
                "p",
                "Policies are named by the sha256 of the exact bytes the gate evaluated; a policy governs a "
                "purpose only when an admin bound it (`custody policy bind`).",
            )
        )
        blocks.append(
            (
                "table",
                ["ledger index", "time", "decision", "policies (sha256; bound?)", "purpose", "requested by", "reasons"],
                [
                    [
                        d["ledger_index"],
                        d["evaluated_at"],
                        d["result"]["decision"],
                        describe(d, full=True),
                        d["purpose"],
                        d["requested_by"],
                        "; ".join(f"{r['rule']} ({r['outcome']}): {r['message']}" for r in d["result"]["reasons"]),
                    ]
                    for d in decisions
                ],
            )
        )
    else:
        blocks.append(("p", "No gate decision names this subject."))
    blocks.append(("h", 2, "Reviews"))
    if reviews:
        blocks.append(
            (
                "table",
                ["ledger index", "time", "reviewer", "signed", "action", "finding", "reason", "expires"],
                [
                    [
                        r["ledger_index"],
                        r["ts"],
                        r["actor"],
                        signed(r),
                        r["action"],
                        r["finding"],
                        r["reason"],
                        r.get("expires", ""),
                    ]
                    for r in reviews
                ],
            )
        )
    else:
        blocks.append(("p", "No reviews recorded."))
    return blocks


def lineage_blocks(lineage: dict[str, Any], level: int = 2) -> list[Block]:
    rows = []
    for direction in ("ancestors", "descendants"):
        for item in lineage.get(direction, []):
            reg = item.get("dataset")
            if reg is None:
                missing = item["unregistered"]
                rows.append([direction[:-1], item["depth"], missing["dataset"], "", _short(missing["digest"]), ""])
                continue
            stage = (reg.get("stage") or {}).get("name", "")
            rows.append(
                [
                    direction[:-1],
                    item["depth"],
                    f"{reg['name']}@{reg['version']}",
                    stage,
                    _short(reg["manifest_digest"]),
                    reg["ledger_index"],
                ]
            )
    blocks: list[Block] = [("h", level, "Lineage")]
    if rows:
        return [*blocks, ("table", ["relation", "depth", "dataset", "stage", "manifest sha256", "ledger index"], rows)]
    return [*blocks, ("p", "Registered directly: no parents and no derived datasets.")]


def run_blocks(content: dict[str, Any]) -> list[Block]:
    run = content["run"]
    started, finished = run["started"], run["finished"] or {}
    blocks = _header(content, f"Run report: {content['target']}")
    requested = run.get("requested")
    rows = [
        ["name, kind", f"{started['name']}, {started['kind']}"],
        [
            "requested",
            f"by {requested['actor']}, key {requested.get('signed_with') or 'none'} "
            f"(ledger index {requested['ledger_index']})"
            if requested
            else "no run.requested entry",
        ],
        ["spec", f"{started['spec_path']} (sha256 {started['spec_digest']})"],
        ["code", started["code_version"]],
        ["device", f"{started['device']} × {started['world_size']}"],
        ["parameters", _num(started["parameters"])],
        ["tokenizer sha256", started["tokenizer_digest"]],
        ["model config sha256", started["model_config_digest"]],
        ["model sha256 (final checkpoint)", finished.get("model_digest", "")],
        ["status", finished.get("status", "no run.finished entry")],
        ["steps, tokens", f"{_num(finished.get('steps'))}, {_num(finished.get('tokens'))}"]
        if "records_trained" not in finished
        else [
            "solver iterations; records trained on, held out",
            f"{_num(finished.get('steps'))}; {_num(finished['records_trained'])}, "
            f"{_num(finished.get('records_held_out'))}",
        ],
        ["final train loss", _num(finished.get("final_train_loss"))],
        [
            "final val loss / perplexity",
            f"{_num(finished.get('final_val_loss'))} / {_num(finished.get('final_val_perplexity'))}",
        ],
    ]
    blocks += [("h", 2, "Run"), ("table", ["", ""], rows)]
    blocks.append(("h", 2, "Energy, CO2e and water"))
    emission_rows = []
    for label, e in (("training", finished.get("emissions")), ("preparation", started.get("preparation_emissions"))):
        if e:
            emission_rows.append(
                [
                    label,
                    _num(e["duration_s"]),
                    _num(e["energy_kwh"]),
                    _num(e["emissions_kg_co2e"]),
                    _num(e["water_l"]),
                    e["country_iso_code"],
                    _num(e["pue"]),
                    _num(e["wue_l_per_kwh"]),
                    e["tracker"],
                ]
            )
    blocks.append(
        (
            "table",
            ["phase", "seconds", "kWh", "kg CO2e", "water (L)", "country", "PUE", "WUE (L/kWh)", "tracker"],
            emission_rows,
        )
    )
    if content.get("energy"):
        parts = (
            ("preparation", "preparation (stages, overlap, bookkeeping; its checks taken out)"),
            ("checks", "checks run for this run"),
            ("training", "training (a failed run: up to the failure)"),
        )
        blocks += energy_blocks(content["energy"], parts)
    if finished.get("held_out"):
        blocks.append(("h", 2, "Scores on held-out records"))
        blocks.append(
            (
                "table",
                ["dataset", "records", "positives", "ROC-AUC", "F1 at 0.5"],
                [
                    [h["dataset"], _num(h["records"]), _num(h["positives"]), _num(h["roc_auc"]), _num(h["f1"])]
                    for h in finished["held_out"]
                ],
            )
        )
    blocks += preference_blocks(content)
    metrics = finished.get("metrics")
    if metrics and metrics.get("steps"):
        series = {"train loss": [(s["step"], s["train_loss"]) for s in metrics.get("steps", [])]}
        validated = [e for e in metrics.get("evals", []) if e.get("val_loss") is not None]
        if validated:  # a preference run's evaluations measure accuracy, or reward and KL, instead
            series["val loss"] = [(e["step"], e["val_loss"]) for e in validated]
        blocks.append(("line", "Loss per step", series))
        scored = [e for e in metrics.get("evals", []) if e.get("reward") is not None]
        if scored:
            curves = {"mean reward": [(e["step"], e["reward"]) for e in scored]}
            curves["KL to the reference"] = [(e["step"], e["kl"]) for e in scored if e.get("kl") is not None]
            blocks.append(("line", "DPO: mean reward and KL on held-out prompts per evaluation", curves))
    if run["checkpoints"]:
        blocks.append(("h", 2, "Checkpoints"))
        blocks.append(
            (
                "table",
                ["step", "tokens", "train loss", "val loss", "sha256", "ledger index"],
                [
                    [
                        c["step"],
                        _num(c["tokens"]),
                        _num(c["train_loss"]),
                        _num(c.get("val_loss")),
                        c["checkpoint_digest"],
                        c["ledger_index"],
                    ]
                    for c in run["checkpoints"]
                ],
            )
        )
    blocks += decision_blocks([content["decision"]], content["reviews"])
    blocks.append(("h", 2, "Datasets read"))
    blocks.append(
        (
            "table",
            ["dataset read", "manifest sha256", "records", "prepared from", "source sha256"],
            [
                [
                    d["ref"],
                    d["digest"],
                    _num(_records(content, d["ref"])),
                    d.get("source") or "",
                    d.get("source_digest") or "",
                ]
                for d in started["datasets"]
            ],
        )
    )
    for item in content["datasets"]:
        blocks.append(("h", 3, item["ref"]))
        if "read" not in item:
            blocks.append(("p", "Not registered in this home any more: only its recorded digest is known."))
            continue
        blocks += check_blocks(item["checks"], level=4)
        blocks += lineage_blocks(item, level=4)
    return blocks + evaluation_blocks(content) + takedown_blocks(content)


MEASURED = {"before-training": "before training", "release": "at release"}  # eval.contamination/v2 stage


def energy_blocks(energy: dict[str, Any], parts: tuple[tuple[str, str], ...]) -> list[Block]:
    """A total and its parts (reports/energy.py), water beside energy and CO2e."""
    rows = []
    for key, label in (*parts, ("total", "total")):
        t = energy[key]
        counted = f"{t['measured']} measured" + (f", {t['unmeasured']} not measured" if t["unmeasured"] else "")
        rows.append(
            [
                label,
                counted,
                _num(t["duration_s"]),
                _num(t["energy_kwh"]),
                _num(t["emissions_kg_co2e"]),
                _num(t["water_l"]),
            ]
        )
    return [("table", ["part", "entries", "seconds", "kWh", "kg CO2e", "water (L)"], rows)]


def evaluation_blocks(content: dict[str, Any]) -> list[Block]:
    """The final model's recorded evaluations, and how much of each evaluation set the training data holds."""
    blocks: list[Block] = [("h", 2, "Evaluations of the final model")]
    rows = [
        [e["evalset"], e["task"], name, ", ".join(f"{k} {_num(v)}" for k, v in values.items()), e["ledger_index"]]
        for e in content.get("evaluations", [])
        for name, values in e["results"].items()
    ]
    if rows:
        blocks.append(("table", ["evaluation set", "task", "slice", "metrics", "ledger index"], rows))
    else:
        blocks.append(("p", "No evaluation of the final model is recorded (`custody eval RUN EVALSET@VERSION`)."))
    blocks.append(("h", 2, "Evaluation data in the training data"))
    overlap = [
        [
            c["evalset"],
            MEASURED[c.get("stage", "release")],  # eval.contamination/v1 was measured at release only
            c["ngram"],
            _num(c["judged"]),
            _num(c["contaminated"]),
            f"{c['share']:.2%}",
            c["ledger_index"],
        ]
        for c in content.get("contamination", [])
    ]
    if overlap:
        headers = [
            "evaluation set",
            "measured",
            "n-gram (words)",
            "records judged",
            "sharing an n-gram",
            "share",
            "ledger index",
        ]
        blocks.append(("table", headers, overlap))
    else:
        blocks.append(
            (
                "p",
                "No overlap was measured for this run (`custody run` measures it before training for the "
                "evaluation sets its spec lists, `custody release` at release).",
            )
        )
    return blocks


def _records(content: dict[str, Any], ref: str) -> int | None:
    for item in content["datasets"]:
        if item["ref"] == ref and "read" in item:
            return item["read"]["records"]
    return None


def anchor_blocks(content: dict[str, Any]) -> list[Block]:
    anchors = content.get("anchors", {})
    rows = []
    for item in anchors.get("entries", []):
        kind = item["entry"].split('"type":"', 1)[-1].split('"', 1)[0]
        rows.append([item["index"], kind, item["leaf_hash"], len(item["proof"])])
    return [
        ("h", 2, "Ledger anchors"),
        (
            "p",
            f"Each entry below is proved by an RFC 9162 inclusion proof to the checkpoint of tree size "
            f"{anchors.get('tree_size')} signed by {anchors.get('origin')}; the proofs, the entries' exact bytes "
            "and the signed note are in the embedded report document.",
        ),
        ("table", ["ledger index", "entry type", "leaf hash", "proof hashes"], rows),
        ("code", anchors.get("checkpoint", "")),
    ]
