"""The small engine dataset the training tests train on (imported as a plain module)."""

from __future__ import annotations

from pathlib import Path

from embodia.configs.data import GenerateConfig
from embodia.data.engine.generate import generate


def generate_small(root: Path, **overrides) -> Path:
    """The training tests' engine dataset: reach + pick-place, 2 / 1 / 0 episodes, 30 steps at
    64 px, unless ``overrides`` say otherwise."""
    settings = dict(
        tasks=("reach", "pick-place"),
        episodes_per_task=(2, 1, 0),
        image_size=64,
        max_steps=30,
        qa_every=10,
        workers=1,
        progress=False,
    )
    generate(GenerateConfig(output=root, **{**settings, **overrides}))
    return root
