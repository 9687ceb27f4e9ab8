"""Observations: a robot's raw dict checked and turned into the model's samples.

Observations are openpi-style dicts::

    {"images": {"corner": uint8 (H, W, 3), "gripperPOV": ...},   # every configured camera
     "state": float (robot_dof,),                                 # robot units
     "prompt": "put the puck on the goal",
     "mode": "flow" | "fast", "levels": ["subtask", "actions"],   # optional
     "seed": int}                                                 # optional: reproducible noise

A :class:`ObservationReader` applies the checkpoint's key aliases, takes the configured cameras in
training order, normalises the state into the embodiment's template slots and builds
:class:`~embodia.models.sequence.EmbodiedSample` objects. Every malformed observation raises
:class:`ObservationError` naming the key and what was wrong, so a server can answer the client
instead of crashing and an evaluation fails loudly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embodia.data.normalize import QuantileNormalizer
from embodia.models.action_space import Embodiment
from embodia.policy_config import PolicyConfig, check_levels

#: Larger images are refused: the model resizes to its own (small) input size anyway, and a
#: 10k x 10k "image" is a client bug or an attack on the server's memory, not an observation.
MAX_IMAGE_SIDE = 4096


class ObservationError(ValueError):
    """The observation (or request) is malformed; the message says which key and why."""


class ObservationReader:
    """Raw observation dicts -> model samples, for one checkpoint's :class:`PolicyConfig`."""

    def __init__(
        self,
        config: PolicyConfig,
        embodiment: Embodiment,
        normalizer: QuantileNormalizer,
        state_dim: int,
    ) -> None:
        self.config = config
        self.embodiment = embodiment
        self.normalizer = normalizer
        self.state_dim = state_dim

    def canonical(self, obs: Any) -> dict[str, Any]:
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

    def action_sample(self, obs: dict[str, Any], mode: str):
        cams = self.image_cameras(obs, require_all=True)
        prompt = obs.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ObservationError(
                f"'prompt' must be a non-empty string (the instruction), got {describe(prompt)}"
            )
        state = self.state(obs)
        images = [obs["images"][c] for c in cams]
        return self.make_sample(images, prompt, mode, state)

    def vqa_sample(self, obs: dict[str, Any]):
        question = obs["question"]
        if not isinstance(question, str) or not question.strip():
            raise ObservationError(
                f"'question' must be a non-empty string, got {describe(question)}"
            )
        cams = self.image_cameras(obs, require_all=False)
        return self.make_sample([obs["images"][c] for c in cams], question, "text", None)

    def make_sample(self, images, instruction, mode, state):
        from embodia.models.sequence import EmbodiedSample

        return EmbodiedSample(
            images=[np.ascontiguousarray(i) for i in images],
            instruction=instruction,
            mode=mode,
            state=state,
            dof_mask=None if state is None else self.embodiment.dof_mask,
        )

    def image_cameras(self, obs: dict[str, Any], require_all: bool) -> list[str]:
        """Configured cameras to use, in training order; every image validated."""
        images = obs.get("images")
        if not isinstance(images, dict):
            raise ObservationError(
                f"'images' must be a dict camera -> uint8 (H, W, 3) array with cameras "
                f"{list(self.config.cameras)}, got {describe(images)}"
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
            check_image(f"images/{c}", images[c])
        return cams

    def state(self, obs: dict[str, Any]) -> np.ndarray:
        if "state" not in obs:
            raise ObservationError(
                f"missing 'state': {self.state_dim} values ({self.config.state_key}) in robot units"
            )
        state = numeric("state", obs["state"])
        if state.shape != (self.state_dim,):
            raise ObservationError(
                f"'state' must have shape ({self.state_dim},) for {self.embodiment.name}, "
                f"got {state.shape}"
            )
        normed = self.normalizer.normalize(self.config.state_key, state)
        return self.embodiment.state_to_template(normed)

    def flow_noise(self, observations: list[dict[str, Any]], horizon: int):
        """The flow's starting noise, one (H, template dim) draw per observation.

        An observation with ``"seed"`` (an int >= 0) gets noise from a generator seeded with it,
        so its chunk is reproducible whatever else shares the call (evaluation seeds every chunk
        from its episode's layout seed and the chunk's index); the others draw from torch's RNG.
        """
        import torch

        from embodia.models.action_space import TEMPLATE_DIM

        shape = (horizon, TEMPLATE_DIM)
        draws = []
        for o in observations:
            seed = o.get("seed")
            if seed is None:
                draws.append(torch.randn(shape))
                continue
            if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
                raise ObservationError(f"'seed' must be an int >= 0, got {describe(seed)}")
            draws.append(torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))))
        return torch.stack(draws)


def describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array {x.dtype} {x.shape}"
    return f"{type(x).__name__} {x!r}"[:120]


def check_image(name: str, img: Any) -> None:
    if not isinstance(img, np.ndarray):
        raise ObservationError(f"{name!r} must be a uint8 (H, W, 3) array, got {describe(img)}")
    if img.dtype != np.uint8:
        raise ObservationError(f"{name!r} must have dtype uint8, got {img.dtype} {img.shape}")
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ObservationError(f"{name!r} must have shape (H, W, 3) (RGB, HWC), got {img.shape}")
    h, w = img.shape[:2]
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise ObservationError(f"{name!r}: {h}x{w} pixels, each side must be 1..{MAX_IMAGE_SIDE}")


def numeric(name: str, value: Any) -> np.ndarray:
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


def requested_levels(levels: Any, need_actions: bool) -> tuple[str, ...]:
    return check_levels(levels, ObservationError, need_actions)
