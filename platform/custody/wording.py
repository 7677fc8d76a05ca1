"""One way to say counts and quantities to people: correct plurals, readable units, no reprs.

Used by the CLI, the dashboard and the reports alike, so the same number reads the same
everywhere. Machine output (`--json`) keeps raw values in base units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_IRREGULAR = {"entry": "entries", "summary": "summaries", "policy": "policies", "body": "bodies", "index": "indices"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 record`, `2 records`, `0 entries`: a count with its noun in the right number."""
    if count == 1:
        return f"{count:,} {noun}"
    if many is None:
        last = noun.split()[-1]
        if last in _IRREGULAR:
            many = noun[: -len(last)] + _IRREGULAR[last]
        elif last.endswith(("s", "x", "ch", "sh")):
            many = noun + "es"
        elif last.endswith("y") and last[-2:-1] not in "aeiou":
            many = noun[:-1] + "ies"
        else:
            many = noun + "s"
    return f"{count:,} {many}"


def counts(tally: Mapping[str, int], order: tuple[str, ...] = ("pass", "flag", "fail")) -> str:
    """`120 pass, 12 flag` (known keys in order, then the rest), never a dict's repr."""
    keys = [k for k in order if tally.get(k)] + sorted(k for k in tally if k not in order and tally[k])
    return ", ".join(f"{tally[k]:,} {k}" for k in keys) or "none"


def _scaled(value: float, units: tuple[tuple[float, str], ...], digits: int = 3) -> str:
    """`value` (in the first unit's base) in the largest unit that keeps it at or above 1."""
    for factor, unit in reversed(units):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {unit}"
    # Below the smallest unit: positional digits, never `1.23e-05` (people do not read exponents).
    factor, unit = units[0]
    small = value / factor
    if small == 0:
        return f"0 {unit}"
    decimals = digits - 1 - math.floor(math.log10(abs(small)))
    return f"{small:.{decimals}f}".rstrip("0").rstrip(".") + f" {unit}"


def energy(kwh: float) -> str:
    """kWh in Wh, kWh or MWh, whichever reads best: 0.000317 -> `0.317 Wh`."""
    return _scaled(kwh, ((1e-3, "Wh"), (1.0, "kWh"), (1e3, "MWh")))


def mass(kg: float) -> str:
    """kg in g, kg or t: 0.000123 -> `0.123 g`."""
    return _scaled(kg, ((1e-3, "g"), (1.0, "kg"), (1e3, "t")))


def volume(litres: float) -> str:
    """Litres in mL, L or m³: 0.0011 -> `1.1 mL`."""
    return _scaled(litres, ((1e-3, "mL"), (1.0, "L"), (1e3, "m³")))


def data_size(count: int) -> str:
    """Bytes in B, kB, MB, GB or TB (powers of 1000, as disks are sold)."""
    if count < 1000:
        return plural(count, "byte")
    return _scaled(float(count), ((1.0, "B"), (1e3, "kB"), (1e6, "MB"), (1e9, "GB"), (1e12, "TB")))
