"""`custody run SPEC --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT]`: one gate, many ranks.

The launching process (on the first node) does what a one-process run does up to training: the
request, preparation, checks and the gate (once), then the tokenizer and the token shards
(`tokens.prepared/v1`), and records `run.started/v4` with the launch. It writes the run's plan
(run id, the decision's index and signature, the spec, tokenizer and token shards by digest) and
starts `torchrun` on `python -m custody.runs.distributed_run`.

Every rank joins the process group first, takes the plan from rank 0 (a rank on another node has
only its own home), and checks, against its own view of the ledger and its own artifact store,
before it reads a token: the decision at that index carries that signature, is a valid signed
allow judged by the bound policy for exactly the datasets' current digests; the spec and the
tokenizer are those bytes; the token shards were made from exactly the allowed datasets with
that tokenizer, and each shard hashes to its recorded digest. The ranks then agree (an
all-gather of their problems): if any rank found one, no rank trains, and rank 0 writes which
rank failed and why. Otherwise they train; rank 0 records each checkpoint and writes the
result. The launcher records one `run.finished/v4` (completed, or failed with the first failed
rank and the energy every reachable rank measured up to the failure).

A node other than the first runs the ranks only, with its own home (a shared PostgreSQL ledger,
the same artifacts):

    torchrun --nnodes M --node-rank R --nproc-per-node N --rdzv-backend static \\
        --master-addr HOST --master-port PORT -m custody.runs.distributed_run --home HOME
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from custody import __version__
from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.home import Home, actor_name
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.runs.api import GovernedRun
from custody.runs.governed import RunRefused, require_allow
from custody.runs.outcome import carbon_config, emissions_body
from custody.runs.spec import LoadedSpec, spec_from_text
from custody.runs.training import model_for, prepare_language_model, train_config
from custody.train.carbon import TRACKER, Emissions, measured_before, not_measured_body
from custody.train.checkpoint import SavedCheckpoint
from custody.train.distributed import exit_rank, setup_distributed, shutdown_distributed
from custody.train.loop import Hooks, train
from custody.train.token_shards import ENTRY_TYPE as TOKENS_ENTRY
from custody.train.token_shards import open_tokens
from custody.train.tokenizer import load_tokenizer

PLAN_FILE, RESULT_FILE, FAILED_FILE = "plan.json", "result.json", "failed.json"
TORCHRUN_LOG = "torchrun.stderr"  # torchrun's output, kept when it fails


class LaunchError(RuntimeError):
    """The ranks could not start or did not finish; the run is recorded as failed."""


@dataclass(frozen=True)
class Launch:
    """How many processes, on how many nodes, meeting where (torchrun's own flags)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None  # HOST:PORT of the first node; None: one node (--standalone)
    timeout_s: float | None = None

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def torchrun_args(self) -> list[str]:
        if self.rdzv_endpoint is None:
            where = ["--standalone"]
        else:  # static rendezvous: this node (rank 0) hosts the store the other nodes join
            host, _, port = self.rdzv_endpoint.rpartition(":")
            where = ["--rdzv-backend=static", f"--master-addr={host}", f"--master-port={port}", "--node-rank=0"]
        return [f"--nproc-per-node={self.nproc_per_node}", f"--nnodes={self.nnodes}", *where]


def decision_signature(row: Any) -> str:
    """What identifies the decision entry for the ranks: its SSHSIG (a signed home), else its bytes' SHA-256."""
    envelope = query.envelope(row)
    return (
        envelope.get("sig")
        or hashlib.sha256(row.entry.encode() if isinstance(row.entry, str) else row.entry).hexdigest()
    )


# -- the launcher ---------------------------------------------------------------------------------


def train_distributed(run: GovernedRun, launch: Launch) -> None:
    """Prepare once, record the start, run torchrun, record the end (see the module docstring)."""
    home, outcome, say = run.home, run.outcome, run.say
    spec = outcome.spec.spec
    resume = run.resume
    lm = prepare_language_model(run)
    model, tokens = lm.model, lm.tokens
    config = train_config(spec)
    decision = query.at(home.storage, run.decision_index)
    plan = {
        "run_id": run.run_id,
        "spec_digest": outcome.spec.digest,
        "decision_index": run.decision_index,
        "decision_signature": decision_signature(decision),
        "tokens_index": tokens.entry_index,
        "tokenizer_digest": lm.tokenizer_digest,
        "actor": actor_name(run.actor),
        "world_size": launch.world_size,
        "resume_digest": resume.checkpoint_digest if resume else None,
    }
    started = {
        "trainer": "custody",
        "code_version": f"custody {__version__}, torch {torch.__version__}",
        "world_size": launch.world_size,
        "launch": {
            "launcher": "torchrun",
            "world_size": launch.world_size,
            "nnodes": launch.nnodes,
            "nproc_per_node": launch.nproc_per_node,
        },
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "seed": spec.training.seed,
        "parameters": model.num_params(),
        "tokenizer_digest": lm.tokenizer_digest,
        "model_config_digest": home.store.put_bytes(canonical_json(model.config.as_json())),
        "train_config_digest": home.store.put_bytes(canonical_json(config.as_json())),
        "init_checkpoint_digest": lm.init_digest,
        "tokens_index": tokens.entry_index,
        "resumed_from": resume.as_json() if resume else None,
    }
    index = run.record_started("run.started/v4", started)
    say(
        f"run {run.run_id} started: {model.num_params():,} parameters, {launch.world_size} ranks "
        f"({launch.nnodes} node(s) x {launch.nproc_per_node}) (ledger index {index})"
    )
    del model
    out = run.directory
    out.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT_FILE, FAILED_FILE, TORCHRUN_LOG):
        (out / stale).unlink(missing_ok=True)
    (out / PLAN_FILE).write_text(json.dumps(plan, indent=2), "utf-8")
    command = [
        sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(),
        "-m", "custody.runs.distributed_run", "--plan", str(out / PLAN_FILE), "--home", str(home.path),
    ]  # fmt: skip
    command += ["--database", home.database_url]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=launch.timeout_s)
    except subprocess.TimeoutExpired as exc:
        _record_failure(run, out, f"torchrun did not finish within {launch.timeout_s} s")
        raise LaunchError(f"run {run.run_id}: torchrun did not finish within {launch.timeout_s} s") from exc
    if done.returncode != 0:
        # torchrun's own account (the ranks' tracebacks, its root-cause table) stays with the run
        (out / TORCHRUN_LOG).write_text(done.stderr[-200_000:], "utf-8")
        reason = _record_failure(run, out, _last_error(done.stderr) or f"torchrun exited {done.returncode}")
        raise LaunchError(f"run {run.run_id} failed: {reason}")
    _record_finished(run, out)


