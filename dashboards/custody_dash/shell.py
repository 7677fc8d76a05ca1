"""What every page draws first: the home's name and the sign-in box in the sidebar.

Each page calls `start()` itself rather than app.py drawing the sidebar before `page.run()`:
streamlit.testing drops elements the entry script drew once a test switches pages.
"""

from __future__ import annotations

import streamlit as st

from custody.views.identity import SignedIn
from custody_dash import auth
from custody_dash.context import home, service


def start() -> SignedIn | None:
    h = home()
    st.sidebar.caption(f"home: {h.path}")
    return auth.sidebar(h, service())
