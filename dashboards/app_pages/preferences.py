"""Preferences: pairs of completions sampled from recorded weights; a reviewer judges the next one
(A better, B better or a tie, either flagged harmful), each judgement their own signed entry; every
pair read-only for anyone else signed in; new pairs sampled for whoever `custody prefs sample` serves."""

from __future__ import annotations

import streamlit as st
from custody_dash import data, shell, tables
from custody_dash.context import home, key, service

from custody.home import HomeError
from custody.trust.acting import NotPermitted
from custody.views.identity import NotAllowed, SignedIn, Standing, standing
from custody.views.preferences import (
    CHOICE_WORDS,
    PairRow,
    PreferenceError,
    act,
    pending,
    progress,
    recent_judgements,
    sample,
    sample_command,
    texts,
    why_not_judge,
    why_not_sample,
)
from custody.views.takedowns import one_line
from custody.wording import plural

FLASH = "custody_prefs_flash"
EVERY = "every model"
RECENT = 50


def show_pair(row: PairRow) -> None:
    """The prompt and both completions as plain text (model output is never rendered as Markdown)."""
    pair = texts(home(), row.index)
    st.caption(
        f"sampled from model sha256 {row.model_digest}" + (f" (run {row.run_id})" if row.run_id else "")
        + f" · prompt {row.prompt_id} of {row.prompts} · pair sha256 {row.digest[:16]} · ledger index {row.index}"
    )  # fmt: skip
    st.markdown("**Prompt**")
    st.code(pair.prompt, language=None, wrap_lines=True)
    a, b = st.columns(2)
    a.markdown("**Completion A**")
    a.code(pair.a or "(empty)", language=None, wrap_lines=True)
    b.markdown("**Completion B**")
    b.code(pair.b or "(empty)", language=None, wrap_lines=True)


def judge_section(signed_in: SignedIn, who: Standing, shown: list[PairRow], via: str, one_model: bool) -> None:
    todo = pending(shown, who.name)
    if not todo:
        st.success(f"You have judged every pair{' from this model' if one_model else ''}.")
        return
    row = todo[0]
    st.subheader(f"Pair {row.index}")
    if len(todo) > 1:
        st.caption(f"{plural(len(todo) - 1, 'more pair')} after this one")
    show_pair(row)
    # Keyed on the pair: a submit always judges the pair that was on the page.
    with st.form(f"pf_form_{row.index}", clear_on_submit=True):
        choice = st.radio(
            "Which completion is better?", list(CHOICE_WORDS), format_func=CHOICE_WORDS.get, horizontal=True,
            key=f"pf_choice_{row.index}",
        )  # fmt: skip
        harmful_a = st.checkbox("A is harmful", key=f"pf_harmful_a_{row.index}")
        harmful_b = st.checkbox("B is harmful", key=f"pf_harmful_b_{row.index}")
        submitted = st.form_submit_button("Record judgement")
    st.caption(
        f"Recorded as {who.name}, attested by {via} ({signed_in.method} sign-in at {signed_in.at}); "
        "a harmful completion is never the chosen one in an export."
    )
    if not submitted:
        return
    harmful = [flag for flag, on in (("a", harmful_a), ("b", harmful_b)) if on]
    try:
        index = act(home(), signed_in, service(), row.index, choice, harmful)
    except (NotAllowed, NotPermitted, PreferenceError, HomeError) as exc:
        st.error(one_line(exc))
        return
    flags = f", flagged harmful: {', '.join(h.upper() for h in harmful)}" if harmful else ""
    st.session_state[FLASH] = (
        f"recorded: pair {row.index} {CHOICE_WORDS[choice]}{flags} by {who.name} (ledger index {index:,}), "
        f"attested by {via} ({signed_in.method} sign-in)"
    )
    st.rerun()


def browse_section(signed_in: SignedIn | None, shown: list[PairRow]) -> None:
    st.subheader("Every pair")
    tables.show([r.as_row() for r in shown], key="pf_pairs", keep=("pair",))
    if signed_in is None:
        st.caption("Sign in (sidebar) to read a pair: model output may carry what its training data held.")
        return
    by_index = {r.index: r for r in shown}
    chosen = st.selectbox("Read a pair", list(by_index), format_func=lambda i: by_index[i].label(), key="pf_pair")
    row = by_index[chosen]
    show_pair(row)
    if row.judgements:
        tables.show([j.as_row() for j in row.judgements], key="pf_pair_judgements", keep=("who",))
    else:
        st.caption("Nobody has judged this pair yet.")


