"""The GPT module: shapes, causality, weight tying, sizes and FLOPs, and transfer-learning surgery that
its config can always rebuild."""

from __future__ import annotations

import pytest
import torch

from custody.train.model import GPT, GPTConfig
from train_support import tiny_gpt, torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_forward_shapes_and_loss_at_init_is_near_uniform() -> None:
    model = tiny_gpt(vocab=512, block=32)
    x, y = torch.randint(0, 512, (4, 32)), torch.randint(0, 512, (4, 32))
    logits, loss = model(x, y)
    assert logits.shape == (4, 32, 512)
    assert loss is not None and abs(loss.item() - torch.log(torch.tensor(512.0)).item()) < 0.1
    logits, loss = model(x[:, :10])
    assert logits.shape == (4, 10, 512) and loss is None
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_attention_is_causal() -> None:
    model = tiny_gpt().eval()
    x = torch.randint(0, 512, (1, 16))
    changed = x.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 512
    a, _ = model(x)
    b, _ = model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)  # the future does not leak into the past
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_head_is_tied_and_sizes_are_counted_once() -> None:
    model = tiny_gpt(vocab=512, block=32)
    assert model.tied and model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    c = model.config
    per_block = 12 * c.n_embd**2 + 2 * c.n_embd  # attention + MLP matrices, two LayerNorm weights
    expected = c.vocab_size * c.n_embd + c.n_layer * per_block + c.n_embd
    assert model.num_params() == expected
    assert model.num_params(non_embedding=False) == expected + c.block_size * c.n_embd
    assert model.flops_per_token() == 6 * expected + 12 * c.n_layer * c.n_embd * c.block_size
    assert model.mfu(1000.0, 1e12) == pytest.approx(model.flops_per_token() * 1000 / 1e12)


def test_same_seed_same_weights_and_config_is_copied() -> None:
    a, b = tiny_gpt(seed=3), tiny_gpt(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    config = GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=8)
    GPT(config).add_blocks(2)
    assert config.n_layer == 1  # surgery changes the model's copy, not the caller's


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(vocab_size=10, n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="at least 1"):
        GPTConfig(vocab_size=0)


def test_freeze_add_blocks_and_replace_head_are_rebuildable_from_the_config() -> None:
    model = tiny_gpt(n_layer=3)
    assert model.freeze_blocks([0, -2]) == [0, 1]
    frozen = model.frozen_parameter_names()
    assert frozen and all(name.startswith(("transformer.h.0.", "transformer.h.1.")) for name in frozen)
    with pytest.raises(ValueError, match="does not exist"):
        model.freeze_blocks([3])
    assert model.add_blocks(2) == [3, 4]
    model.replace_head(7)
    assert not model.tied and model.config.n_layer == 5 and model.config.head_size == 7
    logits, loss = model(torch.randint(0, 512, (2, 8)), torch.randint(0, 7, (2, 8)))
    assert logits.shape == (2, 8, 7) and loss is not None
    rebuilt = GPT(GPTConfig(**model.config.as_json()))
    rebuilt.load_state_dict(model.state_dict())  # strict: same parameters, same shapes
    assert [c for c in model.origin["changes"]] == [{"freeze_blocks": [0, 1]}, {"add_blocks": 2}, {"replace_head": 7}]
    model.freeze_embeddings()
    assert "transformer.wte.weight" in model.frozen_parameter_names()


def test_generate_extends_the_context() -> None:
    torch.manual_seed(0)
    out = tiny_gpt().generate(torch.zeros(1, 1, dtype=torch.long), max_new_tokens=40, top_k=10)
    assert out.shape == (1, 41) and int(out.max()) < 512
