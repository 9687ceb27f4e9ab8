"""The model side of QA, depth and benchmark evaluation: images + question in, text or depth out.

A checkpoint with ``policy.json`` goes through :class:`embodia.policy.Policy` (its ``text`` and
``depth`` entry points, the same code serving uses). A vision-language checkpoint trained without
an action dataset has no ``policy.json``; it is asked directly through
``EmbodiedModel.generate_text`` / ``generate_depth`` with the same text-mode sample.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

_SPECIAL = re.compile(r"<\|[a-z_0-9]+\|>")


class NoDepthGenerator(ValueError):
    """The checkpoint cannot generate depth (no GEM depth head)."""


class Answerer:
    def __init__(self, checkpoint: Path, device: str = "cpu") -> None:
        from embodia.models.checkpoint import resolve_checkpoint

        self.checkpoint = resolve_checkpoint(checkpoint)
        self.policy: Any = None
        self.model: Any = None
        if (self.checkpoint / "policy.json").is_file():
            from embodia.policy import Policy

            self.policy = Policy.load(self.checkpoint, device=device)
            self.model = self.policy.model
        else:
            from embodia.models.embodied import EmbodiedModel

            self.model = EmbodiedModel.from_pretrained(self.checkpoint, map_location=device)
            self.model = self.model.to(device).eval()

    @property
    def has_depth(self) -> bool:
        if self.policy is not None:
            return bool(self.policy.has_depth)
        heads = getattr(self.model, "aux_heads", None)
        return heads is not None and "depth" in heads

    @property
    def depth_scale(self) -> str:
        """Where the depth generator's metres come from (``DepthHead.scale_source``)."""
        return self.model.aux_heads["depth"].scale_source

    def answer(self, images: dict[str, np.ndarray], question: str, max_new_tokens: int) -> str:
        if self.policy is not None:
            obs = {"images": images, "question": question, "max_new_tokens": max_new_tokens}
            return self.policy.text(obs)["text"]
        from embodia.models.sequence import EmbodiedSample

        sample = EmbodiedSample(images=list(images.values()), instruction=question, mode="text")
        ids = self.model.generate_text([sample], max_new_tokens=max_new_tokens)[0]
        return _SPECIAL.sub("", self.model.decode_text(ids)).strip()

    def depth(self, image: np.ndarray, camera: str, seed: int = 0) -> np.ndarray:
        """Metric depth (R, R) in metres of one image, without any ground truth; the
        generator's noise comes from ``seed``, so a checkpoint has one score."""
        if not self.has_depth:
            raise NoDepthGenerator(
                f"{self.checkpoint}: this checkpoint has no depth generator (GEM's generative "
                "depth head); train one with the gem curriculum to evaluate depth"
            )
        if self.policy is not None:
            maps = self.policy.depth({"images": {camera: image}}, seed=seed)["depth"]
            return np.asarray(maps[camera])
        import torch

        from embodia.models.sequence import EmbodiedSample

        generator = torch.Generator(device=self.model.device).manual_seed(seed)
        out = self.model.generate_depth(
            [EmbodiedSample(images=[image], instruction="", mode="text")], generator=generator
        )
        if out.depth is None:
            raise NoDepthGenerator(f"{self.checkpoint}: the depth head generates RGB, not depth")
        return out.depth[0].detach().cpu().float().numpy()
