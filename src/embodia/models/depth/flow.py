"""The depth generator's rectified flow, in GEM's variable: the noise level s = 1 - t of
``embodia.models.flow``'s convention (noise at s = 1, data at s = 0).

Training: x_s = (1 - s) x + s eps (= flow.interpolate at t = 1 - s), the DiT predicts eps - x, MSE.
Sampling: the one Euler loop of ``embodia.models.flow`` from t = 0 to 1 with velocity
dx/dt = -(the DiT's prediction at s = 1 - t), under classifier-free guidance against the all-zero
condition: v = v_0 + g (v_c - v_0). At g = 1 that is the conditional velocity itself, so the
unconditional pass is skipped (exactly equal, half the cost).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from embodia.models.flow import euler, interpolate, logit_normal

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sample_noise_level(
    n: int, kind: str, generator: torch.Generator | None = None, device=None, draws=None
) -> torch.Tensor:
    """(n,) noise levels s in (0, 1): uniform (GEM) or logit-normal (SD3-style); from ``draws``
    (:class:`embodia.models.noise.Draws`, one stream per item) when given, else ``generator``."""
    if kind == "uniform":
        s = draws.rand(1)[:, 0] if draws is not None else torch.rand(n, generator=generator)
    elif kind == "logit-normal":
        z = draws.randn(1)[:, 0] if draws is not None else torch.randn(n, generator=generator)
        s = logit_normal(z)
    else:
        raise ValueError(f"unknown time sampling {kind!r}")
    return s.to(device)


def noisy_latents(x: torch.Tensor, eps: torch.Tensor, s: torch.Tensor):
    """(x_s, the DiT's target eps - x) for clean ``x``, noise ``eps`` and levels ``s`` (N,)."""
    x_s, data_minus_noise = interpolate(eps, x, 1 - s)
    return x_s, -data_minus_noise


def guided_velocity(
    velocity: Velocity, x: torch.Tensor, cond: torch.Tensor, s: torch.Tensor, guidance: float
) -> torch.Tensor:
    """Classifier-free guided velocity; conditional and unconditional share one batched call."""
    if guidance == 1.0:
        return velocity(x, cond, s)
    both = velocity(torch.cat([x, x]), torch.cat([cond, torch.zeros_like(cond)]), torch.cat([s, s]))
    v_cond, v_uncond = both.chunk(2)
    return v_uncond + guidance * (v_cond - v_uncond)


def euler_sample(
    velocity: Velocity,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    guidance: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """From pure noise (s = 1) to data (s = 0) in ``steps`` Euler steps of the one loop."""
    x = torch.randn(shape, generator=generator).to(cond.device, cond.dtype)
    return euler(lambda x, t: -guided_velocity(velocity, x, cond, 1 - t, guidance), x, steps)
