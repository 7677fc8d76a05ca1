"""The end-to-end demo: every step is a real `custody` command, printed before it runs.

It builds its own home (a temp dir unless --home is given) and generates its own data, so it
needs nothing but the installed package: no network, no shared files.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from custody.demo_data import write_demo_card, write_demo_corpus

console = Console(highlight=False, soft_wrap=True, markup=False)


class DemoStepFailed(RuntimeError):
    pass


def _custody(*args: str, capture: bool = False) -> str:
    command = [sys.executable, "-m", "custody", *args]
    console.print(f"\n$ custody {' '.join(shlex.quote(a) for a in args)}", style="bold cyan")
    # Wide output: the commands print tables that a terminal would show side by side.
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "160")}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    output = (result.stdout + result.stderr).rstrip()
    if output and not capture:
        console.print(output)
    if result.returncode != 0:
        console.print(output)
        raise DemoStepFailed(f"`custody {' '.join(args)}` exited {result.returncode}")
    return result.stdout.strip()


def run_demo(home: Path | None = None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="custody-demo-"))
    home = home or workdir / "home"
    h = ("--home", str(home))
    try:
        console.rule("custody demo: the tamper-evident audit ledger", style="bold")
        _custody("init", *h)
        _custody(
            "ledger",
            "note",
            "Data-use agreement with the web-crawl vendor signed (ref DUA-2026-014)",
            "--subject",
            "dataset:web-crawl",
            "--as",
            "legal@example.org",
            *h,
        )
        _custody(
            "ledger",
            "note",
            "Takedown request received for 3 documents; review scheduled",
            "--subject",
            "dataset:web-crawl",
            "--as",
            "privacy@example.org",
            *h,
        )
        first = workdir / "checkpoint-1.note"
        _custody("ledger", "checkpoint", "--out", str(first), *h)
        for text in (
            "Reviewer approved the license mix for research use",
            "Training run planned on the approved mixture",
        ):
            _custody("ledger", "note", text, "--subject", "dataset:web-crawl", "--as", "reviewer@example.org", *h)
        _custody("ledger", "show", *h)
        proof = workdir / "proof-1.json"
        _custody("ledger", "proof", "1", "--out", str(proof), *h)
        key = _custody("ledger", "pubkey", *h)
        console.print("# an auditor needs only the proof file and the key:", style="dim")
        _custody("ledger", "verify-proof", str(proof), "--key", key)
        _custody("ledger", "consistency", str(first), *h)
        console.rule("datasets: registration and the provenance, license, PII and toxicity checks", style="bold")
        data = write_demo_corpus(workdir / "web-text")
        card = write_demo_card(workdir / "web-text.card.toml")
        _custody(
            "dataset",
            "register",
            str(data),
            "--name",
            "web-text",
            "--version",
            "1",
            "--card",
            str(card),
            "--id-field",
            "id",
            "--as",
            "engineer@example.org",
            *h,
        )
        _custody("dataset", "show", "web-text@1", *h)
        _custody("check", "web-text@1", "--checks", "provenance,license,pii,toxicity", *h)
        findings = workdir / "provenance-findings.jsonl"
        _custody("findings", "web-text@1", "--check", "provenance", "--out", str(findings), *h)
        console.rule("preparation: redact PII, drop toxic records", style="bold")
        _custody("prepare", "web-text@1", "--stages", "redact-pii,drop-toxic", "--as", "web-text@2", *h)
        _custody("dataset", "lineage", "web-text@2", *h)
        _custody("ledger", "show", "--type", "check.", *h)
        _custody("ledger", "verify", *h)
    except DemoStepFailed as exc:
        console.print(f"demo failed: {exc}", style="bold red")
        return 1
    console.rule("demo complete", style="bold green")
    console.print(f"home: {home}\nproof: {proof}\nfirst checkpoint: {first}\nprovenance findings: {findings}")
    return 0