def _last_error(stderr: str) -> str:
    """The last line a failing rank wrote that names an error (torchrun prints the rank's traceback),
    with the exit code from torchrun's root-cause table when it gives one."""
    lines = [line.strip() for line in stderr.splitlines() if "Error" in line or "error:" in line]
    codes = [line.strip() for line in stderr.splitlines() if line.strip().startswith(("exitcode", "rank "))]
    found = lines[-1] if lines else ""
    if codes:
        found = f"{found} ({'; '.join(codes[-2:])})" if found else "; ".join(codes[-2:])
    return found[:400]


def _record_failure(run: GovernedRun, out: Path, fallback: str) -> str:
    """run.finished/v4, failed: the first failed rank and its reason (from the ranks' files on this
    node), and the energy the ranks measured up to the failure, summed."""
    failed = json.loads((out / FAILED_FILE).read_text("utf-8")) if (out / FAILED_FILE).exists() else {}
    measured = [json.loads(p.read_text("utf-8")) for p in sorted(out.glob("rank-*.failed.json"))]
    first = failed or (measured[0] if measured else {})
    reason = first.get("error") or fallback
    energies = [Emissions(**m["emissions"]) for m in measured if m.get("emissions")]
    if energies:
        total = energies[0]
        for more in energies[1:]:
            total = total + more
        emissions = emissions_body(total, f"{TRACKER}, up to the failure, {len(energies)} rank(s)")
    else:
        emissions = not_measured_body(carbon_config(run.outcome.spec.spec), "no rank measured before the failure")
    body = {
        "status": "failed",
        "error": reason[:500],
        "failed_rank": first.get("rank"),
        "steps": 0,
        "tokens": 0,
        "tokens_per_s": 0.0,
        "metrics_digest": run.home.store.put_bytes(canonical_json({"steps": [], "evals": []})),
        "emissions": emissions,
    }
    index = run.record_finished("run.finished/v4", body)
    run.say(f"run {run.run_id} failed: {reason} (ledger index {index})")
    return reason


