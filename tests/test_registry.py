"""The one registry of checks and stages: every entry builds under its own name with a canonical
configuration, unknown names are refused with the known ones, settings are checked strictly, and a
third-party package adds a check, a stage and an exporter through Python entry points that the
CLI then runs.

(A parallel stage's local and Ray outputs are compared in test_ray_executor.py, on its cluster.)
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.checks.base import Check
from custody.checks.catalog import CHECKS, CheckError
from custody.cli.main import app
from custody.ledger.entry import canonical_json
from custody.registry import BUILT_IN, Entry, Registry
from custody.reports.exports.catalog import EXPORTERS
from custody.stages.base import Stage, StageError
from custody.stages.catalog import STAGES, pretraining_stages
from test_check_resume import register_shards

PLUGIN = "custody_wordcount"  # the third-party distribution these tests install on sys.path


def _canonical_round_trip(config: dict) -> None:
    encoded = canonical_json(config)
    assert json.loads(encoded) == json.loads(json.dumps(config)), "the config survives canonical JSON unchanged"


@pytest.mark.parametrize("name", CHECKS.names())
def test_every_check_builds_under_its_name_with_a_canonical_config(name: str) -> None:
    cls = CHECKS.load(name)
    assert issubclass(cls, Check) and cls.name == name
    check = CHECKS.build(name)
    assert check.name == name and check.version == CHECKS.version(name)
    assert CHECKS.summary(name) and CHECKS.entry(name).origin == BUILT_IN
    options = CHECKS.options(name)
    assert set(options) == set(CHECKS.option_types(name))
    for key, default in options.items():  # before config(), which may resolve settings from the home
        assert getattr(check, key) == default, f"{name}.{key} defaults to what the registry lists"
    _canonical_round_trip(check.config())


@pytest.mark.parametrize("name", STAGES.names())
def test_every_stage_builds_under_its_name_with_a_canonical_config(name: str, home) -> None:
    cls = STAGES.load(name)
    assert issubclass(cls, Stage) and cls.name == name
    stage = STAGES.build(name, home)
    assert stage.name == name and stage.version == STAGES.version(name)
    assert STAGES.summary(name)
    recorded = stage.recorded_config()
    assert (recorded["stage"], recorded["version"]) == (name, stage.version)
    _canonical_round_trip(recorded)
    assert set(STAGES.options(name)) == set(STAGES.option_types(name))


@pytest.mark.parametrize("name", EXPORTERS.names())
def test_every_exporter_loads_under_its_name(name: str) -> None:
    exporter = EXPORTERS.load(name)
    assert exporter.name == name and callable(exporter.export) and EXPORTERS.summary(name)


def test_the_pretraining_stages_come_in_their_declared_order() -> None:
    assert pretraining_stages() == [e.name for e in STAGES.entries().values() if e.pretraining]
    assert pretraining_stages()[0] == "normalize-unicode", "text is repaired before anything hashes it"


def test_an_unknown_name_is_refused_by_the_registry_with_the_known_names(home) -> None:
    with pytest.raises(CheckError, match=r"^unknown check 'nope' \(available: provenance, license, toxicity, pii\)$"):
        CHECKS.build("nope")
    with pytest.raises(StageError, match=r"^unknown stage 'shred' \(available: normalize-unicode, quality-filter, "):
        STAGES.build("shred", home)
    assert "nope" not in CHECKS and "pii" in CHECKS


def test_settings_are_checked_strictly_and_errors_name_the_unit_and_key() -> None:
    assert CHECKS.build("pii", options={"batch_size": 3}).batch_size == 3
    with pytest.raises(CheckError, match=r"^check pii: option 'batch_size': Input should be a valid integer"):
        CHECKS.build("pii", options={"batch_size": "3"})
    with pytest.raises(CheckError, match=r"^check license: option 'detector': unknown option \(known: min_det"):
        CHECKS.build("license", options={"detector": None})  # a collaborator, not a setting


def test_a_class_must_carry_the_name_it_is_registered_under() -> None:
    wrong = Registry("stage", "custody.tests", StageError, (Entry("upper", "custody.stages.classic:Lowercase"),))
    with pytest.raises(StageError, match=r"stage 'upper' \(custody.stages.classic:Lowercase\) declares name 'lowerc"):
        wrong.load("upper")
    with pytest.raises(ValueError, match="declared twice"):
        Registry("stage", "g", StageError, (Entry("a", "m:A"), Entry("a", "m:B")))


# -- a third-party package ---------------------------------------------------------------------------

PLUGIN_SOURCE = '''
"""A check and a stage from outside custody, registered by entry points."""
from __future__ import annotations

from custody.checks.base import Check, CheckReport, RecordRow
from custody.stages.base import Decision, Stage


class WordCount(Check):
    """flags records longer than a word limit"""

    name = "word-count"
    version = "0.1.0"

    def __init__(self, *, limit: int = 40) -> None:
        self.limit = limit

    def config(self):
        return {"limit": self.limit}

    def scan_shard(self, dataset, shard, emit):
        long = 0
        for record in dataset.shard_records(shard):
            words = len(record.text.split())
            verdict = "flag" if words > self.limit else "pass"
            long += verdict == "flag"
            emit(RecordRow.of(shard.name, record, verdict, "long" if verdict == "flag" else "", float(words)))
        return {"long": long}

    def finish(self, dataset, tallies):
        return CheckReport(summary={"long": sum(t["long"] for t in tallies)})


class Shout(Stage):
    """upper-cases every record"""

    name = "shout"
    version = "0.1.0"
    parallel = True

    def config(self):
        return {}

    def process(self, records):
        for record in records:
            yield Decision(record, "modify", "shouted", text=record.text.upper())
'''


EXPORTER_SOURCE = '''
"""the subject a report is about, as one line"""
name = "word-list"


def export(content):
    return f"{content['subject']}\\n".encode()
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install `custody_wordcount` the way pip would leave it: a module and its dist-info."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE, "utf-8")
    (site / f"{PLUGIN}_export.py").write_text(EXPORTER_SOURCE, "utf-8")
    info = site / f"{PLUGIN}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1.0\n", "utf-8")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
            [custody.checks]
            word-count = {PLUGIN}:WordCount
            pii = {PLUGIN}:WordCount

            [custody.stages]
            shout = {PLUGIN}:Shout

            [custody.exporters]
            word-list = {PLUGIN}_export
            """),
        "utf-8",
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_third_party_package_adds_a_check_a_stage_and_an_exporter_by_entry_points(plugin: Path) -> None:
    assert CHECKS.names()[-1] == "word-count" and STAGES.names()[-1] == "shout"
    assert EXPORTERS.names()[-1] == "word-list" and EXPORTERS.summary("word-list").startswith("the subject")
    assert CHECKS.entry("word-count").origin == PLUGIN
    assert CHECKS.entry("pii").origin == BUILT_IN, "a plug-in cannot take a built-in name"
    assert CHECKS.summary("word-count") == "flags records longer than a word limit"
    assert CHECKS.options("word-count") == {"limit": 40} and CHECKS.option_types("word-count") == {"limit": "int"}
    with pytest.raises(CheckError, match=r"check word-count: option 'limit': Input should be a valid integer"):
        CHECKS.build("word-count", options={"limit": "9"})


