"""The connector: final-layer vision-token states -> the depth generator's condition.

GEM's: Linear -> GELU -> Linear -> RMSNorm into the DiT's condition width. embodia adds fixed 2D
sin-cos positions of each merged patch (cross-attention cannot see key order) and implements
GEM's condition dropout: a dropped image's whole condition is zeroed, which is exactly the
"all-zero condition" classifier-free guidance compares against at sampling time.
"""

from __future__ import annotations

import torch
from torch import nn

from embodia.models.depth.tokens import sincos_2d


class Connector(nn.Module):
    def __init__(self, hidden_size: int, out_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.fc1 = nn.Linear(hidden_size, out_dim)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.norm = nn.RMSNorm(out_dim, eps=eps)

    def forward(self, states: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(N, tokens, hidden) states of N images sharing one (h, w) merged grid -> (N, tokens, out)."""
        x = self.norm(self.fc2(self.act(self.fc1(states))))
        pos = sincos_2d(*grid, self.out_dim, device=x.device).to(x.dtype)
        return x + pos[None]


def drop_condition(
    cond: torch.Tensor, p: float, generator: torch.Generator | None = None, uniforms=None
):
    """Zero each image's whole condition with probability ``p``; returns (cond, dropped (N,) bool).

    ``uniforms`` (N,) in [0, 1): the per-image draws to compare with ``p`` (training passes its
    per-sample streams, ``embodia.models.noise``); else drawn from ``generator``."""
    n = cond.shape[0]
    if p <= 0:
        return cond, torch.zeros(n, dtype=torch.bool, device=cond.device)
    u = uniforms if uniforms is not None else torch.rand(n, generator=generator)
    dropped = (u < p).to(cond.device)
    return cond * (~dropped).to(cond.dtype)[:, None, None], dropped
