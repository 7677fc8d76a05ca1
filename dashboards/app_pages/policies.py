"""Policies: the bindings in force (purpose -> policy by digest), the policy files, and which datasets
pass or fail each rule (evaluated now, not recorded)."""

from __future__ import annotations

import datetime as dt

import streamlit as st
from custody_dash import data, shell, tables, widgets
from custody_dash.context import home, key

from custody.views.policies import NOT_CHECKED, files_key
from custody.wording import plural

shell.start()
st.title("Policies")
home_key, size = key()

st.subheader("Bindings in force")
bindings = data.bindings(home_key, size)
if not home().roster().signed:
    st.info("This home was made before bindings: the gate judges by the policy each request names.")
elif bindings.error:
    st.error(f"cannot read the bindings: {bindings.error}")
elif bindings.by_purpose:
    st.caption("The gate judges each purpose by the policy an admin bound to it, by digest (`custody policy bind`).")
    tables.show(bindings.rows(), key="pol_bindings")
else:
    st.info("No purpose is bound to a policy: the gate denies every request (an admin runs `custody policy bind`).")

st.subheader("Policy files")
files = data.policy_files(files_key())
if not files:
    st.info("No policy files found (set $CUSTODY_POLICIES or add policies/*.toml).")
    st.stop()
bound_digests = {b.digest for b in bindings.by_purpose.values()}
first = next((i for i, f in enumerate(files) if f.loaded and f.loaded.digest in bound_digests), 0)  # the one in force
chosen = st.selectbox("Policy", [f.name for f in files], index=first, key="pol_selected")
policy = next(f for f in files if f.name == chosen)
st.caption(str(policy.path))
if policy.loaded is None:
    st.error(policy.error)
    st.code(policy.text, language="toml")
    st.stop()
loaded = policy.loaded
st.write(loaded.policy.description)
st.caption(f"purpose {loaded.policy.purpose} · sha256 {loaded.digest} · {bindings.status_of(loaded.digest)}")

hour = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H")
st.subheader("Datasets against each rule")
include_intermediate = widgets.show_intermediate("pol_intermediate")
matrix = data.rule_matrix(home_key, size, hour, loaded, loaded.digest, include_intermediate)
if not matrix.datasets:
    st.info("No datasets registered yet.")
else:
    st.caption(
        "Each dataset's decision and the rules it does not pass: review (needs a person) or deny; "
        "lifted: approved or waived; "
        f"{NOT_CHECKED}: the rule's check never ran on it (the gate denies until it does). "
        "Evaluated now, nothing recorded."
    )
    only_failing = st.toggle("Only datasets that do not pass", key="pol_failing")
    rows = [r for r in matrix.summary_rows() if not only_failing or r["decision"] != "allow"]
    tables.show(rows, key="pol_matrix", keep=("dataset", "decision"))
    st.subheader("Rules")
    for rule in matrix.rules:
        failing, unchecked = matrix.failing(rule), matrix.not_checked(rule)
        verb = "fails" if len(failing) == 1 else "fail"
        label = f"{rule} — {len(failing):,} of {plural(len(matrix.datasets), 'dataset')} {verb}"
        if unchecked:
            label += f" · {len(unchecked):,} {NOT_CHECKED}"
        with st.expander(label, expanded=False):
            st.write(matrix.explanations.get(rule, ""))
            if failing:
                st.write("Fail: " + ", ".join(failing))
            if unchecked:
                st.write(
                    f"{NOT_CHECKED.capitalize()} (no result of the check this rule reads): " + ", ".join(unchecked)
                )

with st.expander("Policy file", expanded=False):
    st.code(policy.text, language="toml")
