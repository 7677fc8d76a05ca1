"""Runs: the gate decision, datasets with digests, loss curves, energy, CO2e and water, checkpoints."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from custody_dash import data, shell
from custody_dash.context import key

shell.start()
st.title("Training runs")
home_key, size = key()
runs = data.run_rows(home_key, size)
if not runs:
    st.info("No training runs recorded yet (`custody run`).")
    st.stop()
status = st.multiselect("Status", sorted({r.status for r in runs}), key="runs_status")
shown = [r for r in runs if not status or r.status in status]
st.dataframe([r.as_row() for r in shown], hide_index=True, key="runs_table")
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
    f"{started['parameters']:,} parameters · code {started['code_version']}"
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
        st.dataframe(list(d.reasons), hide_index=True, key="runs_reasons")

st.subheader("Datasets read")
st.dataframe(detail.datasets, hide_index=True, key="runs_datasets")

st.subheader("Loss")
curve = detail.loss_curve()
if curve:
    st.line_chart(pd.DataFrame(curve), x="step", y=["train_loss", "val_loss"])
else:
    st.caption("no metrics artifact yet (the run has not finished)")

st.subheader("Energy, carbon and water")
emissions = detail.emissions()
if emissions is None:
    st.caption("recorded when the run finishes")
else:
    e = st.columns(4)
    e[0].metric("Energy", f"{emissions['energy_kwh']:.3f} kWh")
    e[1].metric("CO2e", f"{emissions['emissions_kg_co2e']:.3f} kg")
    e[2].metric("Water", f"{emissions['water_l']:.2f} L")
    e[3].metric("Duration", f"{emissions['duration_s'] / 60:.1f} min")
    st.markdown(" · ".join(f"**{q.quantity}**: about {q.label()}" for q in detail.equivalents()))
    st.caption(
        f"{emissions['tracker']}; grid {emissions['country_iso_code']}, PUE {emissions['pue']}, "
        f"WUE {emissions['wue_l_per_kwh']} L/kWh. Equivalence factors: docs/dashboard.md."
    )
    finished = detail.finished or {}
    st.caption(
        f"status {finished.get('status')} · {finished.get('steps', 0):,} steps · {finished.get('tokens', 0):,} tokens "
        f"· {finished.get('tokens_per_s', 0):,.0f} tokens/s · model sha256 {finished.get('model_digest') or '—'}"
    )

st.subheader("Checkpoints")
st.caption(
    f"{detail.checkpoint_count:,} checkpoint(s)"
    + (
        f"; the newest {len(detail.checkpoints)} are listed"
        if detail.checkpoint_count > len(detail.checkpoints)
        else ""
    )
)
st.dataframe(detail.checkpoints, hide_index=True, key="runs_checkpoints")