def _record_finished(run: GovernedRun, out: Path) -> None:
    result = json.loads((out / RESULT_FILE).read_text("utf-8"))
    last_eval = result["evals"][-1] if result["evals"] else {}
    metrics = {
        "steps": [{"step": i + 1, "train_loss": loss} for i, loss in enumerate(result["losses"])],
        "evals": result["evals"],
    }
    body = {
        "status": "completed",
        "steps": result["steps"],
        "tokens": result["tokens"],
        "tokens_per_s": round(result["tokens_per_s"], 1),
        "final_train_loss": result["losses"][-1] if result["losses"] else None,
        "final_val_loss": last_eval.get("val_loss"),
        "final_val_perplexity": last_eval.get("val_perplexity"),
        "model_digest": result["model_digest"],
        "metrics_digest": run.home.store.put_bytes(canonical_json(metrics)),
        "emissions": emissions_body(
            Emissions(**result["emissions"]), f"{TRACKER}, summed over {result['world_size']} processes"
        ),
        "mfu": result.get("mfu"),
    }
    index = run.record_finished("run.finished/v4", body, refs=[f"sha256:{result['model_digest']}"])
    run.home.checkpoint()
    run.outcome.result = result
    e = Emissions(**result["emissions"])
    run.say(
        f"run {run.run_id} finished on {result['world_size']} ranks: {result['steps']} steps, "
        f"{result['tokens_per_s']:,.0f} tokens/s, val loss {body['final_val_loss']:.4f}; "
        f"{e.energy_kwh * 1000:.3f} Wh over {e.processes} processes (ledger index {index})"
    )


# -- a rank -----------------------------------------------------------------------------------------


class _CheckpointHooks(Hooks):
    """Rank 0 records each checkpoint as it becomes durable (the launcher records start and end)."""

    def __init__(self, home: Home, plan: dict, tokens_per_step: int) -> None:
        self.home, self.plan, self.tokens_per_step = home, plan, tokens_per_step

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        self.home.store.put_file(checkpoint.path)  # the launcher's node and the others read it by digest
        body = {
            "run_id": self.plan["run_id"],
            "step": checkpoint.step,
            "checkpoint_digest": checkpoint.digest,
            "tokens": checkpoint.step * self.tokens_per_step,
            "train_loss": checkpoint.metrics["loss"],
            "val_loss": checkpoint.metrics.get("val_loss"),
            "val_perplexity": checkpoint.metrics.get("val_perplexity"),
        }
        self.home.record("run.checkpoint/v1", f"run:{self.plan['run_id']}", body, actor=self.plan["actor"])


@dataclass
class _Verified:
    loaded: LoadedSpec
    data: Any
    model: Any


