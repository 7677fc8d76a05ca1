"""License categories a policy can name, and free-text license names mapped to SPDX ids.

The categories, least to most restrictive for use as LLM training data, are `CATEGORIES`. The
table of which SPDX id falls in which category is data, `data/categories.toml`, kept apart from
the code so that it can be reviewed (each category there says what it means and why the edge
cases sit where they do). Free-text names (the Data Provenance Initiative's vocabulary: "MIT
License", "CC BY-NC 4.0", "OpenAI", "Unspecified") are resolved by normalization rules, the SPDX
License List's ids and names (`data/spdx_names.json`, CC0) and the small tables in
`data/names.toml`.

Combining: for licenses that all apply (`AND`, `WITH`, or a mixture of sources) the most
restrictive category wins, as the DPI does; for a choice (`OR`) the least restrictive wins. A
`WITH` exception only adds permissions, so `X WITH e` is X's category. Anything unparseable or
missing is "unknown", the most restrictive category.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import tomllib
from collections.abc import Iterable
from importlib import resources

from custody.licenses.spdx import ParsedExpression, canonical_id, parse_expression

CATEGORIES = (
    "public-domain",
    "permissive",
    "weak-copyleft",
    "strong-copyleft",
    "no-derivatives",
    "non-commercial",
    "proprietary",
    "unknown",
)
UNKNOWN = "unknown"
_RANK = {name: rank for rank, name in enumerate(CATEGORIES)}


def _data_text(name: str) -> str:
    return resources.files("custody.licenses").joinpath("data", name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The category table


@functools.cache
def _table() -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str]]:
    """(lower-cased id -> category, [(lower-cased glob, category)], category -> description)."""
    data = tomllib.loads(_data_text("categories.toml"))
    if tuple(data["order"]) != CATEGORIES:
        raise ValueError("categories.toml: `order` differs from custody.licenses.categories.CATEGORIES")
    exact: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for category, entry in data["categories"].items():
        if category not in _RANK:
            raise ValueError(f"categories.toml: unknown category {category!r}")
        descriptions[category] = entry.get("description", "")
        for license_id in entry.get("ids", []):
            key = license_id.lower()
            if key in exact and exact[key] != category:
                raise ValueError(f"categories.toml: {license_id} is in both {exact[key]} and {category}")
            exact[key] = category
    patterns = []
    for rule in data.get("patterns", []):
        if rule["category"] not in _RANK:
            raise ValueError(f"categories.toml: unknown category {rule['category']!r}")
        patterns.append((rule["match"].lower(), rule["category"]))
    return exact, patterns, descriptions


def category_descriptions() -> dict[str, str]:
    """Category -> one-line description, from the data table."""
    return dict(_table()[2])


def listed_ids() -> dict[str, str]:
    """Lower-cased SPDX id -> category, for the ids the table names explicitly (no patterns)."""
    return dict(_table()[0])


def _lookup(key: str) -> str | None:
    exact, patterns, _ = _table()
    if key in exact:
        return exact[key]
    for pattern, category in patterns:
        if fnmatch.fnmatchcase(key, pattern):
            return category
    return None


@functools.cache
def category_of_id(spdx_id: str | None) -> str:
    """The category of one SPDX license id (any case; deprecated ids and `+` understood).

    None, "", NOASSERTION and NONE are "unknown"; LicenseRef-* is "proprietary"; a valid id the
    table does not cover is "unknown" too.
    """
    if spdx_id is None or not str(spdx_id).strip():
        return UNKNOWN
    text = str(spdx_id).strip()
    candidates = [text]
    if text.endswith("+"):
        candidates.append(text[:-1])
    canonical = canonical_id(text)
    if canonical and canonical not in candidates:
        candidates.insert(1, canonical)
    for candidate in candidates:
        category = _lookup(candidate.lower())
        if category is not None:
            return category
    return UNKNOWN


def most_restrictive(categories: Iterable[str]) -> str:
    """The most restrictive of `categories`; "unknown" for none at all (or one not in CATEGORIES)."""
    worst = -1
    for category in categories:
        worst = max(worst, _RANK.get(category, _RANK[UNKNOWN]))
    return CATEGORIES[worst] if worst >= 0 else UNKNOWN


def least_restrictive(categories: Iterable[str]) -> str:
    """The least restrictive of `categories`; "unknown" for none at all."""
    ranks = [_RANK.get(category, _RANK[UNKNOWN]) for category in categories]
    return CATEGORIES[min(ranks)] if ranks else UNKNOWN


def _tree_category(tree) -> str:
    kind = tree[0]
    if kind == "id":
        return category_of_id(tree[1])
    if kind == "with":  # an exception only grants more, never less
        return category_of_id(tree[1])
    children = [_tree_category(child) for child in tree[1]]
    return least_restrictive(children) if kind == "or" else most_restrictive(children)


def category_of_expression(expression: ParsedExpression | str | None) -> str:
    """The category of an SPDX expression: OR takes the least restrictive operand, AND and WITH
    the most restrictive; an unparseable, empty or missing expression is "unknown"."""
    if expression is None:
        return UNKNOWN
    parsed = expression if isinstance(expression, ParsedExpression) else parse_expression(expression)
    if parsed.error is not None or parsed.tree is None:
        return UNKNOWN
    return _tree_category(parsed.tree)


# ---------------------------------------------------------------------------------------------
# Free-text names

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_CC_URL = re.compile(r"creativecommons\.org/licenses/([a-z-]+)/(\d(?:\.\d)?)", re.IGNORECASE)
_CC0_URL = re.compile(r"creativecommons\.org/publicdomain/zero/(\d\.\d)", re.IGNORECASE)
_CC_PDM_URL = re.compile(r"creativecommons\.org/publicdomain/mark/(\d\.\d)", re.IGNORECASE)
_APACHE_URL = re.compile(r"apache\.org/licenses/LICENSE-(\d\.\d)", re.IGNORECASE)
_GNU_URL = re.compile(r"gnu\.org/licenses/(a?gpl|lgpl|fdl)(?:-(\d\.\d))?", re.IGNORECASE)
_OSI_URL = re.compile(r"opensource\.org/licenses?/([A-Za-z0-9.+-]+?)(?:\.php|\.html)?/?(?:$|[\s#?])", re.IGNORECASE)

# Phrase rewrites applied to the lower-cased, punctuation-free name, in order.
_PHRASES = [
    (r"\bcreative commons?\b", "cc"),
    (r"\battribution\b", "by"),
    (r"\bnon ?commercial\b", "nc"),
    (r"\bshare ?alike\b", "sa"),
    (r"\bno ?deriv(?:ative)?s?(?: works)?\b", "nd"),
    (r"\bgnu\b", " "),
    (r"\baffero general public license\b", "agpl"),
    (r"\baffero gpl\b", "agpl"),
    (r"\b(?:lesser|library) general public license\b", "lgpl"),
    (r"\blesser gpl\b", "lgpl"),
    (r"\bgeneral public license\b", "gpl"),
    (r"\bfree documentation license\b", "gfdl"),
    (r"\bfdl\b", "gfdl"),
    (r"\bpublic license\b", "license"),
    (r"\bor (?:any )?(?:later|newer|greater)(?: version)?\b", "or later"),
]
_PHRASES_RE = [(re.compile(pattern), replacement) for pattern, replacement in _PHRASES]
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "license",
        "licenses",
        "version",
        "ver",
        "v",
        "international",
        "unported",
        "generic",
        "legal",
        "code",
        "legalcode",
        "deed",
    ]
)
_VERSION = re.compile(r"\d+(?:\.\d+)*")


def _version_token(token: str) -> str:
    while token.endswith(".0") and token.count(".") >= 1:
        token = token[:-2]
    return token


def name_key(name: str) -> str:
    """A normalized key for a license name or id: lower case, no punctuation, no filler words,
    "Creative Commons Attribution-NonCommercial" -> "cc by nc", versions without trailing ".0".

    >>> name_key("Creative Commons Attribution-NonCommercial 4.0 International")
    'cc by nc 4'
    >>> name_key("GNU General Public License v3.0") == name_key("GPL-3.0")
    True
    """
    text = name.lower().replace("licence", "license").replace("&", " and ")
    text = _URL.sub(" ", text)
    text = re.sub(r"(\d)\+", r"\1 or later", text)
    text = re.sub(r"\b([a-z]{2,})v(\d)", r"\1 \2", text)  # gplv3, lgplv2.1
    text = re.sub(r"\b(a?gpl|lgpl|gfdl|mpl|epl|eupl|apache)(\d)", r"\1 \2", text)  # gpl3, apache2
    text = re.sub(r"\bv(\d)", r"\1", text)  # v3.0
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # dots, except inside version numbers
    text = re.sub(r"[^a-z0-9.]+", " ", text)
    text = " ".join(text.split())
    for pattern, replacement in _PHRASES_RE:
        text = pattern.sub(replacement, text)
    tokens: list[str] = []
    for token in text.split():
        if token in _STOPWORDS:
            continue
        if _VERSION.fullmatch(token):
            token = _version_token(token)
        if token not in tokens:
            tokens.append(token)
    return " ".join(tokens)


def _url_id(name: str) -> str | None:
    """An SPDX id for a well-known license URL (Creative Commons, Apache, GNU, OSI), or None."""
    if m := _CC_URL.search(name):
        kind, version = m.group(1).upper(), m.group(2)
        version = version if "." in version else version + ".0"
        return canonical_id(f"CC-{kind}-{version}")
    if m := _CC0_URL.search(name):
        return canonical_id(f"CC0-{m.group(1)}")
    if m := _CC_PDM_URL.search(name):
        return canonical_id(f"CC-PDM-{m.group(1)}")
    if m := _APACHE_URL.search(name):
        return canonical_id(f"Apache-{m.group(1)}")
    if (m := _GNU_URL.search(name)) and m.group(2):
        family = {"fdl": "GFDL"}.get(m.group(1).lower(), m.group(1).upper())
        return canonical_id(f"{family}-{m.group(2)}")
    if m := _OSI_URL.search(name):
        return canonical_id(m.group(1))
    return None


@functools.cache
def _spdx_names() -> dict[str, str]:
    return json.loads(_data_text("spdx_names.json"))


@functools.cache
def _names_data() -> dict:
    return tomllib.loads(_data_text("names.toml"))


@functools.cache
def _name_index() -> dict[str, str]:
    """Normalized key -> canonical SPDX id.

    Keys come from (strongest first) the aliases in names.toml, every SPDX id, and every SPDX
    license name; a key that two sources of the same strength give different ids is dropped as
    ambiguous (e.g. a name shared by two list entries).
    """
    index: dict[str, str] = {}
    for layer in _index_layers():
        ambiguous: set[str] = set()
        found: dict[str, str] = {}
        for key, license_id in layer:
            if not key or key in index:
                continue
            if key in found and found[key] != license_id:
                ambiguous.add(key)
            found.setdefault(key, license_id)
        for key, license_id in found.items():
            if key not in ambiguous:
                index[key] = license_id
    return index


def _index_layers() -> list[list[tuple[str, str]]]:
    names = _spdx_names()
    aliases = []
    for name, license_id in _names_data().get("aliases", {}).items():
        aliases.append((name_key(name), canonical_id(license_id) or license_id))
    ids = [(name_key(license_id), canonical_id(license_id) or license_id) for license_id in names]
    spdx_names = [(name_key(name), canonical_id(license_id) or license_id) for license_id, name in names.items()]
    return [aliases, ids, spdx_names]


@functools.cache
def _terms() -> dict[str, str]:
    terms = {}
    for name, category in _names_data().get("terms", {}).items():
        if category not in _RANK:
            raise ValueError(f"names.toml: unknown category {category!r} for {name!r}")
        terms[name_key(name)] = category
    return terms


def _plain(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces (for keyword rules)."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower().replace("licence", "license")).split())


@functools.cache
def _keyword_rules() -> list[tuple[list[str], str]]:
    rules = []
    for rule in _names_data().get("keywords", []):
        if rule["category"] not in _RANK:
            raise ValueError(f"names.toml: unknown category {rule['category']!r}")
        rules.append(([_plain(phrase) for phrase in rule["phrases"]], rule["category"]))
    return rules


@functools.cache
def _families() -> dict[str, frozenset[str]]:
    """Key without a version -> canonical ids of the keys that add one ("cc by sa" -> CC-BY-SA-*)."""
    families: dict[str, set[str]] = {}
    for candidate, license_id in _name_index().items():
        tokens = candidate.split()
        for cut in range(1, len(tokens)):
            if tokens[cut][0].isdigit():
                families.setdefault(" ".join(tokens[:cut]), set()).add(license_id)
                break
    return {key: frozenset(ids) for key, ids in families.items()}


def _family(key: str) -> frozenset[str]:
    """Canonical ids whose key is `key` followed by a version: "cc by sa" -> CC-BY-SA-1.0, ..."""
    return _families().get(key, frozenset())


# Single-word ids that may be picked out of a longer sentence; others (Fair, JSON, curl, Intel,
# Vim, ...) are ordinary words too often.
_SEARCHABLE_WORDS = frozenset({"mit", "isc", "0bsd", "wtfpl", "unlicense", "zlib", "cc0"})


def _search(key: str) -> str | None:
    """The longest run of words in `key` that is a specific license key (has a version number,
    or is one of a few distinctive one-word ids)."""
    tokens = key.split()
    index = _name_index()
    for length in range(min(len(tokens), 10), 0, -1):
        for start in range(len(tokens) - length + 1):
            window = tokens[start : start + length]
            candidate = " ".join(window)
            if candidate not in index:
                continue
            if length == 1 and candidate not in _SEARCHABLE_WORDS:
                continue
            if length > 1 and not any(token[0].isdigit() for token in window[1:]):
                continue
            return index[candidate]
    return None


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> ParsedExpression:
    """parse_expression, cached for the name functions (which never change what it returns)."""
    return parse_expression(text)


@functools.cache
def license_name_to_spdx(name: str | None) -> str | None:
    """The SPDX id (current form) a free-text license name stands for, or None.

    In order: an SPDX id as such (any case, deprecated forms mapped to the current id, so
    "GPL-3.0" and "GNU General Public License v3.0" give GPL-3.0-only, as SPDX defines the bare
    form); a well-known license URL; the normalized name against SPDX ids, SPDX names and the
    aliases in names.toml; a name without a version whose family has exactly one version ("C-UDA",
    "CC0"); finally the longest specific license name inside a longer sentence ("released under
    the CC BY 4.0 license"). Names that stand for several ids ("CC BY-SA", "Apache") give None;
    `classify_license_name` still gives them a category when the whole family shares one.
    """
    if not name or not name.strip():
        return None
    text = name.strip()
    direct = canonical_id(text)
    if direct is not None and direct.upper() not in ("NOASSERTION", "NONE"):
        return direct
    if (from_url := _url_id(text)) is not None:
        return from_url
    parsed = _parse(text)
    if parsed.ok and len(parsed.license_ids) > 1:
        return None  # an expression, not a name
    key = name_key(text)
    if not key:
        return None
    if key.startswith("by ") and _name_index().get("cc " + key):
        key = "cc " + key  # CC legal code titles: "Attribution-ShareAlike 4.0 International"
    index = _name_index()
    if key in index:
        return index[key]
    if key in _terms():
        return None
    family = _family(key)
    if len(family) == 1:
        return next(iter(family))
    if family:
        return None
    return _search(key)


@functools.cache
def classify_license_name(name: str | None) -> str:
    """The category of a free-text license name (or an SPDX expression).

    An SPDX expression or a name that maps to an SPDX id gets that id's category. Otherwise the
    terms table in names.toml ("OpenAI" and "Custom" -> proprietary; "Unspecified" and
    "No License" -> unknown, like NOASSERTION and NONE; "Public Domain" -> public-domain;
    "Academic Research Purposes Only" -> non-commercial), then the family of a name without a
    version when all its versions share a category ("CC BY-SA" -> weak-copyleft), then keyword
    rules ("non-commercial", "research only", "custom", "agreement", ...), else "unknown".
    """
    if name is None or not name.strip():
        return UNKNOWN
    parsed = _parse(name)
    if parsed.ok:
        return category_of_expression(parsed)
    spdx_id = license_name_to_spdx(name)
    if spdx_id is not None:
        return category_of_id(spdx_id)
    key = name_key(name)
    if key in _terms():
        return _terms()[key]
    family = _family(key) if key else frozenset()
    if family:
        categories = {category_of_id(license_id) for license_id in family}
        if len(categories) == 1:
            return categories.pop()
    padded = f" {key} "
    plain = f" {_plain(name)} "
    for phrases, category in _keyword_rules():
        if any(f" {phrase} " in padded or f" {phrase} " in plain for phrase in phrases):
            return category
    return UNKNOWN
