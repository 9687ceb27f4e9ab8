"""Which episodes a run makes, and the layout seed of each: splits never share a layout.

A layout seed is derived from (root seed, task, split, episode number) through NumPy's SeedSequence,
so it is deterministic, independent of worker scheduling, and stable when more episodes or tasks
are added to a run. Different splits draw from different spawn keys; :func:`check_disjoint` then
verifies on the actual sampled layouts (object and goal positions) that no layout is shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from embodia.configs.data import SPLITS
from embodia.data.engine.tasks import layout_key


@dataclass(frozen=True)
class EpisodeSpec:
    env_name: str
    split: str
    number: int  # position within (task, split)
    layout_seed: int

    @property
    def key(self) -> str:
        """Stable name of the episode, used for staging directories and ordering."""
        return f"{self.split}-{self.env_name}-{self.number:05d}"


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def layout_seed(root_seed: int, env_name: str, split: str, number: int) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    seq = np.random.SeedSequence(
        entropy=root_seed, spawn_key=(_stable_int(env_name), SPLITS.index(split), number)
    )
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def plan_episodes(
    root_seed: int, tasks: Iterable[str], counts: dict[str, int]
) -> list[EpisodeSpec]:
    """Episodes in dataset order: by split (train, val, test), then task, then number."""
    tasks = list(tasks)
    plan = []
    for split in SPLITS:
        for env_name in tasks:
            for number in range(counts.get(split, 0)):
                seed = layout_seed(root_seed, layout_key(env_name), split, number)
                plan.append(EpisodeSpec(env_name, split, number, seed))
    return plan


class SplitOverlapError(RuntimeError):
    """Two splits ended up with the same initial layout of a task."""


def check_disjoint(layouts: Iterable[tuple[str, str, np.ndarray]], atol: float = 1e-9) -> None:
    """Raise if any (task, layout vector) appears in more than one split."""
    seen: dict[tuple[str, bytes], str] = {}
    for env_name, split, vec in layouts:
        key = (env_name, np.round(np.asarray(vec, dtype=np.float64) / max(atol, 1e-12)).tobytes())
        other = seen.setdefault(key, split)
        if other != split:
            raise SplitOverlapError(
                f"task {env_name}: the same layout {np.asarray(vec).tolist()} is in splits "
                f"{other!r} and {split!r}"
            )
