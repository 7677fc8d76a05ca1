"""`custody tokenize`: encode or decode text with a tokenizer file, for inspection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import DatabaseOption, HomeOption, JsonOption, console, fail, opened, print_json


def tokenize(
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="a tokenizer JSON file (Hugging Face format)")
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="or the tokenizer a recorded run trained with (its run id)")
    ] = None,
    encode: Annotated[str | None, typer.Option("--encode", help="text to encode")] = None,
    decode: Annotated[str | None, typer.Option("--decode", help="token ids to decode, e.g. '464 3290 11'")] = None,
    expect_digest: Annotated[
        str | None, typer.Option("--expect-digest", help="refuse a tokenizer whose SHA-256 is not this")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show how a tokenizer splits text into ids and tokens, or what ids decode to.

    The tokenizer is a file, or the one a recorded run trained with (`--run ID`, from the home's
    store, checked against the digest its run.started entry records)."""
    from custody.train.tokenizer import TokenizerError, load_tokenizer

    if (encode is None) == (decode is None):
        fail("give exactly one of --encode TEXT or --decode IDS")
    if (tokenizer is None) == (run is None):
        fail("give exactly one of --tokenizer FILE or --run RUN_ID")
    if run is not None:
        tokenizer, expect_digest = _run_tokenizer(run, home, database)
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


def _run_tokenizer(run_id: str, home: Path | None, database: str | None) -> tuple[Path, str]:
    """The path of a recorded run's tokenizer in the store, and the digest it must have."""
    from custody.ledger.query import body, first

    with opened(home, database) as h:
        started = first(h.storage, "run.started/", f"run:{run_id}")
        if started is None:
            fail(f"--run {run_id}: no such run in this home (run ids are printed by `custody run`)")
        digest = body(started)["tokenizer_digest"]
        return h.store.path_for(digest), digest
