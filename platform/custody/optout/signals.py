"""The one evaluator: which published signal reserved a record from AI training, and where it was read.

Inputs are what a crawl kept: per host, snapshots of `robots.txt` and `/.well-known/tdmrep.json`
(registered with the dataset under `reservations/HOST/`, so each has a digest in the manifest),
and per record, the response headers and HTML meta names it was fetched with. Four signals:

- `robots.txt`: a Disallow rule that stops an AI crawler (`DEFAULT_AGENTS`, or the check's own
  list) from fetching the record's URL;
- `content-usage`: `train-ai=n` in a `Content-Usage` response header, or in a robots.txt
  `Content-Usage` rule of a group that lets such a crawler fetch the URL;
- `tdmrep`: `tdm-reservation: 1`, from HTML meta, else the response header, else tdmrep.json;
- `content-signal`: `ai-train=no` in a robots.txt `Content-Signal` rule or a response header.

Any one reserves the record; every one that does is reported, with the snapshot it came from
by name and SHA-256. Nothing here reads a file or the network: the caller hands in the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from custody.datasets.readers import reservation_host
from custody.optout import prefs, tdmrep
from custody.optout.robots import RobotsTxt, url_path

SIGNALS = ("robots.txt", "content-usage", "tdmrep", "content-signal")
SIGNAL_NAMES = {
    "robots.txt": "robots.txt rules for AI crawlers",
    "content-usage": "Content-Usage (IETF aipref)",
    "tdmrep": "TDMRep",
    "content-signal": "Content-Signal",
}
# Product tokens of crawlers that gather data to train AI models (each operator's documentation).
DEFAULT_AGENTS = (
    "GPTBot",
    "CCBot",
    "Google-Extended",
    "ClaudeBot",
    "anthropic-ai",
    "Applebot-Extended",
    "Bytespider",
    "meta-externalagent",
    "FacebookBot",
    "cohere-training-data-crawler",
    "Amazonbot",
    "AI2Bot",
    "Diffbot",
    "Timpibot",
)


def url_host(url: str) -> str | None:
    """The snapshot folder a URL's site files live under: its host, and its port if one is given."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return host.lower().rstrip(".") + (f":{port}" if port is not None and port != default else "")


@dataclass(frozen=True)
class Snapshot:
    """One site file a crawl kept: where it is in the manifest, its digest, and its bytes."""

    name: str  # reservations/HOST/robots.txt or reservations/HOST/tdmrep.json
    digest: str
    data: bytes
    dataset: str  # the dataset version that registered it (a derived dataset reads its parents')

    @property
    def host(self) -> str:
        host = reservation_host(self.name)
        if host is None:
            raise ValueError(f"{self.name} is not a reservation snapshot (reservations/HOST/robots.txt or tdmrep.json)")
        return host

    @property
    def kind(self) -> str:
        return self.name.rsplit("/", 1)[1]

    def describe(self) -> dict:
        return {"name": self.name, "digest": self.digest, "dataset": self.dataset}


@dataclass(frozen=True)
class Reservation:
    """A signal that reserved a record, what it said, and the snapshot it was read from."""

    signal: str  # one of SIGNALS
    via: str  # robots.txt | tdmrep.json | header | html-meta
    snapshot: str  # the snapshot's document name, or the shard that holds the record's own fields
    digest: str  # SHA-256 of that snapshot or shard
    rule: str  # what reserved it, as written

    def as_json(self) -> dict:
        return {
            "signal": self.signal,
            "via": self.via,
            "snapshot": self.snapshot,
            "digest": self.digest,
            "rule": self.rule,
        }


