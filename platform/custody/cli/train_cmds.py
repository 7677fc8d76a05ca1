"""`custody tokenize`: encode or decode text with a tokenizer file, for inspection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import JsonOption, console, fail, print_json


def tokenize(
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="tokenizer JSON file (Hugging Face format)")],
    encode: Annotated[str | None, typer.Option("--encode", help="text to encode")] = None,
    decode: Annotated[str | None, typer.Option("--decode", help="token ids to decode, e.g. '464 3290 11'")] = None,
    expect_digest: Annotated[
        str | None, typer.Option("--expect-digest", help="refuse a tokenizer whose SHA-256 is not this")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show how a tokenizer splits text into ids and tokens, or what ids decode to."""
    from custody.train.tokenizer import TokenizerError, load_tokenizer

    if (encode is None) == (decode is None):
        fail("give exactly one of --encode TEXT or --decode IDS")
    try:
        tok = load_tokenizer(tokenizer, expect_digest)
    except TokenizerError as exc:
        fail(str(exc))
    if encode is not None:
        ids = tok.encode(encode)
        tokens = tok.tokens(ids)
        if as_json:
            print_json({"digest": tok.digest, "ids": ids, "tokens": tokens, "count": len(ids)})
            return
        console.print(f"tokenizer sha256:{tok.digest} ({tok.vocab_size} tokens)")
        console.print(f"{len(ids)} tokens: {' '.join(map(str, ids))}")
        console.print(" | ".join(tokens))
        return
    parts = [p for p in re.split(r"[\s,]+", decode.strip().strip("[]")) if p]
    bad = next((p for p in parts if not p.isdigit()), None)
    if bad is not None or not parts:
        fail(f"--decode: {bad!r} is not a token id (give non-negative integers separated by spaces or commas)")
    ids = [int(p) for p in parts]
    too_big = next((i for i in ids if i >= tok.vocab_size), None)
    if too_big is not None:
        fail(f"--decode: token id {too_big} is outside the vocabulary (0..{tok.vocab_size - 1})")
    text = tok.decode(ids)
    if as_json:
        print_json({"digest": tok.digest, "ids": ids, "tokens": tok.tokens(ids), "text": text})
        return
    console.print(text)
