"""Where a run's wall time went: named spans stamped with the wall clock, driver and workers alike.

A `Timeline` is optional everywhere (`run_check(..., timeline=...)`); nothing recorded depends
on it. The driver adds its own phases (opening the check, accepting shards, concatenating,
recording); an executor adds what its workers report (start-up, model load, each shard's scan).
Stamps are `time.time()` so spans from processes on one machine line up; across machines they
are as good as the clocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    name: str
    start: float  # time.time()
    end: float
    labels: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Timeline:
    def __init__(self) -> None:
        self.spans: list[Span] = []

    def add(self, name: str, start: float, end: float, **labels: Any) -> None:
        self.spans.append(Span(name, start, end, labels))

    @contextmanager
    def span(self, name: str, **labels: Any) -> Iterator[None]:
        """Time the block; `cpu` is this process's CPU seconds in it (every thread's)."""
        start, cpu = time.time(), time.process_time()
        try:
            yield
        finally:
            self.add(name, start, time.time(), cpu=time.process_time() - cpu, **labels)

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def seconds(self, name: str) -> float:
        """The summed length of every span called `name`."""
        return sum(s.seconds for s in self.named(name))


@contextmanager
def maybe(timeline: Timeline | None, name: str, **labels: Any) -> Iterator[None]:
    """`timeline.span(...)`, or nothing when there is no timeline."""
    if timeline is None:
        yield
    else:
        with timeline.span(name, **labels):
            yield
