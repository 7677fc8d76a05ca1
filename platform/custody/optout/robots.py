"""robots.txt as RFC 9309 reads it, with the two usage rules sites now add to its groups.

A group is one or more `user-agent` lines followed by rules; a `user-agent` line after a rule
starts the next group. A crawler obeys the groups naming its product token (case-insensitive,
all of them merged), else the `*` groups, else nothing is disallowed. Among the Allow and
Disallow rules whose path pattern matches the URL's path (and query), the longest pattern wins;
an Allow wins a tie. Patterns match from the start of the path; `*` stands for any characters
and a final `$` ends the match. Paths and patterns are compared after percent-encoding what is
not ASCII and decoding what needs no encoding (RFC 9309 section 2.2.2). Only the first 500 KiB
are read, the least RFC 9309 asks a crawler to parse.

`Content-Usage: /path train-ai=n` (draft-ietf-aipref-attach) and `Content-Signal: ai-train=no`
(Cloudflare's Content Signals Policy) are rules of the group they sit in and apply to paths by
the same longest match; a value that does not start with `/` applies to the whole site, as the
early drafts wrote it. Rules of the same length all apply. Such lines before the first group
apply to every crawler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

MAX_BYTES = 500 * 1024
USAGE_LABELS = ("content-usage", "content-signal")
_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PRODUCT = re.compile(r"[A-Za-z_\-]+|\*")


def normalize_path(path: str) -> str:
    """Percent-encode what is not printable ASCII; decode escapes of unreserved characters; upper-case the rest."""
    encoded = "".join(
        c if "!" <= c <= "~" else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")) for c in path
    )

    def fix(match: re.Match) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _ESCAPE.sub(fix, encoded)


def url_path(url: str) -> str:
    """The path and query a robots.txt rule is matched against (`/` for an empty path)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # `*` and `$` in a URL are themselves; a pattern names them as %2A and %24 (RFC 9309 2.2.3)
    return normalize_path(path.replace("*", "%2A").replace("$", "%24"))


@dataclass(frozen=True)
class PathRule:
    """One rule of a group: its pattern as written, the line it is on, and what it says."""

    label: str  # allow | disallow | content-usage | content-signal
    pattern: str  # normalised
    value: str  # the preference of a usage rule; "" for allow and disallow
    line: int

    @cached_property
    def _regex(self) -> re.Pattern:
        body, anchored = (self.pattern[:-1], True) if self.pattern.endswith("$") else (self.pattern, False)
        regex = ".*".join(re.escape(part) for part in body.split("*"))
        return re.compile(regex + ("$" if anchored else ""), re.S)

    def matches(self, path: str) -> bool:
        return self._regex.match(path) is not None

    @property
    def length(self) -> int:
        return len(self.pattern.encode("utf-8"))

    def text(self) -> str:
        name = {"allow": "Allow", "disallow": "Disallow", "content-usage": "Content-Usage"}.get(
            self.label, "Content-Signal"
        )
        shown = self.pattern if self.label in ("allow", "disallow") else f"{self.pattern} {self.value}"
        return f"{name}: {shown} (line {self.line})"


@dataclass
class Group:
    agents: list[str] = field(default_factory=list)  # product tokens, lower case
    rules: list[PathRule] = field(default_factory=list)


def _pattern(value: str) -> str:
    value = value.strip()
    if value and value[0] not in "/*":
        value = "/" + value
    return normalize_path(value)


def _usage_rule(label: str, value: str, line: int) -> PathRule | None:
    if value.startswith("/"):
        path, _, preference = value.replace("\t", " ").partition(" ")
        preference = preference.strip()
    else:
        path, preference = "/", value  # the early drafts' form: no path, the whole site
    return PathRule(label, normalize_path(path), preference, line) if preference else None


@dataclass
class RobotsTxt:
    """A parsed robots.txt: its groups and the usage rules stated before any group."""

    groups: list[Group] = field(default_factory=list)
    site_rules: list[PathRule] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> RobotsTxt:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        text = raw[:MAX_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
        parsed = cls()
        current: Group | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            content = line.split("#", 1)[0]
            name, sep, value = content.partition(":")
            if not sep:
                continue
            name, value = name.strip().lower(), value.strip()
            if name in ("user-agent", "useragent", "user agent"):
                if current is None or current.rules:
                    current = Group()
                    parsed.groups.append(current)
                token = _PRODUCT.match(value)
                if token:
                    current.agents.append(token.group(0).lower())
            elif name in ("allow", "disallow"):
                if current is not None and value:
                    current.rules.append(PathRule(name, _pattern(value), "", number))
            elif name in USAGE_LABELS:
                rule = _usage_rule(name, value, number)
                if rule is None:
                    continue
                if current is None:
                    parsed.site_rules.append(rule)
                else:
                    current.rules.append(rule)
        return parsed

    def rules_for(self, agent: str) -> list[PathRule]:
        """The rules a crawler with this product token obeys (its groups merged, else `*`'s)."""
        token = agent.lower()
        chosen = [g for g in self.groups if token in g.agents] or [g for g in self.groups if "*" in g.agents]
        return [rule for group in chosen for rule in group.rules] + self.site_rules

    def access(self, agent: str, path: str) -> PathRule | None:
        """The Allow or Disallow rule that decides `path` for `agent` (None: no rule, allowed)."""
        best: PathRule | None = None
        for rule in self.rules_for(agent):
            if rule.label not in ("allow", "disallow") or not rule.matches(path):
                continue
            if (
                best is None
                or rule.length > best.length
                or (rule.length == best.length and rule.label == "allow" and best.label == "disallow")
            ):
                best = rule
        return best

    def usage(self, agent: str, path: str, label: str) -> list[PathRule]:
        """The `label` rules (content-usage or content-signal) with the longest pattern matching `path`."""
        matching = [r for r in self.rules_for(agent) if r.label == label and r.matches(path)]
        longest = max((r.length for r in matching), default=-1)
        return [r for r in matching if r.length == longest]
