"""`custody prefs sample | show | pending | judge | list | export`: human preferences for RLHF (docs/rlhf.md)."""

from __future__ import annotations

import json
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
    command_group,
    console,
    fail,
    opened,
    print_json,
)

app = command_group(
    help="Human preferences: pairs sampled from recorded weights, signed judgements, preference datasets.",
    no_args_is_help=True,
)
PromptsArgument = Annotated[str, typer.Argument(metavar="PROMPTS@VERSION", help="a registered prompt set")]
PairArgument = Annotated[int, typer.Argument(metavar="PAIR", help="the ledger index of a sampled pair")]


def _prompts(home, ref: str):
    from custody.datasets.names import parse_ref
    from custody.datasets.registry import DatasetRegistry

    return DatasetRegistry(home).get(parse_ref(ref))


def _weights_digest(home, target: str | None) -> str | None:
    """The digest of the weights a run id or sha256:DIGEST names (None: no filter); bad input exits 2."""
    from custody.evals.run_eval import EvalError, resolve

    if not target:
        return None
    try:
        return resolve(home, target).digest
    except EvalError as exc:
        fail(str(exc))


@app.command("sample")
def sample(
    target: WeightsArgument,
    prompts: PromptsArgument,
    pairs: Annotated[int, typer.Option("--pairs", help="how many prompts to sample a pair for")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="sampling seed (the same seed gives the same pairs)")] = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, max=512)] = 24,
    temperature: Annotated[float, typer.Option("--temperature", min=0.01)] = 1.0,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Sample two completions of each prompt not yet sampled for these weights; record `prefs.pair`.

    Exit 0 recorded; 2 bad input (unknown weights or prompt set, changed bytes, not a language model).
    """
    from custody.prefs.collect import PreferenceError, sample_pairs

    with opened(home, database) as h:
        who = acting(h, key, actor, "prefs")
        try:
            made = sample_pairs(h, target, _prompts(h, prompts), pairs, who, seed, max_new_tokens, temperature)
        except PreferenceError as exc:
            fail(str(exc))
    if as_json:
        print_json([{"pair": p.index, "digest": p.digest, "prompt_id": p.prompt_id} for p in made])
        return
    for p in made:
        console.print(f"pair {p.index}: prompt {p.prompt_id} of {p.prompts}, sha256 {p.digest[:16]}")
    console.print(f"{len(made)} pairs from sha256 {made[0].model_digest[:16]}; judge them with `custody prefs show`")


@app.command("show")
def show(
    pair: PairArgument,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Print a pair's prompt and its two completions, and who judged it so far."""
    from custody.prefs.collect import PreferenceError, judgements_of, pair_at

    with opened(home, database) as h:
        try:
            found = pair_at(h, pair)
        except PreferenceError as exc:
            fail(str(exc))
        judged = judgements_of(h, found.digest)
    if as_json:
        print_json(
            {
                "pair": found.index,
                "model_digest": found.model_digest,
                "prompt": found.prompt,
                "a": found.a,
                "b": found.b,
                "judgements": [{"ledger_index": i, "by": who, **body} for i, who, body, _ in judged],
            }
        )
        return
    console.print(f"pair {found.index} from model sha256 {found.model_digest[:16]} ({found.prompts})", highlight=False)
    console.print(f"prompt: {found.prompt}", markup=False, highlight=False)
    console.print(f"a: {found.a}", markup=False, highlight=False)
    console.print(f"b: {found.b}", markup=False, highlight=False)
    for index, who, body, _ in judged:
        flags = f", harmful: {', '.join(body['harmful'])}" if body["harmful"] else ""
        console.print(f"judged {body['choice']} by {who}{flags} (ledger index {index})", highlight=False)


