"""Policy: the one bridge between a robot's raw observation and the model, and back to robot units.

Serving, evaluation and checkpoint export all go through this file so that a checkpoint behaves
the same everywhere: the same cameras in the same order, the same state / action normalisation
(:class:`~embodia.data.normalize.QuantileNormalizer`, q01/q99 -> [-1, 1]) and the same embodiment
layout in the 20-D action template. A checkpoint directory holds the model
(``EmbodiedModel.save_pretrained``) plus ``policy.json`` (:class:`PolicyConfig`), written last.

Observations are openpi-style dicts::

    {"images": {"corner": uint8 (H, W, 3), "gripperPOV": ...},   # every configured camera
     "state": float (robot_dof,),                                 # robot units
     "prompt": "put the puck on the goal",
     "mode": "flow" | "fast", "levels": ["subtask", "actions"]}   # optional

and :meth:`Policy.infer` returns ``{"actions": float32 (H, robot_dof) in robot units, "text": ...}``.
Every malformed observation raises :class:`ObservationError` naming the key and what was wrong,
so a server can answer the client instead of crashing and an evaluation fails loudly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data.normalize import QuantileNormalizer
from embodia.models.action_space import EMBODIMENTS, SAWYER, Embodiment
from embodia.utils.fs import atomic_write_text

POLICY_FILE = "policy.json"
MODES = ("flow", "fast")
LEVELS = ("reasoning", "subtask", "actions")
TEXT_LEVELS = ("reasoning", "subtask")
#: Larger images are refused: the model resizes to its own (small) input size anyway, and a
#: 10k x 10k "image" is a client bug or an attack on the server's memory, not an observation.
MAX_IMAGE_SIDE = 4096
MAX_TEXT_TOKENS = 512


class ObservationError(ValueError):
    """The observation (or request) is malformed; the message says which key and why."""


class UnsupportedRequest(ValueError):
    """The request is well formed but this checkpoint cannot answer it (no FAST tokenizer, no
    depth generator)."""


class PolicyConfigError(ValueError):
    """``policy.json`` is missing, unreadable or lacks a field; the message names it."""


@dataclass
class PolicyConfig:
    """How a checkpoint reads observations and writes actions; saved as ``policy.json``."""

    embodiment: str
    """Name in :data:`embodia.models.action_space.EMBODIMENTS` (e.g. ``metaworld-sawyer``)."""
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
    max_text_tokens: int = 64
    """Default token budget of a text (VQA / reasoning / subtask) request."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Flat observation keys of existing robot code -> canonical paths, e.g.
    ``{"observation/image": "images/corner", "observation/state": "state"}`` (openpi's repack)."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.levels = tuple(self.levels)
        self.aliases = dict(self.aliases)
        self.validate()

    def validate(self) -> None:
        if self.embodiment not in EMBODIMENTS:
            raise PolicyConfigError(
                f"unknown embodiment {self.embodiment!r}; known: {sorted(EMBODIMENTS)}"
            )
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise PolicyConfigError(f"cameras must be unique and non-empty, got {self.cameras}")
        if self.mode not in MODES:
            raise PolicyConfigError(f"mode must be one of {MODES}, not {self.mode!r}")
        _check_levels(self.levels, PolicyConfigError, need_actions=True)
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
        return EMBODIMENTS[self.embodiment]

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

    def save(self, directory: str | Path) -> Path:
        """Write ``<directory>/policy.json`` atomically (after the model: save_pretrained replaces
        the whole directory)."""
        path = Path(directory) / POLICY_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> PolicyConfig:
        path = Path(directory) / POLICY_FILE
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


class Policy:
    """A model plus its :class:`PolicyConfig`: raw observation in, robot-unit actions out.

    Not thread-safe (the model keeps per-call routing state): callers that serve several clients
    run one call at a time, as :mod:`embodia.serving.server` does.
    """

    def __init__(self, model: Any, config: PolicyConfig) -> None:
        self.model = model
        self.config = config
        self.embodiment = config.embodiment_obj()
        self.normalizer = config.normalizer_obj()
        self.dof = len(self.embodiment.slots)
        self.state_dim = state_width(self.embodiment, self.normalizer, config.state_key)
        # A FAST tokenizer fitted on this robot's action key decodes into its own dims in order;
        # they live at the embodiment's template slots unless the checkpoint says otherwise.
        if getattr(model, "fast_tokenizer", None) is not None and not hasattr(model, "_fast_slots"):
            model.fast_slots = self.embodiment.indices.tolist()

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str = "cpu") -> Policy:
        """Load a checkpoint in any form :func:`~embodia.models.checkpoint.resolve_checkpoint`
        accepts (a step directory, a run directory, ``checkpoints/`` or its ``latest`` file)."""
        from embodia.models.checkpoint import resolve_checkpoint
        from embodia.models.embodied import EmbodiedModel

        checkpoint_dir = resolve_checkpoint(checkpoint_dir)
        config = PolicyConfig.load(checkpoint_dir)  # first: a cheap, clear error before the weights
        model = EmbodiedModel.from_pretrained(checkpoint_dir, map_location=device).to(device)
        return cls(model.eval(), config)

    def save(self, checkpoint_dir: str | Path) -> Path:
        self.model.save_pretrained(checkpoint_dir)
        self.config.save(checkpoint_dir)
        return Path(checkpoint_dir)

    # ------------------------------------------------------------------ description

    @property
    def horizon(self) -> int:
        return int(self.model.cfg.action.horizon)

    @property
    def has_depth(self) -> bool:
        # EmbodiedModel always has the method; only a model built with a depth head can use it
        heads = getattr(self.model, "aux_heads", None)
        return callable(getattr(self.model, "generate_depth", None)) and (
            heads is None or "depth" in heads
        )

    @property
    def has_fast(self) -> bool:
        return getattr(self.model, "fast_tokenizer", None) is not None

    def metadata(self) -> dict[str, Any]:
        """What a client needs to build observations and read actions (sent on connect)."""
        cfg = self.config
        modes = [m for m in MODES if m != "fast" or self.has_fast]
        return {
            "model": self.model.cfg.name,
            "embodiment": cfg.embodiment,
            "cameras": list(cfg.cameras),
            "image_size": int(self.model.cfg.image_size),
            "state_dim": self.state_dim,
            "action_dim": self.dof,
            "action_horizon": self.horizon,
            "action_shape": [self.horizon, self.dof],
            "modes": modes,
            "default_mode": cfg.mode,
            "default_levels": list(cfg.levels),
            "requests": ["actions", "text", *(["depth"] if self.has_depth else [])],
        }

    # ------------------------------------------------------------------ entry points

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """An action chunk in robot units: ``{"actions": (H, dof) float32, "text", "valid", ...}``."""
        return self.infer_batch([obs])[0]

    def infer_batch(self, observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`infer` for several observations in one model call (e.g. parallel environments).

        All observations must ask for the same mode and levels: they share one sampling call.
        """
        if not observations:
            return []
        canon = [self._canonical(o) for o in observations]
        mode = canon[0].get("mode", self.config.mode)
        levels = _levels(canon[0].get("levels", self.config.levels), need_actions=True)
        for o in canon[1:]:
            if (
                o.get("mode", self.config.mode) != mode
                or _levels(o.get("levels", self.config.levels), need_actions=True) != levels
            ):
                raise ObservationError("a batch of observations must share 'mode' and 'levels'")
        if mode not in MODES:
            raise ObservationError(f"'mode' must be one of {list(MODES)}, not {mode!r}")
        if mode == "fast" and not self.has_fast:
            raise UnsupportedRequest(
                "mode 'fast' needs a FAST tokenizer and this checkpoint has none; use mode 'flow'"
            )
        samples = [self._sample(o, mode) for o in canon]
        out = self.model.sample_actions(
            samples,
            mode=mode,
            levels=list(levels),
            steps=self.config.flow_steps,
            noise=self._flow_noise(canon),
        )
        results = []
        for i in range(len(samples)):
            template = np.asarray(out.actions[i].detach().cpu().float().numpy(), dtype=np.float64)
            robot = self.normalizer.unnormalize(
                self.config.action_key, self.embodiment.from_template(template)
            )
            text = _clean(out.text[i])
            results.append(
                {
                    "actions": robot.astype(np.float32),
                    "text": text,
                    "valid": bool(out.valid[i]),
                    **_parse_cot(text, levels),
                }
            )
        return results

    def text(self, obs: dict[str, Any]) -> dict[str, Any]:
        """VQA (``question``: about the images) or Uni-CoT text (``levels``: reasoning and/or the
        next subtask, in one call or one level per call) without an action chunk."""
        obs = self._canonical(obs)
        budget = obs.get("max_new_tokens", self.config.max_text_tokens)
        if (
            not isinstance(budget, int)
            or isinstance(budget, bool)
            or not 0 < budget <= MAX_TEXT_TOKENS
        ):
            raise ObservationError(
                f"'max_new_tokens' must be an int in 1..{MAX_TEXT_TOKENS}, got {budget!r}"
            )
        if "question" in obs:
            sample = self._vqa_sample(obs)
            ids = self.model.generate_text([sample], max_new_tokens=budget)[0]
            return {"text": _clean(self.model.decode_text(ids))}
        levels = _levels(obs.get("levels", TEXT_LEVELS), need_actions=False)
        if "actions" in levels:
            raise ObservationError(
                "a text request produces 'reasoning' and/or 'subtask'; drop 'actions' from "
                "'levels' (an action request returns the chain of thought with the chunk)"
            )
        # Training always ends the "Output:" line with actions; asking the same way keeps the
        # prompt in distribution. Flow mode stops the assistant turn right after the text levels.
        sample = self._sample(obs, "flow")
        ids = self.model.generate_text([sample], [*levels, "actions"], max_new_tokens=budget)[0]
        text = _clean(self.model.decode_text(ids))
        return {"text": text, **_parse_cot(text, levels)}

    def depth(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Depth per camera (metres) from the checkpoint's depth generator (GEM), if it has one;
        ``metric`` says whether its scale is real (see ``DepthHead.generate``).

        ``model.generate_depth(samples)`` returns a ``DepthOutput`` whose ``depth`` holds one
        (R, R) map in metres per image, the images of a sample in view order.
        """
        if not self.has_depth:
            raise UnsupportedRequest(
                "this checkpoint has no depth generator (GEM's generative depth head); "
                "depth requests need a checkpoint trained with one"
            )
        obs = self._canonical(obs)
        cams = self._image_cameras(obs, require_all=False)
        prompt = obs.get("prompt", "")
        sample = self._make_sample(
            [obs["images"][c] for c in cams],
            prompt if isinstance(prompt, str) else "",
            "text",
            None,
        )
        out = self.model.generate_depth([sample])
        maps = getattr(out, "depth", out)
        if maps is None:
            raise UnsupportedRequest(
                "this checkpoint's depth head generates RGB (the ablation), not depth"
            )
        if len(maps) != len(cams):
            raise RuntimeError(f"depth generator returned {len(maps)} maps for {len(cams)} images")
        # metric: metres from the images alone (a predicted or fixed scale); False = relative
        # depth (GEM's percentile maps without a scale head) decoded with fixed bounds
        metric = bool(getattr(out, "metric", True))
        depth = {c: _to_numpy(m) for c, m in zip(cams, maps, strict=True)}
        return {"depth": depth, "units": "m", "metric": metric}

    def _flow_noise(self, observations: list[dict[str, Any]]):
        """The flow's starting noise, one (H, template dim) draw per observation.

        An observation with ``"seed"`` (an int >= 0) gets noise from a generator seeded with it,
        so its chunk is reproducible whatever else shares the call (evaluation seeds every chunk
        from its episode's layout seed and the chunk's index); the others draw from torch's RNG.
        """
        import torch

        from embodia.models.action_space import TEMPLATE_DIM

        shape = (self.horizon, TEMPLATE_DIM)
        draws = []
        for o in observations:
            seed = o.get("seed")
            if seed is None:
                draws.append(torch.randn(shape))
                continue
            if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
                raise ObservationError(f"'seed' must be an int >= 0, got {_describe(seed)}")
            draws.append(torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))))
        return torch.stack(draws)

    # ------------------------------------------------------------------ observation -> sample

    def _canonical(self, obs: Any) -> dict[str, Any]:
        """Apply the config's key aliases: flat robot keys -> ``images/<cam>`` and ``state``."""
        if not isinstance(obs, dict):
            raise ObservationError(f"an observation must be a dict, got {type(obs).__name__}")
        if not self.config.aliases or not any(k in obs for k in self.config.aliases):
            return obs
        obs = dict(obs)
        images = dict(obs.get("images") or {}) if isinstance(obs.get("images"), dict) else {}
        for key, target in self.config.aliases.items():
            if key in obs:
                value = obs.pop(key)
                if target == "state":
                    obs["state"] = value
                else:
                    images[target.split("/", 1)[1]] = value
        if images:
            obs["images"] = images
        return obs

    def _sample(self, obs: dict[str, Any], mode: str):
        cams = self._image_cameras(obs, require_all=True)
        prompt = obs.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ObservationError(
                f"'prompt' must be a non-empty string (the instruction), got {_describe(prompt)}"
            )
        state = self._state(obs)
        images = [obs["images"][c] for c in cams]
        return self._make_sample(images, prompt, mode, state)

    def _vqa_sample(self, obs: dict[str, Any]):
        question = obs["question"]
        if not isinstance(question, str) or not question.strip():
            raise ObservationError(
                f"'question' must be a non-empty string, got {_describe(question)}"
            )
        cams = self._image_cameras(obs, require_all=False)
        return self._make_sample([obs["images"][c] for c in cams], question, "text", None)

    def _make_sample(self, images, instruction, mode, state):
        from embodia.models.sequence import EmbodiedSample

        return EmbodiedSample(
            images=[np.ascontiguousarray(i) for i in images],
            instruction=instruction,
            mode=mode,
            state=state,
            dof_mask=None if state is None else self.embodiment.dof_mask,
        )

    def _image_cameras(self, obs: dict[str, Any], require_all: bool) -> list[str]:
        """Configured cameras to use, in training order; every image validated."""
        images = obs.get("images")
        if not isinstance(images, dict):
            raise ObservationError(
                f"'images' must be a dict camera -> uint8 (H, W, 3) array with cameras "
                f"{list(self.config.cameras)}, got {_describe(images)}"
            )
        if require_all:
            missing = [c for c in self.config.cameras if c not in images]
            if missing:
                raise ObservationError(
                    f"'images' lacks camera(s) {missing}; this policy needs "
                    f"{list(self.config.cameras)} (got {sorted(map(str, images))})"
                )
            cams = list(self.config.cameras)
        else:  # text / depth: any images; the configured cameras first, in their order
            cams = [c for c in self.config.cameras if c in images]
            cams += [c for c in images if c not in cams]
            if not cams:
                raise ObservationError("'images' is empty; send at least one camera image")
        for c in cams:
            _check_image(f"images/{c}", images[c])
        return cams

    def _state(self, obs: dict[str, Any]) -> np.ndarray:
        if "state" not in obs:
            raise ObservationError(
                f"missing 'state': {self.state_dim} values ({self.config.state_key}) in robot units"
            )
        state = _numeric("state", obs["state"])
        if state.shape != (self.state_dim,):
            raise ObservationError(
                f"'state' must have shape ({self.state_dim},) for {self.embodiment.name}, "
                f"got {state.shape}"
            )
        normed = self.normalizer.normalize(self.config.state_key, state)
        return self.embodiment.state_to_template(normed)


