"""custody's own toxicity classifier: hashed word and character n-grams, logistic regression.

A linear model over features that need no vocabulary: scikit-learn's `HashingVectorizer` maps
word 1-2-grams and character 3-5-grams (inside word boundaries, `char_wb`) to fixed columns, so
the weights are the whole model. Counts are made sublinear (1 + log tf) and each text's vector
is L2-normalised; the score is the logistic of one dot product. Character n-grams catch the
spellings a word list misses ("f*ck", "b1tch", "niggaz"); word bigrams catch phrases.

The weights are one file, `data/custody-linear-v2.npz`: the non-zero coefficients (column,
value), the intercept and the feature settings (which tweet artefacts are removed first: HTML
entities decoded, URLs, @mentions and "RT" dropped) as JSON, written byte-for-byte deterministically
(no pickle: loaded with `allow_pickle=False`). Its SHA-256 is pinned here (`SHA256`); a file
that does not match is refused with one line naming it. How the weights were trained, on which
sets and under which license decision: `data/custody-linear-v2.md` (its card, written by the
governed run that trained it, pipelines/custody-linear.toml) and docs/toxicity.md.

This module is a detector on the ground floor: it imports nothing from custody but the model-file
helpers (weights.py). The trainer (`fit`) is here so that training and scoring share one feature
function; bench/toxicity_model.py decides what it is trained on.
"""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from custody.toxicity.weights import ChecksumError, ScorerUnavailable, sha256_bytes

NAME = "custody-linear"
CATEGORY = "toxicity"
DATA = Path(__file__).resolve().parent / "data"
WEIGHTS = DATA / "custody-linear-v2.npz"
# What ships beside the weights: the model card, the training run's offline-verifiable report and
# the ledger key that verifies it, and the evaluation the offline default is decided by.
CARD = DATA / "custody-linear-v2.md"
REPORT = DATA / "custody-linear-v2.report.json"
VERIFIER_KEY = DATA / "custody-linear-v2.pub"
EVALUATION = DATA / "custody-linear-v2.eval.json"
DEFAULT_RULE = "custody-linear's ROC-AUC is at least profanity-check's on every evaluation set"
SHA256 = "9963d1a80085805e3bfd118d1be742d857ea2becd5c76d611411b6372179b245"
FORMAT = "custody-linear/1"
# The feature settings the shipped weights were trained with (stored in the file too).
FEATURES: dict[str, Any] = {
    "word": {"analyzer": "word", "ngram_range": [1, 2], "n_features": 1 << 20},
    "char": {"analyzer": "char_wb", "ngram_range": [3, 5], "n_features": 1 << 20},
    "normalize": ["html-entities", "urls", "mentions", "retweet"],
    "lowercase": True,
    "sublinear_tf": True,
    "norm": "l2",
}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# What `normalize` may name: tweet artefacts that say where a text was posted, not whether it is
# toxic (a model trained on tweets would otherwise learn "RT @user" as a sign of toxicity).
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_RETWEET = re.compile(r"\bRT\b")


def normalize(text: str, steps: Sequence[str]) -> str:
    for step in steps:
        if step == "html-entities":
            text = html.unescape(text)
        elif step == "urls":
            text = _URL.sub(" ", text)
        elif step == "mentions":
            text = _MENTION.sub(" ", text)
        elif step == "retweet":
            text = _RETWEET.sub(" ", text)
        else:
            raise ValueError(f"unknown normalization step {step!r}")
    return text


def _vectorizers(features: dict[str, Any]) -> list[Any]:
    from sklearn.feature_extraction.text import HashingVectorizer

    return [
        HashingVectorizer(
            analyzer=features[part]["analyzer"],
            ngram_range=tuple(features[part]["ngram_range"]),
            n_features=int(features[part]["n_features"]),
            lowercase=bool(features["lowercase"]),
            alternate_sign=False,
            norm=None,
            dtype=np.float64,
        )
        for part in ("word", "char")
    ]


def featurize(texts: Sequence[str], features: dict[str, Any] = FEATURES, vectorizers: list[Any] | None = None):
    """Texts -> a CSR matrix (rows L2-normalised, 1 + log tf), word columns then char columns."""
    import scipy.sparse as sp

    steps = features.get("normalize", [])
    texts = [normalize(t, steps) for t in texts] if steps else list(texts)
    parts = [v.transform(texts) for v in (vectorizers or _vectorizers(features))]
    matrix = sp.hstack(parts, format="csr")
    if features.get("sublinear_tf", True):
        np.log(matrix.data, out=matrix.data)
        matrix.data += 1.0
    if features.get("norm", "l2") == "l2":
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        matrix = sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)
    return matrix


