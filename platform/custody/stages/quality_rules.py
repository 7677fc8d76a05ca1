"""The measurements behind `quality-filter`: Gopher quality and repetition metrics, C4 line cleaning.

Pure functions over one document's text, so each reads like the paper it implements:

- Rae et al. (2021), "Scaling Language Models: Methods, Analysis & Insights from Training
  Gopher", arXiv:2112.11446, Appendix A.1.1 (MassiveWeb quality filters) and Table A1
  (repetition removal).
- Raffel et al. (2020), "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
  Transformer", JMLR 21(140), §2.2 (the Colossal Clean Crawled Corpus heuristics).

A "word" is a whitespace-separated token, as in the papers; tokens with no letter or digit
("-", "—", "|") count toward the alphabetic-word fraction but not toward the word count.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = ("•", "‣", "◦", "⁃", "●", "▪", "-", "*", "·")
ELLIPSES = ("...", "…")
_PARAGRAPH = re.compile(r"\n\s*\n")
_EDGE_PUNCT = re.compile(r"^\W+|\W+$")

# C4 (Raffel et al., 2020, §2.2).
C4_TERMINAL = (".", "!", "?", '"', "”", "'", "’")
C4_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
C4_CITATION = re.compile(r"\[\d+\]|\[citation needed\]|\[edit\]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def _fraction(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _repeats(items: list[str]) -> tuple[int, int]:
    """How many items, and how many characters, repeat an earlier item (first occurrences excluded)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def gopher_quality(text: str, stop_words: frozenset[str]) -> dict[str, float]:
    """Rae et al. 2021, A.1.1: word count, mean word length, symbol ratios, bullets, ellipses, stop words."""
    tokens = text.split()
    words = [w for w in (_EDGE_PUNCT.sub("", t) for t in tokens) if w]
    lines = [line.strip() for line in text.splitlines() if line.strip()]  # blank lines are layout, not lines
    return {
        "words": len(words),
        "mean_word_length": _fraction(sum(len(w) for w in words), len(words)),
        "hash_ratio": _fraction(text.count("#"), len(words)),
        "ellipsis_ratio": _fraction(sum(text.count(e) for e in ELLIPSES), len(words)),
        "bullet_line_fraction": _fraction(sum(line.startswith(BULLETS) for line in lines), len(lines)),
        "ellipsis_line_fraction": _fraction(sum(line.endswith(ELLIPSES) for line in lines), len(lines)),
        "alpha_word_fraction": _fraction(sum(any(c.isalpha() for c in t) for t in tokens), len(tokens)),
        "stop_words": len({w.lower() for w in words} & stop_words),
    }


def gopher_repetition(text: str, top_ns: list[int], dup_ns: list[int]) -> dict[str, float]:
    """Rae et al. 2021, Table A1: duplicate lines and paragraphs, top n-gram and duplicate n-gram fractions.

    Line and paragraph character fractions are over all the document's characters; n-gram ones
    over the characters of its words, since whitespace is not part of an n-gram.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    paragraphs = [p.strip() for p in _PARAGRAPH.split(text) if p.strip()]
    total_chars = len(text)
    dup_lines, dup_line_chars = _repeats(lines)
    dup_paras, dup_para_chars = _repeats(paragraphs)
    metrics: dict[str, float] = {
        "dup_line_fraction": _fraction(dup_lines, len(lines)),
        "dup_line_char_fraction": _fraction(dup_line_chars, total_chars),
        "dup_paragraph_fraction": _fraction(dup_paras, len(paragraphs)),
        "dup_paragraph_char_fraction": _fraction(dup_para_chars, total_chars),
    }
    tokens = text.split()
    ids: dict[str, int] = {}
    codes = [ids.setdefault(t, len(ids)) for t in tokens]  # n-grams of ints hash faster than of strings
    lengths = [len(t) for t in tokens]
    code_lengths = [len(t) for t in ids]
    word_chars = sum(lengths)
    for n in top_ns:
        # The most frequent n-gram, counted only when it does repeat: a 2-gram seen once in a
        # ten-word text is not repetition.
        grams = Counter(tuple(codes[i : i + n]) for i in range(len(codes) - n + 1))
        top = grams.most_common(1)
        value = 0.0
        if top and top[0][1] > 1:
            gram, count = top[0]
            value = _fraction(count * sum(code_lengths[c] for c in gram), word_chars)
        metrics[f"top_{n}gram_char_fraction"] = min(value, 1.0)
    for n in dup_ns:
        # Characters covered by n-grams that occurred before, each character counted once.
        covered = bytearray(len(codes))
        seen: set[tuple[int, ...]] = set()
        for i in range(len(codes) - n + 1):
            gram = tuple(codes[i : i + n])
            if gram in seen:
                covered[i : i + n] = b"\x01" * n
            else:
                seen.add(gram)
        metrics[f"dup_{n}gram_char_fraction"] = _fraction(
            sum(ln for ln, c in zip(lengths, covered, strict=True) if c), word_chars
        )
    return metrics


@dataclass
class C4Result:
    text: str
    lines_removed: dict[str, int] = field(default_factory=dict)
    citations_removed: int = 0
    sentences: int = 0
    page_rule: str | None = None  # the page-level rule that drops the whole document


def c4_clean(
    text: str, min_words_per_line: int, min_sentences: int, drop_lorem_ipsum: bool, drop_curly_bracket: bool
) -> C4Result:
    """Raffel et al. 2020, §2.2: keep lines that end in terminal punctuation and have enough words;
    remove lines mentioning Javascript or cookie/terms boilerplate and citation markers; drop
    pages with "lorem ipsum", a curly bracket (code), or too few sentences left (and pages with no
    line left at all, whatever the settings).

    (C4's bad-words page rule is not here: that is `drop-toxic`'s job, with a recorded scorer.)
    """
    if drop_lorem_ipsum and "lorem ipsum" in text.lower():
        return C4Result(text, page_rule="c4:lorem_ipsum")
    if drop_curly_bracket and "{" in text:
        return C4Result(text, page_rule="c4:curly_bracket")
    kept: list[str] = []
    removed: Counter[str] = Counter()
    citations = 0
    for raw in text.splitlines():
        line, found = C4_CITATION.subn("", raw)
        citations += found
        line = line.strip()
        low = line.lower()
        if not line:
            continue
        if "javascript" in low:
            removed["javascript"] += 1
        elif any(p in low for p in C4_POLICY):
            removed["policy"] += 1
        elif not line.endswith(C4_TERMINAL):
            removed["no_terminal_punctuation"] += 1
        elif len(line.split()) < min_words_per_line:
            removed["too_few_words"] += 1
        else:
            kept.append(line)
    cleaned = "\n".join(kept)
    sentences = len(_SENTENCE_END.findall(cleaned))
    result = C4Result(cleaned, dict(sorted(removed.items())), citations, sentences)
    if not kept:
        result.page_rule = "c4:no_lines_left"
    elif sentences < min_sentences:
        result.page_rule = "c4:min_sentences"
    return result
