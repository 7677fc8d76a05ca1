"""Review queue: findings that need a person, their evidence, approve / reject / waive, and the
reviews recorded so far with who signed each (the reviewer's own key, or this dashboard)."""

from __future__ import annotations

import datetime as dt

import streamlit as st
from custody_dash import data, shell, tables
from custody_dash.context import home, key, service

from custody.home import HomeError
from custody.policy.reviews import ReviewError
from custody.trust.acting import NotPermitted
from custody.views.identity import NotAllowed, SignedIn, Standing, standing
from custody.views.reviews import QueueItem, act, allowed_actions

FLASH = "custody_review_flash"
RECENT = 50


def show_evidence(chosen: str) -> None:
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
        tables.show(
            [
                {"record": s.record_id, "where": f"{s.shard}:{s.position}", "top category": s.reason, "score": s.score}
                for s in evidence.samples
            ],
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


def why_no_action(signed_in: SignedIn | None, who: Standing | None, item: QueueItem) -> str | None:
    """Why this person gets no form for this finding, in words (None: they may act)."""
    if signed_in is None or who is None:
        return "Sign in (sidebar) as a reviewer to act on this finding."
    if not service().can_attest:
        return f"The dashboard is read-only: {service().why_read_only}"
    if who.problem:
        return who.problem
    if not allowed_actions(item, who):
        return f"{who.name} (roster roles: {who.describe()}) may not act on this finding."
    return None


def decide(signed_in: SignedIn, who: Standing, item: QueueItem, chosen: str, via: str) -> None:
    actions = allowed_actions(item, who)
    if "approve" not in actions and "waive" not in actions and item.owned_by(who):
        subject = item.finding.subject
        st.warning(f"You registered {subject}: another reviewer must approve or waive (separation of duties).")
    st.caption(
        f"Recorded as {who.name}, attested by {via} ({signed_in.method} sign-in at {signed_in.at}); "
        f"your roster roles: {who.describe()}"
    )
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
    if not submitted:
        return
    until = expires.isoformat() if expires and action != "reject" else None
    try:
        index = act(home(), signed_in, service(), chosen, action, reason, until)
    except (NotAllowed, NotPermitted, ReviewError, HomeError) as exc:
        st.error(str(exc))
        return
    st.session_state[FLASH] = (
        f"recorded: {action} {chosen} by {signed_in.name} (ledger index {index}), "
        f"attested by {via} ({signed_in.method} sign-in)"
    )
    st.rerun()


def queue_section(signed_in: SignedIn | None) -> None:
    include_deny = st.toggle("Also show deny reasons a waiver could lift", key="rq_include_deny")
    items = data.review_queue(home_key, size, include_deny)
    if not items:
        st.info("No open findings: nothing needs a person right now.")
        return
    tables.show([i.as_row() for i in items], key="rq_table", keep=("finding",))
    by_id = {i.finding.finding: i for i in items}
    chosen = st.selectbox("Finding", list(by_id), key="rq_finding")
    item = by_id[chosen]
    finding = item.finding
    st.subheader(finding.finding)
    st.write(f"**{finding.outcome}** under rule `{finding.rule}` — {finding.message}")
    st.caption(
        f"reported by the decision at ledger index {finding.decision_index} · dataset registered by "
        f"{item.owner.name or 'unknown'}"
    )
    show_evidence(chosen)
    st.markdown("#### Decide")
    who = standing(home(), signed_in.account) if signed_in is not None else None
    refusal = why_no_action(signed_in, who, item)
    via = service().person
    if refusal is None and signed_in is not None and who is not None and via is not None:
        decide(signed_in, who, item, chosen, via.name)
    else:
        st.info(refusal or "This dashboard cannot act.")


signed_in = shell.start()
st.title("Review queue")
home_key, size = key()
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))
queue_section(signed_in)

st.subheader("Recorded reviews")
st.caption("Personally: signed with the reviewer's own key. Attested: signed by the dashboard for whoever signed in.")
recorded = data.recent_reviews(home_key, size, RECENT)
if recorded:
    tables.show(recorded, key="rq_recorded", keep=("finding",))
else:
    st.caption("No reviews recorded yet.")