@app.command("judge")
def judge_command(
    pair: Annotated[int | None, typer.Argument(metavar="[PAIR]", help="the ledger index of a sampled pair")] = None,
    choice: Annotated[str | None, typer.Option("--choice", help="a or b (the better completion), or tie")] = None,
    harmful: Annotated[
        list[str] | None, typer.Option("--harmful", help="flag completion a or b as harmful (repeatable)")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help='JSONL of {"pair": N, "choice": "a", "harmful": []}, e.g. from a labelling tool'),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Record your judgement of a pair (or a file of them, all or none), signed with your key (a
    reviewer's or an approver's).

    Exit 0 recorded; 2 bad input (no such pair, a choice other than a, b or tie, judged already,
    a key without a reviewing role, a bad line in --file): nothing recorded.
    """
    from custody.prefs.collect import Judgement, PreferenceError, judge_all

    if (file is None) == (pair is None) or (pair is not None and choice is None):
        fail("give PAIR with --choice, or --file with your judgements")
    with opened(home, database) as h:
        who = acting(h, key, actor)
        try:
            if file is not None:
                indices = judge_all(h, _judgements(file), who, where=str(file))
            else:
                indices = judge_all(h, [Judgement(pair, choice, tuple(harmful or []))], who)
        except PreferenceError as exc:
            fail(str(exc))
    if as_json:
        print_json({"ledger_indices": indices})
        return
    if file is None:
        console.print(f"pair {pair}: {choice} recorded at ledger index {indices[0]}")
    else:
        console.print(f"{len(indices)} judgements from {file} recorded at ledger indices {indices[0]}-{indices[-1]}")


def _judgements(path: Path) -> list:
    """The lines of a judgements file; the first bad one is named with its line and field."""
    from custody.cli.common import read_text_file
    from custody.prefs.collect import Judgement, PreferenceError

    found = []
    for number, line in enumerate(read_text_file(path, "judgements file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PreferenceError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("pair"), int) or isinstance(row.get("pair"), bool):
            raise PreferenceError(f"{path}:{number}: field 'pair' must be a pair's ledger index (an integer)")
        harmful = row.get("harmful", [])
        if not isinstance(harmful, list):
            raise PreferenceError(f"{path}:{number}: field 'harmful' must be a list of a and b")
        found.append(Judgement(row["pair"], str(row.get("choice")), tuple(str(h) for h in harmful)))
    if not found:
        raise PreferenceError(f"{path}: no judgements")
    return found


@app.command("pending")
def pending(
    target: Annotated[
        str | None, typer.Argument(metavar="[RUN_OR_CHECKPOINT]", help="only pairs from these weights")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """The pairs you (the key's holder) have not judged yet, with their texts: your review queue."""
    from custody.home import actor_name
    from custody.prefs.collect import pending_for

    with opened(home, database) as h:
        who = acting(h, key, actor)
        digest = _weights_digest(h, target)
        queue = pending_for(h, actor_name(who), digest)
    if as_json:
        print_json(
            [{"pair": p.index, "model_digest": p.model_digest, "prompt": p.prompt, "a": p.a, "b": p.b} for p in queue]
        )
        return
    for p in queue:
        console.print(f"pair {p.index}: {p.prompt}", markup=False, highlight=False)
        console.print(f"  a: {p.a}", markup=False, highlight=False)
        console.print(f"  b: {p.b}", markup=False, highlight=False)
    console.print(f"{len(queue)} pairs to judge")


@app.command("list")
def list_command(
    target: Annotated[
        str | None, typer.Argument(metavar="[RUN_OR_CHECKPOINT]", help="only pairs from these weights")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Sampled pairs and their judgements (choices a/b/tie and harmful flags)."""
    from custody.prefs.collect import judgements_of, pairs_of

    with opened(home, database) as h:
        digest = _weights_digest(h, target)
        rows = []
        for p in pairs_of(h, digest):
            judged = judgements_of(h, p.digest)
            rows.append(
                {
                    "pair": p.index,
                    "model_digest": p.model_digest,
                    "prompts": p.prompts,
                    "prompt_id": p.prompt_id,
                    "judgements": [
                        {"by": who, "choice": body["choice"], "harmful": body["harmful"]} for _, who, body, _ in judged
                    ],
                }
            )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        votes = (
            ", ".join(f"{j['by']} {j['choice']}{'!' if j['harmful'] else ''}" for j in row["judgements"]) or "unjudged"
        )
        console.print(
            f"pair {row['pair']}: {row['prompts']} {row['prompt_id']} from {row['model_digest'][:16]}: {votes}"
        )
    console.print(f"{len(rows)} pairs")


@app.command("export")
def export_command(
    target: WeightsArgument,
    prompts: PromptsArgument,
    name: Annotated[str, typer.Option("--name", metavar="NAME@VERSION", help="the preference dataset to register")],
    license_id: Annotated[
        str | None,
        typer.Option("--license", metavar="SPDX", help="the completions' license [default: the prompt set's]"),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Register the judged pairs as a preference dataset (prompt, chosen, rejected, reviewers, time)
    with the prompt set as its parent, and record `prefs.exported` naming the weights and judgements.

    Exit 0 registered; 2 bad input (unknown weights, prompt set or name; no pair decided).
    """
    from custody.datasets.names import parse_ref
    from custody.evals.run_eval import EvalError, resolve
    from custody.prefs.collect import PreferenceError
    from custody.prefs.export import export

    with opened(home, database) as h:
        who = acting(h, key, actor, "prefs")
        try:
            weights = resolve(h, target)
            dataset, index, body = export(h, weights.digest, _prompts(h, prompts), parse_ref(name), who, license_id)
        except (EvalError, PreferenceError) as exc:
            fail(str(exc))
    if as_json:
        print_json({"ledger_index": index, **body})
        return
    dropped = ", ".join(f"{k} {v}" for k, v in body["dropped"].items() if v) or "none"
    console.print(
        f"{dataset.ref}: {body['pairs']} preference pairs judged by {', '.join(body['reviewers'])} "
        f"(dropped: {dropped}); registered at ledger index {dataset.index}, export recorded at {index}"
    )
