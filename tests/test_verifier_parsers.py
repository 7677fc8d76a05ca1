"""Parsers of checkpoints, signed notes, verifier keys and proof bundles (ledger.md test 9).

Malformed input must be refused with a typed error (a subclass of verifier.VerificationError),
never another exception. Random text and bytes, random JSON, and mutations of valid inputs
(truncation, a flipped bit, inserted or trailing garbage, another origin, another key) are
thrown at every entry point; a mutation may only "pass" if it changed nothing that is signed.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.ledger import verifier
from custody.ledger.signing import NoteSigner, load_signer

FUZZ = settings(max_examples=200, deadline=None)
MUTATE = settings(max_examples=150, deadline=None)

# Lone surrogates (category Cs) are excluded from st.characters() unless asked for.
any_char = st.one_of(
    st.characters(), st.characters(categories=["Cs"]), st.sampled_from(["\n", " ", "+", "\u2014", "=", "/", "\r"])
)
any_text = st.text(any_char, max_size=200)


def outcome(check, *args):
    """Run a parser: return its result, or the typed error it raised; fail on anything else."""
    try:
        return check(*args)
    except verifier.VerificationError as exc:
        return exc
    except Exception as exc:
        pytest.fail(
            f"{check.__name__} raised untyped {type(exc).__name__}: {str(exc)[:200]} on input {str(args[0])[:200]!r}"
        )


def refuses(check, *args, kind: type[verifier.VerificationError] = verifier.VerificationError):
    result = outcome(check, *args)
    assert isinstance(result, kind), f"{check.__name__} accepted or misreported malformed input: {result!r}"
    return result


class Fixture:
    """Two independent homes; the first has a few entries, a signed checkpoint and a proof bundle.

    The five notes are signed by the admin whom the init entry put on the roster, so the first
    home holds six entries."""

    def __init__(self, root, cast) -> None:
        self.home = cast.init_home(root / "one")
        self.other = cast.init_home(root / "two")
        writer = cast.person(self.home, "admin")
        for i in range(5):
            self.home.record("ledger.note/v1", "parsers", {"text": f"note {i}"}, actor=writer)
        self.note = self.home.checkpoint()
        self.key = self.home.verifier_key
        self.other_key = self.other.verifier_key
        self.other_note = self.other.checkpoint()
        self.checkpoint = verifier.verify_checkpoint(self.note, self.key)
        self.bundle = self.home.ledger.export_proof(3)
        self.bundle_text = json.dumps(self.bundle)
        self.verified = verifier.verify_proof_bundle(self.bundle_text, self.key)

    def signer(self) -> NoteSigner:
        return self.home.signer()

    def other_private_signer(self, name: str) -> NoteSigner:
        """The second home's private key, signing under any name."""
        return load_signer(self.other.path / "keys" / "ledger.key", name)

    def close(self) -> None:
        self.home.close()
        self.other.close()


@pytest.fixture(scope="module")
def fx(tmp_path_factory, cast):
    fixture = Fixture(tmp_path_factory.mktemp("parsers"), cast)
    yield fixture
    fixture.close()


# --- valid inputs ------------------------------------------------------------------------------


def test_valid_inputs_are_accepted(fx):
    size, root = fx.home.ledger.head()
    assert fx.checkpoint == verifier.Checkpoint(fx.home.config.origin, size, root)
    assert size == 6
    assert verifier.verify_checkpoint(fx.note.encode(), fx.key) == fx.checkpoint
    assert verifier.parse_verifier_key(str(fx.key)) == fx.key
    assert verifier.parse_verifier_key(f"  {fx.key}\n") == fx.key
    assert verifier.parse_checkpoint_body(fx.checkpoint.body()) == fx.checkpoint
    parsed = verifier.parse_signed_note(fx.note)
    assert parsed.text == fx.checkpoint.body()
    assert [(name, kid) for name, kid, _ in parsed.signatures] == [(fx.key.name, fx.key.key_id)]
    assert fx.verified.index == 3 and fx.verified.checkpoint == fx.checkpoint
    assert fx.verified.entry == fx.home.ledger.entry(3).entry
    assert verifier.verify_proof_bundle(fx.bundle_text.encode(), fx.key) == fx.verified


