"""Usage preferences: the IETF aipref vocabulary (`Content-Usage: train-ai=n`) and Content-Signal.

A `Content-Usage` value is a Structured Field Dictionary (RFC 9651, section 3.2) whose keys are
usage categories and whose values are the tokens `y` or `n` (draft-ietf-aipref-vocab, "Exemplary
Serialization Format"). Parsing follows RFC 9651 section 4.2.2 exactly: a value that does not
parse states no preference at all, unknown keys and parameters are ignored, a key given twice
keeps its last value, and a value other than the token `y` or `n` leaves the category unknown.

The vocabulary's drafts changed over 2025: `train-ai` (AI training) is in every version; the
early ones also had `train-genai` (generative AI training) inside `train-ai`, inside `bots`
(all automated processing), each category taking its parent's preference when it states none.
A language model is a generative model, so both readings are applied and either one saying no
reserves the asset (the vocabulary's own rule for combining statements: a disallow wins).

Content-Signal (Cloudflare's Content Signals Policy, contentsignals.org) states `search`,
`ai-input` and `ai-train` as `yes` or `no`, comma-separated; `ai-train=no` reserves training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY_FIRST = re.compile(r"[a-z*]")
_KEY_REST = re.compile(r"[a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")


class Token(str):
    """An sf-token (as opposed to an sf-string with the same characters)."""


class _Fail(Exception):
    pass


@dataclass
class _Reader:
    text: str
    at: int = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.at += 1

    def take(self, pattern: re.Pattern) -> str:
        match = pattern.match(self.text, self.at)
        if not match:
            raise _Fail
        self.at = match.end()
        return match.group(0)


def _key(r: _Reader) -> str:
    if not _KEY_FIRST.match(r.peek()):
        raise _Fail
    start = r.at
    r.at += 1
    r.take(_KEY_REST)
    return r.text[start : r.at]


def _string(r: _Reader) -> str:
    r.at += 1  # the opening quote
    out = []
    while True:
        char = r.peek()
        if not char:
            raise _Fail
        r.at += 1
        if char == "\\":
            escaped = r.peek()
            if escaped not in ('"', "\\") or not escaped:
                raise _Fail
            out.append(escaped)
            r.at += 1
        elif char == '"':
            return "".join(out)
        elif not (" " <= char <= "~"):
            raise _Fail
        else:
            out.append(char)


def _bare_item(r: _Reader) -> object:
    char = r.peek()
    if char == "-" or char.isdigit():
        number = r.take(_NUMBER)
        return float(number) if "." in number else int(number)
    if char == '"':
        return _string(r)
    if char == "%" and r.text.startswith('%"', r.at):  # a display string: kept as text, never a token
        r.at += 1
        return _string(r)
    if char == "*" or (char.isalpha() and char.isascii()):
        return Token(r.take(_TOKEN))
    if char == ":":
        return r.take(_BYTES).encode()
    if char == "?":
        r.at += 1
        flag = r.peek()
        if flag not in ("0", "1") or not flag:
            raise _Fail
        r.at += 1
        return flag == "1"
    if char == "@":
        r.at += 1
        return ("date", r.take(_NUMBER))
    raise _Fail


def _parameters(r: _Reader) -> dict[str, object]:
    params: dict[str, object] = {}
    while r.peek() == ";":
        r.at += 1
        r.skip(" ")
        name = _key(r)
        value: object = True
        if r.peek() == "=":
            r.at += 1
            value = _bare_item(r)
        params[name] = value
    return params


def _item_or_inner_list(r: _Reader) -> object:
    if r.peek() != "(":
        value = _bare_item(r)
        _parameters(r)
        return value
    r.at += 1
    items = []
    while True:
        r.skip(" ")
        if r.peek() == ")":
            r.at += 1
            _parameters(r)
            return items
        items.append(_bare_item(r))
        _parameters(r)
        if r.peek() not in (" ", ")"):
            raise _Fail


def parse_dictionary(value: str) -> dict[str, object] | None:
    """An RFC 9651 Dictionary as {key: value} (parameters dropped); None when it does not parse."""
    if not value.isascii():
        return None
    r = _Reader(value.strip(" \t"))
    found: dict[str, object] = {}
    try:
        while r.peek():
            name = _key(r)
            if r.peek() == "=":
                r.at += 1
                found[name] = _item_or_inner_list(r)
            else:
                found[name] = True
                _parameters(r)
            r.skip(" \t")
            if not r.peek():
                break
            if r.peek() != ",":
                raise _Fail
            r.at += 1
            r.skip(" \t")
            if not r.peek():
                raise _Fail  # a trailing comma
    except _Fail:
        return None
    return found


def usage_preferences(value: str) -> dict[str, str]:
    """The categories a Content-Usage value states as allowed (`y`) or disallowed (`n`)."""
    parsed = parse_dictionary(value) or {}
    return {k: str(v) for k, v in parsed.items() if isinstance(v, Token) and v in ("y", "n")}


def reserves_training(preferences: dict[str, str]) -> str | None:
    """The statement that disallows training a language model (`train-ai=n`), or None.

    The current vocabulary's `train-ai`; and the early drafts' nesting, where `train-genai`
    inherits from `train-ai`, which inherits from `bots`: the most specific stated one applies."""
    if preferences.get("train-ai") == "n":
        return "train-ai=n"
    for label in ("train-genai", "train-ai", "bots"):
        if label in preferences:
            return f"{label}=n" if preferences[label] == "n" else None
    return None


def content_signals(value: str) -> dict[str, str]:
    """Content-Signal `search=yes, ai-train=no` as {signal: yes|no}; unknown values are left out."""
    signals: dict[str, str] = {}
    for part in value.split(","):
        name, sep, said = part.partition("=")
        said = said.strip().lower()
        if sep and said in ("yes", "no", "y", "n"):
            signals[name.strip().lower()] = "yes" if said.startswith("y") else "no"
    return signals


def signal_reserves_training(signals: dict[str, str]) -> str | None:
    return "ai-train=no" if signals.get("ai-train") == "no" else None
