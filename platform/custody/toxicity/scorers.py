"""Toxicity scorers and how one is chosen.

Two scorers, one contract (`Scorer`): a name, the categories it scores, a digest of its weights and
`score_batch(texts) -> [{category: probability}]`.

- `DetoxifyScorer`: a detoxify checkpoint (BERT/RoBERTa/XLM-R fine-tuned on the Jigsaw
  competitions), loaded through detoxify's own `Detoxify` class. A checkpoint is a pickle, and
  unpickling runs code, so its SHA-256 is checked against the configured value *before* it is
  handed to `torch.load`, and the bytes that were hashed are the bytes that are loaded (no window
  in which the file could be swapped). With a local Hugging Face config/tokenizer folder nothing
  is fetched from the network.
- `ProfanityScorer`: alt-profanity-check (a calibrated linear SVM on TF-IDF word features), which
  ships with the package and works offline out of the box. It scores one category, `profanity`.

`released_checkpoint(name, cache_dir)` downloads detoxify's released checkpoints (`original`,
`unbiased`, `multilingual`, ...) once into a cache folder, hash-checked; `select_scorer` picks
detoxify when it is configured and available, else the offline default, and says which ran and
why. The offline default is custody's own `custody-linear` (custody.toxicity.linear) only when the
evaluation shipped with its weights says it beats profanity-check on every set; else profanity-check.
`scorer = "perspective"` (never chosen by `auto`) sends texts to Google's Perspective API
(`custody.toxicity.perspective`), with its key from the environment.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from custody.toxicity import perspective
from custody.toxicity.weights import ChecksumError, ScorerUnavailable, sha256_bytes

DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 64
SCORERS = ("auto", "detoxify", "profanity-check", "perspective", "custody-linear")
SETTINGS_FILE = "toxicity.toml"  # in the custody home
MODEL_CACHE = Path("models") / "detoxify"  # under the custody home

# detoxify's released checkpoints (as in detoxify.detoxify.MODEL_URLS, v0.5.x). The 8 hex digits
# in each file name are the start of the file's SHA-256 (torch.hub's convention); a download
# whose hash does not start with them is refused whatever the configuration says.
_DOWNLOAD = "https://github.com/unitaryai/detoxify/releases/download/"
RELEASED: dict[str, str] = {
    "original": _DOWNLOAD + "v0.1-alpha/toxic_original-c1212f89.ckpt",
    "unbiased": _DOWNLOAD + "v0.3-alpha/toxic_debiased-c7548aa0.ckpt",
    "multilingual": _DOWNLOAD + "v0.4-alpha/multilingual_debiased-0b549669.ckpt",
    "original-small": _DOWNLOAD + "v0.1.2/original-albert-0e1d6498.ckpt",
    "unbiased-small": _DOWNLOAD + "v0.1.2/unbiased-albert-c8519128.ckpt",
}
# Full SHA-256 values known ahead of the first download. `original`'s is recorded by third
# parties (438,021,897 bytes) and agrees with the file name's prefix; it could not be re-checked
# here (no network). The others are pinned by the user after the first download (see
# `UnpinnedCheckpoint`); a pin in the configuration takes precedence over this table.
KNOWN_SHA256: dict[str, str] = {
    "original": "c1212f89ac23307ab33932ce29dc446a6e030fb3f384a500890bbe662b7b544a",
}
# Outputs that are toxicity categories. The `unbiased` model also predicts identity mentions
# (male, female, muslim, ...), which say nothing about toxicity and are not scored.
TOXICITY_OUTPUTS = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "threat",
    "insult",
    "identity_attack",
    "sexual_explicit",
)
_SMALL_FILE = 64 << 20
_WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".h5", ".msgpack", ".onnx")
_LOAD_LOCK = threading.Lock()


class OfflineError(ScorerUnavailable):
    """A released checkpoint could not be downloaded."""


class UnpinnedCheckpoint(ValueError):
    """A checkpoint was downloaded but no SHA-256 is pinned for it yet; it was not loaded."""

    def __init__(self, message: str, sha256: str, path: Path) -> None:
        super().__init__(message)
        self.sha256, self.path = sha256, path


@runtime_checkable
class Scorer(Protocol):
    name: str
    categories: tuple[str, ...]
    digest: str  # SHA-256 (hex) of the weights

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One {category: probability in [0, 1]} per text, in order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the scores depend on besides the weights (versions, limits); no text."""
        ...


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalize_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"not a SHA-256 (64 hex digits): {value!r}")
    return text


