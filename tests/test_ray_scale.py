"""The Ray executor's start-up overlap and timeline (issue 23: efficiency at two workers): actors are
asked for before the driver opens its own check (the pii check's driver opens none), each reports
its start-up, model load and scans,
an actor holding two CPUs forks two scanners from one model, and the result is still
byte-identical to a local run. One-node cluster, SQLite home.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from custody.checks.license import LicenseCheck
from custody.checks.pii import PiiCheck
from custody.pipeline.run_check import run_check
from custody.pipeline.timeline import Timeline
from test_check_resume import register_shards

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    with open(shared_data / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh][:80]


def ray_executor(**kwargs):
    from custody.pipeline.executors.ray import RayExecutor

    return RayExecutor(**kwargs)


def test_two_ray_workers_report_their_time_and_give_the_local_digest(two_cpu_cluster, home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "data", texts, shards=4)
    local = run_check(home, dataset, PiiCheck(processes=1))
    timeline = Timeline()
    distributed = run_check(home, dataset, PiiCheck(), executor=ray_executor(workers=2), timeline=timeline)
    assert distributed.result_digest == local.result_digest
    assert distributed.summary_digest == local.summary_digest

    scans = timeline.named("scan")
    assert sorted(s.labels["shard"] for s in scans) == [0, 1, 2, 3]
    workers = {s.labels["worker"] for s in scans}
    assert len(workers) in (1, 2)  # Ray may hand all four shards to one actor that is ready first
    assert len(timeline.named("model load")) == len(timeline.named("actor start")) == len(workers)
    assert len(timeline.named("hand back")) == len(timeline.named("accept")) == 4
    assert not timeline.named("open"), "the driver never opens the pii check: it would not scan with it"
    for load in timeline.named("model load"):
        assert load.end <= min(s.start for s in scans if s.labels["worker"] == load.labels["worker"])
    for name in ("finish", "concatenate", "store", "record"):
        assert len(timeline.named(name)) == 1, name


def test_one_actor_with_two_cpus_forks_its_scanner_and_gives_the_local_digest(two_cpu_cluster, home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "data", texts, shards=3)
    local = run_check(home, dataset, PiiCheck(processes=1))
    timeline = Timeline()
    executor = ray_executor(workers=1, cpus_per_worker=2)
    packed = run_check(home, dataset, PiiCheck(), executor=executor, timeline=timeline)
    assert (packed.result_digest, packed.summary_digest) == (local.result_digest, local.summary_digest)
    assert len(timeline.named("model load")) == 1, "one actor, one model load"
    assert len({s.labels["worker"] for s in timeline.named("scan")}) == 1


DRIVER = os.getpid()


class OpensOnlyOnWorkers(LicenseCheck):
    """Fails to open in the test process only: the run stops after bind started the actors."""

    def open(self, dataset):
        if os.getpid() == DRIVER:
            raise RuntimeError("the driver cannot open this check")
        super().open(dataset)


def test_actors_started_early_are_stopped_when_the_driver_fails_to_open(two_cpu_cluster, home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "data", texts, shards=2)
    with pytest.raises(RuntimeError, match="the driver cannot open"):
        run_check(home, dataset, OpensOnlyOnWorkers(), executor=ray_executor(workers=2))
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2, "no actor kept its CPU"
    assert run_check(home, dataset, LicenseCheck(), executor=ray_executor(workers=2)).records == len(texts)
