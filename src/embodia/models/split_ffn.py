"""WALL-OSS's tightly coupled experts: each decoder layer's FFN split by token type.

Attention weights stay shared by all tokens; only the feed-forward block is duplicated. Routing is
static: tokens marked as flow actions go through the (smaller) action expert, every other token
through the original vision-language FFN. The router is a plain object shared by all layers, set by
the model before each forward pass (it must stay set through a gradient-checkpointing recompute).
"""

from __future__ import annotations

import torch
from torch import nn


class TokenRouter:
    """Which positions of the current forward pass are flow-action tokens, (B, S) bool."""

    def __init__(self) -> None:
        self.action_mask: torch.Tensor | None = None


class ActionFFN(nn.Module):
    """SwiGLU FFN like Qwen's, narrower: the action expert of one layer."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class SplitFFN(nn.Module):
    """Drop-in replacement for a decoder layer's ``mlp``."""

    def __init__(self, vl_expert: nn.Module, action_expert: nn.Module, router: TokenRouter) -> None:
        super().__init__()
        self.vl = vl_expert
        self.action = action_expert
        self._router = router  # a plain object, not a submodule: no parameters, not saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self._router.action_mask
        if mask is None:
            return self.vl(x)
        if mask.shape != x.shape[:2]:
            # A stale or misbuilt mask would silently send action tokens through the VL expert.
            raise ValueError(
                f"action routing mask has shape {tuple(mask.shape)} but the layer input is "
                f"{tuple(x.shape[:2])} (batch, tokens); set TokenRouter.action_mask for this call"
            )
        if not bool(mask.any()):
            return self.vl(x)
        if bool(mask.all()):
            return self.action(x)
        out = torch.empty_like(x)
        out[~mask] = self.vl(x[~mask]).to(x.dtype)
        out[mask] = self.action(x[mask]).to(x.dtype)
        return out


def install_action_expert(
    layers: nn.ModuleList,
    hidden_size: int,
    intermediate_size: int,
    router: TokenRouter,
    init_std: float = 0.02,
) -> None:
    """Split the FFN of every layer in place (idempotent for layers already split)."""
    for layer in layers:
        if isinstance(layer.mlp, SplitFFN):
            continue
        expert = ActionFFN(hidden_size, intermediate_size)
        for p in expert.parameters():
            nn.init.normal_(p, std=init_std)
        ref = next(layer.mlp.parameters())
        layer.mlp = SplitFFN(layer.mlp, expert.to(ref.device, ref.dtype), router)