def test_checkpoint_extension_lines_are_kept():
    root = base64.b64encode(bytes(range(32))).decode()
    parsed = verifier.parse_checkpoint_body(f"example.com/log\n42\n{root}\nextra one\nextra two\n")
    assert parsed == verifier.Checkpoint("example.com/log", 42, bytes(range(32)), ("extra one", "extra two"))
    assert parsed.body() == f"example.com/log\n42\n{root}\nextra one\nextra two\n"


def test_a_cosigned_note_verifies_under_either_key(fx):
    """signed-note allows several signatures; the verifier picks the one by its key."""
    text = fx.checkpoint.body()
    other_line = fx.other.signer().sign(text).split("\n\n", 1)[1]
    cosigned = fx.note + other_line
    assert verifier.verify_checkpoint(cosigned, fx.key) == fx.checkpoint
    reordered = text + "\n" + other_line + fx.note.split("\n\n", 1)[1]
    assert verifier.verify_checkpoint(reordered, fx.key) == fx.checkpoint
    assert verifier.verify_note(cosigned, fx.other_key) == text
    # ... but the other key's name is not this checkpoint's origin.
    refuses(verifier.verify_checkpoint, cosigned, fx.other_key, kind=verifier.CheckpointError)


# --- keys that are not this log's ----------------------------------------------------------


def test_checkpoint_of_another_home_fails_with_signature_error(fx):
    refuses(verifier.verify_checkpoint, fx.other_note, fx.key, kind=verifier.SignatureError)
    refuses(verifier.verify_checkpoint, fx.note, fx.other_key, kind=verifier.SignatureError)


def test_another_key_signing_under_this_name_fails(fx):
    forged = fx.other_private_signer(fx.key.name).sign(fx.checkpoint.body())
    refuses(verifier.verify_checkpoint, forged, fx.key, kind=verifier.SignatureError)


def test_another_key_behind_this_key_id_fails(fx):
    """A signature line claiming our name and key id, signed by another key."""
    text = fx.checkpoint.body()
    theirs = fx.other_private_signer(fx.key.name).sign(text)
    raw = base64.b64decode(theirs.rsplit(" ", 1)[1])
    forged = f"{text}\n\u2014 {fx.key.name} {base64.b64encode(fx.key.key_id + raw[4:]).decode()}\n"
    refuses(verifier.verify_checkpoint, forged, fx.key, kind=verifier.SignatureError)


def test_checkpoint_with_another_origin_fails(fx):
    """Signed by the right key under the right name, but naming another log."""
    for origin in ("custody.local/someone-else", fx.key.name + "x", fx.other_key.name):
        note = fx.signer().sign(verifier.Checkpoint(origin, fx.checkpoint.size, fx.checkpoint.root).body())
        assert verifier.verify_note(note, fx.key)  # the signature itself is good
        refuses(verifier.verify_checkpoint, note, fx.key, kind=verifier.CheckpointError)


def test_edited_body_fails_signature(fx):
    size, root = fx.checkpoint.size, fx.checkpoint.root
    for body in (
        verifier.Checkpoint(fx.key.name, size + 1, root).body(),
        verifier.Checkpoint(fx.key.name, size, bytes(32)).body(),
        verifier.Checkpoint(fx.key.name, size, root, ("extension",)).body(),
    ):
        note = body + fx.note[len(fx.checkpoint.body()) :]
        refuses(verifier.verify_checkpoint, note, fx.key, kind=verifier.SignatureError)


# --- deterministic malformed inputs ------------------------------------------------------------

ROOT_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "body",
    [
        "",
        "\n",
        "origin\n1\n",
        f"origin\n1\n{ROOT_B64}",  # no final newline
        f"\n1\n{ROOT_B64}\n",  # empty origin
        f"origin\n\n{ROOT_B64}\n",
        f"origin\n01\n{ROOT_B64}\n",
        f"origin\n-1\n{ROOT_B64}\n",
        f"origin\n+1\n{ROOT_B64}\n",
        f"origin\n 1\n{ROOT_B64}\n",
        f"origin\n1.0\n{ROOT_B64}\n",
        f"origin\n\u0663\n{ROOT_B64}\n",  # an Arabic-Indic digit: isdigit() but not ASCII
        f"origin\n\u00b9\n{ROOT_B64}\n",
        "origin\n1\nnot base64!\n",
        f"origin\n1\n{base64.b64encode(bytes(31)).decode()}\n",
        f"origin\n1\n{base64.b64encode(bytes(33)).decode()}\n",
        f"origin\n1\n{ROOT_B64[:-1]}\n",
        f"origin\n1\n{ROOT_B64}\n\nextension\n",  # an empty line inside the body
        f"origin\n1\n{ROOT_B64}\n\n",
    ],
)
def test_malformed_checkpoint_bodies(body):
    # CheckpointError for structure; a bad base64 root is reported as its parent, MalformedInput.
    refuses(verifier.parse_checkpoint_body, body, kind=verifier.MalformedInput)


