"""Training random numbers drawn per sample, from the seed the data loader gives each sample.

Why: a draw from torch's global RNG depends on everything drawn before it in the process. After
``--resume`` the global state is not what it was at that step, and every DDP rank starts from the
same seed, so ranks would draw the same "random" noise for different samples. The loader already
gives every sample a seed that is a function of (run seed, stage, sample number) only
(``embodia.training.data.StageDataset``), and the collator puts it in the batch as
``batch["sample_seed"]``. Each objective draws its numbers from a generator seeded with that seed
and a stream name of its own (and an index, e.g. the view), so the numbers of one sample are the
same on any world size, after any resume and whatever else is in the batch, and no two objectives
share a stream.

Without ``sample_seed`` (a batch built by hand, as in unit tests) the draws fall back to the
generator the caller passes, else torch's global RNG.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

SEED_KEY = "sample_seed"


def stream_generator(seed: int, stream: str, index: int = 0) -> torch.Generator:
    """A generator for (sample seed, stream, index): independent across all three."""
    words = np.random.SeedSequence([int(seed), zlib.crc32(stream.encode()), int(index)])
    return torch.Generator().manual_seed(int(words.generate_state(1, np.uint64)[0] >> 1))


class Draws:
    """Random numbers for N items (samples, or images of samples), one generator per item.

    ``items`` are (sample seed, index) pairs; with ``seeds=None`` every draw comes from
    ``fallback`` (a generator or None = the global RNG) for the whole batch at once.
    """

    def __init__(self, stream: str, items: list[tuple[int, int]] | None, n: int, fallback=None):
        self.n = n
        self.fallback = fallback
        self.gens = None if items is None else [stream_generator(s, stream, i) for s, i in items]

    def randn(self, *shape: int) -> torch.Tensor:
        """(N, *shape) standard normal."""
        if self.gens is None:
            return torch.randn(self.n, *shape, generator=self.fallback)
        return torch.stack([torch.randn(*shape, generator=g) for g in self.gens])

    def rand(self, *shape: int) -> torch.Tensor:
        """(N, *shape) uniform in [0, 1)."""
        if self.gens is None:
            return torch.rand(self.n, *shape, generator=self.fallback)
        return torch.stack([torch.rand(*shape, generator=g) for g in self.gens])


def sample_draws(
    batch: dict, stream: str, rows: list[int], index: list[int] | None = None, fallback=None
) -> Draws:
    """Draws for the items belonging to batch rows ``rows`` (with per-item ``index``, e.g. the
    view of an image), from the batch's per-sample seeds when it carries them."""
    seeds = batch.get(SEED_KEY)
    index = index if index is not None else [0] * len(rows)
    if seeds is None:
        return Draws(stream, None, len(rows), fallback)
    seeds = seeds.tolist()
    return Draws(stream, [(seeds[r], i) for r, i in zip(rows, index, strict=True)], len(rows))
