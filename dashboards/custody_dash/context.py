"""The home a script run reads: opened once per run (SQLite connections stay in their thread)."""

from __future__ import annotations

import threading

import streamlit as st

from custody.home import Home, HomeError, resolve_home
from custody.ledger.storage import StorageError

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


def close() -> None:
    opened = getattr(_local, "home", None)
    if opened is not None:
        opened.close()
        _local.home = None


def key() -> tuple[str, int]:
    """(which home, how big its ledger is now): the key every cached read takes."""
    h = home()
    return f"{h.path.resolve()}|{h.config.origin}", h.storage.head()[0]
