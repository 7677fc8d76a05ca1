"""A chain of stages over one dataset: each output feeds the next, the last takes the target name.

Used by `custody prepare` and by `custody run` (a run spec's preparation), so both name
intermediate outputs, build stages and report errors the same way.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from typing import Any

from custody.datasets.names import DatasetRef
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.pipeline.executors.base import Executor
from custody.pipeline.run_stage import DEFAULT_CARBON, StageResult, run_stage
from custody.stages.base import StageError
from custody.stages.catalog import STAGES
from custody.train.carbon import CarbonConfig


def intermediate_ref(target: DatasetRef, position: int, stage: str) -> DatasetRef:
    """Intermediate outputs are named after the final one, so lineage reads in order."""
    return DatasetRef(target.name, f"{target.version}+{position}-{stage}")


def parse_option(text: str) -> tuple[str, str, Any]:
    """`STAGE.KEY=VALUE` with VALUE read as a TOML value (a bare word is a string)."""
    name, sep, value = text.partition("=")
    stage, dot, key = name.strip().partition(".")
    if not sep or not dot or not stage or not key:
        raise StageError(f"--option {text!r}: expected STAGE.KEY=VALUE, e.g. dedup-near.threshold=0.9")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return stage, key.strip(), parsed


def run_chain(
    home: Home,
    source: RegisteredDataset,
    stages: list[str],
    target: DatasetRef,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    actor: str | None = None,
    on_result: Callable[[StageResult], None] | None = None,
    executor: Executor | None = None,
    carbon: CarbonConfig | None = DEFAULT_CARBON,
) -> list[StageResult]:
    """Apply `stages` in order to `source`; the last output is registered as `target`.

    With a Ray `executor`, per-record stages run on its workers; the others in this process.
    Each stage is measured by its own tracker with `carbon` (None: not measured).
    """
    options = options or {}
    for name in [*stages, *options] or [""]:
        STAGES.entry(name)  # an unknown name is refused with the known ones
    stray = [n for n in options if n not in stages]
    if stray:
        raise StageError(f"options given for stage '{stray[0]}', which is not in the chain ({', '.join(stages)})")
    # Every stage is built, and its options checked, before anything runs.
    built = [STAGES.build(name, home, options=dict(options.get(name, {}))) for name in stages]
    results, current = [], source
    for i, stage in enumerate(built):
        out = target if i == len(built) - 1 else intermediate_ref(target, i + 1, stage.name)
        given = dict(options.get(stage.name, {}))
        result = run_stage(home, stage, current, out, actor=actor, executor=executor, options=given, carbon=carbon)
        results.append(result)
        current = result.output
        if on_result:
            on_result(result)
    return results
