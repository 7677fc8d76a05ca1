"""What the dashboard's cold pages stand on in the ledger: type-filtered pages read one stored type
at a time (SQLite) must equal a filter over the whole ledger, on both backends; the (subject, type)
index is added to a database made before it (SQLite and PostgreSQL); `query.touched`
names what was appended; and a saved summary is used only for a prefix of the same ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from custody.ledger import query, summary
from custody.ledger.entry import EntryBody, entry_type
from custody.ledger.storage.postgres import PostgresStorage
from custody.ledger.storage.sqlite import SUBJECT_TYPE_INDEX, SqliteStorage
from custody.testing.people import ADMIN


@entry_type("ledger.mark/v1")  # a second type in the ledger. family, for these tests only
class LedgerMark(EntryBody):
    text: str


MARKS = ["ledger.note/v1", "ledger.mark/v1"]


@pytest.fixture
def mixed(home, cast):
    """Notes and check-like entries on three subjects by two people, interleaved."""
    people = [cast.enroll(home, name, "engineer") for name in ("p0", "p1")]
    entries = []
    for i in range(41):
        type_ = MARKS[i % 2] if i % 5 else MARKS[0]
        entries.append(home.entry(type_, f"s{i % 3}", {"text": f"{i}"}, actor=people[i % 2]))
    home.append(entries)
    return home


def expected(home, type_prefix, subject, actor, start, stop, newest_first) -> list[int]:
    rows = [
        r.idx
        for r in home.storage.iter_entries()
        if r.type.startswith(type_prefix)
        and (subject is None or r.subject == subject)
        and (actor is None or r.actor == actor)
        and start <= r.idx
        and (stop is None or r.idx < stop)
    ]
    return rows[::-1] if newest_first else rows


@pytest.mark.parametrize("page", [1, 3, 1000])
@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize(
    "filters",
    [
        {"type_prefix": "ledger."},  # two stored types, merged by index
        {"type_prefix": "ledger.", "subject": "s1"},
        {"type_prefix": "ledger.m", "subject": "s2", "actor": "p1"},
        {"type_prefix": "ledger.note/", "actor": "p0", "start": 9, "stop": 30},
        {"type_prefix": "people."},
        {"type_prefix": "optout."},  # no such entry
    ],
)
def test_type_prefixes_read_type_by_type_equal_a_filter(mixed, page, newest_first, filters) -> None:
    args = {"subject": None, "actor": None, "start": 0, "stop": None, **filters}
    found = [r.idx for r in query.entries(mixed.storage, newest_first=newest_first, page=page, **filters)]
    assert found == expected(mixed, newest_first=newest_first, **args)


@pytest.mark.postgres
def test_type_prefixes_on_postgres(tmp_path: Path, postgres_url: str, cast) -> None:
    home = cast.init_home(tmp_path / "home", database=postgres_url)
    try:
        assert home.storage.name == "postgresql"
        person = cast.enroll(home, "p0", "engineer")
        home.append([home.entry(MARKS[i % 2], f"s{i % 3}", {"text": f"{i}"}, actor=person) for i in range(20)])
        for filters in ({"type_prefix": "ledger."}, {"type_prefix": "ledger.", "subject": "s1"}):
            args = {"subject": None, "actor": None, "start": 0, "stop": None, **filters}
            for newest_first in (False, True):
                found = [r.idx for r in query.entries(home.storage, newest_first=newest_first, page=3, **filters)]
                assert found == expected(home, newest_first=newest_first, **args)
        listed = "SELECT indexname FROM pg_indexes WHERE tablename = 'entries'"
        assert ("entries_by_subject_type",) in home.storage._rows(listed)
        home.storage._execute("DROP INDEX entries_by_subject_type")  # a database made before the index
        older = PostgresStorage(postgres_url)
        try:
            assert ("entries_by_subject_type",) in older._rows(listed)  # added on open
        finally:
            older.close()
        size = home.ledger.size
        assert query.touched(home.storage, size - 4, size) == {
            (r.type, r.subject) for r in home.storage.iter_entries() if r.idx >= size - 4
        }
    finally:
        home.close()


def test_the_subject_type_index_is_added_to_an_older_database(home, tmp_path: Path) -> None:
    path = home.path / "ledger.sqlite"
    home.close()
    with sqlite3.connect(path) as db:
        db.execute(f"DROP INDEX {SUBJECT_TYPE_INDEX}")
    SqliteStorage(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (SUBJECT_TYPE_INDEX,)).fetchone()


def test_touched_names_each_type_and_subject_appended(mixed) -> None:
    size = mixed.ledger.size
    assert query.touched(mixed.storage, size, size) == set()
    assert query.touched(mixed.storage, size - 5, size) == {
        (r.type, r.subject) for r in mixed.storage.iter_entries() if r.idx >= size - 5
    }


def test_a_summary_is_used_only_for_a_prefix_of_the_same_ledger(mixed, tmp_path: Path, cast) -> None:
    path, kind = tmp_path / "summary.json", "test/1"
    size = mixed.ledger.size
    summary.save(path, mixed.ledger, kind, summary.Summary(size - 3, {"seen": size - 3}))
    assert summary.load(path, mixed.ledger, kind) == summary.Summary(size - 3, {"seen": size - 3})
    assert summary.load(path, mixed.ledger, "test/2") == summary.Summary()  # another kind of summary
    mixed.append([mixed.entry("ledger.note/v1", "s0", {"text": "more"}, actor=cast.person(mixed, ADMIN))])
    assert summary.load(path, mixed.ledger, kind).size == size - 3  # still a prefix: carried forward
    other = cast.init_home(tmp_path / "other")
    try:
        person = cast.person(other, ADMIN)
        other.append([other.entry("ledger.note/v1", "x", {"text": f"other {i}"}, actor=person) for i in range(size)])
        assert other.ledger.size >= size - 3
        assert summary.load(path, other.ledger, kind) == summary.Summary()  # another ledger's root
    finally:
        other.close()
    path.write_text("{", encoding="utf-8")
    assert summary.load(path, mixed.ledger, kind) == summary.Summary()  # a damaged file: from nothing
