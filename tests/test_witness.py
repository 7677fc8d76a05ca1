"""`custody witness`: an independent C2SP witness in its own process, over real HTTP on 127.0.0.1.

One witness and one `custody witness serve` process serve the whole module (each home is its own
log, with its own origin). The witness cosigns a growing log; refuses rollbacks and forks with the
spec's status codes, also after the server process is killed (SIGKILL) and started again; and
`verify-proof` / `verify-report` with --witness-key pass with its cosignature and fail without.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.home import Home
from custody.ledger import verifier as verifier_module
from custody.ledger.entry import canonical_json
from custody.ledger.signing import NoteSigner
from custody.ledger.verifier import (
    Checkpoint,
    SignatureError,
    parse_checkpoint_body,
    parse_cosigner_key,
    parse_signed_note,
    verify_checkpoint,
    verify_cosignature,
)
from custody.witness.cosigner import Cosigner
from custody.witness.protocol import format_request
from witness_data import assert_ok, cli, grow, note_entry, one_line_error

CUSTODY = Path(sys.executable).with_name("custody")
WITNESS_NAME = "witness.test/w1"


# -- helpers ---------------------------------------------------------------------------------


def custody(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_HOME", "CUSTODY_DATABASE")}
    return subprocess.run([str(CUSTODY), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def make_home(path: Path, notes: int = 4) -> Path:
    home = Home.init(path)
    home.ledger.append_batch([note_entry(f"{path.name} {i}") for i in range(notes)])
    home.checkpoint()
    home.close()
    return path


def head_size(path: Path) -> int:
    home = Home.open(path)
    try:
        return home.ledger.size
    finally:
        home.close()


def pubkey(path: Path) -> str:
    return Home.open(path).config.verifier_key


def post(url: str, body: bytes, path: str = "/add-checkpoint") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url + path, data=body, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get_content_type(), exc.read()


class Served:
    """A `custody witness serve --port 0` process; stderr (one line per request) goes to a file."""

    def __init__(self, directory: Path, log: Path) -> None:
        self.directory = directory
        self.log = log
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.start()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_HOME", "CUSTODY_DATABASE")}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(CUSTODY), "witness", "serve", "--dir", str(self.directory), "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        line = self.process.stdout.readline()  # printed once the socket is listening
        assert "listening on http://127.0.0.1:" in line, (line, self.log.read_text())
        self.url = line.strip().rsplit(" ", 1)[-1]

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up; what was answered must already be on disk."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process.stdout.close()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process.stdout.close()


@pytest.fixture(scope="module")
def witness(tmp_path_factory) -> tuple[Path, str]:
    """A witness made by the real CLI; its vkey is the only thing `init` prints on stdout."""
    directory = tmp_path_factory.mktemp("witnesses") / "w1"
    proc = custody("witness", "init", "--dir", directory, "--name", WITNESS_NAME)
    assert proc.returncode == 0, proc.stderr
    return directory, proc.stdout.strip()


@pytest.fixture(scope="module")
def other_witness_key(tmp_path_factory) -> str:
    result = cli("witness", "init", "--dir", tmp_path_factory.mktemp("witnesses") / "w2", "--name", "witness.test/w2")
    assert_ok(result)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server(witness, tmp_path_factory):
    served = Served(witness[0], tmp_path_factory.mktemp("logs") / "serve.log")
    yield served
    served.stop()


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("homes")


def trusted_home(homes: Path, witness, name: str, notes: int = 4) -> Path:
    """A home with `notes` notes and a checkpoint, whose log the witness accepts."""
    path = make_home(homes / name, notes)
    assert_ok(cli("witness", "add-log", "--dir", witness[0], "--key", pubkey(path)))
    return path


def checkpoint(path: Path, server: Served, vkey: str, *extra: str):
    return cli("ledger", "checkpoint", "--home", path, "--witness", server.url, "--witness-key", vkey, *extra)


# -- the witness itself ----------------------------------------------------------------------


def test_init_makes_a_private_key_and_prints_the_vkey(witness, homes: Path) -> None:
    directory, vkey = witness
    key = parse_cosigner_key(vkey)
    assert key.name == WITNESS_NAME
    raw = base64.b64decode(vkey.split("+", 2)[2])
    assert raw[0] == 0x04 and raw[1:] == key.public_key
    assert key.key_id == hashlib.sha256(WITNESS_NAME.encode() + b"\n\x04" + key.public_key).digest()[:4]
    assert vkey.split("+")[1] == key.key_id.hex()
    assert (directory / "keys" / "witness.key").stat().st_mode & 0o777 == 0o600
    assert (directory / "keys").stat().st_mode & 0o777 == 0o700
    assert b"PRIVATE" not in (directory / "witness.json").read_bytes()

    one_line_error(cli("witness", "init", "--dir", directory, "--name", "again"), 2, "already a witness")
    one_line_error(cli("witness", "init", "--dir", homes / "w-bad", "--name", "two words"), 2, "--name")
    assert not (homes / "w-bad").exists()
    home = make_home(homes / "a-home", 0)
    one_line_error(cli("witness", "init", "--dir", home / "witness2", "--name", "w"), 2, "custody home")
    assert not (home / "witness2").exists()


def test_add_log_and_show(witness, homes: Path) -> None:
    directory, vkey = witness
    path = make_home(homes / "shown", 1)
    log_key = pubkey(path)
    result = cli("witness", "add-log", "--dir", directory, "--key", log_key)
    assert_ok(result)
    assert "now accepts log" in result.stdout
    assert "already accepts" in cli("witness", "add-log", "--dir", directory, "--key", log_key).stdout
    one_line_error(cli("witness", "add-log", "--dir", directory, "--key", "not-a-key"), 2, "--key")
    one_line_error(cli("witness", "add-log", "--dir", directory, "--key", vkey), 2, "--key")  # a witness key
    one_line_error(cli("witness", "add-log", "--dir", homes / "nowhere", "--key", log_key), 2, "no witness at")

    result = cli("witness", "show", "--dir", directory, "--json")
    assert_ok(result)
    shown = json.loads(result.stdout)
    assert shown["vkey"] == vkey and shown["name"] == WITNESS_NAME
    (log,) = [entry for entry in shown["logs"] if entry["keys"] == [log_key]]
    assert log["origin"] == log_key.split("+")[0] and log["size"] == 0 and log["root"] is None
    text = cli("witness", "show", "--dir", directory)
    assert_ok(text)
    assert vkey in text.stdout and "nothing cosigned yet" in text.stdout


def test_cosigns_a_growing_log(witness, server: Served, homes: Path, other_witness_key: str) -> None:
    directory, vkey = witness
    key, other = parse_cosigner_key(vkey), parse_cosigner_key(other_witness_key)
    path = trusted_home(homes, witness, "growing")
    log_key = Home.open(path).verifier_key
    for round_ in range(3):
        if round_:
            grow(path, 3 + round_, f"round {round_}")
        result = checkpoint(path, server, vkey)
        assert_ok(result)
        note = result.stdout
        body = verify_checkpoint(note, log_key)  # the log's own signature is still there
        assert body.size == head_size(path)
        timestamp = verify_cosignature(note, key)
        assert abs(timestamp - time.time()) < 120
        with pytest.raises(SignatureError, match=r"no cosignature by witness witness\.test/w2"):
            verify_cosignature(note, other)
        # The same signature bytes under another key do not verify either.
        forged = note.replace(f"\u2014 {WITNESS_NAME} ", "\u2014 witness.test/w2 ")
        with pytest.raises(SignatureError):
            verify_cosignature(forged, other)
    shown = json.loads(cli("witness", "show", "--dir", directory, "--json").stdout)
    (log,) = [entry for entry in shown["logs"] if entry["origin"] == log_key.name]
    assert log["size"] == body.size and base64.b64decode(log["root"]) == body.root

    # The checkpoint is stored once; its cosignature is kept beside it, not in it (write-once table).
    db = sqlite3.connect(path / "ledger.sqlite")
    try:
        (stored,) = db.execute("SELECT note FROM checkpoints WHERE size = ?", (body.size,)).fetchone()
        assert WITNESS_NAME not in stored
        rows = db.execute("SELECT size, witness, key_id FROM cosignatures ORDER BY size").fetchall()
        assert [r[1:] for r in rows] == [(WITNESS_NAME, key.key_id)] * 3 and rows[-1][0] == body.size
        with pytest.raises(sqlite3.DatabaseError, match="write-once"):
            db.execute("UPDATE cosignatures SET line = 'x'")
        with pytest.raises(sqlite3.DatabaseError, match="write-once"):
            db.execute("DELETE FROM cosignatures")
    finally:
        db.close()

    # Asking again at the same head is answered (same size, same root), nothing changes.
    again = checkpoint(path, server, vkey)
    assert_ok(again)
    assert parse_checkpoint_body(parse_signed_note(again.stdout).text) == body

    log_lines = server.log.read_text().splitlines()
    assert any(f"POST /add-checkpoint 200 origin={log_key.name}" in line for line in log_lines), log_lines
    assert "PRIVATE KEY" not in server.log.read_text()


def test_a_witness_that_lost_track_is_caught_up_by_one_retry(witness, server: Served, homes: Path) -> None:
    """The home has no record of the witness's size (a copy made before it cosigned): 409, then
    a proof from the witness's size, which this history extends."""
    vkey = witness[1]
    path = trusted_home(homes, witness, "retry")
    twin = homes / "retry-twin"
    shutil.copytree(path, twin)
    assert_ok(checkpoint(path, server, vkey))  # the witness is now at the size both share
    grow(twin, 2, "same history, later")
    result = checkpoint(twin, server, vkey)
    assert_ok(result)
    assert verify_cosignature(result.stdout, parse_cosigner_key(vkey))


