"""Overview: compliance posture at a glance."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from custody_dash import data, shell
from custody_dash.context import home, key

from custody.views.ledger import verify

shell.start()
st.title("Compliance overview")
home_key, size = key()
posture = data.posture(home_key, size)

cols = st.columns(4)
cols[0].metric("Datasets", posture.datasets)
cols[1].metric("Findings awaiting review", posture.open_findings)
cols[2].metric("Denies a waiver could lift", posture.liftable_denies)
cols[3].metric("Ledger entries", f"{size:,}")

left, right = st.columns(2)
with left:
    st.subheader("Datasets by latest decision")
    if posture.by_decision:
        frame = pd.DataFrame({"decision": list(posture.by_decision), "datasets": list(posture.by_decision.values())})
        st.bar_chart(frame, x="decision", y="datasets")
    else:
        st.info("No datasets registered yet (`custody dataset register`).")
with right:
    st.subheader("Ledger health")
    health = posture.health
    if health.consistent:
        st.success(f"Stored tree consistent with its head ({health.size:,} entries)")
    else:
        st.error(f"Ledger problem: {health.problem}")
    cp = health.checkpoint
    if cp is None:
        st.warning("No signed checkpoint yet")
    else:
        signed = "signature valid" if cp.signature_ok else f"signature INVALID: {cp.problem}"
        st.write(f"Last signed checkpoint: size {cp.size:,} ({signed}); {cp.entries_since:,} entries since")
    verified = data.verified_in_session(size)
    if verified is None:
        st.caption("Full verification (every entry re-hashed) has not run for this size in this session.")
        if st.button("Verify the whole ledger", key="overview_verify"):
            st.session_state["custody_verification"] = verify(home())
            st.rerun()
    elif verified.ok:
        st.success(
            f"Verified: {verified.size:,} entries, {verified.checkpoints_checked} checkpoints, {verified.seconds:.1f} s"
        )
    else:
        st.error(f"Verification FAILED: {verified.problems[0]}")

st.subheader("Recent decisions")
if posture.recent_decisions:
    st.dataframe(posture.recent_decisions, hide_index=True)
else:
    st.caption("No gate decisions yet (`custody gate NAME@V --policy default`).")
st.subheader("Recent reviews")
if posture.recent_reviews:
    st.dataframe(posture.recent_reviews, hide_index=True)
else:
    st.caption("No reviews yet.")
