"""The Perspective API scorer against a real local HTTP server speaking the documented shapes.

The live service was not reachable where this was written; `FakePerspective` implements
`POST /v1alpha1/comments:analyze?key=KEY` as documented (request body, `attributeScores` with
`summaryScore`/`spanScores`, `{"error": {code, message, status}}` errors, the 20,480-byte comment
limit) and records every request it receives.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from custody.checks.catalog import build_check
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.run_check import run_check
from custody.toxicity import (
    PerspectiveError,
    PerspectiveKeyMissing,
    PerspectiveScorer,
    ToxicitySettings,
    select_scorer,
)
from custody.toxicity.perspective import ATTRIBUTES, KEY_ENV, MAX_COMMENT_BYTES, split_text

KEY = "AIzaSyFAKE-perspective-test-key-7f3c9a"
FORBIDDEN_KEY = "AIzaSyFAKE-project-without-the-api-0000"
# What the fake model finds in a text: word -> {attribute: score}; other attributes 0.02.
LEXICON = {
    "idiot": {"TOXICITY": 0.92, "INSULT": 0.88, "SEVERE_TOXICITY": 0.31},
    "damn": {"TOXICITY": 0.61, "PROFANITY": 0.83},
    "hurt you": {"TOXICITY": 0.7, "THREAT": 0.94},
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in [*ToxicitySettings.ENV.values(), KEY_ENV]:
        monkeypatch.delenv(var, raising=False)


class FakePerspective:
    """comments:analyze on 127.0.0.1; `script` forces the next answers (status, headers, error)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # {"at", "key", "body"}
        self.script: list[tuple[int, dict[str, str], str] | None] = []  # None: answer normally
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, code: int, status: str, message: str, headers: dict[str, str] | None = None) -> None:
                self._send(code, {"error": {"code": code, "message": message, "status": status}}, headers)

            def do_POST(self) -> None:
                at = time.monotonic()
                url = urllib.parse.urlsplit(self.path)
                key = urllib.parse.parse_qs(url.query).get("key", [None])[0]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.received.append({"at": at, "key": key, "body": body, "path": url.path})
                    forced = fake.script.pop(0) if fake.script else None
                if url.path != "/v1alpha1/comments:analyze":
                    return self._error(404, "NOT_FOUND", "Not found")
                if forced:
                    code, headers, status = forced
                    return self._error(code, status, f"forced {code}", headers)
                if key == FORBIDDEN_KEY:
                    return self._error(
                        403,
                        "PERMISSION_DENIED",
                        "Perspective Comment Analyzer API has not been used in project 1234 before or it is disabled.",
                    )
                if key != KEY:
                    return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
                text = body.get("comment", {}).get("text")
                requested = body.get("requestedAttributes")
                if not isinstance(text, str) or not text:
                    return self._error(400, "INVALID_ARGUMENT", "Comment must be non-empty.")
                if len(text.encode()) > MAX_COMMENT_BYTES:
                    return self._error(400, "INVALID_ARGUMENT", "Comment text too long.")
                if not isinstance(requested, dict) or not requested or set(requested) - set(ATTRIBUTES):
                    return self._error(400, "INVALID_ARGUMENT", "Unknown or missing requested attribute.")
                scores = {}
                for attribute in requested:
                    value = max(
                        [0.02, *(hits.get(attribute, 0.02) for word, hits in LEXICON.items() if word in text.lower())]
                    )
                    score = {"value": value, "type": "PROBABILITY"}
                    scores[attribute] = {
                        "spanScores": [{"begin": 0, "end": len(text), "score": score}],
                        "summaryScore": score,
                    }
                self._send(200, {"attributeScores": scores, "languages": body.get("languages", ["en"])})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakePerspective]:
    server = FakePerspective()
    yield server
    server.close()


def _scorer(api: FakePerspective, **options: Any) -> PerspectiveScorer:
    options.setdefault("rate", 200.0)
    return PerspectiveScorer(url=api.url, env={KEY_ENV: KEY}, **options)


