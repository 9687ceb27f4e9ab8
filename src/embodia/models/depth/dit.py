"""The depth generator's DiT: diffusers' ``SanaTransformer2DModel`` (GEM uses a SANA-1.5 DiT).

Built from ``DepthConfig.dit``: loaded from a local diffusers directory when ``path`` exists,
rebuilt from the recorded config when an embodia checkpoint is loaded (the weights then come from
the checkpoint), else random-initialised from the shapes given (the presets' tiny generator).
SANA's flow-matching convention is GEM's: x_s = (1 - s) x + s eps, velocity eps - x, and its
timestep input is s scaled to [0, 1000].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from embodia.configs.depth import DepthConfig
from embodia.models.depth.codec import public_config

TIMESTEP_SCALE = 1000.0


def build_dit(cfg: DepthConfig, latent_channels: int, sample_size: int) -> nn.Module:
    from diffusers import SanaTransformer2DModel

    d = cfg.dit
    path = Path(d.path) if d.path else None
    if path is not None and path.exists():
        dit = SanaTransformer2DModel.from_pretrained(path, local_files_only=True)
    elif d.config is not None:
        dit = SanaTransformer2DModel.from_config(d.config)
    elif path is not None:
        raise FileNotFoundError(f"depth.dit.path {path} does not exist")
    else:
        inner = d.num_attention_heads * d.attention_head_dim
        dit = SanaTransformer2DModel(
            in_channels=latent_channels,
            out_channels=latent_channels,
            num_attention_heads=d.num_attention_heads,
            attention_head_dim=d.attention_head_dim,
            num_layers=d.num_layers,
            num_cross_attention_heads=d.num_attention_heads,
            cross_attention_head_dim=d.attention_head_dim,
            cross_attention_dim=inner,
            caption_channels=d.caption_channels,
            mlp_ratio=d.mlp_ratio,
            sample_size=sample_size,
            patch_size=1,
            interpolation_scale=d.interpolation_scale,
        )
    d.config = public_config(dit.config)
    if dit.config.in_channels != latent_channels:
        raise ValueError(
            f"the DiT takes {dit.config.in_channels} latent channels but the codec makes "
            f"{latent_channels}"
        )
    return dit


def dit_velocity(
    dit: nn.Module, x: torch.Tensor, cond: torch.Tensor, s: torch.Tensor
) -> torch.Tensor:
    """Velocity eps - x at noise level ``s`` (N,) in [0, 1] for latents ``x`` given ``cond``."""
    out = dit(
        hidden_states=x,
        encoder_hidden_states=cond,
        timestep=s * TIMESTEP_SCALE,
        return_dict=False,
    )[0]
    return out
