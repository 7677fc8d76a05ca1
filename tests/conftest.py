"""Shared fixtures: offline settings, shared data, homes, and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUSTODY_ACTOR", "tester")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cast(tmp_path_factory):
    """People with real OpenSSH Ed25519 key files (one session-wide key folder)."""
    from custody.testing.people import Cast

    return Cast(tmp_path_factory.mktemp("keys"))


ENGINEER = "tester"


@pytest.fixture
def engineer_key(home, cast, monkeypatch) -> Path:
    """An engineer on the home's roster, whose key the CLI holds ($CUSTODY_KEY, as in their shell)."""
    cast.enroll(home, ENGINEER, "engineer")
    key = cast.key_file(ENGINEER)
    monkeypatch.setenv("CUSTODY_KEY", str(key))
    return key


@pytest.fixture
def home(tmp_path: Path, cast):
    """A fresh SQLite-backed home whose first admin is `admin` (the cast's key)."""
    created = cast.init_home(tmp_path / "home")
    yield created
    created.close()


@pytest.fixture(scope="module")
def two_cpu_cluster(request) -> Iterator[str]:
    """A one-node Ray cluster with 2 CPUs, this process its driver, for one test module."""
    pytest.importorskip("ray")
    from custody.testing.ray_cluster import joined_cluster

    with joined_cluster(nodes=1, cpus_per_node=2, namespace=request.module.__name__) as address:
        yield address


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a real PostgreSQL server: CI's (CUSTODY_TEST_POSTGRES_URL) or one we start."""
    url = os.environ.get("CUSTODY_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    from custody.testing.postgres import start

    cluster = start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"custody_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