def folder_digest(folder: Path) -> str:
    """Digest of a Hugging Face config/tokenizer folder: names and contents of its small files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or path.suffix.lower() in _WEIGHT_SUFFIXES or path.stat().st_size > _SMALL_FILE:
            continue
        digest.update(rel.encode() + b"\0" + bytes.fromhex(sha256_path(path)))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class ToxicitySettings:
    """How the toxicity check scores; from HOME/toxicity.toml, then CUSTODY_* environment variables.

    `checkpoint` is a path to a detoxify checkpoint or the name of a released one (`original`,
    `unbiased`, `multilingual`, ...); `hf_config` a folder with the matching Hugging Face
    config.json and tokenizer files; `sha256` the checkpoint's SHA-256.
    """

    scorer: str = "auto"
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = DEFAULT_BATCH_SIZE
    checkpoint: str | None = None
    hf_config: str | None = None
    sha256: str | None = None
    device: str = "auto"
    # scorer = "perspective" (the key only from the environment: perspective.KEY_ENV)
    perspective_attributes: tuple[str, ...] = perspective.DEFAULT_ATTRIBUTES
    perspective_languages: tuple[str, ...] = perspective.DEFAULT_LANGUAGES
    perspective_rate: float = perspective.DEFAULT_RATE
    perspective_max_attempts: int = perspective.DEFAULT_MAX_ATTEMPTS
    perspective_url: str = perspective.DEFAULT_URL
    perspective_cache: str | None = None  # default HOME/cache/perspective

    ENV: ClassVar[dict[str, str]] = {
        "scorer": "CUSTODY_TOXICITY_SCORER",
        "threshold": "CUSTODY_TOXICITY_THRESHOLD",
        "batch_size": "CUSTODY_TOXICITY_BATCH_SIZE",
        "device": "CUSTODY_TOXICITY_DEVICE",
        "checkpoint": "CUSTODY_DETOXIFY_CHECKPOINT",
        "hf_config": "CUSTODY_DETOXIFY_HF_CONFIG",
        "sha256": "CUSTODY_DETOXIFY_SHA256",
        "perspective_attributes": "CUSTODY_PERSPECTIVE_ATTRIBUTES",
        "perspective_languages": "CUSTODY_PERSPECTIVE_LANGUAGES",
        "perspective_rate": "CUSTODY_PERSPECTIVE_RATE",
        "perspective_max_attempts": "CUSTODY_PERSPECTIVE_MAX_ATTEMPTS",
        "perspective_url": "CUSTODY_PERSPECTIVE_URL",
        "perspective_cache": "CUSTODY_PERSPECTIVE_CACHE",
    }

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"toxicity scorer must be one of {', '.join(SCORERS)}, not {self.scorer!r}")
        threshold = float(self.threshold)
        if not (0.0 <= threshold <= 1.0):
            raise ValueError(f"toxicity threshold must be between 0 and 1, not {self.threshold!r}")
        object.__setattr__(self, "threshold", threshold)
        if isinstance(self.batch_size, bool) or not (1 <= int(self.batch_size) <= 65536):
            raise ValueError(f"toxicity batch size must be between 1 and 65536, not {self.batch_size!r}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "sha256", normalize_sha256(self.sha256))
        if self.device != "auto" and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"toxicity device must be auto, cpu, cuda[:N] or mps, not {self.device!r}")
        object.__setattr__(self, "perspective_attributes", perspective.parse_attributes(self.perspective_attributes))
        object.__setattr__(self, "perspective_languages", perspective.parse_languages(self.perspective_languages))
        object.__setattr__(self, "perspective_rate", perspective.parse_rate(self.perspective_rate))
        object.__setattr__(self, "perspective_max_attempts", perspective.parse_attempts(self.perspective_max_attempts))
        object.__setattr__(self, "perspective_url", perspective.parse_url(self.perspective_url))

    @classmethod
    def load(cls, home: Any | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> ToxicitySettings:
        """Defaults < HOME/toxicity.toml < environment < explicit overrides (None means unset)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        home_path = Path(home.path) if home is not None and hasattr(home, "path") else home
        if home_path is not None and (Path(home_path) / SETTINGS_FILE).is_file():
            path = Path(home_path) / SETTINGS_FILE
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path}: not valid TOML ({exc})") from exc
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
            for key in ("checkpoint", "hf_config", "perspective_cache"):  # relative paths are relative to the home
                value = data.get(key)
                if isinstance(value, str) and value not in RELEASED and not Path(value).is_absolute():
                    data[key] = str(Path(home_path) / value)
            values.update(data)
        for key, var in cls.ENV.items():
            if env.get(var):
                values[key] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> ToxicitySettings:
        return replace(self, **changes)


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------------------
# profanity-check


