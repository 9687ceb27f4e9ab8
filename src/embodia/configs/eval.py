"""Typed options of ``embodia eval``: every field ends up in ``results.json`` as the protocol.

An evaluation number is only worth something if another person can reproduce it, so nothing that
changes the number is implicit: the task set, the split the layouts come from, the number of
episodes, the root seed, the executed steps per chunk, ensembling, the action head, the Uni-CoT
levels, the cameras, the image size and the step limit are all fields here, and the resolved values
(not the ``None`` defaults) are what the report records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from embodia.utils.cluster import Backend

PolicyKind = Literal["model", "expert", "random"]
Benchmark = Literal["metaworld", "libero"]


@dataclass
class RolloutConfig:
    """Closed-loop rollouts (Meta-World or LIBERO): success rate per task with a 95% CI."""

    checkpoint: Path | None = None
    """Checkpoint: a step directory, a run directory (``runs/x``), its ``checkpoints/`` or ``checkpoints/latest``; needed for ``--policy model``."""
    policy: PolicyKind = "model"
    """``model`` (the checkpoint), or the reference policies that validate the harness:
    ``expert`` (the data engine's scripted expert, near 100%) and ``random`` (near 0%)."""
    benchmark: Benchmark = "metaworld"
    """``libero`` needs the optional extra: ``pip install -e .[libero]``."""
    tasks: tuple[str, ...] = ("MT10",)
    """Meta-World tasks or sets (``reach``, ``MT10``, ``MT50``, ...) or LIBERO suites
    (``libero_spatial libero_object libero_goal libero_10``)."""
    split: Literal["train", "val", "test"] = "test"
    """Meta-World: the layout split episodes come from; ``test`` layouts never appear in training."""
    episodes_per_task: int = 10
    """Episodes per task, each from a different initial state (LIBERO: at most 50, the suite's
    fixed initial states in order)."""
    seed: int | None = None
    """Root seed of the layout seeds (the data engine's ``--seed``); None = the training dataset's
    seed read from the checkpoint, else 0. Must equal the dataset's for the split to be held out."""
    max_steps: int | None = None
    """Step limit per episode; None = the benchmark's own (Meta-World 500, LIBERO per suite)."""
    execute_steps: int | None = None
    """Actions executed from each chunk before the next is requested; None = the whole chunk
    (1 with ``--ensemble``)."""
    ensemble: float | None = None
    """Temporal ensembling (ACT): every executed action averages all chunks predicted for that
    step with weights exp(-m * i), i = 0 the oldest; this is m (ACT uses 0.01). None = off."""
    mode: Literal["flow", "fast"] | None = None
    """Action head; None = the checkpoint's default."""
    flow_noise_scale: float | None = None
    """Scale of the flow's starting noise (``policy.json``'s ``flow_noise_scale``); 0 = one
    deterministic chunk per observation. None = the checkpoint's (1 unless set)."""
    levels: tuple[str, ...] = ("actions",)
    """Uni-CoT levels before the actions, e.g. ``subtask actions`` or
    ``reasoning subtask actions``."""
    instructions: Literal["seen", "held-out"] = "seen"
    """Meta-World: phrase each episode's instruction with the paraphrases the training data used,
    or with those its engine held out (``data generate --held-out-instructions``), on the same
    layouts."""
    cameras: tuple[str, ...] | None = None
    """Cameras rendered; None = the checkpoint's (reference policies: ``corner gripperPOV``)."""
    image_size: int | None = None
    """Rendered resolution; None = the training dataset's (from its ``engine.json``), else 128."""
    random_horizon: int = 8
    """Chunk length of ``--policy random`` (goes through the same chunk executor)."""
    workers: int = 2
    """Environment worker processes (each owns its scenes and renderer); 0 = in this process.
    With ``--backend ray``: environment actors on the cluster (and, without ``--address``, the
    CPUs of the local Ray instance)."""
    backend: Backend = "local"
    """Where environments run: ``local`` processes or ``ray`` actors (``pip install -e .[ray]``);
    the policy stays here and answers all of them in one batch. Same seeds, same results."""
    address: str | None = None
    """``--backend ray``: the cluster to join (``ray://head:10001``, ``auto``); None starts a
    local Ray instance."""
    videos: int = 4
    """Episodes written as MP4 with the instruction and predicted subtask drawn on them."""
    output: Path = Path("outputs/eval/rollout")
    device: str = "cpu"


@dataclass
class QAConfig:
    """Embodied QA on a data-engine dataset's held-out conversations (grounding, spatial,
    planning), scored against the structured exact answers."""

    checkpoint: Path
    """Checkpoint: a step directory, a run directory (``runs/x``), its ``checkpoints/`` or ``checkpoints/latest``."""
    dataset: Path = Path("outputs/quickstart")
    split: Literal["val", "test"] = "test"
    limit: int | None = None
    """Score at most this many questions, drawn evenly over categories (None = all)."""
    max_new_tokens: int = 96
    examples: int = 8
    """Wrong / unparseable answers quoted in the report."""
    output: Path = Path("outputs/eval/qa")
    device: str = "cpu"
    blind_split: str | None = "train"
    """The split whose answers form the blind baseline reported beside every category
    (``embodia.evaluation.blind``); None = none. Skipped, with a note, if the dataset lacks it."""


@dataclass
class DepthConfig:
    """Generated depth against ground truth (AbsRel, delta<1.25) on a dataset's held-out images."""

    checkpoint: Path
    """Checkpoint: a step directory, a run directory (``runs/x``), its ``checkpoints/`` or ``checkpoints/latest``."""
    dataset: Path = Path("outputs/quickstart")
    split: Literal["val", "test"] = "test"
    limit: int = 64
    """Images scored (distinct views of the split, in file order)."""
    grid: int = 6
    """Images shown in the prediction vs ground-truth figure."""
    output: Path = Path("outputs/eval/depth")
    device: str = "cpu"


@dataclass
class BenchConfig:
    """Public embodied benchmarks in their published formats: CV-Bench, Where2Place."""

    checkpoint: Path
    """Checkpoint: a step directory, a run directory (``runs/x``), its ``checkpoints/`` or ``checkpoints/latest``."""
    benchmark: Literal["cvbench", "where2place"]
    data: Path
    """CV-Bench: the folder with ``test.jsonl`` (or ``test.parquet``) and ``img/``; Where2Place:
    the folder with ``point_questions.jsonl``, ``images/`` and ``masks/``."""
    limit: int | None = None
    max_new_tokens: int = 96
    coordinates: Literal["qwen3", "qwen2.5"] = "qwen3"
    """How to read a Qwen ``point_2d`` answer (0-1000 relative, or pixels); tuples of floats in
    [0, 1] are always read as relative, as Where2Place asks."""
    output: Path = Path("outputs/eval/bench")
    device: str = "cpu"
