"""Dataset references `name@version`: validated so a name can never become a path or a query."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*(\.[A-Za-z0-9_+-]+)*$")
MAX_NAME = 128
MAX_VERSION = 64


class DatasetRefError(ValueError):
    """A dataset name, version or reference is not acceptable."""


@dataclass(frozen=True, order=True)
class DatasetRef:
    name: str
    version: str

    def __post_init__(self) -> None:
        check_name(self.name)
        check_version(self.version)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def subject(self) -> str:
        """The ledger subject every entry about this dataset carries."""
        return f"dataset:{self}"


_INTERMEDIATE = re.compile(r"\+[0-9]+-[a-z][a-z0-9-]*$")


def is_intermediate(ref: DatasetRef) -> bool:
    """An output a chain of stages passed on to its next stage (`NAME@V+2-dedup-exact`).

    Kept for lineage, hidden from lists, charts and counts unless asked for (`--all`)."""
    return bool(_INTERMEDIATE.search(ref.version))


def next_version(versions: list[str]) -> str:
    """The version a person would give the next release: one above the highest whole number."""
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def check_name(name: str) -> str:
    if not (0 < len(name) <= MAX_NAME) or not _NAME.match(name):
        raise DatasetRefError(
            f"dataset name {name[:80]!r} must be lowercase letters, digits, '-', '_' and single dots "
            f"(no path separators or '..'), at most {MAX_NAME} characters"
        )
    return name


def check_version(version: str) -> str:
    if not (0 < len(version) <= MAX_VERSION) or not _VERSION.match(version):
        raise DatasetRefError(
            f"dataset version {version[:80]!r} must be letters, digits, '-', '_', '+' and single dots, "
            f"at most {MAX_VERSION} characters"
        )
    return version


def parse_ref(text: str) -> DatasetRef:
    name, sep, version = text.partition("@")
    if not sep:
        raise DatasetRefError(f"{text[:80]!r} is not a dataset reference NAME@VERSION")
    return DatasetRef(check_name(name), check_version(version))
