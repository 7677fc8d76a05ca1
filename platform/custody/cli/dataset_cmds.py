"""`custody dataset ...`: register, inspect and trace datasets."""

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
    acting,
    byte_progress,
    command_group,
    console,
    opened,
    print_json,
)
from custody.datasets.card import CARD_TEMPLATE, load_card
from custody.datasets.names import DatasetRef, check_name, check_version, parse_ref
from custody.datasets.readers import DEFAULT_MAX_RECORD_BYTES, Fields
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.wording import data_size, plural

app = command_group(help="Register and inspect datasets.", no_args_is_help=True)


def summary(ds: RegisteredDataset) -> dict:
    return {
        "dataset": str(ds.ref),
        "digest": ds.digest,
        "records": ds.manifest.records,
        "bytes": ds.manifest.bytes,
        "shards": [
            {"name": s.name, "format": s.format, "digest": s.digest, "bytes": s.bytes, "records": s.records}
            for s in ds.manifest.shards
        ],
        "documents": [{"name": d.name, "digest": d.digest, "bytes": d.bytes} for d in ds.manifest.documents],
        "in_place": ds.body.get("in_place", False),
        "registered_by": ds.actor,
        "registered_at": ds.ts,
        "ledger_index": ds.index,
        "card_digest": ds.body["card_digest"],
        "parents": ds.parents,
        "stage": ds.body.get("stage"),
        "title": ds.card.dataset.title,
        "declared_license": ds.card.license.declared,
    }