def test_checkpoint_size_with_thousands_of_digits_is_a_typed_error():
    """LIBRARY BUG (verifier.parse_checkpoint_body): int() of a size over 4300 digits raises
    ValueError ("Exceeds the limit ... for integer string conversion"). Fix: bound the size line
    before converting, e.g. `if len(size_text) > 20 or int(size_text) >= 1 << 64: raise
    CheckpointError("checkpoint size is out of range")` (C2SP sizes are uint64)."""
    refuses(verifier.parse_checkpoint_body, f"origin\n{'9' * 5000}\n{ROOT_B64}\n", kind=verifier.CheckpointError)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "\n",
        "text\n",
        "text\n\n",
        "text\n\n\n",
        "text\n\n\u2014 name\n",
        "text\n\n-- name AAAAAAAA\n",
        "text\n\n\u2014 name AAAA\n",  # 3 bytes: shorter than a key id
        "text\n\n\u2014 name not*base64\n",
        "text\n\n\u2014 na+me AAAAAAAA\n",
        "text\n\n\u2014  name AAAAAAAA\n",
        "text\n\n\u2014 name AAAAAAAA extra\n",
        "text\n\n\u2014 name AAAAAAAA",  # no final newline
        "text\n\n\u2014 name AAAAAAAA\n\n",
        "text\n\n\u2014 name AAAAAAAA\ngarbage\n",
        b"text\n\n\xe2\x80\x94 name AAAAAAAA\xff\n",  # not UTF-8
        "x" * (verifier.MAX_NOTE_BYTES + 1),
        b"x" * (verifier.MAX_NOTE_BYTES + 1),
    ],
    ids=lambda note: repr(note)[:40],
)
def test_malformed_signed_notes(note):
    refuses(verifier.parse_signed_note, note, kind=verifier.MalformedInput)


def test_note_text_with_a_lone_surrogate_is_a_typed_error(fx):
    """LIBRARY BUG (verifier.verify_note): a str note whose text holds a lone surrogate and whose
    signature line names this key reaches `parsed.text.encode()` and raises UnicodeEncodeError.
    json.loads produces such strings from "\\ud800" escapes, so a proof bundle triggers it too.
    Fix: in parse_signed_note, for str input, `try: note.encode("utf-8") except
    UnicodeEncodeError as exc: raise CheckpointError("signed note is not valid UTF-8 text") from exc`."""
    refuses(verifier.verify_checkpoint, "\ud800" + fx.note, fx.key)
    refuses(verifier.verify_note, fx.note.replace("\n", "\udc00\n", 1), fx.key)


def test_bundle_with_a_lone_surrogate_in_its_checkpoint_is_a_typed_error(fx):
    """Same bug as above, reached through a proof file (JSON escapes allow lone surrogates)."""
    doc = dict(fx.bundle, checkpoint="\ud800" + fx.bundle["checkpoint"])
    refuses(verifier.verify_proof_bundle, json.dumps(doc), fx.key)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name",
        "name+",
        "name+abcd",
        "+01020304+AQ==",
        "na me+01020304+AQ==",
        "a+b+c+d",
        "name+zzzzzzzz+AQ==",
        "name+0102030405+AQ==",
        "name+01020304+!!!",
        "name+01020304+" + base64.b64encode(b"\x01" + bytes(31)).decode(),
        "name+01020304+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
        "name+01020304+" + base64.b64encode(b"\x01" + bytes(32)).decode(),  # key id does not match
    ],
)
def test_malformed_verifier_keys(text):
    refuses(verifier.parse_verifier_key, text, kind=verifier.MalformedInput)


