"""Google's Perspective API (`comments:analyze`, v1alpha1) as a toxicity scorer.

A remote model: no weights to hash, so the scorer's `digest` is the SHA-256 of its identity
(name, API version, endpoint, attributes, languages), and `describe()` says the same in words.
One request per comment, `doNotStore: true`, through a client-side rate limit (default 1 query
per second, the API's default quota), retried with exponential backoff on 429 and 5xx (bounded
attempts, `Retry-After` honoured). Texts longer than the API's 20,480-byte comment limit are split
at whitespace into pieces under it; an attribute's score for the text is the highest over its
pieces. Each piece's scores are cached on disk by the SHA-256 of (API version, endpoint,
attributes, languages, piece text), so a rerun sends nothing it has sent before.

The API key comes from the environment only (`PERSPECTIVE_API_KEY`). It is sent as the `key`
query parameter, as the API documents, and is never written: not in the cache, the config, the
summary, the ledger, an exception's message (the server's message is searched for it too) nor a
pickle of the scorer. Errors are one line and never carry a record's text.

This module imports only the standard library: `scorers.py` imports it, not the other way round.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

API_VERSION = "v1alpha1"
DEFAULT_URL = "https://commentanalyzer.googleapis.com"
KEY_ENV = "PERSPECTIVE_API_KEY"
# The production attributes (Perspective's documentation lists experimental ones too; they are
# not accepted here, so a configuration cannot silently depend on one that goes away).
ATTRIBUTES = ("TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT")
DEFAULT_ATTRIBUTES = ("TOXICITY",)
DEFAULT_LANGUAGES = ("en",)
DEFAULT_RATE = 1.0  # queries per second
DEFAULT_MAX_ATTEMPTS = 5
MAX_COMMENT_BYTES = 20480  # the API's limit on comment.text, in UTF-8 bytes
CACHE_DIR = Path("cache") / "perspective"  # under the custody home
RETRYABLE = frozenset({429, 500, 502, 503, 504})
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


class PerspectiveError(RuntimeError):
    """The Perspective API could not score a text (refused, unreachable, or an unexpected answer)."""


class PerspectiveKeyMissing(PerspectiveError):
    """No API key in the environment; raised before any request."""


# ---------------------------------------------------------------------------------------------
# settings helpers (ToxicitySettings validates through these)


def _items(value: str | Sequence[str]) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value if str(item).strip()]


def parse_attributes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Upper-case attribute names, deduplicated in order; comma-separated text or a list."""
    names = list(dict.fromkeys(item.upper() for item in _items(value or DEFAULT_ATTRIBUTES)))
    unknown = [name for name in names if name not in ATTRIBUTES]
    if unknown or not names:
        raise ValueError(f"Perspective attributes must be among {', '.join(ATTRIBUTES)}, not {unknown or names!r}")
    return tuple(names)


def parse_languages(value: str | Sequence[str] | None) -> tuple[str, ...]:
    names = list(dict.fromkeys(item.lower() for item in _items(value or DEFAULT_LANGUAGES)))
    bad = [name for name in names if not _LANGUAGE.fullmatch(name)]
    if bad or not names:
        raise ValueError(f"Perspective languages must be ISO 639 codes such as en, de, pt-BR, not {bad or names!r}")
    return tuple(names)


def parse_rate(value: float | str) -> float:
    rate = float(value)
    if not (0.0 < rate <= 1000.0):
        raise ValueError(f"Perspective rate must be above 0 and at most 1000 queries per second, not {value!r}")
    return rate


def parse_attempts(value: int | str) -> int:
    if isinstance(value, bool) or not (1 <= int(value) <= 20):
        raise ValueError(f"Perspective max attempts must be between 1 and 20, not {value!r}")
    return int(value)


def parse_url(value: str) -> str:
    parsed = urllib.parse.urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("Perspective URL must be an http(s) URL such as https://commentanalyzer.googleapis.com")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise ValueError(
            "Perspective URL must not carry credentials, a query or a fragment (the key comes from the environment)"
        )
    return value.strip().rstrip("/")


# ---------------------------------------------------------------------------------------------
# pieces, limits, cache


