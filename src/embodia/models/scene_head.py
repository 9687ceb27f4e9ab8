"""SceneHead: where the scene's objects are, read back from the model's own prefix (training only).

The privileged-state control of docs/learning.md showed that the action pipeline is not what
limits an image policy on Meta-World: the same model given the simulator's object and goal
positions as its state comes within a few points of the scripted expert, while the image policy
misses handles and buttons by about 10 cm. What the image policy lacks is *localisation*, and the
demonstrations alone (a flow loss on actions) teach it slowly.

A simulator knows those positions for every recorded frame (``observation.environment_state``).
This head turns them into an auxiliary target, in the spirit of GEM's generative supervision: a
small MLP reads the final-layer hidden state at the ``<|propri|>`` token -- the last prefix token
before the actions, which attends to every view and the instruction -- and regresses the
normalised object / goal coordinates (MSE). The gradient teaches the vision tower and the
shared attention to represent where things are, exactly where the action tokens read the prefix.

The head is never used at inference: a trained policy still sees images and proprioception only.
It is registered as ``model.aux_heads["scene"]`` and weighted by the stage's ``scene`` loss term.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SceneHead(nn.Module):
    def __init__(self, hidden: int, dims: int) -> None:
        super().__init__()
        self.dims = dims
        self.net = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, dims)
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """(N, hidden) prefix states -> (N, dims) predicted normalised scene coordinates."""
        return self.net(states)

    def compute_loss(self, model, batch: dict, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """MSE on the samples that carry a scene target and a proprioception token; {} when the
        batch has none (VQA rows, datasets without the feature), so the term simply drops out."""
        if "scene" not in batch:
            return {}
        propri = batch["input_ids"] == model.special.propri
        rows = batch["scene_mask"] & propri.any(dim=1)
        if not bool(rows.any()):
            return {}
        if int(propri[rows].sum()) != int(rows.sum()):
            raise ValueError("a sample with a scene target must hold exactly one <|propri|> token")
        pred = self(hidden[propri & rows[:, None]]).float()
        return {"scene": F.mse_loss(pred, batch["scene"][rows].float())}
