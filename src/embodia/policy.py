"""Policy: the one bridge between a robot's raw observation and the model, and back to robot units.

Serving, evaluation and checkpoint export all go through this file so that a checkpoint behaves
the same everywhere: the same cameras in the same order, the same state / action normalisation
(:class:`~embodia.data.normalize.QuantileNormalizer`, q01/q99 -> [-1, 1]) and the same embodiment
layout in the 20-D action template. What a checkpoint says about these is its ``policy.json``
(:mod:`embodia.policy_config`); how an observation is checked and turned into samples is
:mod:`embodia.observation`. This file runs the requests: :meth:`Policy.infer` returns
``{"actions": float32 (H, robot_dof) in robot units, "text": ...}``, :meth:`Policy.text` answers
questions and chains of thought, :meth:`Policy.depth` gives depth maps.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from embodia.observation import ObservationError, ObservationReader, requested_levels
from embodia.policy_config import MODES, TEXT_LEVELS, PolicyConfig, PolicyConfigError, state_width

__all__ = ["ObservationError", "Policy", "PolicyConfig", "PolicyConfigError", "UnsupportedRequest"]

MAX_TEXT_TOKENS = 512


class UnsupportedRequest(ValueError):
    """The request is well formed but this checkpoint cannot answer it (no FAST tokenizer, no
    depth generator)."""


class Policy:
    """A model plus its :class:`PolicyConfig`: raw observation in, robot-unit actions out.

    Callers that serve several clients run one call at a time, as :mod:`embodia.serving.server`
    does: concurrent calls would only share the same cores or device.
    """

    def __init__(self, model: Any, config: PolicyConfig) -> None:
        self.model = model
        self.config = config
        self.embodiment = config.embodiment_obj()
        self.normalizer = config.normalizer_obj()
        self.dof = len(self.embodiment.slots)
        self.state_dim = state_width(self.embodiment, self.normalizer, config.state_key)
        self.reader = ObservationReader(config, self.embodiment, self.normalizer, self.state_dim)
        # A FAST tokenizer fitted on this robot's action key decodes into its own dims in order;
        # they live at the embodiment's template slots unless the checkpoint says otherwise.
        if getattr(model, "fast_tokenizer", None) is not None and not hasattr(model, "_fast_slots"):
            model.fast_slots = self.embodiment.indices.tolist()

    @classmethod
    def load(
        cls, checkpoint_dir: str | Path, device: str = "cpu", robot: str | None = None
    ) -> Policy:
        """Load a checkpoint in any form :func:`~embodia.models.checkpoint.resolve_checkpoint`
        accepts (a step directory, a run directory, ``checkpoints/`` or its ``latest`` file).

        ``robot``: for a run trained on several robots' datasets, the dataset whose robot to
        serve (its embodiment, cameras and statistics); default the first."""
        from embodia.models.checkpoint import resolve_checkpoint
        from embodia.models.embodied import EmbodiedModel

        checkpoint_dir = resolve_checkpoint(checkpoint_dir)
        # first: a cheap, clear error before the weights
        config = PolicyConfig.load(checkpoint_dir, robot)
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
        canon = [self.reader.canonical(o) for o in observations]
        mode = canon[0].get("mode", self.config.mode)
        levels = requested_levels(canon[0].get("levels", self.config.levels), need_actions=True)
        for o in canon[1:]:
            if (
                o.get("mode", self.config.mode) != mode
                or requested_levels(o.get("levels", self.config.levels), need_actions=True)
                != levels
            ):
                raise ObservationError("a batch of observations must share 'mode' and 'levels'")
        if mode not in MODES:
            raise ObservationError(f"'mode' must be one of {list(MODES)}, not {mode!r}")
        if mode == "fast" and not self.has_fast:
            raise UnsupportedRequest(
                "mode 'fast' needs a FAST tokenizer and this checkpoint has none; use mode 'flow'"
            )
        samples = [self.reader.action_sample(o, mode) for o in canon]
        out = self.model.sample_actions(
            samples,
            mode=mode,
            levels=list(levels),
            steps=self.config.flow_steps,
            noise=self.reader.flow_noise(canon, self.horizon) * self.config.flow_noise_scale,
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
        obs = self.reader.canonical(obs)
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
            sample = self.reader.vqa_sample(obs)
            ids = self.model.generate_text([sample], max_new_tokens=budget)[0]
            return {"text": _clean(self.model.decode_text(ids))}
        levels = requested_levels(obs.get("levels", TEXT_LEVELS), need_actions=False)
        if "actions" in levels:
            raise ObservationError(
                "a text request produces 'reasoning' and/or 'subtask'; drop 'actions' from "
                "'levels' (an action request returns the chain of thought with the chunk)"
            )
        # Training always ends the "Output:" line with actions; asking the same way keeps the
        # prompt in distribution. Flow mode stops the assistant turn right after the text levels.
        sample = self.reader.action_sample(obs, "flow")
        ids = self.model.generate_text([sample], [*levels, "actions"], max_new_tokens=budget)[0]
        text = _clean(self.model.decode_text(ids))
        return {"text": text, **_parse_cot(text, levels)}

    def depth(self, obs: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        """Depth per camera (metres) from the checkpoint's depth generator (GEM), if it has one;
        ``metric`` says whether its scale is real (see ``DepthHead.generate``). ``seed`` fixes
        the generator's noise (evaluations are seeded; None = the process's random stream).

        ``model.generate_depth(samples)`` returns a ``DepthOutput`` whose ``depth`` holds one
        (R, R) map in metres per image, the images of a sample in view order.
        """
        if not self.has_depth:
            raise UnsupportedRequest(
                "this checkpoint has no depth generator (GEM's generative depth head); "
                "depth requests need a checkpoint trained with one"
            )
        obs = self.reader.canonical(obs)
        cams = self.reader.image_cameras(obs, require_all=False)
        prompt = obs.get("prompt", "")
        sample = self.reader.make_sample(
            [obs["images"][c] for c in cams],
            prompt if isinstance(prompt, str) else "",
            "text",
            None,
        )
        out = self.model.generate_depth([sample], generator=_generator(self.model, seed))
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


def _generator(model, seed: int | None):
    """A torch.Generator seeded with ``seed`` on the model's device (None: no seed)."""
    if seed is None:
        return None
    import torch

    return torch.Generator(device=model.device).manual_seed(seed)


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