class ProfanityScorer:
    """alt-profanity-check: offline, CPU, one category (`profanity`)."""

    name = "profanity-check"
    categories = ("profanity",)

    def __init__(self) -> None:
        try:
            from profanity_check import predict_prob
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ScorerUnavailable(f"alt-profanity-check is not installed ({exc})") from exc
        from importlib import metadata, resources

        self._predict_prob = predict_prob
        data = resources.files("profanity_check") / "data"
        digest = hashlib.sha256()
        for name in ("model.joblib", "vectorizer.joblib"):
            digest.update(name.encode() + b"\0" + bytes.fromhex(sha256_bytes((data / name).read_bytes())))
        self.digest = digest.hexdigest()
        self._versions = {
            "alt-profanity-check": metadata.version("alt-profanity-check"),
            "scikit-learn": metadata.version("scikit-learn"),
        }

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        probabilities = self._predict_prob(list(texts))
        return [{"profanity": float(p)} for p in probabilities]

    def describe(self) -> dict[str, Any]:
        return {"scorer": self.name, "versions": self._versions, "categories": list(self.categories)}


# ---------------------------------------------------------------------------------------------
# detoxify


@contextmanager
def _local_model_files(hf_config: Path | None):
    """Make detoxify take the config and tokenizer from a local folder, never from the Hub.

    detoxify 0.5 reads the base config by the checkpoint's model name (`bert-base-uncased`) even
    when given `huggingface_config_path`, which fails offline, and then builds the model from the
    folder's config.json without the checkpoint's number of labels. Here the config comes from
    the folder with the checkpoint's number of labels, with local files only.
    """
    import detoxify.detoxify as module

    if hf_config is None:
        yield
        return

    def local(model_type, model_name, tokenizer_name, num_classes, state_dict, huggingface_config_path=None):
        import transformers

        model_class = getattr(transformers, model_name)
        config = model_class.config_class.from_pretrained(str(hf_config), num_labels=num_classes, local_files_only=True)
        model = model_class.from_pretrained(None, config=config, state_dict=state_dict, local_files_only=True)
        tokenizer = getattr(transformers, tokenizer_name).from_pretrained(str(hf_config), local_files_only=True)
        return model, tokenizer

    with _LOAD_LOCK:
        original = module.get_model_and_tokenizer
        module.get_model_and_tokenizer = local
        try:
            yield
        finally:
            module.get_model_and_tokenizer = original


