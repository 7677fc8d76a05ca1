"""Every figure the docs quote is tied to the raw output of the benchmark that measured it.

A measured figure in docs/*.md carries a marker right after it (an HTML comment, invisible once
rendered) naming the committed raw JSON in docs/figures/ and the value's path in it:

    37,051 /s <!-- figure: ledger_bench.json#results.[backend=sqlite].figures.0.value -->

- PATH: dot-separated keys; an integer indexes a list; `[key=value]` picks the one list item whose
  `key` is `value`, and `[key=value]*` every such item, summing what the rest of the path finds in
  each; a key with a dot in it is written in double quotes (`"0.80"`).
- Options after the path: `scale=K` multiplies the raw value by K first (`scale=100` for a share
  shown as a percentage, `scale=0.001` for µs shown as ms); `per=PATH` divides it by the value at
  PATH in the same file first (a ratio of two raw figures: `per=...peer_accuracy`).
- A path may end at a string (a line the script printed, such as a `detail`): the number must
  then appear in that string as the doc writes it.
- `<!-- figure-file: NAME.json -->` sets the file for the markers below it that start with `#`.
- The number is the last one before the marker (since the previous marker on the line). It must
  equal the raw value rounded as the doc writes it: to its decimals ("16.1" is 16.05 to 16.15),
  and an integer's trailing zeros are not significant ("14,700" is 14,650 to 14,750). A `k` or
  `M` suffix multiplies by 10^3 or 10^6; "−" is a minus sign.

Not every number with a unit is a measurement of this project. In docs/benchmarks.md every
number that looks like one (a unit such as ms, s, MiB, /s, x, %) must be one of:
- tied by a figure marker as above;
- quoted from another project or a paper, and marked visibly: `(cited: SOURCE)` after it covers
  the figures before it in the same table cell or since the previous marker on that line;
- marked `<!-- not-measured: WHY -->` right after it (a setting such as a shard size, a target,
  the machine, an estimate computed from other figures);
- a bound such as `< 1 ms` or `≥ 30,000/s` (a target, not a result), or inside `code`;
- a measurement whose raw output was never committed: `<!-- untied: WHY -->` right after it, or
  every figure between `<!-- untied-begin: WHY -->` and `<!-- untied-end -->`, with a visible
  note saying so. Their number may only shrink (`MAX_UNTIED`): tie them by committing a rerun.
So a new figure cannot be added to the benchmarks page without saying where it comes from.

Every raw file in docs/figures/ records the machine, the date and the command that produced it.
Pure file reading: well under a second.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FIGURES = DOCS / "figures"

MARKER = re.compile(r"<!--\s*(figure-file|figure|not-measured|untied-begin|untied-end|untied)\b:?\s*(.*?)\s*-->")
CITED = re.compile(r"\(cited:[^)]*\)")
NUMBER = re.compile(r"(?<![\w.])([-−+]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s?([kM])(?![\w]))?")
UNIT = (
    r"(?:ms|µs|ns|s|min|minutes|hours|MB|MiB|GB|GiB|KiB|kB|(?:x|×)(?!\s?\d)|%|CPU-s|CPU-seconds|"
    r"/s|[A-Za-z]+/s)(?![\w/])"
)
MEASUREMENT = re.compile(
    r"(?<![\w.])[~≈]?[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[–-](?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)?"
    r"(?:\s?[kM])?\s?" + UNIT
)
BOUND = re.compile(r"(?:[<>≤≥]|&lt;|&gt;)\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")

# Pages whose figures must all be tied, cited or marked (the rule above). A new page joins the
# list once its figures are marked.
STRICT_PAGES = [
    "benchmarks.md",
    "dashboard.md",
    "datasets.md",
    "ledger.md",
    "pii.md",
    "policies.md",
    "provenance.md",
    "reports.md",
    "runs.md",
    "scale.md",
    "stages.md",
    "toxicity.md",
    "training.md",
    "trust.md",
    "witness.md",
]
# Figures on those pages measured before raw outputs were kept (see the report of issue 17). Every
# one has since been rerun and tied, or dropped: a new figure must come with its raw output.
MAX_UNTIED = 0


def doc_pages() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), REPO / "README.md"]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced and not line.startswith("    "):
            out.append((number, line))
    return out


@dataclass(frozen=True)
class Figure:
    page: str
    line: int
    shown: str  # the number as the doc writes it
    file: str
    path: str
    scale: float
    per: str | None = None

    def __str__(self) -> str:
        per = f" per {self.per}" if self.per else ""
        return f"{self.page}:{self.line} {self.shown} <- {self.file}#{self.path}{per}"


def figures() -> list[Figure]:
    found = []
    for page in doc_pages():
        default_file = None
        for line_no, line in prose_lines(page):
            previous_end = 0
            for marker in MARKER.finditer(line):
                kind, argument = marker.group(1), marker.group(2)
                if kind == "figure-file":
                    default_file = argument
                elif kind == "figure":
                    target, *options = _words(argument)
                    file, _, path = target.partition("#")
                    file = file or default_file or ""
                    scale, per = 1.0, None
                    for option in options:
                        key, _, value = option.partition("=")
                        assert key in ("scale", "per"), f"{page.name}:{line_no}: unknown marker option {option!r}"
                        if key == "scale":
                            scale = float(value)
                        else:
                            per = value
                    before = line[previous_end : marker.start()]
                    numbers = list(NUMBER.finditer(_strip_code(before)))
                    shown = numbers[-1].group(0) if numbers else ""
                    found.append(Figure(page.name, line_no, shown, file, path, scale, per))
                previous_end = marker.end()
    return found


def _words(argument: str) -> list[str]:
    """A marker's argument split at spaces outside brackets and double quotes."""
    words, current, depth, quoted = [], "", 0, False
    for char in argument:
        if char == '"':
            quoted = not quoted
        elif char == "[" and not quoted:
            depth += 1
        elif char == "]" and not quoted:
            depth -= 1
        if char == " " and depth == 0 and not quoted:
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    return [*words, current] if current else words


