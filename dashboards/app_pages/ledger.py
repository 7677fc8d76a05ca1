"""Ledger explorer: browse and filter entries, verify, inclusion proofs and the latest checkpoint."""

from __future__ import annotations

import streamlit as st
from custody_dash import data, shell
from custody_dash.context import home, key

from custody.views.ledger import (
    EntryFilter,
    entry_json,
    entry_page,
    entry_signature,
    entry_types,
    inclusion_proof,
    latest_checkpoint,
)

PAGE = 50

shell.start()
st.title("Ledger")
home_key, size = key()
st.caption(f"{size:,} entries · origin {home().config.origin}")

f1, f2, f3, f4 = st.columns(4)
type_prefix = f1.selectbox("Type", ["", *entry_types()], format_func=lambda t: t or "any", key="lg_type")
subject = f2.text_input("Subject (exact)", key="lg_subject", placeholder="dataset:web@1")
actor = f3.text_input("Actor (exact)", key="lg_actor")
before = f4.number_input(
    "At or below index", min_value=0, max_value=max(size - 1, 0), value=max(size - 1, 0), step=PAGE, key="lg_before"
)
rows = entry_page(home(), EntryFilter(type_prefix, subject.strip(), actor.strip()), int(before), PAGE)
st.dataframe(rows, hide_index=True, key="lg_table")
if len(rows) == PAGE:
    st.caption(f"Showing {PAGE}; set 'At or below index' to {rows[-1]['index'] - 1} for older entries.")
elif not rows:
    st.caption("No entries match.")

st.subheader("Entry and inclusion proof")
index = st.number_input(
    "Entry index", min_value=0, max_value=max(size - 1, 0), value=rows[0]["index"] if rows else 0, key="lg_index"
)
if size:
    st.caption(f"entry {int(index)} signed: {entry_signature(home(), int(index)).label()}")
    st.json(entry_json(home(), int(index)), expanded=False)
    proof = inclusion_proof(home(), int(index))
    if proof.proof is None:
        st.warning(proof.error)
    else:
        st.caption(
            f"proof of entry {int(index)} in the tree of size {proof.proof['tree_size']:,}; "
            "check it offline: `custody ledger verify-proof FILE --key VERIFIER_KEY` (key below)"
        )
        st.json(proof.proof, expanded=False)
        st.download_button(
            "Download inclusion proof (JSON)",
            proof.as_bytes(),
            file_name=f"entry-{int(index)}.proof.json",
            mime="application/json",
            key="lg_proof_download",
        )

st.subheader("Latest signed checkpoint")
checkpoint = latest_checkpoint(home())
if checkpoint is None:
    st.warning("No signed checkpoint yet")
else:
    state = "signature valid" if checkpoint.signature_ok else f"signature INVALID: {checkpoint.problem}"
    st.write(
        f"size {checkpoint.size:,} · root {checkpoint.root} · {state} · {checkpoint.entries_since:,} entries since"
    )
    st.code(checkpoint.note, language=None)
    st.download_button(
        "Download checkpoint", checkpoint.note, file_name=f"checkpoint-{checkpoint.size}.txt", key="lg_cp_download"
    )
    st.caption(f"verifier key: {home().config.verifier_key}")

st.subheader("Verify")
if st.button("Verify the whole ledger", key="lg_verify"):
    st.session_state["custody_verification"] = data.verification(home_key, size)
result = data.verified_in_session(size)
if result is not None:
    if result.ok:
        st.success(
            f"Verified: {result.size:,} entries re-hashed, every node rebuilt, {result.checkpoints_checked} "
            f"checkpoint(s) and the witness checked ({result.seconds:.1f} s)"
        )
    else:
        st.error(f"Verification FAILED ({len(result.problems)} problem(s))")
        st.code("\n".join(result.problems[:50]), language=None)
