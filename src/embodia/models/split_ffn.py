"""WALL-OSS's tightly coupled experts: each decoder layer's FFN split by token type.

Attention weights stay shared by all tokens; only the feed-forward block is duplicated. Routing is
static: tokens marked as flow actions go through the (smaller) action expert, every other token
through the original vision-language FFN.

The routing mask travels with the call: ``QwenVLBackbone.decode(..., action_mask=...)`` hands it
to the decoder stack as a keyword, Hugging Face's text model passes unknown keywords on to every
decoder layer, and :class:`ExpertDecoderLayer` gives it to its :class:`SplitFFN`. Nothing is set on
the model before a forward pass, so two calls cannot see each other's mask, and a
gradient-checkpointing recompute replays the layer with the very mask of its forward (the
checkpoint keeps the layer's keyword arguments).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer


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
    """A decoder layer's FFN as two experts; ``action_mask`` (B, S) bool picks the action one."""

    def __init__(self, vl_expert: nn.Module, action_expert: nn.Module) -> None:
        super().__init__()
        self.vl = vl_expert
        self.action = action_expert

    def forward(self, x: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        if action_mask is None:
            return self.vl(x)
        if action_mask.shape != x.shape[:2]:
            # A stale or misbuilt mask would silently send action tokens through the VL expert.
            raise ValueError(
                f"action routing mask has shape {tuple(action_mask.shape)} but the layer input "
                f"is {tuple(x.shape[:2])} (batch, tokens)"
            )
        if not bool(action_mask.any()):
            return self.vl(x)
        if bool(action_mask.all()):
            return self.action(x)
        out = torch.empty_like(x)
        out[~action_mask] = self.vl(x[~action_mask]).to(x.dtype)
        out[action_mask] = self.action(x[action_mask]).to(x.dtype)
        return out


class ExpertDecoderLayer(GradientCheckpointingLayer):
    """A Qwen2.5-VL / Qwen3-VL decoder layer whose FFN is a :class:`SplitFFN`.

    It adopts the Hugging Face layer's own modules under the same names (``self_attn``,
    ``input_layernorm``, ``post_attention_layernorm``, ``mlp``), so parameter names, checkpoints
    and pretrained weights are unchanged, and runs the same pre-norm residual block; the only
    difference is that the FFN receives the call's ``action_mask``. Hugging Face's layer calls its
    ``mlp`` with the hidden states alone, which is why the block is written here.
    """

    def __init__(self, hf_layer: nn.Module, action_expert: nn.Module) -> None:
        super().__init__()
        self.hidden_size = hf_layer.hidden_size
        self.self_attn = hf_layer.self_attn
        self.input_layernorm = hf_layer.input_layernorm
        self.post_attention_layernorm = hf_layer.post_attention_layernorm
        self.mlp = SplitFFN(hf_layer.mlp, action_expert)

    def forward(
        self,
        hidden_states: torch.Tensor,
        *,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        use_cache: bool | None = False,
        action_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        attended, _ = self.self_attn(
            hidden_states=self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = hidden_states + attended
        ffn = self.mlp(self.post_attention_layernorm(hidden_states), action_mask)
        return hidden_states + ffn


def install_action_expert(
    layers: nn.ModuleList, hidden_size: int, intermediate_size: int, init_std: float = 0.02
) -> None:
    """Give every layer an action expert in place (idempotent for layers already split)."""
    for i, layer in enumerate(layers):
        if isinstance(layer, ExpertDecoderLayer):
            continue
        expert = ActionFFN(hidden_size, intermediate_size)
        for p in expert.parameters():
            nn.init.normal_(p, std=init_std)
        ref = next(layer.mlp.parameters())
        split = ExpertDecoderLayer(layer, expert.to(ref.device, ref.dtype))
        split.gradient_checkpointing = getattr(layer, "gradient_checkpointing", False)
        layers[i] = split


def has_action_expert(layers: nn.ModuleList) -> bool:
    return all(isinstance(layer, ExpertDecoderLayer) for layer in layers)
