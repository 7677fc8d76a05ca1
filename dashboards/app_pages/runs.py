"""Runs: the gate decision, datasets with digests, loss curves, energy, CO2e and water, checkpoints."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from custody_dash import data, shell, tables
from custody_dash.context import key

from custody.views.runs import table_rows
from custody.wording import plural

LOSS_CHART = {
    "mark": {"type": "line", "tooltip": True},
    "encoding": {
        "x": {"field": "step", "type": "quantitative", "title": "step"},
        "y": {"field": "value", "type": "quantitative", "title": "loss"},
        "color": {"field": "loss", "type": "nominal", "title": None, "legend": {"orient": "bottom"}},
    },
}

shell.start()
st.title("Training runs")
home_key, size = key()
runs = data.run_rows(home_key, size)
if not runs:
    st.info("No training runs recorded yet (`custody run`).")
    st.stop()
status = st.multiselect("Status", sorted({r.status for r in runs}), key="runs_status")
shown = [r for r in runs if not status or r.status in status]
tables.show(table_rows(shown), key="runs_table", keep=("run",))
if not shown:
    st.stop()

run_id = st.selectbox("Run", [r.run_id for r in shown], format_func=lambda r: r, key="runs_selected")
detail = data.run_detail(home_key, size, run_id)
if detail is None:
    st.error(f"run {run_id} has no run.started entry")
    st.stop()
started = detail.started
st.header(f"{started['name']} ({started['kind']})")
st.caption(
    f"run {run_id} · started at ledger index {detail.started_index} · {started['device']} × {started['world_size']} · "
    f"{plural(started['parameters'], 'parameter')} · code {started['code_version']}"
)
for taint in detail.tainted:
    st.error(
        f"Tainted by takedown {taint.takedown} (ledger index {taint.index:,}): {taint.why()}. "
        "Its checkpoints and model hold data that was taken down."
    )

st.subheader("Gate decision")
if detail.decision is None:
    st.error(f"ledger index {started['decision_index']} is not a gate decision")
else:
    d = detail.decision
    show = {"allow": st.success, "needs-review": st.warning}.get(d.decision, st.error)
    show(f"{d.decision} for {d.purpose} at ledger index {d.index}, requested by {d.requested_by}")
    st.caption(f"judged by: {d.policy}")
    if d.reasons:
        tables.show(list(d.reasons), key="runs_reasons")

st.subheader("Datasets read")
tables.show(detail.datasets, key="runs_datasets", keep=("dataset",))

held_out = (detail.finished or {}).get("held_out")
if held_out:  # a classifier run (kind = "classifier"): scores on records it never trained on
    st.subheader("Scores on held-out records")
    finished = detail.finished
    st.caption(
        f"trained on {plural(finished.get('records_trained') or 0, 'record')}, "
        f"{plural(finished.get('records_held_out') or 0, 'record')} held out by text digest; "
        f"weights sha256 {finished.get('model_digest') or '—'}"
    )
    tables.show(
        [
            {"dataset": h["dataset"], "records": h["records"], "positives": h["positives"],
             "ROC-AUC": h["roc_auc"], "F1 at 0.5": h["f1"]}
            for h in held_out
        ],
        key="runs_held_out",
    )  # fmt: skip

preference = detail.preference
if preference:  # a reward or DPO run (kind = "reward" | "dpo"): measured on what it never trained on
    st.subheader("Preferences")
    measures = detail.preference_measures()
    for column, (label, value, why) in zip(st.columns(len(measures)), measures, strict=True):
        column.metric(label, value, help=why)
    named = [f"{label} sha256 {digest}" for label, digest in detail.preference_digests()]
    reviewers = ", ".join(preference["reviewers"]) or "nobody named"
    st.caption(f"judged by {reviewers} (roster names) · " + " · ".join(named))
    if preference.get("stopped"):
        st.warning(f"Stopped before its last step: {preference['stopped']}")
    scored = detail.preference_curve()
    if scored:
        st.line_chart(pd.DataFrame(scored), x="step", y="value", color="series", y_label="per evaluation")

st.subheader("Loss")
points = data.loss_points(home_key, size, run_id)
if points is not None:
    # A plain Vega-Lite spec, not st.line_chart: that one rebuilds an Altair chart and its hover
    # tooltips on every rerun (0.25 s for a run of 66,000 steps); the data is all the steps still.
    st.vega_lite_chart(points, LOSS_CHART)
elif held_out:
    st.caption("a classifier run trains in one solver pass: no loss curve")
else:
    st.caption("no metrics artifact yet (the run has not finished)")

st.subheader("Energy, carbon and water")
emissions = detail.emissions()
footprint = detail.footprint()
if emissions is None or footprint is None:
    st.caption("recorded when the run finishes")
else:
    e = st.columns(4)
    e[0].metric("Energy", footprint.energy, help=f"{emissions['energy_kwh']} kWh as recorded")
    e[1].metric("CO2e", footprint.co2e, help=f"{emissions['emissions_kg_co2e']} kg as recorded")
    e[2].metric("Water", footprint.water, help=f"{emissions['water_l']} L as recorded")
    e[3].metric("Duration", footprint.duration)
    st.markdown(f"Everyday equivalents: {footprint.comparison()}")
    st.caption(
        f"{emissions['tracker']}; grid {emissions['country_iso_code']}, PUE {emissions['pue']}, "
        f"WUE {emissions['wue_l_per_kwh']} L/kWh. Equivalence factors: docs/dashboard.md."
    )
    finished = detail.finished or {}
    st.caption(
        f"status {finished.get('status')} · {plural(finished.get('steps', 0), 'step')} · "
        f"{plural(finished.get('tokens', 0), 'token')} · {finished.get('tokens_per_s', 0):,.0f} tokens/s · "
        f"model sha256 {finished.get('model_digest') or '—'}"
    )
totals = data.run_totals(home_key, size, run_id)
if totals:
    st.markdown("**The whole run: preparation + checks + training**")
    tables.show([t.as_row() for t in totals], key="runs_energy_totals")
    st.caption(
        "preparation is the meter around `custody run`'s preparation with the checks it ran taken out, "
        "so the parts add up to the total; a failed run's training is what was measured up to the failure"
    )

st.subheader("Checkpoints")
listed = len(detail.checkpoints)
st.caption(
    plural(detail.checkpoint_count, "checkpoint")
    + (f"; the newest {listed:,} are listed" if detail.checkpoint_count > listed else "")
)
if detail.checkpoints:
    tables.show(detail.checkpoints, key="runs_checkpoints")
