"""Checks and stages on a real Ray cluster (a head and a worker node on loopback) with a real
PostgreSQL ledger: the same rows, digests and decisions as the local executor; a worker killed
mid-shard is retried without duplicates; an interrupted check resumes from its finished shards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from custody.checks.license import LicenseCheck
from custody.checks.pii import PiiCheck
from custody.checks.provenance import ProvenanceCheck
from custody.checks.toxicity import ToxicityCheck
from custody.home import Home
from custody.pipeline.run_check import run_check
from custody.testing.faults import ShardFailed, dying, failing
from test_check_resume import register_shards

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CHECKS = {
    "provenance": ProvenanceCheck,
    "license": LicenseCheck,
    "toxicity": ToxicityCheck,
    "pii": lambda: PiiCheck(processes=1),
}


@pytest.fixture(scope="module")
def cluster() -> str:
    """One head and one worker node, one CPU each, shared by the module's tests."""
    from custody.testing.ray_cluster import joined_cluster

    with joined_cluster(nodes=2, cpus_per_node=1, namespace="custody-tests") as address:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield address


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    rows = []
    for name in ("pii_presidio_synth", "toxicity_jigsaw_sample"):
        with open(shared_data / name / "data.jsonl", encoding="utf-8") as fh:
            rows += [json.loads(line)["text"] for line in fh][:100]
    return rows


@pytest.fixture
def pg_home(tmp_path: Path, postgres_url: str, cast):
    home = cast.init_home(tmp_path / "home", database=postgres_url)
    yield home
    home.close()


def ray_executor(**kwargs):
    from custody.pipeline.executors.ray import RayExecutor

    return RayExecutor(**kwargs)


def completed(home: Home, check: str) -> list[dict]:
    rows = home.storage.entries(0, 1000, type_prefix="check.completed/")
    return [json.loads(r.entry)["body"] for r in rows if json.loads(r.entry)["body"]["check"] == check]


def test_every_check_gives_the_same_digests_on_ray_as_locally(cluster, pg_home, tmp_path, texts):
    dataset = register_shards(pg_home, tmp_path / "data", texts, shards=4)
    executor = ray_executor()
    for name, build in CHECKS.items():
        local = run_check(pg_home, dataset, build())
        distributed = run_check(pg_home, dataset, build(), executor=executor)
        assert distributed.result_digest == local.result_digest, name
        assert distributed.summary_digest == local.summary_digest, name
        assert distributed.config_digest == local.config_digest, name
        same = [k for k in local.body if k != "emissions"]  # each run measures its own energy
        assert {k: distributed.body[k] for k in same} == {k: local.body[k] for k in same}, name
    assert pg_home.ledger.verify(pg_home.verifier_key).ok
    size = pg_home.ledger.size
    indices = [r.idx for r in pg_home.storage.entries(0, size + 10)]
    assert indices == list(range(size)), "ledger indices stay gapless"


def test_a_worker_killed_mid_shard_is_retried_and_the_check_completes_once(cluster, pg_home, tmp_path, texts):
    dataset = register_shards(pg_home, tmp_path / "data", texts, shards=4)
    marker = tmp_path / "died"
    result = run_check(pg_home, dataset, dying(LicenseCheck, shard=2, marker=marker)(), executor=ray_executor())
    assert marker.exists(), "the worker really died"
    entries = completed(pg_home, "license")
    assert len(entries) == 1 and entries[0]["result_digest"] == result.result_digest
    rows = pq.read_table(pg_home.store.path_for(result.result_digest))
    ids = rows.column("record_id").to_pylist()
    assert len(ids) == len(texts) == len(set(ids)), "no duplicate or missing rows"
    assert not list((pg_home.path / "work" / "checks").rglob("shard-*")), "stray parts are cleared"

    local = run_check(pg_home, dataset, LicenseCheck())
    assert (local.result_digest, local.summary_digest) == (result.result_digest, result.summary_digest)


def test_an_interrupted_ray_check_resumes_from_its_finished_shards(cluster, pg_home, tmp_path, texts):
    dataset = register_shards(pg_home, tmp_path / "data", texts, shards=4)
    with pytest.raises(ShardFailed):
        run_check(
            pg_home,
            dataset,
            failing(ToxicityCheck, shard=3, marker=tmp_path / "failed")(),
            executor=ray_executor(workers=1),
        )
    assert completed(pg_home, "toxicity") == [], "a stopped check records nothing"
    notes: list[tuple[int, int]] = []
    resumed = run_check(
        pg_home, dataset, ToxicityCheck(), executor=ray_executor(), on_resume=lambda d, t: notes.append((d, t))
    )
    assert notes and notes[0][1] == 4 and 1 <= notes[0][0] < 4
    local = run_check(pg_home, dataset, ToxicityCheck())
    assert resumed.result_digest == local.result_digest
    assert resumed.summary_digest == local.summary_digest


