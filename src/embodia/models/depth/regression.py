"""The dense-regression ablation: the same connector output, decoded straight to pixels.

Each condition token predicts its own p x p patch of the encoded target through a small MLP and
the patches are laid back on the merged grid (pixel shuffle). No latent space, no noise, no
sampling: it answers "is it the generative objective that helps, or just any depth signal?".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DenseRegressionHead(nn.Module):
    def __init__(self, cond_dim: int, hidden: int, channels: int, patch: int) -> None:
        super().__init__()
        self.channels, self.patch = channels, patch
        self.mlp = nn.Sequential(
            nn.Linear(cond_dim, hidden), nn.GELU(), nn.Linear(hidden, channels * patch * patch)
        )

    def forward(self, cond: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(N, h * w, cond_dim) -> (N, channels, h * patch, w * patch) encoded image."""
        n = cond.shape[0]
        h, w = grid
        x = self.mlp(cond).transpose(1, 2).reshape(n, self.channels * self.patch**2, h, w)
        return F.pixel_shuffle(x, self.patch)