def fit(texts: Sequence[str], labels: Sequence[int], c: float = 10.0, features: dict[str, Any] = FEATURES) -> dict:
    """Train: logistic regression (liblinear, deterministic) -> {coef (dense), intercept, settings}."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=0)
    model.fit(featurize(texts, features), np.asarray(labels, dtype=np.int64))
    coef = model.coef_[0].astype(np.float32)
    return {
        "coef": coef,
        "intercept": float(model.intercept_[0]),
        "C": c,
        "iterations": int(np.max(model.n_iter_)),
        "nonzero": int(np.count_nonzero(coef)),
    }


def columns(features: dict[str, Any] = FEATURES) -> int:
    """How many weights the model has (hashed word and character columns)."""
    return int(features["word"]["n_features"]) + int(features["char"]["n_features"])


def versions() -> str:
    """The libraries that decide what the features and weights are."""
    return f"scikit-learn {metadata.version('scikit-learn')}, numpy {np.__version__}"


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def save(
    path: Path, coef: np.ndarray, intercept: float, meta: dict[str, Any], features: dict[str, Any] = FEATURES
) -> str:
    """Write the weights file deterministically (fixed zip dates, sorted members); its SHA-256."""
    columns = np.flatnonzero(coef).astype(np.uint32)
    header = {"format": FORMAT, "features": features, "intercept": intercept, "columns": int(coef.shape[0]), **meta}
    members = {
        "config.npy": np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8),
        "indices.npy": columns,
        "values.npy": coef[columns].astype(np.float32),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, _array_bytes(members[name]), compresslevel=9)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256_bytes(data)


def load(path: Path, sha256: str | None) -> tuple[dict[str, Any], np.ndarray, bytes]:
    """(config, dense coefficients, the bytes hashed) after checking the file's SHA-256."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ScorerUnavailable(f"{path}: custody-linear weights cannot be read ({exc.strerror or exc})") from exc
    actual = sha256_bytes(data)
    if sha256 is not None and actual != sha256:
        raise ChecksumError(f"{path}: SHA-256 is {actual}, expected {sha256}; custody-linear weights not loaded")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            config = json.loads(arrays["config"].tobytes().decode())
            indices, values = arrays["indices"], arrays["values"]
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ScorerUnavailable(f"{path}: not a custody-linear weights file ({exc})") from exc
    if config.get("format") != FORMAT:
        raise ScorerUnavailable(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    coef = np.zeros(int(config["columns"]), dtype=np.float64)
    coef[indices.astype(np.int64)] = values
    return config, coef, data


class LinearScorer:
    """custody's linear toxicity model: CPU, one category (`toxicity`), weights pinned by SHA-256."""

    name = NAME
    categories = (CATEGORY,)

    def __init__(self, path: Path | str | None = None, sha256: str | None = None) -> None:
        """The shipped weights (pinned `SHA256`), or another file with its own SHA-256 (None: unchecked)."""
        path = Path(path) if path is not None else WEIGHTS
        expected = sha256 if sha256 is not None or path != WEIGHTS else SHA256
        self.path = path
        self.config, self._coef, _ = load(path, expected)
        self.digest = sha256_bytes(path.read_bytes()) if expected is None else expected
        self._features = self.config["features"]
        self._vectorizers = _vectorizers(self._features)
        self._intercept = float(self.config["intercept"])

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        margin = featurize(texts, self._features, self._vectorizers) @ self._coef + self._intercept
        return 1.0 / (1.0 + np.exp(-margin))

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{CATEGORY: float(p)} for p in self.probabilities(texts)]

    def describe(self) -> dict[str, Any]:
        return {
            "scorer": self.name,
            "categories": list(self.categories),
            "sha256": self.digest,
            "format": self.config["format"],
            "features": self._features,
            "trained_on": self.config.get("trained_on", []),
            "versions": {"scikit-learn": metadata.version("scikit-learn"), "numpy": np.__version__},
        }


def default_verdict(evaluation: dict[str, Any], weights_sha256: str = SHA256) -> tuple[bool, str]:
    """Whether custody-linear should be the offline default, by DEFAULT_RULE applied to `evaluation`
    (the shipped EVALUATION: per set, both scorers' ROC-AUC on data the model never saw), and why."""
    if evaluation.get("weights_sha256") != weights_sha256:
        return False, "its evaluation is of other weights"
    sets = evaluation.get("sets") or {}
    if not sets:
        return False, "it has no evaluation"
    for name, row in sorted(sets.items()):
        ours, peer = row.get(NAME), row.get("profanity-check")
        if ours is None or peer is None:
            return False, f"its evaluation on {name} lacks a ROC-AUC"
        if ours < peer:
            return False, f"it loses to profanity-check on {name} (ROC-AUC {ours} < {peer})"
    return True, f"its ROC-AUC is at least profanity-check's on all {len(sets)} evaluation sets"


def shipped_verdict() -> tuple[bool, str]:
    """default_verdict on the evaluation that ships with the weights (absent or unreadable: no)."""
    try:
        evaluation = json.loads(EVALUATION.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return False, f"its evaluation cannot be read ({EVALUATION.name}: {exc})"
    return default_verdict(evaluation if isinstance(evaluation, dict) else {})
