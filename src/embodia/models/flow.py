"""Rectified flow, once: the time convention, the interpolation, the time distributions and the one
Euler loop every flow in embodia samples with (the in-backbone action head, GEM-VLA's DiT expert
and GEM's depth generator).

Convention: t = 0 is pure noise, t = 1 the data::

    x_t = (1 - t) * noise + t * data,        velocity  dx/dt = data - noise

and sampling integrates dx/dt from t = 0 to 1 in equal Euler steps. GEM's depth generator is
trained in its paper's own variable, the noise level s = 1 - t (its DiT predicts noise - data =
-dx/dt); ``embodia.models.depth.flow`` converts at that one boundary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: velocity(x, t) with t a (B,) tensor of one time for the whole batch.
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor):
    """(x_t, target velocity data - noise) for per-sample times ``t`` (B,)."""
    tb = t.view(-1, *([1] * (data.dim() - 1))).to(data.dtype)
    return (1 - tb) * noise + tb * data, data - noise


def euler(velocity: Velocity, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 (``x``, the noise) to t = 1 in ``steps`` steps."""
    if steps < 1:
        raise ValueError(f"flow sampling needs at least one Euler step, got {steps}")
    dt = 1.0 / steps
    for k in range(steps):
        t = torch.full((x.shape[0],), k * dt, device=x.device, dtype=x.dtype)
        x = x + dt * velocity(x, t)
    return x


def logit_normal(normals: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Logit-normal times sigmoid(mean + std * z) from standard normal draws ``z``."""
    return torch.sigmoid(normals * std + mean)


def sample_time(
    batch: int,
    alpha: float,
    beta: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The in-backbone head's training times: t = (0.999 - b) / 0.999 with b ~ Beta(alpha, beta)
    (pi0's choice: more weight near the noise end, where the velocity is hardest to predict),
    reproducible under ``generator``.

    Beta(alpha, 1) has CDF x^alpha, so b = U^(1/alpha) by inversion (and Beta(1, beta) likewise);
    other shapes use torch's sampler, which takes no generator.
    """
    if beta == 1.0 or alpha == 1.0:
        u = torch.rand(batch, generator=generator)
        b = u ** (1.0 / alpha) if beta == 1.0 else 1.0 - u ** (1.0 / beta)
    else:
        b = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(beta)).sample((batch,))
    return ((0.999 - b) / 0.999).to(device)
