"""Datasets: the list with filters, and one dataset's provenance."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st
from custody_dash import data, shell, tables, widgets
from custody_dash.context import home, key, service

from custody.trust.acting import Attested
from custody.views.common import when
from custody.views.datasets import filter_datasets, table_rows, visible
from custody.views.identity import SignedIn, attested
from custody.views.provenance import EXPORT_DOWNLOADS, export_download, provenance_download
from custody.wording import data_size, plural


def report_taker(signed_in: SignedIn | None) -> tuple[Attested | None, str]:
    """Who a download is recorded for (the ledger names who took each report), or why nobody may."""
    if signed_in is None:
        return None, "Sign in to download: the ledger records who took each report."
    if not service().can_attest:
        return None, f"The dashboard is read-only: {service().why_read_only}"
    if home().roster().by_name(signed_in.name) is None:  # a viewer may take a report; a stranger may not
        return None, f"{signed_in.name} is not an active member of this home's roster: no report can name them."
    return attested(signed_in, service()), f"Recorded in the ledger as taken by {signed_in.name}."


signed_in = shell.start()
st.title("Datasets")
home_key, size = key()
every = data.dataset_rows(home_key, size)
if not every:
    st.info("No datasets registered yet (`custody dataset register`).")
    st.stop()
rows = visible(every, widgets.show_intermediate("ds_intermediate"))

f1, f2, f3, f4 = st.columns(4)
text = f1.text_input("Name or title contains", key="ds_text")
decisions = f2.multiselect("Latest decision", sorted({r.decision for r in rows}), key="ds_decision")
categories = f3.multiselect(
    "License category", sorted({r.license_category for r in rows if r.license_category}), key="ds_category"
)
registrants = f4.multiselect("Registered by", sorted({r.registered_by for r in rows}), key="ds_registrant")
shown = filter_datasets(rows, text, decisions, categories, registrants)
hidden = widgets.hidden_note(len(every) - len(rows))
st.caption(f"{len(shown):,} of {plural(len(rows), 'dataset')}" + (f" · {hidden}" if hidden else ""))
tables.show(table_rows(shown), key="ds_table", keep=("dataset",))
if not shown:
    st.stop()

ref = st.selectbox("Dataset", [r.ref for r in shown], key="ds_selected")
detail = data.dataset_detail(home_key, size, ref)
dataset = detail.dataset
st.header(f"{ref} — {dataset.card.dataset.title}")
if detail.taken_down is not None:
    st.error(detail.taken_down.sentence())
if detail.erased:
    st.caption("Its shards were erased from the store (`custody store gc`): the ledger keeps their digests only.")
report_home = home().path  # the download runs on another thread: it opens its own home
taker, note = report_taker(signed_in)
st.download_button(
    "Download provenance report (JSON, verifiable with custody verify-report)",
    lambda: provenance_download(report_home, ref, taker),  # built on click: each report is recorded in the ledger
    file_name=f"{dataset.ref.name}@{dataset.ref.version}.provenance.json",
    mime="application/json",
    key="ds_download",
    disabled=taker is None,
)
for fmt, (what, mime) in EXPORT_DOWNLOADS.items():
    st.download_button(
        f"Download {what}",
        lambda fmt=fmt: export_download(report_home, ref, fmt, taker),  # built on click, recorded like the report
        file_name=f"{dataset.ref.name}@{dataset.ref.version}.{fmt}.json",
        mime=mime,
        key=f"ds_download_{fmt}",
        disabled=taker is None,
    )
st.caption(note)
m = st.columns(4)
m[0].metric("Records", f"{dataset.manifest.records:,}")
m[1].metric("Size", data_size(dataset.manifest.bytes), help=f"{dataset.manifest.bytes:,} bytes")
m[2].metric("Shards", len(dataset.manifest.shards))
widgets.labelled(m[3], "Registered by", dataset.actor)
st.caption(f"manifest sha256 {dataset.digest} · ledger index {dataset.index} · registered {when(dataset.ts)}")

card = dataset.card.as_json()
with st.expander("Dataset card", expanded=False):
    st.json(card)
st.subheader("Sources")
tables.show(card.get("sources", []), key="ds_sources")

st.subheader("Checks")
tables.show(
    [
        {
            "check": c.check,
            "version": c.version,
            "status": c.status,
            "records": c.records,
            "index": c.entry_index,
            "time": when(c.ts),
        }
        for c in detail.checks.values()
    ],
    key="ds_checks",
)
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**License mix** (records per license)")
    mix = detail.license_mix()
    if mix:
        frame = pd.DataFrame({"license": list(mix), "records": list(mix.values())})
        st.bar_chart(frame, x="license", y="records", horizontal=True, sort=False)
        st.caption(" · ".join(f"{name}: {plural(n, 'record')}" for name, n in mix.items()))
    else:
        st.caption("no license check result" if "license" not in detail.checks else "no records")
with c2:
    st.markdown("**PII per entity** (records containing it)")
    pii = detail.pii_by_entity()
    if pii:
        st.bar_chart(pd.DataFrame({"entity": list(pii), "records": list(pii.values())}), x="entity", y="records")
    else:
        st.caption("no PII found" if "pii" in detail.checks else "no PII check result")
with c3:
    st.markdown("**Toxicity score histogram**")
    histogram = detail.toxicity_histogram()
    if histogram:
        st.bar_chart(pd.DataFrame(histogram), x="score", y="records", sort=False)
    else:
        st.caption("no toxicity check result")

risk = detail.pii_risk()
if risk is not None:
    st.subheader("PII risk (pii-codex)")
    r = st.columns(3)
    r[0].metric(
        "Risk score",
        f"{risk.score:.2f}" if risk.score is not None else "—",
        help="pii-codex: the mean over records of each record's mean risk level "
        "(1 non-identifiable, 2 semi-identifiable, 3 identifiable; 1 for a record without findings)",
    )
    widgets.labelled(r[1], "Highest level found", risk.highest or "none")
    widgets.labelled(r[2], "Redacted", f"yes (redact-pii: {risk.redacted_by})" if risk.redacted_by else "no")
    d1, d2 = st.columns(2)
    with d1:
        st.markdown("**Findings per risk level**")
        levels = pd.DataFrame({"level": list(risk.by_level), "findings": list(risk.by_level.values())})
        st.bar_chart(levels, x="level", y="findings", sort=False)
    with d2:
        st.markdown("**Findings per category**")
        if risk.by_category:
            categories = pd.DataFrame({"category": list(risk.by_category), "findings": list(risk.by_category.values())})
            st.bar_chart(categories, x="category", y="findings", horizontal=True)
        else:
            st.caption("no PII found")
    if risk.entities:
        tables.show(risk.entities, key="ds_pii_risk")
    st.caption(f"ratings from {risk.source}; types and counts only, never values")

st.subheader("Lineage")
st.graphviz_chart(detail.lineage_dot, width="content")
if detail.ancestors or detail.descendants:
    st.caption(f"from: {', '.join(detail.ancestors) or '—'} · to: {', '.join(detail.descendants) or '—'}")

st.subheader("Energy, carbon and water spent on it")
totals = data.dataset_totals(home_key, size, ref)
tables.show([t.as_row() for t in totals], key="ds_energy")
st.caption(
    "each check and stage measured by one CodeCarbon tracker in the process that ran it (on Ray: the "
    "driver's machine only); entries recorded before measuring began count as not measured (docs/runs.md)"
)

st.subheader("Decisions and reviews over time")
events = [{"time": d["time"], "event": d["for this dataset"], "index": d["index"]} for d in detail.decisions] + [
    {"time": r["time"], "event": r["action"], "index": r["index"]} for r in detail.reviews
]
if events:
    chart = (
        alt.Chart(pd.DataFrame(events).assign(time=lambda f: pd.to_datetime(f["time"])))
        .mark_circle(size=120)
        .encode(x=alt.X("time:T"), y=alt.Y("event:N"), color="event:N", tooltip=["time", "event", "index"])
    )
    st.altair_chart(chart)
    tables.show(detail.decisions, key="ds_decisions", keep=("decision",))
    if detail.reviews:
        tables.show(detail.reviews, key="ds_reviews")
else:
    st.caption("No gate decision or review mentions this dataset yet.")
