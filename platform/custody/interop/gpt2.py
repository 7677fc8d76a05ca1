"""custody's GPT as Hugging Face's GPT2LMHeadModel: the same function, tensor for tensor.

The two are the same architecture (pre-norm blocks, learned positions, a 4x GELU MLP, the head
tied to the token embedding); what differs is only how the tensors are stored:

- GPT-2 keeps its projections in `Conv1D`, whose weight is the transpose of `nn.Linear`'s;
- GPT-2 always has biases: custody's `bias = False` models are written with zero biases, which
  compute exactly the same thing;
- custody's GELU is exact (erf), so the config says `activation_function = "gelu"`, not GPT-2's
  own tanh approximation `gelu_new`; LayerNorm's epsilon is torch's default, 1e-5 (GPT-2's too);
- attention is scaled by 1/sqrt(head_dim) in both; `n_positions` is custody's `block_size`.

A head that `replace_head` made smaller or larger than the vocabulary (a reward model's single
output, a classifier's classes) has no place in GPT2LMHeadModel, whose head is vocab-sized: such
weights are refused, never written as something they are not. A replaced head of the vocabulary's
size is exported untied (`lm_head.weight`, `tie_word_embeddings = false`).
"""

from __future__ import annotations

from typing import Any

import torch

from custody.train.model import GPTConfig

LINEAR = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # Conv1D in GPT-2: weights transposed
NORMS = ("ln_1", "ln_2")


class NotExportable(ValueError):
    """Weights that GPT2LMHeadModel cannot hold as they are."""


def check_exportable(config: GPTConfig) -> None:
    if config.head_size == 1:
        raise NotExportable(
            "the weights are a reward model (one output, a score): not a language model, "
            "so not exportable as GPT2LMHeadModel"
        )
    if config.head_size is not None and config.head_size != config.vocab_size:
        raise NotExportable(
            f"the model's head was replaced ({config.head_size} outputs over a {config.vocab_size}-token "
            "vocabulary): GPT2LMHeadModel's head is vocabulary-sized, so it cannot hold these weights"
        )


def tied(config: GPTConfig) -> bool:
    return config.head_size is None


def hf_config(config: GPTConfig, eot_id: int) -> dict[str, Any]:
    """config.json for GPT2LMHeadModel with the same shapes and the same function."""
    check_exportable(config)
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": 4 * config.n_embd,
        "activation_function": "gelu",  # exact erf GELU, as torch's nn.GELU(); not gelu_new
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "use_cache": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "tie_word_embeddings": tied(config),
        "torch_dtype": "float32",
    }


def hf_state(state: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """GPT2LMHeadModel's tensors (float32, contiguous) from custody's state dict."""
    check_exportable(config)

    def get(name: str) -> torch.Tensor:
        if name not in state:
            raise NotExportable(f"the checkpoint has no tensor {name}: not a custody GPT of this config")
        return state[name].detach().to("cpu", torch.float32)

    def bias_of(name: str, size: int) -> torch.Tensor:
        return get(name) if config.bias else torch.zeros(size, dtype=torch.float32)

    E = config.n_embd
    out = {
        "transformer.wte.weight": get("transformer.wte.weight"),
        "transformer.wpe.weight": get("transformer.wpe.weight"),
        "transformer.ln_f.weight": get("transformer.ln_f.weight"),
        "transformer.ln_f.bias": bias_of("transformer.ln_f.bias", E),
    }
    for i in range(config.n_layer):
        ours, theirs = f"transformer.h.{i}", f"transformer.h.{i}"
        for norm in NORMS:
            out[f"{theirs}.{norm}.weight"] = get(f"{ours}.{norm}.weight")
            out[f"{theirs}.{norm}.bias"] = bias_of(f"{ours}.{norm}.bias", E)
        for linear in LINEAR:
            weight = get(f"{ours}.{linear}.weight")  # (out, in) in nn.Linear
            out[f"{theirs}.{linear}.weight"] = weight.t()  # (in, out) in Conv1D
            out[f"{theirs}.{linear}.bias"] = bias_of(f"{ours}.{linear}.bias", weight.shape[0])
    if not tied(config):
        out["lm_head.weight"] = get("lm_head.weight")
    return {name: tensor.contiguous() for name, tensor in out.items()}
