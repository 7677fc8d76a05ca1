"""Ledger explorer: browse and filter entries, verify, inclusion proofs and the latest checkpoint."""

from __future__ import annotations

import streamlit as st
from custody_dash import data, shell, tables
from custody_dash.context import home, key, service

from custody.views.ledger import (
    EntryFilter,
    entry_json,
    entry_page,
    entry_signature,
    entry_types,
    first_proof_index,
    inclusion_proof,
    latest_checkpoint,
)
from custody.wording import plural

PAGE = 50


def sign_checkpoint_offer(index: int, checkpoint_size: int) -> None:
    """An entry after the latest checkpoint has no proof yet: say so, and offer to sign one."""
    st.info(
        f"Entry {index} came after the latest signed checkpoint (size {checkpoint_size:,}), so no signed "
        "checkpoint covers it yet. Sign one here, or with `custody ledger checkpoint`."
    )
    if not service().can_attest:
        st.caption(f"The dashboard is read-only: {service().why_read_only}")
    elif st.button("Sign a checkpoint now", key="lg_sign_checkpoint"):
        home().checkpoint()  # the log's own key signs the head; no ledger entry is written
        st.rerun()


shell.start()
st.title("Ledger")
home_key, size = key()
st.caption(f"{plural(size, 'entry')} · origin {home().config.origin}")

f1, f2, f3, f4 = st.columns(4)
type_prefix = f1.selectbox("Type", ["", *entry_types()], format_func=lambda t: t or "any", key="lg_type")
subject = f2.text_input("Subject (exact)", key="lg_subject", placeholder="dataset:web@1")
actor = f3.text_input("Actor (exact)", key="lg_actor")
before = f4.number_input(
    "At or below index", min_value=0, max_value=max(size - 1, 0), value=max(size - 1, 0), step=PAGE, key="lg_before"
)
rows = entry_page(home(), EntryFilter(type_prefix, subject.strip(), actor.strip()), int(before), PAGE)
tables.show(rows, key="lg_table", keep=("type",))
if len(rows) == PAGE:
    st.caption(f"Showing {PAGE}; set 'At or below index' to {rows[-1]['index'] - 1} for older entries.")
elif not rows:
    st.caption("No entries match.")

checkpoint = latest_checkpoint(home())
st.subheader("Entry and inclusion proof")
index = st.number_input(
    "Entry index",
    min_value=0,
    max_value=max(size - 1, 0),
    value=min(first_proof_index(home()), max(size - 1, 0)),
    key="lg_index",
    help="Starts at the newest entry the latest signed checkpoint covers.",
)
if size:
    st.caption(f"entry {int(index)} signed: {entry_signature(home(), int(index)).label()}")
    st.json(entry_json(home(), int(index)), expanded=False)
    if checkpoint is not None and not checkpoint.covers(int(index)):
        sign_checkpoint_offer(int(index), checkpoint.size)
    else:
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
if checkpoint is None:
    st.warning("No signed checkpoint yet (`custody ledger checkpoint` signs one).")
else:
    state = "signature valid" if checkpoint.signature_ok else f"signature INVALID: {checkpoint.problem}"
    st.write(f"size {checkpoint.size:,} · {state} · {checkpoint.since()}")
    st.caption(f"root {checkpoint.root}")
    st.code(checkpoint.note, language=None, wrap_lines=True)
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
            f"Verified: {plural(result.size, 'entry')} re-hashed, every node rebuilt, "
            f"{plural(result.checkpoints_checked, 'checkpoint')} and the witness checked ({result.seconds:.1f} s)"
        )
    else:
        st.error(f"Verification FAILED ({plural(len(result.problems), 'problem')})")
        st.code("\n".join(result.problems[:50]), language=None)
