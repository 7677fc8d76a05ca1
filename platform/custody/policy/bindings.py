"""Policy bindings: an admin records which policy governs a purpose.

`policy.bound/v1` (signed by an admin) names the purpose, the policy's digest and its exact bytes
in the artifact store. The gate evaluates the binding in force at its own index, so a requester
cannot pick a weaker policy: a spec's own policy is evaluated as well and can only add reasons.
A policy with no rules, or whose own waivers lift every rule it has, is refused: binding it would
allow everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from custody.home import Home
from custody.ledger import query
from custody.policy import entry_types as _entry_types  # noqa: F401  registers policy.bound/v1
from custody.policy.schema import PURPOSES, LoadedPolicy, PolicyError, parse_bytes
from custody.trust.acting import Acting

BOUND_TYPE = "policy.bound/"


class BindingError(ValueError):
    """A binding that cannot be recorded: unknown purpose, or a policy that would allow everything."""


@dataclass(frozen=True)
class Binding:
    purpose: str
    index: int  # the ledger index of the policy.bound entry
    bound_by: str
    ts: str
    loaded: LoadedPolicy

    @property
    def digest(self) -> str:
        return self.loaded.digest

    def as_json(self) -> dict:
        return {
            "purpose": self.purpose,
            "ledger_index": self.index,
            "bound_by": self.bound_by,
            "at": self.ts,
            "policy": {"name": self.loaded.policy.name, "path": str(self.loaded.path), "digest": self.digest},
            "rules": sorted(self.loaded.policy.rules()),
        }


def _weakness(loaded: LoadedPolicy) -> str | None:
    """Why binding this policy would allow everything, or None."""
    rules = loaded.policy.rules()
    if not rules:
        return "it has no rules"
    waived_everywhere = {w.rule for w in loaded.policy.waivers if "*" in w.datasets}
    if set(rules) <= waived_everywhere:
        return "its own waivers lift every rule it has for every dataset"
    return None


def bind(home: Home, purpose: str, loaded: LoadedPolicy, actor: Acting | str | None) -> int:
    """Record `loaded` as the policy governing `purpose`; the policy's bytes go to the store first."""
    if purpose not in PURPOSES:
        raise BindingError(f"purpose {purpose!r}: must be one of {', '.join(PURPOSES)}")
    weak = _weakness(loaded)
    if weak:
        raise BindingError(f"{loaded.path}: refusing to bind a policy that would allow everything: {weak}")
    home.store.put_bytes(loaded.raw)
    body = {
        "purpose": purpose,
        "policy": {
            "path": str(loaded.path),
            "name": loaded.policy.name,
            "digest": {"sha256": loaded.digest},
            "schema": loaded.policy.schema_version,
        },
        "rules": sorted(loaded.policy.rules()),
    }
    index = home.record("policy.bound/v1", f"purpose:{purpose}", body, refs=[f"sha256:{loaded.digest}"], actor=actor)
    home.checkpoint()
    return index


def _binding(home: Home, index: int, ts: str, actor: str, body: dict) -> Binding:
    digest = body["policy"]["digest"]["sha256"]
    raw = home.store.read_bytes(digest)
    try:
        policy = parse_bytes(raw, body["policy"]["path"])
    except PolicyError as exc:  # a policy bound by an older custody that this one cannot read
        raise BindingError(f"the policy bound at ledger index {index} does not validate: {exc}") from exc
    return Binding(body["purpose"], index, actor, ts, LoadedPolicy(Path(body["policy"]["path"]), raw, policy))


def history(home: Home) -> list[tuple[int, str, str, dict]]:
    """Every binding entry, oldest first, as (index, ts, actor, body); only admitted entries count."""
    return [
        (row.idx, row.ts, row.actor, query.body(row))
        for row in query.entries(home.storage, BOUND_TYPE)
        if home.attribute(row).problem is None  # written behind the library's back: ignored
    ]


def binding_at(home: Home, purpose: str, index: int | None = None) -> Binding | None:
    """The binding in force for `purpose` before ledger index `index` (default: now)."""
    chosen = None
    for idx, ts, actor, body in history(home):
        if body["purpose"] == purpose and (index is None or idx < index):
            chosen = (idx, ts, actor, body)
    return _binding(home, *chosen) if chosen else None


def current_bindings(home: Home) -> dict[str, Binding]:
    latest: dict[str, tuple] = {}
    for idx, ts, actor, body in history(home):
        latest[body["purpose"]] = (idx, ts, actor, body)
    return {purpose: _binding(home, *args) for purpose, args in sorted(latest.items())}