def verify_plan(home: Home, plan: dict) -> _Verified:
    """Everything a rank checks before it reads a token (the module docstring); raises RunRefused or
    ShardIntegrityError naming what differs."""
    row = query.at(home.storage, plan["decision_index"])
    if row is None:
        raise RunRefused(f"this node's ledger has no entry at index {plan['decision_index']} (the decision)")
    if decision_signature(row) != plan["decision_signature"]:
        raise RunRefused(f"the entry at index {plan['decision_index']} is not the decision the launcher was given")
    spec_bytes = home.store.read_bytes(plan["spec_digest"])
    if hashlib.sha256(spec_bytes).hexdigest() != plan["spec_digest"]:
        raise RunRefused(f"the run spec sha256 {plan['spec_digest'][:12]} in this node's store is not those bytes")
    loaded = spec_from_text(spec_bytes.decode("utf-8"), f"spec sha256:{plan['spec_digest'][:12]}")
    body = query.envelope(row)["body"]
    registry = DatasetRegistry(home)
    refs = [s["name"].removeprefix("dataset:") for s in body["subjects"] if s["name"].startswith("dataset:")]
    datasets = [registry.get(parse_ref(ref)) for ref in refs]
    require_allow(home, plan["decision_index"], datasets)
    tokens_row = query.at(home.storage, plan["tokens_index"])
    tokens = query.envelope(tokens_row)["body"] if tokens_row is not None else None
    if tokens is None or query.envelope(tokens_row)["type"] != TOKENS_ENTRY:
        raise RunRefused(f"ledger entry {plan['tokens_index']} is not a {TOKENS_ENTRY} entry")
    made_from = {(d["ref"], d["digest"]) for d in tokens["datasets"]}
    if (
        made_from != {(str(d.ref), d.digest) for d in datasets}
        or tokens["tokenizer_digest"] != plan["tokenizer_digest"]
    ):
        raise RunRefused(f"token shards {plan['tokens_index']} were not made from the allowed data with this tokenizer")
    spec = loaded.spec
    tokenizer = load_tokenizer(home.store.path_for(plan["tokenizer_digest"]), plan["tokenizer_digest"])
    model, _ = model_for(home, spec, tokenizer)
    data = open_tokens(home, plan["tokens_index"], model.config.block_size)  # every shard hashed first
    return _Verified(loaded, data, model)


def rank_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m custody.runs.distributed_run")
    parser.add_argument("--plan", type=Path, help="the launcher's plan (rank 0 of the first node reads it)")
    parser.add_argument("--home", default=None, help="this node's custody home (default $CUSTODY_HOME)")
    parser.add_argument("--database", default=None)
    args = parser.parse_args(argv)
    dist = setup_distributed()
    home: Home | None = None
    out: Path | None = None
    try:
        plan = dist.broadcast(json.loads(args.plan.read_text("utf-8")) if dist.is_main else None)
        problem = None
        try:
            home = Home.open(args.home, args.database)
            out = home.path / "runs" / plan["run_id"]
            verified = verify_plan(home, plan)
        except Exception as exc:  # every rank's problem is gathered before anyone trains
            problem = f"rank {dist.rank}: {type(exc).__name__}: {exc}"
        problems = [problem] * dist.world_size
        if dist.world_size > 1:
            torch.distributed.all_gather_object(problems, problem)
        failed = [(rank, p) for rank, p in enumerate(problems) if p]
        if failed:
            if dist.is_main and out is not None:
                rank, reason = failed[0]
                out.mkdir(parents=True, exist_ok=True)
                (out / FAILED_FILE).write_text(json.dumps({"rank": rank, "error": reason}), "utf-8")
            print(f"custody: not training: {failed[0][1]}", file=sys.stderr)
            return 1
        spec = verified.loaded.spec
        config = train_config(spec)
        hooks = _CheckpointHooks(home, plan, config.batch_size * verified.model.config.block_size)
        meta = {
            "run_id": plan["run_id"],
            "spec_digest": plan["spec_digest"],
            "tokenizer_digest": plan["tokenizer_digest"],
        }
        try:
            result = train(
                verified.model, verified.data, config, out, hooks=hooks, carbon=carbon_config(spec), meta=meta
            )
        except BaseException as exc:
            partial = measured_before(exc)
            (out / f"rank-{dist.rank}.failed.json").write_text(
                json.dumps({"rank": dist.rank, "error": f"rank {dist.rank}: {type(exc).__name__}: {exc}"[:500],
                            "emissions": partial.as_json() if partial else None}),
                "utf-8",
            )  # fmt: skip
            raise
        if dist.is_main:
            (out / RESULT_FILE).write_text(
                json.dumps(
                    {
                        "steps": result.steps,
                        "losses": result.losses,
                        "evals": result.evals,
                        "tokens": result.tokens,
                        "tokens_per_s": result.tokens_per_s,
                        "model_digest": result.final.digest,
                        "emissions": result.emissions.as_json(),
                        "world_size": dist.world_size,
                        "mfu": result.mfu,
                    }
                ),
                "utf-8",
            )
        return 0
    finally:
        if home is not None:
            home.close()
        shutdown_distributed()


if __name__ == "__main__":
    exit_rank(rank_main())
