"""Shared by the serving tests: a valid observation and a stand-in model that echoes its input."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from embodia.models.action_space import TEMPLATE_DIM
from embodia.models.inference import ActionOutput
from embodia.serving.demo import DEMO_CAMERAS

API_KEY = "test-key-0123"


def make_obs(rng: np.random.Generator | None = None, state=None, size: int = 48) -> dict:
    """A valid observation for the demo policy (Sawyer, cameras corner + gripperPOV)."""
    rng = rng or np.random.default_rng(0)
    return {
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in DEMO_CAMERAS},
        "state": np.array([0.0, 0.6, 0.2, 0.5], np.float32) if state is None else state,
        "prompt": "put the puck on the goal",
    }


@dataclass
class EchoModel:
    """A stand-in model whose action chunk encodes its input: every step of the chunk is the
    (template-space, normalised) state it was given, times ``step + 1`` in slot 19 (unused by
    Sawyer). Lets tests see exactly what the policy fed the model and what it made of the output.
    """

    horizon: int = 8
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        self.cfg = SimpleNamespace(
            name="echo", image_size=32, action=SimpleNamespace(horizon=self.horizon)
        )
        self.fast_tokenizer = None
        self.calls: list = []

    def sample_actions(
        self, samples, mode="flow", levels=None, steps=None, noise=None
    ) -> ActionOutput:
        self.calls.append((samples, mode, levels, steps))
        if self.delay_s:
            time.sleep(self.delay_s)
        out = torch.zeros(len(samples), self.horizon, TEMPLATE_DIM)
        for i, s in enumerate(samples):
            out[i] = torch.as_tensor(s.state, dtype=torch.float32)
            out[i, :, -1] = torch.arange(1, self.horizon + 1)
        text = "Reasoning: the puck is left\nSubtask: grasp the puck" if len(levels) > 1 else ""
        return ActionOutput(out, [text] * len(samples), [True] * len(samples))

    def generate_text(self, samples, levels=None, max_new_tokens=64):
        self.calls.append((samples, "text", levels, max_new_tokens))
        return [[1, 2, 3]]

    def decode_text(self, ids):
        return "Subtask: grasp the puck<|im_end|>"
