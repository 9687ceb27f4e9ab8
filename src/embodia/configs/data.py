"""Typed configs for the data commands (`embodia data generate | show | info | stats`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from embodia.utils.cluster import Backend

SPLITS = ("train", "val", "test")


@dataclass
class GenerateConfig:
    """Render Meta-World expert episodes into a LeRobot v3 dataset plus GEM-style QA conversations."""

    output: Path = Path("outputs/metaworld-mt10")
    """Dataset directory to create (it must not exist unless --overwrite)."""
    tasks: tuple[str, ...] = ("MT10",)
    """Task names (with or without -v3) and/or set names (MT10, MT50, ML10-train, ...)."""
    episodes_per_task: tuple[int, int, int] = (8, 1, 1)
    """Episodes per task in the train, val and test splits; each episode has its own layout."""
    cameras: tuple[str, ...] = ("corner", "gripperPOV")
    """Cameras to record (Meta-World: topview, corner, corner2, corner3, corner4, behindGripper, gripperPOV)."""
    image_size: int = 128
    """Height and width of every rendered image, pixels."""
    seed: int = 0
    """Root seed: layouts, paraphrase choice and question sampling all derive from it."""
    held_out_instructions: int = 1
    """Paraphrases per task that no episode of any split uses (the last ones of the task's list),
    so that `eval rollout --instructions held-out` measures phrasings never trained on."""
    workers: int = 2
    """Parallel worker processes (each renders its own episodes); with ``--backend ray`` and no
    ``--address``, the CPUs of the local Ray instance."""
    backend: Backend = "local"
    """Where episodes are recorded: ``local`` (this machine's process pool) or ``ray`` (a Ray
    cluster, ``pip install -e .[ray]``); the same seeds give the same dataset bytes on both."""
    address: str | None = None
    """``--backend ray``: the cluster to join (``ray://head:10001``, ``auto``); None starts a
    local Ray instance."""
    shard_episodes: int = 100
    """Episodes per shard: consecutive episodes of the recording order (task by task, whichever
    workers record them) are assembled into a small LeRobot v3 dataset as soon as all are in,
    while the workers go on; the final step merges the shards, moving their videos instead of
    rewriting them. Sets how many video files a dataset has (about one per shard and camera),
    not what is in them."""
    max_steps: int = 300
    """Episode length cap (Meta-World's own cap is 500)."""
    steps_after_success: int = 10
    """Keep recording this many steps after the expert first succeeds, then stop."""
    video: bool = True
    """Store RGB as video (PyAV, the LeRobot default); False stores PNG images inside parquet."""
    max_depth: float = 10.0
    """Depth beyond this many metres is background and stored as invalid (0)."""
    qa_every: int = 20
    """Make conversation samples from every N-th frame of an episode (frame 0 included)."""
    spatial_per_image: int = 3
    """Spatial-reasoning questions drawn per image."""
    coordinates: Literal["qwen3", "qwen2.5"] = "qwen3"
    """Grounding coordinates: qwen3 = 0-1000 relative (Qwen2-VL/Qwen3-VL); qwen2.5 = absolute pixels."""
    overwrite: bool = False
    """Replace an existing dataset at --output (only once the new one is complete)."""
    progress: bool = True
    """Show a progress bar."""

    def split_of_counts(self) -> dict[str, int]:
        return dict(zip(SPLITS, self.episodes_per_task, strict=True))


@dataclass
class ShowConfig:
    """Write a PNG contact sheet of a few samples: RGB, colour-mapped depth, grounding overlays, QA."""

    dataset: Path = Path("outputs/metaworld-mt10")
    """A dataset written by `embodia data generate`."""
    output: Path | None = None
    """PNG to write; default <dataset>/contact_sheet.png."""
    samples: int = 6
    """How many frames to show."""
    split: Literal["train", "val", "test"] = "train"
    seed: int = 0


@dataclass
class InfoConfig:
    """Print a dataset's summary: episodes, frames, tasks, splits, features, QA counts."""

    dataset: Path = Path("outputs/metaworld-mt10")


@dataclass
class StatsConfig:
    """Compute a LeRobot v3 dataset's normalisation statistics (meta/stats.json).

    For datasets that lack them (or lack some features'): mean, std, min, max and the quantiles
    q01..q99 of every numeric feature, and per-channel intensity statistics of every image/video
    feature, in LeRobot's layout. Features that already have statistics are kept unless
    --overwrite."""

    dataset: tyro.conf.Positional[Path]
    """The dataset directory (its meta/info.json names the features)."""
    features: tuple[str, ...] = ()
    """Only these features; default every feature that has no statistics yet (all with
    --overwrite)."""
    visual: bool = True
    """Also image/video features (decodes every episode's video once); --no-visual skips them."""
    overwrite: bool = False
    """Recompute features that already have statistics."""
    progress: bool = True


@dataclass
class MergeConfig:
    """Merge LeRobot v3 datasets into one: videos copied whole (never re-encoded), frames
    renumbered, splits kept contiguous (every source's train episodes, then val, then test),
    exact statistics; for data-engine datasets also the QA conversations (episode names that
    collide are renumbered) and engine.json. Sources need the same fps, robot type and features."""

    sources: tyro.conf.Positional[tuple[Path, ...]]
    """Two or more dataset directories, in the order their episodes should come within a split."""
    output: Path = Path("outputs/merged")
    """Where the merged dataset goes (built beside it, renamed into place when complete)."""
    overwrite: bool = False
    """Replace an existing --output (only once the new one is complete)."""
    progress: bool = True
