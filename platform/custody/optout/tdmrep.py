"""W3C TDMRep (TDM Reservation Protocol, Community Group final report of 10 May 2024).

A rights holder reserves text and data mining with `tdm-reservation: 1` (0: not reserved; any
other value is a protocol error and counts as unset), optionally pointing at the terms on which
a licence can be had with `tdm-policy: URL`. Three places say it, the nearest to the content
winning: an HTML `<meta name="tdm-reservation" content="1">` over an HTTP response header over
the site's `/.well-known/tdmrep.json`. That file is a JSON array of rules
`{"location": "/path/*", "tdm-reservation": 1, "tdm-policy": "..."}`; the first rule whose
location pattern matches the URL's path applies (patterns as in robots.txt: a prefix, `*` for
any characters, `$` at the end to anchor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from custody.optout.robots import PathRule, normalize_path


@dataclass(frozen=True)
class TdmDeclaration:
    reservation: int | None  # 1 reserved, 0 not, None unset (or a protocol error)
    policy: str | None
    where: str  # what said it: `tdmrep.json rule 2 (location /news/*)`, `header`, `html meta`

    def text(self) -> str:
        said = f"tdm-reservation: {self.reservation}"
        return said + (f", tdm-policy: {self.policy}" if self.policy else "") + f" ({self.where})"


def reservation_value(value: object) -> int | None:
    """1 or 0 from an integer or its text; anything else is unset."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in (0, 1) else None
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    return None


@dataclass(frozen=True)
class TdmRule:
    position: int  # 1-based place in the file
    location: PathRule
    reservation: int | None
    policy: str | None


def parse_file(data: bytes | str) -> list[TdmRule]:
    """The rules of a tdmrep.json (ValueError when it is not a JSON array of objects)."""
    doc = json.loads(data)
    if not isinstance(doc, list):
        raise ValueError("tdmrep.json must be a JSON array of rules")
    rules = []
    for i, item in enumerate(doc, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"rule {i} is not a JSON object")
        location = item.get("location")
        if not isinstance(location, str) or not location.strip():
            raise ValueError(f"rule {i} has no 'location'")
        location = location.strip()
        if location.startswith(("http://", "https://")):
            location = urlsplit(location).path or "/"
        if location[0] not in "/*":
            location = "/" + location
        policy = item.get("tdm-policy")
        rules.append(
            TdmRule(
                i,
                PathRule("location", normalize_path(location), "", i),
                reservation_value(item.get("tdm-reservation")),
                policy if isinstance(policy, str) and policy.strip() else None,
            )
        )
    return rules


def from_file(rules: list[TdmRule], path: str) -> TdmDeclaration | None:
    """The first rule whose location matches `path` (already normalised), or None."""
    for rule in rules:
        if rule.location.matches(path):
            where = f"tdmrep.json rule {rule.position}, location {rule.location.pattern}"
            return TdmDeclaration(rule.reservation, rule.policy, where)
    return None


def from_fields(fields: dict[str, list[str]], where: str) -> TdmDeclaration | None:
    """A declaration in response headers or HTML meta names (lower-cased names -> values)."""
    if "tdm-reservation" not in fields and "tdm-policy" not in fields:
        return None
    values = fields.get("tdm-reservation", [])
    reservation = reservation_value(values[-1]) if values else None
    policies = fields.get("tdm-policy", [])
    return TdmDeclaration(reservation, policies[-1].strip() if policies else None, where)


def decide(*declarations: TdmDeclaration | None) -> TdmDeclaration | None:
    """The declaration that applies, nearest to the content first (meta, header, file)."""
    return next((d for d in declarations if d is not None and d.reservation is not None), None)
