"""Where each image lives in a batch: its vision-token states, its grid, its pixels.

A batch holds images in sequence order (sample by sample, view by view), one ``image_grid_thw`` row
each; image ``k`` contributes ``t * h * w / merge**2`` consecutive ``<|image_pad|>`` tokens, in
row-major order over the merged patch grid. So the states at those positions, taken in order and
split by those counts, are exactly each image's own tokens and reshape to an (h/merge, w/merge) map.
"""

from __future__ import annotations

import math

import torch


def tokens_per_image(grid_thw: torch.Tensor, merge: int) -> list[int]:
    return [int(t * h * w) // (merge * merge) for t, h, w in grid_thw.tolist()]


def image_token_states(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    image_pad: int,
    grid_thw: torch.Tensor,
    merge: int,
) -> list[torch.Tensor]:
    """Per image, its vision-token states (tokens_k, hidden), from (B, S, hidden) ``hidden``."""
    states = hidden[input_ids == image_pad]
    counts = tokens_per_image(grid_thw, merge)
    if sum(counts) != states.shape[0]:
        raise ValueError(f"{states.shape[0]} image tokens but image_grid_thw implies {sum(counts)}")
    return list(torch.split(states, counts, dim=0))


def merged_grid(grid_thw_row: torch.Tensor | list[int], merge: int) -> tuple[int, int]:
    _t, h, w = (int(x) for x in grid_thw_row)
    return h // merge, w // merge


def image_rows(input_ids: torch.Tensor, image_pad: int, counts: list[int]) -> list[int]:
    """Which batch row (sample) each image belongs to, in image order."""
    rows = (input_ids == image_pad).nonzero()[:, 0]  # row-major: the same order as the images
    starts = torch.tensor([0, *counts[:-1]], device=rows.device).cumsum(0)
    return rows[starts].tolist()


def sincos_2d(h: int, w: int, dim: int, device=None) -> torch.Tensor:
    """(h * w, dim) fixed 2D sin-cos positions (half the channels for rows, half for columns).

    Cross-attention is blind to the order of its keys, so without this the generator could not
    tell which condition token came from which part of the image.
    """
    quarter = dim // 4
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=device) / max(quarter, 1))
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    parts = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        args = pos[:, None] * freqs[None]
        parts += [torch.sin(args), torch.cos(args)]
    emb = torch.cat(parts, dim=-1)
    return torch.nn.functional.pad(emb, (0, dim - emb.shape[-1]))


def unpatchify_rgb(
    pixel_values: torch.Tensor, grid_thw: torch.Tensor, processor
) -> list[torch.Tensor]:
    """Undo the Qwen-VL image processor: per image, (3, H, W) RGB in [0, 1].

    The processor cuts each (temporal-repeated) image into p x p patches grouped by merge x merge
    blocks and normalises them with its mean / std; this inverts exactly that layout, so the RGB
    reconstruction target is the very image the backbone saw.
    """
    p = processor.patch_size
    m = processor.merge_size
    tp = processor.temporal_patch_size
    mean = torch.tensor(processor.image_mean, device=pixel_values.device).view(3, 1, 1)
    std = torch.tensor(processor.image_std, device=pixel_values.device).view(3, 1, 1)
    out, start = [], 0
    for t, h, w in grid_thw.tolist():
        n = t * h * w
        x = pixel_values[start : start + n].float()
        start += n
        x = x.reshape(t, h // m, w // m, m, m, 3, tp, p, p)
        x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8).reshape(t * tp, 3, h * p, w * p)
        out.append((x[0] * std + mean).clamp(0.0, 1.0))
    return out
