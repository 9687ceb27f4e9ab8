"""The one resize of embodia: every RGB view and depth map reaches the model through these two.

RGB is resized bilinearly (PIL), depth by nearest neighbour so that an invalid (0) pixel never
blends into a valid one. Training (the frame cache, conversation images), evaluation and serving
all call these, so a view is resized the same way wherever it comes from.
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
