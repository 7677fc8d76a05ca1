"""make_entry's fast path writes the same bytes as before: canonical JSON agrees with rfc8785 on random
bodies, and entries of real types equal a reference built the old way (pydantic's model_dump, then
rfc8785 over the whole envelope). Entry bytes are the public format: old ledgers must verify."""

from __future__ import annotations

import enum
import json
import re
import time
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.checks import entry_types as _checks  # noqa: F401  registers check.completed/v1
from custody.evals import entry_types as _evals  # noqa: F401  registers eval.completed/v1
from custody.ledger import entry as entry_module
from custody.ledger import entry_types as _ledger  # noqa: F401  registers ledger.note/v1, artifact.erased/v1
from custody.ledger.entry import Entry, EntryError, canonical_json, make_entry
from custody.runs import entry_types as _runs  # noqa: F401  registers run.checkpoint/v1

SETTINGS = settings(max_examples=300, deadline=None)
SAFE = 2**53 - 1

# Escapes, DEL, the BMP above the surrogates (sorts after astral characters in UTF-16), astral.
TRICKY = ["\x00", "\x1f", "\n", '"', "\\", "\x7f", "\u2028", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0001f600"]
characters = st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY))
texts = st.text(characters, max_size=10)
keys = st.one_of(texts, st.sampled_from(["", "a", "B", "\ue000", "\uffff", "\U00010000", "\U0001f600", "é"]))
integers = st.one_of(
    st.integers(-SAFE, SAFE),
    st.sampled_from([SAFE, -SAFE, SAFE + 1, -SAFE - 1, 2**53, -(2**53), 2**64]),
    st.integers(),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e21, 1e20, 1e-7, 5e-324, 1.7976931348623157e308, 4.5]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), integers, floats, texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=20,
)
bodies = st.dictionaries(keys, json_values, max_size=5)


def reference_bytes(value) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except (ValueError, TypeError):
        return EntryError


@SETTINGS
@given(bodies)
def test_canonical_json_equals_rfc8785_on_random_bodies(body) -> None:
    expected = reference_bytes(body)
    if expected is EntryError:
        with pytest.raises(EntryError):
            canonical_json(body)
    else:
        assert canonical_json(body) == expected


@SETTINGS
@given(json_values)
def test_the_fast_path_check_is_the_isinstance_check(value) -> None:
    """The inline checks of exact types decide as the general check does, and what they accept
    serializes as json.dumps does."""
    assert entry_module._fast_path_ok(value) == entry_module._fast_path_ok_any(value)
    if entry_module._fast_path_ok(value):
        assert entry_module._dumps(value) == json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tagged(dict):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"k": Colour.RED, Colour.RED: 1},
        {"k": Level.HIGH, "l": [Level.HIGH, True, None]},
        Tagged(b=1, a=Tagged(z=[1, 2])),
        {"t": (1, "x", (None,)), "n": 2**52},
        ("a", 1, {"\U0001f600": 1, "\ue000": 2}),
        Colour.RED,
        "plain",
        7,
        None,
    ],
)
def test_subclasses_and_tuples_take_the_general_check(value) -> None:
    assert entry_module._fast_path_ok(value) == entry_module._fast_path_ok_any(value)
    assert canonical_json(value) == rfc8785.dumps(value)


def old_make_entry_bytes(type_, actor, subject, body, refs, ts) -> bytes:
    """The envelope as make_entry built it before the fast path: model_validate, model_dump, rfc8785."""
    model = entry_module._ENTRY_TYPES[type_]
    dumped = model.model_validate(body).model_dump(mode="json", exclude_none=True)
    envelope = {"v": 1, "type": type_, "ts": ts, "actor": actor, "subject": subject, "body": dumped, "refs": refs}
    return rfc8785.dumps(envelope)


digests = st.text("0123456789abcdef", min_size=64, max_size=64)
nonempty = texts.filter(bool)
refs = st.lists(st.one_of(digests.map("sha256:".__add__), st.integers(0, 10**12).map("ledger:{}".format)), max_size=3)
metric_values = st.one_of(st.none(), floats, st.integers(-SAFE, SAFE))
amounts = st.one_of(st.floats(0, 1e30), st.integers(0, 2**60))
emissions = st.fixed_dictionaries(
    {
        "duration_s": amounts,
        "energy_kwh": amounts,
        "emissions_kg_co2e": amounts,
        "water_l": amounts,
        "country_iso_code": texts,
        "pue": st.floats(1, 3),
        "wue_l_per_kwh": amounts,
        "tracker": texts,
    }
)
real_bodies = st.one_of(
    st.tuples(st.just("ledger.note/v1"), st.fixed_dictionaries({"text": st.text(characters, min_size=1)})),
    st.tuples(st.just("artifact.erased/v1"), st.fixed_dictionaries({"digest": digests, "reason": nonempty})),
    st.tuples(
        st.just("run.checkpoint/v1"),
        st.fixed_dictionaries(
            {"run_id": texts, "step": st.integers(0, 2**70), "checkpoint_digest": digests, "tokens": st.integers(0)},
            optional={"train_loss": floats, "val_loss": st.one_of(st.none(), floats), "val_perplexity": floats},
        ).map(lambda body: {"train_loss": 1.5, **body}),
    ),
    st.tuples(
        st.just("check.completed/v1"),
        st.fixed_dictionaries(
            {
                "check": texts,
                "version": texts,
                "dataset": texts,
                "dataset_digest": digests,
                "config_digest": digests,
                "result_digest": digests,
                "summary_digest": digests,
                "records": st.integers(0, 2**60),
                "verdicts": st.dictionaries(keys, integers, max_size=4),
                "status": st.sampled_from(["pass", "flag", "fail"]),
                "findings": st.lists(
                    st.fixed_dictionaries({"id": texts, "severity": st.sampled_from(["flag", "fail"])}), max_size=3
                ),
            },
            optional={"model_digest": st.one_of(st.none(), digests)},
        ),
    ),
    st.tuples(
        st.just("eval.completed/v1"),
        st.fixed_dictionaries(
            {
                "model_digest": digests,
                "evalset": texts,
                "evalset_digest": digests,
                "task": st.sampled_from(["loss", "multiple-choice", "classification"]),
                "records": st.integers(1, 10**9),
                "results": st.dictionaries(keys, st.dictionaries(keys, metric_values, max_size=3), max_size=3),
                "emissions": emissions,
            },
            optional={"run_id": st.one_of(st.none(), texts)},
        ),
    ),
)