def state_width(emb: Embodiment, norm: QuantileNormalizer, state_key: str) -> int:
    """Width of the state a robot sends: the embodiment's, else that of the saved statistics."""
    if emb.state_width is not None:
        return emb.state_width
    try:
        return int(np.asarray(norm.stats[state_key]["q01"]).shape[-1])
    except KeyError as exc:
        raise PolicyConfigError(f"normaliser has no statistics for {state_key!r}") from exc


# ---------------------------------------------------------------------- validation helpers


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array {x.dtype} {x.shape}"
    return f"{type(x).__name__} {x!r}"[:120]


def _check_image(name: str, img: Any) -> None:
    if not isinstance(img, np.ndarray):
        raise ObservationError(f"{name!r} must be a uint8 (H, W, 3) array, got {_describe(img)}")
    if img.dtype != np.uint8:
        raise ObservationError(f"{name!r} must have dtype uint8, got {img.dtype} {img.shape}")
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ObservationError(f"{name!r} must have shape (H, W, 3) (RGB, HWC), got {img.shape}")
    h, w = img.shape[:2]
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise ObservationError(f"{name!r}: {h}x{w} pixels, each side must be 1..{MAX_IMAGE_SIDE}")


def _numeric(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ObservationError(f"{name!r} is not a numeric array ({exc})") from exc
    if arr.dtype.kind not in "fiu":
        raise ObservationError(f"{name!r} must be a float array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(-1))).tolist()
        raise ObservationError(f"{name!r} contains NaN or inf at flat index(es) {bad}")
    return arr


def _check_levels(levels: Any, error: type[Exception], need_actions: bool) -> tuple[str, ...]:
    if isinstance(levels, str) or not isinstance(levels, (list, tuple)) or not levels:
        raise error(f"'levels' must be a non-empty list drawn from {list(LEVELS)}, got {levels!r}")
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise error(f"unknown level(s) {unknown}; choose from {list(LEVELS)}")
    if need_actions and "actions" not in levels:
        raise error(f"'levels' of an action request must include 'actions', got {list(levels)}")
    return tuple(lv for lv in LEVELS if lv in levels)  # canonical order, no duplicates


def _levels(levels: Any, need_actions: bool) -> tuple[str, ...]:
    return _check_levels(levels, ObservationError, need_actions)


# ---------------------------------------------------------------------- output helpers

_SPECIAL = re.compile(r"<\|[a-z_0-9]+\|>")
_COT = {"reasoning": re.compile(r"Reasoning:\s*(.*)"), "subtask": re.compile(r"Subtask:\s*(.*)")}


def _clean(text: str) -> str:
    """Generated text without chat / vision special tokens (a random model emits them)."""
    return _SPECIAL.sub("", text).strip()


def _parse_cot(text: str, levels: tuple[str, ...]) -> dict[str, str]:
    """``Reasoning: ...`` / ``Subtask: ...`` lines of a Uni-CoT answer, per requested level
    (empty when the model did not produce the line)."""
    out = {}
    for level in levels:
        if level in _COT:
            m = _COT[level].search(text)
            out[level] = m.group(1).strip() if m else ""
    return out


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2 or not math.prod(arr.shape):
        raise RuntimeError(f"depth generator returned a map of shape {arr.shape}, not (H, W)")
    return arr
