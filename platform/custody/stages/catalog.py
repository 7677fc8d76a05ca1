"""The stages custody knows by name."""

from __future__ import annotations

from collections.abc import Callable

from custody.home import Home
from custody.stages.base import Stage


def _redact_pii(home: Home) -> Stage:
    from custody.stages.redact import RedactPii

    return RedactPii(home)


def _drop_toxic(home: Home) -> Stage:
    from custody.stages.toxic import DropToxic

    return DropToxic(home)


_BUILDERS: dict[str, Callable[[Home], Stage]] = {"redact-pii": _redact_pii, "drop-toxic": _drop_toxic}


def available_stages() -> list[str]:
    return list(_BUILDERS)


def build_stage(name: str, home: Home) -> Stage:
    return _BUILDERS[name](home)
