"""Passage fingerprints: the array word splitter and hasher agree with the regex it replaces, the
ASCII and code-point paths agree, a batch gives each text's own fingerprints, and winnowing keeps
every window's minimum."""

from __future__ import annotations

import random
import unicodedata

import numpy as np

from custody.takedown.fingerprints import (
    _WORD,
    _word_hashes,
    batch_fingerprints,
    fingerprints,
    sliding_min,
    word_runs,
)

ODD = [
    "Hello, world! Café déjà-vu — “quoted” ½ ﬁne x_y 42",
    "a\x00b c",
    "",
    "   ",
    "ünïcödé wörds ﬀ",
    "日本語のテキスト テスト",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
]


def texts(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return ODD + ["".join(rng.choice("ab cé—’“\n\t_1😀ﬁXY") for _ in range(rng.randint(0, 80))) for _ in range(count)]


def test_words_and_offsets_are_those_of_the_regex():
    for text in texts(300):
        normalised = unicodedata.normalize("NFKC", text).casefold()
        hashes, starts = word_runs(normalised)
        found = list(_WORD.finditer(normalised))
        assert starts.tolist() == [m.start() for m in found], text
        assert (hashes == _word_hashes([m.group() for m in found])).all()  # a word hashes alike anywhere


def test_ascii_and_code_point_paths_hash_alike():
    words = ["alpha", "beta_2", "x", "zeta42"]
    ascii_hashes, _ = word_runs(" ".join(words))
    wide_hashes, _ = word_runs("é " + " ".join(words))  # one non-ASCII word sends it down the other path
    assert (wide_hashes[1:] == ascii_hashes).all()
    assert len(set(ascii_hashes.tolist())) == len(words)


def test_a_batch_gives_each_text_its_own_fingerprints():
    rng = random.Random(2)
    vocabulary = ["alpha", "beta", "gamma", "délta", "eps", "zeta", "eta", "theta"]
    batch = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 90))) for _ in range(300)] + texts(50)
    kept, owners = batch_fingerprints(batch)
    assert (np.diff(owners.astype(np.int64)) >= 0).all()  # in text order: the index counts keys per record
    for i, text in enumerate(batch):
        assert set(kept[owners == i].tolist()) == set(fingerprints(text.replace("\x00", " ")).tolist()), i


def test_sliding_min_is_every_windows_minimum():
    rng = np.random.default_rng(1)
    for n in range(1, 50):
        for window in range(1, n + 1):
            values = rng.integers(0, 1000, n).astype(np.uint64)
            expected = np.lib.stride_tricks.sliding_window_view(values, window).min(axis=1)
            assert (sliding_min(values, window) == expected).all(), (n, window)


def test_the_jsonl_fast_path_indexes_what_the_reader_reads(tmp_path, cast):
    import json

    import zstandard

    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.takedown.index import build

    home = cast.init_home(tmp_path / "home")
    rows = [
        {"id": f"r{i}", "text": t, "source_url": f"https://x.example/{i}" if i % 3 else ""}
        for i, t in enumerate(texts(60))
    ]
    rows.append({"id": "nested", "text": "a record with other fields", "meta": {"a": [1, 2]}, "n": 3})
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode() + b"\n\n"
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    plain.mkdir(), packed.mkdir()
    (plain / "part.jsonl").write_bytes(lines)
    (packed / "part.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    registry, card = DatasetRegistry(home), parse_card(CARD_TEMPLATE)
    fast = build(registry.register([plain], DatasetRef("plain", "1"), card, Fields(id="id"))[0])
    slow = build(registry.register([packed], DatasetRef("packed", "1"), card, Fields(id="id"))[0])
    for name in ("keys", "counts", "record_hashes", "url_ordinals"):
        assert (getattr(fast, name) == getattr(slow, name)).all(), name
    assert fast.urls == slow.urls and fast.records == len(rows)
    home.close()


def test_long_records_between_short_ones_are_found(tmp_path, cast):
    """Short records (fewer shingles than a window) keep one hash each, computed apart from the
    long ones: the index must still give every key to its own record."""
    import json

    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.takedown.find import find_text

    rng = random.Random(5)
    vocabulary = [f"w{i}" for i in range(5000)]
    records = [" ".join(rng.choice(vocabulary) for _ in range(12 if i % 2 else 70)) for i in range(200)]
    folder = tmp_path / "mixed"
    folder.mkdir()
    with open(folder / "part.jsonl", "w", encoding="utf-8") as out:
        for i, text in enumerate(records):
            out.write(json.dumps({"id": f"m{i}", "text": text}) + "\n")
    home = cast.init_home(tmp_path / "home")
    DatasetRegistry(home).register([folder], DatasetRef("mixed", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"))
    for i in range(0, 200, 20):
        found = find_text(home, " ".join(records[i].split()[10:50]).upper())
        assert [h.record_id for h in found.hits] == [f"m{i}"], i
    home.close()


def test_the_compiled_loop_and_the_array_version_agree():
    from custody.takedown.fingerprints import batch_fingerprints_arrays

    rng = random.Random(3)
    vocabulary = ["alpha", "beta", "gamma", "délta", "eps", "zeta", "eta", "theta", "ï", "x_1"]
    for trial in range(30):
        batch = [
            " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 120))) + rng.choice(["", "—", " ‘q’ "])
            for _ in range(rng.randint(1, 60))
        ]
        if trial % 3 == 0:  # all ASCII: the one-byte path
            batch = [t.encode("ascii", "ignore").decode() for t in batch]
        if trial % 5 == 0:
            batch.append("a\x00b " * 20)
        compiled, arrays = batch_fingerprints(batch), batch_fingerprints_arrays(batch)
        assert (compiled[0] == arrays[0]).all() and (compiled[1] == arrays[1]).all(), trial
