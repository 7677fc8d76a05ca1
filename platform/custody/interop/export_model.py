"""`custody export-model RUN_OR_CHECKPOINT --format hf --out DIR`: recorded weights as a folder
Hugging Face transformers loads (`GPT2LMHeadModel.from_pretrained(DIR)`), with a model card whose
metadata the ledger proves, and the folder's manifest digest recorded as `model.exported/v1`.

The folder: `model.safetensors` and `config.json` (gpt2.py says what maps to what),
`tokenizer.json` (custody's BPE tokenizer, byte for byte) with `tokenizer_config.json` and
`special_tokens_map.json` (`<|endoftext|>` as bos, eos and unk), `README.md` (the card: training
datasets and their digests, the run, its evaluations, energy and CO2e, and a signed ledger
checkpoint) and `provenance.json` (every cited entry's bytes with its inclusion proof to that
checkpoint, checkable offline).

Everything is written to a temporary folder beside DIR and moved into place only when complete;
the ledger entry comes last. A DIR that already holds other weights, or files that are not an
export, is refused; one that holds the recorded export of the same weights is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import DatasetRegistry
from custody.emissions import measured
from custody.evals.run_eval import resolve
from custody.evalsets.records import EvalError
from custody.home import Home
from custody.interop import entry_types  # noqa: F401  registers model.exported/v1
from custody.interop.gpt2 import NotExportable, check_exportable, hf_config, hf_state, tied
from custody.ledger import query
from custody.ledger.entry import canonical_json

FORMATS = ("hf",)
WEIGHTS = "model.safetensors"
FILES = (
    WEIGHTS,
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "README.md",
    "provenance.json",
)


class ExportError(ValueError):
    """An export that cannot be written as asked; nothing is recorded."""


@dataclass(frozen=True)
class ModelExport:
    out: Path
    model_digest: str
    run_id: str | None
    manifest_digest: str
    files: list[dict[str, Any]]
    ledger_index: int
    already: bool  # the folder already held this recorded export: nothing written or recorded


def file_entries(folder: Path) -> list[dict[str, Any]]:
    """Each file under `folder` (path, sha256, bytes), sorted by path."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        )
    return out


def manifest_digest(files: list[dict[str, Any]]) -> str:
    return hashlib.sha256(canonical_json(sorted(files, key=lambda f: f["path"]))).hexdigest()


