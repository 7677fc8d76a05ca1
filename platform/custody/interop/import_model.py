"""`custody import-model DIR --source WHERE`: an outside Hugging Face GPT-2 folder registered with
its digest, provenance and license, as a custody checkpoint in the artifact store.

The folder must be one custody's GPT computes exactly (gpt2.py, in reverse): `GPT2LMHeadModel`
with exact GELU (`activation_function: gelu`; GPT-2's own `gelu_new` would change the outputs),
LayerNorm epsilon 1e-5, plain 1/sqrt(head_dim) attention, a 4x MLP, and a `tokenizer.json` with
`<|endoftext|>`. Its license comes from `--license` or the card's `license` field and must be an
SPDX expression custody can place in a category: a model of unknown license is refused.

Recorded as `model.imported/v1` (subject `model:SHA256` of the custody checkpoint), naming the
folder's manifest digest (each file's sha256, as `model.exported/v1`), the source, the license
and its category. Importing the same folder again records nothing.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.home import Home
from custody.interop import entry_types  # noqa: F401  registers model.imported/v1
from custody.interop.export_model import ExportError, file_entries, manifest_digest, safetensors_digest
from custody.interop.gpt2 import LINEAR, NORMS
from custody.ledger import query

UNKNOWN = "unknown"


class ModelImportError(ExportError):
    """A folder that cannot be imported as it is; nothing is recorded."""


@dataclass(frozen=True)
class ModelImport:
    model_digest: str
    tokenizer_digest: str
    manifest_digest: str
    license: str
    license_category: str
    ledger_index: int
    already: bool


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelImportError(f"{folder} has no config.json: not a Hugging Face model folder") from None
    except (OSError, ValueError) as exc:
        raise ModelImportError(f"{path} is not readable JSON ({exc})") from None
    if config.get("model_type") != "gpt2":
        raise ModelImportError(f"{path}: model_type {config.get('model_type')!r}; custody imports gpt2 models only")
    E = config.get("n_embd", 768)
    fits = {
        "activation_function": (config.get("activation_function", "gelu_new"), "gelu"),
        "layer_norm_epsilon": (config.get("layer_norm_epsilon", 1e-5), 1e-5),
        "scale_attn_weights": (config.get("scale_attn_weights", True), True),
        "scale_attn_by_inverse_layer_idx": (config.get("scale_attn_by_inverse_layer_idx", False), False),
        "n_inner": (config.get("n_inner") or 4 * E, 4 * E),
    }
    for name, (value, wanted) in fits.items():
        if value != wanted:
            raise ModelImportError(
                f"{path}: {name} is {value!r}, custody's GPT computes {wanted!r}: importing it would change its outputs"
            )
    return config


def _license(folder: Path, given: str | None) -> tuple[str, str]:
    from custody.licenses.categories import category_of_expression

    expression = given
    if expression is None and (folder / "README.md").is_file():
        import yaml

        text = (folder / "README.md").read_text(encoding="utf-8")
        if text.startswith("---\n") and "\n---" in text[4:]:
            meta = yaml.safe_load(text[4 : text.index("\n---", 4)]) or {}
            expression = meta.get("license_name") if meta.get("license") == "other" else meta.get("license")
    if not expression or str(expression).lower() == "unknown":
        raise ModelImportError(f"{folder} declares no license (README.md `license`): give --license SPDX-EXPRESSION")
    category = category_of_expression(str(expression))
    if category == UNKNOWN:
        raise ModelImportError(
            f"license {expression!r} is not an SPDX expression custody can categorise: give --license SPDX-EXPRESSION"
        )
    return str(expression), category


def import_model(home: Home, folder: Path, source: str, license: str | None = None, actor: Any = None) -> ModelImport:
    import torch
    from safetensors.torch import load

    from custody.train.checkpoint import save_checkpoint
    from custody.train.model import GPT, GPTConfig
    from custody.train.tokenizer import TokenizerError, load_tokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelImportError(f"{folder} is not a folder")
    if not source.strip():
        raise ModelImportError("--source must say where the model came from (a URL or a name)")
    config = _config(folder)
    expression, category = _license(folder, license)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelImportError(f"{folder} has no model.safetensors (custody imports safetensors only, never pickles)")
    try:
        safetensors_digest(weights, "fetch it again from its source")
    except ExportError as exc:
        raise ModelImportError(str(exc)) from None
    tensors = load(weights.read_bytes())
    try:
        tokenizer = load_tokenizer(folder / "tokenizer.json")
    except (TokenizerError, OSError, ValueError) as exc:
        raise ModelImportError(f"{folder}/tokenizer.json: {str(exc).splitlines()[0]}") from None

    tensors = {k.removeprefix("transformer."): v.to(torch.float32) for k, v in tensors.items()}
    tied = config.get("tie_word_embeddings", True)
    n_layer = config.get("n_layer", 12)
    biases = [tensors.get(f"h.{i}.{m}.bias") for i in range(n_layer) for m in (*LINEAR, *NORMS)]
    bias = not all(b is not None and not b.any() for b in [*biases, tensors.get("ln_f.bias")])
    try:
        gpt_config = GPTConfig(
            vocab_size=config["vocab_size"],
            block_size=config.get("n_positions", 1024),
            n_layer=n_layer,
            n_head=config.get("n_head", 12),
            n_embd=config.get("n_embd", 768),
            dropout=0.0,
            bias=bias,
            head_size=None if tied else config["vocab_size"],
        )
        state = {
            "transformer.wte.weight": tensors["wte.weight"],
            "transformer.wpe.weight": tensors["wpe.weight"],
            "transformer.ln_f.weight": tensors["ln_f.weight"],
        }
        if bias:
            state["transformer.ln_f.bias"] = tensors["ln_f.bias"]
        for i in range(n_layer):
            for norm in NORMS:
                state[f"transformer.h.{i}.{norm}.weight"] = tensors[f"h.{i}.{norm}.weight"]
                if bias:
                    state[f"transformer.h.{i}.{norm}.bias"] = tensors[f"h.{i}.{norm}.bias"]
            for linear in LINEAR:
                state[f"transformer.h.{i}.{linear}.weight"] = tensors[f"h.{i}.{linear}.weight"].t().contiguous()
                if bias:
                    state[f"transformer.h.{i}.{linear}.bias"] = tensors[f"h.{i}.{linear}.bias"]
        state["lm_head.weight"] = state["transformer.wte.weight"] if tied else tensors["lm_head.weight"]
        model = GPT(gpt_config)
        model.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelImportError(f"{weights} does not fit its config.json ({str(exc).splitlines()[0]})") from None
    if tokenizer.vocab_size > gpt_config.vocab_size:
        raise ModelImportError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {gpt_config.vocab_size}"
        )

    files = file_entries(folder)
    manifest = manifest_digest(files)
    for row in query.entries(home.storage, "model.imported/"):
        body = query.body(row)
        if body["manifest_digest"] == manifest:
            return ModelImport(
                body["model_digest"], body["tokenizer_digest"], manifest, body["license"],
                body["license_category"], row.idx, True,
            )  # fmt: skip
    tokenizer_digest = home.store.put_bytes(tokenizer.data)
    checkpoint_state = {
        "model": model.state_dict(),
        "model_config": gpt_config.as_json(),
        "step": 0,
        "meta": {"tokenizer_digest": tokenizer_digest, "imported_manifest_digest": manifest, "source": source},
    }
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "imported.pt"
        save_checkpoint(checkpoint_state, path)
        model_digest = home.store.put_file(path)
    body = {
        "model_digest": model_digest,
        "tokenizer_digest": tokenizer_digest,
        "format": "hf-gpt2",
        "manifest_digest": manifest,
        "files": files,
        "source": source,
        "license": expression,
        "license_category": category,
    }
    refs = [f"sha256:{model_digest}", f"sha256:{tokenizer_digest}"]
    index = home.record("model.imported/v1", f"model:{model_digest}", body, refs=refs, actor=actor)
    return ModelImport(model_digest, tokenizer_digest, manifest, expression, category, index, False)
