"""Every transparency-dev/merkle proof vector gives the expected verdict (ledger.md test 2).

The vectors live outside the repository, in `../shared/data/merkle_vectors/testdata/`
(inclusion and consistency cases; one correct `happy-path.json` per numbered folder and many
deliberately broken variants). A missing folder is a failure, never a skip. For every happy
path our prover, running over a real SQLite ledger of the RFC 6962 test leaves, must
reproduce the exact proof and roots.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from custody.ledger import verifier
from custody.ledger.log import Ledger
from custody.ledger.storage import open_storage
from rfc6962 import LEAVES, raw_entry

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "merkle_vectors"
TESTDATA = VECTORS / "testdata"
CASES = sorted(TESTDATA.rglob("*.json")) if TESTDATA.is_dir() else []
HAPPY = [path for path in CASES if path.name == "happy-path.json"]


def case_id(path: Path) -> str:
    return str(path.relative_to(TESTDATA)) if TESTDATA in path.parents else str(path)


def load(path: Path) -> dict:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and isinstance(doc.get("wantErr"), bool), f"{path}: not a vector"
    return doc


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def proof_of(doc: dict) -> list[bytes]:
    return [b64(p) for p in (doc["proof"] or [])]


def kind_of(doc: dict) -> str:
    if {"leafIdx", "treeSize", "leafHash", "root"} <= doc.keys():
        return "inclusion"
    if {"size1", "size2", "root1", "root2"} <= doc.keys():
        return "consistency"
    raise AssertionError(f"vector has neither inclusion nor consistency fields: {sorted(doc)}")


def run_verifier(doc: dict) -> None:
    if kind_of(doc) == "inclusion":
        verifier.verify_inclusion(
            doc["leafIdx"], doc["treeSize"], b64(doc["leafHash"]), proof_of(doc), b64(doc["root"])
        )
    else:
        verifier.verify_consistency(doc["size1"], doc["size2"], b64(doc["root1"]), b64(doc["root2"]), proof_of(doc))


def test_vector_folder_is_present():
    assert TESTDATA.is_dir(), f"merkle test vectors are missing: expected them at {TESTDATA}"
    assert len(CASES) >= 190, f"only {len(CASES)} vectors under {TESTDATA}"
    kinds = {kind_of(load(path)) for path in CASES}
    assert kinds == {"inclusion", "consistency"}
    # Five numbered folders of each kind, each with one correct proof.
    assert sorted(case_id(p).split("/")[0] for p in HAPPY) == ["consistency"] * 5 + ["inclusion"] * 5
    assert sum(load(p)["wantErr"] for p in CASES) >= 170, "too few broken variants"


@pytest.mark.parametrize("path", CASES or [None], ids=[case_id(p) for p in CASES] or ["MISSING"])
def test_vector_verdict(path):
    assert path is not None, f"merkle test vectors are missing: expected them at {TESTDATA}"
    doc = load(path)
    if doc["wantErr"]:
        with pytest.raises(verifier.VerificationError):
            run_verifier(doc)
    else:
        run_verifier(doc)


# --- our prover reproduces every correct proof -------------------------------------------------


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("vectors") / "ledger.sqlite"
    storage = open_storage(f"sqlite:///{path}", create=True)
    log = Ledger(storage, "test.example/vectors")
    log.append_batch([raw_entry(leaf) for leaf in LEAVES])
    yield log
    storage.close()


@pytest.mark.parametrize("path", HAPPY or [None], ids=[case_id(p) for p in HAPPY] or ["MISSING"])
def test_prover_reproduces_happy_path(ledger, path):
    assert path is not None, f"merkle test vectors are missing: expected them at {TESTDATA}"
    doc = load(path)
    assert doc["wantErr"] is False
    if kind_of(doc) == "inclusion":
        idx, size = doc["leafIdx"], doc["treeSize"]
        assert ledger.entry(idx).leaf_hash == b64(doc["leafHash"])
        assert ledger.root_at(size) == b64(doc["root"])
        assert ledger.inclusion_proof(idx, size) == proof_of(doc)
    else:
        size1, size2 = doc["size1"], doc["size2"]
        assert ledger.root_at(size1) == b64(doc["root1"])
        assert ledger.root_at(size2) == b64(doc["root2"])
        assert ledger.consistency_proof(size1, size2) == proof_of(doc)