# -- refusals, over the wire -----------------------------------------------------------------


def test_protocol_statuses(witness, server: Served, homes: Path) -> None:
    path = trusted_home(homes, witness, "wire")
    home = Home.open(path)
    try:
        note = home.ledger.latest_checkpoint()
        size = home.ledger.size
        signer = home.signer()
    finally:
        home.close()

    # 200, with a body written out by hand as the spec shows it: "old 0", no proof, a blank line.
    status, ctype, body = post(server.url, b"old 0\n\n" + note.encode())
    assert status == 200, body
    line = body.decode()
    assert line.startswith(f"\u2014 {WITNESS_NAME} ") and line.endswith("\n") and line.count("\n") == 1
    assert verify_cosignature(note + line, parse_cosigner_key(witness[1]))

    # 409 when `old` is not what the witness last cosigned: its size, as text/x.tlog.size.
    status, ctype, body = post(server.url, format_request(0, [], note))
    assert (status, ctype, body) == (409, "text/x.tlog.size", f"{size}\n".encode())

    # 400: old size beyond the checkpoint, and malformed bodies.
    assert post(server.url, format_request(size + 1, [], note))[0] == 400
    proof_line = base64.b64encode(b"\x00" * 32) + b"\n"
    for bad in [
        b"",
        b"garbage",
        b"old 01\n\n" + note.encode(),
        b"old -1\n\n" + note.encode(),
        b"old 0\n" + note.encode(),  # no blank line
        b"old 0\nnot base64!\n\n" + note.encode(),
        b"old 0\n" + base64.b64encode(b"short") + b"\n\n" + note.encode(),
        b"old 0\n" + proof_line * 64 + b"\n" + note.encode(),
        b"old 0\n\nnot a checkpoint\n",
        b"old 0\n\n\xff\xfe",
    ]:
        assert post(server.url, bad)[0] == 400, bad[:40]

    # 404: a log the witness was never told about.
    stranger = make_home(homes / "stranger", 1)
    assert post(server.url, format_request(0, [], Home.open(stranger).ledger.latest_checkpoint()))[0] == 404

    # 403: a broken signature, and a good signature by a key the witness does not trust for the origin.
    text, (sig_line,) = note.split("\n\n")[0] + "\n", note.split("\n\n")[1].splitlines()
    dash, name, sig = sig_line.split(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    broken = f"{text}\n{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n"
    assert post(server.url, format_request(size, [], broken))[0] == 403
    impostor = NoteSigner(signer.name, Ed25519PrivateKey.generate())
    assert post(server.url, format_request(size, [], impostor.sign(text)))[0] == 403

    # Same size, another root, signed by the log's real key: 409 (and kept as evidence).
    evidence_before = len(list((witness[0] / "evidence").iterdir()))
    forked = signer.sign(Checkpoint(signer.name, size, hashlib.sha256(b"fork").digest()).body())
    assert post(server.url, format_request(size, [], forked))[:2] == (409, "text/x.tlog.size")
    assert len(list((witness[0] / "evidence").iterdir())) == evidence_before + 1
    # Same size, same root, but a proof: 422.
    assert post(server.url, format_request(size, [b"\x00" * 32], note))[0] == 422

    # 422: a consistency proof that does not verify (one bit flipped).
    grow(path, 5, "later")
    home = Home.open(path)
    try:
        newer = home.checkpoint()
        proof = home.ledger.consistency_proof(size, home.ledger.size)
    finally:
        home.close()
    tampered = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    assert post(server.url, format_request(size, tampered, newer))[0] == 422
    assert post(server.url, format_request(size, proof[:-1], newer))[0] == 422
    assert post(server.url, format_request(size, proof, newer))[0] == 200  # the real one

    # Anything else is not the witness API.
    assert post(server.url, format_request(0, [], note), path="/nope")[0] == 404


def test_check_and_update_are_atomic(witness, server: Served, homes: Path) -> None:
    """Two checkpoints sent at once, both from the size the witness holds: exactly one is cosigned,
    the other gets 409, and the state is the winner's (the race the spec warns about)."""
    path = trusted_home(homes, witness, "race")
    home = Home.open(path)
    try:
        base = home.ledger.size
        notes = [home.ledger.latest_checkpoint()]
        for _ in range(2):
            home.ledger.append_batch([note_entry("racing")])
            notes.append(home.checkpoint())
        sizes = [parse_checkpoint_body(parse_signed_note(n).text).size for n in notes]
        bodies = [
            format_request(base, home.ledger.consistency_proof(base, size), n)
            for n, size in zip(notes[1:], sizes[1:], strict=True)
        ]
    finally:
        home.close()
    assert post(server.url, format_request(0, [], notes[0]))[0] == 200  # the witness holds `base`
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda body: post(server.url, body)[0], bodies))
    assert sorted(statuses) == [200, 409], statuses
    shown = json.loads(cli("witness", "show", "--dir", witness[0], "--json").stdout)
    (log,) = [entry for entry in shown["logs"] if entry["keys"] == [pubkey(path)]]
    assert log["size"] == sizes[1 + statuses.index(200)]


