"""Choosing an executor (spec, CLI helpers) and the home's artifact location; no cluster needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.home import Home, HomeError
from custody.pipeline.executors import ExecutorError, LocalExecutor, make_executor
from custody.runs.spec import SpecError, load_spec

SPEC = """\
schema = 1
name = "scale"

[policy]
file = "default"

[[datasets]]
ref = "corpus@1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_spec_names_its_executor(tmp_path):
    assert load_spec(write(tmp_path, SPEC)).spec.executor.kind == "local"
    table = '\n[executor]\nkind = "ray"\naddress = "10.0.0.1:6379"\nworkers = 8\ncpus_per_worker = 2\nkeep_warm = 300\n'
    executor = load_spec(write(tmp_path, SPEC + table)).spec.executor
    assert (executor.kind, executor.address, executor.workers) == ("ray", "10.0.0.1:6379", 8)
    assert (executor.cpus_per_worker, executor.keep_warm) == (2, 300)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "spark"', "key 'executor.kind'"),
        ('kind = "local"\naddress = "x:1"', "only for kind = 'ray'"),
        ('kind = "ray"\nworkers = 0', "key 'executor.workers'"),
        ('kind = "ray"\ncpus_per_worker = 0', "key 'executor.cpus_per_worker'"),
        ('kind = "local"\ncpus_per_worker = 2', "only for kind = 'ray'"),
        ('kind = "ray"\nnodes = 3', "unknown key 'executor.nodes'"),
        ('kind = "ray"\nkeep_warm = -1', "key 'executor.keep_warm'"),
        ('kind = "ray"\nkeep_warm = inf', "key 'executor.keep_warm'"),
        ('kind = "local"\nkeep_warm = 60', "only for kind = 'ray'"),
    ],
)
def test_bad_executor_tables_name_the_key(tmp_path, table, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write(tmp_path, SPEC + f"\n[executor]\n{table}\n"))


def test_make_executor():
    assert isinstance(make_executor("local"), LocalExecutor)
    assert make_executor("ray", "127.0.0.1:6379", 2).describe() == "ray (127.0.0.1:6379)"
    with pytest.raises(ExecutorError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(ExecutorError, match="only for --executor ray"):
        make_executor("local", "127.0.0.1:6379")
    assert make_executor("ray", None, 1, 2).cpus_per_worker == 2  # one actor, a pool of two scanners
    with pytest.raises(ExecutorError, match="--ray-cpus-per-worker is only for --executor ray"):
        make_executor("local", None, None, 2)
    with pytest.raises(ExecutorError, match="must be above 0"):
        make_executor("ray", None, None, -1)
    assert make_executor("ray", None, None, None, 120).keep_warm == 120
    assert make_executor("ray").keep_warm == 0, "actors stop with the run unless asked"
    with pytest.raises(ExecutorError, match="--ray-keep-warm is only for --executor ray"):
        make_executor("local", None, None, None, 60)
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ExecutorError, match="--ray-keep-warm must be 0 or more seconds"):
            make_executor("ray", None, None, None, bad)


def test_ray_commands_need_a_running_cluster(monkeypatch):
    from typer.testing import CliRunner

    from custody.cli.main import app

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for command in (["ray", "release"], ["ray", "warm"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2
        assert "--ray-address: warm actors live on a running cluster" in result.output


def test_the_home_config_names_a_shared_artifact_folder(tmp_path):
    shared = tmp_path / "shared" / "artifacts"
    home = Home.init(tmp_path / "home", artifacts=str(shared))
    digest = home.store.put_bytes(b"hello")
    home.close()
    assert (shared / "sha256" / digest[:2] / digest[2:]).exists()
    reopened = Home.open(tmp_path / "home")
    assert reopened.store.root == shared and reopened.store.read_bytes(digest) == b"hello"
    assert f'artifacts = "{shared}"' in (tmp_path / "home" / "config.toml").read_text()
    relative = Home.init(tmp_path / "home2", artifacts="file://" + str(tmp_path / "via-url"))
    assert relative.store.root == tmp_path / "via-url"
    relative.close()


def test_object_store_urls_are_refused_with_what_to_do(tmp_path):
    # s3:// is a store of its own (tests/test_store_s3.py); other object stores are to be mounted
    with pytest.raises(HomeError, match=r"gs:// storage is not supported; use an s3:// bucket .*, or mount it"):
        Home.init(tmp_path / "home", artifacts="gs://bucket/custody")
    assert not (tmp_path / "home").exists(), "nothing half-made"