def test_prepare_on_ray_registers_the_same_derived_datasets(cluster, pg_home, cast, tmp_path, texts):
    from custody.datasets.names import DatasetRef
    from custody.pipeline.chain import run_chain

    stages = ["normalize-unicode", "dedup-exact", "drop-toxic"]
    options: dict = {}
    local_home = cast.init_home(tmp_path / "local-home")
    try:
        local_source = register_shards(local_home, tmp_path / "a", texts, shards=4)
        ray_source = register_shards(pg_home, tmp_path / "b", texts, shards=4)
        assert local_source.digest == ray_source.digest
        target = DatasetRef("corpus", "1+clean")
        local = run_chain(local_home, local_source, stages, target, options)
        distributed = run_chain(pg_home, ray_source, stages, target, options, executor=ray_executor())
    finally:
        local_home.close()
    for a, b in zip(local, distributed, strict=True):
        assert b.output.digest == a.output.digest, a.stage
        assert b.summary == a.summary, a.stage
        assert b.output.body["stage"] == a.output.body["stage"], a.stage  # config and decisions digests
    assert distributed[-1].counts["drop"] > 0, "drop-toxic dropped something, counted on the driver"


def test_every_parallel_stage_in_the_registry_gives_the_same_output_on_ray(cluster, pg_home, cast, tmp_path, texts):
    """The registry's promise for `parallel = True`: shards on workers, the same bytes as in the driver."""
    from custody.datasets.names import DatasetRef
    from custody.pipeline.run_stage import run_stage
    from custody.stages.catalog import STAGES

    parallel = [name for name in STAGES.names() if STAGES.load(name).parallel]
    assert {"normalize-unicode", "quality-filter", "redact-pii", "drop-toxic", "lowercase"} <= set(parallel)
    from custody.stages.redact import redaction_salt

    local_home = cast.init_home(tmp_path / "local-home")
    salt = local_home.path / "keys" / "redaction.salt"  # one salt, so both homes pick the same pseudonyms
    salt.write_bytes(redaction_salt(pg_home))
    salt.chmod(0o600)
    executor = ray_executor()
    try:
        local_source = register_shards(local_home, tmp_path / "a", texts[:60], shards=3)
        ray_source = register_shards(pg_home, tmp_path / "b", texts[:60], shards=3)
        for number, name in enumerate(parallel, start=2):
            output = DatasetRef("corpus", str(number))
            local = run_stage(local_home, STAGES.build(name, local_home), local_source, output)
            distributed = run_stage(pg_home, STAGES.build(name, pg_home), ray_source, output, executor=executor)
            assert distributed.output.digest == local.output.digest, name
            assert distributed.output.body["stage"] == local.output.body["stage"], name  # decisions digest too
            assert distributed.summary == local.summary, name
    finally:
        executor.close()
        local_home.close()


def test_cli_check_with_ray_executor(cluster, pg_home, cast, tmp_path, texts):
    dataset = register_shards(pg_home, tmp_path / "data", texts, shards=3)
    local = run_check(pg_home, dataset, LicenseCheck())
    cast.enroll(pg_home, "tester", "engineer")  # the person who asks for the check, by key
    env = {**os.environ, "CUSTODY_KEY": str(cast.key_file("tester"))}

    def custody(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "custody", *args, "--home", str(pg_home.path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    done = custody("check", "corpus@1", "--checks", "license", "--json", "--executor", "ray", "--ray-address", cluster)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["result_digest"] == local.result_digest
    recorded = json.loads(pg_home.ledger.entry(json.loads(done.stdout)[0]["ledger_index"]).entry)
    assert recorded["actor"] == "tester"  # the service signed it, naming the key's holder

    bad = custody("check", "corpus@1", "--checks", "license", "--executor", "spark")
    assert bad.returncode == 2 and "unknown executor 'spark'" in bad.stderr
    mixed = custody("check", "corpus@1", "--checks", "license", "--ray-address", cluster)
    assert mixed.returncode == 2 and "--ray-address is only for --executor ray" in mixed.stderr
