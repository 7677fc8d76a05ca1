"""Signing in: local accounts (HOME/accounts.json), or OIDC through Streamlit's login when configured.

The signed-in account lives in the session state. It only decides what the page offers: every
action re-reads the account's role before recording (custody.views.reviews.act).
OIDC: `st.login()` proves an email address; it acts only if a local account of that name exists
(`custody user add EMAIL --role reviewer`), which gives it its role.
"""

from __future__ import annotations

import time

import streamlit as st

from custody.accounts import Account, AccountError, Accounts
from custody.home import Home

ACCOUNT = "custody_account"
FAILURES = "custody_failed_sign_ins"
MAX_FAILURES, LOCKOUT_S = 5, 30.0


def current() -> Account | None:
    return st.session_state.get(ACCOUNT)


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than answering False
        return False


def account_for_identity(accounts: Accounts, email: str | None) -> Account | None:
    """The local account an OIDC identity maps to (its email is the account name), if any."""
    if not email:
        return None
    try:
        return accounts.get(email)
    except AccountError:
        return None


def _locked_out() -> float:
    failures: list[float] = st.session_state.get(FAILURES, [])
    recent = [t for t in failures if time.monotonic() - t < LOCKOUT_S]
    st.session_state[FAILURES] = recent
    return LOCKOUT_S - (time.monotonic() - recent[0]) if len(recent) >= MAX_FAILURES else 0.0


def sidebar(home: Home) -> Account | None:
    """Render the sign-in box in the sidebar; return the signed-in account."""
    accounts = Accounts(home.path)
    with st.sidebar:
        account = current()
        if account is None and oidc_configured() and getattr(st.user, "is_logged_in", False):
            account = account_for_identity(accounts, st.user.get("email"))
            if account is None:
                st.warning(
                    f"{st.user.get('email')} has no custody account; an admin adds one with "
                    f"`custody user add {st.user.get('email')} --role reviewer`."
                )
            else:
                st.session_state[ACCOUNT] = account
        if account is not None:
            st.markdown(f"Signed in as **{account.name}** ({account.role})")
            if st.button("Sign out", key="sign_out"):
                st.session_state.pop(ACCOUNT, None)
                if oidc_configured() and getattr(st.user, "is_logged_in", False):
                    st.logout()
                st.rerun()
            return account
        st.markdown("**Sign in** to review findings")
        if oidc_configured():
            st.button("Sign in with single sign-on", key="oidc_login", on_click=st.login)
        with st.form("sign_in", clear_on_submit=True):
            name = st.text_input("User name", key="sign_in_name")
            password = st.text_input("Password", type="password", key="sign_in_password")
            submitted = st.form_submit_button("Sign in")
        if submitted:
            wait = _locked_out()
            if wait > 0:
                st.error(f"too many failed sign-ins; try again in {wait:.0f} s")
                return None
            try:
                account = accounts.authenticate(name.strip(), password)
            except AccountError as exc:
                st.error(str(exc))
                return None
            if account is None:
                st.session_state[FAILURES] = [*st.session_state.get(FAILURES, []), time.monotonic()]
                st.error("wrong user name or password")
                return None
            st.session_state[ACCOUNT] = account
            st.session_state.pop(FAILURES, None)
            st.rerun()
        return None
