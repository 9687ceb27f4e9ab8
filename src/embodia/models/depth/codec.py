"""The frozen latent codec: embodia's small autoencoder or diffusers' DC-AE, one interface.

``encode`` takes (N, C, H, W) images in [-1, 1] to scaled latents, ``decode`` goes back. The codec
is frozen (no gradients, always in eval mode) but its weights are part of the model's state, so an
embodia checkpoint is self-contained: the directory it was built from is only needed once, and the
config actually built is recorded in ``DepthConfig.codec.config``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from embodia.configs.depth import DepthConfig
from embodia.models.depth.autoencoder import AutoencoderSpec, DepthAutoencoder, is_autoencoder_dir

log = logging.getLogger(__name__)


class Codec(nn.Module):
    """Base: frozen, eval-only."""

    in_channels: int
    latent_channels: int
    compression: int

    def freeze(self) -> Codec:
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Codec:
        return super().train(False)


class EmbodiaCodec(Codec):
    def __init__(self, ae: DepthAutoencoder) -> None:
        super().__init__()
        self.ae = ae
        self.in_channels = ae.spec.in_channels
        self.latent_channels = ae.spec.latent_channels
        self.compression = ae.compression

    @property
    def trained_for(self) -> dict:
        return self.ae.spec.target

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.ae.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.ae.decode(z)


class DCAECodec(Codec):
    def __init__(self, ae) -> None:
        super().__init__()
        self.ae = ae
        self.in_channels = ae.config.in_channels
        self.latent_channels = ae.config.latent_channels
        self.compression = ae.spatial_compression_ratio
        self.scale = float(ae.config.scaling_factor)

    trained_for: dict = {}  # noqa: RUF012  (a generic image autoencoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.ae.encode(x).latent * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.ae.decode(z / self.scale).sample


def public_config(config) -> dict:
    """A diffusers config without its private keys (paths, versions): JSON-ready, rebuildable."""
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _is_dcae_dir(path: Path) -> bool:
    cfg = path / "config.json"
    return cfg.is_file() and json.loads(cfg.read_text()).get("_class_name") == "AutoencoderDC"


def build_codec(cfg: DepthConfig) -> Codec:
    """From ``codec.path`` when it exists (recording its config), else from the recorded config,
    else fresh from the shapes in ``codec`` (random: train one before relying on it)."""
    c = cfg.codec
    path = Path(c.path) if c.path else None
    if path is not None and path.exists():
        if is_autoencoder_dir(path):
            ae = DepthAutoencoder.load(path)
            c.config = ae.spec.to_dict()
            return EmbodiaCodec(ae).freeze()
        if _is_dcae_dir(path):
            from diffusers import AutoencoderDC

            ae = AutoencoderDC.from_pretrained(path, local_files_only=True)
            c.config = {"kind": "dc-ae", **public_config(ae.config)}
            return DCAECodec(ae).freeze()
        raise ValueError(f"{path}: neither an embodia autoencoder nor a diffusers AutoencoderDC")
    if c.config is not None:
        if c.config.get("kind") == "dc-ae":
            from diffusers import AutoencoderDC

            conf = {k: v for k, v in c.config.items() if k != "kind"}
            return DCAECodec(AutoencoderDC.from_config(conf)).freeze()
        return EmbodiaCodec(DepthAutoencoder(AutoencoderSpec.from_dict(c.config))).freeze()
    if path is not None:
        raise FileNotFoundError(f"depth.codec.path {path} does not exist")
    if c.kind == "dc-ae":
        from diffusers import AutoencoderDC

        ae = AutoencoderDC(in_channels=cfg.channels, latent_channels=c.latent_channels)
        c.config = {"kind": "dc-ae", **public_config(ae.config)}
        return DCAECodec(ae).freeze()
    spec = AutoencoderSpec(cfg.channels, c.latent_channels, tuple(c.widths))
    log.info(
        "depth codec: a fresh (untrained) autoencoder; train one with `embodia depth "
        "train-autoencoder` and set depth.codec.path"
    )
    c.config = spec.to_dict()
    return EmbodiaCodec(DepthAutoencoder(spec)).freeze()
