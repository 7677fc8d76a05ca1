"""custody.licenses: SPDX expressions, categories, free-text names, and license text detection."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from custody.licenses import (
    CATEGORIES,
    LicenseDetector,
    ParsedExpression,
    category_of_expression,
    category_of_id,
    classify_license_name,
    declared_licenses,
    license_name_to_spdx,
    most_restrictive,
    parse_expression,
)
from custody.licenses.categories import listed_ids

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SPDX_TEXTS = SHARED_DATA / "license_texts_spdx" / "text"
DPI = SHARED_DATA / "license_metadata_dpi" / "data.jsonl"


@pytest.fixture(scope="module")
def detector() -> LicenseDetector:
    return LicenseDetector.default()


def spdx_text(license_id: str) -> str:
    path = SPDX_TEXTS / f"{license_id}.txt"
    if not path.is_file():
        pytest.fail(f"shared license text not found: {path}")
    return path.read_text(encoding="utf-8")


def reflow(text: str, width: int = 60) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width) for p in paragraphs)


def new_copyright(text: str) -> str:
    replaced, count = re.subn(r"(?im)^[ \t]*copyright\b.*$", "Copyright (c) 2019 Jane Doe", text, count=1)
    return replaced if count else "Copyright (c) 2019 Jane Doe\n\n" + text


# ---------------------------------------------------------------------------------------------
# SPDX expressions


@pytest.mark.parametrize(
    ("expression", "normalized", "ids"),
    [
        ("MIT", "MIT", ["MIT"]),
        ("mit", "MIT", ["MIT"]),
        ("apache-2.0 or mit", "Apache-2.0 OR MIT", ["Apache-2.0", "MIT"]),
        ("GPL-3.0", "GPL-3.0-only", ["GPL-3.0-only"]),  # deprecated id -> current
        ("GPL-2.0+", "GPL-2.0-or-later", ["GPL-2.0-or-later"]),
        (
            "(MIT OR Apache-2.0) AND BSD-3-Clause",
            "(MIT OR Apache-2.0) AND BSD-3-Clause",
            ["MIT", "Apache-2.0", "BSD-3-Clause"],
        ),
        ("LicenseRef-Apache AND MIT", "LicenseRef-Apache AND MIT", ["LicenseRef-Apache", "MIT"]),  # kept as written
        ("DocumentRef-spdx-doc:LicenseRef-1 OR 0BSD", "DocumentRef-spdx-doc:LicenseRef-1 OR 0BSD", None),
        ("NOASSERTION", "NOASSERTION", ["NOASSERTION"]),
        ("none", "NONE", ["NONE"]),
    ],
)
def test_parse_valid_expressions(expression: str, normalized: str, ids: list[str] | None) -> None:
    parsed = parse_expression(expression)
    assert parsed.error is None and parsed.ok
    assert parsed.normalized == normalized
    assert parsed.original == expression
    if ids is not None:
        assert parsed.license_ids == ids


def test_with_exception_is_split_out() -> None:
    parsed = parse_expression("GPL-2.0-or-later WITH classpath-exception-2.0")
    assert parsed.normalized == "GPL-2.0-or-later WITH Classpath-exception-2.0"
    assert parsed.license_ids == ["GPL-2.0-or-later"]
    assert parsed.exceptions == ["Classpath-exception-2.0"]


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "MIT AND",
        "(MIT",
        "MIT OR (Apache-2.0",
        "MIT OR OR Apache-2.0",
        "MIT/Apache-2.0",
        "MIT WITH Apache-2.0",
        "Apache 2.0",
        "MIT WITH Foo-exception",
        None,
        42,
    ],
)
def test_bad_expressions_are_findings_not_exceptions(expression) -> None:
    parsed = parse_expression(expression)
    assert isinstance(parsed, ParsedExpression)
    assert parsed.error and not parsed.ok
    assert parsed.normalized is None and parsed.license_ids == []
    assert category_of_expression(parsed) == "unknown"


def test_unknown_license_id_is_an_error() -> None:
    parsed = parse_expression("MIT OR Foo-Bar-1.0")
    assert parsed.error is not None and "Foo-Bar-1.0" in parsed.error


# ---------------------------------------------------------------------------------------------
# Categories


def test_categories_order() -> None:
    assert CATEGORIES == (
        "public-domain",
        "permissive",
        "weak-copyleft",
        "strong-copyleft",
        "no-derivatives",
        "non-commercial",
        "proprietary",
        "unknown",
    )


@pytest.mark.parametrize(
    ("spdx_id", "category"),
    [
        ("CC0-1.0", "public-domain"),
        ("Unlicense", "public-domain"),
        ("MIT", "permissive"),
        ("mit", "permissive"),
        ("Apache-2.0", "permissive"),
        ("CC-BY-4.0", "permissive"),
        ("CC-BY-2.5-AU", "permissive"),  # pattern rule
        ("CC-BY-SA-4.0", "weak-copyleft"),
        ("CC-BY-SA-2.0-UK", "weak-copyleft"),
        ("ODbL-1.0", "weak-copyleft"),
        ("LGPL-2.1", "weak-copyleft"),  # deprecated form
        ("MPL-2.0", "weak-copyleft"),
        ("GPL-3.0", "strong-copyleft"),
        ("GPL-2.0+", "strong-copyleft"),
        ("AGPL-3.0-or-later", "strong-copyleft"),
        ("GFDL-1.2-no-invariants-only", "strong-copyleft"),
        ("CC-BY-ND-4.0", "no-derivatives"),
        ("CC-BY-ND-3.0-DE", "no-derivatives"),
        ("CC-BY-NC-4.0", "non-commercial"),
        ("CC-BY-NC-ND-4.0", "non-commercial"),  # NC beats ND
        ("CC-BY-NC-SA-2.0-FR", "non-commercial"),
        ("LicenseRef-my-terms", "proprietary"),
        ("NOASSERTION", "unknown"),
        ("NONE", "unknown"),
        (None, "unknown"),
        ("", "unknown"),
        ("Beerware", "unknown"),  # a valid SPDX id nobody reviewed here
        ("Not-A-License", "unknown"),
    ],
)
def test_category_of_id(spdx_id, category: str) -> None:
    assert category_of_id(spdx_id) == category


def test_table_lists_every_reference_license(detector: LicenseDetector) -> None:
    listed = listed_ids()
    shipped = detector.license_ids
    assert len(shipped) == 59
    for license_id in shipped:
        assert license_id.lower() in listed, f"{license_id} is not listed in categories.toml"
        assert category_of_id(license_id) != "unknown"
    if SPDX_TEXTS.is_dir():
        assert sorted(shipped) == sorted(p.stem for p in SPDX_TEXTS.glob("*.txt"))


@pytest.mark.parametrize(
    ("expression", "category"),
    [
        ("MIT OR GPL-3.0-only", "permissive"),  # OR: the licensee picks the least restrictive
        ("MIT AND GPL-3.0-only", "strong-copyleft"),  # AND: all apply
        ("CC-BY-NC-4.0 OR CC-BY-SA-4.0", "weak-copyleft"),
        ("(MIT OR CC-BY-NC-4.0) AND CC-BY-ND-4.0", "no-derivatives"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "strong-copyleft"),
        ("CC0-1.0 AND LicenseRef-vendor", "proprietary"),
        ("MIT AND NOASSERTION", "unknown"),
        ("MIT OR NOASSERTION", "permissive"),
        ("MIT AND", "unknown"),
        ("", "unknown"),
    ],
)
def test_category_of_expression(expression: str, category: str) -> None:
    assert category_of_expression(expression) == category
    assert category_of_expression(parse_expression(expression)) == category


def test_category_of_missing_expression() -> None:
    assert category_of_expression(None) == "unknown"


def test_most_restrictive() -> None:
    assert most_restrictive(["permissive", "weak-copyleft", "public-domain"]) == "weak-copyleft"
    assert most_restrictive(["no-derivatives", "non-commercial"]) == "non-commercial"
    assert most_restrictive(["strong-copyleft", "proprietary"]) == "proprietary"
    assert most_restrictive(["permissive", "unknown"]) == "unknown"
    assert most_restrictive([]) == "unknown"


# ---------------------------------------------------------------------------------------------
# Free-text names


@functools.cache
def dpi_pairs() -> dict[str, set[str]]:
    if not DPI.is_file():
        pytest.fail(f"shared DPI data not found at {DPI}")
    pairs: dict[str, set[str]] = {}
    with DPI.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            for entry, spdx_id in zip(record["licenses"], record["licenses_spdx"], strict=True):
                pairs.setdefault(entry["license"], set()).add(spdx_id)
    return pairs


@pytest.mark.parametrize(
    ("name", "spdx_id"),
    [
        ("MIT License", "MIT"),
        ("Apache License 2.0", "Apache-2.0"),
        ("CC BY-NC 4.0", "CC-BY-NC-4.0"),
        ("GNU General Public License v3.0", "GPL-3.0-only"),
        ("LGPL 2.1", "LGPL-2.1-only"),
        ("CC0 1.0", "CC0-1.0"),
        ("BSD 3-Clause License", "BSD-3-Clause"),
        ("Academic Free License v3.0", "AFL-3.0"),
        ("CC BY-SA 4.0", "CC-BY-SA-4.0"),
        ("CC BY-NC-SA 3.0", "CC-BY-NC-SA-3.0"),
        ("OGL 3.0", "OGL-UK-3.0"),
        ("C-UDA", "C-UDA-1.0"),
    ],
)
def test_real_dpi_names_map_to_their_spdx_id(name: str, spdx_id: str) -> None:
    pairs = dpi_pairs()
    assert name in pairs, f"{name!r} no longer occurs in the DPI data"
    declared = {parse_expression(i).normalized for i in pairs[name] if i}
    assert spdx_id in declared
    assert license_name_to_spdx(name) == spdx_id
    assert classify_license_name(name) == category_of_id(spdx_id)


def test_every_dpi_name_with_an_spdx_id_gets_its_category() -> None:
    wrong = {
        (name, spdx_id)
        for name, ids in dpi_pairs().items()
        for spdx_id in ids
        if spdx_id and classify_license_name(name) != category_of_id(spdx_id)
    }
    assert not wrong


@pytest.mark.parametrize(
    ("name", "spdx_id"),
    [
        ("mit", "MIT"),
        ("The MIT License (MIT)", "MIT"),
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("apache-2.0", "Apache-2.0"),
        ("GPLv3", "GPL-3.0-only"),
        ("gpl-3.0+", "GPL-3.0-or-later"),
        ("GNU Lesser General Public License v2.1 or later", "LGPL-2.1-or-later"),
        ("Creative Commons Attribution-ShareAlike 4.0 International", "CC-BY-SA-4.0"),
        ("Attribution-NonCommercial 4.0 International", "CC-BY-NC-4.0"),
        ("https://creativecommons.org/licenses/by-nc-nd/4.0/legalcode", "CC-BY-NC-ND-4.0"),
        ("Mozilla Public License 2.0", "MPL-2.0"),
        ("ODbL", "ODbL-1.0"),
        ("The Unlicense", "Unlicense"),
        ("Disfl-QA dataset is licensed under CC BY 4.0", "CC-BY-4.0"),
        ("CC BY-SA", None),  # which version?
        ("Apache", None),
        ("MIT OR Apache-2.0", None),  # an expression, not a name
        ("OpenAI", None),
        ("", None),
    ],
)
def test_license_name_to_spdx(name: str, spdx_id: str | None) -> None:
    assert license_name_to_spdx(name) == spdx_id


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("OpenAI", "proprietary"),
        ("Custom", "proprietary"),
        ("Meta Llama3 Community License", "proprietary"),
        ("LDC User Agreement", "proprietary"),
        ("Unspecified", "unknown"),
        ("No License", "unknown"),
        ("Various", "unknown"),
        ("Public Domain", "public-domain"),
        ("Academic Research Purposes Only", "non-commercial"),
        ("Non Commercial", "non-commercial"),
        ("Custom (research-only, non-commercial)", "non-commercial"),
        ("CC BY-SA", "weak-copyleft"),  # every version is share-alike
        ("CC BY", "permissive"),
        ("GPL", "strong-copyleft"),
        ("MIT OR GPL-3.0-only", "permissive"),
        ("LicenseRef-acme-terms", "proprietary"),
        (None, "unknown"),
        ("", "unknown"),
        ("something nobody has heard of", "unknown"),
    ],
)
def test_classify_license_name(name, category: str) -> None:
    assert classify_license_name(name) == category


# ---------------------------------------------------------------------------------------------
# Text detection

NEAR_VARIANTS = [
    "MIT",
    "MIT-0",
    "0BSD",
    "ISC",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "Apache-2.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "GPL-2.0-only",
    "GPL-3.0-only",
    "LGPL-2.1-only",
    "LGPL-3.0-only",
    "AGPL-3.0-only",
]
PERTURBATIONS = {
    "given": lambda t: t,
    "reflowed": reflow,
    "new copyright": new_copyright,
    "first half": lambda t: t[: len(t) // 2],
}


@pytest.mark.parametrize("perturbation", list(PERTURBATIONS))
@pytest.mark.parametrize("license_id", NEAR_VARIANTS)
def test_detects_real_texts(detector: LicenseDetector, license_id: str, perturbation: str) -> None:
    text = PERTURBATIONS[perturbation](spdx_text(license_id))
    found = detector.best(text)
    assert found is not None, f"{license_id} ({perturbation}) not detected"
    assert license_id in found.ids, f"{license_id} ({perturbation}) detected as {found}"
    assert found.method == "text"
    ranked = detector.detect(text)
    assert license_id in ranked[0].ids
    assert [m.score for m in ranked if m.method == "text"] == sorted(
        (m.score for m in ranked if m.method == "text"), reverse=True
    )


def test_identical_texts_form_one_group(detector: LicenseDetector) -> None:
    found = detector.best(spdx_text("GPL-2.0-or-later"))
    assert found is not None
    assert set(found.ids) == {"GPL-2.0-only", "GPL-2.0-or-later"}
    assert ("GPL-3.0-only", "GPL-3.0-or-later") in detector.groups


def test_equivalents_and_digest(detector: LicenseDetector) -> None:
    assert detector.equivalents("GPL-3.0-or-later") == ("GPL-3.0-only", "GPL-3.0-or-later")
    assert detector.equivalents("MIT") == ("MIT",)
    assert detector.equivalents("Not-A-Reference") == ("Not-A-Reference",)
    assert re.fullmatch(r"[0-9a-f]{64}", detector.digest())
    assert detector.digest() == LicenseDetector.default().digest()
    assert LicenseDetector({"a": "one two three four"}).digest() != LicenseDetector({"a": "one two three"}).digest()


def test_custom_copyright_and_holder_names(detector: LicenseDetector) -> None:
    text = spdx_text("BSD-3-Clause").replace("Copyright (c) <year> <owner>.", "Copyright (c) 2017-2021, Acme Corp.")
    text = text.replace("the copyright holder", "Acme Corp.")
    found = detector.best(text)
    assert found is not None and found.license_id == "BSD-3-Clause"


def test_unrelated_text_is_not_a_license(detector: LicenseDetector) -> None:
    prose = "The quick brown fox jumps over the lazy dog. " * 40
    assert detector.best(prose) is None
    assert detector.best("") is None


def test_non_commercial_variant_is_not_the_plain_license(detector: LicenseDetector) -> None:
    # A CC BY text with NonCommercial clauses must not be read as CC-BY-4.0.
    text = spdx_text("CC-BY-NC-4.0")
    found = detector.best(text)
    assert found is not None and found.license_id == "CC-BY-NC-4.0"
    plain = next(m for m in detector.similarity(text, top=10) if m.license_id == "CC-BY-4.0")
    assert plain.score < 0.8


def test_readme_with_spdx_identifier(detector: LicenseDetector) -> None:
    readme = "# Corpus\n\nSentences from forums, cleaned.\n\nSPDX-License-Identifier: CC-BY-SA-4.0\n"
    found = detector.best(readme)
    assert found is not None
    assert (found.license_id, found.method) == ("CC-BY-SA-4.0", "spdx-identifier")


@pytest.mark.parametrize(
    ("readme", "license_id"),
    [
        ("This dataset is licensed under the Creative Commons Attribution 4.0 International License.", "CC-BY-4.0"),
        ("The code is released under the MIT license, see LICENSE for details.", "MIT"),
        ('Licensed under the Apache License, Version 2.0 (the "License");', "Apache-2.0"),
        ("---\nlicense: cc-by-nc-sa-4.0\nlanguage:\n- en\n---\n# Card", "CC-BY-NC-SA-4.0"),
        ("## License\n\nGPL v3\n", "GPL-3.0-only"),
    ],
)
def test_readme_naming_its_license(detector: LicenseDetector, readme: str, license_id: str) -> None:
    found = detector.best(readme)
    assert found is not None and found.license_id == license_id
    assert found.method in ("name-mention", "spdx-identifier")


def test_readme_without_license(detector: LicenseDetector) -> None:
    assert detector.best("# Corpus\n\nSentences from forums. Ask the authors before using them.") is None


def test_license_text_naming_other_licenses_is_not_a_declaration() -> None:
    text = (
        "Terms of this License. Everyone may copy this License. This License applies to the Work. "
        "A Modified Work may be distributed under the MIT License."
    )
    assert declared_licenses(text) == []


def test_full_text_wins_over_a_mention(detector: LicenseDetector) -> None:
    # The README says CC BY 4.0 but ships the MIT text: the text comes first, the mention after.
    text = "This dataset is released under the CC BY 4.0 license.\n\n" + spdx_text("MIT")
    ranked = detector.detect(text)
    assert ranked[0].license_id == "MIT" and ranked[0].method == "text"
    methods = [m.method for m in ranked]
    mention = methods.index("name-mention")
    assert ranked[mention].license_id == "CC-BY-4.0"
    assert all(m.method == "text" and m.score >= 0.8 for m in ranked[:mention])
    assert detector.best(text).license_id == "MIT"


def test_custom_references() -> None:
    custom = LicenseDetector(
        {
            "LicenseRef-alpha": "You may read this data but not share it with anyone outside the lab.",
            "LicenseRef-beta": "You may share this data with anyone, provided you name its authors.",
        }
    )
    found = custom.best("You may share this data with anyone, provided you name its authors.\n")
    assert found is not None and found.license_id == "LicenseRef-beta"
    assert sorted(custom.license_ids) == ["LicenseRef-alpha", "LicenseRef-beta"]


def test_default_detector_needs_only_package_data(tmp_path: Path) -> None:
    """A copy of the package, with no ../shared anywhere near it, detects texts, and nothing it
    opens lies outside the copy and the standard library / site-packages."""
    source = REPO / "platform" / "custody"
    root = tmp_path / "site"
    (root / "custody").mkdir(parents=True)
    shutil.copy(source / "__init__.py", root / "custody" / "__init__.py")
    shutil.copytree(source / "licenses", root / "custody" / "licenses", ignore=shutil.ignore_patterns("__pycache__"))
    mit = spdx_text("MIT").replace("<year> <copyright holders>", "2024 Example Org")
    script = textwrap.dedent(
        """
        import json, sys
        opened = []
        sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
        import custody
        from custody.licenses import LicenseDetector, classify_license_name
        detector = LicenseDetector.default()
        found = detector.best(sys.stdin.read())
        print(json.dumps({
            "package": custody.__file__,
            "found": found.license_id if found else None,
            "category": classify_license_name("CC BY-NC 4.0"),
            "opened": opened,
        }))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=mit,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["package"].startswith(str(root))
    assert report["found"] == "MIT"
    assert report["category"] == "non-commercial"
    forbidden = (REPO.parent / "shared", REPO / "platform")
    touched = [path for path in report["opened"] if Path(path).resolve().is_relative_to(forbidden[0])]
    touched += [path for path in report["opened"] if Path(path).resolve().is_relative_to(forbidden[1])]
    assert not touched, touched
    assert any(path.endswith("reference_texts.jsonl.gz") and path.startswith(str(root)) for path in report["opened"])