def _strip_code(text: str) -> str:
    return INLINE_CODE.sub(lambda m: " " * len(m.group(0)), text)


def path_segments(path: str) -> list[str]:
    segments, current, depth, quoted = [], "", 0, False
    for char in path:
        if char == '"' and depth == 0:
            quoted = not quoted
            continue
        if char == "[" and not quoted:
            depth += 1
        elif char == "]" and not quoted:
            depth -= 1
        if char == "." and depth == 0 and not quoted:
            segments.append(current)
            current = ""
        else:
            current += char
    segments.append(current)
    return segments


@cache
def raw(file: str) -> Any:
    return json.loads((FIGURES / file).read_text(encoding="utf-8"))


def follow(document: Any, path: str) -> Any:
    return _follow(document, path_segments(path))


def _follow(node: Any, segments: list[str]) -> Any:
    for position, segment in enumerate(segments):
        if segment.startswith("[") and segment.endswith(("]", "]*")):
            key, _, value = segment[1 : segment.rindex("]")].partition("=")
            matches = [item for item in node if isinstance(item, dict) and str(item.get(key)) == value]
            if segment.endswith("*"):  # every match: the sum of what the rest of the path finds in each
                assert matches, f"{segment}: no list item matches"
                return sum(_follow(item, segments[position + 1 :]) for item in matches)
            if len(matches) != 1:
                raise LookupError(f"{segment}: {len(matches)} list items match")
            node = matches[0]
        elif isinstance(node, list):
            node = node[int(segment)]
        else:
            if segment not in node:
                raise LookupError(f"no key {segment!r} (keys: {', '.join(map(str, node))})")
            node = node[segment]
    return node


def parse_shown(shown: str) -> tuple[float, float]:
    """The number a doc shows and half a unit of its last significant digit."""
    match = NUMBER.fullmatch(shown.strip())
    assert match, f"not a number: {shown!r}"
    sign, whole, decimals, suffix = match.groups()
    whole = whole.replace(",", "")
    value = float(whole + ("." + decimals if decimals else ""))
    if decimals:
        half = 0.5 * 10 ** -len(decimals)
    else:
        zeros = len(whole) - len(whole.rstrip("0")) if whole.strip("0") else 0
        half = 0.5 * 10**zeros
    factor = {"k": 1e3, "M": 1e6}.get(suffix or "", 1.0)
    if sign in ("-", "−"):
        value = -value
    return value * factor, half * factor


ALL_FIGURES = figures()


def test_the_docs_tie_figures_to_raw_files() -> None:
    assert len(ALL_FIGURES) > 100, "the markers are not being found"
    assert {f.page for f in ALL_FIGURES} >= {"benchmarks.md"}


