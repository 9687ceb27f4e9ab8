"""Shared fixtures: a few engine frames with metric depth, and tiny depth-enabled models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embodia.configs.depth import depth_preset
from embodia.configs.model import preset
from embodia.models.action_space import SAWYER
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample


@pytest.fixture(scope="session")
def engine_dataset(tmp_path_factory) -> Path:
    """One short pick-place episode, two cameras, 64 px, rendered by the data engine."""
    from embodia.configs.data import GenerateConfig
    from embodia.data.engine.generate import generate

    out = tmp_path_factory.mktemp("engine") / "pp"
    cfg = GenerateConfig(
        output=out,
        tasks=("pick-place",),
        episodes_per_task=(1, 0, 0),
        image_size=64,
        workers=1,
        max_steps=40,
        qa_every=1000,
        video=False,
        progress=False,
    )
    generate(cfg)
    return out


@pytest.fixture(scope="session")
def engine_frames(engine_dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB uint8 (64, 64, 3), depth float32 metres (64, 64)) of both cameras at a few frames."""
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

    ep = LeRobotV3Dataset(engine_dataset).load_episode(0)
    out = []
    for cam in ("corner", "gripperPOV"):
        for f in (0, 25):
            out.append((ep[f"observation.images.{cam}"][f], ep[f"observation.depth.{cam}"][f]))
    return out


def random_sample(rng: np.random.Generator, views: int = 2, mode: str = "flow", depth=True):
    return EmbodiedSample(
        images=[rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(views)],
        instruction="pick up the puck",
        mode=mode,
        state=SAWYER.to_template(rng.normal(size=4)),
        dof_mask=SAWYER.dof_mask,
        answer="the puck is red",
        actions=SAWYER.to_template(rng.normal(size=(32, 4)) * 0.3),
        depths=[rng.uniform(0.5, 2.0, (64, 64)).astype(np.float32) for _ in range(views)]
        if depth
        else None,
    )


def depth_model(objective: str = "depth", seed: int = 0, name: str = "tiny", **kw) -> EmbodiedModel:
    cfg = preset(name)
    cfg.depth = depth_preset(name, objective=objective, **kw)
    torch.manual_seed(seed)
    return EmbodiedModel(cfg)
