"""A cast of people with real Ed25519 keys, for tests and the demo.

Each name gets a key the first time it is asked for; with a key folder the pair is also written in
OpenSSH format (NAME, mode 0600, and NAME.pub), as `ssh-keygen -t ed25519` would, so the CLI and
ssh-keygen can use it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.home import Home
from custody.trust.acting import Attested, Person
from custody.trust.sshkeys import KeySigner, PublicKey, generate_key, load_signer

ADMIN = "admin"


class Cast:
    def __init__(self, key_dir: Path | None = None) -> None:
        self.key_dir = key_dir
        self._signers: dict[str, KeySigner] = {}

    def signer(self, name: str) -> KeySigner:
        if name not in self._signers:
            if self.key_dir is None:
                self._signers[name] = KeySigner(Ed25519PrivateKey.generate(), f"<{name}'s test key>")
            else:
                path = self.key_file(name)
                self._signers[name] = load_signer(path) if path.exists() else generate_key(path, name)  # type: ignore[assignment]
        return self._signers[name]

    def key_file(self, name: str) -> Path:
        """The private key file (made on first use); NAME.pub beside it."""
        if self.key_dir is None:
            raise ValueError("this cast keeps its keys in memory; give it a key folder for files")
        path = self.key_dir / name
        if not path.exists():
            self._signers[name] = generate_key(path, name)
        return path

    def public(self, name: str) -> PublicKey:
        return self.signer(name).public

    def init_home(self, path: Path | str, database: str | None = None, admin: str = ADMIN, **kwargs) -> Home:
        """A new home whose first admin is `admin` (holding this cast's key)."""
        return Home.init(path, database, admin=(admin, self.public(admin)), **kwargs)

    def person(self, home: Home, name: str) -> Person:
        """`name` as the roster knows them, acting with their key."""
        member = home.roster().by_name(name)
        if member is None or member.key != self.public(name):
            raise LookupError(f"{name} is not on the roster of {home.path} with this cast's key")
        return Person(name, self.signer(name), member.roles)

    def enroll(self, home: Home, name: str, *roles: str, admin: str = ADMIN) -> Person:
        """Put `name` on the roster with `roles` (signed by `admin`), unless already there."""
        if home.roster().by_name(name) is None:
            key = self.public(name)
            body = {"name": name, "key": key.openssh, "fingerprint": key.fingerprint, "roles": sorted(roles)}
            home.record("people.added/v1", f"person:{name}", body, actor=self.person(home, admin))
        return self.person(home, name)

    def attested(self, home: Home, name: str, via: str = "dashboard", method: str = "password") -> Attested:
        from custody.ledger.entry import utc_now

        return Attested(name, self.person(home, via), method, utc_now())
