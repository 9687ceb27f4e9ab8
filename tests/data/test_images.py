"""The one resize and the random-shift augmentation."""

from __future__ import annotations

import numpy as np

from embodia.data.images import (
    random_shift,
    resize_depth,
    resize_depth_maps,
    resize_prediction,
    resize_rgb,
)


def test_resize_keeps_invalid_depth_unblended():
    depth = np.zeros((8, 8), np.float32)
    depth[:, 4:] = 2.0
    out = resize_depth(depth, 4)
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert resize_rgb(np.zeros((8, 6, 3), np.uint8), 4).shape == (4, 4, 3)


def test_random_shift_moves_image_and_depth_together():
    rng = np.random.default_rng(0)
    img = np.arange(16 * 16 * 3, dtype=np.int64).reshape(16, 16, 3).astype(np.uint8)
    depth = np.arange(16 * 16, dtype=np.float32).reshape(16, 16)
    seen = set()
    for _ in range(20):
        a, d = random_shift([img, depth], 2, rng)
        assert a.shape == img.shape and d.shape == depth.shape
        # the interior pixel (8, 8) lands at the same place in both
        y, x = np.argwhere(d == depth[8, 8])[0]
        assert np.array_equal(a[y, x], img[8, 8])
        seen.add((int(y), int(x)))
    assert len(seen) > 5  # it does shift, by up to 2 px each way
    assert all(abs(y - 8) <= 2 and abs(x - 8) <= 2 for y, x in seen)
    assert random_shift([img], 0, rng)[0] is img


def test_predictions_resize_bilinearly_and_depth_batches_like_single_maps():
    """A dense prediction is interpolated (a constant stays constant, a ramp stays within its
    range); measured depth in a batch (numpy or torch) is resized map by map by nearest
    neighbour, exactly as one map would be."""
    import torch

    np.testing.assert_allclose(resize_prediction(np.full((4, 4), 2.0), (8, 8)), 2.0)
    ramp = np.tile(np.linspace(1.0, 2.0, 4, dtype=np.float32), (4, 1))
    up = resize_prediction(ramp, (8, 8))
    assert up.shape == (8, 8) and up.min() >= 1.0 and up.max() <= 2.0
    assert len(np.unique(up.round(4))) > 4  # interpolated, not repeated
    rng = np.random.default_rng(0)
    maps = rng.uniform(0.3, 2.0, (3, 16, 16)).astype(np.float32)
    maps[:, :4] = 0.0
    single = np.stack([resize_depth(m, 8) for m in maps])
    np.testing.assert_array_equal(resize_depth_maps(maps, 8), single)
    np.testing.assert_array_equal(resize_depth_maps(torch.from_numpy(maps), 8).numpy(), single)
