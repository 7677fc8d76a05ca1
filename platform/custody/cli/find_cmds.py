"""`custody find`: which dataset versions hold a passage or a record, and what was made from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    EXIT_BAD_INPUT,
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    acting,
    console,
    fail,
    opened,
    print_json,
)

EXIT_NOT_FOUND = 1  # like grep: the query was fine, nothing holds it


def read_passage(text_file: Path) -> str:
    """A --text-file's text, or a one-line error naming it."""
    try:
        return text_file.read_bytes().decode("utf-8")
    except OSError as exc:
        fail(f"--text-file {text_file}: cannot read ({exc.strerror})")
    except UnicodeDecodeError as exc:
        fail(f"--text-file {text_file}: not UTF-8 (byte {exc.start})")


# The ways to name a work, shared by `custody find` and `custody takedown request`.
TextFileOption = Annotated[
    Path | None, typer.Option("--text-file", help="a passage (e.g. a page of a book), UTF-8 text")
]
RecordHashOption = Annotated[
    str | None, typer.Option("--record-hash", help="a record's text SHA-256 (the rows' content_hash)")
]
UrlPrefixOption = Annotated[str | None, typer.Option("--url-prefix", help="records whose source URL starts with this")]
DomainOption = Annotated[
    str | None, typer.Option("--domain", help="records whose source URL's host is this domain or below it")
]
FieldOption = Annotated[
    str | None,
    typer.Option("--field", metavar="KEY=VALUE", help="records whose field KEY (e.g. author) has this value"),
]


def find(
    text_file: TextFileOption = None,
    record_hash: RecordHashOption = None,
    url_prefix: UrlPrefixOption = None,
    domain: DomainOption = None,
    field: FieldOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Find every registered dataset version holding a passage, a record or records from a source,
    then what was made from them.

    A passage is matched on runs of shared words (whitespace, case, punctuation and surrounding
    text may differ) and every hit is confirmed against the record. Indexes missing for a dataset
    version are built and recorded (dataset.indexed/v1) on the way.
    Exit codes: 0 found; 1 found nowhere; 2 bad input.
    """
    from custody.takedown.find import (
        FindError,
        field_query,
        find_field,
        find_record_hash,
        find_source,
        find_text,
    )

    given = [text_file, record_hash, url_prefix, domain, field]
    if sum(g is not None for g in given) != 1:
        fail(
            "give one of --text-file FILE, --record-hash SHA256, --url-prefix URL, --domain DOMAIN or --field KEY=VALUE"
        )
    passage = read_passage(text_file) if text_file is not None else None
    with opened(home, database) as h:
        who = acting(h, key, actor, "find")
        try:
            if passage is not None:
                found = find_text(h, passage, who)
            elif record_hash is not None:
                found = find_record_hash(h, record_hash, who)
            elif field is not None:
                wanted = field_query(field)
                found = find_field(h, wanted["field"], wanted["sha256"], who)
            else:
                found = find_source(h, url_prefix, domain, who)
        except FindError as exc:
            fail(f"--text-file {text_file}: {exc}" if passage is not None else str(exc), EXIT_BAD_INPUT)
    if as_json:
        print_json(found.as_json())
    else:
        _print(found)
    raise typer.Exit(0 if found.hits else EXIT_NOT_FOUND)


def _print(found) -> None:
    if found.indexed_now:  # the names are in --json
        console.print(f"indexed now (first search of them): {len(found.indexed_now)} dataset version(s)")
    erased = sorted(ref for ref, r in found.removed.items() if r["erased"])
    if erased:  # their bytes are gone: nothing to confirm a hit against
        console.print(f"taken down and erased, not searched: {', '.join(erased)}")
    if not found.hits:
        console.print("found in no registered dataset version")
        return
    console.print(f"{len(found.hits)} record(s) in {len({h.dataset for h in found.hits})} dataset version(s):")
    for hit in found.hits:
        spans = ", ".join(f"{a}-{b}" for a, b in hit.spans)
        removed = found.removed.get(hit.dataset)
        note = f"  (taken down by {removed['takedown']}, not yet erased)" if removed else ""
        console.print(f"  {hit.dataset}  record {hit.record_id}  characters {spans}{note}")
    if found.derived:
        console.print(f"derived from them: {', '.join(found.derived)}")
    for run in found.runs:
        checkpoints = len(run["checkpoints"])
        model = (run["model_digest"] or "none")[:16]
        console.print(
            f"run {run['run_id']} ({run['kind']}) read {', '.join(run['read'])}: "
            f"{checkpoints} checkpoint(s), model sha256 {model}"
        )
