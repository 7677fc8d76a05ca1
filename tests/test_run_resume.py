"""`custody run SPEC --resume RUN_ID`: a run killed mid-step continues from its last recorded checkpoint
as a new run through the gate, on the same bytes; the ledger shows both parts (the interrupted run
closed as interrupted, the resumed one naming where it continued), and the loss curve is the one an
uninterrupted run draws."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from custody.home import Home
from custody.ledger import query
from custody.runs.resume import ResumeError
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from run_data import POLICY, SPEC, bodies, losses, people_home, write
from train_support import register_shakespeare

pytestmark = pytest.mark.slow
STEPS, EVERY = 60, 10


@pytest.fixture(scope="module")
def resumable(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("resume")
    home = people_home(cast, root / "home")
    register_shakespeare(home, root, limit=400, shards=2)
    policy = write(root / "policy.toml", POLICY.format(approval=""))
    text = SPEC.format(name="long", kind="pretrain", policy=policy, extra="")
    text = text.replace("steps = 12", f"steps = {STEPS}").replace(
        "checkpoint_interval = 6", f"checkpoint_interval = {EVERY}"
    )
    text = text.replace("eval_interval = 6", f"eval_interval = {EVERY}")
    spec_path = write(root / "long.toml", text)
    trainer = cast.person(home, "trainer")
    reference = run_spec(home, load_spec(spec_path), actor=trainer, say=lambda _: None)
    yield home, root, spec_path, trainer, reference, cast
    home.close()


def kill_after_first_checkpoint(home: Home, root, spec_path, cast) -> str:
    """Start `custody run` in a process and SIGKILL it once its first checkpoint is in the ledger."""
    env = {**os.environ, "CUSTODY_HOME": str(home.path), "CUSTODY_KEY": str(cast.key_file("trainer"))}
    before = {row.subject for row in query.entries(home.storage, "run.started/")}
    process = subprocess.Popen(
        [sys.executable, "-m", "custody", "run", str(spec_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            new = [row.subject for row in query.entries(home.storage, "run.started/") if row.subject not in before]
            if new and query.first(home.storage, "run.checkpoint/", new[0]) is not None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return new[0].removeprefix("run:")
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        pytest.fail("the run recorded no checkpoint in time")
    finally:
        if process.poll() is None:
            process.kill()


def test_a_killed_run_resumes_from_its_last_checkpoint_and_the_ledger_shows_both_parts(resumable):
    home, root, spec_path, trainer, reference, cast = resumable
    killed = kill_after_first_checkpoint(home, root, spec_path, cast)
    subject = f"run:{killed}"
    assert query.latest(home.storage, "run.finished/", subject) is None, "a killed run recorded no end"
    last = bodies(home, "run.checkpoint/", subject)[-1]
    assert last["step"] < STEPS
    said: list[str] = []
    resumed = run_spec(home, load_spec(spec_path), actor=trainer, say=said.append, resume=killed)
    assert resumed.exit_code == 0 and resumed.run_id != killed
    started = bodies(home, "run.started/", f"run:{resumed.run_id}")[0]
    assert started["resumed_from"] == {
        "run_id": killed,
        "step": last["step"],
        "checkpoint_digest": last["checkpoint_digest"],
    }
    closed = bodies(home, "run.finished/", subject)
    assert len(closed) == 1 and closed[0]["status"] == "failed" and "interrupted" in closed[0]["error"]
    assert resumed.run_id in closed[0]["error"] and closed[0]["emissions"]["tracker"].startswith("not measured")
    finished = bodies(home, "run.finished/", f"run:{resumed.run_id}")[0]
    assert finished["status"] == "completed" and finished["steps"] == STEPS
    assert losses(home, resumed.run_id) == pytest.approx(losses(home, reference.run_id), abs=1e-5)
    resumed_checkpoints = [c["step"] for c in bodies(home, "run.checkpoint/", f"run:{resumed.run_id}")]
    assert resumed_checkpoints[0] > last["step"] and resumed_checkpoints[-1] == STEPS
    assert not home.ledger.verify().problems


def test_what_cannot_be_resumed_is_refused_before_anything_is_recorded(resumable):
    home, _, spec_path, trainer, reference, _ = resumable
    size = home.ledger.size
    for run_id, message in ((reference.run_id, "completed"), ("nosuch-00000000", "no run with that id")):
        with pytest.raises(ResumeError, match=message):
            run_spec(home, load_spec(spec_path), actor=trainer, say=lambda _: None, resume=run_id)
    assert home.ledger.size == size
