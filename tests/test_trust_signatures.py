"""Identity is a key: SSHSIG entry signatures, the roster, revocation, and what verify catches.

Everything here uses real Ed25519 keys; interoperability is checked against stock OpenSSH
(`ssh-keygen -Y sign|verify`, `ssh-agent`) and the independent `sshsig` package.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.ledger.entry import canonical_json, make_entry, signed_bytes
from custody.ledger.verifier import leaf_hash
from custody.policy import entry_types as _policy_types  # noqa: F401  registers review.recorded/v1
from custody.trust import sshsig
from custody.trust.acting import NotPermitted, Person
from custody.trust.audit import verify_signatures
from custody.trust.sshkeys import load_public_key, load_signer

SSH_KEYGEN = shutil.which("ssh-keygen") or "ssh-keygen"


@pytest.fixture
def openssh() -> str:
    """Stock OpenSSH is the peer these tests check against; .ci/run installs openssh-client."""
    assert shutil.which("ssh-keygen") and shutil.which("ssh-agent"), "install openssh-client (ssh-keygen, ssh-agent)"
    return SSH_KEYGEN


def cli(home: Home, *args: str, key=None, env: dict | None = None):
    environment = {"CUSTODY_KEY": str(key)} if key else {}
    environment.update(env or {})
    return CliRunner().invoke(app, [*args, "--home", str(home.path)], env=environment)


@pytest.fixture
def people(home, cast):
    """alice the engineer, bob the reviewer and approver, on the roster of a fresh home."""
    return cast.enroll(home, "alice", "engineer"), cast.enroll(home, "bob", "reviewer", "approver")


def note(home: Home, actor, text: str = "a note") -> int:
    return home.record("ledger.note/v1", "note", {"text": text}, actor=actor)


# -- the wire format, against OpenSSH and an independent verifier ------------------------------


def test_our_signatures_verify_with_ssh_keygen_and_theirs_with_ours(tmp_path, cast, openssh):
    key = cast.key_file("interop")
    message = tmp_path / "message"
    message.write_bytes(b"custody interop \x00\xff\n")
    blob = sshsig.sign(load_signer(key), message.read_bytes())
    (tmp_path / "ours.sig").write_text(sshsig.armor(blob))
    (tmp_path / "allowed").write_text(f'interop namespaces="custody" {cast.public("interop").openssh}\n')
    verify = [SSH_KEYGEN, "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "interop", "-n", "custody"]
    with message.open("rb") as stdin:
        done = subprocess.run([*verify, "-s", str(tmp_path / "ours.sig")], stdin=stdin, capture_output=True)
    assert done.returncode == 0, done.stderr
    subprocess.run([SSH_KEYGEN, "-q", "-Y", "sign", "-f", str(key), "-n", "custody", str(message)], check=True)
    theirs = sshsig.dearmor((tmp_path / "message.sig").read_text())
    assert sshsig.verify(theirs, message.read_bytes()) == cast.public("interop")
    with pytest.raises(sshsig.BadSignature):
        sshsig.verify(theirs, message.read_bytes() + b"x")
    with pytest.raises(sshsig.BadSignature, match="namespace"):
        sshsig.verify(theirs, message.read_bytes(), namespace="git")


def test_the_independent_sshsig_package_accepts_our_signatures(cast):
    import sshsig as independent

    message = b"checked by someone else's code"
    armored = sshsig.armor(sshsig.sign(cast.signer("interop"), message))
    allowed = [independent.PublicKey.from_openssh_str(cast.public("interop").openssh)]
    assert independent.verify(message, armored, allowed, namespace="custody")
    with pytest.raises(independent.InvalidSignature):
        independent.verify(message + b"!", armored, allowed, namespace="custody")


def test_fingerprints_match_ssh_keygen(cast, openssh):
    listed = subprocess.run([SSH_KEYGEN, "-lf", f"{cast.key_file('interop')}.pub"], capture_output=True, text=True)
    assert listed.stdout.split()[1] == cast.public("interop").fingerprint


# -- what the ledger admits --------------------------------------------------------------------


def test_every_entry_is_signed_and_a_persons_action_carries_their_own_signature(home, people):
    alice, _ = people
    index = note(home, alice)
    entry = json.loads(home.ledger.entry(index).entry)
    assert entry["v"] == 2 and entry["actor"] == "alice"
    assert sshsig.verify(base64.b64decode(entry["sig"]), signed_bytes(entry)) == alice.signer.public
    assert home.attribute(home.ledger.entry(index)).kind == "person"
    report = verify_signatures(home.storage, workers=1)
    assert report.ok and report.by_kind == {"service": 1, "person": 3}  # home, alice, bob, the note


def test_a_plain_name_never_signs_a_persons_action(home, people):
    size = home.ledger.size
    with pytest.raises(NotPermitted, match="needs the acting person's key"):
        note(home, "alice")
    assert home.ledger.size == size


def test_right_name_wrong_key_is_refused(home, people, cast):
    _, bob = people
    impostor = Person("bob", cast.signer("mallory"), bob.roles)  # claims bob's name with another key
    size = home.ledger.size
    with pytest.raises(NotPermitted, match="not hold at this index"):
        note(home, impostor)
    thief = Person("bob", cast.signer("alice"), bob.roles)  # alice's real key, bob's name
    with pytest.raises(NotPermitted, match="signed with alice's key but names 'bob'"):
        note(home, thief)
    assert home.ledger.size == size


def test_a_forged_signature_is_refused(home, people):
    alice, _ = people
    honest = home.entry("ledger.note/v1", "note", {"text": "real"}, actor=alice)
    # The same envelope with other text, carrying the signature of the honest one.
    doc = honest.as_dict()
    doc["body"] = {"text": "forged"}
    forged = type(honest).decode(canonical_json(doc))
    size = home.ledger.size
    with pytest.raises(NotPermitted, match="signature does not verify"):
        home.append([forged])
    assert home.ledger.size == size


def test_an_engineer_cannot_approve_and_a_non_admin_cannot_change_the_roster(home, people, cast):
    alice, bob = people
    with pytest.raises(NotPermitted, match=r"alice \(engineer\) may not cause people.added/v1; needs role admin"):
        cast.enroll(home, "eve", "admin", admin="alice")
    body = {
        "finding": "x@1/pii.present",
        "rule": "findings.review",
        "action": "approve",
        "reason": "fine",
        "decision_index": 0,
    }
    with pytest.raises(NotPermitted, match=r"may not cause review\.recorded/v1; needs role approver or reviewer"):
        home.record("review.recorded/v1", "dataset:x@1", body, actor=alice)
    assert home.record("review.recorded/v1", "dataset:x@1", body, actor=bob)


def test_a_signature_after_revocation_is_refused_and_earlier_ones_stay_valid(home, people, cast):
    alice, _ = people
    before = note(home, alice, "before revocation")
    revoked = cli(home, "people", "revoke", "alice", "--reason", "laptop lost", key=cast.key_file("admin"))
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(NotPermitted, match="unknown or revoked"):
        note(home, alice, "after revocation")
    after = cli(home, "ledger", "note", "after", key=cast.key_file("alice"))
    assert after.exit_code == 2 and "was revoked at ledger index" in after.stderr
    verified = cli(home, "ledger", "verify")
    assert verified.exit_code == 0, verified.output
    assert home.attribute(home.ledger.entry(before)).problem is None
    listed = json.loads(cli(home, "people", "list", "--all", "--json").stdout)
    assert [p["name"] for p in listed if "revoked_index" in p] == ["alice"]
    # Rotation: alice comes back with a new key; the old one stays revoked.
    new_key = cast.public("alice-2")
    body = {"name": "alice", "key": new_key.openssh, "fingerprint": new_key.fingerprint, "roles": ["engineer"]}
    home.record("people.added/v1", "person:alice", body, actor=cast.person(home, "admin"))
    assert note(home, Person("alice", cast.signer("alice-2"), frozenset({"engineer"})))


def test_the_last_admin_cannot_be_revoked(home, cast):
    result = cli(home, "people", "revoke", "admin", key=cast.key_file("admin"))
    assert result.exit_code == 2 and "the last admin" in result.stderr


def test_ledger_verify_catches_an_unsigned_entry_inserted_with_raw_sql(home, people):
    """An insider with the database but no keys: they rebuild the tree and the head to match, so
    only the signature check can tell."""
    from custody.ledger import merkle

    note(home, people[0])
    home.checkpoint()
    home.close()
    forged = make_entry("ledger.note/v1", "bob", "note", {"text": "approved, says bob"})  # v1: no signature
    db = sqlite3.connect(home.path / "ledger.sqlite")
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    (size,) = db.execute("SELECT size FROM head").fetchone()
    db.execute(
        "INSERT INTO entries (idx, entry, leaf_hash, type, ts, actor, subject) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (size, forged.raw, leaf_hash(forged.raw), forged.type, forged.ts, forged.actor, forged.subject),
    )
    edge, nodes = merkle.RightEdge(0, []), []
    for (leaf,) in db.execute("SELECT leaf_hash FROM entries ORDER BY idx").fetchall():
        edge.append(bytes(leaf), nodes)
    db.execute("DELETE FROM nodes")
    db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
    db.execute("UPDATE head SET size = ?, root = ? WHERE id = 0", (edge.size, edge.root()))
    db.commit()
    db.close()
    reopened = Home.open(home.path)
    assert not reopened.ledger.verify(reopened.verifier_key).problems, "the tree alone no longer tells"
    result = cli(reopened, "ledger", "verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["first_bad_index"] == size
    assert [p["problem"] for p in report["problems"]] == [
        "entry is unsigned (v1 envelope) in a home whose entries are all signed"
    ]
    reopened.close()


# -- exports anyone can check with stock OpenSSH -------------------------------------------------


def test_ssh_keygen_accepts_exported_entries(home, people, tmp_path, cast, openssh):
    alice, _ = people
    index = note(home, alice, "checked without custody")
    out = cli(
        home, "ledger", "entry", str(index), "--body-out", str(tmp_path / "b"), "--signature-out", str(tmp_path / "s")
    )
    assert out.exit_code == 0, out.output
    assert "signed personally alice" in out.stdout
    signers = cli(home, "people", "allowed-signers", "--out", str(tmp_path / "allowed"))
    assert signers.exit_code == 0
    stamp = json.loads(home.ledger.entry(index).entry)["ts"][:19].replace("-", "").replace(":", "").replace("T", "")
    command = [SSH_KEYGEN, "-Y", "verify", "-f", str(tmp_path / "allowed"), "-n", "custody", "-s", str(tmp_path / "s")]
    for who, expected in (("alice", 0), ("bob", 255)):
        with (tmp_path / "b").open("rb") as stdin:
            done = subprocess.run(
                [*command, "-I", who, f"-Overify-time={stamp}Z"], stdin=stdin, capture_output=True, text=True
            )
        assert done.returncode == (0 if expected == 0 else done.returncode) and (done.returncode == 0) == (
            expected == 0
        ), done.stderr
    # A machine entry names its requester and verifies as the service principal.
    service = cli(
        home, "ledger", "entry", "0", "--body-out", str(tmp_path / "b0"), "--signature-out", str(tmp_path / "s0")
    )
    assert "by the service key" in service.stdout
    with (tmp_path / "b0").open("rb") as stdin:
        done = subprocess.run(
            [SSH_KEYGEN, "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "custody-service", "-n", "custody",
             "-s", str(tmp_path / "s0")],
            stdin=stdin, capture_output=True, text=True,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_allowed_signers_carry_grant_and_revocation_times(home, people, cast, tmp_path, openssh):
    alice, _ = people
    early = note(home, alice, "while valid")
    assert cli(home, "people", "revoke", "alice", key=cast.key_file("admin")).exit_code == 0
    text = cli(home, "people", "allowed-signers").stdout
    line = next(row for row in text.splitlines() if row.startswith("alice "))
    assert 'valid-after="' in line and 'valid-before="' in line and 'namespaces="custody"' in line
    cli(home, "ledger", "entry", str(early), "--body-out", str(tmp_path / "b"), "--signature-out", str(tmp_path / "s"))
    (tmp_path / "allowed").write_text(text)
    ts = json.loads(home.ledger.entry(early).entry)["ts"]
    stamp = ts[:19].replace("-", "").replace(":", "").replace("T", "")
    command = [SSH_KEYGEN, "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "alice", "-n", "custody"]
    with (tmp_path / "b").open("rb") as stdin:
        then = subprocess.run([*command, "-s", str(tmp_path / "s"), f"-Overify-time={stamp}Z"], stdin=stdin)
    assert then.returncode == 0, "signed while the key was valid"
    with (tmp_path / "b").open("rb") as stdin:
        later = subprocess.run([*command, "-s", str(tmp_path / "s"), "-Overify-time=20991231000000Z"], stdin=stdin)
    assert later.returncode != 0, "the same key after its revocation is not accepted by OpenSSH either"


def test_a_key_held_by_ssh_agent_signs(home, cast, tmp_path, openssh):
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    env = dict(part.split("=", 1) for part in agent.replace(";", "\n").split() if "=" in part)
    try:
        cast.enroll(home, "agent-user", "engineer")
        added = subprocess.run(
            ["ssh-add", str(cast.key_file("agent-user"))], env={**os.environ, **env}, capture_output=True
        )
        assert added.returncode == 0, added.stderr
        result = cli(
            home,
            "ledger",
            "note",
            "signed by the agent",
            key=f"{cast.key_file('agent-user')}.pub",
            env={"SSH_AUTH_SOCK": env["SSH_AUTH_SOCK"]},
        )
        assert result.exit_code == 0, result.output
        assert home.attribute(home.ledger.entry(home.ledger.size - 1)).kind == "person"
    finally:
        subprocess.run(["kill", env["SSH_AGENT_PID"]], check=False)


# -- bad keys and names: one line, exit 2, nothing written ---------------------------------------


def _ssh_key(tmp_path, kind: str, passphrase: str = "") -> str:
    path = tmp_path / f"id_{kind}_{len(list(tmp_path.iterdir()))}"
    extra = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, *extra, "-N", passphrase, "-f", str(path)], check=True)
    return str(path)


def test_bad_keys_are_one_line_errors_that_write_nothing(home, people, cast, tmp_path, openssh):
    truncated = tmp_path / "truncated"
    truncated.write_text(cast.key_file("alice").read_text()[:120])
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xff\xfe not a key")
    locked = _ssh_key(tmp_path, "ed25519", passphrase="correct horse")
    cases = [
        (truncated, "malformed or truncated private key"),
        (garbage, "not a key file (not text)"),
        (tmp_path / "missing", "key file not found"),
        (_ssh_key(tmp_path, "rsa"), "RSA key; custody needs an Ed25519 key"),
        (_ssh_key(tmp_path, "ecdsa"), "ECDSA key; custody needs an Ed25519 key"),
        (locked, "protected by a passphrase; load it into ssh-agent"),
        (_ssh_key(tmp_path, "ed25519"), "is not on this home's roster"),
    ]
    size = home.ledger.size
    for key, message in cases:
        result = cli(home, "ledger", "note", "x", key=key, env={"SSH_AUTH_SOCK": ""})
        assert result.exit_code == 2, (key, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert str(key) in result.stderr or "roster" in message
    wrong = cli(home, "ledger", "note", "x", key=locked, env={"CUSTODY_KEY_PASSPHRASE": "wrong"})
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.stderr
    assert home.ledger.size == size
    # The passphrase, when given, unlocks it (it is then simply not on the roster).
    right = cli(home, "ledger", "note", "x", key=locked, env={"CUSTODY_KEY_PASSPHRASE": "correct horse"})
    assert right.exit_code == 2 and "is not on this home's roster" in right.stderr


def test_bad_public_keys_and_names_in_roster_commands(home, people, cast, tmp_path):
    admin = cast.key_file("admin")
    size = home.ledger.size
    rsa_pub = tmp_path / "rsa.pub"
    rsa_pub.write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 someone\n")
    short = tmp_path / "short.pub"
    short.write_text(cast.public("x").openssh[:40] + "\n")
    for args, message in [
        (
            ("people", "add", "eve", "--key", str(rsa_pub), "--role", "engineer"),
            "ssh-rsa key; custody needs an Ed25519",
        ),
        (("people", "add", "eve", "--key", str(short), "--role", "engineer"), "malformed or truncated public key"),
        (
            ("people", "add", "eve smith", "--key", f"{cast.key_file('x')}.pub", "--role", "engineer"),
            "name 'eve smith'",
        ),
        (("people", "add", "eve", "--key", f"{cast.key_file('x')}.pub", "--role", "boss"), "--role 'boss'"),
        (("people", "add", "bob", "--key", f"{cast.key_file('x')}.pub", "--role", "engineer"), "already on the roster"),
        (
            ("people", "add", "eve", "--key", f"{cast.key_file('alice')}.pub", "--role", "admin"),
            "already belongs to alice",
        ),
        (("people", "revoke", "nobody"), "nobody is not on the roster"),
    ]:
        result = cli(home, *args, key=admin)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
    non_admin = cli(home, "people", "add", "eve", "--key", f"{cast.key_file('x')}.pub", "--role", "admin",
                    key=cast.key_file("alice"))  # fmt: skip
    assert non_admin.exit_code == 2 and "needs role admin" in non_admin.stderr
    assert home.ledger.size == size


def test_as_is_an_assertion_checked_against_the_key(home, people, cast):
    forged = cli(home, "ledger", "note", "x", "--as", "bob", key=cast.key_file("alice"))
    assert forged.exit_code == 2 and "belongs to alice, not bob" in forged.stderr
    honest = cli(home, "ledger", "note", "x", "--as", "alice", key=cast.key_file("alice"))
    assert honest.exit_code == 0, honest.output
    keyless = cli(home, "ledger", "note", "x", "--as", "alice")
    assert keyless.exit_code == 2 and "give your key with --key FILE" in keyless.stderr


def test_init_needs_an_ed25519_admin_key(tmp_path, cast):
    runner = CliRunner()
    target = tmp_path / "new"
    missing = runner.invoke(app, ["init", "--home", str(target)])
    assert missing.exit_code == 2 and "--admin" in missing.output
    bad = tmp_path / "bad.pub"
    bad.write_text("ecdsa-sha2-nistp256 AAAAE2VjZHNh x\n")
    refused = runner.invoke(app, ["init", "--home", str(target), "--admin", "root", "--admin-key", str(bad)])
    assert refused.exit_code == 2 and "custody needs an Ed25519 key" in refused.stderr
    assert not (target / "config.toml").exists()
    made = runner.invoke(
        app, ["init", "--home", str(target), "--admin", "root", "--admin-key", f"{cast.key_file('root')}.pub"]
    )
    assert made.exit_code == 0, made.output
    first = json.loads(Home.open(target).ledger.entry(0).entry)
    assert first["type"] == "home.initialized/v2" and first["body"]["admin"]["name"] == "root"
    assert load_public_key(cast.key_file("root").with_name("root.pub")).openssh == first["body"]["admin"]["key"]


def test_a_home_made_before_signatures_still_verifies(tmp_path):
    """Old ledgers must still verify: a home whose entries are all v1 envelopes, made the way
    custody made homes before keys, passes `ledger verify` and says it has no signatures."""
    from custody.home import HomeConfig
    from custody.ledger.signing import generate_key_file
    from custody.ledger.signing import load_signer as load_note_signer
    from custody.ledger.storage import open_storage

    path = tmp_path / "old"
    generate_key_file(path / "keys" / "ledger.key")
    origin = "custody.local/legacy0000000000"
    signer = load_note_signer(path / "keys" / "ledger.key", origin)
    (path / "config.toml").write_text(HomeConfig(origin, str(signer.verifier_key)).to_toml())
    open_storage(f"sqlite:///{path / 'ledger.sqlite'}", create=True).close()
    old = Home.open(path)
    body = {"origin": origin, "verifier_key": str(signer.verifier_key), "backend": "sqlite"}
    old.ledger.append_batch(
        [
            make_entry("home.initialized/v1", "root", "home", body),
            make_entry("ledger.note/v1", "alice", "note", {"text": "written before keys"}),
        ]
    )
    old.checkpoint()
    assert not old.roster().signed
    verified = cli(old, "ledger", "verify")
    assert verified.exit_code == 0, verified.output
    assert "signatures: none (a home made before signed entries)" in verified.stdout
    listed = cli(old, "people", "list")
    assert "made before signed entries" in listed.stdout
    old.close()
