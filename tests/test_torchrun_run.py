"""`custody run SPEC --nproc-per-node N`: the gate runs once, torchrun's ranks each verify the decision
and every token shard before training, and the run is recorded once. Two and four gloo processes
follow the one-process loss curve on the same global batch; a node whose copy of a token shard was
tampered with, or that cannot reach the ledger, stops the whole run, recorded as failed with the
rank that failed and why."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from custody.home import Home
from custody.ledger import query
from custody.runs.distributed_run import Launch, LaunchError
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from run_data import POLICY, SPEC, bodies, losses, people_home, write
from train_support import register_shakespeare

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def launched(tmp_path_factory, cast):
    """One home, one spec; the same run trained in one process, then on 2 and on 4 ranks."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = tmp_path_factory.mktemp("torchrun")
    home = people_home(cast, root / "home")
    register_shakespeare(home, root, limit=400, shards=2)
    policy = write(root / "policy.toml", POLICY.format(approval=""))
    spec = load_spec(write(root / "tiny.toml", SPEC.format(name="tiny", kind="pretrain", policy=policy, extra="")))
    trainer = cast.person(home, "trainer")
    outcomes = {n: run_spec(home, spec, actor=trainer, say=lambda _: None, launch=Launch(n) if n > 1 else None)
                for n in (1, 2, 4)}  # fmt: skip
    yield home, root, spec, trainer, outcomes
    home.close()


@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_follow_the_one_process_loss_curve_and_the_run_is_recorded_once(launched, ranks):
    home, _, _, _, outcomes = launched
    single, many = outcomes[1], outcomes[ranks]
    assert many.exit_code == 0 and many.run_id
    subject = f"run:{many.run_id}"
    started, finished = bodies(home, "run.started/", subject), bodies(home, "run.finished/", subject)
    assert len(started) == 1 and len(finished) == 1, "one start and one end per run, not per rank"
    assert started[0]["launch"] == {"launcher": "torchrun", "world_size": ranks, "nnodes": 1, "nproc_per_node": ranks}
    assert started[0]["decision_index"] == many.gate.ledger_index
    tokens = query.body(query.at(home.storage, started[0]["tokens_index"]))
    assert {(d["ref"], d["digest"]) for d in tokens["datasets"]} == {(str(d.ref), d.digest) for d in many.prepared}
    expected, got = losses(home, single.run_id), losses(home, many.run_id)
    assert len(got) == len(expected) == 12
    assert got == pytest.approx(expected, abs=1e-5)  # same maths; only the reduction order differs
    done = finished[0]
    assert done["status"] == "completed" and done["steps"] == 12
    assert f"summed over {ranks} processes" in done["emissions"]["tracker"] and done["emissions"]["energy_kwh"] > 0
    checkpoints = bodies(home, "run.checkpoint/", subject)
    assert [c["step"] for c in checkpoints] == [6, 12]  # rank 0 alone records them
    assert done["model_digest"] == checkpoints[-1]["checkpoint_digest"]
    assert home.store.verify(done["model_digest"])
    assert not home.ledger.verify().problems


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def second_node(home: Home, root: Path, name: str, database: str) -> Path:
    """Another node's home: the same keys and artifacts (copied), its ledger at `database`."""
    node = root / name
    shutil.rmtree(node, ignore_errors=True)
    node.mkdir()
    for part in ("keys", "witness", "artifacts"):
        shutil.copytree(home.path / part, node / part)
    config = (home.path / "config.toml").read_text("utf-8") + f'database = "{database}"\n'
    (node / "config.toml").write_text(config, "utf-8")
    return node


def run_two_nodes(home, spec, trainer, node: Path):
    port = free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1", "--node-rank=1",
               "--rdzv-backend=static", "--master-addr=127.0.0.1", f"--master-port={port}",
               "-m", "custody.runs.distributed_run", "--home", str(node)]  # fmt: skip
    other = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with pytest.raises(LaunchError) as failed:
            run_spec(home, spec, actor=trainer, say=lambda _: None, launch=Launch(1, 2, f"127.0.0.1:{port}", 240))
    finally:
        output = other.communicate(timeout=120)[0]
    assert other.returncode != 0, output
    return failed.value


def failed_runs(home: Home) -> list[dict]:
    return [b for b in (query.body(r) for r in query.entries(home.storage, "run.finished/")) if b["status"] == "failed"]


def test_a_tampered_shard_on_one_node_stops_the_whole_run(launched):
    home, root, spec, trainer, outcomes = launched
    started = bodies(home, "run.started/", f"run:{outcomes[2].run_id}")[0]
    tokens = query.body(query.at(home.storage, started["tokens_index"]))
    node = second_node(home, root, "node-tampered", home.database_url)
    shard = node / home.store.path_for(tokens["shards"][0]["digest"]).relative_to(home.path)
    shard.chmod(0o644)
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    before = len(failed_runs(home))
    error = run_two_nodes(home, spec, trainer, node)
    assert "rank 1" in str(error) and "ShardIntegrityError" in str(error)
    failures = failed_runs(home)
    assert len(failures) == before + 1
    recorded = failures[-1]
    assert recorded["failed_rank"] == 1 and tokens["shards"][0]["digest"] in recorded["error"]
    assert bodies(home, "run.checkpoint/", f"run:{recorded['run_id']}") == [], "nothing trained"
    log = (home.path / "runs" / recorded["run_id"] / "torchrun.stderr").read_text("utf-8")
    assert "ShardIntegrityError" in log and "exitcode" in log  # torchrun's account kept with the run


def test_a_rank_that_cannot_reach_the_ledger_stops_the_whole_run(launched):
    home, root, spec, trainer, _ = launched
    node = second_node(home, root, "node-unreachable", "postgresql://custody@127.0.0.1:9/nowhere")
    error = run_two_nodes(home, spec, trainer, node)
    assert "rank 1" in str(error)
    recorded = failed_runs(home)[-1]
    assert recorded["failed_rank"] == 1 and recorded["steps"] == 0
