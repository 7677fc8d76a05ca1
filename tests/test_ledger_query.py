"""custody.ledger.query: the one reader that pages through entries and decodes them.

Paging is checked with pages smaller than the answer, so every boundary (a full last page, a
page cut by `stop` or `start`, newest first) is crossed; the answer must always equal a filter
over the whole ledger read in one go.
"""

from __future__ import annotations

import pytest

from custody.ledger import query


@pytest.fixture
def notes(home, cast):
    """Notes on two subjects by three people, after the home's own first entries (and the people's)."""
    people = [cast.enroll(home, name, "engineer") for name in ("actor0", "actor1", "actor2")]
    home.append(
        [home.entry("ledger.note/v1", f"s{i % 2}", {"text": f"note {i}"}, actor=people[i % 3]) for i in range(23)]
    )
    return home


def everything(home) -> list:
    return list(home.storage.iter_entries())


def matching(home, type_prefix=None, subject=None, actor=None, start=0, stop=None) -> list[int]:
    return [
        r.idx
        for r in everything(home)
        if (type_prefix is None or r.type.startswith(type_prefix))
        and (subject is None or r.subject == subject)
        and (actor is None or r.actor == actor)
        and start <= r.idx
        and (stop is None or r.idx < stop)
    ]


@pytest.mark.parametrize("page", [1, 2, 3, 5, 1000])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"type_prefix": "ledger.note/"},
        {"type_prefix": "ledger."},
        {"subject": "s1"},
        {"actor": "actor2"},
        {"type_prefix": "ledger.note/v1", "subject": "s0", "actor": "actor0"},
        {"start": 4, "stop": 17},
        {"type_prefix": "ledger.note/", "start": 7},
        {"subject": "s0", "stop": 12},
        {"start": 9, "stop": 9},
        {"start": 50},
        {"type_prefix": "nothing."},
    ],
)
def test_entries_equal_a_filter_over_the_whole_ledger(notes, page, filters) -> None:
    expected = matching(notes, **filters)
    assert [r.idx for r in query.entries(notes.storage, page=page, **filters)] == expected
    newest_first = [r.idx for r in query.entries(notes.storage, newest_first=True, page=page, **filters)]
    assert newest_first == expected[::-1]


@pytest.mark.parametrize("limit", [0, 1, 4, 11, 100])
def test_window_newest_first_and_latest(notes, limit) -> None:
    notes_idx = matching(notes, "ledger.note/")
    assert [r.idx for r in query.window(notes.storage, limit, "ledger.note/")] == notes_idx[:limit]
    below = [i for i in notes_idx if i < 20][::-1]
    assert [r.idx for r in query.window(notes.storage, limit, "ledger.", stop=20, newest_first=True)] == below[:limit]
    assert [r.idx for r in query.newest(notes.storage, "ledger.note/", limit)] == notes_idx[::-1][:limit]
    s1 = matching(notes, subject="s1")
    assert [r.idx for r in query.newest(notes.storage, None, limit, "s1")] == s1[::-1][:limit]


def test_first_latest_at_and_decoding(notes) -> None:
    s0 = matching(notes, "ledger.note/", "s0")
    assert query.first(notes.storage, "ledger.note/", "s0").idx == s0[0]
    assert query.latest(notes.storage, "ledger.note/", "s0").idx == s0[-1]
    assert query.first(notes.storage, "ledger.note/", "nobody") is None
    assert query.latest(notes.storage, "ledger.note/", "nobody") is None
    row = query.at(notes.storage, s0[-1])
    assert query.envelope(row)["type"] == "ledger.note/v1"
    assert query.envelope(row)["subject"] == "s0"
    assert query.body(row) == {"text": "note 22"}
    assert query.at(notes.storage, notes.ledger.size) is None
