"""The Policies page's gate input (views/gate_facts.py): each dataset's facts carried forward in a
summary beside the home must give exactly what `gather` reads from the whole ledger, byte for byte
in canonical JSON, and the same rule matrix: on a first computation, from the saved summary, after
check results are folded in (a re-recorded one, a license one, a check new to the dataset), after
other entries about a dataset, after an opt-out registry import (which every dataset's facts read),
after a reopen, and from a summary that belongs to another ledger or a longer one."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from custody.checks.catalog import build_check
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger import query
from custody.optout.registry import import_file
from custody.pipeline.run_check import run_check
from custody.policy.bindings import current_bindings
from custody.policy.inputs import document_bytes, gather
from custody.testing.people import ADMIN
from custody.views import gate_facts, policies
from dashboard_data import OWNER, PLAYS, WEB_OWNER, base_home, copy_home

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def home(tmp_path: Path, tmp_path_factory, shared_data: Path, cast):
    opened = Home.open(copy_home(base_home(tmp_path_factory, shared_data, cast), tmp_path / "home"))
    yield opened
    opened.close()


def same_as_gather(home: Home) -> None:
    """The summary's document and matrix equal the ones computed from the whole ledger."""
    datasets = DatasetRegistry(home).all()
    loaded = current_bindings(home)["research"].loaded
    expected = gather(home, datasets, loaded.policy.purpose, NOW)
    assert document_bytes(gate_facts.gate_input(home, datasets, loaded.policy.purpose, NOW)) == document_bytes(expected)
    matrix = policies.rule_matrix(home, loaded, datasets, NOW)
    policies_gather = policies.gate_input
    try:
        policies.gate_input = gather  # the page's matrix as it was computed before the summary
        assert policies.rule_matrix(home, loaded, datasets, NOW) == matrix
    finally:
        policies.gate_input = policies_gather


def saved(home: Home) -> dict:
    return json.loads(gate_facts.summary_path(home).read_text(encoding="utf-8"))


def rerun_check(home: Home, subject: str, check: str | None = None) -> None:
    """Record a dataset's newest result (of `check`, or of any check) again, as a long-lived home
    does when checks run again."""
    found = (r for r in query.entries(home.storage, "check.completed/", subject, newest_first=True))
    row = next(r for r in found if check is None or query.body(r)["check"] == check)
    envelope = query.envelope(row)
    home.append([home.entry(row.type, row.subject, envelope["body"], envelope["refs"], actor=row.actor)])


def counted(monkeypatch) -> list[str]:
    """The subjects `dataset_facts` is asked about from now on."""
    calls: list[str] = []
    real = gate_facts.dataset_facts
    monkeypatch.setattr(gate_facts, "dataset_facts", lambda h, d: calls.append(d.ref.subject) or real(h, d))
    return calls


def test_first_computation_and_the_saved_summary_equal_gather(home: Home, monkeypatch) -> None:
    assert not gate_facts.summary_path(home).exists()
    same_as_gather(home)
    summary = saved(home)
    assert summary["size"] == home.ledger.size
    assert set(summary["state"]) == {d.ref.subject for d in DatasetRegistry(home).all()}

    def computed(*args, **kwargs):
        raise AssertionError("facts computed again although no entry was appended")

    monkeypatch.setattr(gate_facts, "dataset_facts", computed)
    same_as_gather(home)  # everything from the summary


def test_check_results_appended_are_folded_in_without_recomputing(home: Home, cast, monkeypatch) -> None:
    same_as_gather(home)
    datasets = DatasetRegistry(home).all()
    rerun_check(home, datasets[0].ref.subject)
    rerun_check(home, datasets[0].ref.subject, "license")  # its categories are kept beside it
    rerun_check(home, datasets[-1].ref.subject)
    note = home.entry("ledger.note/v1", "ops", {"text": "about nothing registered"}, actor=cast.person(home, ADMIN))
    home.append([note])
    calls = counted(monkeypatch)
    same_as_gather(home)
    assert calls == []
    assert saved(home)["size"] == home.ledger.size


def test_a_check_never_run_on_a_dataset_before_is_folded_in(home: Home, monkeypatch) -> None:
    same_as_gather(home)
    plays = DatasetRegistry(home).get(PLAYS)
    assert "provenance" not in saved(home)["state"][plays.ref.subject]["checks"]
    run_check(home, plays, build_check("provenance"), actor=WEB_OWNER)
    calls = counted(monkeypatch)
    same_as_gather(home)
    assert "provenance" in saved(home)["state"][plays.ref.subject]["checks"]
    assert calls == []  # folded in, not computed again


def test_any_other_entry_about_a_dataset_recomputes_that_dataset_only(home: Home, cast, monkeypatch) -> None:
    same_as_gather(home)
    target = DatasetRegistry(home).all()[1].ref.subject
    note = home.entry("ledger.note/v1", target, {"text": "a note about the dataset"}, actor=cast.person(home, ADMIN))
    home.append([note])
    calls = counted(monkeypatch)
    same_as_gather(home)
    assert calls == [target]


def test_an_opt_out_import_recomputes_every_dataset(home: Home, tmp_path: Path, cast, monkeypatch) -> None:
    same_as_gather(home)
    listed = tmp_path / "optouts.csv"
    listed.write_text("kind,value,source,date\ndomain,writers.example,a letter,2025-03-01\n", encoding="utf-8")
    import_file(home, listed, actor=cast.person(home, OWNER), today=dt.date(2025, 6, 1))
    calls = counted(monkeypatch)
    same_as_gather(home)
    assert sorted(calls) == sorted(d.ref.subject for d in DatasetRegistry(home).all())
    assert any("opt_out_registry" in facts for facts in saved(home)["state"].values())


def test_after_a_reopen_the_summary_carries_forward(home: Home, cast) -> None:
    same_as_gather(home)
    path = home.path
    home.close()
    reopened = Home.open(path)
    try:
        rerun_check(reopened, DatasetRegistry(reopened).all()[-1].ref.subject)
        same_as_gather(reopened)
        reopened.append(
            [reopened.entry("ledger.note/v1", "ops", {"text": "later"}, actor=cast.person(reopened, ADMIN))]
        )
        same_as_gather(reopened)
        assert saved(reopened)["size"] == reopened.ledger.size
    finally:
        reopened.close()


def test_a_summary_of_another_ledger_or_a_longer_one_is_ignored(home: Home, monkeypatch) -> None:
    same_as_gather(home)
    path = gate_facts.summary_path(home)
    good = saved(home)
    calls = counted(monkeypatch)
    for wrong in ({"root": "00" * 32}, {"size": good["size"] + 1}, {"kind": "custody.gate-facts/0 old"}):
        path.write_text(json.dumps({**good, **wrong}), encoding="utf-8")
        calls.clear()
        same_as_gather(home)
        assert len(calls) == len(good["state"]), wrong  # started from nothing
    path.write_text("not json", encoding="utf-8")
    same_as_gather(home)
