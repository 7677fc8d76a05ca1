"""Overview: compliance posture at a glance."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st
from custody_dash import data, shell, tables, widgets
from custody_dash.context import home, key

from custody.views.datasets import NO_DECISION
from custody.views.ledger import verify
from custody.wording import plural

# One colour per decision, the same meaning everywhere: allowed green, held amber, denied red.
DECISION_COLOURS = {"allow": "#2e7d32", "needs-review": "#f9a825", "deny": "#c62828", NO_DECISION: "#9e9e9e"}


def decision_chart(by_decision: dict[str, int]) -> alt.Chart:
    frame = pd.DataFrame({"decision": list(by_decision), "datasets": list(by_decision.values())})
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("datasets:Q", title="datasets", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("decision:N", sort=list(by_decision), title=None, axis=alt.Axis(labelFontSize=13)),
            color=alt.Color(
                "decision:N",
                scale=alt.Scale(domain=list(DECISION_COLOURS), range=list(DECISION_COLOURS.values())),
                legend=None,
            ),
            tooltip=["decision", "datasets"],
        )
        .properties(height=max(60 * len(by_decision), 120))
    )


shell.start()
st.title("Compliance overview")
home_key, size = key()
include_intermediate = widgets.show_intermediate("ov_intermediate")
posture = data.posture(home_key, size, include_intermediate)

cols = st.columns(4)
cols[0].metric("Datasets", posture.datasets, help=widgets.hidden_note(posture.intermediate_hidden) or None)
cols[1].metric("Findings awaiting review", posture.open_findings)
cols[2].metric("Denies a waiver could lift", posture.liftable_denies)
cols[3].metric("Ledger entries", f"{size:,}")

left, right = st.columns(2)
with left:
    st.subheader("Datasets by latest decision")
    if posture.by_decision:
        st.altair_chart(decision_chart(posture.by_decision))
        notes = [f"{NO_DECISION}: no gate decision has named it yet", widgets.hidden_note(posture.intermediate_hidden)]
        st.caption(" · ".join(n for n in notes if n))
    else:
        st.info("No datasets registered yet (`custody dataset register`).")
with right:
    st.subheader("Ledger health")
    health = posture.health
    if health.consistent:
        st.success(f"Stored tree consistent with its head ({plural(health.size, 'entry')})")
    else:
        st.error(f"Ledger problem: {health.problem}")
    cp = health.checkpoint
    if cp is None:
        st.warning("No signed checkpoint yet")
    else:
        signed = "signature valid" if cp.signature_ok else f"signature INVALID: {cp.problem}"
        st.write(f"Last signed checkpoint: size {cp.size:,} ({signed}); {cp.since()}")
    verified = data.verified_in_session(size)
    if verified is None:
        st.caption("Full verification (every entry re-hashed) has not run for this size in this session.")
        if st.button("Verify the whole ledger", key="overview_verify"):
            st.session_state["custody_verification"] = verify(home())
            st.rerun()
    elif verified.ok:
        st.success(
            f"Verified: {plural(verified.size, 'entry')}, {plural(verified.checkpoints_checked, 'checkpoint')}, "
            f"{verified.seconds:.1f} s"
        )
    else:
        st.error(f"Verification FAILED: {verified.problems[0]}")

st.subheader("Recent decisions")
if posture.recent_decisions:
    tables.show(posture.recent_decisions)
else:
    st.caption("No gate decisions yet (`custody gate NAME@V --purpose PURPOSE`).")
st.subheader("Recent reviews")
if posture.recent_reviews:
    tables.show(posture.recent_reviews)
else:
    st.caption("No reviews yet.")
