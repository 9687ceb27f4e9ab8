"""Depth as an image the generator can produce, and back to metres for scoring.

GEM's target: inverse depth, normalised between its per-image 2nd and 98th percentiles, mapped
through matplotlib's "Spectral" colormap to RGB. The single-channel variant keeps the normalised
inverse depth itself. Inverse depth (not depth) because near structure, where a robot acts,
then gets most of the value range. Either normalisation can be chosen:

- ``percentile`` (GEM): affine-invariant relative depth; decoding needs the per-image range, which
  for scoring comes from ground truth (the usual alignment for relative depth);
- ``fixed``: between 1/far and 1/near, so decoding gives metres with no ground truth.

Images are channels-first in [-1, 1]. Invalid pixels (depth 0) encode as 0 normalised (farthest);
losses and metrics mask them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from embodia.configs.depth import DepthConfig

LUT_SIZE = 256
_CHUNK = 32768  # pixels per nearest-colour search (keeps the distance matrix ~32 MB)


@dataclass
class DepthRange:
    """Per-image inverse-depth range (1/m) that maps to normalised 0 (far) .. 1 (near)."""

    lo: torch.Tensor  # (N,)
    hi: torch.Tensor  # (N,)


@lru_cache(maxsize=4)
def spectral_lut(size: int = LUT_SIZE) -> torch.Tensor:
    """(size, 3) RGB in [0, 1] of matplotlib's Spectral colormap, evenly sampled."""
    import matplotlib

    cmap = matplotlib.colormaps["Spectral"].resampled(size)
    return torch.tensor(cmap(torch.linspace(0, 1, size).numpy())[:, :3], dtype=torch.float32)


def inverse_range(depth: torch.Tensor, valid: torch.Tensor, cfg: DepthConfig) -> DepthRange:
    """The normalisation range of each map in ``depth`` (N, H, W) over its ``valid`` pixels.

    ``fixed`` (or an image with no valid pixel) uses [1/far, 1/near].
    """
    n = depth.shape[0]
    lo = torch.full((n,), 1.0 / cfg.far, device=depth.device)
    hi = torch.full((n,), 1.0 / cfg.near, device=depth.device)
    if cfg.normalization == "percentile":
        q = torch.tensor([p / 100.0 for p in cfg.percentiles], device=depth.device)
        for i in range(n):
            inv = 1.0 / depth[i][valid[i]].float()
            if inv.numel() == 0:
                continue
            a, b = torch.quantile(inv, q)
            lo[i], hi[i] = a, torch.maximum(b, a + 1e-6)
    return DepthRange(lo, hi)


def normalize(depth: torch.Tensor, valid: torch.Tensor, rng: DepthRange) -> torch.Tensor:
    """(N, H, W) metres -> normalised inverse depth in [0, 1] (invalid pixels -> 0)."""
    inv = 1.0 / depth.float().clamp(min=1e-6)
    v = (inv - rng.lo[:, None, None]) / (rng.hi - rng.lo)[:, None, None]
    return torch.where(valid, v.clamp(0.0, 1.0), torch.zeros_like(v))


def denormalize(v: torch.Tensor, rng: DepthRange) -> torch.Tensor:
    """Normalised inverse depth (N, H, W) -> metres."""
    inv = rng.lo[:, None, None] + v.float().clamp(0.0, 1.0) * (rng.hi - rng.lo)[:, None, None]
    return 1.0 / inv.clamp(min=1e-6)


def colorize(v: torch.Tensor) -> torch.Tensor:
    """(N, H, W) values in [0, 1] -> (N, 3, H, W) Spectral RGB in [0, 1] (linear in the LUT)."""
    lut = spectral_lut().to(v.device)
    x = v.float().clamp(0.0, 1.0) * (LUT_SIZE - 1)
    i0 = x.floor().long().clamp(max=LUT_SIZE - 2)
    w = (x - i0)[..., None]
    rgb = lut[i0] * (1 - w) + lut[i0 + 1] * w
    return rgb.permute(0, 3, 1, 2)


def decolorize(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, H, W) values: the nearest point on the colormap's curve.

    The nearest LUT entry is refined by projecting onto its two neighbouring segments, so the
    round trip is exact up to float error, not LUT quantisation.
    """
    lut = spectral_lut().to(rgb.device)
    n, _, h, w = rgb.shape
    pix = rgb.float().permute(0, 2, 3, 1).reshape(-1, 3)
    out = torch.empty(pix.shape[0], device=rgb.device)
    for s in range(0, pix.shape[0], _CHUNK):
        c = pix[s : s + _CHUNK]
        k = torch.cdist(c, lut).argmin(dim=1)
        best_v = k.float()
        best_d = torch.full_like(best_v, float("inf"))
        for a_idx in (k - 1, k):
            a_idx = a_idx.clamp(0, LUT_SIZE - 2)
            a, b = lut[a_idx], lut[a_idx + 1]
            seg = b - a
            t = (((c - a) * seg).sum(-1) / (seg * seg).sum(-1).clamp(min=1e-12)).clamp(0, 1)
            d = ((a + t[:, None] * seg - c) ** 2).sum(-1)
            better = d < best_d
            best_v = torch.where(better, a_idx.float() + t, best_v)
            best_d = torch.where(better, d, best_d)
        out[s : s + _CHUNK] = best_v / (LUT_SIZE - 1)
    return out.reshape(n, h, w)


def encode_depth(
    depth: torch.Tensor, valid: torch.Tensor, cfg: DepthConfig
) -> tuple[torch.Tensor, DepthRange]:
    """(N, H, W) metres -> ((N, C, H, W) image in [-1, 1], its range); C from ``cfg.encoding``."""
    rng = inverse_range(depth, valid, cfg)
    v = normalize(depth, valid, rng)
    img = colorize(v) if cfg.encoding == "colormap" else v[:, None]
    return img * 2.0 - 1.0, rng


def decode_depth(image: torch.Tensor, rng: DepthRange, cfg: DepthConfig) -> torch.Tensor:
    """(N, C, H, W) image in [-1, 1] -> (N, H, W) metres."""
    x = ((image.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    v = decolorize(x) if cfg.encoding == "colormap" else x[:, 0]
    return denormalize(v, rng)
