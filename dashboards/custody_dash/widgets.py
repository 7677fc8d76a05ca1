"""Small widgets more than one page uses, so they read and behave the same everywhere."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from custody.wording import plural

INTERMEDIATE_HELP = (
    "Every stage of a chain registers its output (lineage needs them). The ones passed on to the "
    "next stage (NAME@V+2-dedup-exact) are hidden from lists, charts and counts unless shown here."
)


def show_intermediate(key: str) -> bool:
    """The 'show intermediate stage outputs' toggle (off by default)."""
    return st.toggle("Show intermediate stage outputs", value=False, key=key, help=INTERMEDIATE_HELP)


def hidden_note(hidden: int) -> str:
    """`12 intermediate stage outputs hidden`, or nothing when none are."""
    return f"{plural(hidden, 'intermediate stage output')} hidden" if hidden else ""


def short(text: str, limit: int = 28) -> str:
    """`text`, cut to `limit` characters with an ellipsis where longer (the full text goes in a tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def labelled(column: DeltaGenerator, label: str, value: str) -> None:
    """A label over a plain-text value: unlike a metric, an email address stays text (no mailto
    link) and a long name is shortened rather than cut off, with the whole of it on hover."""
    column.caption(label)
    column.text(short(value), help=value if short(value) != value else None)