@contextmanager
def _quiet_transformers():
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def verified_checkpoint_bytes(checkpoint: Path, sha256: str | None) -> bytes:
    """The checkpoint's bytes, after checking them against the configured SHA-256."""
    expected = normalize_sha256(sha256)
    if expected is None:
        raise ChecksumError(
            f"no SHA-256 configured for detoxify checkpoint {checkpoint}; a checkpoint is a pickle and is "
            "never loaded unverified (set sha256 in HOME/toxicity.toml or CUSTODY_DETOXIFY_SHA256)"
        )
    if not checkpoint.is_file():
        raise ScorerUnavailable(f"detoxify checkpoint {checkpoint} does not exist")
    data = checkpoint.read_bytes()
    actual = sha256_bytes(data)
    if actual != expected:
        raise ChecksumError(
            f"detoxify checkpoint {checkpoint} has SHA-256 {actual}, not the configured {expected}; "
            "refusing to load it (torch.load unpickles, which can run code)"
        )
    return data


class DetoxifyScorer:
    """A detoxify checkpoint, verified, loaded through `detoxify.Detoxify`, scored in batches."""

    name = "detoxify"

    def __init__(
        self,
        checkpoint: str | Path,
        sha256: str | None,
        hf_config: str | Path | None = None,
        batch_size: int = 32,
        device: str = "auto",
        max_chars_per_token: int = 32,
    ) -> None:
        checkpoint = Path(checkpoint)
        hf_config = Path(hf_config) if hf_config is not None else None
        if hf_config is not None and not (hf_config / "config.json").is_file():
            raise ScorerUnavailable(f"{hf_config} is not a Hugging Face config folder (no config.json)")
        data = verified_checkpoint_bytes(checkpoint, sha256)  # before anything is unpickled
        self.digest = sha256_bytes(data)
        try:
            import torch
            from detoxify import Detoxify
        except ImportError as exc:  # pragma: no cover - declared dependencies
            raise ScorerUnavailable(f"detoxify or torch is not installed ({exc})") from exc
        self._torch = torch
        self.device = resolve_device(device)
        try:
            with _quiet_transformers(), _local_model_files(hf_config):
                detox = Detoxify(checkpoint=io.BytesIO(data), device=self.device, huggingface_config_path=hf_config)
        except OSError as exc:  # config/tokenizer not found locally and not downloadable
            raise ScorerUnavailable(
                f"could not load the config/tokenizer for detoxify checkpoint {checkpoint}: {exc}. "
                "Offline, give a local Hugging Face config/tokenizer folder (hf_config)."
            ) from exc
        del data
        self.model = detox.model.eval()
        self.tokenizer = detox.tokenizer
        self.batch_size = int(batch_size)
        outputs = list(detox.class_names)
        chosen = [(name, i) for i, name in enumerate(outputs) if name in TOXICITY_OUTPUTS]
        self._columns = chosen or list((name, i) for i, name in enumerate(outputs))
        self.categories = tuple(name for name, _ in self._columns)
        self.ignored_outputs = [name for name in outputs if name not in self.categories]
        config = self.model.config
        limit = int(getattr(config, "max_position_embeddings", 512) or 512)
        if "roberta" in str(getattr(config, "model_type", "")):  # positions start after the padding index
            limit -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        model_max = getattr(self.tokenizer, "model_max_length", None) or limit
        self.max_tokens = max(8, min(int(min(model_max, 1 << 30)), limit))
        self.max_chars = self.max_tokens * max_chars_per_token
        self.hf_config_digest = folder_digest(hf_config) if hf_config is not None else None
        self.architecture = type(self.model).__name__

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        torch = self._torch
        results: list[dict[str, float]] = [{} for _ in texts]
        # Similar lengths together: less padding. Texts are cut to a bounded number of characters
        # first (far more than max_tokens can cover), so a 1 MB record costs no more than a page.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            encoded = self.tokenizer(
                [texts[i][: self.max_chars] for i in chunk],
                truncation=True,
                max_length=self.max_tokens,
                padding=True,
                return_tensors="pt",
            )
            encoded = {key: value.to(self.device) for key, value in encoded.items()}
            with torch.inference_mode():
                logits = self.model(**encoded)[0]
                probabilities = torch.sigmoid(logits.float()).cpu().tolist()
            for i, row in zip(chunk, probabilities, strict=True):
                results[i] = {name: float(row[column]) for name, column in self._columns}
        return results

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        return {
            "scorer": self.name,
            "checkpoint_sha256": self.digest,
            "hf_config_digest": self.hf_config_digest,
            "architecture": self.architecture,
            "categories": list(self.categories),
            "ignored_outputs": self.ignored_outputs,
            "max_tokens": self.max_tokens,
            "device": self.device.split(":")[0],
            "versions": {name: metadata.version(name) for name in ("detoxify", "transformers", "torch")},
        }