def test_verifier_key_whose_base64_contains_plus_parses():
    """The key part is standard base64, which may itself contain '+' (C2SP splits at the first two)."""
    seeds = (bytes([i]) * 32 for i in range(256))
    for seed in seeds:
        key = NoteSigner("example.com/log", Ed25519PrivateKey.from_private_bytes(seed)).verifier_key
        if "+" in str(key).split("+", 2)[2]:
            break
    else:
        pytest.fail("no test key with '+' in its base64 among 256 seeds")
    assert verifier.parse_verifier_key(str(key)) == key


def test_verifier_key_of_wrong_name_or_id_is_refused(fx):
    name, kid, key = str(fx.key).split("+", 2)
    refuses(verifier.parse_verifier_key, f"{name}x+{kid}+{key}", kind=verifier.MalformedInput)
    other_kid = bytes(b ^ 1 for b in fx.key.key_id).hex()
    refuses(verifier.parse_verifier_key, f"{name}+{other_kid}+{key}", kind=verifier.MalformedInput)
    _, _, other_key = str(fx.other_key).split("+", 2)
    refuses(verifier.parse_verifier_key, f"{name}+{kid}+{other_key}", kind=verifier.MalformedInput)


def test_verifier_key_name_with_a_lone_surrogate_is_a_typed_error(fx):
    """LIBRARY BUG (verifier.parse_verifier_key): a name holding a lone surrogate passes
    _valid_key_name, then key_id() calls name.encode() and raises UnicodeEncodeError. Fix: make
    _valid_key_name refuse surrogates, e.g. `... and all(c > " " and not "\\ud800" <= c <= "\\udfff"
    for c in name)` (this also covers signature-line names in parse_signed_note)."""
    _, kid, key = str(fx.key).split("+", 2)
    refuses(verifier.parse_verifier_key, f"\ud800+{kid}+{key}", kind=verifier.MalformedInput)


def test_deeply_nested_bundle_is_a_typed_error(fx):
    """LIBRARY BUG (verifier.verify_proof_bundle): json.loads of deeply nested arrays raises
    RecursionError, which is not caught. Fix: catch it with the decoding errors,
    `except (ValueError, UnicodeDecodeError, RecursionError) as exc: raise MalformedInput(...)`
    (and consider refusing documents over a size limit before parsing)."""
    refuses(verifier.verify_proof_bundle, "[" * 100_000, fx.key, kind=verifier.MalformedInput)
    refuses(verifier.verify_proof_bundle, b'{"a":' * 100_000, fx.key, kind=verifier.MalformedInput)


# --- proof bundles: targeted mutations -----------------------------------------------------------


def bundle_with(fx, **changes) -> str:
    doc = dict(fx.bundle)
    for key, value in changes.items():
        if value is KeyError:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    "changes,kind",
    [
        ({"format": "custody.inclusion-proof/v2"}, verifier.MalformedInput),
        ({"format": KeyError}, verifier.MalformedInput),
        ({"index": KeyError}, verifier.MalformedInput),
        ({"index": "3"}, verifier.MalformedInput),
        ({"index": 3.0}, verifier.MalformedInput),
        ({"index": True}, verifier.MalformedInput),
        ({"index": 2}, verifier.ProofError),
        ({"index": 4}, verifier.ProofError),
        ({"index": -1}, verifier.ProofError),
        ({"index": 6}, verifier.ProofError),
        ({"tree_size": 5}, verifier.ProofError),
        ({"tree_size": 7}, verifier.ProofError),
        ({"tree_size": None}, verifier.MalformedInput),
        ({"entry": base64.b64encode(b"not the entry").decode()}, verifier.ProofError),
        ({"entry": "%%%"}, verifier.MalformedInput),
        ({"entry": None}, verifier.MalformedInput),
        ({"proof": []}, verifier.ProofError),
        ({"proof": None}, verifier.MalformedInput),
        ({"proof": "AAAA"}, verifier.MalformedInput),
        ({"proof": [None, None, None]}, verifier.MalformedInput),
        ({"proof": ["AAAA", "AAAA", "AAAA"]}, verifier.MalformedInput),
        ({"checkpoint": KeyError}, verifier.MalformedInput),
        ({"checkpoint": 5}, verifier.MalformedInput),
        ({"checkpoint": "not a note"}, verifier.CheckpointError),
    ],
    ids=repr,
)
def test_bundle_field_mutations(fx, changes, kind):
    refuses(verifier.verify_proof_bundle, bundle_with(fx, **changes), fx.key, kind=kind)