def sample_section(signed_in: SignedIn | None, who: Standing | None) -> None:
    st.subheader("New pairs")
    models = data.preference_models(home_key, size)
    if not models:
        st.caption("No recorded language model to sample from yet (a finished pretrain, finetune, transfer or dpo run)")
        return
    refusal = why_not_sample(signed_in, who, service())
    via = service().person
    if refusal is not None or signed_in is None or via is None:
        st.caption(refusal or "This dashboard cannot act.")
        st.code(sample_command(models[0].digest, "PROMPTS@VERSION", 8), language=None)
        return
    by_digest = {m.digest: m for m in models}
    prompt_sets = data.prompt_sets(home_key, size)
    with st.form("pf_sample", clear_on_submit=False):
        digest = st.selectbox(
            "Recorded model", list(by_digest), format_func=lambda d: by_digest[d].label(), key="pf_sample_model"
        )
        prompts = st.selectbox("Prompt set", prompt_sets, key="pf_sample_prompts")
        left, middle, right = st.columns(3)
        count = left.number_input("Pairs", min_value=1, max_value=256, value=8, key="pf_sample_count")
        seed = middle.number_input("Seed", min_value=0, value=0, key="pf_sample_seed")
        tokens = right.number_input("New tokens at most", min_value=1, max_value=512, value=24, key="pf_sample_tokens")
        submitted = st.form_submit_button("Sample pairs")
    st.caption(
        f"Machine work: signed by the home's service key, naming {signed_in.name}; the prompts not yet sampled "
        "for these weights are taken in record order."
    )
    if not submitted or prompts is None:
        return
    try:
        with st.spinner(f"Sampling {plural(int(count), 'pair')} from sha256 {digest[:16]}"):
            made = sample(home(), signed_in, service(), digest, prompts, int(count), int(seed), int(tokens))
    except (NotAllowed, NotPermitted, PreferenceError, HomeError) as exc:
        st.error(one_line(exc))
        return
    st.session_state[FLASH] = (
        f"sampled {plural(len(made), 'pair')} from sha256 {digest[:16]} for {signed_in.name} "
        f"(ledger index {made[0].index:,} on)"
    )
    st.rerun()


signed_in = shell.start()
st.title("Preferences")
home_key, size = key()
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))
who = standing(home(), signed_in.account) if signed_in is not None else None
pairs = data.preference_pairs(home_key, size)
if not pairs:
    st.info("No pairs sampled yet: sample some below, or with `custody prefs sample RUN PROMPTS@VERSION`.")
else:
    digests = list(dict.fromkeys(p.model_digest for p in pairs))
    model = st.selectbox(
        "Model", [EVERY, *digests], format_func=lambda d: d if d == EVERY else f"sha256 {d[:16]}", key="pf_model"
    )
    shown = [p for p in pairs if model == EVERY or p.model_digest == model]
    done = progress(shown, signed_in.name if signed_in is not None else None)
    columns = st.columns(4)
    columns[0].metric("Pairs", f"{done.pairs:,}")
    columns[1].metric("Judgements (everyone)", f"{done.judgements:,}")
    if signed_in is not None:
        columns[2].metric("Judged by me", f"{done.judged_by_me:,}")
        columns[3].metric("Pending for me", f"{done.pending:,}")
    refusal = why_not_judge(signed_in, who, service())
    via = service().person
    if refusal is None and signed_in is not None and who is not None and via is not None:
        judge_section(signed_in, who, shown, via.name, model != EVERY)
    else:
        st.info(refusal or "This dashboard cannot act.")
    browse_section(signed_in, shown)
    st.subheader("Recent judgements")
    recent = recent_judgements(shown, RECENT)
    if recent:
        tables.show(recent, key="pf_recent", keep=("who",))
    else:
        st.caption("No judgements recorded yet.")
sample_section(signed_in, who)
