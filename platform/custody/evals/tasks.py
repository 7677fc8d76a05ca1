"""Scoring a model on evaluation records, by task shape. Pure functions of the model and the records.

- **loss**: next-token negative log-likelihood per labelled slice, token-weighted, and perplexity.
  Each record is scored on its own, after an end-of-text token (as training separates documents),
  in non-overlapping windows of the model's block size (a window's first token sees no earlier
  window: the usual "non-overlapping" evaluation, an upper bound on a sliding one).
- **multiple-choice**: the prompt's tokens, then each choice's tokens (encoded apart, so every
  choice is scored after the same context); the choice with the highest log-likelihood is the
  model's answer (`accuracy`), and with the log-likelihood divided by the choice's length in
  characters (`accuracy_norm`, as lm-evaluation-harness's acc_norm: long choices are not punished
  for having more tokens). Choices that continue the prompt's text carry their own leading space.
- **classification**: a classifier's probability of the positive class; accuracy and F1 at 0.5,
  ROC-AUC where both classes occur.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from custody.evalsets.records import ALL, EvalRecord


def _slices(records: Iterable[EvalRecord]) -> list[str]:
    return [ALL, *sorted({r.slice for r in records} - {ALL})]


def lm_loss(model: Any, tokenizer: Any, records: Sequence[EvalRecord]) -> dict[str, dict[str, Any]]:
    """Per slice: tokens scored, mean negative log-likelihood (nats per token), perplexity."""
    import torch
    import torch.nn.functional as F

    block = model.config.block_size
    nll: dict[str, float] = defaultdict(float)
    tokens: dict[str, int] = defaultdict(int)
    model.eval()
    with torch.no_grad():
        for record in records:
            ids = [tokenizer.eot_id, *tokenizer.encode(record.text)]
            total, count = 0.0, 0
            for start in range(0, len(ids) - 1, block):
                window = torch.tensor(ids[start : start + block + 1]).unsqueeze(0)
                logits, _ = model(window[:, :-1])
                total += F.cross_entropy(logits[0], window[0, 1:], reduction="sum").item()
                count += window.size(1) - 1
            for name in (ALL, record.slice):
                nll[name] += total
                tokens[name] += count
    return {
        name: {
            "records": sum(1 for r in records if name in (ALL, r.slice)),
            "tokens": tokens[name],
            "nll": round(nll[name] / tokens[name], 6) if tokens[name] else None,
            "perplexity": round(math.exp(nll[name] / tokens[name]), 4) if tokens[name] else None,
        }
        for name in _slices(records)
    }


def choice_log_likelihoods(model: Any, tokenizer: Any, prompt: str, choices: Sequence[str]) -> list[float]:
    """log P(choice | prompt) for each choice, summed over the choice's tokens."""
    import torch
    import torch.nn.functional as F

    block = model.config.block_size
    context = [tokenizer.eot_id, *tokenizer.encode(prompt)]
    scores = []
    model.eval()
    with torch.no_grad():
        for choice in choices:
            continuation = tokenizer.encode(choice)
            ids = (context + continuation)[-(block + 1) :]  # the most recent context that fits
            window = torch.tensor(ids).unsqueeze(0)
            logits, _ = model(window[:, :-1])
            log_probs = F.log_softmax(logits[0], dim=-1)
            targets = window[0, 1:]
            picked = log_probs[-len(continuation) :].gather(1, targets[-len(continuation) :].unsqueeze(1))
            scores.append(float(picked.sum()) if continuation else 0.0)
    return scores


def multiple_choice(model: Any, tokenizer: Any, records: Sequence[EvalRecord]) -> dict[str, dict[str, Any]]:
    """Per slice: records, accuracy and length-normalised accuracy."""
    right: dict[str, int] = defaultdict(int)
    right_norm: dict[str, int] = defaultdict(int)
    for record in records:
        scores = choice_log_likelihoods(model, tokenizer, record.text, record.choices or ())
        normalised = [s / max(len(c), 1) for s, c in zip(scores, record.choices or (), strict=True)]
        best, best_norm = _argmax(scores), _argmax(normalised)
        for name in (ALL, record.slice):
            right[name] += best == record.answer
            right_norm[name] += best_norm == record.answer
    return _rates(records, {"accuracy": right, "accuracy_norm": right_norm})


def classification(probabilities: Callable[[list[str]], Sequence[float]], records: Sequence[EvalRecord]) -> dict:
    """Per slice: records, positives, accuracy and F1 at 0.5, ROC-AUC (None with one class only)."""
    from sklearn.metrics import f1_score, roc_auc_score

    scores = list(probabilities([r.text for r in records]))
    out = {}
    for name in _slices(records):
        chosen = [(r.label, p) for r, p in zip(records, scores, strict=True) if name in (ALL, r.slice)]
        labels = [int(label) for label, _ in chosen]
        predicted = [int(p >= 0.5) for _, p in chosen]
        out[name] = {
            "records": len(chosen),
            "positives": sum(labels),
            "accuracy": round(sum(a == b for a, b in zip(labels, predicted, strict=True)) / len(chosen), 6),
            "f1": round(float(f1_score(labels, predicted, zero_division=0)), 6),
            "roc_auc": round(float(roc_auc_score(labels, [p for _, p in chosen])), 6)
            if 0 < sum(labels) < len(labels)
            else None,
        }
    return out


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])


def _rates(records: Sequence[EvalRecord], counts: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in _slices(records):
        n = sum(1 for r in records if name in (ALL, r.slice))
        out[name] = {"records": n, **{metric: round(c[name] / n, 6) for metric, c in counts.items()}}
    return out