def test_the_cli_runs_a_plugged_in_check_stage_and_exporter(plugin: Path, home, engineer_key, tmp_path: Path) -> None:
    register_shards(home, tmp_path / "data", [f"record {n} " + "word " * n for n in range(60)], shards=2)
    runner = CliRunner()
    checked = runner.invoke(app, ["check", "corpus@1", "--checks", "word-count", "--json", "--home", str(home.path)])
    assert checked.exit_code == 0, checked.output
    (result,) = json.loads(checked.stdout)
    assert (result["check"], result["version"], result["records"]) == ("word-count", "0.1.0", 60)
    # Record n has n + 2 words: records 0..38 pass, 39..59 are flagged.
    assert result["summary"]["verdicts"] == {"flag": 21, "pass": 39} and result["summary"]["long"] == 21
    prepared = runner.invoke(
        app, ["prepare", "corpus@1", "--stages", "shout", "--output", "corpus@2", "--home", str(home.path)]
    )
    assert prepared.exit_code == 0, prepared.output
    entry = json.loads(home.storage.entries(0, 1, type_prefix="stage.completed/")[0].entry)
    assert (entry["body"]["stage"], entry["body"]["modified"]) == ("shout", 60)
    out = tmp_path / "datasets.txt"
    exported = runner.invoke(
        app, ["report", "corpus@1", "--format", "word-list", "--out", str(out), "--home", str(home.path)]
    )
    assert exported.exit_code == 0, exported.output
    assert out.read_text("utf-8") == "dataset:corpus@1\n"
    recorded = json.loads(home.storage.entries(0, 1, type_prefix="report.exported/")[0].entry)
    assert recorded["type"] == "report.exported/v2", "a plug-in's export names its package"
    assert (recorded["body"]["format"], recorded["body"]["exporter"]) == ("word-list", f"{PLUGIN} 0.1.0")
    listed = runner.invoke(app, ["catalog"])
    assert listed.exit_code == 0, listed.output
    assert f"  word-count 0.1.0 (from {PLUGIN}): flags records longer than a word limit\n      limit: int = 40\n" in (
        listed.stdout
    )
    assert "{'" not in listed.stdout and "= None" not in listed.stdout, "settings read as a spec writes them"
    assert '      sentences: str = "none"\n' in listed.stdout and "      model: str | None = (unset)\n" in listed.stdout
    described = json.loads(runner.invoke(app, ["catalog", "stages", "--json"]).stdout)
    assert list(described) == ["stages"] and described["stages"][-1]["origin"] == PLUGIN
    dedup = next(item for item in described["stages"] if item["name"] == "dedup-near")
    assert {"name": "threshold", "type": "float", "default": 0.8} in dedup["settings"] and dedup["pretraining"]
    bad = runner.invoke(app, ["catalog", "plugins"])
    assert bad.exit_code == 2 and "KIND 'plugins': choose checks, stages, exporters" in bad.stderr
    unknown = runner.invoke(app, ["check", "corpus@1", "--checks", "word-cont", "--home", str(home.path)])
    assert unknown.exit_code == 2
    assert "--checks: unknown check 'word-cont' (available: provenance, license, toxicity, pii, word-count)" in (
        unknown.stderr
    )
