"""Typed training configs: datasets, curriculum stages (as data) and the run itself.

A curriculum is a list of :class:`StageConfig`. Each stage names the parameter groups it trains,
its loss weights, its data mixture, its step count and learning-rate schedule: GEM's and
WALL-OSS's curricula are two such lists (:data:`CURRICULA`), and a user's own list comes from a
JSON file (``--curriculum-file``). Nothing about a stage is a code path.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class DatasetSpec:
    """One data source. ``kind`` episodes = LeRobot v3 episodes; conversations = GEM/Qwen JSONL."""

    path: Path
    kind: Literal["episodes", "conversations"] = "episodes"
    name: str = ""  # defaults to the directory name
    split: str = "train"
    embodiment: str = "metaworld-sawyer"
    cameras: tuple[str, ...] = ()  # episodes: default = every image/video feature, in order
    state_key: str = "observation.state"
    action_key: str = "action"

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


@dataclass
class StageConfig:
    """One curriculum stage."""

    name: str
    steps: int
    trainable: tuple[str, ...]  # parameter groups (see embodia.training.groups.GROUPS)
    loss_weights: dict[str, float]  # e.g. {"text": 1, "fast": 1} or {"flow": 1, "depth": 0.1}
    mixture: dict[str, float] = field(default_factory=lambda: {"episodes": 1.0})
    """Weights per dataset kind ("episodes", "conversations") or per dataset name."""
    action_modes: dict[str, float] = field(default_factory=lambda: {"flow": 1.0})
    """How episode samples are turned into targets: flow chunks, FAST tokens, or both kinds."""
    level_drop: dict[str, float] = field(default_factory=lambda: {"reasoning": 0.5, "subtask": 0.3})
    """Uni-CoT: probability of dropping each intermediate level from a sample that has it (the
    prompt's Output line says which levels remain). 1.0 trains instruction -> actions only."""
    image_shift: int = 0
    """Random-shift augmentation of action samples' views: up to this many pixels (at the model's
    resolution) in x and y, per view (see ``embodia.data.images.random_shift``); 0 = off."""
    lr: float = 1e-4
    warmup: float = 0.03  # fraction of the stage's steps
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.1

    @classmethod
    def from_dict(cls, d: dict) -> StageConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"stage {d.get('name', '?')!r}: unknown field(s) {sorted(unknown)}")
        d = dict(d)
        d["trainable"] = tuple(d.get("trainable", ()))
        return cls(**d)


def _wall_oss(steps: int) -> list[StageConfig]:
    """WALL-OSS: Inspiration (VQA + FAST on the VL FFN) -> Integration 1 (VLM frozen, action
    expert + flow head) -> Integration 2 (everything jointly)."""
    return [
        StageConfig(
            "inspiration",
            steps,
            ("vision", "llm", "vl_ffn", "embeddings"),
            {"text": 1.0, "fast": 1.0},
            mixture={"episodes": 0.7, "conversations": 0.3},
            action_modes={"fast": 1.0},
            lr=3e-4,
        ),
        StageConfig(
            "integration-1",
            steps,
            ("action_expert", "flow_head", "proprio"),
            {"flow": 1.0},
            mixture={"episodes": 1.0},
            action_modes={"flow": 1.0},
            lr=1e-3,
        ),
        StageConfig(
            "integration-2",
            steps,
            ("all",),
            {"text": 1.0, "fast": 1.0, "flow": 1.0},
            mixture={"episodes": 0.8, "conversations": 0.2},
            action_modes={"flow": 0.7, "fast": 0.3},
            lr=2e-4,
        ),
    ]


def _gem(steps: int) -> list[StageConfig]:
    """GEM: connector warm-up -> depth-generator warm-up (backbone frozen) -> joint training
    (LM + 0.1 depth) -> action stage (action + 0.1 depth)."""
    return [
        StageConfig(
            "connector",
            steps,
            ("depth_connector",),
            {"depth": 1.0},
            mixture={"conversations": 1.0},
            lr=1e-3,
        ),
        StageConfig(
            "depth-warmup",
            steps,
            ("depth_connector", "depth_generator"),
            {"depth": 1.0},
            mixture={"conversations": 1.0},
            lr=1e-3,
        ),
        StageConfig(
            "joint",
            steps,
            ("all",),
            {"text": 1.0, "depth": 0.1},
            mixture={"conversations": 1.0},
            lr=2e-4,
        ),
        StageConfig(
            "action",
            steps,
            ("all",),
            {"flow": 1.0, "depth": 0.1},
            mixture={"episodes": 1.0},
            action_modes={"flow": 1.0},
            lr=2e-4,
        ),
    ]


