"""Evaluation fixtures: a tiny random-weights checkpoint and a small engine-format QA dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_rows import ENGINE_ROWS
from PIL import Image


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Random tiny model + policy.json (cameras corner, gripperPOV; Sawyer statistics)."""
    from embodia.serving.demo import write_demo_checkpoint

    return Path(write_demo_checkpoint(tmp_path_factory.mktemp("eval") / "tiny-ckpt"))


@pytest.fixture()
def engine_dataset(tmp_path) -> Path:
    """A minimal engine dataset: engine.json, conversations/test.jsonl, RGB + depth PNGs."""
    root = tmp_path / "ds"
    conv = root / "conversations"
    rng = np.random.default_rng(0)
    for stem in ("images/a/corner_0000", "images/b/corner_0020"):
        (conv / stem).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            conv / f"{stem}.png"
        )
        mm = rng.integers(500, 2000, (32, 32)).astype(np.uint16)
        mm[:4] = 0  # invalid pixels
        Image.fromarray(mm).save(conv / f"{stem}_depth.png")
    with open(conv / "test.jsonl", "w") as f:
        for r in ENGINE_ROWS:
            f.write(json.dumps(r) + "\n")
    (root / "engine.json").write_text(
        json.dumps({"config": {"coordinates": "qwen3", "image_size": 32, "seed": 0}})
    )
    return root
