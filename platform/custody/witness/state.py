"""The witness directory: who the witness is, which logs it trusts, what it last cosigned.

Layout (never inside a custody home: the witness must not share a trust domain with a log):
  witness.json          {"format", "name", "vkey"}
  keys/witness.key      the Ed25519 key, mode 0600 (directory 0700)
  logs/<h>.json         one file per log (h = SHA-256 of the origin): trusted keys, last cosigned
                        size, root and the log-signed note, replaced atomically on each update
  evidence/             log-signed checkpoints the witness refused (409 same size, 422): proof of a fork
  .lock                 flock'd around every read-check-write, across threads and processes
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from custody.ledger.signing import generate_key_file
from custody.ledger.verifier import (
    VerificationError,
    VerifierKey,
    parse_cosigner_key,
    parse_verifier_key,
    valid_key_name,
)
from custody.witness.cosigner import Cosigner, WitnessKeyError, load_cosigner

CONFIG = "witness.json"
FORMAT = "custody.witness/v1"


class WitnessDirError(Exception):
    """The witness directory is missing, half-made, or holds something unexpected."""


@dataclass(frozen=True)
class LogState:
    origin: str
    keys: tuple[str, ...]  # the log's verifier keys (C2SP vkeys, type 0x01)
    size: int = 0  # last cosigned size; 0 = never cosigned
    root: bytes | None = None
    note: str | None = None  # the log-signed checkpoint last cosigned, verbatim
    updated: int | None = None  # POSIX time of the last cosignature

    def verifier_keys(self) -> list[VerifierKey]:
        return [parse_verifier_key(k) for k in self.keys]

    def to_json(self) -> dict:
        root = base64.b64encode(self.root).decode() if self.root is not None else None
        return {
            "origin": self.origin,
            "keys": list(self.keys),
            "size": self.size,
            "root": root,
            "note": self.note,
            "updated": self.updated,
        }

    @classmethod
    def from_json(cls, doc: object, where: Path) -> LogState:
        # Fail closed: a witness that cannot read its state must not cosign anything.
        damaged = WitnessDirError(f"{where}: witness state is damaged")
        if not isinstance(doc, dict):
            raise damaged
        try:
            keys = tuple(doc["keys"])
            for key in keys:
                parse_verifier_key(key)
            root = base64.b64decode(doc["root"], validate=True) if doc["root"] is not None else None
            state = cls(doc["origin"], keys, doc["size"], root, doc["note"], doc["updated"])
        except (KeyError, TypeError, ValueError, VerificationError) as exc:
            raise damaged from exc
        never = state.size == 0
        if (
            not isinstance(state.origin, str)
            or not isinstance(state.size, int)
            or state.size < 0
            or (root is None) != never
            or (state.note is None) != never
        ):
            raise damaged
        return state


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename over `path`, fsync the directory: the old or the new state, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _inside_custody_home(path: Path) -> Path | None:
    for candidate in [path, *path.parents]:
        config = candidate / "config.toml"
        try:
            if config.is_file() and "verifier_key" in config.read_text(encoding="utf-8", errors="replace"):
                return candidate
        except OSError:
            continue
    return None


class WitnessDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        config = path / CONFIG
        try:
            doc = json.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise WitnessDirError(f"no witness at {path} (run `custody witness init --dir {path}`)") from exc
        except (OSError, ValueError) as exc:
            raise WitnessDirError(f"{config}: not a readable witness config ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise WitnessDirError(f"{config}: not a {FORMAT} config")
        try:
            self.key = parse_cosigner_key(str(doc.get("vkey")))
        except VerificationError as exc:
            raise WitnessDirError(f"{config}: field 'vkey': {exc}") from exc
        if doc.get("name") != self.key.name:
            raise WitnessDirError(f"{config}: field 'name' does not match the vkey")
        self.name = self.key.name
        self.logs_dir = path / "logs"
        self.evidence_dir = path / "evidence"

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def init(cls, path: Path, name: str) -> WitnessDir:
        if not valid_key_name(name):
            raise WitnessDirError(f"--name {name!r}: a witness name must be non-empty, without spaces or '+'")
        home = _inside_custody_home(path.resolve())
        if home is not None:
            raise WitnessDirError(f"{path}: is inside the custody home {home}; a witness needs its own directory")
        if (path / CONFIG).exists():
            raise WitnessDirError(f"{path} is already a witness")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise WitnessDirError(f"{path}: exists and is not an empty directory")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            key_path = path / "keys" / "witness.key"
            generate_key_file(key_path)
            cosigner = load_cosigner(key_path, name)
            (path / "logs").mkdir()
            (path / "evidence").mkdir()
            config = {"format": FORMAT, "name": name, "vkey": str(cosigner.key)}
            write_atomically(path / CONFIG, (json.dumps(config, indent=2) + "\n").encode())
        except BaseException:
            # Leave nothing half-made: a failed init must not block the next one.
            if created:
                shutil.rmtree(path, ignore_errors=True)
            else:
                for child in path.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            raise
        return cls(path)

    def cosigner(self) -> Cosigner:
        try:
            cosigner = load_cosigner(self.path / "keys" / "witness.key", self.name)
        except WitnessKeyError as exc:
            raise WitnessDirError(str(exc)) from exc
        if cosigner.key != self.key:
            raise WitnessDirError(f"{self.path / 'keys' / 'witness.key'} does not match the witness's vkey")
        return cosigner

    # -- per-log state ----------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes (and threads: each call opens its own descriptor)."""
        with open(self.path / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _log_path(self, origin: str) -> Path:
        return self.logs_dir / f"{hashlib.sha256(origin.encode()).hexdigest()[:32]}.json"

    def log(self, origin: str) -> LogState | None:
        path = self._log_path(origin)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise WitnessDirError(f"{path}: witness state is damaged ({exc})") from exc
        state = LogState.from_json(doc, path)
        if state.origin != origin:
            raise WitnessDirError(f"{path}: holds the state of another log ({state.origin!r})")
        return state

    def logs(self) -> list[LogState]:
        states = [
            LogState.from_json(json.loads(p.read_text(encoding="utf-8")), p) for p in self.logs_dir.glob("*.json")
        ]
        return sorted(states, key=lambda s: s.origin)

    def save(self, state: LogState) -> None:
        data = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
        write_atomically(self._log_path(state.origin), data.encode())

    def add_log(self, key: VerifierKey) -> tuple[LogState, bool]:
        """Trust `key` for the log named by its origin; False when it was already trusted."""
        with self.locked():
            state = self.log(key.name) or LogState(key.name, ())
            if str(key) in state.keys:
                return state, False
            state = LogState(state.origin, (*state.keys, str(key)), state.size, state.root, state.note, state.updated)
            self.save(state)
            return state, True

    def keep_evidence(self, origin: str, body: bytes, why: str) -> None:
        """Keep a log-signed request the witness refused: it may prove the log forked."""
        stamp = f"{time.time_ns()}-{hashlib.sha256(origin.encode()).hexdigest()[:16]}"
        write_atomically(self.evidence_dir / f"{stamp}.txt", f"# {why}\n".encode() + body)


def open_witness(path: Path) -> WitnessDir:
    if not path.is_dir():
        raise WitnessDirError(f"no witness at {path} (run `custody witness init --dir {path} --name NAME`)")
    return WitnessDir(path)