def test_scores_parsed_and_attributes_and_languages_sent(api) -> None:
    scorer = _scorer(api, attributes="toxicity, insult,PROFANITY", languages=["en", "de"])
    assert scorer.categories == ("toxicity", "insult", "profanity")
    scores = scorer.score_batch(["You are an idiot", "What a damn nice day", "hello friend"])
    assert scores == [
        {"toxicity": 0.92, "insult": 0.88, "profanity": 0.02},
        {"toxicity": 0.61, "insult": 0.02, "profanity": 0.83},
        {"toxicity": 0.02, "insult": 0.02, "profanity": 0.02},
    ]
    assert len(api.received) == 3
    first = api.received[0]
    assert first["path"] == "/v1alpha1/comments:analyze" and first["key"] == KEY
    assert first["body"] == {
        "comment": {"text": "You are an idiot"},
        "languages": ["en", "de"],
        "requestedAttributes": {"TOXICITY": {}, "INSULT": {}, "PROFANITY": {}},
        "doNotStore": True,
    }
    # Defaults: TOXICITY only, English.
    default = _scorer(api)
    assert default.score_batch(["idiot"]) == [{"toxicity": 0.92}]
    assert api.received[-1]["body"]["requestedAttributes"] == {"TOXICITY": {}}
    assert api.received[-1]["body"]["languages"] == ["en"]
    # Identity: name, API version, attributes; the key only as "used".
    described = scorer.describe()
    assert described["scorer"] == "perspective" and described["api_version"] == "v1alpha1"
    assert described["attributes"] == ["TOXICITY", "INSULT", "PROFANITY"] and described["do_not_store"] is True
    assert KEY not in json.dumps(described) + repr(scorer) and "PERSPECTIVE_API_KEY" in described["api_key"]
    assert len(scorer.digest) == 64 and scorer.digest != default.digest
    assert KEY.encode() not in pickle.dumps(scorer)


def test_rate_limit_spaces_requests(api) -> None:
    scorer = _scorer(api, rate=20.0)
    scorer.score_batch([f"text number {i}" for i in range(6)])
    times = [r["at"] for r in api.received]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 6 and min(gaps) >= 0.05 - 0.004, gaps  # 1/rate, less the server's clock jitter


def test_429_and_503_are_retried_with_backoff_and_retry_after(api) -> None:
    api.script = [(429, {"Retry-After": "0.3"}, "RESOURCE_EXHAUSTED"), (503, {}, "UNAVAILABLE")]
    scorer = _scorer(api, backoff=0.1)
    assert scorer.score_batch(["idiot"]) == [{"toxicity": 0.92}]
    times = [r["at"] for r in api.received]
    assert len(times) == 3 and scorer.requests == 3
    assert times[1] - times[0] >= 0.29  # Retry-After honoured
    assert times[2] - times[1] >= 0.19  # no Retry-After: backoff * 2 after the second attempt
    # Bounded: every attempt fails -> an error, nothing returned.
    api.script = [(500, {}, "INTERNAL")] * 3
    with pytest.raises(PerspectiveError, match=r"no answer after 3 attempts; last: HTTP 500 INTERNAL") as error:
        _scorer(api, backoff=0.01, max_attempts=3).score_batch(["idiot"])
    assert len(api.received) == 6 and "\n" not in str(error.value) and KEY not in str(error.value)


def test_cache_means_a_rerun_sends_nothing(api, tmp_path) -> None:
    texts = ["You are an idiot", "hello friend"]
    first = _scorer(api, cache_dir=tmp_path / "cache", attributes=["TOXICITY", "INSULT"])
    scores = first.score_batch(texts)
    assert len(api.received) == 2
    again = _scorer(api, cache_dir=tmp_path / "cache", attributes=["INSULT", "TOXICITY"])  # same set
    assert again.score_batch(texts) == [{k: s[k] for k in ("insult", "toxicity")} for s in scores]
    assert len(api.received) == 2 and again.requests == 0 and again.cache_hits == 2
    # Other languages are another question: asked again.
    _scorer(api, cache_dir=tmp_path / "cache", attributes=["TOXICITY", "INSULT"], languages="de").score_batch(texts)
    assert len(api.received) == 4
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"idiot" not in data and b"friend" not in data and KEY.encode() not in data


