"""Takedowns: open and applied requests, where each work is now (datasets, derived data, runs),
applying one (an approver or admin, after reading the plan), and its proof of removal."""

from __future__ import annotations

import streamlit as st
from custody_dash import data, shell, tables
from custody_dash.context import home, key, service

from custody.home import HomeError
from custody.takedown.apply import ApplyError
from custody.takedown.requests import RequestError
from custody.trust.acting import NotPermitted
from custody.views.common import when
from custody.views.identity import NotAllowed, SignedIn, standing
from custody.views.takedowns import (
    APPLIED,
    OPEN,
    TakedownRow,
    Where,
    act,
    describe_work,
    one_line,
    proof_download,
    proof_file_name,
    verify_command,
    why_not_apply,
)
from custody.wording import plural

FLASH = "custody_takedown_flash"


def indexer(signed_in: SignedIn | None) -> str | None:
    """Whom a passage index built while reading names (machine work, signed by the service key):
    the signed-in person if the roster knows them, else the dashboard itself."""
    if signed_in is not None and home().roster().by_name(signed_in.name) is not None:
        return signed_in.name
    return service().person.name if service().person is not None else None


def applications_section(row: TakedownRow) -> None:
    for application in row.applications:
        st.markdown(f"**Applied** at ledger index {application.index:,} by {application.actor}")
        st.caption(f"{when(application.ts)} · signed: {application.signed}")
        tables.show(application.version_rows(), key=f"td_versions_{application.index}", keep=("replaced", "by"))
        tainted = application.run_rows()
        if tainted:
            tables.show(tainted, key=f"td_tainted_{application.index}", keep=("run",))
        else:
            st.caption("No run had read them: none was tainted.")


def where_section(row: TakedownRow, signed_in: SignedIn | None) -> Where | None:
    st.subheader("Where the work is now")
    try:
        where = data.takedown_where(home_key, size, row.id, indexer(signed_in))
    except RequestError as exc:
        st.error(one_line(exc))
        return None
    if where.found.indexed_now:
        built = ", ".join(where.found.indexed_now)
        st.caption(f"Passage indexes built for this search and recorded in the ledger: {built}")
    holders = where.holder_rows()
    if not holders:
        st.caption(
            "No registered dataset version holds it now (a replaced version whose bytes were erased is not read)."
        )
    else:
        tables.show(holders, key="td_holders", keep=("dataset",))
        hits = len(where.found.hits)
        listed = len(where.hit_rows())
        label = f"{plural(hits, 'record')} holding it: positions, offsets and text digests, never the text"
        with st.expander(label + (f" (the first {listed:,} listed)" if listed < hits else ""), expanded=False):
            tables.show(where.hit_rows(), key="td_hits", keep=("dataset", "record"))
    if where.found.derived:
        st.caption(f"Derived from them, without holding it themselves: {', '.join(where.derived())}")
    runs = where.run_rows()
    if runs:
        st.markdown("**Runs that read them** (their checkpoints and models hold the work)")
        tables.show(runs, key="td_runs", keep=("run",))
    else:
        st.caption("No training run read them.")
    return where


