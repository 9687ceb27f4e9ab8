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
    """One data source. ``kind`` episodes = LeRobot v3 episodes; conversations = GEM/Qwen JSONL.

    For episodes it maps the roles the model needs onto the dataset's own feature names (read
    from its ``meta/info.json``): which image/video features are the cameras and in which order,
    which vector is the state and which the action, which embodiment places them in the action
    template, and optionally which features hold each camera's depth. The instruction is the
    LeRobot task of each frame.
    """

    path: Path
    kind: Literal["episodes", "conversations"] = "episodes"
    name: str = ""  # defaults to the directory name
    split: str = "train"
    embodiment: str = "metaworld-sawyer"
    """A built-in embodiment's name or a JSON / YAML file defining one."""
    cameras: tuple[str, ...] = ()  # episodes: default = every image/video feature, in order
    state_key: str = "observation.state"
    action_key: str = "action"
    depth_keys: tuple[str, ...] = ()
    """Depth feature per camera, in camera order; default ``observation.depth.<camera>`` where
    the dataset has it. A dataset without depth trains with the depth loss masked."""
    camera_names: tuple[str, ...] = ()
    """The names a trained policy gives its cameras (in ``policy.json``, served metadata and
    the ``images`` of a request), in camera order; default the feature name without
    ``observation.images.``. E.g. ``[agentview, wrist]`` for LIBERO datasets whose features are
    ``observation.images.image`` and ``observation.images.wrist_image``."""
    scene_key: str = ""
    """Training-only target: a vector feature saying where the scene's objects are (Meta-World's
    ``observation.environment_state``), regressed by the scene head from the model's prefix
    (``models/scene_head.py``); never an input. "" = none."""
    scene_dims: tuple[int, ...] = ()
    """Which elements of ``scene_key`` to regress (default all)."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Flat keys the robot's own client sends -> ``images/<camera name>`` or ``state``, written
    into the trained ``policy.json`` so that ``embodia serve`` accepts e.g. openpi's
    ``observation/image`` without client changes."""

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


#: Fields a dataset-config file may set (per dataset, or once for every ``--datasets`` dir).
DATASET_CONFIG_FIELDS = (
    "name",
    "split",
    "embodiment",
    "cameras",
    "state_key",
    "action_key",
    "depth_keys",
    "camera_names",
    "aliases",
    "scene_key",
    "scene_dims",
)


def dataset_specs(cfg: TrainConfig) -> list[DatasetSpec]:
    """The run's data sources: ``--datasets`` with the role flags, then ``--dataset-config``.

    The config file is either one mapping of :data:`DATASET_CONFIG_FIELDS` that applies to every
    ``--datasets`` directory (overriding the flags), or ``{"datasets": [{"path": ..., ...}]}``
    naming the run's datasets itself, in place of ``--datasets`` (relative paths are relative to
    the file).
    """
    flags = {
        "embodiment": cfg.embodiment,
        "state_key": cfg.state_key,
        "action_key": cfg.action_key,
        "cameras": tuple(cfg.cameras),
        "scene_key": cfg.scene_key,
        "scene_dims": tuple(cfg.scene_dims),
    }
    entries: list[tuple[Path, dict]] = [(Path(p), {}) for p in cfg.datasets]
    if cfg.dataset_config is not None:
        from embodia.utils.fs import ConfigFileError, read_config_file

        where = str(cfg.dataset_config)
        try:
            data = read_config_file(cfg.dataset_config)
        except ConfigFileError as exc:
            raise ValueError(f"--dataset-config: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{where}: must hold a mapping, got {type(data).__name__}")
        if "datasets" in data:
            rows = data["datasets"]
            if set(data) != {"datasets"} or not isinstance(rows, list) or not rows:
                raise ValueError(
                    f"{where}: 'datasets' must be a non-empty list and the only top-level field"
                )
            base = Path(cfg.dataset_config).parent
            entries = [
                _dataset_entry(row, f"{where}: datasets[{i}]", base) for i, row in enumerate(rows)
            ]
        else:
            _check_fields(data, where, allowed=DATASET_CONFIG_FIELDS)
            if not cfg.datasets:
                raise ValueError(
                    f"{where}: a config without a 'datasets' list applies to --datasets, "
                    "and none were given"
                )
            entries = [(p, dict(data)) for p, _ in entries]
    if not entries:
        raise ValueError("no datasets: pass --datasets DIR ... or a --dataset-config file")
    specs = []
    for path, over in entries:
        kind = "conversations" if path.suffix == ".jsonl" else "episodes"
        fields_ = {**flags, **over}
        for key in ("cameras", "depth_keys", "camera_names", "scene_dims"):
            if key in fields_:
                fields_[key] = tuple(fields_[key])
        if "aliases" in fields_:
            fields_["aliases"] = dict(fields_["aliases"])
        specs.append(DatasetSpec(path=path, kind=kind, **fields_))
    return specs


def _dataset_entry(row: object, where: str, base: Path) -> tuple[Path, dict]:
    if not isinstance(row, dict) or "path" not in row:
        raise ValueError(f"{where}: must be a mapping with a 'path'")
    _check_fields(row, where, allowed=("path", *DATASET_CONFIG_FIELDS))
    path = Path(row["path"])
    return (path if path.is_absolute() else base / path), {
        k: v for k, v in row.items() if k != "path"
    }


