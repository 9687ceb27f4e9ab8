"""Depth target encodings round-trip back to depth; metrics score valid pixels only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embodia.configs.depth import DepthConfig
from embodia.models.depth.encodings import (
    colorize,
    decode_depth,
    decolorize,
    encode_depth,
    inverse_range,
    spectral_lut,
)
from embodia.models.depth.metrics import depth_metrics, mean_depth_baseline


def scene(n=3, seed=0) -> torch.Tensor:
    """Smooth depth maps in 0.3..3 m with a block of invalid (0) pixels."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    maps = []
    for _ in range(n):
        a, b, c = torch.rand(3, generator=g)
        maps.append(0.3 + 2.7 * (0.5 + 0.5 * torch.sin(3 * a * xx + 2 * b * yy + 6 * c)))
    depth = torch.stack(maps)
    depth[:, :6, :10] = 0.0
    return depth


def test_colorize_decolorize_is_exact_along_the_colormap():
    v = torch.rand(2, 16, 16)
    torch.testing.assert_close(decolorize(colorize(v)), v, atol=2e-5, rtol=0)
    lut = spectral_lut()
    assert lut.shape == (256, 3) and float(lut.min()) >= 0 and float(lut.max()) <= 1


@pytest.mark.parametrize("encoding", ["colormap", "inverse"])
@pytest.mark.parametrize("normalization", ["percentile", "fixed"])
def test_encodings_round_trip_to_depth(encoding, normalization):
    cfg = DepthConfig(encoding=encoding, normalization=normalization, near=0.2, far=4.0)
    depth = scene()
    valid = depth > 0
    image, rng = encode_depth(depth, valid, cfg)
    assert image.shape == (3, cfg.channels, 48, 48)
    assert float(image.min()) >= -1 and float(image.max()) <= 1
    back = decode_depth(image, rng, cfg)
    inv, inv_back = 1 / depth[valid], 1 / back[valid]
    lo = rng.lo[:, None, None].expand_as(depth)[valid]
    hi = rng.hi[:, None, None].expand_as(depth)[valid]
    inside = (inv >= lo) & (inv <= hi)
    # inside the normalisation range: exact up to float error; outside: clipped to the range
    torch.testing.assert_close(back[valid][inside], depth[valid][inside], rtol=1e-4, atol=1e-5)
    assert torch.all((inv_back >= lo - 1e-4) & (inv_back <= hi + 1e-4))
    if normalization == "percentile":
        assert 0.9 < float(inside.float().mean()) <= 0.97  # 2nd..98th percentile
        assert depth_metrics(back, depth)["abs_rel"] < 0.02
    # invalid pixels encode as the far end
    assert torch.allclose(image[:, :, :6, :10], image[:, :, :6, :10][..., :1, :1])


def test_fixed_range_is_metric_and_needs_no_ground_truth():
    cfg = DepthConfig(encoding="inverse", normalization="fixed", near=0.25, far=4.0)
    rng = inverse_range(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), cfg)
    torch.testing.assert_close(rng.lo, torch.full((2,), 0.25))
    torch.testing.assert_close(rng.hi, torch.full((2,), 4.0))


def test_metrics_on_valid_pixels():
    gt = torch.tensor([[[1.0, 2.0], [0.0, 4.0]]])
    assert depth_metrics(gt, gt) == {"abs_rel": 0.0, "delta1": 1.0, "images": 1}
    pred = torch.tensor([[[1.1, 2.0], [123.0, 2.0]]])  # the invalid pixel's guess never counts
    m = depth_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx((0.1 + 0 + 0.5) / 3)
    assert m["delta1"] == pytest.approx(2 / 3)
    base = mean_depth_baseline(np.array([[1.0, 3.0]]))
    assert base["abs_rel"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert depth_metrics(torch.ones(1, 2, 2), torch.zeros(1, 2, 2))["images"] == 0