# -- rollback and fork, also across a restart ------------------------------------------------


def test_rollback_refused_also_after_restart(witness, server: Served, homes: Path) -> None:
    vkey = witness[1]
    path = trusted_home(homes, witness, "rollback")
    assert_ok(checkpoint(path, server, vkey))
    old_size = head_size(path)
    backup = homes / "rollback-backup"
    shutil.copytree(path, backup)  # the whole home: database, key and its own remembered checkpoint
    grow(path, 4, "later")
    assert_ok(checkpoint(path, server, vkey))
    new_size = head_size(path)

    # The operator restores the older copy: the home cannot tell, the witness can.
    shutil.rmtree(path)
    shutil.copytree(backup, path)
    for restarted in (False, True):
        if restarted:
            server.restart()
        result = checkpoint(path, server, vkey)
        line = one_line_error(result, 1, server.url, "409", "rolled back")
        assert f"size {new_size}" in line
        assert verify_checkpoint(result.stdout, Home.open(path).verifier_key).size == old_size  # still signed
        # On the wire: the old checkpoint with old = the witness's size is a 400; with its own size a 409.
        note = Home.open(path).ledger.latest_checkpoint()
        assert post(server.url, format_request(new_size, [], note))[0] == 400
        assert post(server.url, format_request(old_size, [], note)) == (
            409,
            "text/x.tlog.size",
            f"{new_size}\n".encode(),
        )


