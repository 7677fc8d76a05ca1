"""`normalize-unicode`: repair broken Unicode with ftfy, then apply one Unicode normalization form.

ftfy (Speer, 2019, https://github.com/rspeer/python-ftfy) undoes mojibake ("cafÃ©" -> "café"),
stray C1 controls, surrogates and terminal escapes. The fixes that only *restyle* correct text —
uncurling quotes, half-width conversion, splitting ligatures, rewriting line breaks — are off
by default, as in datatrove's FTFYFormatter: a model should see text as people write it, and
half-width conversion is wrong for Chinese and Japanese. NFC is the default form because it
changes code points, not what a reader sees; NFKC (which folds "²" to "2" and "ﬁ" to "fi") is a
setting. The complete ftfy TextFixerConfig is part of the stage config, so the lineage digest
pins exactly which fixes ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from custody.datasets.readers import Record
from custody.home import Home
from custody.stages.base import Decision, Stage

Form = Literal["NFC", "NFKC", "NFD", "NFKD", "none"]
HtmlMode = Literal["auto", "always", "never"]
_HTML = {"auto": "auto", "always": True, "never": False}


class NormalizeUnicode(Stage):
    name = "normalize-unicode"
    parallel = True  # per record: shards can run on separate workers
    version = "1.0.0"

    def __init__(
        self,
        home: Home,
        *,
        normalization: Form = "NFC",
        unescape_html: HtmlMode = "auto",
        fix_latin_ligatures: bool = False,
        fix_character_width: bool = False,
        uncurl_quotes: bool = False,
        fix_line_breaks: bool = False,
    ) -> None:
        super().__init__(home)
        from ftfy import TextFixerConfig

        if normalization not in ("NFC", "NFKC", "NFD", "NFKD", "none"):
            raise ValueError(f"option 'normalization' must be NFC, NFKC, NFD, NFKD or none, not {normalization!r}")
        if unescape_html not in _HTML:
            raise ValueError(f"option 'unescape_html' must be auto, always or never, not {unescape_html!r}")
        self.fixer = TextFixerConfig(
            unescape_html=_HTML[unescape_html],
            fix_latin_ligatures=fix_latin_ligatures,
            fix_character_width=fix_character_width,
            uncurl_quotes=uncurl_quotes,
            fix_line_breaks=fix_line_breaks,
            normalization=None if normalization == "none" else normalization,
            explain=True,
        )

    def config(self) -> dict[str, Any]:
        import ftfy

        return {"ftfy_version": ftfy.__version__, "text_fixer_config": self.fixer._asdict()}

    def fix(self, text: str) -> tuple[str, list[str]]:
        """The fixed text and the fixes applied, as `action:parameter` (encodings, form names; no text)."""
        from ftfy import fix_and_explain

        # The segmenting loop of ftfy.fix_text, kept here because fix_text does not report what
        # it changed: fix line by line (bounded by max_decode_length), and stop unescaping HTML
        # once a segment shows a tag when unescape_html is "auto".
        config, out, steps, pos = self.fixer, [], [], 0
        while pos < len(text):
            end = text.find("\n", pos) + 1 or len(text)
            end = min(end, pos + config.max_decode_length)
            segment = text[pos:end]
            if config.unescape_html == "auto" and "<" in segment:
                config = config._replace(unescape_html=False)
            fixed, explanation = fix_and_explain(segment, config)
            out.append(fixed)
            if fixed != segment:
                steps.extend(f"{step.action}:{step.parameter}" for step in explanation or ())
            pos = end
        return "".join(out), list(dict.fromkeys(steps))  # in the order applied, once each

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            fixed, steps = self.fix(record.text)
            if fixed == record.text:
                yield Decision(record, "keep")
                continue
            details = {"fixes": steps, "chars_before": len(record.text), "chars_after": len(fixed)}
            yield Decision(record, "modify", "unicode:fixed", text=fixed, details=json.dumps(details))
