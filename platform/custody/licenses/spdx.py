"""SPDX license expressions: parse, validate and normalize, never raise.

A declared license is an SPDX license expression (`MIT`, `Apache-2.0 OR MIT`,
`GPL-2.0-or-later WITH Classpath-exception-2.0`). `parse_expression` turns one into a
`ParsedExpression`; an expression that does not parse, or that names an id the SPDX License List
does not know, comes back with `error` set: a finding for the caller to report, not a crash.

Parsing uses `license-expression` with the SPDX license list it bundles, with two changes:

* `LicenseRef-*` and `DocumentRef-*:LicenseRef-*` ids are user-defined by SPDX's rules, so they
  are accepted and kept exactly as written. (`license-expression` ships ScanCode aliases such as
  `LicenseRef-Apache` -> `Apache-2.0`; those aliases are dropped here, since a LicenseRef names
  whatever its author defined, not a list license.)
* `NOASSERTION` and `NONE` (SPDX's "not stated" and "no license") are accepted as ids of their own.

Deprecated ids are normalized to their current form, as `license-expression` does
(`GPL-3.0` -> `GPL-3.0-only`, `GPL-2.0+` -> `GPL-2.0-or-later`), and ids are matched
case-insensitively (`mit` -> `MIT`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

# SPDX's special values for a license field: nothing stated, and no license at all.
SPECIAL_IDS = ("NOASSERTION", "NONE")

# A parsed expression as a small tree: ("id", license_id), ("with", license_id, exception_id),
# ("and", [children]) or ("or", [children]).
Tree = tuple[Any, ...]


@dataclass(frozen=True)
class ParsedExpression:
    """The outcome of parsing one declared license expression.

    `normalized` is the canonical rendering (None on error); `license_ids` the distinct license ids
    it names, in order of appearance, without exception ids (those are in `exceptions`).
    """

    original: str
    normalized: str | None
    license_ids: list[str]
    error: str | None
    exceptions: list[str] = field(default_factory=list)
    tree: Tree | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def is_user_defined(license_id: str) -> bool:
    """True for `LicenseRef-*` and `DocumentRef-*:LicenseRef-*` ids."""
    lowered = license_id.lower()
    return lowered.startswith("licenseref-") or (lowered.startswith("documentref-") and ":licenseref-" in lowered)


@functools.cache
def _licensing():
    """The SPDX licensing of `license-expression`, without its LicenseRef aliases."""
    from license_expression import LicenseSymbol, Licensing, get_spdx_licensing

    seen: set[str] = set()
    symbols = []
    for symbol in get_spdx_licensing().known_symbols.values():
        if symbol.key in seen:
            continue
        seen.add(symbol.key)
        aliases = tuple(a for a in symbol.aliases if not is_user_defined(a))
        symbols.append(LicenseSymbol(key=symbol.key, aliases=aliases, is_exception=symbol.is_exception))
    for special in SPECIAL_IDS:
        if special not in seen:
            symbols.append(LicenseSymbol(key=special))
    return Licensing(symbols)


@functools.cache
def known_ids() -> dict[str, str]:
    """Lower-cased id or alias -> canonical SPDX license id (exceptions left out)."""
    out: dict[str, str] = {}
    for symbol in _licensing().known_symbols.values():
        if symbol.is_exception:
            continue
        out.setdefault(symbol.key.lower(), symbol.key)
        for alias in symbol.aliases:
            out.setdefault(alias.lower(), symbol.key)
    return out


def canonical_id(license_id: str) -> str | None:
    """The current SPDX id for `license_id` (any case, deprecated forms too), or None if unknown.

    User-defined `LicenseRef-*` ids and NOASSERTION/NONE come back as they are (the special values
    upper-cased).
    """
    text = license_id.strip()
    if not text:
        return None
    if is_user_defined(text):
        return text
    if text.upper() in SPECIAL_IDS:
        return text.upper()
    return known_ids().get(text.lower())


def _convert(node: Any, ids: list[str], exceptions: list[str]) -> Tree:
    from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        license_id = node.license_symbol.key
        exception_id = node.exception_symbol.key
        if license_id not in ids:
            ids.append(license_id)
        if exception_id not in exceptions:
            exceptions.append(exception_id)
        return ("with", license_id, exception_id)
    if isinstance(node, LicenseSymbol):
        if node.key not in ids:
            ids.append(node.key)
        return ("id", node.key)
    if isinstance(node, AND | OR):
        op = "and" if isinstance(node, AND) else "or"
        return (op, [_convert(arg, ids, exceptions) for arg in node.args])
    raise TypeError(f"unexpected node in a license expression: {type(node).__name__}")


def parse_expression(expr: str) -> ParsedExpression:
    """Parse and normalize an SPDX license expression; errors are returned, never raised."""
    original = expr
    if not isinstance(expr, str):
        return ParsedExpression(repr(original), None, [], f"not a string: {type(expr).__name__}")
    if not expr.strip():
        return ParsedExpression(original, None, [], "empty license expression")
    licensing = _licensing()
    try:
        parsed = licensing.parse(expr, validate=False, strict=True)
    except Exception as exc:  # the library raises several unrelated types; all of them are findings
        return ParsedExpression(original, None, [], f"unparseable license expression: {exc}")
    if parsed is None:
        return ParsedExpression(original, None, [], "empty license expression")
    try:
        unknown = [key for key in licensing.unknown_license_keys(parsed) if not is_user_defined(key)]
        if unknown:
            return ParsedExpression(original, None, [], f"unknown license id(s): {', '.join(unknown)}")
        ids: list[str] = []
        exceptions: list[str] = []
        tree = _convert(parsed, ids, exceptions)
        normalized = parsed.render()
    except Exception as exc:
        return ParsedExpression(original, None, [], f"invalid license expression: {exc}")
    for exception_id in exceptions:
        if exception_id in ids or exception_id.upper() in SPECIAL_IDS:
            return ParsedExpression(original, None, [], f"not a license exception: {exception_id}")
    return ParsedExpression(original, normalized, ids, None, exceptions, tree)