@SETTINGS
@given(real_bodies, nonempty, nonempty, refs, nonempty)
def test_make_entry_writes_the_bytes_the_old_way_wrote(typed_body, actor, subject, refs, ts) -> None:
    type_, body = typed_body
    try:
        expected = old_make_entry_bytes(type_, actor, subject, body, refs, ts)
    except (ValueError, TypeError):  # a body the schema refuses, or the reference cannot write
        with pytest.raises(EntryError):
            make_entry(type_, actor, subject, body, refs=refs, ts=ts)
        return
    entry = make_entry(type_, actor, subject, body, refs=refs, ts=ts)
    assert entry.raw == expected
    dumped = entry_module._ENTRY_TYPES[type_].model_validate(body).model_dump(mode="json", exclude_none=True)
    assert entry == Entry(expected, type_, ts, actor, subject, dumped, refs)


def test_the_bench_mix_is_byte_identical_to_the_old_way() -> None:
    for i in range(200):
        refs = [f"ledger:{i // 2}", f"sha256:{i:064x}"] if i % 2 else []
        args = ("artifact.erased/v1", f"bench-{i % 7}", f"dataset:web@{i}", {"digest": f"{i:064x}", "reason": "r"})
        ts = "2026-12-06T06:50:00.000000Z"
        assert make_entry(*args, refs=refs, ts=ts).raw == old_make_entry_bytes(*args, refs, ts)


@pytest.mark.parametrize(
    ("actor", "subject", "ts"),
    [
        ("a\ud800", "s", "t"),  # a lone surrogate: the reference reports it
        ("a", "s\udfff", "t"),
        ("a", "s", "t\ud800"),
    ],
)
def test_lone_surrogates_in_the_envelope_are_refused_as_before(actor, subject, ts) -> None:
    with pytest.raises(EntryError, match="cannot be canonicalized"):
        make_entry("ledger.note/v1", actor, subject, {"text": "x"}, ts=ts)


class Name(str):
    pass


def test_an_actor_that_is_not_a_plain_str_takes_the_general_path() -> None:
    entry = make_entry("ledger.note/v1", Name("alice"), "dataset:x", {"text": "x"}, ts="t")
    assert entry.raw == old_make_entry_bytes("ledger.note/v1", "alice", "dataset:x", {"text": "x"}, [], "t")


def test_validation_errors_read_as_before() -> None:
    with pytest.raises(EntryError, match=r"^artifact\.erased/v1: field 'digest': String should match pattern"):
        make_entry("artifact.erased/v1", "a", "s", {"digest": "xyz", "reason": "r"})
    with pytest.raises(EntryError, match=r"^ledger\.note/v1: field 'extra': Extra inputs are not permitted"):
        make_entry("ledger.note/v1", "a", "s", {"text": "x", "extra": 1})


def test_the_quick_entry_equals_the_dataclass_one() -> None:
    entry = make_entry("ledger.note/v1", "a", "s", {"text": "x"}, refs=["ledger:1"])
    built = Entry(entry.raw, "ledger.note/v1", entry.ts, "a", "s", {"text": "x"}, ["ledger:1"])
    assert entry.raw == old_make_entry_bytes("ledger.note/v1", "a", "s", {"text": "x"}, ["ledger:1"], entry.ts)
    assert entry == built
    assert vars(entry) == vars(built)
    with pytest.raises(AttributeError):
        entry.ts = "changed"  # still frozen


def test_utc_now_writes_what_strftime_wrote() -> None:
    before = datetime.now(UTC)
    now = entry_module.utc_now()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now)
    parsed = datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= parsed <= after
    assert parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == now
    for _ in range(3):  # across a second boundary, the cached prefix follows the clock
        a, b = time.time(), entry_module.utc_now()
        assert b[:19] >= datetime.fromtimestamp(a, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        time.sleep(0.4)
