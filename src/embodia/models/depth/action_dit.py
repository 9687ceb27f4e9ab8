"""GEM-VLA's action expert: a flow-matching DiT that cross-attends to per-layer backbone states.

The alternative to WALL-OSS's in-backbone split-FFN expert (``cfg.action.expert = "gem-dit"``):
the backbone only encodes the prefix (images, instruction, proprioception, chain of thought) and a
separate RDT-style DiT turns noise into the action chunk. Block ``i`` cross-attends to the hidden
states of backbone layer ``layers[i]`` (evenly spread, the last block on the last layer), so the
expert reads low-level and high-level features alike. Time is drawn logit-normal in training;
sampling takes a few Euler steps (5, GEM's) over the prefix states computed once.

Conventions match embodia's flow head: t = 0 noise, t = 1 data, velocity a - eps, loss masked by
the DoF mask, reported as "flow" so ``loss_weights["flow"]`` applies. The per-layer states are
taken with forward hooks on the decoder layers during the model's ordinary forward pass: no second
pass, and the existing flow path is untouched.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from embodia.configs.depth import ActionDiTConfig
from embodia.models.attention import ACTION, action_readable
from embodia.models.flow import euler, interpolate, logit_normal
from embodia.models.flow_head import flow_loss, sinusoidal_embedding
from embodia.models.noise import sample_draws


def block_layers(cfg: ActionDiTConfig, num_layers: int) -> list[int]:
    if cfg.layers:
        if len(cfg.layers) != cfg.num_blocks or not all(0 <= i < num_layers for i in cfg.layers):
            raise ValueError(
                f"action.dit.layers {cfg.layers}: need {cfg.num_blocks} indices "
                f"in 0..{num_layers - 1}"
            )
        return list(cfg.layers)
    n = cfg.num_blocks
    return [max(0, round((i + 1) * num_layers / n) - 1) for i in range(n)]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, kv_width: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(kv_width or width, 2 * width)
        self.o = nn.Linear(width, width)

    def forward(self, x, memory=None, mask=None) -> torch.Tensor:
        b, n, w = x.shape
        memory = x if memory is None else memory
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(memory).view(b, memory.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(out.transpose(1, 2).reshape(b, n, w))


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention and MLP (time-modulated) around a cross-attention to one layer."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, cond_width: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.self_attn = Attention(width, heads)
        self.norm_x = nn.LayerNorm(width)
        self.norm_mem = nn.RMSNorm(cond_width)
        self.cross_attn = Attention(width, heads, cond_width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, temb, memory, mask) -> torch.Tensor:
        s1, c1, g1, s2, c2, g2 = self.ada(temb)[:, None].chunk(6, dim=-1)
        x = x + g1 * self.self_attn(self.norm1(x) * (1 + c1) + s1)
        x = x + self.cross_attn(self.norm_x(x), self.norm_mem(memory), mask)
        return x + g2 * self.mlp(self.norm2(x) * (1 + c2) + s2)


class GemActionExpert(nn.Module):
    """Registered as ``model.aux_heads["action"]``; sampling goes through ``model.sample_actions``."""

    def __init__(self, cfg: ActionDiTConfig, backbone, action_dim: int, horizon: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.action_dim, self.horizon = action_dim, horizon
        w = cfg.hidden_size
        cond = backbone.hidden_size
        self.layers = block_layers(cfg, len(backbone.decoder_layers))
        self.in_proj = nn.Linear(2 * action_dim, w)
        self.pos = nn.Parameter(torch.randn(horizon, w) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(
            [DiTBlock(w, cfg.num_heads, cfg.mlp_ratio, cond) for _ in range(cfg.num_blocks)]
        )
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out = nn.Linear(w, action_dim)
        for m in (self.ada_out[1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        # Per-layer states of the latest forward pass; hooks, not submodules (nothing is saved).
        self._states: dict[int, torch.Tensor] = {}
        self._hooks = [
            backbone.decoder_layers[i].register_forward_hook(self._tap(i))
            for i in sorted(set(self.layers))
        ]

    def _tap(self, index: int):
        def hook(_module, _inputs, output):
            self._states[index] = output[0] if isinstance(output, tuple) else output

        return hook

    def layer_states(self) -> list[torch.Tensor]:
        missing = [i for i in self.layers if i not in self._states]
        if missing:
            raise RuntimeError(f"no backbone states captured for layers {missing}")
        return [self._states[i] for i in self.layers]

    @staticmethod
    def memory_mask(kinds: torch.Tensor) -> torch.Tensor:
        """(B, S) positions the expert may read: the prefix (never padding, FAST or action slots,
        as for the in-backbone expert)."""
        return action_readable(kinds)

    def velocity(self, noisy, dof_mask, t, memories: list[torch.Tensor], mask) -> torch.Tensor:
        """(B, H, D) noisy chunk, (B, D) DoF mask, (B,) time, per-block (B, S, hidden) states and
        (B, S) readable positions -> (B, H, D) velocity."""
        m = dof_mask.to(noisy.dtype)[:, None, :].expand_as(noisy)
        x = self.in_proj(torch.cat([noisy * m, m], dim=-1)) + self.pos[None].to(noisy.dtype)
        temb = self.time_mlp(sinusoidal_embedding(t, self.cfg.hidden_size).to(x.dtype))
        attn_mask = mask[:, None, None, :]
        for block, memory in zip(self.blocks, memories, strict=True):
            x = block(x, temb, memory.to(x.dtype), attn_mask)
        shift, scale = self.ada_out(temb)[:, None].chunk(2, dim=-1)
        return self.out(self.norm_out(x) * (1 + scale) + shift)

    def compute_loss(self, model, batch: dict, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        kinds = batch["kinds"]
        has = (kinds == ACTION).any(dim=1)
        if not bool(has.any()):
            return {}
        memories = [s[has] for s in self.layer_states()]
        actions = batch["actions"][has].to(memories[0].dtype)
        dof = batch["dof_mask"][has]
        # time and noise from each sample's own stream (models/noise.py)
        draws = sample_draws(batch, "action-dit", has.nonzero()[:, 0].tolist())
        cfg = self.cfg
        t = logit_normal(draws.randn(1)[:, 0], cfg.logit_normal_mean, cfg.logit_normal_std)
        t = t.to(actions.device, actions.dtype)
        eps = draws.randn(*actions.shape[1:]).to(actions.device, actions.dtype)
        noisy, target = interpolate(eps, actions, t)
        pred = self.velocity(noisy, dof, t, memories, self.memory_mask(kinds[has]))
        return {"flow": flow_loss(pred.float(), target.float(), dof)}

    @torch.no_grad()
    def sample(
        self, model, batch: dict, noise: torch.Tensor, steps: int | None = None
    ) -> torch.Tensor:
        """(B, H, D) chunk from ``noise`` (B, H, >= D; the template's first D slots are used): the
        backbone encodes the prefix once, then ``steps`` Euler steps."""
        model.hidden_states(batch)
        memories = self.layer_states()
        mask = self.memory_mask(batch["kinds"])
        dof = batch["dof_mask"]
        x = noise[:, : self.horizon, : self.action_dim].to(memories[0].device, memories[0].dtype)
        x = euler(lambda x, t: self.velocity(x, dof, t, memories, mask), x, steps or self.cfg.steps)
        self._states.clear()
        return x * dof[:, None, :].to(x.dtype)
