"""The PII scanner's fast paths give the spans its slow paths give, on the shared data.

Each shortcut of custody.pii (stepped NER, prefilters, ...) is compared against the plain way on
the same texts: the dev halves of the shared PII sets (samples, to keep this file fast; the full
sets are compared by bench/pii_ner.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.pii.evaluate import load_synth, load_wnut
from custody.pii.fast import FastScanner, ScannerConfig, get_scanner
from custody.pii.ner import pipe as ner_pipe

SAMPLE = 200


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    synth = load_synth(shared_data).texts[:SAMPLE]
    wnut = load_wnut(shared_data).texts[:SAMPLE]
    prose = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:6000]
    return synth + wnut + [prose, "", " ", "x", "John", "A. B. C."]


@pytest.fixture(scope="module")
def scanner() -> FastScanner:
    return get_scanner(ScannerConfig())


def _ents(docs) -> list[list[tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]


@pytest.fixture(scope="module")
def stock_ents(scanner, texts) -> list:
    return _ents(scanner.nlp.pipe(texts, batch_size=64, disable=scanner.disabled))


@pytest.mark.parametrize("batch_size", [1, 7, 64, 128])
def test_stepped_ner_equals_nlp_pipe(scanner, texts, stock_ents, batch_size):
    """Same entities as spaCy's nlp.pipe, whatever the batch size (so batching never changes spans)."""
    stepped = ner_pipe(scanner.nlp, texts, scanner.enabled, batch_size)
    assert _ents(stepped) == stock_ents
    assert sum(map(len, stock_ents)) > 100  # entities were found, so the comparison means something


def test_stepped_scanner_equals_nlp_pipe_scanner(scanner, texts):
    slow = FastScanner(scanner.config, stepped_ner=False)
    assert scanner.scan_batch(texts) == slow.scan_batch(texts)


def test_stepped_parser_equals_nlp_pipe(texts):
    """sentences="parser": the parser is transition-based too, and also stepped."""
    fast = FastScanner(ScannerConfig(sentences="parser"))
    slow = FastScanner(fast.config, stepped_ner=False)
    sample = texts[:80] + texts[SAMPLE : SAMPLE + 80]
    stepped = ner_pipe(fast.nlp, sample, fast.enabled, 16)
    stock = list(fast.nlp.pipe(sample, batch_size=16, disable=fast.disabled))
    assert _ents(stepped) == _ents(stock)
    assert [[t.is_sent_start for t in d] for d in stepped] == [[t.is_sent_start for t in d] for d in stock]
    assert fast.scan_batch(sample) == slow.scan_batch(sample)


def test_pool_with_defaults_equals_the_slow_path_in_one_process(scanner, texts):
    """The check's way (a pool of 2, chunks and NER batches of 128, stepped NER) against the plain
    way in one process (nlp.pipe, chunks and batches of 64, as before issue 23)."""
    from custody.pii.fast import ParallelScanner

    slow = FastScanner(ScannerConfig(**{**scanner.config.__dict__, "batch_size": 64}), stepped_ner=False)
    with ParallelScanner(scanner.config, processes=2) as pool:
        assert pool.chunk_size == 128
        assert list(pool.scan(texts)) == list(slow.scan(texts, chunk_size=64))
