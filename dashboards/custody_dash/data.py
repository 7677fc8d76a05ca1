"""Cached reads for the pages. Each takes `(home_key, size)` first, so a longer ledger misses.
Arguments named with a leading underscore are not part of the key (Streamlit skips hashing them).

`st.cache_resource` (not `cache_data`): answers are shared read-only objects, and some hold
values that do not pickle; pages must not modify what they get back.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from custody.datasets.names import is_intermediate
from custody.datasets.registry import DatasetRegistry
from custody.policy.schema import LoadedPolicy
from custody.trust.acting import Acting
from custody.views import (
    datasets,
    decisions,
    footprint,
    ledger,
    overview,
    policies,
    preferences,
    reviews,
    runs,
    takedowns,
)
from custody_dash.context import home

CACHE = {"show_spinner": False, "max_entries": 64}


@st.cache_resource(**CACHE)
def all_decisions(home_key: str, size: int) -> list[decisions.DecisionInfo]:
    return decisions.all_decisions(home())


@st.cache_resource(**CACHE)
def dataset_rows(home_key: str, size: int) -> list[datasets.DatasetRow]:
    return datasets.list_datasets(home(), all_decisions(home_key, size))


@st.cache_resource(**CACHE)
def posture(home_key: str, size: int, include_intermediate: bool) -> overview.Posture:
    return overview.posture(home(), dataset_rows(home_key, size), include_intermediate)


@st.cache_resource(**CACHE)
def dataset_detail(home_key: str, size: int, ref: str) -> datasets.DatasetDetail:
    return datasets.dataset_detail(home(), ref, all_decisions(home_key, size))


@st.cache_resource(**CACHE)
def review_queue(home_key: str, size: int, include_deny: bool) -> list[reviews.QueueItem]:
    return reviews.queue(home(), include_deny)


@st.cache_resource(**CACHE)
def evidence(home_key: str, size: int, finding: str) -> reviews.Evidence | None:
    from custody.policy.reviews import find_finding

    reported = find_finding(home(), finding)
    return reviews.evidence(home(), reported) if reported else None


@st.cache_resource(**CACHE)
def run_rows(home_key: str, size: int) -> list[runs.RunRow]:
    return runs.list_runs(home())


@st.cache_resource(**CACHE)
def run_detail(home_key: str, size: int, run_id: str) -> runs.RunDetail | None:
    return runs.run_detail(home(), run_id)


@st.cache_resource(**CACHE)
def loss_points(home_key: str, size: int, run_id: str) -> pd.DataFrame | None:
    """The run's loss curve in long form (step, loss, value), or None without metrics: built once
    per ledger size, not on every rerun (a long run's curve has tens of thousands of steps, and
    building the frame took longer than the rest of a warm page).

    Long form without the gaps: validation runs only every few steps, and a wide frame's empty
    cells would leave its line undrawn between them."""
    detail = run_detail(home_key, size, run_id)
    curve = detail.loss_curve() if detail is not None else []
    if not curve:
        return None
    return pd.DataFrame(curve).melt(id_vars="step", var_name="loss", value_name="value").dropna()


@st.cache_resource(**CACHE)
def run_totals(home_key: str, size: int, run_id: str) -> list[footprint.TotalRow]:
    return footprint.run_totals(home(), run_id)


@st.cache_resource(**CACHE)
def dataset_totals(home_key: str, size: int, ref: str) -> list[footprint.TotalRow]:
    return footprint.dataset_totals(home(), DatasetRegistry(home()).get(ref))


@st.cache_resource(**CACHE)
def takedown_rows(home_key: str, size: int) -> list[takedowns.TakedownRow]:
    return takedowns.list_takedowns(home())


@st.cache_resource(**CACHE)
def takedown_where(home_key: str, size: int, request_id: str, _actor: Acting | str | None) -> takedowns.Where:
    """`find` for the request. A passage index it builds is recorded, so the next size misses once
    (and finds every index built); `_actor` is whom such an entry names, not part of the key."""
    return takedowns.where(home(), request_id, _actor)


@st.cache_resource(**CACHE)
def takedown_plan(home_key: str, size: int, request_id: str, _actor: Acting | str | None) -> takedowns.PlanView:
    return takedowns.plan_view(home(), request_id, _actor)


@st.cache_resource(**CACHE)
def preference_pairs(home_key: str, size: int) -> list[preferences.PairRow]:
    return preferences.list_pairs(home())


@st.cache_resource(**CACHE)
def preference_models(home_key: str, size: int) -> list[preferences.Model]:
    return preferences.models(home())


@st.cache_resource(**CACHE)
def prompt_sets(home_key: str, size: int) -> list[str]:
    return preferences.prompt_sets(home())


@st.cache_resource(**CACHE)
def verification(home_key: str, size: int) -> ledger.Verification:
    return ledger.verify(home())


@st.cache_resource(**CACHE)
def bindings(home_key: str, size: int) -> policies.Bindings:
    return policies.bindings(home())


@st.cache_resource(**CACHE)
def policy_files(files_key: str) -> list[policies.PolicyFile]:
    """The policy files, parsed once per content (`policies.files_key()`), not on every rerun."""
    return policies.policy_files()


@st.cache_resource(**CACHE)
def recent_reviews(home_key: str, size: int, limit: int) -> list[dict[str, Any]]:
    return decisions.recent_reviews(home(), limit)


@st.cache_resource(**CACHE)
def rule_matrix(
    home_key: str, size: int, hour: str, _loaded: LoadedPolicy, digest: str, include_intermediate: bool
) -> policies.RuleMatrix:
    """Keyed on the policy's digest and the hour too: an edited file or an expired waiver shows."""
    every = DatasetRegistry(home()).all()
    shown = every if include_intermediate else [d for d in every if not is_intermediate(d.ref)]
    return policies.rule_matrix(home(), _loaded, shown)


def verified_in_session(size: int) -> ledger.Verification | None:
    """The full verification result at this size, if one ran (it is never started implicitly)."""
    result: Any = st.session_state.get("custody_verification")
    return result if result is not None and result.size == size else None
