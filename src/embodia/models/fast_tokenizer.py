"""FAST action tokenizer: action chunks <-> a short sequence of discrete ids.

Why this design (after the FAST paper, Pertsch et al. 2025; this is an independent implementation):

* **DCT along time, per dimension** (type II, orthonormal). Robot action chunks are smooth, so their
  energy sits in a few low frequencies; most high-frequency coefficients round to 0. Orthonormal
  means the L2 error of the chunk equals the L2 error of the coefficients, so the quantisation error
  is bounded by the rounding alone: at most ``0.5 / scale`` per coefficient, about
  ``0.29 / scale`` RMS per action value.
* **Scale and round** to integers: ``scale`` trades sequence length for precision.
* **Frequency-major order** (every dimension's lowest frequency, then the next frequency, ...): a
  sequence cut short by the language model still decodes to a smooth chunk, because what is lost
  is fine detail, not whole dimensions or the end of the chunk.
* **BPE** (HF ``tokenizers``) over the integers, each mapped to one character, merges the frequent
  patterns (runs of zeros above all) into single tokens, giving a fixed vocabulary of at most
  ``vocab_size`` ids.

The alphabet (the integers the BPE can spell) is fixed at fit time. When it fits comfortably in
the vocabulary it covers every coefficient a chunk in [-1, 1] can produce
(``|c| <= scale * sqrt(2H)``), so any normalised chunk encodes without clipping; otherwise it is the
range seen in the fit data and encoding clips coefficients outside it (documented, not an error: a
clipped high coefficient is a small, bounded error).

Decoding is lenient by default because its input comes from an autoregressive model: unknown ids
are dropped, a short sequence is padded with zero coefficients, a long one truncated. It never
raises; :meth:`FastActionTokenizer.decode_checked` says whether the sequence was well formed.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct, idct
from tokenizers import Tokenizer, models, trainers

from embodia.utils.fs import atomic_write_text

CONFIG_FILE = "fast_config.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "embodia-fast"
FORMAT_VERSION = 1
# Integer v is the character chr(_CHAR_BASE + v - low). 0x100 skips ASCII/Latin-1 (whitespace and
# control characters that tooling likes to mangle); the alphabet must stay below the surrogates.
_CHAR_BASE = 0x100
_MAX_ALPHABET = 0xD800 - _CHAR_BASE
# The full [-1, 1] alphabet is used only while it leaves at least this share of ids for merges.
_FULL_ALPHABET_SHARE = 0.5


class FastTokenizerFormatError(ValueError):
    """A saved tokenizer file is missing a field or is malformed; the message names the file."""


@dataclass(frozen=True)
class FastConfig:
    """Shape and resolution of the chunks a FAST tokenizer handles."""

    horizon: int
    """H: timesteps per action chunk."""
    action_dim: int
    """D: action dimensions."""
    scale: float = 10.0
    """DCT coefficients are multiplied by this before rounding: larger = finer and longer."""
    vocab_size: int = 1024
    """Upper bound on ids; the language model reserves this many ``<|fast_k|>`` tokens."""

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.action_dim < 1:
            raise ValueError(
                f"horizon and action_dim must be >= 1: {self.horizon}, {self.action_dim}"
            )
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a positive number: {self.scale}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2: {self.vocab_size}")

    @property
    def num_coefficients(self) -> int:
        return self.horizon * self.action_dim


@dataclass(frozen=True)
class DecodeResult:
    """A decoded chunk and whether the ids were a well-formed encoding of one."""

    actions: np.ndarray
    """(H, D) float64 in normalised units; always this shape, whatever the input was."""
    valid: bool
    """False if any id was unknown or the coefficient count was not exactly H * D."""
    problems: tuple[str, ...] = ()
    """Human-readable reasons when not valid (for logs and eval reports)."""


class FastActionTokenizer:
    """DCT + BPE tokenizer for (H, D) action chunks normalised to about [-1, 1]."""

    def __init__(self, config: FastConfig, bpe: Tokenizer, coefficient_range: tuple[int, int]):
        low, high = (int(v) for v in coefficient_range)
        if high < low or high - low + 1 > _MAX_ALPHABET:
            raise ValueError(f"bad coefficient range [{low}, {high}]")
        if bpe.get_vocab_size() > config.vocab_size:
            raise ValueError(
                f"BPE vocabulary has {bpe.get_vocab_size()} ids, more than vocab_size "
                f"{config.vocab_size}"
            )
        self.config = config
        self.coefficient_range = (low, high)
        self._bpe = bpe
        # id -> the integer coefficients its token spells; decode is then a table lookup.
        self._id_values: list[np.ndarray] = []
        for i in range(bpe.get_vocab_size()):
            token = bpe.id_to_token(i)
            if token is None:
                raise ValueError(f"BPE vocabulary has no token for id {i}")
            codes = np.array([ord(c) - _CHAR_BASE for c in token], dtype=np.int64)
            if len(codes) == 0 or codes.min() < 0 or codes.max() > high - low:
                raise ValueError(f"BPE token {token!r} (id {i}) is outside the alphabet")
            self._id_values.append(codes + low)
        missing = [v for v in range(low, high + 1) if bpe.token_to_id(_char(v, low)) is None]
        if missing:
            raise ValueError(f"BPE vocabulary lacks the single-coefficient tokens {missing[:5]}...")

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        chunks: np.ndarray,
        scale: float = 10.0,
        vocab_size: int = 1024,
        min_frequency: int = 2,
        seed: int = 0,
        max_chunks: int | None = None,
    ) -> FastActionTokenizer:
        """Fit on normalised chunks ``(N, H, D)``.

        ``max_chunks`` caps how many chunks train the BPE (a ``seed``-chosen subset): merges
        converge long before the data runs out, and BPE training time grows with the data.
        ``min_frequency``: a pair seen fewer times is never merged (avoids ids for one-off
        patterns that the model would never learn).
        """
        chunks = _as_chunks(chunks)
        n, horizon, dim = chunks.shape
        config = FastConfig(horizon, dim, float(scale), int(vocab_size))
        if max_chunks is not None and n > max_chunks:
            pick = np.random.default_rng(seed).choice(n, size=max_chunks, replace=False)
            chunks = chunks[np.sort(pick)]
        coeffs = _coefficients(chunks, config.scale)
        low, high = _alphabet_range(int(coeffs.min()), int(coeffs.max()), config)
        texts = [_to_text(row, low) for row in coeffs.reshape(len(coeffs), -1)]
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=config.vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=[_char(v, low) for v in range(low, high + 1)],
        )
        bpe.train_from_iterator(texts, trainer, length=len(texts))
        return cls(config, bpe, (low, high))

    # ------------------------------------------------------------------ encode / decode

    @property
    def num_ids(self) -> int:
        """Ids actually in use (<= ``config.vocab_size``; fewer if the data had fewer patterns)."""
        return len(self._id_values)

    def encode(self, chunk: np.ndarray) -> list[int]:
        """One normalised chunk ``(H, D)`` -> ids in ``[0, vocab_size)``."""
        return self.encode_batch(np.asarray(chunk)[None])[0]

    def encode_batch(self, chunks: np.ndarray | Sequence[np.ndarray]) -> list[list[int]]:
        """Chunks ``(N, H, D)`` -> one id list each (lengths differ)."""
        chunks = _as_chunks(chunks, allow_empty=True)
        if chunks.shape[1:] != (self.config.horizon, self.config.action_dim):
            raise ValueError(
                f"chunks have shape {chunks.shape[1:]} per chunk, tokenizer expects "
                f"({self.config.horizon}, {self.config.action_dim})"
            )
        low, high = self.coefficient_range
        coeffs = np.clip(_coefficients(chunks, self.config.scale), low, high)
        texts = [_to_text(row, low) for row in coeffs.reshape(len(coeffs), -1)]
        return [enc.ids for enc in self._bpe.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int], strict: bool = False) -> np.ndarray:
        """Ids -> normalised chunk ``(H, D)``; lenient unless ``strict`` (then ValueError)."""
        result = self.decode_checked(ids)
        if strict and not result.valid:
            raise ValueError("malformed FAST sequence: " + "; ".join(result.problems))
        return result.actions

    def decode_checked(self, ids: Sequence[int]) -> DecodeResult:
        """Ids -> :class:`DecodeResult`; never raises on bad ids (see the module docstring)."""
        problems: list[str] = []
        parts: list[np.ndarray] = []
        unknown: list[Any] = []
        for raw in ids:
            try:
                i = operator.index(raw)
            except TypeError:
                i = -1
            if 0 <= i < len(self._id_values):
                parts.append(self._id_values[i])
            else:
                unknown.append(raw)
        if unknown:
            problems.append(f"{len(unknown)} unknown id(s) dropped, e.g. {unknown[:3]}")
        values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        need = self.config.num_coefficients
        if len(values) < need:
            problems.append(f"{len(values)} of {need} coefficients; the rest set to 0")
            values = np.concatenate([values, np.zeros(need - len(values), dtype=np.int64)])
        elif len(values) > need:
            problems.append(f"{len(values) - need} coefficient(s) beyond {need} dropped")
            values = values[:need]
        coeffs = values.reshape(self.config.horizon, self.config.action_dim) / self.config.scale
        actions = idct(coeffs, type=2, axis=0, norm="ortho")
        return DecodeResult(actions, not problems, tuple(problems))

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Lenient decode of many sequences -> ``(N, H, D)``."""
        out = np.zeros((len(batch), self.config.horizon, self.config.action_dim))
        for k, ids in enumerate(batch):
            out[k] = self.decode_checked(ids).actions
        return out

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path | str) -> None:
        """Write ``tokenizer.json`` (HF BPE) then ``fast_config.json``, each atomically.

        The config records the tokenizer file's SHA-256 and is written last, so a crash between
        the two writes leaves a pair that :meth:`load` rejects rather than a silently mixed one.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        bpe_text = self._bpe.to_str(pretty=True)
        atomic_write_text(directory / TOKENIZER_FILE, bpe_text)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": asdict(self.config),
            "coefficient_range": list(self.coefficient_range),
            "char_base": _CHAR_BASE,
            "tokenizer_sha256": _sha256(bpe_text),
        }
        atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path | str) -> FastActionTokenizer:
        """Read what :meth:`save` wrote; a missing or corrupt file raises naming file and field."""
        directory = Path(directory)
        meta = _read_json_object(directory / CONFIG_FILE)
        bpe_path = directory / TOKENIZER_FILE
        if not bpe_path.is_file():
            raise FileNotFoundError(f"{bpe_path}: tokenizer file does not exist")
        bpe_text = bpe_path.read_text()
        where = directory / CONFIG_FILE
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise FastTokenizerFormatError(
                f"{where}: fields 'format'/'version' are {meta.get('format')!r}/"
                f"{meta.get('version')!r}, expected {FORMAT!r}/{FORMAT_VERSION}"
            )
        if meta.get("char_base") != _CHAR_BASE:
            raise FastTokenizerFormatError(f"{where}: field 'char_base' must be {_CHAR_BASE}")
        if meta.get("tokenizer_sha256") != _sha256(bpe_text):
            raise FastTokenizerFormatError(
                f"{bpe_path}: content does not match field 'tokenizer_sha256' of {where} "
                "(the pair was not written together)"
            )
        config = _parse_config(meta.get("config"), where)
        rng = meta.get("coefficient_range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(type(v) is int for v in rng)):
            raise FastTokenizerFormatError(
                f"{where}: field 'coefficient_range' must be [low, high] integers"
            )
        try:
            bpe = Tokenizer.from_str(bpe_text)
        except Exception as exc:  # the Rust side raises plain Exception subclasses
            raise FastTokenizerFormatError(f"{bpe_path}: not a valid HF tokenizer ({exc})") from exc
        try:
            return cls(config, bpe, (rng[0], rng[1]))
        except ValueError as exc:
            raise FastTokenizerFormatError(f"{directory}: inconsistent tokenizer ({exc})") from exc


# ---------------------------------------------------------------------- helpers


def _as_chunks(chunks: Any, allow_empty: bool = False) -> np.ndarray:
    arr = np.asarray(chunks, dtype=np.float64)
    if arr.ndim != 3 or (len(arr) == 0 and not allow_empty) or 0 in arr.shape[1:]:
        raise ValueError(f"expected chunks of shape (N, H, D) with N, H, D >= 1, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("chunks contain NaN or inf")
    return arr


def _coefficients(chunks: np.ndarray, scale: float) -> np.ndarray:
    """(N, H, D) -> (N, H, D) int64; axis 1 is now frequency, so row-major = frequency-major."""
    return np.rint(dct(chunks, type=2, axis=1, norm="ortho") * scale).astype(np.int64)


def _alphabet_range(lo: int, hi: int, config: FastConfig) -> tuple[int, int]:
    """Integers the BPE spells: all of [-1, 1]'s if affordable, else the observed ones."""
    bound = math.ceil(config.scale * math.sqrt(2 * config.horizon))
    full = (min(lo, -bound), max(hi, bound))
    if full[1] - full[0] + 1 <= _FULL_ALPHABET_SHARE * config.vocab_size:
        return full
    size = hi - lo + 1
    if size > min(config.vocab_size, _MAX_ALPHABET):
        raise ValueError(
            f"the coefficients take {size} distinct values in [{lo}, {hi}], more than "
            f"vocab_size {config.vocab_size}: raise vocab_size or lower scale"
        )
    return lo, hi


def _char(value: int, low: int) -> str:
    return chr(_CHAR_BASE + value - low)


def _to_text(row: np.ndarray, low: int) -> str:
    return "".join(map(chr, (row - low + _CHAR_BASE).tolist()))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer config does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FastTokenizerFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise FastTokenizerFormatError(f"{path}: top level must be an object")
    return data


def _parse_config(data: Any, where: Path) -> FastConfig:
    if not isinstance(data, dict):
        raise FastTokenizerFormatError(f"{where}: field 'config' must be an object")
    types = {"horizon": int, "action_dim": int, "scale": (int, float), "vocab_size": int}
    for name, typ in types.items():
        value = data.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, typ):
            raise FastTokenizerFormatError(
                f"{where}: field 'config.{name}' is missing or not a number"
            )
    try:
        return FastConfig(**{name: data[name] for name in types})
    except ValueError as exc:
        raise FastTokenizerFormatError(f"{where}: field 'config' is invalid ({exc})") from exc
