"""Streamlit glue shared by the dashboard's pages: the home, cached reads, and sign-in.

The read models themselves live in `custody.views` (plain, tested Python); this package only
opens the home for each script run and caches the views' answers keyed on the ledger's size,
so every cache refreshes as soon as anything is appended.
"""
