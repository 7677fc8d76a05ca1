"""The checks custody knows by name, and how to build each with its default configuration."""

from __future__ import annotations

from collections.abc import Callable

from custody.checks.base import Check


def _provenance() -> Check:
    from custody.checks.provenance import ProvenanceCheck

    return ProvenanceCheck()


def _license() -> Check:
    from custody.checks.license import LicenseCheck

    return LicenseCheck()


def _toxicity() -> Check:
    from custody.checks.toxicity import ToxicityCheck

    return ToxicityCheck()


def _pii() -> Check:
    from custody.checks.pii import PiiCheck

    return PiiCheck()


_BUILDERS: dict[str, Callable[[], Check]] = {
    "provenance": _provenance,
    "license": _license,
    "toxicity": _toxicity,
    "pii": _pii,
}


def available_checks() -> list[str]:
    return list(_BUILDERS)


def build_check(name: str) -> Check:
    return _BUILDERS[name]()