def test_fork_refused_also_after_restart(witness, server: Served, homes: Path) -> None:
    vkey = witness[1]
    path = trusted_home(homes, witness, "fork")
    assert_ok(checkpoint(path, server, vkey))
    # Whoever holds a home's database and key can make a second one and grow it differently.
    longer, same = homes / "fork-longer", homes / "fork-same-size"
    shutil.copytree(path, longer)
    shutil.copytree(path, same)
    grow(path, 3, "the history the witness sees")
    assert_ok(checkpoint(path, server, vkey))
    grow(longer, 5, "another history")
    grow(same, 3, "yet another history")

    for restarted in (False, True):
        if restarted:
            server.restart()
        # The longer fork: 409 (the witness moved on), retried once from there: 422.
        one_line_error(checkpoint(longer, server, vkey), 1, server.url, "422")
        # Same size as what the witness saw, another root: 409 again after the retry.
        one_line_error(checkpoint(same, server, vkey), 1, server.url, "409")
    # The honest log still gets cosigned by the restarted witness.
    grow(path, 1, "and on")
    assert_ok(checkpoint(path, server, vkey))


# -- the client's bad input and unreachable witnesses ----------------------------------------


def checkpoint_rows(path: Path) -> list:
    db = sqlite3.connect(f"file:{path / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        sizes = db.execute("SELECT size FROM checkpoints ORDER BY size").fetchall()
        return [*sizes, db.execute("SELECT size FROM head").fetchone()]
    finally:
        db.close()


def test_checkpoint_bad_witness_input(witness, server: Served, homes: Path, other_witness_key: str) -> None:
    vkey = witness[1]
    path = trusted_home(homes, witness, "client")
    grow(path, 1, "unsigned yet")
    before = checkpoint_rows(path)
    home = ["--home", path]
    # Refused before anything is signed: exit 2, nothing changed.
    one_line_error(cli("ledger", "checkpoint", *home, "--witness", server.url), 2, "--witness-key")
    one_line_error(
        cli("ledger", "checkpoint", *home, "--witness", server.url, "--witness-key", "junk+1+2"), 2, "--witness-key"
    )
    one_line_error(
        cli("ledger", "checkpoint", *home, "--witness", server.url, "--witness-key", pubkey(path)), 2, "--witness-key"
    )
    one_line_error(cli("ledger", "checkpoint", *home, "--witness", "ftp://x", "--witness-key", vkey), 2, "ftp://x")
    assert checkpoint_rows(path) == before

    # Unreachable: exit 2 naming the URL; the log's own checkpoint is signed all the same.
    dead = "http://127.0.0.1:9"
    result = cli("ledger", "checkpoint", *home, "--witness", dead, "--witness-key", vkey)
    one_line_error(result, 2, dead, "unreachable")
    assert verify_checkpoint(result.stdout, Home.open(path).verifier_key).size == before[-1][0]
    # A witness key that is not the one answering: exit 2, nothing kept.
    one_line_error(checkpoint(path, server, other_witness_key), 2, server.url, "no valid cosignature")
    db = sqlite3.connect(path / "ledger.sqlite")
    assert db.execute("SELECT COUNT(*) FROM cosignatures").fetchone() == (0,)
    db.close()
    # Two witnesses, one of them down: the good one's cosignature is kept, the error names the other.
    result = cli(
        "ledger", "checkpoint", *home, "--witness", server.url, "--witness-key", vkey, "--witness", dead,
        "--witness-key", other_witness_key,
    )  # fmt: skip
    one_line_error(result, 2, dead)
    assert verify_cosignature(result.stdout, parse_cosigner_key(vkey))


# -- offline verification with --witness-key -------------------------------------------------


def test_verify_proof_requires_the_cosignature(witness, server: Served, homes: Path, other_witness_key, tmp_path):
    vkey = witness[1]
    path = trusted_home(homes, witness, "proofs")
    log_key = pubkey(path)
    bare = tmp_path / "bare.json"
    assert_ok(cli("ledger", "proof", "2", "--out", bare, "--home", path))
    assert_ok(cli("ledger", "verify-proof", bare, "--key", log_key))
    one_line_error(cli("ledger", "verify-proof", bare, "--key", log_key, "--witness-key", vkey), 1, WITNESS_NAME)

    assert_ok(checkpoint(path, server, vkey))
    grow(path, 2, "after the cosigned checkpoint")
    cosigned = tmp_path / "cosigned.json"
    assert_ok(cli("ledger", "proof", "2", "--out", cosigned, "--home", path))
    note = json.loads(cosigned.read_text())["checkpoint"]
    assert parse_signed_note(note).signatures[1][0] == WITNESS_NAME
    result = cli("ledger", "verify-proof", cosigned, "--key", log_key, "--witness-key", vkey)
    assert_ok(result)
    assert f"cosigned by {WITNESS_NAME}" in result.stdout
    key_file = tmp_path / "witness.vkey"
    key_file.write_text(vkey + "\n")
    assert_ok(cli("ledger", "verify-proof", cosigned, "--key", log_key, "--witness-key", key_file))
    # A second required witness that did not cosign: exit 1, naming it.
    one_line_error(
        cli(
            "ledger",
            "verify-proof",
            cosigned,
            "--key",
            log_key,
            "--witness-key",
            vkey,
            "--witness-key",
            other_witness_key,
        ),
        1,
        "witness.test/w2",
    )
    # An edited cosignature: exit 1, naming the witness.
    doc = json.loads(cosigned.read_text())
    last = doc["checkpoint"].splitlines()[-1]
    raw = bytearray(base64.b64decode(last.split(" ")[2]))
    raw[20] ^= 1
    doc["checkpoint"] = doc["checkpoint"].replace(
        last, f"{last.rsplit(' ', 1)[0]} {base64.b64encode(bytes(raw)).decode()}"
    )
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    assert_ok(cli("ledger", "verify-proof", edited, "--key", log_key))  # the log's signature is intact
    one_line_error(cli("ledger", "verify-proof", edited, "--key", log_key, "--witness-key", vkey), 1, WITNESS_NAME)
    # A malformed witness key: exit 2.
    one_line_error(
        cli("ledger", "verify-proof", cosigned, "--key", log_key, "--witness-key", "w+zz+AA"), 2, "--witness-key"
    )

    # The standalone verifier agrees.
    run = [sys.executable, "-I", verifier_module.__file__]
    assert subprocess.run([*run, cosigned, log_key, "--witness-key", vkey], capture_output=True).returncode == 0
    assert subprocess.run([*run, bare, log_key, "--witness-key", vkey], capture_output=True).returncode == 1


def _report(home: Home) -> bytes:
    """A minimal JSON report citing one entry, made by the report library's own anchor and seal."""
    from custody.ledger.entry import json_digest
    from custody.reports import REPORT_FORMAT
    from custody.reports.anchors import anchor, seal
    from custody.reports.claims import cite
    from custody.reports.layout import assemble

    content = {"format": REPORT_FORMAT, "subject": "dataset:witnessed@1", "notes": [cite(home.ledger.entry(1))]}
    content["anchors"] = anchor(home, content)
    digest = json_digest(content)
    content["seal"] = seal(
        home, content["subject"], "json", digest, len(canonical_json(content)), content["anchors"]["tree_size"]
    )
    return assemble("json", "", "", content)


def test_verify_report_requires_the_cosignature(witness, server: Served, homes: Path, other_witness_key, tmp_path):
    vkey = witness[1]
    path = trusted_home(homes, witness, "reports")
    log_key = pubkey(path)
    assert_ok(checkpoint(path, server, vkey))  # cosign the head, then report on it
    home = Home.open(path)
    try:
        witnessed = tmp_path / "witnessed.json"
        witnessed.write_bytes(_report(home))
        unwitnessed = tmp_path / "unwitnessed.json"  # the head moved (the first report's seal)
        unwitnessed.write_bytes(_report(home))
    finally:
        home.close()

    for report in (witnessed, unwitnessed):
        assert_ok(cli("verify-report", report, "--key", log_key))
    result = cli("verify-report", witnessed, "--key", log_key, "--witness-key", vkey)
    assert_ok(result)
    result = cli("verify-report", unwitnessed, "--key", log_key, "--witness-key", vkey)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"witness {WITNESS_NAME}" in line
    result = cli(
        "verify-report", witnessed, "--key", log_key, "--witness-key", vkey, "--witness-key", other_witness_key
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "witness witness.test/w2" in line
    one_line_error(cli("verify-report", witnessed, "--key", log_key, "--witness-key", "nope"), 2, "--witness-key")


# -- storage ---------------------------------------------------------------------------------


def test_older_sqlite_database_gains_the_table(tmp_path: Path) -> None:
    path = make_home(tmp_path / "old", 2)
    db = sqlite3.connect(path / "ledger.sqlite")
    db.executescript(
        "DROP TRIGGER cosignatures_no_update; DROP TRIGGER cosignatures_no_delete; DROP TABLE cosignatures;"
    )
    db.close()
    home = Home.open(path)
    try:
        assert home.ledger.last_cosigned_size(_fresh_cosigner().key) == 0
        assert home.ledger.with_cosignatures(home.ledger.latest_checkpoint()) == home.ledger.latest_checkpoint()
    finally:
        home.close()
    db = sqlite3.connect(path / "ledger.sqlite")
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'cosignatures%'")}
    db.close()
    assert names == {"cosignatures", "cosignatures_no_update", "cosignatures_no_delete"}


def _fresh_cosigner() -> Cosigner:
    return Cosigner("witness.test/lib", Ed25519PrivateKey.generate())


@pytest.mark.postgres
def test_cosignatures_on_postgres(postgres_url: str) -> None:
    from custody.ledger.log import Ledger
    from custody.ledger.storage import open_storage
    from custody.ledger.verifier import VerificationError

    signer = NoteSigner("custody.test/pg", Ed25519PrivateKey.generate())
    cosigner = _fresh_cosigner()
    storage = open_storage(postgres_url, create=True)
    ledger = Ledger(storage, signer.name)
    ledger.append_batch([note_entry(f"pg {i}") for i in range(5)])
    note = ledger.sign_checkpoint(signer)
    line = cosigner.cosign(note)
    ledger.add_cosignature(5, cosigner.key, line)
    ledger.add_cosignature(5, cosigner.key, cosigner.cosign(note, 12345))  # the first one is kept
    assert ledger.with_cosignatures(note) == note + line
    assert ledger.last_cosigned_size(cosigner.key) == 5
    with pytest.raises(VerificationError):
        ledger.add_cosignature(5, _fresh_cosigner().key, line)  # not that witness's signature
    storage._execute("DROP TABLE cosignatures")  # an older database
    storage.close()
    storage = open_storage(postgres_url)
    ledger = Ledger(storage, signer.name)
    assert ledger.last_cosigned_size(cosigner.key) == 0
    ledger.add_cosignature(5, cosigner.key, line)
    with pytest.raises(Exception, match="append-only"):
        storage._execute("DELETE FROM cosignatures")
    storage.close()
