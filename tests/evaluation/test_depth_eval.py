"""Depth metrics against a hand computation, and the depth evaluation's clear refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embodia.configs.eval import DepthConfig
from embodia.evaluation.depth import (
    depth_items,
    median_scaled,
    resize_depth,
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
    assert s["median_scaled"]["per_image" if False else "abs_rel"] <= s["metrics"]["abs_rel"]
    np.testing.assert_allclose(median_scaled(pred2, gt2), gt2)


def test_resize_keeps_constant_maps():
    np.testing.assert_allclose(resize_depth(np.full((4, 4), 2.0), (8, 8)), 2.0)


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


class _FakeDepth:
    """A depth 'model' that returns ground truth x 1.1 at half resolution."""

    def __init__(self, checkpoint, device="cpu"):
        self.checkpoint = checkpoint
        self.has_depth = True
        self.gt = {}

    def depth(self, image, camera):
        return np.full((16, 16), 1.1, dtype=np.float32)


def test_run_depth_end_to_end(engine_dataset, tiny_checkpoint, monkeypatch, tmp_path):
    from embodia.evaluation import answerer

    monkeypatch.setattr(answerer, "Answerer", _FakeDepth)
    out = run_depth(
        DepthConfig(
            checkpoint=tiny_checkpoint, dataset=engine_dataset, output=tmp_path / "depth", grid=2
        )
    )
    doc = json.loads((out / "results.json").read_text())
    m = doc["results"]["metrics"]
    assert m["images"] == 2 and 0 < m["abs_rel"] < 1
    assert (out / "depth_grid.png").stat().st_size > 1000
    assert "AbsRel" in (out / "report.md").read_text()
