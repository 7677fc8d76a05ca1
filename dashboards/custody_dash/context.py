"""The home a script run reads, and the dashboard's own key: each opened once per run (SQLite
connections stay in their thread; the roster may have changed since the last run)."""

from __future__ import annotations

import threading

import streamlit as st

from custody.home import Home, HomeError, resolve_home
from custody.ledger.storage import StorageError
from custody.views.identity import Service, service_from_env

_local = threading.local()


def home() -> Home:
    """The dashboard's home ($CUSTODY_HOME, set by `custody dashboard --home`); stops the page if unusable."""
    opened = getattr(_local, "home", None)
    if opened is None:
        try:
            opened = Home.open(resolve_home(None))
            opened.ledger  # noqa: B018  opens the database now, so a bad one fails here, clearly
        except (HomeError, StorageError) as exc:
            st.error(f"cannot open the custody home: {exc}")
            st.stop()
        _local.home = opened
    return opened


def service() -> Service:
    """The dashboard's roster identity from its key ($CUSTODY_DASHBOARD_KEY), checked on the roster now."""
    found = getattr(_local, "service", None)
    if found is None:
        found = _local.service = service_from_env(home())
    return found


def close() -> None:
    opened = getattr(_local, "home", None)
    if opened is not None:
        opened.close()
        _local.home = None
    _local.service = None


def key() -> tuple[str, int]:
    """(which home, how big its ledger is now): the key every cached read takes."""
    h = home()
    return f"{h.path.resolve()}|{h.config.origin}", h.storage.head()[0]
