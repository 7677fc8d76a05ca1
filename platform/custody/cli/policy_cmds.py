"""`custody gate` and `custody review`: policy decisions, their replay, and human review.

Exit codes of `custody gate NAME@V...`: 0 allow, 3 deny, 4 needs-review (2: bad input, nothing
recorded). Anything but 0 means: do not proceed. `custody gate replay INDEX`: 0 the recorded
decision is reproduced (what changed since is reported, not failed), 1 it is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from custody.cli.common import (
    EXIT_VERIFY_FAILED,
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    PlainGroup,
    acting,
    command_group,
    console,
    err_console,
    fail,
    opened,
    print_json,
)
from custody.datasets.names import DatasetRefError, check_name, parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.wording import plural

if TYPE_CHECKING:
    from custody.policy.gate import GateResult

EXIT_DENY = 3
EXIT_NEEDS_REVIEW = 4


class _GateGroup(PlainGroup):
    """`custody gate NAME@V...` evaluates; `custody gate replay INDEX` is a subcommand.

    Click cannot mix a variadic group argument with subcommands, so anything that is not a
    subcommand name (or --help) is routed to the hidden `evaluate` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["evaluate", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Say how it is used: `custody gate NAME@V...` (evaluate is the default) or `replay`."""
        formatter.write_usage(ctx.command_path, "NAME@VERSION... --purpose PURPOSE [OPTIONS]")
        formatter.write_usage(ctx.command_path, "replay INDEX [OPTIONS]", prefix="   or: ")


gate_app = command_group(
    cls=_GateGroup,
    help=(
        "Evaluate the policy bound to a purpose and record the decision: custody gate NAME@V... "
        "--purpose commercial|research [--policy FILE] [--json]. Exit 0 allow, 3 deny, 4 needs-review. "
        "`custody gate replay INDEX` re-evaluates a recorded decision."
    ),
    no_args_is_help=True,
)
policy_app = command_group(
    help="Which policy governs each purpose (bindings are signed by an admin).", no_args_is_help=True
)
review_app = command_group(help="Findings that need a person: list, approve, reject, waive.", no_args_is_help=True)

ReviewerOption = Annotated[
    str | None,
    typer.Option("--as", help="who you expect to act as: checked against the roster name of --key", show_default=False),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="why (recorded in the ledger)")]
ExpiresOption = Annotated[
    str | None,
    typer.Option("--expires", help="YYYY-MM-DD (counts through that day, UTC) or an ISO 8601 date and time"),
]


def _print_gate(result: GateResult) -> None:
    decision = result.decision
    where = f"ledger index {result.ledger_index}" if result.recorded else "NOT RECORDED"
    console.print(
        f"{decision.decision}: {plural(len(decision.reasons), 'reason')} — purpose {result.purpose}, "
        f"{result.describe_policies()}, {where}"
    )
    for reason in decision.reasons:
        console.print(f"  {reason.outcome:<6}  {reason.finding}")
        console.print(f"          {reason.rule}: {reason.message}")
    for kind, items in (("waived", decision.waived), ("approved", decision.approved)):
        for item in items:
            until = f" until {item['expires']}" if item.get("expires") else ""
            console.print(f"  {kind}  {item['finding']} by {item['reviewer']} ({item['by']}){until}")
    for item in decision.not_applied:
        console.print(f"  not applied  {item['finding']} ({item['by']}): {item['why']}")
    for note in result.notes:
        console.print(f"  note    {note}")
    if decision.decision == "needs-review":
        console.print("a reviewer can act on these: custody review list")
    if result.warning:
        err_console.print(f"warning: {result.warning}")
    if not result.recorded:
        err_console.print(f"error: the decision could not be recorded, so it is a deny: {result.error}")


@gate_app.command("evaluate")
def gate(
    refs: Annotated[list[str], typer.Argument(help="datasets NAME@VERSION", show_default=False)],
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="a policy file (or a shipped policy's name) evaluated beside the one bound to the purpose; "
            "it can only add reasons",
        ),
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="commercial or research [default: the --policy file's purpose]")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="gate a training run of this name")] = None,
    estimated_kwh: Annotated[float | None, typer.Option("--estimated-kwh", help="the run's energy estimate")] = None,
    estimated_kg_co2e: Annotated[
        float | None, typer.Option("--estimated-kg-co2e", help="the run's carbon estimate")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """The default: `custody gate NAME@V...` evaluates the bound policy and records the decision.

    Exit 0 allow, 3 deny, 4 needs-review. --policy adds a policy of the request's own, which can
    only add reasons."""
    from custody.policy.gate import run_gate
    from custody.policy.inputs import RunContext
    from custody.policy.schema import PURPOSES, PolicyError, load_policy

    if purpose is not None and purpose not in PURPOSES:
        fail(f"--purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    if run is None and (estimated_kwh is not None or estimated_kg_co2e is not None):
        fail("--estimated-kwh and --estimated-kg-co2e describe a run: give --run NAME too")
    if policy is None and purpose is None:
        fail("give --purpose (the policy an admin bound to it judges), --policy FILE, or both")
    try:
        loaded = load_policy(policy) if policy is not None else None
        parsed = [parse_ref(ref) for ref in refs]
        run_name = check_name(run) if run is not None else None
    except (PolicyError, DatasetRefError) as exc:
        fail(str(exc))
    with opened(home, database) as h:
        from custody.home import actor_name

        requester = acting(h, key, actor, "gate")
        registry = DatasetRegistry(h)
        datasets = [registry.get(ref) for ref in dict.fromkeys(parsed)]
        context = None
        if run_name is not None:
            name = actor_name(requester)
            context = RunContext(run_name, name, estimated_kwh, estimated_kg_co2e, h.key_of(name))
        result = run_gate(h, datasets, loaded, purpose, context, requester)
        if as_json:
            print_json(result.as_json())
        else:
            _print_gate(result)
    raise typer.Exit(result.decision.exit_code)


@gate_app.command("replay")
def replay_cmd(
    index: Annotated[int, typer.Argument(help="ledger index of a policy.decision entry", min=0)],
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Re-evaluate a recorded decision from its digests; name what changed since (0 reproduced, 1 not)."""
    from custody.policy.replay import ReplayError, replay

    with opened(home, database) as h:
        try:
            report = replay(h, index)
        except ReplayError as exc:
            fail(str(exc))
        if as_json:
            print_json(report.as_json())
        else:
            recorded = report.recorded
            if report.reproduced:
                console.print(
                    f"reproduced: decision {report.decision_id} at ledger index {index} is "
                    f"{recorded['decision']} again, with the same {plural(len(recorded['reasons']), 'reason')}"
                )
            else:
                console.print(f"NOT reproduced: decision {report.decision_id} at ledger index {index}")
                for problem in report.problems:
                    console.print(f"  {problem}")
            if report.drift:
                console.print("changed since the decision:")
                for item in report.drift:
                    console.print(f"  {item}")
            else:
                console.print("nothing it depended on has changed since")
    raise typer.Exit(0 if report.reproduced else EXIT_VERIFY_FAILED)


@review_app.command("list")
def review_list(
    include_deny: Annotated[bool, typer.Option("--all", help="also deny reasons a waiver could lift")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Open findings: reasons of each subject's latest decision that no reviewer has acted on."""
    from custody.policy.reviews import open_findings

    with opened(home, database) as h:
        found = open_findings(h, include_deny)
        if as_json:
            print_json([f.as_json() for f in found])
            return
        if not found:
            console.print("no open findings")
            return
        for item in found:
            console.print(f"{item.finding}  [{item.outcome}, decision at ledger index {item.decision_index}]")
            console.print(f"    {item.rule}: {item.message}")


def _review(
    action: str,
    finding: str,
    reason: str,
    expires: str | None,
    reviewer: str | None,
    key: Path | None,
    as_json: bool,
    home: Path | None,
    database: str | None,
) -> None:
    from custody.home import HomeError
    from custody.ledger import query
    from custody.policy.reviews import ReviewError, record_review

    with opened(home, database) as h:
        try:
            index = record_review(h, finding, action, reason, acting(h, key, reviewer), expires)  # type: ignore[arg-type]
        except (ReviewError, HomeError) as exc:
            fail(str(exc))
        entry = h.ledger.entry(index)
        body = query.body(entry)
        if as_json:
            print_json({"ledger_index": index, "reviewer": entry.actor, **body})
        else:
            until = f" until {body['expires']}" if body.get("expires") else ""
            console.print(f"recorded: {action} {finding} by {entry.actor}{until} (ledger index {index})")


FindingArgument = Annotated[str, typer.Argument(help="finding id, as `custody review list [--all]` shows it")]


def _review_command(action: str, summary: str):
    """One review verb: approve, reject and waive take the same arguments and differ only in action."""

    def command(
        finding: FindingArgument,
        reason: ReasonOption,
        reviewer: ReviewerOption = None,
        key: KeyOption = None,
        expires: ExpiresOption = None,
        as_json: JsonOption = False,
        home: HomeOption = None,
        database: DatabaseOption = None,
    ) -> None:
        _review(action, finding, reason, expires, reviewer, key, as_json, home, database)

    command.__doc__ = summary
    command.__name__ = action
    return command


review_app.command("approve")(
    _review_command("approve", "Approve a finding that needs review (not allowed for the dataset's registrant).")
)
review_app.command("reject")(_review_command("reject", "Reject a finding: the gate denies for it from now on."))
review_app.command("waive")(
    _review_command("waive", "Waive a finding until --expires (required): the gate ignores it until then.")
)


@policy_app.command("bind")
def bind_cmd(
    purpose: Annotated[str, typer.Argument(help="commercial or research")],
    policy_file: Annotated[
        str, typer.Argument(metavar="POLICY_FILE", help="a policy file, or a shipped policy's name")
    ],
    key: KeyOption = None,
    actor: ActorOption = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Bind PURPOSE to a policy (by its digest): from now on the gate judges that purpose by it."""
    from custody.policy.bindings import BindingError, bind
    from custody.policy.schema import PolicyError, load_policy

    try:
        loaded = load_policy(policy_file)
    except PolicyError as exc:
        fail(str(exc))
    with opened(home, database) as h:
        admin = acting(h, key, actor)
        try:
            index = bind(h, purpose, loaded, admin)
        except BindingError as exc:
            fail(str(exc))
        console.print(
            f"bound {purpose} to policy {loaded.policy.name} (sha256 {loaded.digest[:12]}, "
            f"{len(loaded.policy.rules())} rules) at ledger index {index}"
        )


@policy_app.command("bindings")
def bindings_cmd(
    include_history: Annotated[
        bool, typer.Option("--all", help="every binding ever recorded, not just current")
    ] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Which policy governs each purpose now (by digest), who bound it and when."""
    from custody.policy.bindings import BindingError, current_bindings, history

    with opened(home, database) as h:
        try:
            if include_history:
                rows = [
                    {"ledger_index": i, "at": ts, "bound_by": who, "purpose": b["purpose"], "policy": b["policy"]}
                    for i, ts, who, b in history(h)
                ]
                if as_json:
                    print_json(rows)
                    return
                for r in rows:
                    p = r["policy"]
                    console.print(
                        f"{r['ledger_index']}  {r['purpose']}  {p['name']} (sha256 {p['digest']['sha256'][:12]}) "
                        f"by {r['bound_by']} at {r['at']}"
                    )
                return
            current = current_bindings(h)
        except BindingError as exc:
            fail(str(exc))
        if as_json:
            print_json({purpose: b.as_json() for purpose, b in current.items()})
            return
        if not current:
            console.print("no purpose is bound to a policy yet (custody policy bind PURPOSE POLICY_FILE)")
        for purpose, b in current.items():
            console.print(
                f"{purpose}: policy {b.loaded.policy.name} (sha256 {b.digest[:12]}, {len(b.loaded.policy.rules())} "
                f"rules), bound by {b.bound_by} at ledger index {b.index}"
            )