def field_values(value: object) -> dict[str, list[str]] | None:
    """Response headers or meta names as {lower-case name: [values]}; None when unreadable.

    Accepted: an object of name -> value or list of values; a list of [name, value] pairs or of
    {"name": ..., "content": ...} objects; a raw header block ("Name: value" lines); a JSON text
    of any of these (how a CSV or Parquet column carries them)."""
    if value is None:
        return {}
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "["):
            try:
                return field_values(json.loads(stripped))
            except ValueError:
                return None
        out: dict[str, list[str]] = {}
        for line in value.splitlines():
            name, sep, said = line.partition(":")
            if sep and name.strip() and " " not in name.strip():
                out.setdefault(name.strip().lower(), []).append(said.strip())
        return out
    pairs: list[tuple[object, object]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "name" in item:
                pairs.append((item.get("name"), item.get("content", item.get("value"))))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                return None
    else:
        return None
    out = {}
    for name, said in pairs:
        if not isinstance(name, str):
            return None
        values = said if isinstance(said, list) else [said]
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            return None
        out.setdefault(name.strip().lower(), []).extend(str(v) for v in values)
    return out


# robots.txt usage rules: the signal (named as the rule) and what in its value reserves training.
_USAGE_READERS = {
    "content-usage": lambda value: prefs.reserves_training(prefs.usage_preferences(value)),
    "content-signal": lambda value: prefs.signal_reserves_training(prefs.content_signals(value)),
}


@dataclass
class _Site:
    robots: tuple[Snapshot, RobotsTxt] | None = None
    tdm: tuple[Snapshot, list[tdmrep.TdmRule]] | None = None


@dataclass
class Evaluator:
    """Reservations for records, from the snapshots of the sites they came from.

    The first snapshot given for a host and file wins: give a dataset's own before its parents'."""

    snapshots: Iterable[Snapshot] = ()
    agents: tuple[str, ...] = DEFAULT_AGENTS
    problems: list[tuple[str, str]] = field(default_factory=list)  # (snapshot, what is wrong with it)

    def __post_init__(self) -> None:
        self.sites: dict[str, _Site] = {}
        for snap in self.snapshots:
            site = self.sites.setdefault(snap.host, _Site())
            if snap.kind == "robots.txt" and site.robots is None:
                site.robots = (snap, RobotsTxt.parse(snap.data))
            elif snap.kind == "tdmrep.json" and site.tdm is None:
                try:
                    site.tdm = (snap, tdmrep.parse_file(snap.data))
                except ValueError as exc:  # registration checks it; a parent's may predate that
                    self.problems.append((snap.name, str(exc)))

    def evaluate(
        self,
        url: str | None,
        headers: dict[str, list[str]] | None = None,
        meta: dict[str, list[str]] | None = None,
        record_snapshot: tuple[str, str] = ("record", ""),
    ) -> list[Reservation]:
        """Every signal that reserves the record at `url` with these headers and meta names."""
        headers, meta = headers or {}, meta or {}
        found: list[Reservation] = []
        site = self.sites.get(url_host(url) or "") if url else None
        path = url_path(url) if site is not None and url else "/"  # only site files match paths
        shard, shard_digest = record_snapshot

        if site is not None and site.robots is not None:
            found += self._robots(site.robots, path)

        usage = headers.get("content-usage")
        if usage:
            said = prefs.reserves_training(prefs.usage_preferences(", ".join(usage)))
            if said:
                found.append(Reservation("content-usage", "header", shard, shard_digest, f"Content-Usage: {said}"))

        file_said = None
        if site is not None and site.tdm is not None:
            file_said = tdmrep.from_file(site.tdm[1], path)
        decided = tdmrep.decide(tdmrep.from_fields(meta, "html meta"), tdmrep.from_fields(headers, "header"), file_said)
        if decided is not None and decided.reservation == 1:
            if decided is file_said:
                snap = site.tdm[0]  # type: ignore[union-attr]  # file_said implies the site's file
                found.append(Reservation("tdmrep", "tdmrep.json", snap.name, snap.digest, decided.text()))
            else:
                via = "html-meta" if decided.where == "html meta" else "header"
                found.append(Reservation("tdmrep", via, shard, shard_digest, decided.text()))

        signal = headers.get("content-signal")
        if signal:
            said = prefs.signal_reserves_training(prefs.content_signals(", ".join(signal)))
            if said:
                found.append(Reservation("content-signal", "header", shard, shard_digest, f"Content-Signal: {said}"))
        return found

    def _robots(self, parsed: tuple[Snapshot, RobotsTxt], path: str) -> list[Reservation]:
        snap, robots = parsed
        by_rule: dict[tuple[str, str], list[str]] = {}
        for agent in self.agents:
            access = robots.access(agent, path)
            if access is not None and access.label == "disallow":
                by_rule.setdefault(("robots.txt", access.text()), []).append(agent)
                continue  # usage rules apply to what a crawler may fetch only
            for label, reads in _USAGE_READERS.items():
                for rule in robots.usage(agent, path, label):
                    if reads(rule.value):
                        by_rule.setdefault((label, rule.text()), []).append(agent)
        return [
            Reservation(signal, "robots.txt", snap.name, snap.digest, f"{text} for {', '.join(agents)}")
            for (signal, text), agents in by_rule.items()
        ]
