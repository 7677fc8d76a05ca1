"""Checks resume after a crash from the last completed shard, with byte-identical results.

Two kinds of crash: a check that raises part-way (in process, every check), and a `custody
check` process group killed with SIGKILL mid-run (the PII check, processes and all). Either
way the rerun scans only the unfinished shards and records the same rows and summary digests
as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from custody.checks.license import LicenseCheck
from custody.checks.pii import PiiCheck
from custody.checks.provenance import ProvenanceCheck
from custody.checks.toxicity import ToxicityCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.pipeline.run_check import run_check
from custody.pipeline.shard_work import CheckBusyError, ShardWork

LICENSES = ["MIT", "CC-BY-4.0", "CC-BY-NC-4.0", None, "GPL-3.0-only", "not a license ((", "Apache-2.0"]


class Crash(RuntimeError):
    pass


def with_crash(check_class: type, crash_at: int, seen: list[str]):
    """The same check, but it records every shard it scans and dies at shard number `crash_at`."""

    class Crashing(check_class):
        def scan_shard(self, dataset, shard, emit):
            seen.append(shard.name)
            if len(seen) == crash_at + 1:
                emit_some = super().scan_shard  # half a shard's rows go out before the crash
                rows = []
                emit_some(dataset, shard, rows.append)
                for row in rows[: len(rows) // 2]:
                    emit(row)
                raise Crash(f"killed in {shard.name}")
            return super().scan_shard(dataset, shard, emit)

    Crashing.__name__ = check_class.__name__
    return Crashing


def counting(check_class: type, seen: list[str]):
    class Counting(check_class):
        def scan_shard(self, dataset, shard, emit):
            seen.append(shard.name)
            return super().scan_shard(dataset, shard, emit)

    return Counting


def register_shards(home: Home, folder: Path, texts: list[str], shards: int, name: str = "corpus") -> RegisteredDataset:
    folder.mkdir()
    per = -(-len(texts) // shards)
    for s in range(shards):
        with open(folder / f"part-{s:03d}.jsonl", "w", encoding="utf-8") as out:
            for i, text in enumerate(texts[s * per : (s + 1) * per]):
                n = s * per + i
                row = {"id": f"doc-{n:05d}", "text": text, "license": LICENSES[n % len(LICENSES)]}
                if n % 5 == 0:
                    row["source_url"] = f"https://example.org/page/{n}"
                out.write(json.dumps(row) + "\n")
    card = parse_card(CARD_TEMPLATE)
    dataset, _ = DatasetRegistry(home).register([folder], DatasetRef(name, "1"), card, Fields(id="id"))
    return dataset


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    rows = []
    for name in ("pii_presidio_synth", "toxicity_jigsaw_sample"):
        with open(shared_data / name / "data.jsonl", encoding="utf-8") as fh:
            rows += [json.loads(line)["text"] for line in fh]
    return rows[:400]


CHECKS = {
    "provenance": ProvenanceCheck,
    "license": LicenseCheck,
    "toxicity": ToxicityCheck,
    "pii": lambda: PiiCheck(processes=2),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_a_check_that_crashed_resumes_at_its_first_unfinished_shard(home, tmp_path, texts, name):
    dataset = register_shards(home, tmp_path / "data", texts, shards=5)
    build = CHECKS[name]
    check_class = type(build())
    clean = run_check(home, dataset, build())

    seen: list[str] = []
    crashing = with_crash(check_class, crash_at=3, seen=seen)
    with pytest.raises(Crash):
        run_check(home, dataset, crashing(processes=2) if name == "pii" else crashing())
    assert seen == ["part-000.jsonl", "part-001.jsonl", "part-002.jsonl", "part-003.jsonl"]
    assert home.ledger.size == clean.entry_index + 1, "a crashed check records nothing"

    rescanned: list[str] = []
    resumed_check = counting(check_class, rescanned)
    notes = []
    resumed = run_check(
        home,
        dataset,
        resumed_check(processes=2) if name == "pii" else resumed_check(),
        on_resume=lambda done, total: notes.append((done, total)),
    )
    assert notes == [(3, 5)]
    assert rescanned == ["part-003.jsonl", "part-004.jsonl"], "finished shards are not scanned again"
    assert resumed.result_digest == clean.result_digest
    assert resumed.summary_digest == clean.summary_digest
    assert resumed.config_digest == clean.config_digest
    measured = {"emissions"}  # each session measures its own energy; everything else is the same
    assert {k: v for k, v in resumed.body.items() if k not in measured} == {
        k: v for k, v in clean.body.items() if k not in measured
    }
    rows = pq.read_table(home.store.path_for(resumed.result_digest))
    assert rows.num_rows == len(texts)
    assert len(set(rows.column("record_id").to_pylist())) == len(texts), "no duplicate or missing rows"
    leftovers = home.path / "work" / "checks" / dataset.digest / f"{name}-{check_class.version}"
    assert list(leftovers.glob("*/shard-*")) == [], "the work area is cleared once the result is recorded"


def test_a_damaged_finished_shard_is_scanned_again(home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "data", texts, shards=4)
    clean = run_check(home, dataset, LicenseCheck())
    seen: list[str] = []
    with pytest.raises(Crash):
        run_check(home, dataset, with_crash(LicenseCheck, crash_at=2, seen=seen)())
    work_dirs = list((home.path / "work" / "checks" / dataset.digest).glob("license-*/*/"))
    assert len(work_dirs) == 1
    part = work_dirs[0] / "shard-00001.parquet"
    part.write_bytes(part.read_bytes()[:-10])  # a torn write the rename should have prevented

    rescanned: list[str] = []
    resumed = run_check(home, dataset, counting(LicenseCheck, rescanned)())
    assert rescanned == ["part-001.jsonl", "part-002.jsonl", "part-003.jsonl"]
    assert resumed.result_digest == clean.result_digest


def test_finished_shards_of_another_configuration_are_not_reused(home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "data", texts, shards=3)
    seen: list[str] = []
    with pytest.raises(Crash):
        run_check(home, dataset, with_crash(LicenseCheck, crash_at=2, seen=seen)())
    rescanned: list[str] = []
    other = counting(LicenseCheck, rescanned)(min_detection_score=0.5)
    run_check(home, dataset, other)
    assert rescanned == ["part-000.jsonl", "part-001.jsonl", "part-002.jsonl"]


def test_one_run_at_a_time_per_check_and_configuration(home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "data", texts, shards=2)
    check = LicenseCheck()
    config_digest = home.store.put_bytes(json.dumps(check.config(), sort_keys=True).encode())
    with (
        ShardWork.claim(home, dataset, check, config_digest),
        pytest.raises(CheckBusyError, match="already running on corpus@1"),
        ShardWork.claim(home, dataset, check, config_digest),
    ):
        pass


def test_sigkilled_cli_run_resumes_with_identical_results(home, cast, tmp_path, shared_data):
    """`custody check --checks pii` killed (the whole process group) after two of ten shards."""
    with open(shared_data / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        synth = [json.loads(line)["text"] for line in fh]
    texts = [f"{text} (copy {copy})" for copy in range(4) for text in synth]  # 3,000 records
    dataset = register_shards(home, tmp_path / "data", texts, shards=10)
    work = home.path / "work" / "checks" / dataset.digest
    cast.enroll(home, "tester", "engineer")  # the person who asks for the checks, by key
    env = {**os.environ, "CUSTODY_KEY": str(cast.key_file("tester"))}

    def custody(*args: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "custody", *args, "--home", str(home.path)]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
        )

    run = custody("check", "corpus@1", "--checks", "pii")
    deadline = time.monotonic() + 300
    while len(list(work.glob("pii-*/*/shard-*.json"))) < 2:
        assert run.poll() is None, f"the run ended before it could be killed: {run.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    size_after_kill = Home.open(home.path).ledger.size
    done = len(list(work.glob("pii-*/*/shard-*.json")))
    assert 2 <= done < 10

    rerun = custody("check", "corpus@1", "--checks", "pii", "--json")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert f"pii: resuming, {done} of 10 shards already done" in err
    resumed = json.loads(out)[0]

    fresh = custody("check", "corpus@1", "--checks", "pii", "--json")
    out, err = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, err
    assert "resuming" not in err
    uninterrupted = json.loads(out)[0]

    assert resumed["result_digest"] == uninterrupted["result_digest"]
    assert resumed["summary"] == uninterrupted["summary"]
    assert resumed["summary"]["records_scanned"] == 3000
    assert resumed["ledger_index"] == size_after_kill, "the killed run recorded nothing"