def test_bundle_proof_element_mutations(fx):
    proof = fx.bundle["proof"]
    assert len(proof) >= 2
    refuses(verifier.verify_proof_bundle, bundle_with(fx, proof=proof[:-1]), fx.key, kind=verifier.ProofError)
    refuses(verifier.verify_proof_bundle, bundle_with(fx, proof=[*proof, proof[0]]), fx.key, kind=verifier.ProofError)
    refuses(verifier.verify_proof_bundle, bundle_with(fx, proof=proof[::-1]), fx.key, kind=verifier.ProofError)
    flipped = base64.b64encode(bytes([base64.b64decode(proof[0])[0] ^ 1]) + base64.b64decode(proof[0])[1:]).decode()
    refuses(
        verifier.verify_proof_bundle, bundle_with(fx, proof=[flipped, *proof[1:]]), fx.key, kind=verifier.ProofError
    )


def test_bundle_with_another_homes_checkpoint_or_key_fails(fx):
    refuses(verifier.verify_proof_bundle, fx.bundle_text, fx.other_key, kind=verifier.SignatureError)
    refuses(
        verifier.verify_proof_bundle, bundle_with(fx, checkpoint=fx.other_note), fx.key, kind=verifier.SignatureError
    )


def test_bundle_that_is_not_an_object(fx):
    for text in ("", "null", "[]", '"text"', "3", "{", b"\xff\xfe\x00", "{} trailing"):
        refuses(verifier.verify_proof_bundle, text, fx.key, kind=verifier.MalformedInput)


# --- fuzzing: random inputs ----------------------------------------------------------------------


@FUZZ
@given(st.one_of(any_text, st.binary(max_size=300)))
def test_fuzz_parse_signed_note(data):
    result = outcome(verifier.parse_signed_note, data)
    if not isinstance(result, verifier.VerificationError):
        assert result.signatures and all(len(kid) == 4 for _, kid, _ in result.signatures)


pieces = st.sampled_from(["\n", "\n\n", "\u2014 ", "\u2014", " ", "name", "+", "AAAAAAAA", "AQIDBAUG", "==", "x\n"])
note_like = st.lists(st.one_of(pieces, any_text.map(lambda t: t[:5])), max_size=20).map("".join)


@FUZZ
@given(note_like)
def test_fuzz_note_shaped_text(data):
    outcome(verifier.parse_signed_note, data)


@FUZZ
@given(
    st.one_of(
        any_text,
        st.tuples(
            st.one_of(any_text.map(lambda t: t[:20]), st.just("example.com/log")),
            st.one_of(st.text("0123456789", min_size=1, max_size=25), st.text(any_char, max_size=5)),
            st.one_of(
                st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()), any_text.map(lambda t: t[:44])
            ),
            st.lists(any_text.map(lambda t: t[:10]), max_size=3),
        ).map(lambda parts: "\n".join([parts[0], parts[1], parts[2], *parts[3]]) + "\n"),
    )
)
def test_fuzz_parse_checkpoint_body(body):
    result = outcome(verifier.parse_checkpoint_body, body)
    if not isinstance(result, verifier.VerificationError):
        assert len(result.root) == 32 and result.size >= 0
        assert result.body() == body  # what parses re-serializes byte for byte


@FUZZ
@given(
    st.one_of(
        any_text,
        st.tuples(
            any_text.map(lambda t: t[:12]),
            st.one_of(st.text("0123456789abcdefABCDEF ", max_size=10), any_text.map(lambda t: t[:8])),
            st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
        ).map("+".join),
    )
)
def test_fuzz_parse_verifier_key(text):
    result = outcome(verifier.parse_verifier_key, text)
    if not isinstance(result, verifier.VerificationError):
        assert result.key_id == verifier.key_id(result.name, result.public_key)


@FUZZ
@given(name=any_text.map(lambda t: t[:12]))
def test_fuzz_verifier_key_names(fx, name):
    """Our real key material under any name: only a name whose key id matches can parse."""
    _, kid, key = str(fx.key).split("+", 2)
    result = outcome(verifier.parse_verifier_key, f"{name}+{kid}+{key}")
    if not isinstance(result, verifier.VerificationError):
        assert result == fx.key


