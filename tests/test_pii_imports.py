"""Opening the PII scanner imports neither torch nor transformers (custody.pii.imports), and a
process that wants them afterwards, or had them before, gets the real packages."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import sys
{before}
from custody.pii.fast import get_scanner
spans = get_scanner().scan_batch(["Call John Smith in London on +1 212 555 0100."])[0]
assert {span.entity_type for span in spans} >= {"PERSON", "PHONE_NUMBER"}, spans
print("torch" in sys.modules, "transformers" in sys.modules)
import torch, transformers
print(torch.tensor([1.0, 2.0]).sum().item(), transformers.GPT2Config(n_layer=1).n_layer)
"""


def probe(before: str = "") -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("{before}", before)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split("\n")[:2]


def test_the_scanner_opens_without_torch_or_transformers_and_they_still_import_after() -> None:
    assert probe() == ["False False", "3.0 1"]


def test_a_process_that_already_has_torch_keeps_it() -> None:
    assert probe("import torch") == ["True False", "3.0 1"]
