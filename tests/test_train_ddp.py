"""Data parallelism through torchrun: two CPU processes on gloo follow the single-process loss curve
(same global batch) within floating-point tolerance, with or without gradient accumulation, rank 0
alone writes checkpoints, and the emissions of both processes are summed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from custody.home import Home
from train_support import register_shakespeare, tokenizer_for

WORKER = Path(__file__).with_name("train_ddp_worker.py")


def run(args: list[str], timeout: int = 300) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path) -> None:
    home = Home.init(tmp_path / "home")
    try:
        dataset = register_shakespeare(home, tmp_path, limit=800)
    finally:
        home.close()
    tok = tokenizer_for(dataset)
    tok_path = tmp_path / "tokenizer.json"
    tok.save(tok_path)
    common = [str(tmp_path / "home"), str(tok_path), tok.digest]

    run([sys.executable, str(WORKER), *common, str(tmp_path / "single"), str(tmp_path / "single.json")])
    on_two_ranks = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER)]
    run([*on_two_ranks, *common, str(tmp_path / "ddp"), str(tmp_path / "ddp.json"), "--carbon"])
    # Two ranks again, each splitting its 4 sequences into 2 micro-batches (one all-reduce per step).
    run([*on_two_ranks, *common, str(tmp_path / "accum"), str(tmp_path / "accum.json"), "--grad-accum", "2"])
    single = json.loads((tmp_path / "single.json").read_text())
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    accumulated = json.loads((tmp_path / "accum.json").read_text())
    for a, b in zip(single["losses"], accumulated["losses"], strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert (single["world_size"], ddp["world_size"]) == (1, 2)
    assert len(ddp["losses"]) == len(single["losses"]) == 16
    assert ddp["losses"][-1] < ddp["losses"][0] - 0.5
    for a, b in zip(single["losses"], ddp["losses"], strict=True):
        assert a == pytest.approx(b, abs=1e-5)  # the same maths; only the reduction order differs (~1e-6)
    for a, b in zip(single["evals"], ddp["evals"], strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)

    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == ["step-0000016.pt"]  # rank 0 only, no temp files
    final = tmp_path / "ddp" / "step-0000016.pt"
    assert hashlib.sha256(final.read_bytes()).hexdigest() == ddp["final"]["digest"]
    assert ddp["emissions"]["processes"] == 2 and ddp["emissions"]["energy_kwh"] > 0
    assert single["emissions"] is None
