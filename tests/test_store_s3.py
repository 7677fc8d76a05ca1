"""The artifact store in an S3 bucket, against a real S3-compatible server (SeaweedFS) started here.

A home whose config names `artifacts = "s3://..."` registers and checks a dataset with every
artifact landing in the bucket; another process (another machine's cache) and another home read
the same objects, each verified against its digest; an unreachable endpoint or read-only
credentials give one line naming the store and record nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE
from custody.datasets.registry import DatasetRegistry
from custody.home import Home, HomeError
from custody.store import ArtifactError, StoreUnavailable
from custody.store.s3 import S3ArtifactStore
from custody.testing import seaweedfs

BUCKET = "custody-test"
ENGINEER = "tester"


@pytest.fixture(scope="module")
def seaweed():
    """One SeaweedFS server (master, volume, filer, S3 gateway) on loopback ports, with a bucket."""
    try:
        server = seaweedfs.start()
    except seaweedfs.SeaweedUnavailable as exc:
        pytest.fail(str(exc))
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(seaweed, monkeypatch, tmp_path):
    """The writer's credentials in the environment (as on a worker), nothing from ~/.aws; a fresh prefix."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "CUSTODY_ARTIFACT_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    use_keys(monkeypatch, seaweedfs.WRITER)
    return seaweed, f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


