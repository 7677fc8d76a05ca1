"""`dedup-near`: drop records that are near-copies of an earlier kept record (MinHash LSH).

Broder (1997) MinHash estimates the Jaccard similarity of two documents' shingle sets; locality-
sensitive hashing over bands of the signature finds candidate pairs without comparing every
pair (datasketch's MinHashLSH picks the bands and rows for the threshold). This is the
near-duplicate step of Gopher (Rae et al., 2021, §A.1.1: 13-gram MinHash, Jaccard 0.8) and of
FineWeb (Penedo et al., 2024: word 5-grams). Each LSH candidate is checked against the estimated
Jaccard before a record is dropped, so an LSH false positive never drops anything.

Online and first-wins: records are signed in input order; a record is dropped when an earlier
*kept* record reaches the threshold, and the earliest such record is named; a kept record joins
the index. Dropped records never join, so chains (A~B, B~C, A≁C) keep C. Same input, same
settings -> same decisions: the permutations come from the seed, the hash is SHA-1, and the
kept record chosen among candidates is the earliest, not whichever a set yields first.

State: per kept record, its LSH band keys (in the index) and its signature (num_perm 32-bit
values, to verify candidates): about 1 KB per kept record at num_perm=128.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from custody.datasets.readers import Record
from custody.home import Home
from custody.stages.base import Decision, Stage

SCHEME = "affine32"  # datasketch 2.x: 32-bit SHA-1 hash, affine permutations mod 2^61-1
_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")


def shingles(text: str, unit: Literal["word", "char"], n: int) -> set[str]:
    """The document's n-gram shingles after case folding and NFKC, so trivial variants sign alike."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if unit == "word":
        words = _WORD.findall(text)
        if len(words) <= n:
            return {" ".join(words)} if words else set()
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= n:
        return {flat} if flat else set()
    return {flat[i : i + n] for i in range(len(flat) - n + 1)}


class DedupNear(Stage):
    name = "dedup-near"
    version = "1.0.0"

    def __init__(
        self,
        home: Home,
        *,
        threshold: float = 0.8,
        num_perm: int = 128,
        seed: int = 1,
        shingle: Literal["word", "char"] = "word",
        ngram: int = 5,
    ) -> None:
        super().__init__(home)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"option 'threshold' must be in (0, 1], not {threshold}")
        if not 16 <= num_perm <= 1024:
            raise ValueError(f"option 'num_perm' must be between 16 and 1024, not {num_perm}")
        if shingle not in ("word", "char"):
            raise ValueError(f"option 'shingle' must be word or char, not {shingle!r}")
        if not 1 <= ngram <= 64:
            raise ValueError(f"option 'ngram' must be between 1 and 64, not {ngram}")
        self.threshold, self.num_perm, self.seed = threshold, num_perm, seed
        self.shingle, self.ngram = shingle, ngram
        from datasketch import MinHashLSH

        # b and r follow from threshold and num_perm alone (datasketch minimizes the false
        # positive and negative areas with equal weights); they are recorded in the config.
        probe = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.bands, self.rows = probe.b, probe.r

    def config(self) -> dict[str, Any]:
        import datasketch

        return {
            "threshold": self.threshold,
            "num_perm": self.num_perm,
            "seed": self.seed,
            "shingle": self.shingle,
            "ngram": self.ngram,
            "shingle_normalization": "NFKC+casefold",
            "lsh_bands": self.bands,
            "lsh_rows": self.rows,
            "minhash_scheme": SCHEME,
            "datasketch_version": datasketch.__version__,
            "keep": "first",
        }

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        from datasketch import LeanMinHash, MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        # Permutations drawn once from the seed and shared; drawing them per record is slow.
        permutations = MinHash(self.num_perm, seed=self.seed, scheme=SCHEME).permutations
        kept_ids: list[str] = []
        signatures: list[LeanMinHash] = []
        for record in records:
            grams = shingles(record.text, self.shingle, self.ngram)
            if not grams:  # nothing to compare: empty duplicates are `dedup-exact`'s to find
                yield Decision(record, "keep", details=json.dumps({"shingles": 0}))
                continue
            signature = MinHash(self.num_perm, seed=self.seed, permutations=permutations, scheme=SCHEME)
            signature.update_batch([g.encode("utf-8") for g in grams])
            best: tuple[int, float] | None = None
            for index in sorted(lsh.query(signature)):
                similarity = signatures[index].jaccard(signature)
                if best is None or similarity > best[1]:
                    best = (index, similarity)
                if similarity >= self.threshold:  # the earliest kept record over the threshold wins
                    best = (index, similarity)
                    break
            if best is not None and best[1] >= self.threshold:
                details = {"duplicate_of": kept_ids[best[0]], "jaccard": round(best[1], 4)}
                yield Decision(record, "drop", "duplicate:near", score=best[1], details=json.dumps(details))
                continue
            lsh.insert(len(kept_ids), signature, check_duplication=False)
            kept_ids.append(record.id)
            signatures.append(LeanMinHash(signature))
            if best is None:
                yield Decision(record, "keep")
            else:  # an LSH candidate below the threshold: recorded, as it shows how close it came
                details = {"closest": kept_ids[best[0]], "jaccard": round(best[1], 4)}
                yield Decision(record, "keep", score=best[1], details=json.dumps(details))
