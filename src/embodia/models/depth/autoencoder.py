"""embodia's small autoencoder: the latent space of the presets' depth generator.

GEM generates in the latent space of DC-AE (32x compression, hundreds of millions of parameters),
which is far too large for the CPU-sized presets and was never trained on 64 px depth maps. This
is a deterministic convolutional autoencoder of the same kind (no KL term: it is frozen once
trained and the generator only needs a compact, smooth space), 2 ** (len(widths) - 1) times
smaller per side. Latents are multiplied by ``scaling_factor`` (1 / their std on the training set)
so the DiT sees unit-scale data, as with diffusers' autoencoders.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from embodia.utils.fs import atomic_dir

CONFIG_FILE = "autoencoder_config.json"
WEIGHTS_FILE = "autoencoder.safetensors"
KIND = "embodia-depth-autoencoder"


@dataclass
class AutoencoderSpec:
    in_channels: int = 3
    latent_channels: int = 4
    widths: tuple[int, ...] = (8, 16, 32, 64)
    scaling_factor: float = 1.0
    target: dict = field(default_factory=dict)
    """What it was trained to encode: {"target", "encoding", "normalization", "near", "far"}."""

    @property
    def compression(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> AutoencoderSpec:
        data = {k: v for k, v in data.items() if k != "kind"}
        data["widths"] = tuple(data.get("widths", cls.widths))
        return cls(**data)


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(8, ch), ch)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(self.norm(x)))))


class DepthAutoencoder(nn.Module):
    def __init__(self, spec: AutoencoderSpec) -> None:
        super().__init__()
        self.spec = spec
        w = spec.widths
        # Full resolution gets one thin convolution each way; residual blocks only start after
        # the first downsampling, where they cost a quarter as much (CPU training in minutes).
        enc: list[nn.Module] = [nn.Conv2d(spec.in_channels, w[0], 3, padding=1)]
        for a, b in itertools.pairwise(w):
            enc += [nn.SiLU(), nn.Conv2d(a, b, 4, stride=2, padding=1), ResBlock(b)]
        enc += [nn.SiLU(), nn.Conv2d(w[-1], spec.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(spec.latent_channels, w[-1], 3, padding=1)]
        for a, b in itertools.pairwise(w[::-1]):
            dec += [ResBlock(a), nn.Upsample(scale_factor=2, mode="nearest")]
            dec += [nn.Conv2d(a, b, 3, padding=1), nn.SiLU()]
        dec += [nn.Conv2d(w[0], spec.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def compression(self) -> int:
        return self.spec.compression

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> scaled latents (N, latent, H / c, W / c)."""
        return self.encoder(x) * self.spec.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z / self.spec.scaling_factor)

    def save(self, directory: str | Path, report: dict | None = None) -> Path:
        """Config + weights, replacing ``directory`` atomically."""
        from safetensors.torch import save_model

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            save_model(self, str(tmp / WEIGHTS_FILE))
            meta = {**self.spec.to_dict(), "report": report or {}}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DepthAutoencoder:
        from safetensors.torch import load_model

        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text())
        meta.pop("report", None)
        model = cls(AutoencoderSpec.from_dict(meta))
        load_model(model, str(directory / WEIGHTS_FILE))
        return model


def is_autoencoder_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()