def split_text(text: str, limit: int = MAX_COMMENT_BYTES) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut at whitespace where there is some in the
    second half of the window, else at a character boundary; whitespace-only pieces dropped."""
    data = text.encode("utf-8", "replace")
    pieces: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        if end < len(data):
            while end > start and (data[end] & 0xC0) == 0x80:  # not inside a character
                end -= 1
            floor = start + limit // 2
            cut = max(data.rfind(b" ", floor, end), data.rfind(b"\n", floor, end), data.rfind(b"\t", floor, end))
            if cut > start:
                end = cut + 1
        pieces.append(data[start:end])
        start = end
    return [piece.decode("utf-8") for piece in pieces if piece.strip()]


class RateLimiter:
    """At most `rate` requests per second from this process: each waits for its turn."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep) -> None:
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._clock()
            self._next = max(now, self._next) + self.interval


class ScoreCache:
    """Attribute scores of sent pieces, one small JSON file per piece digest (no text, no key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, digest: str, attributes: Sequence[str]) -> dict[str, float] | None:
        try:
            scores = json.loads(self._path(digest).read_text(encoding="utf-8"))["scores"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(scores, dict) or any(not isinstance(scores.get(a), int | float) for a in attributes):
            return None
        return {a: float(scores[a]) for a in attributes}

    def put(self, digest: str, scores: Mapping[str, float]) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        partial.write_text(json.dumps({"scores": dict(scores)}, sort_keys=True), encoding="utf-8")
        os.replace(partial, path)  # readers see the whole file or none


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _one_line(text: str, secret: str | None, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "[key]")
    return text[:limit] + ("..." if len(text) > limit else "")


# ---------------------------------------------------------------------------------------------
# the scorer


class PerspectiveScorer:
    """Perspective API attribute scores as {attribute in lower case: probability} per text.

    The check's per-record score is the highest category, so a record's score is the maximum over
    the requested attributes (with only TOXICITY, its TOXICITY score); `details` keeps each one.
    """

    name = "perspective"

    def __init__(
        self,
        attributes: str | Sequence[str] | None = None,
        languages: str | Sequence[str] | None = None,
        *,
        url: str | None = None,
        rate: float = DEFAULT_RATE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        cache_dir: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        key_env: str = KEY_ENV,
        timeout: float = 30.0,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attributes = parse_attributes(attributes)
        self.languages = parse_languages(languages)
        self.url = parse_url(url or DEFAULT_URL)
        self.endpoint = f"{self.url}/{API_VERSION}/comments:analyze"
        self.rate = parse_rate(rate)
        self.max_attempts = parse_attempts(max_attempts)
        self.key_env = key_env
        self._key = self._read_key(env)  # before any request; never stored anywhere else
        self.cache = ScoreCache(Path(cache_dir)) if cache_dir is not None else None
        self.timeout, self.backoff, self.max_wait = float(timeout), float(backoff), float(max_wait)
        self._sleep = sleep
        self._limiter = RateLimiter(self.rate, sleep=sleep)
        self.categories = tuple(a.lower() for a in self.attributes)
        identity = {
            "scorer": self.name,
            "api_version": API_VERSION,
            "endpoint": self.endpoint,
            "attributes": list(self.attributes),
            "languages": list(self.languages),
        }
        self.digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        self.requests = 0  # HTTP requests sent, retries included (for tests and progress)
        self.cache_hits = 0

    def _read_key(self, env: Mapping[str, str] | None = None) -> str:
        key = (os.environ if env is None else env).get(self.key_env, "").strip()
        if not key:
            raise PerspectiveKeyMissing(
                f"scorer 'perspective' needs an API key: set the environment variable {self.key_env} "
                "(it is read from the environment only, never from a file, and never recorded)"
            )
        return key

    # A pickled scorer (a Ray worker's copy) carries no key and no lock: it rereads the key
    # from that worker's environment.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_key"] = None
        state["_limiter"] = self.rate
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._limiter = RateLimiter(self.rate, sleep=self._sleep)

    def __repr__(self) -> str:
        attributes, languages = list(self.attributes), list(self.languages)
        return f"PerspectiveScorer(attributes={attributes}, languages={languages}, url={self.url!r})"

    def describe(self) -> dict[str, Any]:
        """What the scores depend on; the key only as 'used', by the variable's name."""
        return {
            "scorer": self.name,
            "api_version": API_VERSION,
            "endpoint": self.endpoint,
            "attributes": list(self.attributes),
            "languages": list(self.languages),
            "do_not_store": True,
            "max_comment_bytes": MAX_COMMENT_BYTES,
            "score": "max over the requested attributes; a text over max_comment_bytes is split and "
            "each attribute is the max over its pieces",
            "api_key": f"used, from {self.key_env} (value not recorded)",
        }

    # -- scoring ---------------------------------------------------------------------------------
    def cache_key(self, piece: str) -> str:
        material = {
            "api_version": API_VERSION,
            "endpoint": self.endpoint,
            "attributes": sorted(self.attributes),
            "languages": list(self.languages),
            "text": piece,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [self.score_text(text) for text in texts]

    def score_text(self, text: str) -> dict[str, float]:
        best = {a: 0.0 for a in self.attributes}
        for piece in split_text(text):
            for attribute, value in self._score_piece(piece).items():
                best[attribute] = max(best[attribute], value)
        return {a.lower(): value for a, value in best.items()}

    def _score_piece(self, piece: str) -> dict[str, float]:
        digest = self.cache_key(piece)
        if self.cache is not None:
            cached = self.cache.get(digest, self.attributes)
            if cached is not None:
                self.cache_hits += 1
                return cached
        scores = self._parse(self._post(piece))
        if self.cache is not None:
            self.cache.put(digest, scores)
        return scores

    def _post(self, piece: str) -> dict[str, Any]:
        if not self._key:
            self._key = self._read_key()
        body = json.dumps(
            {
                "comment": {"text": piece},
                "languages": list(self.languages),
                "requestedAttributes": {a: {} for a in self.attributes},
                "doNotStore": True,
            }
        ).encode("utf-8")
        url = f"{self.endpoint}?{urllib.parse.urlencode({'key': self._key})}"
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            self._limiter.wait()
            self.requests += 1
            request = urllib.request.Request(url, data=body, method="POST")
            request.add_header("Content-Type", "application/json; charset=utf-8")
            wait: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = response.read()
                try:
                    answer = json.loads(payload)
                except ValueError:
                    raise PerspectiveError("Perspective API answered with something that is not JSON") from None
                if not isinstance(answer, dict):
                    raise PerspectiveError("Perspective API answered with JSON that is not an object")
                return answer
            except urllib.error.HTTPError as exc:
                status, message = self._error(exc)
                if exc.code not in RETRYABLE:
                    hint = " (is the API enabled for the key's project?)" if exc.code == 403 else ""
                    raise PerspectiveError(
                        f"Perspective API refused the request: HTTP {exc.code} {status}: {message}{hint}"
                    ) from None
                last = f"HTTP {exc.code} {status}: {message}"
                wait = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"could not reach {self.url} ({_one_line(str(reason), self._key)})"
            if attempt < self.max_attempts:
                delay = wait if wait is not None else self.backoff * 2 ** (attempt - 1)
                self._sleep(min(delay, self.max_wait))
        raise PerspectiveError(f"Perspective API: no answer after {self.max_attempts} attempts; last: {last}")

    def _error(self, exc: urllib.error.HTTPError) -> tuple[str, str]:
        """(status, message) from the API's {"error": {...}} body, one line, without the key."""
        try:
            raw = exc.read()
        except OSError:
            raw = b""
        status, message = "", exc.reason or ""
        try:
            error = json.loads(raw)["error"]
            status = str(error.get("status") or "")
            message = str(error.get("message") or message)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        return _one_line(status, self._key, 40), _one_line(message, self._key)

    def _parse(self, answer: Mapping[str, Any]) -> dict[str, float]:
        scores: dict[str, float] = {}
        found = answer.get("attributeScores")
        for attribute in self.attributes:
            try:
                value = float(found[attribute]["summaryScore"]["value"])
            except (KeyError, TypeError, ValueError):
                raise PerspectiveError(f"Perspective API answer has no summary score for {attribute}") from None
            if not (0.0 <= value <= 1.0):
                raise PerspectiveError(f"Perspective API gave {attribute} a score outside [0, 1]: {value!r}")
            scores[attribute] = value
        return scores
