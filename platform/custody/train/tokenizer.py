"""Byte-level BPE tokenizers (Hugging Face `tokenizers`), identified by the SHA-256 of their JSON.

A tokenizer is trained from an iterator of texts (the approved, prepared records) or loaded from a
given file. Either way its identity is the digest of the exact JSON bytes that were saved or read,
so a run can record which tokenizer it used and refuse a file that changed. Training is
deterministic: the same texts in the same order give byte-identical JSON (tests check this across
processes and thread counts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable, or not the one that was expected."""


class TokenizerDigestMismatch(TokenizerError):
    pass


class BPETokenizer:
    """A loaded tokenizer with the digest of its JSON bytes.

    Text is encoded with special tokens treated as plain text: a record that happens to contain
    "<|endoftext|>" must not inject a document boundary; boundaries are added by id (`eot_id`).
    """

    def __init__(self, data: bytes, digest: str | None = None) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if digest is not None and digest.removeprefix("sha256:") != actual:
            raise TokenizerDigestMismatch(
                f"tokenizer bytes hash to {actual}, expected {digest.removeprefix('sha256:')}"
            )
        try:
            self.tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises a plain Exception for malformed JSON
            raise TokenizerError(f"not a Hugging Face tokenizer JSON ({str(exc).splitlines()[0]})") from exc
        self.tokenizer.encode_special_tokens = True
        self.data = data
        self.digest = actual
        eot = self.tokenizer.token_to_id(EOT)
        if eot is None:
            raise TokenizerError(f"the tokenizer has no {EOT} token (train it with special_tokens including {EOT})")
        self.eot_id: int = eot

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Each id's vocabulary entry (byte-level symbols, e.g. 'Ġthe' for ' the'), for inspection."""
        return [self.tokenizer.id_to_token(i) for i in ids]

    def save(self, path: Path) -> str:
        """Write the exact bytes the digest names; return the digest."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.data)
        tmp.replace(path)
        return self.digest


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8192,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (EOT,),
) -> BPETokenizer:
    """Train a GPT-2-style byte-level BPE: every byte is in the base alphabet, so nothing is unknown."""
    if EOT not in special_tokens:
        special_tokens = (EOT, *special_tokens)
    base = len(pre_tokenizers.ByteLevel.alphabet()) + len(special_tokens)
    if vocab_size < base:
        raise TokenizerError(f"vocab_size {vocab_size} is smaller than the 256 byte symbols plus special tokens")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return BPETokenizer(tokenizer.to_str(pretty=False).encode("utf-8"))


def load_tokenizer(path: Path, expected_digest: str | None = None) -> BPETokenizer:
    """Load a tokenizer file; with `expected_digest`, refuse bytes that hash to anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TokenizerError(f"{path}: tokenizer file not found") from None
    except IsADirectoryError:
        raise TokenizerError(f"{path}: is a directory, expected a tokenizer JSON file") from None
    try:
        return BPETokenizer(data, expected_digest)
    except TokenizerError as exc:
        raise type(exc)(f"{path}: {exc}") from None
