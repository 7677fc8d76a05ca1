"""A custody home: where the ledger database, the artifact store and the signing key live.

Layout of a home directory:
  config.toml          origin, verifier key, database URL (SQLite file by default), artifacts location
  ledger.sqlite        the ledger (unless the config names a PostgreSQL database)
  artifacts/           the content-addressed store (unless the config names another folder or an s3:// bucket)
  cache/artifacts/     with an s3:// store: this machine's verified copies ($CUSTODY_ARTIFACT_CACHE moves it)
  work/                finished shards of running checks (Ray workers write here too)
  keys/ledger.key      the Ed25519 signing key, mode 0600, never inside the database
  witness/checkpoint   the last checkpoint this home saw, kept apart from the database
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import shutil
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from custody.ledger import entry_types  # noqa: F401  registers the ledger's entry types
from custody.ledger.entry import Entry, make_entry
from custody.ledger.log import Ledger
from custody.ledger.query import envelope
from custody.ledger.signing import NoteSigner, generate_key_file, load_signer
from custody.ledger.storage import EntryRow, Storage, open_storage
from custody.ledger.verifier import VerificationError, VerifierKey, parse_verifier_key
from custody.ledger.witness import CheckpointWitness
from custody.store import ArtifactStore, StoreUnavailable
from custody.store.s3 import S3ArtifactStore
from custody.trust import entry_types as _trust_entry_types  # noqa: F401  registers people.*
from custody.trust import sshsig
from custody.trust.acting import Acting, Attested, NotPermitted, Person
from custody.trust.attribution import Attribution, attribute
from custody.trust.audit import classify, signature_problem
from custody.trust.permissions import person_roles
from custody.trust.roster import Roster, RosterHistory, roster_change_problem
from custody.trust.sshkeys import KeySigner, PublicKey

DEFAULT_HOME = ".custody"
CONFIG_KEYS = {"origin", "verifier_key", "database", "artifacts", "artifacts_endpoint"}


class HomeError(Exception):
    """The home is missing, half-made, or its config is invalid."""


def resolve_home(path: str | Path | None) -> Path:
    return Path(path or os.environ.get("CUSTODY_HOME") or DEFAULT_HOME)


def current_actor(explicit: str | None = None) -> str:
    actor = explicit or os.environ.get("CUSTODY_ACTOR") or getpass.getuser()
    if not actor or any(c.isspace() for c in actor) or len(actor) > 200:
        raise HomeError(f"actor name {actor!r} must be non-empty, without spaces, at most 200 characters")
    return actor


def actor_name(actor: Acting | str | None) -> str:
    """The name an entry records for `actor` (a roster member, or a plain name in an old home)."""
    return actor.name if isinstance(actor, Person | Attested) else current_actor(actor)


def artifacts_root(home: Path, location: str | None) -> Path:
    """Where the artifact store's files live: HOME/artifacts, a folder (relative to the home), a
    file:// URL, or for an s3:// bucket this machine's cache ($CUSTODY_ARTIFACT_CACHE, else
    HOME/cache/artifacts).

    Other object stores (gs://, az://, ...) are refused: mount them (gcsfuse, blobfuse) and give the
    mount's path instead (docs/scale.md).
    """
    if not location:
        return home / "artifacts"
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    if location.startswith("s3://"):
        cache = os.environ.get("CUSTODY_ARTIFACT_CACHE")
        return Path(cache) if cache else home / "cache" / "artifacts"
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise HomeError(
            f"artifacts: {scheme}:// storage is not supported; use an s3:// bucket (any S3-compatible "
            "server), or mount it on every machine (gcsfuse, NFS) and give the mount's path (docs/scale.md)"
        )
    path = Path(location)
    return path if path.is_absolute() else home / path


def open_store(home: Path, location: str | None, endpoint: str | None = None) -> ArtifactStore:
    """The home's artifact store: a folder, or an S3 bucket read through a local cache."""
    root = artifacts_root(home, location)
    if location and location.startswith("s3://"):
        try:
            return S3ArtifactStore(location, root, endpoint)
        except ValueError as exc:
            raise HomeError(f"artifacts: {exc}") from None
    if endpoint:
        raise HomeError("artifacts_endpoint is only for an s3:// artifacts location")
    return ArtifactStore(root)


@dataclass(frozen=True)
class HomeConfig:
    origin: str
    verifier_key: str
    database: str | None = None
    artifacts: str | None = None  # a folder every machine sees, or s3://bucket/prefix; None: HOME/artifacts
    artifacts_endpoint: str | None = None  # the S3 server's URL when it is not AWS (never credentials)

    def to_toml(self) -> str:
        lines = [
            "# custody home configuration",
            f"origin = {json.dumps(self.origin)}",
            f"verifier_key = {json.dumps(self.verifier_key)}",
        ]
        if self.database:
            lines.append(f"database = {json.dumps(self.database)}")
        if self.artifacts:
            lines.append(f"artifacts = {json.dumps(self.artifacts)}")
        if self.artifacts_endpoint:
            lines.append(f"artifacts_endpoint = {json.dumps(self.artifacts_endpoint)}")
        return "\n".join(lines) + "\n"


def _read_config(path: Path) -> HomeConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise HomeError(f"no custody home at {path.parent} (run `custody init --home {path.parent}`)") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HomeError(f"{path}: not valid TOML ({exc})") from exc
    unknown = set(data) - CONFIG_KEYS
    if unknown:
        raise HomeError(f"{path}: unknown key '{sorted(unknown)[0]}'")
    for key in ("origin", "verifier_key"):
        if not isinstance(data.get(key), str):
            raise HomeError(f"{path}: field '{key}' is missing or not a string")
    for key in ("database", "artifacts", "artifacts_endpoint"):
        if key in data and not isinstance(data[key], str):
            raise HomeError(f"{path}: field '{key}' must be a string")
    optional = (data.get(key) for key in ("database", "artifacts", "artifacts_endpoint"))
    return HomeConfig(data["origin"], data["verifier_key"], *optional)


class Home:
    def __init__(self, path: Path, config: HomeConfig, database: str | None = None) -> None:
        self.path = path
        self.config = config
        self.database_url = (
            database or os.environ.get("CUSTODY_DATABASE") or config.database or (f"sqlite:///{path / 'ledger.sqlite'}")
        )
        self.store = open_store(path, config.artifacts, config.artifacts_endpoint)
        try:
            self.verifier_key: VerifierKey = parse_verifier_key(config.verifier_key)
        except VerificationError as exc:
            raise HomeError(f"{path / 'config.toml'}: field 'verifier_key': {exc}") from exc
        self.witness = CheckpointWitness(path / "witness" / "checkpoint", self.verifier_key)
        self._storage: Storage | None = None
        self._ledger: Ledger | None = None
        self._rosters = RosterHistory()
        self._service: KeySigner | None = None

    # -- creation and opening ---------------------------------------------------------------
    @classmethod
    def init(
        cls,
        path: str | Path | None = None,
        database: str | None = None,
        actor: str | None = None,
        artifacts: str | None = None,
        admin: tuple[str, PublicKey] | None = None,
        artifacts_endpoint: str | None = None,
    ) -> Home:
        """Make a home whose every entry is signed; `admin` (name, key) is the first on the roster.

        An s3:// `artifacts` bucket must be reachable with the credentials at hand (boto3's usual
        sources); nothing is made otherwise. Whether they may write is learned at the first write."""
        home = resolve_home(path)
        config_path = home / "config.toml"
        if config_path.exists():
            raise HomeError(f"{home} is already a custody home")
        if database and not database.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise HomeError(f"--database must be a postgresql:// or sqlite:/// URL, not {database.split(':')[0]!r}")
        # Refuse an unsupported location, or a bucket that cannot be reached, before anything is made.
        store = open_store(home, artifacts, artifacts_endpoint)
        if isinstance(store, S3ArtifactStore):
            try:
                store.check_bucket()
            except StoreUnavailable as exc:
                raise HomeError(str(exc)) from None
        created_dir = not home.exists()
        try:
            return cls._create(home, database, actor, artifacts, admin, artifacts_endpoint)
        except BaseException:
            # Leave nothing half-made behind: a failed init must not block the next one.
            if created_dir:
                shutil.rmtree(home, ignore_errors=True)
            else:
                (home / "config.toml").unlink(missing_ok=True)
            raise

    @classmethod
    def _create(
        cls,
        home: Path,
        database: str | None,
        actor: str | None,
        artifacts: str | None = None,
        admin: tuple[str, PublicKey] | None = None,
        artifacts_endpoint: str | None = None,
    ) -> Home:
        config_path = home / "config.toml"
        home.mkdir(parents=True, exist_ok=True)
        origin = f"custody.local/{uuid.uuid4().hex[:16]}"
        key_path = home / "keys" / "ledger.key"
        if not key_path.exists():
            generate_key_file(key_path)
        signer = load_signer(key_path, origin)
        config = HomeConfig(origin, str(signer.verifier_key), database, artifacts, artifacts_endpoint)
        instance = cls(home, config)
        storage = open_storage(instance.database_url, create=True)
        if storage.head()[0] != 0:
            storage.close()
            raise HomeError(f"database {instance.database_url.split('@')[-1]} already holds a ledger; give a fresh one")
        instance.store.root.mkdir(parents=True, exist_ok=True)
        tmp = config_path.with_suffix(".tmp")
        tmp.write_text(config.to_toml(), encoding="utf-8")
        os.replace(tmp, config_path)
        instance._storage = storage
        service = instance.service_signer()
        body: dict = {
            "origin": origin,
            "verifier_key": config.verifier_key,
            "backend": storage.name,
            "service_key": service.public.openssh,
        }
        if admin is not None:
            name, key = admin
            body["admin"] = {"name": name, "key": key.openssh, "fingerprint": key.fingerprint, "roles": ["admin"]}
        first = make_entry(
            "home.initialized/v2", current_actor(actor), "home", body, sign=lambda m: sshsig.sign(service, m)
        )
        instance.append([first])
        instance.checkpoint()
        return instance

    @classmethod
    def open(cls, path: str | Path | None = None, database: str | None = None) -> Home:
        home = resolve_home(path)
        if not home.is_dir():
            raise HomeError(f"no custody home at {home} (run `custody init --home {home}`)")
        return cls(home, _read_config(home / "config.toml"), database)

    # -- parts ------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.database_url)
        return self._storage

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.storage, self.config.origin)
        return self._ledger

    def signer(self) -> NoteSigner:
        signer = load_signer(self.path / "keys" / "ledger.key", self.config.origin)
        if str(signer.verifier_key) != self.config.verifier_key:
            raise HomeError(f"{self.path / 'keys' / 'ledger.key'} does not match the home's verifier key")
        return signer

    def service_signer(self) -> KeySigner:
        """The home's own key as an SSH signer: it signs what machines write (and checkpoints)."""
        if self._service is None:
            self._service = KeySigner(self.signer().private_key, str(self.path / "keys" / "ledger.key"))
        return self._service

    # -- who may write what ----------------------------------------------------------------
    def roster(self, size: int | None = None) -> Roster:
        """The roster as it stands at the head (or before entry `size`); read-only, copy to change."""
        return self._rosters.at(self.storage, self.storage.head()[0] if size is None else size)

    def attribute(self, row: EntryRow) -> Attribution:
        """Who the stored entry speaks for, by key, against the roster at its index."""
        # Entry 0 declares the service key it is signed with: judge it with itself applied.
        return attribute(row.idx, envelope(row), self.roster(max(row.idx, 1)))

    def key_of(self, name: str, index: int | None = None) -> str | None:
        """The fingerprint of the key the roster binds to `name` (before entry `index`), if any."""
        member = self.roster(index).by_name(name)
        return member.key.fingerprint if member is not None else None

    def _admit(self, entries: list[Entry] | tuple[Entry, ...], size: int) -> None:
        """Under the writer lock: refuse any entry the roster at its index does not permit."""
        roster = self.roster(size)
        if not roster.signed and size > 0:
            return  # a home made before signatures keeps its unsigned entries
        changes = size == 0 or any(e.type.startswith("people.") for e in entries)
        work = copy.deepcopy(roster) if changes else roster  # the cached roster is shared: copy to change
        for offset, entry in enumerate(entries):
            index, doc = size + offset, entry.as_dict()
            if index == 0:
                work.apply(0, doc)
            signer, problem = classify(index, doc, work)
            # A person's signature is checked here; the service's was made in this process, by the
            # key the home holds (whoever holds it can write anything); `ledger verify` checks all.
            if problem is None and signer.kind != "service":
                problem = signature_problem(doc)
            problem = problem or roster_change_problem(doc, work)
            if problem:
                raise NotPermitted(f"refused {entry.type} on {entry.subject}: {problem}")
            if index and changes:
                work.apply(index, doc)

    # -- common actions ---------------------------------------------------------------------
    def entry(
        self, type: str, subject: str, body: dict, refs: list[str] | None = None, actor: Acting | str | None = None
    ) -> Entry:
        """Build one entry, signed by whoever must sign it.

        A person's action is signed with their own key (`Person`) or by the dashboard for them
        (`Attested`); anything else is signed by the service key, naming who asked. A plain
        name can only request machine work: it is never a person's signature."""
        if not self.roster().signed:
            return make_entry(type, actor_name(actor), subject, body, refs)
        needed = person_roles(type, subject, body)
        service = self.service_signer()
        if isinstance(actor, Person) and needed is not None:
            return make_entry(type, actor.name, subject, body, refs, sign=actor.sign)
        if isinstance(actor, Attested) and needed is not None:
            return make_entry(type, actor.person, subject, body, refs, sign=actor.via.sign, attest=actor.attestation())
        if needed is not None:
            raise NotPermitted(
                f"{type} is a person's action: it needs the acting person's key (--key FILE or $CUSTODY_KEY)"
            )
        return make_entry(type, actor_name(actor), subject, body, refs, sign=lambda m: sshsig.sign(service, m))

    def append(self, entries: list[Entry]) -> list[int]:
        """Append built entries in one transaction, each admitted against the roster."""
        return self.ledger.append_batch(entries, admit=self._admit)

    def record(
        self, type: str, subject: str, body: dict, refs: list[str] | None = None, actor: Acting | str | None = None
    ) -> int:
        """Build, sign, admit and append one entry; return its index."""
        return self.append([self.entry(type, subject, body, refs, actor)])[0]

    def checkpoint(self) -> str:
        """Sign the current head and remember it outside the database."""
        note = self.ledger.sign_checkpoint(self.signer(), self.witness.remembered())
        self.witness.observe(note, self.ledger.consistency_proof)
        return note

    def close(self) -> None:
        self._rosters = RosterHistory()  # the database may change before it is opened again
        if self._storage is not None:
            self._storage.close()
            self._storage = None
            self._ledger = None
