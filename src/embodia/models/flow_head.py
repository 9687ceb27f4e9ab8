"""Flow-matching action head on H `<|action|>` tokens (WALL-OSS / pi0 style rectified flow).

Convention: t = 0 is pure noise, t = 1 the data: x_t = (1 - t) * eps + t * a, and the model
predicts the velocity a - eps. Training draws t = (0.999 - Beta(1.5, 1)) / 0.999, which puts more
weight near the noise end where the velocity is hardest to predict. Sampling integrates with Euler
steps from t = 0 to 1. The loss is masked by the embodiment's DoF mask so robots with fewer action
dimensions than the shared template train the same head.
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


def sample_time(
    batch: int,
    alpha: float,
    beta: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """t = (0.999 - b) / 0.999 with b ~ Beta(alpha, beta), reproducible under ``generator``.

    Beta(alpha, 1) has CDF x^alpha, so b = U^(1/alpha) by inversion (and Beta(1, beta) likewise);
    other shapes use torch's sampler, which takes no generator.
    """
    if beta == 1.0 or alpha == 1.0:
        u = torch.rand(batch, generator=generator)
        b = u ** (1.0 / alpha) if beta == 1.0 else 1.0 - u ** (1.0 / beta)
    else:
        b = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(beta)).sample((batch,))
    return ((0.999 - b) / 0.999).to(device)


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