def use_keys(monkeypatch, keys: tuple[str, str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[1])


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def keys_under(server, url: str) -> set[str]:
    prefix = url.removeprefix(f"s3://{BUCKET}/") + "/"
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", [])}


def object_name(digest: str) -> str:
    return f"sha256/{digest[:2]}/{digest[2:]}"


@pytest.fixture
def s3_home(s3, cast, tmp_path, monkeypatch):
    """A home whose store is the bucket, an engineer on its roster, and a card file."""
    server, url = s3
    home = cast.init_home(tmp_path / "home", artifacts=url, artifacts_endpoint=server.endpoint)
    cast.enroll(home, ENGINEER, "engineer")
    monkeypatch.setenv("CUSTODY_KEY", str(cast.key_file(ENGINEER)))
    card = tmp_path / "card.toml"
    card.write_text(CARD_TEMPLATE, encoding="utf-8")
    yield server, url, home, card
    home.close()


def register(home: Home, card: Path, data: Path, name: str = "jigsaw"):
    return invoke(
        "dataset", "register", data, "--name", name, "--version", "1", "--card", card, "--id-field", "id",
        "--home", home.path,
    )  # fmt: skip


def jigsaw(shared_data: Path) -> Path:
    return shared_data / "toxicity_jigsaw_sample" / "data.jsonl"


def test_a_dataset_registered_and_checked_on_s3_lives_in_the_bucket(s3_home, shared_data, tmp_path):
    server, url, home, card = s3_home
    result = register(home, card, jigsaw(shared_data))
    assert result.exit_code == 0, result.output
    dataset = DatasetRegistry(home).get("jigsaw@1")
    expected = {dataset.digest, dataset.body["card_digest"], *(s.digest for s in dataset.manifest.shards)}
    assert {object_name(d) for d in expected} <= keys_under(server, url)
    assert not (home.path / "artifacts").exists(), "nothing is kept beside the home but the cache"
    config = (home.path / "config.toml").read_text()
    assert f'artifacts = "{url}"' in config and f'artifacts_endpoint = "{server.endpoint}"' in config
    assert seaweedfs.WRITER[1] not in config and seaweedfs.WRITER[0] not in config, "no credentials in the home"

    checked = invoke("check", "jigsaw@1", "--checks", "provenance,license", "--json", "--home", home.path)
    assert checked.exit_code == 0, checked.output
    results = json.loads(checked.stdout)
    stored = keys_under(server, url)
    for item in results:
        digests = [v for k, v in item.items() if k.endswith("_digest") and isinstance(v, str)]
        assert digests and all(object_name(d.removeprefix("sha256:")) in stored for d in digests), item

    # The bucket's bytes are what is read: a shard that changes there is refused, never cached.
    shard = dataset.manifest.shards[0]
    server.client().put_object(Bucket=BUCKET, Key=f"{url.split('/', 3)[3]}/{object_name(shard.digest)}", Body=b"{}\n")
    reader = Home.open(home.path)
    cached = home.path / "cache" / "artifacts" / object_name(shard.digest)
    cached.unlink()
    with pytest.raises(ArtifactError, match="is corrupted: its bytes no longer match its digest"):
        reader.store.path_for(shard.digest)
    assert not cached.exists()
    reader.close()
    refused = invoke("store", "check", shard.digest, "--home", home.path)
    assert refused.exit_code != 0 and "missing or corrupted" in refused.output


def test_another_process_and_another_home_read_the_same_store(s3_home, cast, shared_data, tmp_path):
    server, url, home, card = s3_home
    assert register(home, card, jigsaw(shared_data)).exit_code == 0
    dataset = DatasetRegistry(home).get("jigsaw@1")

    # Another machine: the same home config, an empty cache of its own, only the environment's keys.
    other_cache = tmp_path / "other-machine-cache"
    script = (
        "import json, sys\n"
        "from custody.home import Home\n"
        "from custody.datasets.registry import DatasetRegistry\n"
        "home = Home.open(sys.argv[1])\n"
        "ds = DatasetRegistry(home).get('jigsaw@1')\n"
        "print(json.dumps({'problems': ds.verify_shards(), 'records': sum(1 for _ in ds.records()),\n"
        "                  'cache': str(home.store.root)}))\n"
    )
    env = {**os.environ, "CUSTODY_ARTIFACT_CACHE": str(other_cache)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(home.path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"problems": [], "records": dataset.manifest.records, "cache": str(other_cache)}
    for shard in dataset.manifest.shards:  # fetched into that machine's cache, verified on the way
        assert (other_cache / object_name(shard.digest)).is_file()

    # Another home on the same bucket: it reads what the first stored, and the first reads its writes.
    second = cast.init_home(tmp_path / "second", artifacts=url, artifacts_endpoint=server.endpoint)
    assert second.store.read_bytes(dataset.body["card_digest"]) == home.store.read_bytes(dataset.body["card_digest"])
    digest = second.store.put_bytes(b"written by the second home\n")
    assert home.store.read_bytes(digest) == b"written by the second home\n"

    # An erasure from one home reaches the others: the bucket's object and their cached copies go.
    assert second.store.erase(digest)
    assert not home.store.exists(digest)
    assert not home.store.path_for(digest).exists()
    with pytest.raises(ArtifactError, match="is not in the store"):
        home.store.read_bytes(digest)
    second.close()


def test_an_unreachable_endpoint_is_one_line_naming_it_and_records_nothing(s3_home, shared_data, cast, tmp_path):
    server, url, home, card = s3_home
    assert register(home, card, jigsaw(shared_data), name="first").exit_code == 0
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens there
    head = home.ledger.head()

    # init refuses before making anything
    made = invoke(
        "init", "--admin", "admin", "--admin-key", str(cast.key_file("admin")) + ".pub",
        "--artifacts", url, "--artifacts-endpoint", dead, "--home", tmp_path / "new-home",
    )  # fmt: skip
    assert made.exit_code == 2, made.output
    assert f"artifact store {url} at {dead} is unreachable" in made.output
    assert len(made.output.strip().splitlines()) == 1
    assert not (tmp_path / "new-home").exists()

    # the server goes away for a home that used it: register and check stop, unrecorded
    config = home.path / "config.toml"
    config.write_text(config.read_text().replace(server.endpoint, dead))
    before = keys_under(server, url)
    for result in (
        register(home, card, jigsaw(shared_data), name="second"),
        invoke("check", "first@1", "--checks", "provenance", "--home", home.path),
    ):
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and f"at {dead} is unreachable" in lines[0], result.output
    assert home.ledger.head() == head, "nothing recorded"
    assert keys_under(server, url) == before
    leftovers = home.path / "cache" / "artifacts" / "tmp"
    assert not leftovers.exists() or not list(leftovers.iterdir())


def test_read_only_credentials_are_a_clear_refusal_and_record_nothing(s3_home, shared_data, monkeypatch):
    server, url, home, card = s3_home
    assert register(home, card, jigsaw(shared_data), name="first").exit_code == 0
    head, before = home.ledger.head(), keys_under(server, url)
    use_keys(monkeypatch, seaweedfs.READER)

    result = register(home, card, jigsaw(shared_data), name="second")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"artifact store {url} at {server.endpoint} refused writing" in lines[0]
    assert "read-only" in lines[0]
    assert home.ledger.head() == head and keys_under(server, url) == before

    # reading is what read-only credentials are for (a training node)
    reader = Home.open(home.path)
    dataset = DatasetRegistry(reader).get("first@1")
    assert dataset.verify_shards() == []
    reader.close()

    use_keys(monkeypatch, ("nobody", "wrong-secret"))
    refused = invoke("store", "put", home.path / "config.toml", "--home", home.path)
    assert refused.exit_code == 2 and "check AWS_ACCESS_KEY_ID" in refused.output, refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_large_artifacts_go_up_in_parts_and_are_confirmed(s3, tmp_path):
    server, url = s3
    store = S3ArtifactStore(url, tmp_path / "cache", server.endpoint)
    store.single_put_limit = store.part_size = 5 << 20  # the smallest part S3 allows
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom((5 << 20) + 12345))
    digest = store.put_file(big)
    assert object_name(digest) in keys_under(server, url)
    assert store.verify(digest)
    fresh = S3ArtifactStore(url, tmp_path / "other-cache", server.endpoint)
    assert fresh.path_for(digest).read_bytes() == big.read_bytes()


def test_bad_locations_are_refused_before_anything_is_made(s3, cast, tmp_path, monkeypatch):
    server, url = s3
    for location, message in (
        ("s3://No_Such/x", "is not an S3 bucket name"),
        (f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x", "does not exist; create it first"),
        ("gs://bucket/x", "gs:// storage is not supported"),
    ):
        with pytest.raises(HomeError, match=message):
            cast.init_home(tmp_path / "home", artifacts=location, artifacts_endpoint=server.endpoint)
        assert not (tmp_path / "home").exists()
    with pytest.raises(HomeError, match="artifacts_endpoint is only for an s3://"):
        cast.init_home(tmp_path / "home", artifacts_endpoint=server.endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreUnavailable, match="no S3 credentials"):
        S3ArtifactStore(url, tmp_path / "cache", server.endpoint).exists("0" * 64)
