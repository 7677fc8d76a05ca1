"""Dataset cards: the provenance fields of a dataset (fields 1-14 of docs/provenance.md), in TOML.

Unknown keys and wrong types are errors that name the key and its line. Only `dataset.title`
is required to register; which further fields a dataset must have is the policy's business,
enforced by the provenance check.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from custody.tomlconfig import load_model, where

SourceKind = Literal["public", "licensed", "scraped", "user", "synthetic", "internal"]
Presence = Literal["yes", "no", "unknown"]
Timestamp = dt.datetime | dt.date | str


class CardError(ValueError):
    """A dataset card is not valid; the message names the file, key and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatasetSection(_Strict):
    title: str = Field(min_length=1)
    description: str | None = None
    modality: list[str] = Field(default_factory=list)  # field 2
    languages: list[str] = Field(default_factory=list)
    homepage: str | None = None


class Source(_Strict):  # field 3
    name: str = Field(min_length=1)
    uri: str | None = None
    kind: SourceKind
    license: str | None = None  # SPDX expression
    retrieved_at: Timestamp | None = None
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")


class TimeFrame(_Strict):
    start: Timestamp
    end: Timestamp


class Collection(_Strict):  # field 4
    process: str | None = None
    time_frame: TimeFrame | None = None
    original_purpose: str | None = None
    consent_basis: str | None = None


class Crawl(_Strict):  # field 5
    crawler: str | None = None
    robots_txt_respected: bool | None = None
    tdm_opt_outs_respected: bool | None = None
    top_domains: list[str] = Field(default_factory=list)


class PreparationStep(_Strict):  # field 6 (custody records its own stages as lineage)
    op: str
    tool: str | None = None
    description: str | None = None


class Annotation(_Strict):  # field 7
    who: str | None = None
    how: str | None = None
    guidelines: str | None = None
    agreement: str | None = None


class Suitability(_Strict):  # field 8
    known_gaps: list[str] = Field(default_factory=list)
    noise: str | None = None


class Bias(_Strict):  # field 9
    attributes_examined: list[str] = Field(default_factory=list)
    methods: str | None = None
    findings: str | None = None
    mitigations: str | None = None


class PersonalData(_Strict):  # field 10
    present: Presence | None = None  # required by the default policy: a card must say it
    categories: list[str] = Field(default_factory=list)
    anonymization: str | None = None


class Access(_Strict):  # field 11
    confidentiality: Literal["public", "internal", "confidential", "restricted"] | None = None
    availability: str | None = None


class Use(_Strict):  # field 12
    intended: list[str] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=list)


class Split(_Strict):  # field 13
    name: str
    role: Literal["train", "validation", "test", "other"] = "train"
    shards: list[str] = Field(default_factory=list)


class Governance(_Strict):  # field 14
    owner: str | None = None
    steward: str | None = None
    maintenance: str | None = None
    update_mechanism: str | None = None


class License(_Strict):
    declared: str | None = None  # SPDX expression, checked by the license check
    notes: str | None = None


class DatasetCard(_Strict):
    dataset: DatasetSection
    sources: list[Source] = Field(default_factory=list)
    collection: Collection = Collection()
    crawl: Crawl = Crawl()
    preparation: list[PreparationStep] = Field(default_factory=list)
    annotation: Annotation = Annotation()
    suitability: Suitability = Suitability()
    bias: Bias = Bias()
    personal_data: PersonalData = PersonalData()
    access: Access = Access()
    use: Use = Use()
    splits: list[Split] = Field(default_factory=list)
    governance: Governance = Governance()
    license: License = License()

    def as_json(self) -> dict:
        return self.model_dump(mode="json")

    def value(self, dotted: str) -> object:
        """The value at a dotted path (`governance.owner`), or None when absent or empty."""
        node: object = self.as_json()
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if node not in ("", [], {}) else None


def parse_card(text: str, source: str = "<card>") -> DatasetCard:
    return load_model(text, source, DatasetCard, CardError)


def check_licenses(card: DatasetCard, text: str, source: str) -> None:
    """A license a card declares must be a valid SPDX expression: refuse it at registration, with
    the parse error, rather than let the gate later call it an unknown license."""
    from custody.licenses.spdx import parse_expression

    declared = [(("license", "declared"), card.license.declared)]
    declared += [(("sources", i, "license"), s.license) for i, s in enumerate(card.sources)]
    for loc, expression in declared:
        if expression is None:
            continue
        parsed = parse_expression(expression)
        if not parsed.ok:
            key = ".".join(str(part) for part in loc)
            raise CardError(
                f"{where(text, source, loc)}: key '{key}': {expression!r} is not a valid SPDX license expression "
                f'({parsed.error}); e.g. "MIT", "Apache-2.0 OR MIT", "LicenseRef-my-terms"'
            )


def load_card(path: Path) -> DatasetCard:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise CardError(f"{path}: card file not found") from exc
    except OSError as exc:
        raise CardError(f"{path}: cannot read card ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(f"{path}: card is not UTF-8 (byte {exc.start})") from exc
    card = parse_card(text, str(path))
    check_licenses(card, text, str(path))
    return card


CARD_TEMPLATE = """\
# custody dataset card. Only [dataset] title is required to register; the policy bound to your
# purpose decides which other fields the provenance check requires: `custody policy bindings`
# names it, and its [provenance.required-fields] lists them (the shipped default asks for
# dataset.title, sources, collection.process, collection.time_frame, license.declared, ...).

[dataset]                       # 1-2: identity and modality
title = "Example web text"
description = "English web pages crawled for language-model pretraining."
modality = ["text"]
languages = ["en"]

[[sources]]                     # 3: one table per source
name = "Example crawl 2026-01"
uri = "https://example.org/crawl/2026-01"
kind = "scraped"                # public | licensed | scraped | user | synthetic | internal
license = "CC-BY-4.0"           # SPDX expression
retrieved_at = 2026-01-15T00:00:00Z

[collection]                    # 4
process = "Crawled with a robots.txt-respecting crawler; boilerplate removed."
time_frame = { start = 2026-01-01, end = 2026-01-31 }
original_purpose = "Language-model pretraining"
consent_basis = "Publicly available content; TDM opt-outs honoured"

[crawl]                         # 5
crawler = "example-bot/1.0"
robots_txt_respected = true
tdm_opt_outs_respected = true
top_domains = ["example.org"]

[[preparation]]                 # 6: what was done to the data before it reached custody
op = "boilerplate-removal"      # (custody records its own stages itself, as lineage)
tool = "trafilatura 1.12"

[annotation]                    # 7
who = "none"

[suitability]                   # 8
known_gaps = ["English only"]

[bias]                          # 9
attributes_examined = ["language", "domain"]

[personal_data]                 # 10
present = "unknown"             # yes | no | unknown
categories = []
anonymization = ""

[access]                        # 11
confidentiality = "internal"    # public | internal | confidential | restricted
availability = "internal object store"

[use]                           # 12
intended = ["language-model pretraining"]
out_of_scope = ["biometric identification"]

[[splits]]                      # 13
name = "train"
role = "train"

[governance]                    # 14
owner = "data-platform@example.org"
steward = "jane.doe@example.org"
maintenance = "quarterly refresh"
update_mechanism = "new version per refresh"

[license]
declared = "CC-BY-4.0"          # SPDX expression for the dataset as a whole
"""
