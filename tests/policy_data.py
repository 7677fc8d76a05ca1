"""Shared data for the policy tests: one home with real datasets and real check results.

The checks (the PII check loads spaCy) run once per test session; every test module copies the
finished home, and tests that write copy it again, so no test sees another's decisions.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from custody.checks.catalog import build_check
from custody.checks.pii import PiiCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.pipeline.run_check import run_check
from custody.policy.bindings import bind
from custody.policy.schema import LoadedPolicy, load_policy, parse_policy
from custody.testing.people import ADMIN, Cast

OWNER = "alice"  # registers every dataset here: she may not approve or waive their findings
NC_RECORDS = 10  # records of mix@1 carrying a non-commercial license
# The people of the policy tests, with real OpenSSH key files (one folder for the session).
CAST = Cast(Path(tempfile.mkdtemp(prefix="custody-test-keys-")))
PEOPLE = {
    OWNER: ("engineer", "reviewer", "approver"),  # may review others' data, never her own
    "tester": ("engineer",),  # whoever runs the CLI when a test names nobody
    "trainer": ("engineer",),
    "bob": ("reviewer", "approver"),
    "carol": ("reviewer", "approver"),
    "lead": ("approver",),
    "rita": ("reviewer",),  # reviews datasets, may not waive or approve runs
}

_BASE: dict[str, Path] = {}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def card_text(replace: dict[str, str] | None = None) -> str:
    """The annotated card template, with lines swapped (`'owner = "x"'` -> `''` drops a field)."""
    text = CARD_TEMPLATE
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def enroll_people(home: Home) -> None:
    for name, roles in PEOPLE.items():
        CAST.enroll(home, name, *roles)


def admin(home: Home):
    return CAST.person(home, ADMIN)


def bind_lenient(home: Home, root: Path) -> None:
    """What the admin of these homes bound: research to the lenient test policy, commercial to
    the shipped default. A test's own policy is then evaluated beside the bound one."""
    bind(home, "research", policy_from(LENIENT, root / "lenient.toml"), admin(home))
    bind(home, "commercial", load_policy("default"), admin(home))


def _build(root: Path, shared_data: Path) -> Path:
    home = CAST.init_home(root / "home")
    enroll_people(home)
    bind_lenient(home, root)
    registry = DatasetRegistry(home)
    pii = read_jsonl(shared_data / "pii_presidio_synth" / "data.jsonl")
    with_email = [d for d in pii if any(s["entity_type"] == "EMAIL_ADDRESS" for s in d["spans"])][:10]
    toxic = read_jsonl(shared_data / "toxicity_jigsaw_sample" / "data.jsonl")[:40]
    rows = [{"id": f"mix-{i}", "text": d["text"]} for i, d in enumerate(with_email + pii[:30] + toxic)]
    for row in rows[-NC_RECORDS:]:
        row["license"] = "CC-BY-NC-4.0"
    mix, _ = registry.register(
        [write_jsonl(root / "mix.jsonl", rows)],
        DatasetRef("mix", "1"),
        parse_card(card_text()),
        Fields(id="id"),
        actor=OWNER,
    )
    for name in ("provenance", "license", "toxicity"):
        run_check(home, mix, build_check(name))
    run_check(home, mix, PiiCheck(processes=1))

    # books@1: a denied source on the card and a missing steward; provenance and license only.
    shakespeare = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    lines = [line for line in shakespeare.splitlines() if line.strip()][:20]
    card = card_text(
        {
            'name = "Example crawl 2026-01"': 'name = "Books3 mirror"',
            'steward = "jane.doe@example.org"': "",
        }
    )
    books, _ = registry.register(
        [write_jsonl(root / "books.jsonl", [{"id": f"b{i}", "text": t} for i, t in enumerate(lines)])],
        DatasetRef("books", "1"),
        parse_card(card),
        Fields(id="id"),
        actor=OWNER,
    )
    for name in ("provenance", "license"):
        run_check(home, books, build_check(name))
    home.close()
    return root / "home"


def base_home(factory, shared_data: Path) -> Path:
    """The finished home, built once per session (pytest's tmp_path_factory keeps it)."""
    if "home" not in _BASE:
        _BASE["home"] = _build(factory.mktemp("policy-base"), shared_data)
    return _BASE["home"]


def copy_home(base: Path, target: Path) -> Home:
    shutil.copytree(base, target)
    return Home.open(target)


def cli(home: Home, *args: str, key: str = "tester", input: str | None = None):
    """The CLI as a person of the cast: the key of `--as NAME` when the args name one, else `key`'s."""
    from typer.testing import CliRunner

    from custody.cli.main import app

    args_list = list(args)
    name = args_list[args_list.index("--as") + 1] if "--as" in args_list else key
    env = {"CUSTODY_KEY": str(CAST.key_file(name))}
    return CliRunner().invoke(app, [*args_list, "--home", str(home.path)], env=env, input=input)


def policy_from(text: str, path: Path | None = None) -> LoadedPolicy:
    """A policy from TOML text (written to `path` when given, so replay can find the file)."""
    if path is not None:
        path.write_text(text, encoding="utf-8")
    where = path or Path("/policies/test.toml")
    return LoadedPolicy(where, text.encode(), parse_policy(text, str(where)))


HEADER = 'schema = 1\nname = "test"\n'

# Allows mix@1 for research: every check current, non-commercial allowed, PII and toxicity within.
LENIENT = (
    HEADER.replace('name = "test"', 'name = "lenient"\npurpose = "research"')
    + '[freshness.current]\nexplanation = "x"\nchecks = ["provenance", "license", "pii", "toxicity"]\n'
    + '[license.allowed]\nexplanation = "x"\n'
    + '[license.allowed.research]\ncategories = ["public-domain", "permissive", "non-commercial"]\n'
    + '[pii.max-rate]\nexplanation = "x"\ndefault = { max = 0.5, action = "redact" }\n'
    + '[toxicity.max-rate]\nexplanation = "x"\nthreshold = 0.5\nmax_rate = 0.1\naction = "drop"\n'
)
REVIEW = LENIENT + '[findings.review]\nexplanation = "x"\nmatch = ["pii.present"]\n'

# Sends PII and toxicity findings to a person: what the dashboard and report tests review.
REVIEW_POLICY = """\
schema = 1
name = "review-everything"
description = "Test policy: PII and toxicity go to a person."
purpose = "research"

[pii.max-rate]
explanation = "Contact data needs a reviewer's look."
on_fail = "review"

[pii.max-rate.entities]
EMAIL_ADDRESS = { max = 0.0, action = "redact" }

[toxicity.max-rate]
explanation = "Toxic text needs a reviewer's look."
on_fail = "review"
threshold = 0.5
max_rate = 0.01
action = "drop"
"""
