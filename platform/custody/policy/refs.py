"""Which policies a recorded decision used, by digest, and whether each was the one bound to its purpose.

A policy file names itself, so a name proves nothing: the digest is what the gate evaluated, and
the binding (`policy.bound/v1`, signed by an admin) is what makes a policy the one that governs
a purpose. `policy.decision/v2` lists every policy evaluated with its role; a v1 decision comes
from a home made before bindings, where whatever policy the request named decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHORT = 12  # hex digits of a digest shown where space is short; reports keep the full digest


@dataclass(frozen=True)
class PolicyUsed:
    name: str  # what the file calls itself: a label, not an identity
    digest: str  # sha256 of the policy file's exact bytes
    role: str  # bound | spec (named by the request) | before-bindings (a v1 decision)
    binding_index: int | None = None  # the policy.bound entry, for role bound

    @property
    def bound(self) -> bool:
        return self.role == "bound"

    def identity(self, full: bool = False) -> str:
        return f"{self.name} sha256:{self.digest if full else self.digest[:SHORT]}"

    def status(self, purpose: str) -> str:
        if self.role == "bound":
            return f"bound to {purpose} at ledger index {self.binding_index}"
        if self.role == "spec":
            return "not bound: named by the request, it could only add reasons"
        return "not bound (made before bindings)"

    def label(self, purpose: str, full: bool = False) -> str:
        return f"{self.identity(full)} — {self.status(purpose)}"


def policies_used(body: dict[str, Any]) -> tuple[PolicyUsed, ...]:
    """The policies of a policy.decision body (v2: every one evaluated; v1: the one given)."""
    if "policies" in body:
        return tuple(
            PolicyUsed(p["name"], p["digest"]["sha256"], p["role"], p.get("binding_index")) for p in body["policies"]
        )
    policy = body.get("policy")
    return (PolicyUsed(policy["name"], policy["digest"]["sha256"], "before-bindings"),) if policy else ()


def describe_used(used: tuple[PolicyUsed, ...], purpose: str, full: bool = False) -> str:
    """One line naming every policy a decision used, by digest, with its binding status."""
    if not used:
        return f"no policy bound to {purpose} (an unbound purpose is denied)"
    return " + ".join(p.label(purpose, full) for p in used)


def identities(used: tuple[PolicyUsed, ...]) -> str:
    """The policies by name and short digest only (a table's 'policy' column)."""
    return " + ".join(p.identity() for p in used) or "none"


def statuses(used: tuple[PolicyUsed, ...], purpose: str) -> str:
    """Whether each policy was the one bound to the purpose (a table's 'bound' column)."""
    return "; ".join(p.status(purpose) for p in used) or f"no policy bound to {purpose}"


def describe(body: dict[str, Any], full: bool = False) -> str:
    """`describe_used` for a policy.decision body (as reports carry it)."""
    return describe_used(policies_used(body), body["purpose"], full)
