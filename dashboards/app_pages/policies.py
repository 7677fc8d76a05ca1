"""Policies: the bindings in force (purpose -> policy by digest), the policy files, and which datasets
pass or fail each rule (evaluated now, not recorded)."""

from __future__ import annotations

import datetime as dt

import streamlit as st
from custody_dash import data, shell
from custody_dash.context import home, key

from custody.views.policies import policy_files

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
    st.dataframe(bindings.rows(), hide_index=True, key="pol_bindings")
else:
    st.info("No purpose is bound to a policy: the gate denies every request (an admin runs `custody policy bind`).")

st.subheader("Policy files")
files = policy_files()
if not files:
    st.info("No policy files found (set $CUSTODY_POLICIES or add policies/*.toml).")
    st.stop()
chosen = st.selectbox("Policy", [f.name for f in files], key="pol_selected")
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
matrix = data.rule_matrix(home_key, size, hour, loaded, loaded.digest)
st.subheader("Datasets against each rule")
if not matrix.datasets:
    st.info("No datasets registered yet.")
else:
    st.caption("pass · review (needs a person) · deny · lifted (approved or waived); evaluated now, nothing recorded")
    only_failing = st.toggle("Only datasets that do not pass", key="pol_failing")
    rows = [r for r in matrix.rows() if not only_failing or r["decision"] != "allow"]
    st.dataframe(rows, hide_index=True, key="pol_matrix")
    st.subheader("Rules")
    for rule in matrix.rules:
        failing = matrix.failing(rule)
        label = f"{rule} — {len(failing)} of {len(matrix.datasets)} dataset(s) fail"
        with st.expander(label, expanded=False):
            st.write(matrix.explanations.get(rule, ""))
            if failing:
                st.write(", ".join(failing))

with st.expander("Policy file", expanded=False):
    st.code(policy.text, language="toml")