def test_long_text_is_split_under_the_limit_and_scored_as_the_max(api) -> None:
    words = " ".join(["lorem ipsum dolor sit amet é€"] * 2000)  # ~62,000 bytes, multi-byte characters
    text = words + " and you are an idiot"
    assert len(text.encode()) > 3 * MAX_COMMENT_BYTES
    scorer = _scorer(api, attributes=["TOXICITY", "INSULT"])
    assert scorer.score_batch([text]) == [{"toxicity": 0.92, "insult": 0.88}]  # only the last piece is toxic
    sent = [r["body"]["comment"]["text"] for r in api.received]
    assert len(sent) == 4 and all(len(piece.encode()) <= MAX_COMMENT_BYTES for piece in sent)
    assert "".join(sent) == text  # cut at spaces, nothing lost
    assert all(piece.endswith(" ") for piece in sent[:-1])
    # No whitespace in reach: cut at a character boundary, never inside one.
    pieces = split_text("€" * 10_000)
    assert [len(p.encode()) for p in pieces] == [20478, 9522] and "".join(pieces) == "€" * 10_000


def test_missing_key_fails_before_any_request(api, tmp_path) -> None:
    settings = ToxicitySettings(scorer="perspective", perspective_url=api.url)
    with pytest.raises(PerspectiveKeyMissing, match="set the environment variable PERSPECTIVE_API_KEY") as error:
        select_scorer(settings)
    assert "\n" not in str(error.value) and api.received == []


def test_invalid_and_forbidden_keys_give_the_server_message_without_the_key(api) -> None:
    bad = PerspectiveScorer(url=api.url, env={KEY_ENV: "AIzaSyNOT-A-VALID-KEY"})
    with pytest.raises(PerspectiveError, match="HTTP 400 INVALID_ARGUMENT: API key not valid") as error:
        bad.score_batch(["hello"])
    assert "AIzaSyNOT" not in str(error.value) and "\n" not in str(error.value)
    forbidden = PerspectiveScorer(url=api.url, env={KEY_ENV: FORBIDDEN_KEY})
    with pytest.raises(PerspectiveError, match=r"HTTP 403 PERMISSION_DENIED: .*has not been used") as error:
        forbidden.score_batch(["hello"])
    assert FORBIDDEN_KEY not in str(error.value) and "\n" not in str(error.value)
    assert len(api.received) == 2  # neither retried


def test_settings_from_home_file_and_environment(tmp_path, monkeypatch) -> None:
    (tmp_path / "toxicity.toml").write_text(
        'scorer = "perspective"\nperspective_attributes = ["threat", "insult"]\nperspective_cache = "pc"\n'
    )
    settings = ToxicitySettings.load(tmp_path)
    assert settings.perspective_attributes == ("THREAT", "INSULT") and settings.perspective_languages == ("en",)
    assert settings.perspective_cache == str(tmp_path / "pc") and settings.perspective_rate == 1.0
    monkeypatch.setenv("CUSTODY_PERSPECTIVE_LANGUAGES", "en,pt-BR")
    monkeypatch.setenv("CUSTODY_PERSPECTIVE_RATE", "0.5")
    settings = ToxicitySettings.load(tmp_path)
    assert settings.perspective_languages == ("en", "pt-br") and settings.perspective_rate == 0.5
    for bad in (
        {"perspective_attributes": ["FLIRTATION"]},
        {"perspective_rate": 0},
        {"perspective_url": "ftp://x"},
        {"perspective_url": f"https://h/?key={KEY}"},
    ):
        with pytest.raises(ValueError) as error:
            ToxicitySettings(**bad)
        assert KEY not in str(error.value)
    (tmp_path / "toxicity.toml").write_text(f'perspective_api_key = "{KEY}"\n')
    with pytest.raises(ValueError, match="unknown key 'perspective_api_key'") as error:
        ToxicitySettings.load(tmp_path)  # a key is never read from a file
    assert KEY not in str(error.value)


# -- through run_check: what is recorded, and that the key is nowhere in it --------------------------


