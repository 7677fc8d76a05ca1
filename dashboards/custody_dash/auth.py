"""Signing in: local accounts (HOME/accounts.json), or OIDC through Streamlit's login when configured.

The session keeps who signed in, how (password | oidc) and when: every entry the dashboard
records attests exactly that. Signing in only decides what the page offers: every action
re-reads the account and the person's roster roles before recording (custody.views.reviews.act).
OIDC: `st.login()` proves an email address; it acts only if a local account of that name exists
(`custody user add EMAIL --role reviewer`) and that name is on the home's roster.
"""

from __future__ import annotations

import time

import streamlit as st

from custody.accounts import Account, AccountError, Accounts
from custody.home import Home
from custody.views.identity import Service, SignedIn, issued_at, sign_in, standing

SIGNED_IN = "custody_signed_in"
FAILURES = "custody_failed_sign_ins"
MAX_FAILURES, LOCKOUT_S = 5, 30.0


def current() -> SignedIn | None:
    return st.session_state.get(SIGNED_IN)


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


def _oidc(accounts: Accounts) -> SignedIn | None:
    """The OIDC identity mapped to its local account, once Streamlit's login has one."""
    if not (oidc_configured() and getattr(st.user, "is_logged_in", False)):
        return None
    email = st.user.get("email")
    account = account_for_identity(accounts, email)
    if account is None:
        st.warning(
            f"{email} has no custody account; an admin adds one with `custody user add {email} --role reviewer`."
        )
        return None
    signed_in = sign_in(account, "oidc", issued_at(st.user.to_dict()))
    st.session_state[SIGNED_IN] = signed_in
    return signed_in


def _signed_in_box(home: Home, signed_in: SignedIn) -> None:
    st.markdown(f"Signed in as **{signed_in.name}** ({signed_in.account.role})")
    who = standing(home, signed_in.account)
    if who.problem:
        st.warning(who.problem)
    else:
        st.caption(f"roster roles: {who.describe()} · {signed_in.method} sign-in at {signed_in.at}")
    if st.button("Sign out", key="sign_out"):
        st.session_state.pop(SIGNED_IN, None)
        if oidc_configured() and getattr(st.user, "is_logged_in", False):
            st.logout()
        st.rerun()


def _service_box(service: Service) -> None:
    if service.person is None:
        st.warning(f"Read-only: {service.why_read_only}")
    else:
        st.caption(
            f"Entries are signed by {service.person.name} (key {service.person.fingerprint}), "
            "attesting who is signed in"
        )


def sidebar(home: Home, service: Service) -> SignedIn | None:
    """Render the sign-in box in the sidebar; return who is signed in."""
    accounts = Accounts(home.path)
    with st.sidebar:
        signed_in = current() or _oidc(accounts)
        if signed_in is not None:
            _signed_in_box(home, signed_in)
            _service_box(service)
            return signed_in
        st.markdown("**Sign in** to review findings")
        if oidc_configured():
            st.button("Sign in with single sign-on", key="oidc_login", on_click=st.login)
        with st.form("sign_in", clear_on_submit=True):
            name = st.text_input("User name", key="sign_in_name")
            password = st.text_input("Password", type="password", key="sign_in_password")
            submitted = st.form_submit_button("Sign in")
        _service_box(service)
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
            st.session_state[SIGNED_IN] = sign_in(account, "password")
            st.session_state.pop(FAILURES, None)
            st.rerun()
        return None
