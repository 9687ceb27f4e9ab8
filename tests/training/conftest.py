"""Shared helpers of the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_flow_stage(
    path: Path, steps: int, trainable=("all",), depth: float = 0.0, lr: float = 1e-3
) -> Path:
    """A curriculum file of one flow stage (plus GEM's depth loss at weight ``depth`` if not 0)."""
    weights = {"flow": 1.0, **({"depth": depth} if depth else {})}
    stage = {
        "name": "flow",
        "steps": steps,
        "trainable": list(trainable),
        "loss_weights": weights,
        "mixture": {"episodes": 1.0},
        "action_modes": {"flow": 1.0},
        "lr": lr,
        "warmup": 0.0,
    }
    path.write_text(json.dumps([stage]))
    return path


@pytest.fixture
def flow_stage_file(tmp_path):
    """``flow_stage_file(steps, trainable=..., depth=..., lr=...)`` -> ``<tmp_path>/stages.json``."""

    def make(steps: int, **kw) -> Path:
        return write_flow_stage(tmp_path / "stages.json", steps, **kw)

    return make
