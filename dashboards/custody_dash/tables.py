"""Tables that fit the page: every column sized to its content, the widest narrowed until the whole
table fits the main column, so no column is pushed out of sight to the right (a narrowed cell ends
in an ellipsis and shows its whole value when clicked). The columns a reader finds rows by (the
dataset, the finding) keep their width."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import streamlit as st

BUDGET_PX = 920  # the main column of a 1400 px window with the sidebar open
KEEP_MAX_PX = 320  # a kept column is never narrowed below its content, up to this
ALWAYS_KEPT = ("index", "time")  # a cut timestamp or index tells nothing
CHAR_PX, PAD_PX, MIN_PX = 8, 24, 64  # an average character, the cell's padding, the narrowest column

Rows = Sequence[Mapping[str, Any]]


def columns(rows: Rows) -> list[str]:
    """Every column in first-seen order (rows may differ in their keys)."""
    return list(dict.fromkeys(name for row in rows for name in row))


def _natural(name: str, rows: Rows) -> int:
    longest = max([len(name), *(len(str(row.get(name, ""))) for row in rows)])
    return PAD_PX + CHAR_PX * longest


def _level(widths: list[int], budget: int) -> int:
    """The width L with sum(min(w, L)) == budget: narrow columns keep theirs, wide ones share the rest."""
    left, remaining = budget, sorted(widths)
    while remaining and remaining[0] * len(remaining) <= left:
        left -= remaining.pop(0)
    return max(left // len(remaining), MIN_PX) if remaining else budget


def column_widths(rows: Rows, keep: Iterable[str] = (), budget: int = BUDGET_PX) -> dict[str, int]:
    """Pixel widths: each column's natural width, the widest cut to one common level if needed."""
    natural = {name: _natural(name, rows) for name in columns(rows)}
    if sum(natural.values()) <= budget:
        return natural
    kept = {name: min(natural[name], KEEP_MAX_PX) for name in (*ALWAYS_KEPT, *keep) if name in natural}
    others = [w for name, w in natural.items() if name not in kept]
    level = _level(others, max(budget - sum(kept.values()), MIN_PX * len(others)))
    return {name: kept.get(name, min(width, level)) for name, width in natural.items()}


def show(
    rows: Rows, key: str | None = None, keep: Iterable[str] = (), column_config: Mapping[str, Any] | None = None
) -> None:
    """`st.dataframe` without the index, every column given a width that keeps the table on the page."""
    config: dict[str, Any] = {name: {"width": width} for name, width in column_widths(rows, keep).items()}
    for name, given in (column_config or {}).items():
        config[name] = {**config.get(name, {}), **given}
    st.dataframe(list(rows), hide_index=True, key=key, column_config=config)
