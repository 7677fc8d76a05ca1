"""What the `remove-stopwords` stage deletes from tiny Shakespeare: the share of all words.

    python bench/stopwords.py [--corpus ../shared/data/corpus_tinyshakespeare/input.txt] [--out FILE]

Runs the stage's own `strip()` (spaCy's English stop-word list, the stage's default; no model
needed) over the corpus and counts words as the stage tokenizes them (runs of word characters,
with inner apostrophes). docs/stages.md quotes the share to say why the stage is off for
pretraining.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from _meta import stamp
from custody.stages.classic import _STOP_TOKEN, RemoveStopwords

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus_tinyshakespeare" / "input.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "stopwords.json")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    stage = RemoveStopwords(None, language="en")  # type: ignore[arg-type]  # strip() needs no home
    started = time.perf_counter()
    words = [m.group(1) for m in _STOP_TOKEN.finditer(text)]
    stripped, removed = stage.strip(text)
    seconds = time.perf_counter() - started
    top = Counter(w.lower() for w in words if w.lower() in stage.stop_words).most_common(10)
    share = removed / len(words)
    print(f"{args.corpus.name}: {len(words):,} words, {removed:,} stop words removed ({share:.1%})")
    print("most frequent removed: " + ", ".join(f"{w} {n:,}" for w, n in top))
    document = {
        "benchmark": "remove-stopwords on tiny Shakespeare",
        "corpus": str(args.corpus.name),
        "characters": len(text),
        "characters_after": len(stripped),
        "words": len(words),
        "removed": removed,
        "removed_share": share,
        "stop_words": len(stage.stop_words),
        "most_removed": dict(top),
        "seconds": round(seconds, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stamp(document), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
