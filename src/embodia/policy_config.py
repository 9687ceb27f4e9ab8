"""``policy.json``: how a checkpoint reads observations and writes actions.

A checkpoint directory holds the model (``EmbodiedModel.save_pretrained``) plus ``policy.json``
(:class:`PolicyConfig`), written last: the embodiment, the cameras in training order, the
normaliser's statistics, the default action head and Uni-CoT levels, and the key aliases of a
robot's own observation dicts. Everything in it is checked when it is built or loaded, so a broken
file fails with its path and field before any weights are read.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data.normalize import QuantileNormalizer
from embodia.models.action_space import EMBODIMENTS, SAWYER, Embodiment, EmbodimentError
from embodia.utils.fs import atomic_write_text

POLICY_FILE = "policy.json"
#: A run on several robots' datasets: policy.json serves the first, ``policies/<dataset>.json``
#: each of the others (``embodia serve --robot <dataset>``).
ROBOTS_DIR = "policies"
MODES = ("flow", "fast")
LEVELS = ("reasoning", "subtask", "actions")
TEXT_LEVELS = ("reasoning", "subtask")


class PolicyConfigError(ValueError):
    """``policy.json`` is missing, unreadable or lacks a field; the message names it."""


@dataclass
class PolicyConfig:
    """How a checkpoint reads observations and writes actions; saved as ``policy.json``."""

    embodiment: str
    """The embodiment's name: a built-in (:data:`embodia.models.action_space.EMBODIMENTS`, e.g.
    ``metaworld-sawyer``) or a user's own, whose definition is then ``embodiment_spec``."""
    cameras: tuple[str, ...]
    """Camera names in the order the model saw them in training (one vision block each)."""
    normalizer: dict[str, Any]
    """``QuantileNormalizer.to_dict()`` with at least the state and action keys."""
    state_key: str = "observation.state"
    """Normaliser key of the proprioceptive state (the LeRobot feature name)."""
    action_key: str = "action"
    """Normaliser key of the action."""
    mode: str = "flow"
    """Default action head: ``flow`` (flow matching) or ``fast`` (discrete FAST tokens)."""
    levels: tuple[str, ...] = ("actions",)
    """Default Uni-CoT levels of an action request (``actions`` last)."""
    flow_steps: int | None = None
    """Euler steps of flow sampling; None = the model config's default."""
    flow_noise_scale: float = 1.0
    """Scale of the flow's starting noise: 1 samples the learned action distribution, smaller
    values start nearer its centre (0: one deterministic chunk per observation), a common way to
    trade the demonstrations' diversity for precision at deployment."""
    max_text_tokens: int = 64
    """Default token budget of a text (VQA / reasoning / subtask) request."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Flat observation keys of existing robot code -> canonical paths, e.g.
    ``{"observation/image": "images/corner", "observation/state": "state"}`` (openpi's repack)."""
    embodiment_spec: dict[str, Any] | None = None
    """The embodiment's definition (``Embodiment.to_dict()``), saved with every trained
    checkpoint so that one trained on a user's own robot loads without that robot's file;
    None = the built-in of that name."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.levels = tuple(self.levels)
        self.aliases = dict(self.aliases)
        self.validate()

    def validate(self) -> None:
        if self.embodiment_spec is None and self.embodiment not in EMBODIMENTS:
            raise PolicyConfigError(
                f"unknown embodiment {self.embodiment!r} and no embodiment_spec defining it; "
                f"built in: {sorted(EMBODIMENTS)}"
            )
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise PolicyConfigError(f"cameras must be unique and non-empty, got {self.cameras}")
        if self.mode not in MODES:
            raise PolicyConfigError(f"mode must be one of {MODES}, not {self.mode!r}")
        check_flow_noise_scale(self.flow_noise_scale, PolicyConfigError, "flow_noise_scale")
        check_levels(self.levels, PolicyConfigError, need_actions=True)
        for target in self.aliases.values():
            if target != "state" and not target.startswith("images/"):
                raise PolicyConfigError(
                    f"alias target {target!r} must be 'state' or 'images/<camera>'"
                )
        norm = self.normalizer_obj()  # parses: a broken normaliser fails at load, not at step 1
        emb = self.embodiment_obj()
        try:
            width = state_width(emb, norm, self.state_key)
            emb.state_to_template(norm.normalize(self.state_key, np.zeros(width)))
            norm.normalize(self.action_key, np.zeros(len(emb.slots)))
        except (KeyError, ValueError) as exc:
            raise PolicyConfigError(
                f"normaliser does not fit {self.embodiment} (state {self.state_key!r}, action "
                f"{self.action_key!r} with {len(emb.slots)} dims): {exc}"
            ) from exc

    def embodiment_obj(self) -> Embodiment:
        if self.embodiment_spec is None:
            return EMBODIMENTS[self.embodiment]
        try:
            emb = Embodiment.from_dict(self.embodiment_spec, "embodiment_spec")
        except EmbodimentError as exc:
            raise PolicyConfigError(str(exc)) from exc
        if emb.name != self.embodiment:
            raise PolicyConfigError(
                f"embodiment_spec defines {emb.name!r}, but embodiment is {self.embodiment!r}"
            )
        return emb

    def normalizer_obj(self) -> QuantileNormalizer:
        try:
            return QuantileNormalizer.from_dict(self.normalizer)
        except ValueError as exc:
            raise PolicyConfigError(f"normalizer: {exc}") from exc

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"], d["levels"] = list(self.cameras), list(self.levels)
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "policy config") -> PolicyConfig:
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{where}: must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in data]
        if missing:
            raise PolicyConfigError(f"{where}: missing field(s) {missing}")
        unknown = sorted(set(data) - known)
        if unknown:
            raise PolicyConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except PolicyConfigError as exc:
            raise PolicyConfigError(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise PolicyConfigError(f"{where}: {exc}") from exc

    def save(self, directory: str | Path, robot: str | None = None) -> Path:
        """Write ``<directory>/policy.json`` (or, for another of the run's robots,
        ``policies/<robot>.json``) atomically, after the model: save_pretrained replaces the
        whole directory."""
        path = _config_path(directory, robot)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path, robot: str | None = None) -> PolicyConfig:
        """``policy.json``, or with ``robot`` the config of that dataset's robot in a run
        trained on several (``policies/<robot>.json``)."""
        path = _config_path(directory, robot)
        if robot is not None and not path.is_file():
            others = sorted(p.stem for p in (Path(directory) / ROBOTS_DIR).glob("*.json"))
            raise PolicyConfigError(
                f"{path}: the checkpoint has no robot {robot!r}; it serves the first dataset's "
                f"robot by default and also {others or 'no other'}"
            )
        if not path.is_file():
            raise PolicyConfigError(
                f"{path}: no {POLICY_FILE} in the checkpoint (it names the embodiment, cameras and "
                "normaliser; write one with PolicyConfig(...).save(dir))"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyConfigError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dataset(
        cls, root: str | Path, cameras: tuple[str, ...], embodiment: str = SAWYER.name, **kw: Any
    ) -> PolicyConfig:
        """The config of a policy trained on a LeRobot v3 dataset (its ``meta/stats.json``)."""
        from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

        state_key = kw.get("state_key", "observation.state")
        action_key = kw.get("action_key", "action")
        norm = QuantileNormalizer(LeRobotV3Dataset(root).stats).subset([state_key, action_key])
        return cls(embodiment, tuple(cameras), norm.to_dict(), **kw)


def _config_path(directory: str | Path, robot: str | None) -> Path:
    if robot is None:
        return Path(directory) / POLICY_FILE
    return Path(directory) / ROBOTS_DIR / f"{robot}.json"


def state_width(emb: Embodiment, norm: QuantileNormalizer, state_key: str) -> int:
    """Width of the state a robot sends: the embodiment's, else that of the saved statistics."""
    if emb.state_width is not None:
        return emb.state_width
    try:
        return int(np.asarray(norm.stats[state_key]["q01"]).shape[-1])
    except KeyError as exc:
        raise PolicyConfigError(f"normaliser has no statistics for {state_key!r}") from exc


def check_flow_noise_scale(scale: Any, error: type[Exception], name: str) -> None:
    """One rule for the starting-noise scale, wherever it is set (policy.json, ``train``)."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
        raise error(f"{name} must be a number >= 0, got {scale!r}")


def check_levels(levels: Any, error: type[Exception], need_actions: bool) -> tuple[str, ...]:
    if isinstance(levels, str) or not isinstance(levels, (list, tuple)) or not levels:
        raise error(f"'levels' must be a non-empty list drawn from {list(LEVELS)}, got {levels!r}")
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise error(f"unknown level(s) {unknown}; choose from {list(LEVELS)}")
    if need_actions and "actions" not in levels:
        raise error(f"'levels' of an action request must include 'actions', got {list(levels)}")
    return tuple(lv for lv in LEVELS if lv in levels)  # canonical order, no duplicates