def _actions_only(steps: int) -> list[StageConfig]:
    """One stage: the whole model on flow + FAST actions (a quick baseline)."""
    return [
        StageConfig(
            "actions",
            steps,
            ("all",),
            {"flow": 1.0, "fast": 1.0, "text": 1.0},
            mixture={"episodes": 1.0},
            action_modes={"flow": 0.5, "fast": 0.5},
            lr=1e-3,
        )
    ]


CURRICULA = {"wall-oss": _wall_oss, "gem": _gem, "actions": _actions_only}


@dataclass
class TrainConfig:
    """Train an EmbodiedModel through a curriculum of stages (one, a range, or your own list)."""

    datasets: tuple[Path, ...] = (Path("outputs/quickstart"),)
    """Datasets: LeRobot v3 dirs (episodes); a dir with conversations/ also gives its QA JSONL."""
    output: Path = Path("runs/tiny")
    """Run directory: checkpoints/, logs/ (TensorBoard), metrics.jsonl, loss_curves.png."""
    embodiment: str = "metaworld-sawyer"
    """Embodiment of the episode datasets (``embodia.models.action_space.EMBODIMENTS``);
    ``metaworld-sawyer-privileged`` with ``--state-key observation.environment_state`` is the
    privileged-state control."""
    state_key: str = "observation.state"
    """The episode datasets' proprioceptive state feature."""
    preset: str = "tiny"
    """Model preset, or a checkpoint directory to start from (--init)."""
    init: Path | None = None
    """Start from this embodia checkpoint or Hugging Face Qwen-VL directory instead of a preset."""
    curriculum: str = "wall-oss"
    """wall-oss | gem | actions (one joint stage); ignored with --curriculum-file."""
    curriculum_file: Path | None = None
    """JSON list of stages (StageConfig fields) to use instead of a named curriculum."""
    stages: str = ""
    """Which stages to run: '2', '1:3' (1-based, inclusive), a name, or '' for all."""
    steps_per_stage: int = 200
    """Steps of each stage of a named curriculum (a curriculum file sets its own)."""
    batch_size: int = 8
    """Global batch per optimizer step (split across processes)."""
    grad_accum: int = 1
    seed: int = 0
    workers: int = 2
    """Data-loader worker processes."""
    horizon: int | None = None
    """Action chunk length (default: the preset's)."""
    image_size: int | None = None
    """Model input resolution in pixels (default: the preset's; a multiple of patch x merge,
    e.g. 96 gives the tiny preset 36 tokens per view instead of 16 at 64)."""
    depth_codec: Path | None = None
    """Enable GEM's depth generator (a preset-sized head) in the latent space of this trained
    autoencoder (`embodia depth train-autoencoder`); needed by the gem curriculum."""
    fast_tokenizer: Path | None = None
    """A fitted FAST tokenizer dir; default: fitted on the first episodes dataset at start."""
    frame_cache: Path | None = None
    """Where decoded frames are cached (shared by runs and loader workers); default
    ``$EMBODIA_CACHE/frames``, else ``~/.cache/embodia/frames``."""
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    log_with: Literal["tensorboard", "wandb", "none"] = "tensorboard"
    mixed_precision: Literal["no", "bf16"] = "no"
    """bf16 autocast (GPU); CPU runs stay fp32."""
    gradient_checkpointing: bool = False
    resume: bool = False
    """Continue the run in --output from its latest checkpoint."""
    max_grad_norm: float = 1.0
    ema: float = 0.0
    """Decay of an exponential moving average of the weights, which checkpoints then serve
    (e.g. 0.995, about the last 200 steps); 0 = off (the last weights)."""
    progress: bool = True


def load_curriculum_file(path: Path) -> list[StageConfig]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"--curriculum-file: {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"--curriculum-file: {path} is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from exc
    if not isinstance(data, list) or not data:
        raise ValueError(f"--curriculum-file: {path} must hold a non-empty JSON list of stages")
    return [StageConfig.from_dict(d) for d in data]


def select_stages(stages: list[StageConfig], spec: str) -> list[tuple[int, StageConfig]]:
    """'' = all; '2' = the second; '1:3' = first to third; a name = that stage. 1-based."""
    numbered = list(enumerate(stages, 1))
    if not spec:
        return numbered
    names = {s.name: i for i, s in numbered}
    if spec in names:
        return [numbered[names[spec] - 1]]
    try:
        if ":" in spec:
            lo, hi = (int(x) if x else None for x in spec.split(":", 1))
            lo, hi = lo or 1, hi or len(stages)
        else:
            lo = hi = int(spec)
    except ValueError:
        raise ValueError(
            f"--stages {spec!r}: use a number, a range like 1:3, or one of {sorted(names)}"
        ) from None
    if not 1 <= lo <= hi <= len(stages):
        raise ValueError(f"--stages {spec!r}: the curriculum has stages 1..{len(stages)}")
    return numbered[lo - 1 : hi]
