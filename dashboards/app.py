"""custody dashboard: `custody dashboard --home DIR --key FILE` runs `streamlit run dashboards/app.py`.

Every page reads the home named by $CUSTODY_HOME. Acting needs a person signed in (sidebar) and
the dashboard's own attestor key, whose path $CUSTODY_DASHBOARD_KEY names: every entry it records
is signed with that key and attests the signed-in person (custody.views.identity).
The pages live in `app_pages/`, not `pages/`: a folder named `pages` beside the entry script
switches Streamlit into its older file-based navigation, which would ignore `st.navigation`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the shared glue (custody_dash) sits beside this file
    sys.path.insert(0, str(HERE))

from custody_dash import context  # noqa: E402

st.set_page_config(page_title="custody", page_icon=":material/verified_user:", layout="wide")

PAGES = [
    st.Page(HERE / "app_pages" / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(HERE / "app_pages" / "datasets.py", title="Datasets", icon=":material/dataset:"),
    st.Page(HERE / "app_pages" / "review.py", title="Review queue", icon=":material/rule:"),
    st.Page(HERE / "app_pages" / "runs.py", title="Runs", icon=":material/model_training:"),
    st.Page(HERE / "app_pages" / "preferences.py", title="Preferences", icon=":material/thumbs_up_down:"),
    st.Page(HERE / "app_pages" / "takedowns.py", title="Takedowns", icon=":material/gavel:"),
    st.Page(HERE / "app_pages" / "ledger.py", title="Ledger", icon=":material/receipt_long:"),
    st.Page(HERE / "app_pages" / "policies.py", title="Policies", icon=":material/policy:"),
]

try:
    st.navigation(PAGES).run()
finally:
    context.close()
