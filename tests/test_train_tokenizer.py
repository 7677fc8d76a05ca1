"""Byte-level BPE: deterministic training (same digest across processes and thread counts), lossless
round trips on real and unusual text, special tokens that data cannot inject, digest-checked
loading, and `custody tokenize`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.train.tokenizer import (
    EOT,
    TokenizerDigestMismatch,
    TokenizerError,
    load_tokenizer,
    train_tokenizer,
)
from train_support import CORPUS, speeches

TRAIN_IN_CHILD = """
from custody.train.tokenizer import train_tokenizer
text = open({corpus!r}, encoding="utf-8").read()
texts = [p.strip() for p in text.split("\\n\\n") if p.strip()][:1500]
print(train_tokenizer(texts, vocab_size=600).digest)
"""


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return speeches(1500)


@pytest.fixture(scope="module")
def tok(texts):
    return train_tokenizer(texts, vocab_size=600)


def test_training_is_deterministic_across_processes_and_threads(tok, texts) -> None:
    again = train_tokenizer(texts, vocab_size=600)
    assert again.digest == tok.digest and again.data == tok.data
    for env in ({"PYTHONHASHSEED": "1", "RAYON_NUM_THREADS": "1"}, {"PYTHONHASHSEED": "2", "RAYON_NUM_THREADS": "2"}):
        out = subprocess.run(
            [sys.executable, "-c", TRAIN_IN_CHILD.format(corpus=str(CORPUS))],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == tok.digest


def test_other_data_or_settings_give_another_digest(tok, texts) -> None:
    assert train_tokenizer(texts[:-1], vocab_size=600).digest != tok.digest
    assert train_tokenizer(texts, vocab_size=601).digest != tok.digest


def test_round_trip_is_lossless(tok, texts) -> None:
    unusual = [
        "  leading and trailing spaces  ",
        "tabs\tand\nnewlines\r\n",
        "Ünïcödé, 日本語, emoji 🎭🗡️, RTL שלום",
        "\x00 control \x7f bytes",
        "",
    ]
    for text in texts[:200] + unusual:
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode_batch(texts[:5]) == [tok.encode(t) for t in texts[:5]]


def test_learned_merges_compress_english(tok, texts) -> None:
    sample = "\n".join(texts[:100])
    assert len(tok.encode(sample)) < len(sample.encode("utf-8")) / 2
    assert tok.vocab_size == 600


def test_end_of_text_is_a_single_id_and_data_cannot_inject_it(tok) -> None:
    assert tok.tokens([tok.eot_id]) == [EOT]
    injected = tok.encode(f"first{EOT}second")
    assert tok.eot_id not in injected
    assert tok.decode(injected) == f"first{EOT}second"


def test_save_and_load_keep_the_digest(tok, tmp_path) -> None:
    path = tmp_path / "tok.json"
    assert tok.save(path) == tok.digest
    loaded = load_tokenizer(path, expected_digest=tok.digest)
    assert loaded.digest == tok.digest and loaded.encode("To be, or not") == tok.encode("To be, or not")
    assert load_tokenizer(path, expected_digest=f"sha256:{tok.digest}").digest == tok.digest


def test_load_refuses_other_bytes_and_bad_files(tok, tmp_path) -> None:
    path = tmp_path / "tok.json"
    tok.save(path)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=1))  # same tokenizer, other bytes
    with pytest.raises(TokenizerDigestMismatch, match="expected"):
        load_tokenizer(path, expected_digest=tok.digest)
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not a Hugging Face tokenizer"):
        load_tokenizer(tmp_path / "junk.json")
    with pytest.raises(TokenizerError, match="vocab_size"):
        train_tokenizer(["x"], vocab_size=100)


def test_cli_tokenize_encodes_and_decodes(tok, tmp_path) -> None:
    path = tmp_path / "tok.json"
    tok.save(path)
    runner = CliRunner()
    encoded = runner.invoke(app, ["tokenize", "--tokenizer", str(path), "--encode", "To be, or not to be", "--json"])
    assert encoded.exit_code == 0, encoded.output
    result = json.loads(encoded.stdout)
    assert result["ids"] == tok.encode("To be, or not to be")
    assert result["digest"] == tok.digest and len(result["tokens"]) == len(result["ids"])
    ids = " ".join(map(str, result["ids"]))
    decoded = runner.invoke(app, ["tokenize", "--tokenizer", str(path), "--decode", ids])
    assert decoded.exit_code == 0 and "To be, or not to be" in decoded.stdout
    plain = runner.invoke(app, ["tokenize", "--tokenizer", str(path), "--encode", "To be"])
    assert plain.exit_code == 0 and tok.digest in plain.stdout


def test_cli_tokenize_errors_are_one_line_with_exit_2(tok, tmp_path) -> None:
    path = tmp_path / "tok.json"
    tok.save(path)
    runner = CliRunner()
    cases = [
        ["tokenize", "--tokenizer", str(tmp_path / "nope.json"), "--encode", "x"],
        ["tokenize", "--tokenizer", str(path)],
        ["tokenize", "--tokenizer", str(path), "--encode", "x", "--decode", "1"],
        ["tokenize", "--tokenizer", str(path), "--decode", "1,two"],
        ["tokenize", "--tokenizer", str(path), "--decode", "99999"],
        ["tokenize", "--tokenizer", str(path), "--encode", "x", "--expect-digest", "0" * 64],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output
