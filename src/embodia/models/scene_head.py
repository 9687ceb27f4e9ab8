"""SceneHead: where the scene's objects are, read back from the model's own prefix (training only).

The privileged-state control of docs/learning.md showed that the action pipeline is not what
limits an image policy on Meta-World: the same model given the simulator's object and goal
positions as its state comes within a few points of the scripted expert, while the image policy
misses handles and buttons by about 10 cm. What the image policy lacks is *localisation*, and the
demonstrations alone (a flow loss on actions) teach it slowly.

A simulator knows those positions for every recorded frame (``observation.environment_state``).
This head turns them into an auxiliary target, in the spirit of GEM's generative supervision: a
small MLP regresses the normalised object / goal coordinates (MSE) from the model's final-layer
hidden states, read at one of two places (``readout``):

- ``actions`` (the default): the mean over the chunk's ``<|action|>`` tokens, the very states the
  flow head turns into velocities. The action tokens must gather where things are from the views
  through the shared attention, so the information lands where the actions are computed.
- ``propri``: the ``<|propri|>`` token, the last prefix token before the actions, which attends to
  every view. Measured (docs/learning.md): the prefix then locates the handles within ~2 cm on
  held-out layouts, yet success does not rise: the final-layer state of a prefix token is read by
  nothing else, so what it learns need not reach the actions.

The head is never used at inference: a trained policy still sees images and proprioception only.
It is registered as ``model.aux_heads["scene"]`` and weighted by the stage's ``scene`` loss term.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from embodia.models.attention import ACTION

READOUTS = ("actions", "propri")


class SceneHead(nn.Module):
    def __init__(self, hidden: int, dims: int, readout: str = "actions") -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"scene readout {readout!r}: choose from {list(READOUTS)}")
        self.dims, self.readout = dims, readout
        self.net = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, dims)
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """(N, hidden) prefix states -> (N, dims) predicted normalised scene coordinates."""
        return self.net(states)

    def states(self, model, batch: dict, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of the batch that can be read (bool (B,)) and their (N, hidden) states."""
        if self.readout == "propri":
            at = batch["input_ids"] == model.special.propri
            rows = at.any(dim=1)
            if bool((at.sum(dim=1) > 1).any()):
                raise ValueError("a sample holds more than one <|propri|> token")
            return rows, hidden[at & rows[:, None]]
        at = batch["kinds"] == ACTION
        rows = at.any(dim=1)
        h = model.cfg.action.horizon
        return rows, hidden[at].reshape(-1, h, hidden.shape[-1]).mean(dim=1)

    def compute_loss(self, model, batch: dict, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """MSE on the samples that carry a scene target and the token(s) it is read from; {}
        when the batch has none (VQA rows, datasets without the feature), so the term simply
        drops out."""
        if "scene" not in batch:
            return {}
        readable, states = self.states(model, batch, hidden)
        keep = batch["scene_mask"][readable]
        if not bool(keep.any()):
            return {}
        pred = self(states[keep]).float()
        target = batch["scene"][readable & batch["scene_mask"]].float()
        return {"scene": F.mse_loss(pred, target)}
