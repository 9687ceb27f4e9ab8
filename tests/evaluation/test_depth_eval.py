"""Depth metrics against a hand computation, and the depth evaluation's clear refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embodia.configs.eval import DepthConfig
from embodia.evaluation.depth import (
    depth_items,
    median_scaled,
    run_depth,
    score_depths,
)


def test_metrics_match_a_hand_computation():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]], dtype=np.float32)  # 0 = invalid, ignored
    pred = np.array([[1.1, 3.0], [4.0, 9.0]], dtype=np.float32)
    # AbsRel = mean(|p - g| / g) over valid = (0.1/1 + 1/2 + 0/4) / 3 = 0.2
    # delta1 = share with max(p/g, g/p) < 1.25: 1.1 yes, 1.5 no, 1.0 yes -> 2/3
    gt2 = np.full((2, 2), 2.0, dtype=np.float32)
    pred2 = np.full((2, 2), 3.0, dtype=np.float32)  # AbsRel 0.5, delta1 0 (ratio 1.5)
    s = score_depths([pred, pred2], [gt, gt2], ["corner", "gripperPOV"])
    assert s["per_image"][0]["abs_rel"] == pytest.approx(0.2, abs=1e-6)
    assert s["per_image"][0]["delta1"] == pytest.approx(2 / 3, abs=1e-6)
    assert s["metrics"]["abs_rel"] == pytest.approx((0.2 + 0.5) / 2, abs=1e-6)  # per image, mean
    assert s["metrics"]["delta1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-6)
    assert s["per_camera"]["gripperPOV"]["abs_rel"] == pytest.approx(0.5, abs=1e-6)
    # median scaling: image 0 x 2/3 -> (0.2667/1 + 0/2 + 1.3333/4) / 3 = 0.2; image 1 exact -> 0
    assert s["median_scaled"]["abs_rel"] == pytest.approx((0.2 + 0.0) / 2, abs=1e-5)
    np.testing.assert_allclose(median_scaled(pred2, gt2), gt2)


def test_items_are_distinct_views_with_depth(engine_dataset):
    items = depth_items(engine_dataset, "test", 10)
    assert [i["image"] for i in items] == ["images/a/corner_0000.png", "images/b/corner_0020.png"]


def test_checkpoint_without_depth_generator_is_refused(engine_dataset, tiny_checkpoint, tmp_path):
    from embodia.cli import main

    with pytest.raises(ValueError, match="no depth generator"):
        run_depth(DepthConfig(checkpoint=tiny_checkpoint, dataset=engine_dataset, output=tmp_path))
    rc = main(
        [
            "eval",
            "depth",
            "--checkpoint",
            str(tiny_checkpoint),
            "--dataset",
            str(engine_dataset),
            "--output",
            str(tmp_path / "d"),
        ]
    )
    assert rc == 2


_TRUTH: dict[bytes, np.ndarray] = {}  # image bytes -> its ground-truth depth (metres)


class _FakeDepth:
    """A depth 'model' that returns the ground truth x 1.1 (looked up by the image it is shown):
    AbsRel must then be 0.1, delta<1.25 100%, and the median-scaled AbsRel 0."""

    def __init__(self, checkpoint, device="cpu"):
        self.checkpoint = checkpoint
        self.has_depth = True
        self.depth_scale = "truth x 1.1 (a test stand-in)"

    def depth(self, image, camera):
        return _TRUTH[np.ascontiguousarray(image).tobytes()] * 1.1


def test_run_depth_end_to_end(engine_dataset, tiny_checkpoint, monkeypatch, tmp_path):
    from PIL import Image

    from embodia.data.lerobot_v3.video import mm_to_depth
    from embodia.evaluation import answerer

    conv = engine_dataset / "conversations"
    for it in depth_items(engine_dataset, "test", 10):
        rgb = np.asarray(Image.open(conv / it["image"]).convert("RGB"))
        gt = mm_to_depth(np.asarray(Image.open(conv / it["depth"]))).astype(np.float32)
        _TRUTH[rgb.tobytes()] = gt
    monkeypatch.setattr(answerer, "Answerer", _FakeDepth)
    out = run_depth(
        DepthConfig(
            checkpoint=tiny_checkpoint, dataset=engine_dataset, output=tmp_path / "depth", grid=2
        )
    )
    doc = json.loads((out / "results.json").read_text())
    m = doc["results"]["metrics"]
    assert m["images"] == 2
    assert m["abs_rel"] == pytest.approx(0.1, abs=1e-4) and m["delta1"] == pytest.approx(1.0)
    assert doc["results"]["median_scaled"]["abs_rel"] == pytest.approx(0.0, abs=1e-4)
    assert (out / "depth_grid.png").stat().st_size > 1000
    assert "AbsRel" in (out / "report.md").read_text()


def test_run_depth_on_a_real_depth_checkpoint_is_metric_from_rgb_alone(engine_dataset, tmp_path):
    """Not a stand-in: a tiny GEM model (random weights) saved as a checkpoint goes through the
    real generation path, and its protocol says the scale is predicted (metric from RGB alone;
    tests/models/depth/test_overfit.py checks that ground truth never enters generation)."""
    import torch

    from embodia.configs.depth import depth_preset
    from embodia.configs.model import preset
    from embodia.models.embodied import EmbodiedModel

    cfg = preset("tiny")
    cfg.depth = depth_preset("tiny")
    torch.manual_seed(0)
    ckpt = EmbodiedModel(cfg).save_pretrained(tmp_path / "gem-tiny")
    out = run_depth(
        DepthConfig(checkpoint=ckpt, dataset=engine_dataset, output=tmp_path / "depth", grid=0)
    )
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"]["scale"].startswith("predicted")
    m = doc["results"]["metrics"]
    assert m["images"] == 2 and np.isfinite(m["abs_rel"]) and 0 <= m["delta1"] <= 1
