"""`custody export-model RUN_OR_CHECKPOINT --format hf --out DIR`: weights other tools can load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    WeightsArgument,
    acting,
    console,
    fail,
    opened,
    print_json,
)


def export_model_command(
    target: WeightsArgument,
    out: Annotated[Path, typer.Option("--out", help="the folder to write (new, empty, or this model's export)")],
    fmt: Annotated[str, typer.Option("--format", help="hf: Hugging Face GPT2LMHeadModel layout")] = "hf",
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Export a language model as safetensors, config, tokenizer and a ledger-proved model card;
    record the folder's manifest digest as `model.exported` (docs/interop.md).

    Exit 0 written and recorded (or already there); 2 bad input (unknown weights, changed bytes,
    a reward model, a folder holding another model or a corrupt one): nothing recorded.
    """
    from custody.interop.export_model import ExportError, export_model

    with opened(home, database) as h:
        who = acting(h, key, actor, "export-model")
        try:
            done = export_model(h, target, out, fmt, who)
        except ExportError as exc:
            fail(str(exc))
    if as_json:
        print_json(
            {
                "out": str(done.out),
                "model_digest": done.model_digest,
                "run_id": done.run_id,
                "manifest_digest": done.manifest_digest,
                "files": done.files,
                "ledger_index": done.ledger_index,
                "already": done.already,
            }
        )
        return
    what = "already holds" if done.already else "now holds"
    console.print(
        f"{done.out} {what} sha256 {done.model_digest[:16]}… "
        f"({'run ' + done.run_id if done.run_id else 'no run'}) as GPT2LMHeadModel"
    )
    for f in done.files:
        console.print(f"  {f['path']:<24} {f['bytes']:>12,} B  sha256 {f['sha256'][:16]}…")
    console.print(
        f"  recorded: model.exported at ledger index {done.ledger_index} (manifest sha256 {done.manifest_digest})"
    )


def import_model_command(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="a Hugging Face GPT-2 folder (safetensors)")],
    source: Annotated[str, typer.Option("--source", help="where the model came from: a URL or a name")],
    license: Annotated[
        str | None, typer.Option("--license", help="SPDX expression [default: the card's `license`]")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Register an outside GPT-2 model as a custody checkpoint with its digest, source and license;
    record `model.imported` (docs/interop.md).

    Exit 0 recorded (or already); 2 bad input (no or unknown license, a model custody's GPT does
    not compute exactly, a corrupt safetensors file): nothing recorded.
    """
    from custody.interop.import_model import ModelImportError, import_model

    with opened(home, database) as h:
        who = acting(h, key, actor, "import-model")
        try:
            done = import_model(h, folder, source, license, who)
        except ModelImportError as exc:
            fail(str(exc))
    if as_json:
        print_json({**done.__dict__})
        return
    what = "already registered" if done.already else "registered"
    console.print(
        f"{folder} {what} as sha256 {done.model_digest} (license {done.license}, {done.license_category}): "
        f"model.imported at ledger index {done.ledger_index}"
    )