def _dataset(home, tmp_path: Path):
    folder = tmp_path / "comments"
    folder.mkdir()
    records = [
        {"id": "a", "text": "You are an idiot"},
        {"id": "b", "text": "What a lovely morning"},
        {"id": "c", "text": "I will hurt you"},
        {"id": "d", "text": "   "},
        {"id": "e", "text": "damn this printer"},
    ]
    (folder / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    card = parse_card(CARD_TEMPLATE)
    dataset, _ = DatasetRegistry(home).register([folder], DatasetRef("comments", "1"), card, Fields(id="id"))
    return dataset


def _entries(home) -> list[bytes]:
    return [r.entry if isinstance(r.entry, bytes) else r.entry.encode() for r in home.storage.entries(0, 10_000)]


def _configure(home, api: FakePerspective) -> None:
    (home.path / "toxicity.toml").write_text(
        'scorer = "perspective"\nperspective_attributes = ["TOXICITY", "INSULT", "THREAT"]\n'
        f'perspective_rate = 50\nperspective_url = "{api.url}"\n'
    )


def test_check_records_scores_with_the_scorer_identity_and_never_the_key(
    home, tmp_path, api, monkeypatch, capsys, caplog
) -> None:
    import polars as pl

    _configure(home, api)
    monkeypatch.setenv(KEY_ENV, KEY)
    dataset = _dataset(home, tmp_path)
    result = run_check(home, dataset, build_check("toxicity"))
    assert len(api.received) == 4  # the whitespace-only record is not sent
    rows = pl.read_parquet(home.store.path_for(result.result_digest))
    by_id = {r["record_id"]: r for r in rows.iter_rows(named=True)}
    assert (by_id["a"]["verdict"], by_id["a"]["reason"], by_id["a"]["score"]) == ("flag", "toxicity", 0.92)
    assert (by_id["c"]["reason"], by_id["c"]["score"]) == ("threat", 0.94)  # the max over attributes
    assert json.loads(by_id["c"]["details"]) == {"toxicity": 0.7, "insult": 0.02, "threat": 0.94}
    assert (by_id["b"]["verdict"], by_id["d"]["reason"]) == ("pass", "empty")
    summary = result.summary(home)
    assert summary["scorer"]["name"] == "perspective" and summary["scorer"]["categories"] == [
        "toxicity",
        "insult",
        "threat",
    ]
    assert "v1alpha1" in summary["scorer"]["note"]
    config = json.loads(home.store.read_bytes(result.config_digest))
    details = config["scorer_details"]
    assert config["scorer"] == "perspective" and details["api_version"] == "v1alpha1"
    assert details["attributes"] == ["TOXICITY", "INSULT", "THREAT"] and details["do_not_store"] is True
    assert result.body["model_digest"] == summary["scorer"]["digest"]

    # A rerun is answered from the cache under the home: the server sees nothing new.
    again = run_check(home, dataset, build_check("toxicity"))
    assert len(api.received) == 4 and again.result_digest == result.result_digest

    # The key (as given, URL-encoded, or as a digest) is in no file of the home, nor in the logs.
    needles = [
        KEY.encode(),
        urllib.parse.quote(KEY).encode(),
        hashlib.sha256(KEY.encode()).hexdigest().encode(),
        hashlib.sha256(KEY.encode()).hexdigest()[:16].encode(),
    ]
    files = [p for p in home.path.rglob("*") if p.is_file()]
    assert any(p.suffix in (".db", ".sqlite", ".sqlite3") or "ledger" in p.name for p in files), files
    assert any("perspective" in str(p) for p in files)  # the cache is there too
    written = [(str(p), p.read_bytes()) for p in files] + [("ledger entries", b"\n".join(_entries(home)))]
    assert any(api.url.encode() in data for _, data in written)  # the search does see what is recorded
    for where, data in written:
        for needle in needles:
            assert needle not in data, where
    logs = (capsys.readouterr().out + capsys.readouterr().err + caplog.text).encode()
    assert not any(needle in logs for needle in needles)


def test_failures_record_nothing(home, tmp_path, api, monkeypatch) -> None:
    _configure(home, api)
    dataset = _dataset(home, tmp_path)
    before = len(_entries(home))
    with pytest.raises(PerspectiveKeyMissing, match="PERSPECTIVE_API_KEY"):
        run_check(home, dataset, build_check("toxicity"))
    assert api.received == []
    monkeypatch.setenv(KEY_ENV, FORBIDDEN_KEY)
    with pytest.raises(PerspectiveError, match="403 PERMISSION_DENIED") as error:
        run_check(home, dataset, build_check("toxicity"))
    assert FORBIDDEN_KEY not in str(error.value)
    # A server that gives up mid-dataset: two records scored, then 503s; the check is not recorded.
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("CUSTODY_PERSPECTIVE_MAX_ATTEMPTS", "2")
    api.script = [None, None, *[(503, {}, "UNAVAILABLE")] * 4]
    calls = len(api.received)
    with pytest.raises(PerspectiveError, match="no answer after 2 attempts; last: HTTP 503 UNAVAILABLE"):
        run_check(home, dataset, build_check("toxicity"))
    assert len(api.received) == calls + 4
    assert not any(b"check.completed" in entry for entry in _entries(home)[before:])