def apply_section(row: TakedownRow, where: Where, signed_in: SignedIn | None) -> None:
    st.subheader("Apply")
    if where.live == 0:
        done = "the takedown is complete" if row.applications else "there is nothing to remove"
        st.caption(f"No live dataset version holds the work: {done}.")
        return
    if row.applications:
        st.warning(
            f"Live versions hold the work again ({', '.join(where.live_versions())}): applying again replaces them too."
        )
    who = standing(home(), signed_in.account) if signed_in is not None else None
    refusal = why_not_apply(signed_in, who, service())
    via = service().person
    if refusal is not None or signed_in is None or via is None:
        st.info(refusal or "This dashboard cannot act.")
        return
    plan = data.takedown_plan(home_key, size, row.id, signed_in.name)
    if plan.error:
        st.error(f"Cannot apply {row.id}: {plan.error}")
        return
    st.markdown(f"Applying {row.id} would {plan.summary()}:")
    tables.show(plan.versions, key="td_plan_versions", keep=("replace", "with"))
    if plan.tainted:
        tables.show(plan.tainted, key="td_plan_tainted", keep=("run",))
    else:
        st.caption("No run read them: none is tainted.")
    include_running = False
    if plan.running:
        listed = ", ".join(r["run"] for r in plan.running)
        st.warning(
            f"Runs in progress read data the takedown removes ({listed}): wait for them to finish, or taint them too."
        )
        include_running = st.checkbox("Apply now and taint the runs in progress too", key=f"td_running_{row.id}")
    # The key holds what the plan says: a plan that changed since it was read must be confirmed again.
    confirmed = st.checkbox(f"I have read the plan: {plan.summary()}", key=f"td_confirm_{row.id}_{plan.fingerprint()}")
    st.caption(
        f"Recorded as {signed_in.name}, attested by {via.name} ({signed_in.method} sign-in at {signed_in.at}); "
        "the new versions are derived first, which takes as long as the stages take on that data."
    )
    ready = confirmed and (include_running or not plan.running)
    if not (st.button("Apply takedown", key="td_apply", type="primary", disabled=not ready) and ready):
        return
    said: list[str] = []
    try:
        with st.spinner(f"Applying {row.id}: deriving the new versions"):
            done = act(home(), signed_in, service(), row.id, include_running, say=said.append)
    except (NotAllowed, NotPermitted, ApplyError, RequestError, HomeError) as exc:
        st.error(one_line(exc))
        return
    versions, runs = done.body["versions"], done.body["tainted_runs"]
    st.session_state[FLASH] = (
        f"applied {row.id} at ledger index {done.ledger_index:,} by {signed_in.name}, attested by {via.name} "
        f"({signed_in.method} sign-in): {plural(len(versions), 'dataset version')} replaced, "
        f"{plural(len(runs), 'run')} tainted",
        said,
    )
    st.rerun()


def proof_section(row: TakedownRow) -> None:
    st.subheader("Proof of removal")
    if not row.applications:
        st.caption("Once the request is applied, its proof of removal can be downloaded here.")
        return
    if not service().can_attest:
        st.caption(
            f"The dashboard is read-only ({service().why_read_only}), so it signs no checkpoint for a proof: "
            f"write one with `custody takedown proof {row.id} --out FILE`."
        )
    home_path = home().path  # the download runs on another thread: it opens its own home
    st.download_button(
        "Download proof of removal (JSON)",
        lambda: proof_download(home_path, row.id),  # built on click: it signs a checkpoint of the head
        file_name=proof_file_name(row.id),
        mime="application/json",
        key="td_proof",
        disabled=not service().can_attest,
    )
    st.caption(
        "The signed request and application entries with inclusion proofs to a signed checkpoint, and "
        "for each new version a proof that every removed record is absent. Anyone checks it offline with "
        "the file and the ledger's verifier key (`custody ledger pubkey`) alone:"
    )
    st.code(verify_command(row.id).replace("VERIFIER_KEY", f"'{home().config.verifier_key}'"), language=None)


signed_in = shell.start()
st.title("Takedowns")
home_key, size = key()
if FLASH in st.session_state:
    message, said = st.session_state.pop(FLASH)
    st.success(message)
    if said:
        with st.expander("What was derived", expanded=False):
            st.code("\n".join(said), language=None)
rows = data.takedown_rows(home_key, size)
if not rows:
    st.info("No takedown requests yet (`custody takedown request --by WHO --reason WHY --text-file FILE`).")
    st.stop()
open_count = sum(r.status == OPEN for r in rows)
st.caption(f"{plural(len(rows), 'request')}: {open_count:,} open, {len(rows) - open_count:,} applied")
status = st.multiselect("Status", [OPEN, APPLIED], key="td_status")
shown = [r for r in rows if not status or r.status in status]
tables.show([r.as_row() for r in shown], key="td_table", keep=("request",))
if not shown:
    st.stop()

by_id = {r.id: r for r in shown}
chosen = st.selectbox("Request", list(by_id), format_func=lambda i: by_id[i].label(), key="td_selected")
row = by_id[chosen]
asked = row.request.body
st.header(row.id)
st.markdown(f"**{row.status}** · requested by {asked['requested_by']}: {asked['reason']}")
st.caption(
    f"the work: {describe_work(asked['query'], digits=None)} · recorded by {row.request.actor} at ledger index "
    f"{row.request.ledger_index:,} ({when(row.request.ts)}); the request keeps digests, never the work"
)
applications_section(row)
where = where_section(row, signed_in)
if where is not None:
    apply_section(row, where, signed_in)
proof_section(row)
