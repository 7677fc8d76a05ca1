"""Review queue: findings that need a person, their evidence, and approve / reject / waive."""

from __future__ import annotations

import datetime as dt

import streamlit as st
from custody_dash import data, shell
from custody_dash.context import home, key

from custody.home import HomeError
from custody.policy.reviews import ReviewError
from custody.views.reviews import NotAllowed, act, allowed_actions

FLASH = "custody_review_flash"

account = shell.start()
st.title("Review queue")
home_key, size = key()
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))

include_deny = st.toggle("Also show deny reasons a waiver could lift", key="rq_include_deny")
items = data.review_queue(home_key, size, include_deny)
if not items:
    st.info("No open findings: nothing needs a person right now.")
    st.stop()
st.dataframe([i.as_row() for i in items], hide_index=True, key="rq_table")

by_id = {i.finding.finding: i for i in items}
chosen = st.selectbox("Finding", list(by_id), key="rq_finding")
item = by_id[chosen]
finding = item.finding
st.subheader(finding.finding)
st.write(f"**{finding.outcome}** under rule `{finding.rule}` — {finding.message}")
st.caption(
    f"reported by the decision at ledger index {finding.decision_index} · dataset registered by "
    f"{item.owner or 'unknown'}"
)

evidence = data.evidence(home_key, size, chosen)
st.markdown("#### Evidence")
if evidence is None or (not evidence.samples and not evidence.summary):
    st.caption(evidence.note if evidence else "no evidence found")
elif evidence.kind == "pii":
    st.caption(f"{evidence.note}; every detected span is masked with its entity type, never shown")
    for sample in evidence.samples:
        st.text(f"{sample.record_id} ({sample.shard}:{sample.position}, score {sample.score:.2f})")
        st.code(sample.text, language=None, wrap_lines=True)
elif evidence.kind == "toxicity":
    st.caption(f"{evidence.note}; personal data in them is masked")
    st.dataframe(
        [
            {"record": s.record_id, "where": f"{s.shard}:{s.position}", "top category": s.reason, "score": s.score}
            for s in evidence.samples
        ],
        hide_index=True,
        key="rq_tox_scores",
    )
    reveal = st.toggle("Reveal the flagged text (may be offensive)", value=False, key=f"rq_reveal_{chosen}")
    if reveal:
        for sample in evidence.samples:
            st.code(sample.text, language=None, wrap_lines=True)
    else:
        st.caption("Text hidden. Reveal it only if you need to read it to decide.")
else:
    with st.expander(f"{evidence.check} check summary", expanded=False):
        st.json(evidence.summary)

st.markdown("#### Decide")
actions = allowed_actions(item, account)
if account is None:
    st.info("Sign in (sidebar) as a reviewer to act on this finding.")
elif not actions:
    st.info(f"{account.name} is a {account.role}: viewers can read but not act.")
else:
    if "approve" not in actions and item.owner == account.name:
        st.warning(f"You registered {finding.subject}: another reviewer must approve or waive (separation of duties).")
    with st.form("rq_form", clear_on_submit=True):
        action = st.radio("Action", actions, horizontal=True, key="rq_action")
        reason = st.text_area("Reason (recorded in the ledger)", key="rq_reason")
        expires = st.date_input(
            "Expires (required to waive; counts through that day, UTC)",
            value=None,
            min_value=dt.date.today() + dt.timedelta(days=1),
            key="rq_expires",
        )
        submitted = st.form_submit_button("Record review")
    if submitted:
        try:
            index = act(
                home(), account, chosen, action, reason, expires.isoformat() if expires and action != "reject" else None
            )
        except (NotAllowed, ReviewError, HomeError) as exc:
            st.error(str(exc))
        else:
            st.session_state[FLASH] = f"recorded: {action} {chosen} by {account.name} (ledger index {index})"
            st.rerun()
