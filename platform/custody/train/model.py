"""A GPT-style decoder in one readable module, after karpathy/nanoGPT's model.py.

Pre-norm blocks of causal self-attention (`scaled_dot_product_attention`, flash kernels where the
hardware has them) and a GELU MLP; learned position embeddings; the output head tied to the token
embedding. Transfer learning changes the architecture in place and writes the change into the
config, so a checkpoint's config always rebuilds exactly the saved module:
`freeze_blocks` (training setting, not architecture), `add_blocks` (new layers on top) and
`replace_head` (a new, untied output layer of any size: a new vocabulary or classes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False  # biases in Linear and LayerNorm; False is a little faster and as good
    head_size: int | None = None  # outputs of the head; None: vocab_size, tied to the token embedding

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"model setting {name} must be at least 1")

    def as_json(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = replace(config)  # a copy: add_blocks and replace_head change it
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.head_size or config.vocab_size, bias=False)
        if config.head_size is None:
            self.lm_head.weight = self.transformer.wte.weight  # weight tying (Press & Wolf, 2017)
        self.apply(self._init_weights)
        for block in self.transformer.h:
            self._init_residual_projections(block)
        # Where the weights came from, recorded in every checkpoint: random init, or a checkpoint
        # digest followed by the transfer-learning changes made to it.
        self.origin: dict = {"init": "random", "changes": []}

    # -- initialisation, as in GPT-2 ------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def _init_residual_projections(self, block: Block) -> None:
        # Scaled so the residual stream's variance does not grow with depth (GPT-2 paper).
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    # -- forward --------------------------------------------------------------------------------
    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position and the mean cross-entropy against `targets` (ignore index -1)."""
        T = idx.size(1)
        if idx.size(1) > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size {self.config.block_size}")
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None
    ) -> torch.Tensor:
        """Sample continuations of `idx` (B, T); for demos and smoke tests, not serving."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size :])
            logits = logits[:, -1, :] / max(temperature, 1e-6)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
        return idx

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def tied(self) -> bool:
        return self.lm_head.weight is self.transformer.wte.weight

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters counted once (the tied head is the embedding); position embeddings excluded by default."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM appendix B: 6N + 12·L·H·Q·T."""
        c = self.config
        T = seq_len or c.block_size
        return 6 * self.num_params() + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * T

    def mfu(self, tokens_per_s: float, peak_flops: float, seq_len: int | None = None) -> float:
        """Model FLOPs utilisation: achieved training FLOP/s over the hardware's peak."""
        return self.flops_per_token(seq_len) * tokens_per_s / peak_flops

    # -- transfer learning ----------------------------------------------------------------------
    def freeze_blocks(self, indices: Iterable[int]) -> list[int]:
        """Stop gradients to the given blocks (negative indices count from the top); returns them sorted."""
        n = len(self.transformer.h)
        frozen = set()
        for i in indices:
            if not -n <= i < n:
                raise ValueError(f"block {i} does not exist (the model has blocks 0..{n - 1})")
            frozen.add(i % n)
        for i in frozen:
            self.transformer.h[i].requires_grad_(False)
        self.origin["changes"].append({"freeze_blocks": sorted(frozen)})
        return sorted(frozen)

    def freeze_embeddings(self) -> None:
        """Freeze token and position embeddings (and so the head too, while it is tied)."""
        self.transformer.wte.requires_grad_(False)
        self.transformer.wpe.requires_grad_(False)
        self.origin["changes"].append({"freeze_embeddings": True})

    def frozen_parameter_names(self) -> list[str]:
        return [name for name, p in self.named_parameters() if not p.requires_grad]

    def add_blocks(self, n: int) -> list[int]:
        """Append `n` freshly initialised blocks on top of the stack (under ln_f); returns their indices."""
        if n < 1:
            raise ValueError("add_blocks needs n >= 1")
        device = self.transformer.wte.weight.device
        start = len(self.transformer.h)
        self.config.n_layer = start + n
        for _ in range(n):
            block = Block(self.config).to(device)
            block.apply(self._init_weights)
            self._init_residual_projections(block)
            self.transformer.h.append(block)
        self.origin["changes"].append({"add_blocks": n})
        return list(range(start, start + n))

    def replace_head(self, n_out: int) -> None:
        """A new, untied output layer with `n_out` outputs (a new vocabulary, or classes)."""
        if n_out < 1:
            raise ValueError("replace_head needs n_out >= 1")
        device = self.transformer.wte.weight.device
        self.lm_head = nn.Linear(self.config.n_embd, n_out, bias=False).to(device)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)
        self.config.head_size = n_out
        self.origin["changes"].append({"replace_head": n_out})
