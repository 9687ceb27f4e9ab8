"""Depth metrics on valid pixels: AbsRel and delta < 1.25 (shared with the evaluation code).

Ground-truth pixels of 0 (or non-finite) are invalid and ignored. Each image is scored on its own
pixels, then images are averaged, so a large image does not outweigh a small one; images without
any valid pixel are skipped.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()


def valid_mask(gt: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(gt) & (gt > 0)


def depth_metrics(pred, gt) -> dict[str, float]:
    """``pred`` and ``gt`` (N, H, W) or (H, W) in metres -> {"abs_rel", "delta1", "images"}."""
    pred, gt = _as_tensor(pred), _as_tensor(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ"
        )
    if gt.ndim == 2:
        pred, gt = pred[None], gt[None]
    abs_rel, delta1 = [], []
    for p, g in zip(pred, gt, strict=True):
        m = valid_mask(g)
        if not bool(m.any()):
            continue
        p, g = p[m].clamp(min=1e-6), g[m]
        abs_rel.append(float(((p - g).abs() / g).mean()))
        delta1.append(float((torch.maximum(p / g, g / p) < 1.25).float().mean()))
    if not abs_rel:
        return {"abs_rel": float("nan"), "delta1": float("nan"), "images": 0}
    return {
        "abs_rel": float(np.mean(abs_rel)),
        "delta1": float(np.mean(delta1)),
        "images": len(abs_rel),
    }


def abs_rel(pred, gt) -> float:
    return depth_metrics(pred, gt)["abs_rel"]


def delta1(pred, gt) -> float:
    return depth_metrics(pred, gt)["delta1"]


def mean_depth_baseline(gt) -> dict[str, float]:
    """Metrics of predicting each image's own mean valid depth everywhere (a reference floor that
    knows the scale but nothing about structure)."""
    gt = _as_tensor(gt)
    if gt.ndim == 2:
        gt = gt[None]
    pred = torch.stack(
        [
            torch.full_like(g, float(g[valid_mask(g)].mean()) if valid_mask(g).any() else 1.0)
            for g in gt
        ]
    )
    return depth_metrics(pred, gt)
