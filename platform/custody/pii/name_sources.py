"""Name lists for the opt-in name recognizer (custody.pii.names), read from installed packages.

- US Census Bureau 1990 frequency lists, first names (5,494) and surnames (88,799): public domain,
  as the `names` package (MIT) ships them.
- Faker's person providers (`faker.providers.person.<locale>`, MIT): the first names and surnames
  of every locale whose names are written in Latin script (about 60 of its 86 locales: Europe,
  Latin America, Africa, India, Turkey, Vietnam, Indonesia, ...). They add the names the census
  lists miss ("Hamish", "Fleur", "Cinzia", "Buhari"). Faker is already a dependency (the demo's
  corpus); a name list's version is the installed Faker's (`sources()` says which).

Everything is lower-cased with apostrophes dropped, the way the recognizer looks words up
(`name_key`); a name with accents is kept as written and also without them ("José", "jose").
Names of several words ("de la Cruz") are left out: the recognizer looks at one word at a time.
"""

from __future__ import annotations

import importlib
import pkgutil
import unicodedata
from functools import lru_cache
from importlib import metadata, resources

_LATIN_END = 0x250  # Basic Latin through Latin Extended-B
_FIRST_ATTRS = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")


def name_key(word: str) -> str:
    """How the lists write a name: lower case, no apostrophes ("O'Brien" -> "obrien")."""
    return word.lower().replace("'", "").replace("’", "")


def _keys(name: str) -> list[str]:
    """`name`'s keys (as written, and without accents), or none if it is not one Latin-script word."""
    if not name or not all((ch.isalpha() and ord(ch) < _LATIN_END) or ch in "'’-" for ch in name):
        return []
    key = name_key(name)
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", key) if not unicodedata.combining(ch))
    return [key] if plain == key else [key, plain]


def _census(name: str) -> list[str]:
    """Names of one census file (`NAME  frequency  cumulative  rank` per line), lower-cased."""
    text = (resources.files("names") / name).read_text(encoding="ascii")
    return [line.split()[0].lower() for line in text.splitlines() if line.strip()]


def _listed(value: object) -> list[str]:
    """A provider attribute's names: Faker keeps them in tuples, lists or weighted dicts."""
    if isinstance(value, dict | list | tuple | set | frozenset):
        return [name for name in value if isinstance(name, str)]
    return []


@lru_cache(maxsize=1)
def faker_names() -> tuple[frozenset[str], frozenset[str]]:
    """First names and surnames of Faker's Latin-script person providers."""
    import faker.providers.person as person

    first: set[str] = set()
    last: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{module.name}"), "Provider", None)
        if provider is None:
            continue
        for attr in (*_FIRST_ATTRS, "last_names"):
            target = last if attr == "last_names" else first
            for name in _listed(provider.__dict__.get(attr)):
                target.update(_keys(name))
    return frozenset(first), frozenset(last)


@lru_cache(maxsize=1)
def census_names() -> tuple[frozenset[str], frozenset[str]]:
    first = frozenset(_census("dist.female.first") + _census("dist.male.first"))
    return first, frozenset(_census("dist.all.last"))


def all_names() -> tuple[frozenset[str], frozenset[str]]:
    """First names and surnames of every source above."""
    census_first, census_last = census_names()
    faker_first, faker_last = faker_names()
    return census_first | faker_first, census_last | faker_last


def sources() -> dict[str, str]:
    """The packages the lists come from, with their installed versions (for benchmarks and configs)."""
    return {"names": metadata.version("names"), "faker": metadata.version("faker")}
