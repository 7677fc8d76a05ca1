"""What every page draws first: the home's name and the sign-in box in the sidebar.

Each page calls `start()` itself rather than app.py drawing the sidebar before `page.run()`:
streamlit.testing drops elements the entry script drew once a test switches pages.
"""

from __future__ import annotations

import streamlit as st

from custody.accounts import Account
from custody_dash import auth
from custody_dash.context import home


def start() -> Account | None:
    h = home()
    st.sidebar.caption(f"home: {h.path}")
    return auth.sidebar(h)
