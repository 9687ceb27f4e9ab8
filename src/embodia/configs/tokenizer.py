"""Typed config for `embodia tokenizer fit`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FitConfig:
    """Fit a FAST action tokenizer (DCT + BPE) on a LeRobot v3 dataset's normalised action chunks."""

    dataset: Path
    """LeRobot v3 dataset directory (e.g. one written by `embodia data generate`)."""
    output: Path
    """Directory to write the tokenizer (fast_config.json, tokenizer.json) and fit_report.json."""
    key: str = "action"
    """Feature to tokenize; normalised with the dataset's q01/q99 from meta/stats.json."""
    horizon: int = 32
    """Timesteps per action chunk (H)."""
    stride: int = 4
    """A chunk starts every this many frames of an episode; the end is padded with the last action."""
    vocab_size: int = 1024
    """Number of FAST ids (the language model reserves this many <|fast_k|> tokens)."""
    scale: float = 10.0
    """DCT coefficients are scaled by this before rounding: larger = more precise, more tokens."""
    split: str = "train"
    """Dataset split to read (from info.json's splits); 'all' reads every episode."""
    max_chunks: int | None = None
    """Cap on the chunks that train the BPE (a seeded random subset); None uses all."""
    holdout: float = 0.1
    """Fraction of the split's episodes kept out of fitting to measure round-trip error (>= 1 when
    there are at least 2 episodes)."""
    min_frequency: int = 2
    """BPE never merges a pair seen fewer times than this."""
    seed: int = 0
    """Seeds the held-out episode choice and the max_chunks subset."""
    progress: bool = True
    """Show a progress bar over episodes."""