@pytest.mark.parametrize("figure", ALL_FIGURES, ids=str)
def test_figure_matches_its_raw_file(figure: Figure) -> None:
    assert figure.shown, f"{figure}: no number before the marker"
    assert figure.file, f"{figure}: no raw file named (and no figure-file above it)"
    assert (FIGURES / figure.file).is_file(), f"{figure}: docs/figures/{figure.file} is not committed"
    value = follow(raw(figure.file), figure.path)
    if isinstance(value, str):
        printed = {parse_shown(m.group(0))[0] for m in NUMBER.finditer(value)}
        assert parse_shown(figure.shown)[0] in printed, f"{figure}: not in {value!r}"
        return
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{figure}: {value!r} is not a number"
    shown, half = parse_shown(figure.shown)
    measured = value * figure.scale
    if figure.per is not None:
        measured /= follow(raw(figure.file), figure.per)
    assert abs(measured - shown) <= half * (1 + 1e-9) + 1e-12, (
        f"{figure}: the raw value {value!r} (x{figure.scale:g} = {measured:g}) does not round to {figure.shown}"
    )


def raw_files() -> list[Path]:
    return sorted(FIGURES.glob("*.json"))


@pytest.mark.parametrize("path", raw_files(), ids=lambda p: p.name)
def test_raw_file_records_machine_date_and_command(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    for key in ("machine", "date", "command"):
        assert document.get(key), f"{path.name} does not record its {key}"
    assert re.match(r"\d{4}-\d{2}-\d{2}", document["date"]), f"{path.name}: date {document['date']!r}"
    scripts = re.findall(r"bench/\w+\.py", document["command"])
    assert scripts, f"{path.name}: the command {document['command']!r} runs no bench/ script"
    assert all((REPO / s).is_file() for s in scripts), f"{path.name}: {scripts} not committed"


def test_every_raw_file_is_quoted() -> None:
    quoted = {f.file for f in ALL_FIGURES}
    assert {p.name for p in raw_files()} <= quoted, "a raw file that no doc quotes"


def scan(page: Path) -> tuple[list[str], list[str]]:
    """(unmarked figures, untied figures) of a page: the rule in the module docstring."""
    problems, untied = [], []
    in_untied = False
    for line_no, line in prose_lines(page):
        text = _strip_code(line)
        covers: list[tuple[int, int, str]] = []  # (start, end, kind) of markers and cited marks
        covers += [(m.start(), m.end(), m.group(1)) for m in MARKER.finditer(text)]
        covers += [(m.start(), m.end(), "cited") for m in CITED.finditer(text)]
        covers.sort()
        region = [(start, kind) for start, _, kind in covers if kind in ("untied-begin", "untied-end")]
        for m in MEASUREMENT.finditer(text):
            where = f"{page.name}:{line_no}: {m.group(0)!r} in {line.strip()[:100]!r}"
            if BOUND.search(text[: m.start()]):
                continue
            if any(start <= m.start() < end for start, end, _ in covers):
                continue  # inside a marker's own text
            inside = in_untied
            for start, kind in region:
                if start < m.start():
                    inside = kind == "untied-begin"
            after = [c for c in covers if c[0] >= m.end() and c[2] not in ("untied-begin", "untied-end")]
            kind = None
            if after:
                start, _, next_kind = after[0]
                between = text[m.end() : start]
                if next_kind == "cited" and "|" not in between:
                    kind = "cited"
                elif next_kind in ("figure", "not-measured", "untied") and not NUMBER.search(between):
                    kind = next_kind
            if kind in ("figure", "not-measured", "cited"):
                continue
            if kind == "untied" or inside:
                untied.append(where)
                continue
            problems.append(where)
        for _, kind in region:
            in_untied = kind == "untied-begin"
    assert not in_untied, f"{page.name}: an untied-begin without its untied-end"
    return problems, untied


@pytest.mark.parametrize("page", STRICT_PAGES)
def test_no_unmarked_figures(page: str) -> None:
    problems, _ = scan(DOCS / page)
    assert not problems, "figures with no marker and no cited mark:\n" + "\n".join(problems)


def test_untied_figures_only_decrease() -> None:
    untied = [where for page in STRICT_PAGES for where in scan(DOCS / page)[1]]
    assert len(untied) <= MAX_UNTIED, (
        f"{len(untied)} untied figures, at most {MAX_UNTIED}: commit the raw output of a new figure and tie it\n"
        + "\n".join(untied)
    )
