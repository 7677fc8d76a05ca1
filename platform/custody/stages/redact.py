"""`redact-pii`: replace detected PII through presidio-anonymizer, per entity as configured.

Operators per entity type: `replace` (the entity tag, e.g. `<EMAIL_ADDRESS>`), `mask` (every
character replaced by `*`) or `hash` (a keyed HMAC-SHA256 pseudonym such as
`<EMAIL_ADDRESS:kpdgaobnhmelcfij>`, so equal values still join without being readable). The key
lives in HOME/keys/redaction.salt (mode 0600); only its fingerprint is recorded. Pseudonyms are
written in the letters a-p rather than hex digits: a hex digest holds runs of digits that the
residual scan would rightly read as card or phone numbers. After the stage, the output is
scanned again and the residual PII rate goes into the stage's summary. Spans inside the tags the
stage wrote (`<PERSON>`, `<EMAIL_ADDRESS:pseudonym>`) do not count. The rate is what the same
scanner still finds: a value it missed on the first pass (an entity type it does not look for, a
name its NER model does not read as one) is as a rule missed again: a rate of 0 does not prove no PII.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from custody.datasets.readers import Record
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.stages.base import Decision, Stage

OPERATORS = ("replace", "mask", "hash")
PSEUDONYM_HEX = 16  # 64 bits of the HMAC: collisions need ~4 billion distinct values
TAG = re.compile(r"<[A-Z][A-Z0-9_]*(?::[a-p]+)?>")  # what this stage writes in place of a value
DEFAULT_OPERATORS = {
    "DEFAULT": "replace",
    "EMAIL_ADDRESS": "hash",  # joinable across records without being readable
    "PHONE_NUMBER": "mask",
    "CREDIT_CARD": "mask",
}
BATCH = 128


def configured_operators(home: Home) -> dict[str, str]:
    """Operators per entity from HOME/redaction.toml (`[operators]` table), if the file exists."""
    path = Path(home.path) / "redaction.toml"
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - {"operators"})
    if unknown:
        raise ValueError(f"{path}: unknown key '{unknown[0]}' (known: operators)")
    operators = data.get("operators", {})
    if not isinstance(operators, dict) or not all(isinstance(v, str) for v in operators.values()):
        raise ValueError(f"{path}: [operators] maps entity types to replace, mask or hash")
    return operators


def redaction_salt(home: Home) -> bytes:
    """The home's redaction salt, created on first use; never written to the ledger."""
    path = Path(home.path) / "keys" / "redaction.salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()


class RedactPii(Stage):
    name = "redact-pii"
    parallel = True  # per record: shards can run on separate workers
    version = "1.1.0"  # 1.1: letter-only HMAC pseudonyms (hex digests read as card numbers)

    def __init__(
        self,
        home: Home,
        operators: dict[str, str] | None = None,
        scanner_config: Any = None,
        *,
        entities: list[str] | None = None,
    ) -> None:
        """`entities`: what to find and redact (None: the pii check's defaults); e.g. add the opt-in
        STREET_ADDRESS and PERSON_NAME (custody.pii.recall) in a spec's [prepare.options.redact-pii]."""
        super().__init__(home)
        self.operators = {**DEFAULT_OPERATORS, **configured_operators(home), **(operators or {})}
        bad = {k: v for k, v in self.operators.items() if v not in OPERATORS}
        if bad:
            key = next(iter(bad))
            raise ValueError(f"redaction operator for {key} must be one of {', '.join(OPERATORS)}, not {bad[key]!r}")
        from custody.pii.fast import ScannerConfig, get_scanner

        if entities is not None:
            if not entities:
                raise ValueError("entities is empty: name at least one entity type to redact")
            scanner_config = ScannerConfig(entities=tuple(entities))
        self.scanner = get_scanner(scanner_config or ScannerConfig())
        self._salt = redaction_salt(home).hex()

    def config(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "operators": dict(sorted(self.operators.items())),
            "scanner": asdict(self.scanner.config),
            "salt_fingerprint": hashlib.sha256(bytes.fromhex(self._salt)).hexdigest()[:16],
        }

    def _pseudonym(self, entity: str):
        key = bytes.fromhex(self._salt)
        letters = str.maketrans("0123456789abcdef", "abcdefghijklmnop")

        def pseudonym(value: str) -> str:
            digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
            return f"<{entity}:{digest.translate(letters)}>"

        return pseudonym

    def _operator_configs(self, entity_types: set[str]) -> dict:
        from presidio_anonymizer.entities import OperatorConfig

        configs = {}
        for entity in entity_types | {"DEFAULT"}:
            operator = self.operators.get(entity, self.operators["DEFAULT"])
            if operator == "replace":
                configs[entity] = OperatorConfig("replace", {"new_value": f"<{entity}>"} if entity != "DEFAULT" else {})
            elif operator == "mask":
                configs[entity] = OperatorConfig(
                    "mask", {"masking_char": "*", "chars_to_mask": 1 << 30, "from_end": False}
                )
            else:
                configs[entity] = OperatorConfig("custom", {"lambda": self._pseudonym(entity)})
        return configs

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import RecognizerResult

        engine = AnonymizerEngine()
        iterator = iter(records)
        while batch := list(islice(iterator, BATCH)):
            for record, spans in zip(batch, self.scanner.scan_batch([r.text for r in batch]), strict=True):
                if not spans:
                    yield Decision(record, "keep")
                    continue
                results = [RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in spans]
                redacted = engine.anonymize(
                    record.text, results, self._operator_configs({s.entity_type for s in spans})
                )
                details = [
                    {
                        "type": s.entity_type,
                        "start": s.start,
                        "end": s.end,
                        "score": round(s.score, 4),
                        "operator": self.operators.get(s.entity_type, self.operators["DEFAULT"]),
                    }
                    for s in spans
                ]
                yield Decision(
                    record,
                    "modify",
                    "pii:" + ",".join(sorted({s.entity_type for s in spans})),
                    text=redacted.text,
                    score=max(s.score for s in spans),
                    details=json.dumps(details),
                )

    def summarize(self, output: RegisteredDataset) -> dict[str, Any]:
        """Scan the redacted output again: what PII is still there (the residual rate)."""
        per_entity: Counter[str] = Counter()
        records = with_pii = 0
        iterator = (record for _, record in output.records())
        while batch := list(islice(iterator, BATCH)):
            for record, spans in zip(batch, self.scanner.scan_batch([r.text for r in batch]), strict=True):
                records += 1
                # Tags we wrote ourselves (<PERSON>, <EMAIL_ADDRESS:pseudonym>) are not residual PII:
                # NER can read a pseudonym's letters as a name, so spans inside a tag do not count.
                tags = [(m.start(), m.end()) for m in TAG.finditer(record.text)]
                types = {s.entity_type for s in spans if not any(a <= s.start and s.end <= b for a, b in tags)}
                if types:
                    with_pii += 1
                    per_entity.update(types)
        return {
            "residual_pii": {
                "records": records,
                "records_with_pii": with_pii,
                "rate": round(with_pii / records, 6) if records else 0.0,
                "records_per_entity": dict(per_entity.most_common()),
            }
        }