def _check_fields(row: dict, where: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(row) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(allowed)}")
    for key in ("cameras", "depth_keys", "camera_names"):
        if key in row and (
            not isinstance(row[key], list) or not all(isinstance(c, str) for c in row[key])
        ):
            raise ValueError(f"{where}: {key!r} must be a list of feature names, got {row[key]!r}")
    if "scene_dims" in row and (
        not isinstance(row["scene_dims"], list)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in row["scene_dims"])
    ):
        raise ValueError(
            f"{where}: 'scene_dims' must be a list of element indices, got {row['scene_dims']!r}"
        )
    for key in ("name", "split", "embodiment", "state_key", "action_key", "scene_key"):
        if key in row and not isinstance(row[key], str):
            raise ValueError(f"{where}: {key!r} must be a string, got {row[key]!r}")
    if "aliases" in row and not (
        isinstance(row["aliases"], dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in row["aliases"].items())
    ):
        raise ValueError(
            f"{where}: 'aliases' must map flat request keys to 'state' or "
            f"'images/<camera>', got {row['aliases']!r}"
        )


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
    """Embodiment of the episode datasets: a built-in (``metaworld-sawyer``, ``libero-panda``,
    ``so100``, ``aloha``; ``metaworld-sawyer-privileged`` with ``--state-key
    observation.environment_state`` is the privileged-state control) or a JSON / YAML file
    naming the template slot of every action (and state) dimension."""
    state_key: str = "observation.state"
    """The episode datasets' proprioceptive state feature."""
    action_key: str = "action"
    """The episode datasets' action feature."""
    cameras: tuple[str, ...] = ()
    """The episode datasets' camera features, in the order the model sees them (e.g.
    ``observation.images.front observation.images.wrist``); default every image/video feature."""
    dataset_config: Path | None = None
    """JSON / YAML file mapping roles to each dataset's keys (fields of ``DatasetSpec``: cameras,
    state_key, action_key, embodiment, depth_keys, split), for every --datasets dir or as a
    ``datasets:`` list with paths (which then replaces --datasets); it overrides the flags above."""
    preset: str = "tiny"
    """Model preset, or a checkpoint directory to start from (--init)."""
    init: Path | None = None
    """Start from this embodia checkpoint or Hugging Face Qwen-VL directory instead of a preset."""
    lora: int = 0
    """LoRA rank: fine-tune the backbone's language model through PEFT adapters of this rank
    (attention + vision-language FFN; the vision tower stays frozen) while the action expert,
    heads and proprio projection train fully; 0 = train the weights themselves."""
    lora_alpha: float | None = None
    """LoRA scale numerator (updates are scaled by alpha / rank); default 2 x rank."""
    lora_dropout: float = 0.0
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
    depth_objective: Literal["depth", "rgb", "regression", "none"] | None = None
    """GEM's auxiliary objective (the ablation switch of ``embodia reproduce gem``): ``depth``
    generates each view's depth with the DiT (needs a depth --depth-codec), ``rgb``
    reconstructs the view instead (needs a codec trained with ``--target rgb``),
    ``regression`` regresses depth with a dense head (no codec), ``none`` adds no head.
    None = ``depth`` with --depth-codec, else ``none``."""
    fast_tokenizer: Path | None = None
    """A fitted FAST tokenizer dir; default: fitted on the first episodes dataset at start."""
    frame_cache: Path | None = None
    """Where decoded frames are cached (shared by runs and loader workers); default
    ``$EMBODIA_CACHE/frames``, else ``~/.cache/embodia/frames``."""
    stream_shard_episodes: int = 0
    """0: each episodes dataset's split is decoded into one frame cache before training (the
    fastest path; it needs the disk of the whole split at the model's resolution). N > 0:
    stream: the split is cut into shards of N episodes, each process trains on a window of
    --stream-window of its own shards at a time (shards dealt to the processes afresh every
    epoch, by --seed), caching shards as it reaches them (see embodia.training.streaming)."""
    stream_window: int = 4
    """Streaming: shards a process samples from at a time."""
    frame_cache_budget_gb: float = 20.0
    """Streaming: disk a process's shard caches may use before the least recently used are
    deleted (at least two windows' worth)."""
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
    scene_key: str = ""
    """Also regress where the scene's objects are from the model's own prefix, as a training-only
    auxiliary target read from this feature of the episode datasets (e.g.
    ``observation.environment_state``, which the data engine records); weighted by a stage's
    ``scene`` loss term (see ``embodia.models.scene_head``). The trained policy still sees
    images and proprioception only. "" = off."""
    scene_dims: tuple[int, ...] = ()
    """Elements of --scene-key to regress (default all), e.g. Meta-World's objects and goal:
    4 5 6 11 12 13 36 37 38."""
    scene_readout: Literal["actions", "propri"] = "actions"
    """Where the scene head reads the model: the mean of the action tokens' final states (the
    states the flow head reads) or the <|propri|> token (the end of the prefix)."""
    ema: float = 0.0
    """Decay of an exponential moving average of the weights, which checkpoints then serve
    (e.g. 0.995, about the last 200 steps); 0 = off (the last weights)."""
    flow_noise_scale: float = 1.0
    """Scale of the flow's starting noise that the checkpoints' policy.json records, so that
    ``eval`` and ``serve`` sample with it (0 = one deterministic chunk per observation)."""
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
