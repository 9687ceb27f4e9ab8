"""An exponential moving average (EMA) of the weights: what a run's checkpoints serve.

Flow-matching policies are usually evaluated with averaged weights (diffusion policy, pi0): the
last iterate of a run at a high learning rate wobbles around a good solution, and an average of
the last few hundred steps sits nearer its middle. The decay warms up as ``(1 + t) / (10 + t)``
(capped at ``decay``), so early weights, far from any solution, leave the average quickly.

With EMA on, a checkpoint's ``model.safetensors`` holds the averaged weights (so ``eval``,
``serve`` and ``--init`` use them without knowing about EMA) and ``training_weights.safetensors``
the optimizer's own weights, which ``--resume`` continues from.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

TRAINING_WEIGHTS = "training_weights.safetensors"


def ema_decay(decay: float, step: int) -> float:
    """The decay used after optimizer step ``step`` (1-based): warmed up, capped at ``decay``."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """The EMA of a model's floating-point parameters (fp32 copies, one per parameter)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        weight = 1.0 - ema_decay(self.decay, step)
        for name, p in model.named_parameters():
            if name in self.shadow and p.requires_grad:  # frozen weights equal their average
                self.shadow[name].lerp_(p.detach().float(), weight)

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module):
        """Inside the block the model holds the averaged weights; after it, its own again."""
        own = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.shadow:
                    own[name] = p.detach().clone()
                    p.copy_(self.shadow[name])
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in own:
                        p.copy_(own[name])


def save_training_weights(model: torch.nn.Module, directory: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(Path(directory) / TRAINING_WEIGHTS))


def resume(model: torch.nn.Module, checkpoint: Path, decay: float) -> WeightAverage:
    """The average held by ``checkpoint`` (its served weights, loaded into ``model``), with the
    model switched to the checkpoint's training weights so the optimizer continues from them."""
    from safetensors.torch import load_model

    average = WeightAverage(model, decay)
    path = Path(checkpoint) / TRAINING_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(
            f"{checkpoint}: the run trains with EMA but the checkpoint has no {TRAINING_WEIGHTS}"
        )
    load_model(model, str(path))
    return average
