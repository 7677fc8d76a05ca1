"""py-cpuinfo's answer kept per machine (train/cpu_info.py): CodeCarbon's CPU lookup costs ~1.1 s
in every fresh process otherwise. The kept answer is the one py-cpuinfo gave, keyed by the lines of
/proc/cpuinfo that describe the CPU, and a damaged or missing cache is asked again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custody.train.cpu_info import cached_cpu_info, machine_key

PROC = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 7
cpu MHz\t\t: {mhz}
flags\t\t: fpu vme de pse
bogomips\t: {bogomips}
"""


class Asker:
    def __init__(self, answer: dict) -> None:
        self.answer, self.calls = answer, 0

    def __call__(self) -> dict:
        self.calls += 1
        return dict(self.answer)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(PROC.format(mhz="2000.000", bogomips="4000.00"))
    return path


def test_the_first_call_asks_and_later_ones_read_the_kept_answer(tmp_path, proc):
    ask = Asker({"brand_raw": "Intel(R) Xeon(R) Processor", "count": 2})
    first = cached_cpu_info(ask, tmp_path / "cache", proc)
    second = cached_cpu_info(ask, tmp_path / "cache", proc)
    assert first == second == ask.answer
    assert ask.calls == 1


def test_the_clock_speed_does_not_change_the_key_but_the_cpu_does(tmp_path, proc):
    before = machine_key(proc)
    proc.write_text(PROC.format(mhz="3100.512", bogomips="6200.00"))
    assert machine_key(proc) == before, "cpu MHz and bogomips move on a running machine"
    proc.write_text(PROC.format(mhz="2000.000", bogomips="4000.00").replace("Xeon(R) Processor", "EPYC 7B13"))
    assert machine_key(proc) != before


def test_a_damaged_cache_is_asked_again_and_rewritten(tmp_path, proc):
    ask = Asker({"brand_raw": "Intel(R) Xeon(R) Processor"})
    cached_cpu_info(ask, tmp_path / "cache", proc)
    (kept,) = (tmp_path / "cache").iterdir()
    kept.write_text("{not json")
    assert cached_cpu_info(ask, tmp_path / "cache", proc) == ask.answer
    assert ask.calls == 2
    assert json.loads(kept.read_text())["info"] == ask.answer
    kept.write_text(json.dumps({"key": "another machine's", "info": {"brand_raw": "wrong"}}))
    assert cached_cpu_info(ask, tmp_path / "cache", proc) == ask.answer, "a key that does not match is not used"


def test_without_proc_cpuinfo_or_a_writable_cache_it_asks_every_time(tmp_path, proc):
    ask = Asker({"brand_raw": "x"})
    assert cached_cpu_info(ask, tmp_path / "cache", tmp_path / "missing") == ask.answer
    assert cached_cpu_info(ask, tmp_path / "cache", tmp_path / "missing") == ask.answer
    assert ask.calls == 2
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert cached_cpu_info(ask, blocked / "cache", proc) == ask.answer
    assert cached_cpu_info(ask, blocked / "cache", proc) == ask.answer
    assert ask.calls == 4


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_the_kept_answer_is_py_cpuinfos_own(tmp_path):
    import cpuinfo

    real = cpuinfo.get_cpu_info
    if getattr(real, "custody_cached", False):  # a meter in this process already wrapped it
        real = real.__wrapped__
    kept = cached_cpu_info(real, tmp_path / "cache")
    again = cached_cpu_info(lambda: pytest.fail("asked twice"), tmp_path / "cache")
    assert again == kept
    assert kept["brand_raw"] == real()["brand_raw"]