@app.command()
def register(
    paths: Annotated[list[Path], typer.Argument(help="files or folders of shards")],
    name: Annotated[str, typer.Option(help="dataset name")],
    version: Annotated[str, typer.Option(help="dataset version")],
    card: Annotated[Path, typer.Option(help="dataset card (TOML); see `custody dataset card-template`")],
    text_field: Annotated[str, typer.Option(help="field or column holding the text")] = "text",
    id_field: Annotated[
        str | None, typer.Option(help="field holding a stable record id [default: content hash]")
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="keep data where it is; re-verify digests on use")
    ] = False,
    max_record_bytes: Annotated[int, typer.Option(min=1, help="largest record accepted")] = DEFAULT_MAX_RECORD_BYTES,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="processes reading shards at once [default: one per core, from 32 MiB]"),
    ] = None,
    index: Annotated[
        bool,
        typer.Option("--index/--no-index", help="build its passage index for `custody find` now (else on first find)"),
    ] = True,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Register a dataset: hash and count every shard, store it, and record it in the ledger, signed
    with your key (role engineer): the registrant may not approve its findings. Its passage index
    (docs/takedown.md) is built and recorded too, unless --no-index."""
    with opened(home, database) as h:
        registrant = acting(h, key, actor, "register")
        ref = DatasetRef(check_name(name), check_version(version))
        parsed_card = load_card(card)
        total = sum(
            p.stat().st_size
            for root in paths
            if root.exists()
            for p in ([root] if root.is_file() else root.rglob("*"))
            if p.is_file()
        )
        with byte_progress(as_json) as bar:
            task = bar.add_task(f"registering {ref}", total=total or None)
            dataset, created = DatasetRegistry(h).register(
                paths,
                ref,
                parsed_card,
                Fields(text=text_field, id=id_field),
                in_place=in_place,
                max_record_bytes=max_record_bytes,
                actor=registrant,
                progress=lambda n: bar.advance(task, n),
                workers=workers,
            )
        indexed = None
        if index and created:  # an identical registration again changes nothing
            from custody.takedown.index import index_for, recorded

            index_for(h, dataset, registrant)
            indexed = recorded(h, dataset)
        if as_json:
            print_json({**summary(dataset), "created": created, "indexed": indexed})
        elif created:
            console.print(
                f"registered {ref}: {plural(dataset.manifest.records, 'record')} in "
                f"{plural(len(dataset.manifest.shards), 'shard')}, {data_size(dataset.manifest.bytes)}, "
                f"digest {dataset.digest} (ledger index {dataset.index})"
            )
            if indexed is not None:
                console.print(
                    f"passage index (what find searches): {indexed['fingerprints']:,} fingerprints, "
                    f"{data_size(indexed['bytes'])}"
                )
        else:
            console.print(
                f"{ref} is already registered with identical content (ledger index {dataset.index}); nothing to do"
            )


@app.command("card-template")
def card_template() -> None:
    """Print an annotated dataset card template."""
    typer.echo(CARD_TEMPLATE, nl=False)


@app.command("card-check")
def card_check(card: Annotated[Path, typer.Argument(help="dataset card (TOML)")]) -> None:
    """Validate a dataset card without registering anything."""
    from custody.cli.common import fail
    from custody.datasets.card import CardError

    try:
        load_card(card)
    except CardError as exc:
        fail(str(exc))
    console.print(f"{card}: valid dataset card")


@app.command("list")
def list_datasets(
    include_intermediate: Annotated[
        bool, typer.Option("--all", help="also the intermediate outputs of stage chains (kept for lineage)")
    ] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """List registered datasets (without the intermediate outputs of stage chains, unless --all)."""
    from custody.datasets.names import is_intermediate

    with opened(home, database) as h:
        every = DatasetRegistry(h).all()
        datasets = every if include_intermediate else [d for d in every if not is_intermediate(d.ref)]
        hidden = len(every) - len(datasets)
        if as_json:
            print_json([summary(d) for d in datasets])
            return
        if not every:
            console.print("no datasets registered yet (custody dataset register PATH --name NAME --version 1 ...)")
            return
        from rich.table import Table

        table = Table("dataset", "records", "bytes", "digest", "registered by", "parents")
        for d in datasets:
            table.add_row(
                str(d.ref),
                str(d.manifest.records),
                str(d.manifest.bytes),
                d.digest[:16],
                d.actor,
                ", ".join(p["dataset"] for p in d.parents),
            )
        console.print(table)
        if hidden:
            console.print(f"{plural(hidden, 'intermediate stage output')} not shown (--all shows them)")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show a dataset's manifest, card and lineage."""
    with opened(home, database) as h:
        dataset = DatasetRegistry(h).get(parse_ref(ref))
        info = {**summary(dataset), "card": dataset.card.as_json()}
        if as_json:
            print_json(info)
            return
        console.print(f"{dataset.ref} — {dataset.card.dataset.title}", style="bold")
        for key in (
            "digest",
            "records",
            "bytes",
            "registered_by",
            "registered_at",
            "ledger_index",
            "declared_license",
            "in_place",
        ):
            console.print(f"  {key}: {info[key]}")
        for shard in info["shards"]:
            console.print(f"  shard {shard['name']} ({shard['format']}): {shard['records']} records, {shard['digest']}")
        for doc in info["documents"]:
            console.print(f"  document {doc['name']}: {doc['digest']}")
        for parent in info["parents"]:
            console.print(f"  parent {parent['dataset']} {parent['digest']}")


@app.command()
def lineage(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show a dataset's ancestors and descendants."""
    with opened(home, database) as h:
        ancestors, descendants = DatasetRegistry(h).lineage(parse_ref(ref))

        def describe(item) -> dict:
            if isinstance(item, RegisteredDataset):
                return {
                    "dataset": str(item.ref),
                    "digest": item.digest,
                    "registered": True,
                    "stage": (item.body.get("stage") or {}).get("name"),
                }
            return {**item, "registered": False}

        if as_json:
            print_json(
                {
                    "dataset": ref,
                    "ancestors": [{"depth": d, **describe(i)} for d, i in ancestors],
                    "descendants": [{"depth": d, **describe(i)} for d, i in descendants],
                }
            )
            return
        console.print(ref, style="bold")
        for depth, item in ancestors:
            info = describe(item)
            status = "" if info["registered"] else "  (missing or changed)"
            console.print(f"{'  ' * depth}↑ {info['dataset']} {info['digest'][:12]}{status}")
        for depth, item in descendants:
            info = describe(item)
            console.print(f"{'  ' * depth}↓ {info['dataset']} {info['digest'][:12]} via {info['stage']}")
