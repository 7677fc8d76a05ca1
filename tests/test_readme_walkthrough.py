"""The README's walk-through runs verbatim, and every remedy custody prints runs as printed.

The walk-through block is taken from README.md as it is, and each of its command lines runs in a
shell in a folder holding what it names: ada's, alice's and bob's keys (`NAME.key`, `NAME.pub`)
and a small forum dump in `data/` with two toxic posts out of 56. A `# exit N` comment on a line
is the exit code it must give; any other line must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from custody.trust.sshkeys import generate_key

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def walkthrough() -> list[str]:
    """The walk-through's command lines, continuation lines joined, output comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### Walk-through.*?```bash\n(.*?)```", text, flags=re.S).group(1)
    lines, current = [], ""
    for raw in block.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        lines.append(current.strip())
        current = ""
    return [line for line in lines if line]


def forum(folder: Path) -> None:
    topics = ["the new trail by the river", "sourdough starters", "the late train", "fixing a bike chain"]
    openers = ["Has anyone tried", "Any tips about", "Loved reading about", "Writing up my notes on"]
    rows = [
        {"id": f"p{i}", "text": f"{openers[i % 4]} {topics[(i // 4) % 4]}? Post number {i}, thanks all."}
        for i in range(54)
    ]
    rows.insert(10, {"id": "t1", "text": "You are a fucking idiot and everything you post is shit."})
    rows.insert(40, {"id": "t2", "text": "Shut up, you stupid worthless moron, nobody wants your crap here."})
    folder.mkdir()
    (folder / "forum.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """The walk-through, run once; every command's output kept for the remedy test."""
    root = tmp_path_factory.mktemp("walkthrough")
    for name in ("ada", "alice", "bob"):
        generate_key(root / f"{name}.key", name)
        shutil.copy(root / f"{name}.key.pub", root / f"{name}.pub")
    forum(root / "data")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CUSTODY_HOME": str(root / ".custody"),
        "COLUMNS": "200",
    }
    # One shell for the whole block, as a person pastes it: `export` carries over.
    script, expected = [], []
    for i, line in enumerate(walkthrough()):
        code = re.search(r"#\s*exit (\d+)", line)
        expected.append(int(code.group(1)) if code else 0)
        script.append(f'{line}\necho "@@ {i} $?"')
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=root, env=env, capture_output=True, text=True)
    return root, env, done, expected


def test_the_walkthrough_runs_verbatim(walked):
    _, _, done, expected = walked
    codes = [int(code) for code in re.findall(r"^@@ \d+ (\d+)$", done.stdout, flags=re.M)]
    assert codes == expected, done.stdout + done.stderr
    assert "deny: 1 reason — purpose commercial, policy default (sha256 " in done.stdout
    assert "forum@1/toxicity.max-rate" in done.stdout
    assert "waived  forum@1/toxicity.max-rate by bob" in done.stdout
    assert "reproduced: decision" in done.stdout


def printed_commands(text: str) -> list[str]:
    """Every `custody ...` command custody printed between backticks."""
    return sorted(set(re.findall(r"`(custody [^`]+)`", text)))


def test_every_remedy_custody_prints_runs_as_printed(walked, tmp_path):
    """Remedies in gate reasons and errors, on a copy of the walk-through's home: each runs and
    exits 0; one whose placeholders (FILE, NAME, ...) a person must fill in runs with --help."""
    root, env, done, _ = walked
    home = tmp_path / "home"
    shutil.copytree(root / ".custody", home)
    env = {**env, "CUSTODY_HOME": str(home), "CUSTODY_KEY": str(root / "alice.key")}
    outputs = done.stdout + done.stderr
    # Errors that say what to do, provoked the way a new user would.
    for args in (["dataset", "show", "nope@1"], ["gate", "forum@1", "--purpose", "research"], ["people", "list"]):
        result = subprocess.run(["custody", *args], cwd=root, env=env, capture_output=True, text=True)
        outputs += result.stdout + result.stderr
    commands = printed_commands(outputs)
    assert "custody prepare forum@1 --stages drop-toxic" in commands
    assert any(c.startswith("custody policy bind research") for c in commands)
    ran = []
    for command in commands:
        placeholder = re.search(r"\b[A-Z][A-Z_]+\b|\[|\.\.\.", command.removeprefix("custody "))
        words = command.split()
        if placeholder:
            verbs = [w for w in words[1:] if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
            words = ["custody", *verbs, "--help"]
        result = subprocess.run(words, cwd=root, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"`{' '.join(words)}` (printed as `{command}`): {result.stdout}{result.stderr}"
        ran.append(" ".join(words))
    assert "custody prepare forum@1 --stages drop-toxic" in ran  # really run, not just its help
    # ...and the remedy did what it said: the prepared data passes.
    check = subprocess.run(["custody", "check", "forum@2"], cwd=root, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    gate = subprocess.run(["custody", "gate", "forum@2", "--purpose", "commercial"], cwd=root, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert gate.returncode == 0, gate.stdout + gate.stderr
