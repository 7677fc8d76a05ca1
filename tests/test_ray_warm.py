"""Warm Ray actors (issue 23, item 4): with `keep_warm` a check's actors outlive the run, loaded,
and the next run of the same check in the same home uses them (no start-up, no model load) and
still gives the local run's bytes. Warm actors leave when idle, give their CPUs up to a run that
needs them, and leave on `release`. The pii check on Ray is never opened in the driver.
One-node cluster with 2 CPUs, SQLite home.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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


@pytest.fixture
def pools(two_cpu_cluster):
    """Every test starts and ends with no warm actor and both CPUs free."""
    from custody.pipeline.executors.ray_pool import release, warm_names

    yield warm_names
    release(ray)
    assert not warm_names(ray)
    wait_for(lambda: ray.available_resources().get("CPU", 0) == 2, "both CPUs free again")


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    with open(shared_data / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh][:60]


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.1)


def executor(**kwargs):
    from custody.pipeline.executors.ray import RayExecutor

    return RayExecutor(**kwargs)


def pool_workers(names: set[str]) -> set[str]:
    """The processes (host:pid) behind warm actors, asked directly."""
    return {ray.get(ray.get_actor(name, namespace="custody").warm.remote()) for name in names}


def workers_of(timeline: Timeline) -> set[str]:
    return {s.labels["worker"] for s in timeline.named("scan")}


def test_a_second_run_uses_the_warm_actors_and_gives_the_local_bytes(pools, home, tmp_path, texts):
    first_data = register_shards(home, tmp_path / "a", texts, shards=4, name="first")
    other_data = register_shards(home, tmp_path / "b", texts[::-1], shards=3, name="other")
    local = run_check(home, first_data, PiiCheck(processes=1))
    local_other = run_check(home, other_data, PiiCheck(processes=1))

    cold, warm, other = Timeline(), Timeline(), Timeline()
    first = run_check(home, first_data, PiiCheck(), executor=executor(workers=2, keep_warm=600), timeline=cold)
    assert len(pools(ray)) == 2, "both actors stay, named, after the run"
    assert len(cold.named("actor start")) == len(workers_of(cold)) >= 1
    assert not cold.named("open"), "the driver does not open the pii check when Ray scans"
    warm_workers = pool_workers(pools(ray))

    again = run_check(home, first_data, PiiCheck(), executor=executor(workers=2, keep_warm=600), timeline=warm)
    assert not warm.named("actor start") and not warm.named("model load"), "no start-up, no model load"
    assert workers_of(warm) <= warm_workers, "the warm actors' processes scan"

    # Another registration in the same home: the pii check's opened scanner serves it as it is.
    elsewhere = run_check(home, other_data, PiiCheck(), executor=executor(workers=2, keep_warm=600), timeline=other)
    assert not other.named("model load") and workers_of(other) <= warm_workers
    assert len(pools(ray)) == 2

    for result, expected in ((first, local), (again, local), (elsewhere, local_other)):
        assert (result.result_digest, result.summary_digest) == (expected.result_digest, expected.summary_digest)


def test_another_configuration_is_another_pool(pools, home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "a", texts, shards=2)
    run_check(home, dataset, PiiCheck(), executor=executor(workers=1, keep_warm=600))
    (before,) = pools(ray)
    timeline = Timeline()
    other = PiiCheck(score_threshold=0.6)
    run_check(home, dataset, other, executor=executor(workers=1, keep_warm=600), timeline=timeline)
    assert len(timeline.named("model load")) == 1, "a check configured otherwise loads its own"
    assert before in pools(ray) and len(pools(ray)) == 2, "the other pool stays: a CPU was free"


def test_a_check_whose_open_reads_the_dataset_gets_a_pool_per_dataset(pools, home, tmp_path, texts):
    first = register_shards(home, tmp_path / "a", texts, shards=2, name="first")
    second = register_shards(home, tmp_path / "b", texts[:30], shards=2, name="second")
    assert LicenseCheck.open_reads == "dataset"
    run_check(home, first, LicenseCheck(), executor=executor(workers=1, keep_warm=600))
    names = set(pools(ray))
    result = run_check(home, second, LicenseCheck(), executor=executor(workers=1, keep_warm=600))
    assert result.records == 30
    assert pools(ray) - names, "the second dataset got actors of its own"


def test_idle_warm_actors_leave_by_themselves(pools, home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "a", texts, shards=2)
    run_check(home, dataset, LicenseCheck(), executor=executor(workers=2, keep_warm=1.0))
    wait_for(lambda: not pools(ray), "warm actors gone after 1 s idle", seconds=30)
    wait_for(lambda: ray.available_resources().get("CPU", 0) == 2, "their CPUs free")


def test_a_run_that_needs_the_cpus_sends_idle_warm_actors_of_another_pool_away(pools, home, tmp_path, texts):
    dataset = register_shards(home, tmp_path / "a", texts, shards=2)
    run_check(home, dataset, PiiCheck(), executor=executor(workers=2, keep_warm=600))
    assert len(pools(ray)) == 2 and ray.available_resources().get("CPU", 0) == 0
    # Without room made, these actors would wait for CPUs for the warm actors' whole 600 s.
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(120)
    try:
        result = run_check(home, dataset, LicenseCheck(), executor=executor(workers=2))
    finally:
        signal.alarm(0)
    assert result.records == len(texts)
    assert not pools(ray)


def give_up(signum, frame):
    raise TimeoutError("the run still waits for CPUs that idle warm actors hold")


def custody(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "custody", *args], capture_output=True, text=True, timeout=120)


def test_custody_ray_warm_lists_the_pools_and_release_sends_every_warm_actor_away(
    two_cpu_cluster, pools, home, tmp_path, texts
):
    dataset = register_shards(home, tmp_path / "a", texts, shards=2)
    run_check(home, dataset, LicenseCheck(), executor=executor(workers=2, keep_warm=600))
    from custody.pipeline.executors.ray_pool import pool_of

    (pool,) = {pool_of(name) for name in pools(ray)}

    listed = custody("ray", "warm", "--ray-address", two_cpu_cluster, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"pools": {pool: 2}}

    released = custody("ray", "release", "--ray-address", two_cpu_cluster)
    assert released.returncode == 0, released.stderr
    assert released.stdout.strip() == "released 2 warm actors"
    assert not pools(ray)
    assert custody("ray", "warm", "--ray-address", two_cpu_cluster).stdout.strip() == "no warm actors"


def test_a_stage_pool_serves_every_dataset_of_its_home(pools, home, tmp_path, texts):
    from custody.datasets.names import DatasetRef
    from custody.pipeline.run_stage import run_stage
    from custody.stages.catalog import STAGES

    first = register_shards(home, tmp_path / "a", texts, shards=2, name="first")
    second = register_shards(home, tmp_path / "b", texts[::-1], shards=2, name="second")
    for source in (first, second):
        local = run_stage(home, STAGES.build("normalize-unicode", home), source, DatasetRef(source.ref.name, "local"))
        warm = run_stage(
            home,
            STAGES.build("normalize-unicode", home),
            source,
            DatasetRef(source.ref.name, "warm"),
            executor=executor(workers=2, keep_warm=600),
        )
        # Other names, so other manifests: the shards' bytes and the stage's record are compared.
        assert [s.digest for s in warm.output.manifest.shards] == [s.digest for s in local.output.manifest.shards]
        assert warm.output.body["stage"] == local.output.body["stage"]  # config and decisions digests
        if source is first:
            actors = {name: ray.get_actor(name, namespace="custody")._actor_id for name in pools(ray)}
            assert len(actors) == 2
    after = {name: ray.get_actor(name, namespace="custody")._actor_id for name in pools(ray)}
    assert after == actors, "the second dataset's shards went to the same two actors"


def test_a_warm_actor_refuses_a_registration_its_pool_does_not_cover(two_cpu_cluster, home, cast, tmp_path, texts):
    """The guard behind pool names: a warm actor never scans another home's data, nor another
    dataset when its check's `open` read the dataset."""
    from custody.pipeline.executors.ray_workers import CheckWorker, ConfigMismatch, DatasetHandle

    first = register_shards(home, tmp_path / "a", texts, shards=2, name="first")
    second = register_shards(home, tmp_path / "b", texts[:30], shards=2, name="second")
    other_home = cast.init_home(tmp_path / "other-home")
    try:
        elsewhere = register_shards(other_home, tmp_path / "c", texts, shards=2, name="first")
        handles = {
            name: DatasetHandle.of(d) for name, d in (("first", first), ("second", second), ("other", elsewhere))
        }

        def worker(check) -> CheckWorker:
            built = CheckWorker(b"", handles["first"])
            built.check, built.dataset = check, first
            return built

        def follow(built: CheckWorker, name: str) -> None:
            built._follow(handles[name].key, [ray.put(handles[name])])

        pii = worker(PiiCheck())
        follow(pii, "second")  # the pii check's open reads only the home
        assert pii.dataset.ref == second.ref
        with pytest.raises(ConfigMismatch, match="another home or dataset"):
            follow(pii, "other")
        with pytest.raises(ConfigMismatch, match="another home or dataset"):
            follow(worker(LicenseCheck()), "second")  # its open reads the dataset: a pool per dataset
    finally:
        other_home.close()