# ---------------------------------------------------------------------------------------------
# released checkpoints


def released_checkpoint(
    name: str,
    cache_dir: str | Path,
    sha256: str | None = None,
    *,
    url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Path of detoxify's released checkpoint `name`, downloaded once into cache_dir and verified.

    The file is checked against `sha256` (or the known value for `name`) and against the hash
    prefix in its file name. Without a full pin the file is kept in the cache but not loaded:
    `UnpinnedCheckpoint` carries its hash for the user to pin. Offline: `OfflineError`.
    """
    if name not in RELEASED and url is None:
        raise ScorerUnavailable(f"no released detoxify checkpoint named {name!r} (known: {', '.join(RELEASED)})")
    url = url or RELEASED[name]
    filename = url.rsplit("/", 1)[-1]
    prefix_match = re.search(r"-([0-9a-f]{8})\.ckpt$", filename)
    prefix = prefix_match.group(1) if prefix_match else None
    expected = normalize_sha256(sha256) or KNOWN_SHA256.get(name)
    cache_dir = Path(cache_dir)
    target = cache_dir / filename

    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            partial.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise OfflineError(
                f"could not download detoxify checkpoint '{name}' from {url} ({reason}). Without network: "
                f"download it elsewhere together with its base model's Hugging Face config/tokenizer files, "
                f"copy them here and set checkpoint=<file>, hf_config=<folder>, sha256=<hash> in "
                f'HOME/{SETTINGS_FILE} (or CUSTODY_DETOXIFY_*); or use scorer = "profanity-check".'
            ) from exc
        actual = digest.hexdigest()
        if prefix and not actual.startswith(prefix):
            partial.unlink(missing_ok=True)
            raise ChecksumError(
                f"downloaded {filename} has SHA-256 {actual}, which does not start with the {prefix} its name "
                "promises; deleted, not loaded"
            )
        if expected and actual != expected:
            partial.unlink(missing_ok=True)
            raise ChecksumError(
                f"downloaded {filename} has SHA-256 {actual}, not the pinned {expected}; deleted, not loaded"
            )
        os.replace(partial, target)
    else:
        actual = sha256_path(target)
        if prefix and not actual.startswith(prefix):
            raise ChecksumError(f"cached {target} has SHA-256 {actual}, not starting with {prefix}; not loaded")
        if expected and actual != expected:
            raise ChecksumError(f"cached {target} has SHA-256 {actual}, not the pinned {expected}; not loaded")
    if expected is None:
        raise UnpinnedCheckpoint(
            f"downloaded detoxify checkpoint '{name}' to {target}; its SHA-256 is {actual}"
            + (f" (it starts with {prefix}, as its release file name says)" if prefix else "")
            + f'. Pin it to load it: add sha256 = "{actual}" to HOME/{SETTINGS_FILE} (or set '
            "CUSTODY_DETOXIFY_SHA256), after comparing it with a hash you trust.",
            actual,
            target,
        )
    return target


# ---------------------------------------------------------------------------------------------
# choosing


@dataclass(frozen=True)
class Selection:
    scorer: Scorer
    note: str  # why this scorer ran (no text from any record)
    fallback: bool = False
    settings: ToxicitySettings = field(default_factory=ToxicitySettings)


def _detoxify(settings: ToxicitySettings, home: Any | None) -> DetoxifyScorer:
    checkpoint = settings.checkpoint
    assert checkpoint is not None
    sha256 = settings.sha256
    if checkpoint in RELEASED and not Path(checkpoint).exists():
        if home is None:
            raise ScorerUnavailable(f"released checkpoint '{checkpoint}' needs a custody home for its model cache")
        path = released_checkpoint(checkpoint, Path(home.path) / MODEL_CACHE, sha256)
        sha256 = sha256 or KNOWN_SHA256[checkpoint]  # released_checkpoint returns only pinned files
    else:
        path = Path(checkpoint)
    return DetoxifyScorer(path, sha256, settings.hf_config, batch_size=settings.batch_size, device=settings.device)


def _perspective(settings: ToxicitySettings, home: Any | None) -> perspective.PerspectiveScorer:
    """The Perspective API scorer; its key from the environment (an error naming the variable if unset)."""
    cache = settings.perspective_cache
    if cache is None and home is not None:
        cache = str(Path(home.path) / perspective.CACHE_DIR)
    return perspective.PerspectiveScorer(
        settings.perspective_attributes,
        settings.perspective_languages,
        url=settings.perspective_url,
        rate=settings.perspective_rate,
        max_attempts=settings.perspective_max_attempts,
        cache_dir=cache,
    )


def select_scorer(settings: ToxicitySettings | None = None, home: Any | None = None) -> Selection:
    """detoxify when configured and available, else profanity-check; `note` says which and why.

    A checksum that does not match, or a download not yet pinned, is an error in every mode: it
    never silently falls back. With scorer = "detoxify" any failure to load it is an error.
    scorer = "perspective" is only ever chosen explicitly; without its key it is an error.
    """
    settings = settings or ToxicitySettings.load(home)
    if settings.scorer == "perspective":
        scorer = _perspective(settings, home)
        note = (
            f"perspective API {perspective.API_VERSION} (configured): {', '.join(scorer.attributes)}; "
            f"languages {', '.join(scorer.languages)}"
        )
        return Selection(scorer, note, settings=settings)
    if settings.scorer == "profanity-check":
        return Selection(ProfanityScorer(), "profanity-check (configured)", settings=settings)
    if settings.scorer == "custody-linear":  # by name; `auto` takes it once it wins its evaluation
        from custody.toxicity.linear import LinearScorer

        scorer = LinearScorer()
        return Selection(scorer, f"custody-linear (configured): weights sha256:{scorer.digest[:16]}", settings=settings)
    if settings.checkpoint:
        try:
            scorer = _detoxify(settings, home)
            return Selection(
                scorer, f"detoxify checkpoint sha256:{scorer.digest[:16]} on {scorer.device}", settings=settings
            )
        except (ChecksumError, UnpinnedCheckpoint):
            raise
        except ScorerUnavailable as exc:
            if settings.scorer == "detoxify":
                raise
            reason = str(exc)
    else:
        if settings.scorer == "detoxify":
            raise ScorerUnavailable(
                "scorer 'detoxify' needs a checkpoint: set checkpoint (a file or a released name such as "
                f"'original'), hf_config and sha256 in HOME/{SETTINGS_FILE} or CUSTODY_DETOXIFY_*"
            )
        reason = "no detoxify checkpoint is configured"
    return _offline_default(settings, reason)


def _offline_default(settings: ToxicitySettings, reason: str) -> Selection:
    """Without detoxify: custody-linear once its shipped evaluation beats profanity-check, else profanity-check."""
    from custody.toxicity import linear

    wins, verdict = linear.shipped_verdict()
    if wins:
        scorer = linear.LinearScorer()
        note = f"custody-linear (offline default: {verdict}; {reason}): weights sha256:{scorer.digest[:16]}"
        return Selection(scorer, note, fallback=True, settings=settings)
    note = f"profanity-check (fallback: {reason}; not custody-linear: {verdict})"
    return Selection(ProfanityScorer(), note, fallback=True, settings=settings)


def clean_score(value: float) -> float | None:
    """A probability in [0, 1], or None for a value that is not a number."""
    if value is None or not math.isfinite(value):
        return None
    return min(1.0, max(0.0, float(value)))
