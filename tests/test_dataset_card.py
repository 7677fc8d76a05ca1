"""Dataset cards: the template, and every error a card can have (each names the key and line)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, CardError, DatasetCard, load_card, parse_card

MINIMAL = '[dataset]\ntitle = "Tiny Shakespeare"\n'


def line_of(text: str, needle: str) -> int:
    """1-based number of the (only) line containing `needle`."""
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def card_error(text: str, source: str = "card.toml") -> str:
    with pytest.raises(CardError) as caught:
        parse_card(text, source)
    message = str(caught.value)
    assert "\n" not in message, "card errors are one line"
    return message


# -- the template -------------------------------------------------------------------------------


def test_template_parses_with_every_section() -> None:
    card = parse_card(CARD_TEMPLATE)
    assert card.dataset.title == "Example web text"
    assert card.sources[0].kind == "scraped"
    assert card.sources[0].retrieved_at == dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    assert card.collection.time_frame is not None and card.collection.time_frame.start == dt.date(2026, 1, 1)
    assert card.crawl.robots_txt_respected is True
    assert card.personal_data.present == "unknown"
    assert card.access.confidentiality == "internal"
    assert card.splits[0].role == "train"
    assert card.license.declared == "CC-BY-4.0"
    # Every section of the model is shown in the template.
    assert set(tomllib.loads(CARD_TEMPLATE)) | {"preparation"} == set(DatasetCard.model_fields)
    # value(): dotted access; empty strings and lists count as absent.
    assert card.value("governance.owner") == "data-platform@example.org"
    assert card.value("personal_data.anonymization") is None
    assert card.value("personal_data.categories") is None
    assert card.value("nope.nothing") is None


def test_minimal_card_and_json_round_trip() -> None:
    card = parse_card(MINIMAL)
    assert card.sources == [] and card.license.declared is None
    full = parse_card(CARD_TEMPLATE)
    assert DatasetCard.model_validate(full.as_json()).as_json() == full.as_json()


def test_card_template_command_output_parses(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dataset", "card-template"])
    assert result.exit_code == 0
    assert result.stdout == CARD_TEMPLATE
    path = tmp_path / "card.toml"
    path.write_text(result.stdout, encoding="utf-8")
    assert load_card(path) == parse_card(CARD_TEMPLATE)
    # The real console script, too (its output is what users redirect into a file).
    proc = subprocess.run(
        [sys.executable, "-m", "custody", "dataset", "card-template"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout == CARD_TEMPLATE


# -- unknown keys: the key and its line ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "key", "needle"),
    [
        (lambda t: "titel = 'x'\n" + t, "titel", "titel ="),
        (
            lambda t: t.replace('modality = ["text"]', 'modality = ["text"]\nlanguage = ["en"]'),
            "dataset.language",
            "language =",
        ),
        (
            lambda t: t.replace('kind = "scraped"', 'kind = "scraped"\nlicence = "MIT"'),
            "sources.0.licence",
            "licence =",
        ),
        (lambda t: t.replace("[governance]", "[governance]\nownr = 'x'"), "governance.ownr", "ownr ="),
        (lambda t: t + "\n[extra]\nfoo = 1\n", "extra", "[extra]"),
        (lambda t: t.replace("[license]", "[licence]"), "licence", "[licence]"),
        (lambda t: t + '\n[[sources]]\nname = "second"\nkind = "public"\nnmae = "typo"\n', "sources.1.nmae", "nmae ="),
        (lambda t: t.replace("[crawl]", "[crawl]\ncrawl.depth = 3"), "crawl.crawl", "crawl.depth"),
    ],
)
def test_unknown_key_names_key_and_line(edit, key: str, needle: str) -> None:
    text = edit(CARD_TEMPLATE)
    message = card_error(text)
    assert message == f"card.toml:{line_of(text, needle)}: unknown key '{key}'"


def test_unknown_key_in_inline_table_names_line() -> None:
    text = CARD_TEMPLATE.replace("end = 2026-01-31 }", "end = 2026-01-31, zone = 'UTC' }")
    assert card_error(text) == (f"card.toml:{line_of(text, 'zone =')}: unknown key 'collection.time_frame.zone'")


def test_unknown_key_in_inline_table_names_key() -> None:
    text = CARD_TEMPLATE.replace("end = 2026-01-31 }", "end = 2026-01-31, zone = 'UTC' }")
    assert "unknown key 'collection.time_frame.zone'" in card_error(text)


# -- wrong types and bad enum values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('title = "Example web text"', "title = 5", "dataset.title"),
        ('modality = ["text"]', 'modality = "text"', "dataset.modality"),
        ('top_domains = ["example.org"]', "top_domains = [1, 2]", "crawl.top_domains.0"),
        ("robots_txt_respected = true", "robots_txt_respected = [true]", "crawl.robots_txt_respected"),
        ('name = "Example crawl 2026-01"', "name = 2026-01-01", "sources.0.name"),
        ('uri = "https://example.org/crawl/2026-01"', 'digest = "md5:abc"', "sources.0.digest"),
        ("time_frame = { start = 2026-01-01, end = 2026-01-31 }", 'time_frame = "January"', "collection.time_frame"),
        ('intended = ["language-model pretraining"]', 'intended = "pretraining"', "use.intended"),
        ('owner = "data-platform@example.org"', "owner = { team = 'x' }", "governance.owner"),
    ],
)
def test_wrong_type_names_key_and_line(old: str, new: str, key: str) -> None:
    assert old in CARD_TEMPLATE
    text = CARD_TEMPLATE.replace(old, new)
    message = card_error(text)
    assert message.startswith(f"card.toml:{line_of(text, new)}: key '{key}': "), message


@pytest.mark.parametrize("value", ['"yes"', "1"])
def test_boolean_fields_refuse_strings_and_integers(value: str) -> None:
    text = CARD_TEMPLATE.replace("robots_txt_respected = true", f"robots_txt_respected = {value}")
    assert "crawl.robots_txt_respected" in card_error(text)


@pytest.mark.parametrize(
    ("old", "new", "key", "allowed"),
    [
        ('kind = "scraped"', 'kind = "borrowed"', "sources.0.kind", "'public'"),
        ('present = "unknown"', 'present = "maybe"', "personal_data.present", "'yes', 'no' or 'unknown'"),
        ('confidentiality = "internal"', 'confidentiality = "secret"', "access.confidentiality", "'restricted'"),
        ('role = "train"', 'role = "holdout"', "splits.0.role", "'validation'"),
    ],
)
def test_bad_enum_value_names_key_line_and_choices(old: str, new: str, key: str, allowed: str) -> None:
    text = CARD_TEMPLATE.replace(old, new)
    message = card_error(text)
    assert message.startswith(f"card.toml:{line_of(text, new)}: key '{key}': "), message
    assert allowed in message


def test_bad_enum_in_second_source_names_its_line() -> None:
    text = CARD_TEMPLATE + '\n[[sources]]\nname = "Second"\nkind = "borrowed"\n'
    message = card_error(text)
    assert message.startswith(f"card.toml:{line_of(text, 'borrowed')}: key 'sources.1.kind'"), message


def test_bad_enum_in_second_source_names_its_key() -> None:
    text = CARD_TEMPLATE + '\n[[sources]]\nname = "Second"\nkind = "borrowed"\n'
    assert "key 'sources.1.kind'" in card_error(text)


# -- missing and empty required keys -------------------------------------------------------------------------


def test_missing_title() -> None:
    text = CARD_TEMPLATE.replace('title = "Example web text"\n', "")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("[dataset]"))  # its table
    assert card_error(text) == f"card.toml:{line}: required key 'dataset.title' is missing"


def test_missing_dataset_table() -> None:
    assert card_error("[license]\ndeclared = 'MIT'\n") == "card.toml: required key 'dataset' is missing"
    assert card_error("") == "card.toml: required key 'dataset' is missing"


def test_empty_title() -> None:
    message = card_error('[dataset]\ntitle = ""\n')
    assert message.startswith("card.toml:2: key 'dataset.title': ")


def test_source_needs_name_and_kind() -> None:
    text = MINIMAL + "[[sources]]\nname = 'Wikipedia'\n"
    line = text.splitlines().index("[[sources]]") + 1
    assert card_error(text) == f"card.toml:{line}: required key 'sources.0.kind' is missing"


# -- not TOML, not UTF-8, not there ---------------------------------------------------------------------------


def test_not_toml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[dataset]\ntitle = "x"\nthis is not toml\n', encoding="utf-8")
    with pytest.raises(CardError) as caught:
        load_card(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: not valid TOML: ")


def test_duplicate_table_is_not_toml() -> None:
    assert "not valid TOML" in card_error(MINIMAL + "[dataset]\n")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[dataset]\ntitle = "Café"\n'.encode("latin-1"))
    with pytest.raises(CardError, match=r"card is not UTF-8 \(byte 22\)"):
        load_card(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="card file not found"):
        load_card(tmp_path / "nope.toml")
    with pytest.raises(CardError, match="cannot read card"):
        load_card(tmp_path)


# -- card-check -----------------------------------------------------------------------------------------------


def test_card_check_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.toml"
    good.write_text(CARD_TEMPLATE, encoding="utf-8")
    result = runner.invoke(app, ["dataset", "card-check", str(good)])
    assert result.exit_code == 0 and "valid dataset card" in result.stdout

    bad = tmp_path / "bad.toml"
    text = CARD_TEMPLATE.replace("[governance]", "[governance]\nownr = 'x'")
    bad.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["dataset", "card-check", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}:{line_of(text, 'ownr')}: unknown key 'governance.ownr'"

    for path, expected in ((tmp_path / "missing.toml", "card file not found"),):
        result = runner.invoke(app, ["dataset", "card-check", str(path)])
        assert result.exit_code == 2 and expected in result.stderr
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[dataset]\ntitle = '\xe9'\n")
    result = runner.invoke(app, ["dataset", "card-check", str(latin)])
    assert result.exit_code == 2 and "not UTF-8" in result.stderr and "Traceback" not in result.output


def test_register_refuses_a_bad_card_before_reading_data(home, engineer_key: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "To be, or not to be"}\n', encoding="utf-8")
    card = tmp_path / "card.toml"
    card.write_text(MINIMAL + "[access]\nconfidentiality = 'secret'\n", encoding="utf-8")
    size = home.ledger.size
    result = CliRunner().invoke(
        app,
        [
            "dataset",
            "register",
            str(data),
            "--name",
            "d",
            "--version",
            "1",
            "--card",
            str(card),
            "--home",
            str(home.path),
        ],
    )
    assert result.exit_code == 2
    assert f"{card}:4: key 'access.confidentiality'" in result.stderr
    assert home.ledger.size == size
