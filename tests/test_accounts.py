"""Local dashboard accounts: scrypt hashes only, roles, ledger entries without secrets, CLI errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from custody.accounts import AccountError, Accounts, check_password, hash_password


def test_hash_is_salted_scrypt_and_checks(home):
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("scrypt$32768$8$1$") and first != second, "a fresh salt every time"
    assert check_password("correct horse battery", first)
    assert not check_password("correct horse batterz", first)
    assert not check_password("anything", "md5$abc")
    assert not check_password("anything", "scrypt$x$y$z$!!$!!")


def test_accounts_file_is_private_and_holds_no_password(home):
    accounts = Accounts(home.path)
    accounts.add("rita", "reviewer", "s3cret-password-1")
    path = home.path / "accounts.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "s3cret-password-1" not in path.read_text()
    assert accounts.authenticate("rita", "s3cret-password-1").role == "reviewer"
    assert accounts.authenticate("rita", "wrong-password-1") is None
    assert accounts.authenticate("nobody", "s3cret-password-1") is None


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("bad name", "viewer", "long-enough-pw", "user name"),
        ("-dash", "viewer", "long-enough-pw", "user name"),
        ("ok", "superuser", "long-enough-pw", "role 'superuser'"),
        ("ok", "viewer", "short", "at least 10"),
    ],
)
def test_bad_names_roles_and_passwords_are_refused(home, name, role, password, message):
    with pytest.raises(AccountError, match=message):
        Accounts(home.path).add(name, role, password)
    assert not (home.path / "accounts.json").exists()


def test_duplicate_and_unknown_users(home):
    accounts = Accounts(home.path)
    accounts.add("vic", "viewer", "viewer-password")
    with pytest.raises(AccountError, match="already exists"):
        accounts.add("vic", "admin", "another-password")
    with pytest.raises(AccountError, match="no user 'zed'"):
        accounts.set_role("zed", "admin")
    assert accounts.set_role("vic", "reviewer") == "viewer"
    assert accounts.get("vic").can_review


def test_a_damaged_accounts_file_is_a_clear_error(home):
    (home.path / "accounts.json").write_text("{not json")
    with pytest.raises(AccountError, match=r"accounts\.json: not a custody accounts file"):
        Accounts(home.path).list()


def cli(home_path: Path, key: Path, *args: str, stdin: str = "", code: int = 0) -> subprocess.CompletedProcess:
    """The CLI as the holder of `key` (as in their shell: $CUSTODY_KEY)."""
    env = {**os.environ, "CUSTODY_KEY": str(key)}
    done = subprocess.run(
        [sys.executable, "-m", "custody", *args, "--home", str(home_path)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == code, done.stderr
    return done


def test_cli_records_users_in_the_ledger_without_secrets(home, cast):
    for name in ("rita", "sam"):
        cast.enroll(home, name, "reviewer")  # an account signs in as a roster member
    home.close()
    admin = cast.key_file("admin")
    cli(home.path, admin, "user", "add", "rita", "--role", "reviewer", "--password-stdin", stdin="rita-password-9\n")
    cli(home.path, admin, "user", "role", "rita", "--role", "admin")
    refused = cli(home.path, admin, "user", "add", "rita", "--password-stdin", stdin="another-pass-9\n", code=2)
    assert "already exists" in refused.stderr
    short = cli(home.path, admin, "user", "add", "sam", "--password-stdin", stdin="short\n", code=2)
    assert "at least 10" in short.stderr
    listed = json.loads(cli(home.path, admin, "user", "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("rita", "admin")]
    shown = json.loads(cli(home.path, admin, "ledger", "show", "--type", "user.", "--json").stdout)
    users = [item["entry"] for item in shown]
    assert [(e["type"], e["body"]) for e in users] == [
        ("user.added/v1", {"name": "rita", "role": "reviewer"}),
        ("user.role_changed/v1", {"name": "rita", "previous": "reviewer", "role": "admin"}),
    ]
    assert all(e["actor"] == "admin" and e["v"] == 2 for e in users)  # signed by the admin's own key
    for name in ("ledger.sqlite", "ledger.sqlite-wal"):
        stored = (home.path / name).read_bytes() if (home.path / name).exists() else b""
        assert b"rita-password-9" not in stored and b"scrypt$" not in stored


def test_only_an_admin_adds_accounts_and_only_for_roster_names(home, cast):
    cast.enroll(home, "rita", "reviewer")
    home.close()
    stranger = cli(
        home.path, cast.key_file("admin"), "user", "add", "zed", "--password-stdin", stdin="zed-password-9\n", code=2
    )
    assert "zed is not on the roster" in stranger.stderr
    not_admin = cli(
        home.path, cast.key_file("rita"), "user", "add", "rita", "--password-stdin", stdin="rita-password-9\n", code=2
    )
    assert "may not" in not_admin.stderr and "admin" in not_admin.stderr
    assert Accounts(home.path).list() == []  # neither left an account behind
