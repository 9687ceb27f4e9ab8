"""The one resize of embodia: every RGB view and depth map reaches the model through these.

RGB is resized bilinearly (PIL), measured depth by nearest neighbour so that an invalid (0) pixel
never blends into a valid one. Training (the frame cache, conversation images, the depth head's
targets, the depth autoencoder), evaluation and serving all call these, so a view is resized the
same way wherever it comes from. A model's depth *prediction* is dense and valid everywhere, so
scoring brings it to the ground truth's size bilinearly (:func:`resize_prediction`); ground truth
is never resized that way.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3), bilinear; returned unchanged if already square."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def resize_depth(depth: np.ndarray, size: int) -> np.ndarray:
    """float (H, W) metres -> float32 (size, size), nearest neighbour (0 = invalid stays 0)."""
    if depth.shape == (size, size):
        return np.asarray(depth, dtype=np.float32)
    return np.asarray(
        Image.fromarray(np.asarray(depth, dtype=np.float32), mode="F").resize(
            (size, size), Image.NEAREST
        )
    )


def resize_depth_maps(depth, size: int):
    """A batch (N, H, W) of depth maps (numpy or torch), each through :func:`resize_depth`."""
    if depth.shape[-2:] == (size, size):
        return depth
    import torch

    if isinstance(depth, torch.Tensor):
        maps = [resize_depth(d.detach().cpu().float().numpy(), size) for d in depth]
        return torch.from_numpy(np.stack(maps)).to(depth.device)
    return np.stack([resize_depth(d, size) for d in depth])


def resize_prediction(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A predicted depth map (H, W) to ``shape``, bilinear (for scoring against ground truth)."""
    if pred.shape == shape:
        return pred.astype(np.float32)
    img = Image.fromarray(np.asarray(pred, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR))


def random_shift(views: list[np.ndarray], pad: int, rng: np.random.Generator) -> list[np.ndarray]:
    """DrQ's augmentation: pad by repeating the border, crop back to size at a random offset.

    All arrays in ``views`` (an RGB view and its depth map) move by the same offset. Shifts of a
    few pixels make a policy trained on a few dozen demonstrations rely on where things are
    relative to each other rather than on exact pixel positions. Only action samples get it: a
    grounding answer is in pixel coordinates and would no longer match a shifted image.
    """
    if pad <= 0:
        return views
    dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    out = []
    for arr in views:
        h, w = arr.shape[:2]
        widths = ((pad, pad), (pad, pad), *([(0, 0)] * (arr.ndim - 2)))
        out.append(np.pad(arr, widths, mode="edge")[dy : dy + h, dx : dx + w])
    return out