@FUZZ
@given(st.one_of(any_text, st.binary(max_size=300)))
def test_fuzz_verify_checkpoint(fx, data):
    refuses(verifier.verify_checkpoint, data, fx.key)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text.map(lambda t: t[:20])),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)),
    max_leaves=15,
)


@FUZZ
@given(st.one_of(any_text, st.binary(max_size=300), json_values.map(json.dumps)))
def test_fuzz_verify_proof_bundle(fx, document):
    refuses(verifier.verify_proof_bundle, document, fx.key)


@FUZZ
@given(field=st.sampled_from(["format", "index", "tree_size", "entry", "proof", "checkpoint"]), value=json_values)
def test_fuzz_bundle_fields(fx, field, value):
    result = outcome(verifier.verify_proof_bundle, bundle_with(fx, **{field: value}), fx.key)
    if not isinstance(result, verifier.VerificationError):
        assert value == fx.bundle[field] and result == fx.verified


# --- fuzzing: mutations of valid inputs ----------------------------------------------------------


def mutate(data, original: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "append", "delete", "replace"]), label="mutation")
    at = data.draw(st.integers(0, len(original) - 1), label="position")
    if kind == "truncate":
        return original[:at]
    if kind == "flip":
        return original[:at] + bytes([original[at] ^ (1 << data.draw(st.integers(0, 7)))]) + original[at + 1 :]
    garbage = data.draw(
        st.one_of(
            st.binary(min_size=1, max_size=8), any_text.map(lambda t: t.encode("utf-8", "surrogatepass")).filter(bool)
        )
    )
    if kind == "insert":
        return original[:at] + garbage + original[at:]
    if kind == "append":
        return original + garbage
    if kind == "delete":
        return original[:at] + original[at + data.draw(st.integers(1, 8)) :]
    return original[:at] + garbage + original[at + len(garbage) :]


@MUTATE
@given(data=st.data(), as_text=st.booleans())
def test_mutated_checkpoint_never_verifies_to_something_else(fx, data, as_text):
    mutated = mutate(data, fx.note.encode())
    if as_text:
        mutated = mutated.decode("utf-8", errors="surrogateescape")  # keeps bad bytes as lone surrogates
    result = outcome(verifier.verify_checkpoint, mutated, fx.key)
    if not isinstance(result, verifier.VerificationError):
        # Only a change the signature does not cover (e.g. unused base64 padding bits) may pass.
        assert result == fx.checkpoint, f"mutated note verified to {result!r}"


@MUTATE
@given(data=st.data())
def test_mutated_signed_note_parses_or_fails_typed(fx, data):
    outcome(verifier.parse_signed_note, mutate(data, fx.note.encode()))


@MUTATE
@given(data=st.data())
def test_mutated_verifier_key(fx, data):
    mutated = mutate(data, str(fx.key).encode()).decode("utf-8", errors="surrogateescape")
    result = outcome(verifier.parse_verifier_key, mutated)
    if not isinstance(result, verifier.VerificationError):
        assert result == fx.key, f"mutated key parsed as another key: {result}"


@MUTATE
@given(data=st.data(), as_text=st.booleans())
def test_mutated_bundle(fx, data, as_text):
    mutated = mutate(data, fx.bundle_text.encode())
    document = mutated.decode("utf-8", errors="surrogateescape") if as_text else mutated
    result = outcome(verifier.verify_proof_bundle, document, fx.key)
    if not isinstance(result, verifier.VerificationError):
        # Fields outside the signature and proof (origin, leaf_hash, spacing) may change freely.
        assert result == fx.verified, f"mutated bundle verified to {result!r}"


@MUTATE
@given(origin=st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(lambda t: "\n" not in t))
def test_other_origin_under_our_key_fails(fx, origin):
    """A body naming another origin is refused, whether our key signed it or not."""
    body = verifier.Checkpoint(origin, fx.checkpoint.size, fx.checkpoint.root).body()
    signed_by_us = fx.signer().sign(body)
    spliced = body + fx.note[len(fx.checkpoint.body()) :]  # our signature line under another body
    if origin == fx.key.name:
        assert verifier.verify_checkpoint(signed_by_us, fx.key) == fx.checkpoint
    else:
        refuses(verifier.verify_checkpoint, signed_by_us, fx.key, kind=verifier.CheckpointError)
        refuses(verifier.verify_checkpoint, spliced, fx.key, kind=verifier.SignatureError)
