"""Flow-matching action head on H `<|action|>` tokens (WALL-OSS / pi0 style rectified flow).

The time convention, interpolation, training-time distribution and Euler loop are
``embodia.models.flow``'s (t = 0 noise, t = 1 data; the head predicts data - noise). The loss is
masked by the embodiment's DoF mask so robots with fewer action dimensions than the shared
template train the same head.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """(B,) times in [0, 1] -> (B, dim) sin/cos features over log-spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None] * max_period
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return emb if dim % 2 == 0 else torch.nn.functional.pad(emb, (0, 1))


class FlowActionHead(nn.Module):
    """Projects (noisy action, DoF mask, time) into token embeddings and hidden states back to velocity."""

    def __init__(self, action_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.hidden_size = hidden_size
        self.in_proj = nn.Linear(2 * action_dim, hidden_size)
        self.time_mlp = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )
        self.out_proj = nn.Linear(hidden_size, action_dim)

    def embed(self, noisy: torch.Tensor, dof_mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, H, D) noisy actions, (B, D) mask, (B,) time -> (B, H, hidden) token embeddings."""
        mask = dof_mask.to(noisy.dtype)[:, None, :].expand_as(noisy)
        x = self.in_proj(torch.cat([noisy * mask, mask], dim=-1))
        temb = self.time_mlp(sinusoidal_embedding(t, self.hidden_size).to(x.dtype))
        return x + temb[:, None, :]

    def velocity(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out_proj(hidden)


def flow_loss(pred: torch.Tensor, target: torch.Tensor, dof_mask: torch.Tensor) -> torch.Tensor:
    """MSE over the embodiment's real action dimensions only."""
    mask = dof_mask.to(pred.dtype)[:, None, :].expand_as(pred)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
