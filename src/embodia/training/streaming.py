"""Training on datasets larger than the frame cache: shards, windows, and a bounded cache.

By default every loader reads a split from one frame cache (:mod:`embodia.data.frame_cache`):
the whole split decoded once at the model's resolution. That is the fastest path, but the cache
needs the disk of the whole split at that resolution (128 px, two views and depth: about 115 kB a
frame, 115 GB for a million frames). Streaming (``--stream-shard-episodes N``) bounds it:

* the split is cut into **shards** of N episodes, each cached on its own entry; a shard is an
  even sample of the split (episodes dealt by a fixed permutation), not N consecutive episodes,
  because datasets recorded task by task would otherwise give windows of one or two tasks;
* every epoch the shards are shuffled (by the training seed and the epoch) and dealt to the
  processes, so within an epoch each process (``accelerate`` rank, on any node) reads shards
  no other process reads;
* a process trains on a **window** of ``--stream-window`` of its shards at a time, each sample a
  frame drawn uniformly from the window, for as many steps as it takes to draw about as many of
  the source's samples as the window has frames; then it moves to its next window;
* shard caches are built on first use (the next window's in a background thread, so training
  rarely waits) and the least recently used are deleted once this process's entries exceed
  ``--frame-cache-budget-gb`` (never those of the current or the next window).

Which frame sample ``n`` is depends only on the seed, the stage, ``n`` and the world size: runs
with the same seed and the same number of processes see the same samples in the same order, and
a resumed run continues the sequence where it stopped.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embodia.data.frame_cache import FrameCache


class StreamError(ValueError):
    """Streaming settings that cannot work (the message names the option)."""


@dataclass(frozen=True)
class StreamConfig:
    """The three streaming options of ``embodia train`` (see the module docstring)."""

    shard_episodes: int
    window: int = 4
    budget_gb: float = 20.0

    def __post_init__(self) -> None:
        if self.shard_episodes < 1 or self.window < 1 or self.budget_gb <= 0:
            raise StreamError(
                "--stream-shard-episodes and --stream-window must be at least 1 and "
                f"--frame-cache-budget-gb positive (got {self.shard_episodes}, {self.window}, "
                f"{self.budget_gb})"
            )


#: Seed of the episode -> shard partition: fixed, so that every run (any training seed) cuts a
#: dataset the same way and finds the shard caches earlier runs built.
SHARD_PARTITION_SEED = 0


def cut_shards(episodes: list[int], size: int) -> list[tuple[int, ...]]:
    """Groups of ``size`` episodes (the last may be smaller), each an even sample of the split.

    Datasets are usually recorded task by task (the engine's and most LeRobot datasets are), so
    consecutive episodes would make a window of a few shards hold one or two tasks, and training
    would move from task to task and forget the earlier ones. The episodes are therefore dealt
    by a fixed permutation; within a shard they stay in dataset order (the order its video files
    are read in when the shard's cache is built).
    """
    order = np.random.default_rng(SHARD_PARTITION_SEED).permutation(len(episodes))
    groups = [np.sort(order[i : i + size]) for i in range(0, len(episodes), size)]
    return [tuple(episodes[int(j)] for j in g) for g in groups]


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class ShardSchedule:
    """Which shards one process reads in each window of one stage.

    Epoch ``e`` shuffles every shard with a generator seeded by (seed, stage, source, e) and
    gives rank ``r`` the shards at positions r, r + world, ...; the rank's shards, epoch after
    epoch, form one sequence that is cut into windows of ``window`` shards.
    """

    def __init__(
        self,
        num_shards: int,
        window: int,
        seed: int,
        stage: int,
        source: str,
        rank: int,
        world: int,
    ):
        if num_shards < world:
            raise StreamError(
                f"dataset {source!r}: {num_shards} shard(s) for {world} processes; every process "
                "needs shards of its own: lower --stream-shard-episodes"
            )
        self.num_shards, self.window = num_shards, window
        self.key = (seed, stage, _stable(source))
        self.rank, self.world = rank, world
        self.per_epoch = len(range(rank, num_shards, world))

    def epoch(self, e: int) -> list[int]:
        """This rank's shards in epoch ``e``."""
        order = np.random.default_rng([*self.key, e]).permutation(self.num_shards)
        return [int(s) for s in order[self.rank :: self.world]]

    def shards(self, window: int) -> list[int]:
        """The shards of this rank's window number ``window``."""
        first = window * self.window
        out = []
        for p in range(first, first + self.window):
            e, i = divmod(p, self.per_epoch)
            out.append(self.epoch(e)[i])
        return out


class ShardCaches:
    """Frame caches of shards, opened (built if need be) on demand, least recently used deleted
    beyond a byte budget. Each process (each data-loader worker) keeps its own."""

    def __init__(self, open_shard: Callable[[int], FrameCache], budget_bytes: float):
        self.open_shard, self.budget = open_shard, budget_bytes
        self.open: OrderedDict[int, FrameCache] = OrderedDict()
        self._lock = threading.Lock()
        self._prefetching: set[int] = set()
        self._threads: list[threading.Thread] = []

    def get(self, shard: int, protect: set[int]) -> FrameCache:
        with self._lock:
            if shard in self.open:
                self.open.move_to_end(shard)
                return self.open[shard]
        cache = self._open(shard)
        with self._lock:
            self.open[shard] = cache
            self.open.move_to_end(shard)
            self._evict(protect | {shard})
        return cache

    def _open(self, shard: int) -> FrameCache:
        try:
            return self._mapped(shard)
        except FileNotFoundError:  # another process evicted it between open and map: rebuild
            return self._mapped(shard)

    def _mapped(self, shard: int) -> FrameCache:
        cache = self.open_shard(shard)
        for name in cache.array_names():
            cache.array(name)  # map every array now: a deleted entry fails here, not later
        return cache

    def _evict(self, protect: set[int]) -> None:
        total = sum(_entry_bytes(c) for c in self.open.values())
        for shard in list(self.open):
            if total <= self.budget:
                return
            if shard in protect:
                continue
            cache = self.open.pop(shard)
            total -= _entry_bytes(cache)
            # mapped pages stay valid for whoever still reads them; new readers rebuild it
            shutil.rmtree(cache.directory, ignore_errors=True)

    def prefetch(self, shards: list[int]) -> None:
        """Build (or open) ``shards`` in a background thread, for the next window."""
        with self._lock:
            todo = [s for s in shards if s not in self.open and s not in self._prefetching]
            self._prefetching |= set(todo)
        if todo:
            thread = threading.Thread(target=self._prefetch, args=(todo,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def wait(self) -> None:
        """Until every background build has finished (tests, and a clean shutdown)."""
        for thread in list(self._threads):
            thread.join()

    def _prefetch(self, shards: list[int]) -> None:
        try:
            for shard in shards:
                self.open_shard(shard)  # on disk now; get() maps it when the window starts
        finally:
            with self._lock:
                self._prefetching -= set(shards)


def _entry_bytes(cache: FrameCache) -> int:
    return sum(p.stat().st_size for p in cache.directory.glob("*.npy") if p.is_file())


@dataclass(frozen=True)
class Position:
    """Where sample ``n`` of a stage falls: its (micro-)step and the process it belongs to,
    as :class:`~embodia.training.data.StepSampler` hands sample numbers out."""

    global_batch: int
    world: int

    def step_and_rank(self, n: int) -> tuple[int, int]:
        step, within = divmod(n, self.global_batch)
        return step, within // (self.global_batch // self.world)


__all__ = [
    "Position",
    "ShardCaches",
    "ShardSchedule",
    "StreamConfig",
    "StreamError",
    "cut_shards",
]