def safetensors_digest(path: Path, next_step: str = "remove it or choose another --out") -> str:
    """The SHA-256 of a safetensors file's bytes, after checking that it parses as one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118  safe_open is not a mapping
                handle.get_slice(name).get_shape()
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path} is not a readable safetensors file ({reason}): {next_step}") from None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded_export(home: Home, model_digest: str, manifest: str) -> int | None:
    for row in query.entries(home.storage, "model.exported/", f"model:{model_digest}"):
        if query.body(row)["manifest_digest"] == manifest:
            return row.idx
    return None


def export_model(home: Home, target: str, out: Path, fmt: str = "hf", actor: Any = None) -> ModelExport:
    """Write the folder, then record `model.exported/v1`; refuse in one line on anything off."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown model format {fmt!r}: custody writes {', '.join(FORMATS)} (Hugging Face GPT-2)")
    try:
        weights = resolve(home, target)
    except EvalError as exc:
        raise ExportError(str(exc)) from None
    if weights.kind == "reward":
        raise ExportError(
            f"run {weights.run_id} trained a reward model (one output, a score): not a language model, "
            "so not exportable as GPT2LMHeadModel"
        )
    if weights.kind == "classifier":
        raise ExportError(f"run {weights.run_id} trained a classifier, not a GPT: nothing to export as GPT2LMHeadModel")

    from safetensors.torch import save

    from custody.train.checkpoint import CheckpointError, load_checkpoint
    from custody.train.tokenizer import EOT, TokenizerError, load_tokenizer

    try:
        checkpoint = load_checkpoint(weights.path, weights.digest)
        config = checkpoint.model_config
        check_exportable(config)
        tokenizer_digest = checkpoint.state["meta"]["tokenizer_digest"]
        tokenizer = load_tokenizer(home.store.path_for(tokenizer_digest), tokenizer_digest)
        eot_id = tokenizer.tokenizer.token_to_id(EOT)
        tensors = hf_state(checkpoint.state["model"], config)
    except (CheckpointError, TokenizerError, NotExportable) as exc:
        raise ExportError(str(exc)) from None
    if tokenizer.vocab_size > config.vocab_size:
        raise ExportError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}: not a pair"
        )
    weights_bytes = save(tensors, metadata={"format": "pt"})  # one key: safetensors writes metadata in hash-map order

    out = Path(out)
    existing = _existing(out, hashlib.sha256(weights_bytes).hexdigest())
    if existing is not None:
        index = recorded_export(home, weights.digest, manifest_digest(existing))
        if index is not None:
            return ModelExport(out, weights.digest, weights.run_id, manifest_digest(existing), existing, index, True)

    note = home.ledger.with_cosignatures(home.checkpoint())
    size = home.ledger.size
    cited = _cited(home, weights)
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "model_max_length": config.block_size,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
    }
    contents: dict[str, bytes] = {
        WEIGHTS: weights_bytes,
        "config.json": _json(hf_config(config, eot_id)),
        "tokenizer.json": tokenizer.data,
        "tokenizer_config.json": _json(tokenizer_config),
        "special_tokens_map.json": _json({"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}),
        "README.md": model_card(home, weights, config, tokenizer_digest, note, size, cited).encode(),
        "provenance.json": _json(
            {"checkpoint": note, "tree_size": size, "entries": [home.ledger.anchored_entry(i, size) for i in cited]}
        ),
    }
    _write_folder(out, contents)
    files = file_entries(out)
    digest = manifest_digest(files)
    body = {
        "model_digest": weights.digest,
        "run_id": weights.run_id,
        "format": "hf-gpt2",
        "manifest_digest": digest,
        "files": files,
        "checkpoint_size": size,
    }
    refs = [f"sha256:{weights.digest}", f"sha256:{tokenizer_digest}"] + [f"ledger:{i}" for i in cited]
    index = home.record("model.exported/v1", f"model:{weights.digest}", body, refs=refs, actor=actor)
    return ModelExport(out, weights.digest, weights.run_id, digest, files, index, False)


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def _existing(out: Path, new_weights_digest: str) -> list[dict[str, Any]] | None:
    """None when `out` is free to write; its files when it holds this very model; else refuse."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a folder: choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return None
    if not (out / WEIGHTS).is_file():
        raise ExportError(f"{out} is not empty and holds no {WEIGHTS}: choose an empty or new folder for --out")
    held = safetensors_digest(out / WEIGHTS)
    if held != new_weights_digest:
        raise ExportError(
            f"{out} already holds a different model ({WEIGHTS} sha256 {held[:16]}…, this export's "
            f"{new_weights_digest[:16]}…): choose another --out or remove it"
        )
    files = file_entries(out)
    strays = sorted({f["path"] for f in files} - set(FILES))
    if strays:
        raise ExportError(f"{out} holds files an export does not write ({', '.join(strays[:3])}): choose another --out")
    return files


def _write_folder(out: Path, contents: dict[str, bytes]) -> None:
    """Write into a temporary sibling folder, then move it (or, for a folder that holds this
    model already, each file) into place: a crash leaves no half-written export under `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, data in contents.items():
            with open(tmp / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if out.exists():
            for name in contents:
                os.replace(tmp / name, out / name)
            tmp.rmdir()
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the model card ---------------------------------------------------------------------------------


def _cited(home: Home, weights) -> list[int]:
    """Ledger indices the card's facts come from: the run's start, gate decision, end, the
    datasets' registrations and every evaluation of these weights."""
    indices: set[int] = set()
    if weights.run_id is not None:
        for row in query.entries(home.storage, None, f"run:{weights.run_id}"):
            if row.type.startswith(("run.started/", "run.finished/", "run.requested/")):
                indices.add(row.idx)
        started = query.first(home.storage, "run.started/", f"run:{weights.run_id}")
        if started is not None:
            body = query.body(started)
            indices.add(body["decision_index"])
            for dataset in _datasets(home, body):
                indices.update(d.index for d in dataset if d is not None)
    indices.update(row.idx for row in query.entries(home.storage, "eval.completed/", f"model:{weights.digest}"))
    return sorted(indices)


def _datasets(home: Home, started: dict[str, Any]) -> list[tuple]:
    registry = DatasetRegistry(home)
    out = []
    for item in started.get("datasets", []):
        read = registry.find(item["ref"])
        source = registry.find(item["source"]) if item.get("source") else None
        out.append((read, source))
    return out


def _license(expressions: list[str]) -> tuple[str, str | None]:
    """The Hub's one lowercase SPDX id when every training dataset declares the same simple one."""
    unique = sorted(set(expressions))
    if not unique:
        return "unknown", None
    if len(unique) == 1 and all(c.isalnum() or c in ".-" for c in unique[0]):
        return unique[0].lower(), None
    return "other", " AND ".join(f"({e})" if " " in e else e for e in unique)


def _sum_emissions(*bodies: dict | None) -> dict[str, float]:
    keys = ("energy_kwh", "emissions_kg_co2e", "water_l", "duration_s")
    return {k: sum(float(b[k]) for b in bodies if measured(b)) for k in keys}


def model_card(home: Home, weights, config, tokenizer_digest: str, note: str, size: int, cited: list[int]) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    started = finished = None
    if weights.run_id is not None:
        row = query.first(home.storage, "run.started/", f"run:{weights.run_id}")
        started = (row.idx, query.body(row)) if row is not None else None
        row = query.latest(home.storage, "run.finished/", f"run:{weights.run_id}")
        finished = (row.idx, query.body(row)) if row is not None else None
    datasets = []
    licenses = []
    for item, (read, source) in zip(
        started[1]["datasets"] if started else [], _datasets(home, started[1]) if started else [], strict=True
    ):
        declared = None
        for reg in (read, source):
            if reg is not None and reg.card.license.declared:
                declared = reg.card.license.declared
                break
        if declared:
            licenses.append(declared)
        datasets.append(
            {
                "ref": item["ref"],
                "sha256": item["digest"],
                "ledger_index": read.index if read is not None else None,
                "source": item.get("source"),
                "source_sha256": item.get("source_digest"),
                "license": declared,
            }
        )
    training = finished[1]["emissions"] if finished else None
    preparation = started[1].get("preparation_emissions") if started else None
    total = _sum_emissions(training, preparation)
    evaluations = [
        {
            "evalset": body["evalset"],
            "evalset_sha256": body["evalset_digest"],
            "task": body["task"],
            "records": body["records"],
            "results": body["results"],
            "ledger_index": idx,
        }
        for idx, body in (
            (row.idx, query.body(row))
            for row in query.entries(home.storage, "eval.completed/", f"model:{weights.digest}")
        )
    ]
    license_id, license_name = _license(licenses)
    run_name = started[1]["name"] if started else weights.run_id or weights.digest[:16]
    custody = {
        "model_sha256": weights.digest,
        "run_id": weights.run_id,
        "run_kind": weights.kind,
        "tokenizer_sha256": tokenizer_digest,
        "datasets": datasets,
        "run_entries": {
            "run.started": started[0] if started else None,
            "run.finished": finished[0] if finished else None,
            "policy.decision": started[1]["decision_index"] if started else None,
        },
        "energy": {
            "training": training,
            "preparation": preparation,
            "total_energy_kwh": total["energy_kwh"],
            "total_emissions_kg_co2e": total["emissions_kg_co2e"],
            "total_water_l": total["water_l"],
        },
        "evaluations": evaluations,
        "ledger": {
            "origin": home.config.origin,
            "tree_size": size,
            "checkpoint": note,
            "cited_entries": [{"index": i, "leaf_hash": home.ledger.entry(i).leaf_hash.hex()} for i in cited],
        },
        "gpt2_mapping": {
            "biases": "as trained" if config.bias else "zeros (the custody model has none)",
            "activation_function": "gelu (exact erf)",
            "tied_head": tied(config),
        },
    }
    co2 = None
    if measured(training):
        co2 = {
            "emissions": round(total["emissions_kg_co2e"] * 1000, 6),  # grams, as the Hub's field is
            "source": training["tracker"],
            "training_type": "pre-training" if weights.kind == "pretrain" else "fine-tuning",
            "geographical_location": training["country_iso_code"],
            "hardware_used": started[1]["device"] if started else None,
        }
    data = ModelCardData(
        license=license_id,
        license_name=license_name,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["custody", "gpt2"],
        datasets=[d["ref"] for d in datasets] or None,
        co2_eq_emissions=co2,
        custody=custody,
    )
    text = f"---\n{data.to_yaml()}\n---\n\n{_body(run_name, weights, config, custody)}"
    ModelCard(text)  # parse it back: a card the Hub's own parser rejects is never written
    return text


def _body(run_name: str, weights, config, custody: dict[str, Any]) -> str:
    lines = [
        f"# {run_name}",
        "",
        f"A {config.n_layer}-layer, {config.n_embd}-wide GPT trained by custody "
        f"(run `{weights.run_id}`, {weights.kind}), exported as GPT2LMHeadModel. Weights sha256 `{weights.digest}`.",
        "",
        "```python",
        "from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast",
        'model = GPT2LMHeadModel.from_pretrained("DIR")',
        'tokenizer = PreTrainedTokenizerFast.from_pretrained("DIR")',
        "```",
        "",
        "## Training data",
        "",
        "| dataset | sha256 | prepared from | license | ledger index |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in custody["datasets"]:
        lines.append(
            f"| {d['ref']} | `{d['sha256']}` | {d['source'] or '–'} | {d['license'] or 'not declared'} | "
            f"{d['ledger_index'] if d['ledger_index'] is not None else '–'} |"
        )
    energy = custody["energy"]
    lines += [
        "",
        "## Energy and emissions",
        "",
        f"- Training and preparation: {energy['total_energy_kwh'] * 1000:.4f} Wh, "
        f"{energy['total_emissions_kg_co2e'] * 1000:.4f} g CO2e, {energy['total_water_l']:.4f} L water",
        "",
        "## Evaluations",
        "",
    ]
    if not custody["evaluations"]:
        lines.append("- none recorded for these weights")
    for e in custody["evaluations"]:
        overall = e["results"].get("all", {})
        shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in overall.items())
        lines.append(f"- {e['evalset']} ({e['task']}, ledger index {e['ledger_index']}): {shown}")
    lines += [
        "",
        "## Proof",
        "",
        f"Every fact above comes from the entries cited in the metadata (`custody.ledger.cited_entries`), "
        f"each included in the signed checkpoint of ledger size {custody['ledger']['tree_size']} below; "
        "`provenance.json` holds each entry's bytes and inclusion proof.",
        "",
        "```",
        custody["ledger"]["checkpoint"].rstrip(),
        "```",
        "",
        "## Differences from GPT-2",
        "",
        "None in function: the same architecture computes the same logits. Stored differently: "
        f"biases {custody['gpt2_mapping']['biases']}, exact GELU (`activation_function: gelu`), "
        "and custody's tokenizer (byte-level BPE, its own vocabulary), not GPT-2's. custody encodes "
        "the text `<|endoftext|>` as plain characters; Hugging Face tokenizers read it as the special token.",
        "",
    ]
    return "\n".join(lines)
