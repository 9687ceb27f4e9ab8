"""Typed configs for GEM: generative depth supervision and GEM-VLA's DiT action expert.

``DepthConfig`` hangs off ``ModelConfig.depth`` (None = no depth objective, the default for every
preset). Its ``objective`` field is the ablation switch: the same model and data train with GEM's
depth generator (``"depth"``), with the generator reconstructing the RGB image instead (``"rgb"``),
with a plain dense regression head instead of the generator (``"regression"``), or with nothing
(``"none"``). The depth loss is weighted by ``ModelConfig.loss_weights["depth"]`` (0.1, GEM's).

``ActionDiTConfig`` sizes GEM-VLA's action expert (``ModelConfig.action.expert = "gem-dit"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Objective = Literal["depth", "rgb", "regression", "none"]
Encoding = Literal["colormap", "inverse"]
Normalization = Literal["percentile", "fixed"]
TimeSampling = Literal["uniform", "logit-normal"]
Scale = Literal["predicted", "none"]


@dataclass
class DiTConfig:
    """The depth generator: a SANA DiT (diffusers ``SanaTransformer2DModel``).

    With ``path`` (a local diffusers directory) the weights and shapes load from there; otherwise
    the DiT is random-initialised from the shapes below (the presets' tiny generator).
    """

    path: str | None = None
    num_layers: int = 2
    num_attention_heads: int = 2
    attention_head_dim: int = 32
    caption_channels: int = 64  # the connector's output width (the DiT's condition input)
    mlp_ratio: float = 2.5
    interpolation_scale: float | None = 1.0  # sin-cos positions on latent patches; None = none
    config: dict | None = None
    """The diffusers config actually built (filled at build time) so a saved embodia checkpoint
    rebuilds the DiT without the original directory."""


@dataclass
class CodecConfig:
    """The frozen latent autoencoder the DiT generates in.

    ``kind="embodia"``: embodia's small autoencoder (train it with `embodia depth
    train-autoencoder`; ``path`` points at its output). ``kind="dc-ae"``: diffusers'
    ``AutoencoderDC`` (32x compression), from ``path`` or, without one, random-initialised from
    diffusers' default (f32c32) shapes for benchmarking.
    """

    kind: Literal["embodia", "dc-ae"] = "embodia"
    path: str | None = None
    latent_channels: int = 4
    widths: tuple[int, ...] = (8, 16, 32, 64)  # compression 2 ** (len - 1)
    config: dict | None = None
    """Filled at build time (like ``DiTConfig.config``); the weights travel in the checkpoint."""


@dataclass
class DepthConfig:
    objective: Objective = "depth"
    encoding: Encoding = "colormap"
    """``colormap``: GEM's Spectral-coloured inverse depth (3 channels); ``inverse``: the
    normalised inverse depth itself (1 channel). Both decode back to depth."""
    normalization: Normalization = "percentile"
    """``percentile``: inverse depth scaled between its per-image 2nd/98th percentiles (GEM; scale
    comes back from ground truth when scoring); ``fixed``: between 1/far and 1/near (metric)."""
    percentiles: tuple[float, float] = (2.0, 98.0)
    scale: Scale = "predicted"
    """How a ``percentile`` map gets back to metres without ground truth. ``predicted``: a small
    head on the same condition tokens predicts each image's inverse-depth percentile range (trained
    with the depth loss, on metric data), so generated depth is metric from RGB alone.
    ``none``: GEM's relative depth only; metres need the range from ground truth (``aligned``),
    else the fixed [1/far, 1/near] bounds are used and the scale is wrong."""
    near: float = 0.02
    far: float = 4.0
    resolution: int | None = None  # generated map size; None = the model's image_size
    cond_dropout: float = 0.1  # condition zeroed per image with this probability (for CFG)
    guidance: float = 5.0  # classifier-free guidance scale at sampling (1 = conditional only)
    steps: int = 30  # Euler steps at sampling
    time_sampling: TimeSampling = "uniform"
    regression_hidden: int = 256  # hidden width of the dense regression head (ablation)
    dit: DiTConfig = field(default_factory=DiTConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)

    @property
    def channels(self) -> int:
        """Channels of the image the generator produces."""
        return 3 if self.objective == "rgb" or self.encoding == "colormap" else 1

    def validate(self) -> None:
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"depth.cond_dropout must be in [0, 1), not {self.cond_dropout}")
        if self.steps < 1:
            raise ValueError("depth.steps must be at least 1")
        if not 0 < self.near < self.far:
            raise ValueError(f"depth.near {self.near} and far {self.far} need 0 < near < far")
        if self.scale not in ("predicted", "none"):
            raise ValueError(f"depth.scale must be 'predicted' or 'none', not {self.scale!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"depth.percentiles {self.percentiles} need 0 <= lo < hi <= 100")

    @classmethod
    def from_dict(cls, data: dict) -> DepthConfig:
        data = dict(data)
        dit = DiTConfig(**data.pop("dit", {}))
        codec = dict(data.pop("codec", {}))
        if "widths" in codec:
            codec["widths"] = tuple(codec["widths"])
        if "percentiles" in data:
            data["percentiles"] = tuple(data["percentiles"])
        # checkpoints from before the scale head decode as they always did
        data.setdefault("scale", "none")
        return cls(dit=dit, codec=CodecConfig(**codec), **data)


@dataclass
class ActionDiTConfig:
    """GEM-VLA's action expert: a flow-matching DiT (RDT-style) whose blocks cross-attend to the
    backbone's per-layer hidden states. Defaults are GEM's (14 blocks, width 1024, 5 steps)."""

    hidden_size: int = 1024
    num_blocks: int = 14
    num_heads: int = 16
    mlp_ratio: float = 4.0
    steps: int = 5  # Euler steps at inference
    layers: tuple[int, ...] = ()
    """Backbone layer (0-based) each block reads; empty = spread evenly, the last block on the
    last layer."""
    logit_normal_mean: float = 0.0  # training time t = sigmoid(N(mean, std))
    logit_normal_std: float = 1.0

    @classmethod
    def from_dict(cls, data: dict) -> ActionDiTConfig:
        data = dict(data)
        if "layers" in data:
            data["layers"] = tuple(data["layers"])
        return cls(**data)


def depth_preset(model_name: str, **overrides) -> DepthConfig:
    """A depth config sized for a model preset.

    Tiny / small presets: a 2-layer SANA DiT and embodia's small autoencoder (8x compression).
    ``gem-2b``: SANA-1.5-class DiT shapes and DC-AE f32c32 (diffusers' defaults), random-initialised
    unless ``dit.path`` / ``codec.path`` point at local diffusers directories.
    """
    if model_name in ("gem-2b", "wall-oss-3b"):
        cfg = DepthConfig(
            dit=DiTConfig(
                num_layers=20,
                num_attention_heads=70,
                attention_head_dim=32,
                caption_channels=2304,
                interpolation_scale=None,
            ),
            codec=CodecConfig(kind="dc-ae", latent_channels=32),
        )
    else:
        cfg = DepthConfig()
    return dataclasses.replace(cfg, **overrides)


def gem_action_dit(model_name: str) -> ActionDiTConfig:
    """GEM-VLA's expert sized for a preset (GEM's published shapes for the full-size ones)."""
    if model_name in ("gem-2b", "wall-oss-3b"):
        return ActionDiTConfig()
    return ActionDiTConfig(hidden_size=128, num_blocks=4, num_heads=4)


@dataclass
class TrainAutoencoderConfig:
    """Train embodia's small depth autoencoder (the latent space of the presets' depth generator)."""

    dataset: Path
    """LeRobot v3 dataset with observation.depth.<camera> (e.g. from `embodia data generate`)."""
    output: Path
    """Directory to write autoencoder_config.json + autoencoder.safetensors (replaced atomically)."""
    target: Literal["depth", "rgb"] = "depth"
    """What the autoencoder encodes: depth (in --encoding) or the RGB image (the rgb ablation)."""
    encoding: Encoding = "colormap"
    """colormap: GEM's Spectral-coloured inverse depth (3 channels); inverse: 1 channel."""
    normalization: Normalization = "percentile"
    """percentile: per-image 2nd-98th percentile of inverse depth (GEM); fixed: 1/far .. 1/near."""
    near: float = 0.02
    """Metres: the near end of the fixed range (and of maps without any valid pixel)."""
    far: float = 4.0
    """Metres: the far end of the fixed range."""
    image_size: int = 64
    """Images and depth maps are resized to this square size (the model's image_size)."""
    latent_channels: int = 4
    widths: tuple[int, ...] = (8, 16, 32, 64)
    """Channel widths per resolution level; the latent is 2 ** (len - 1) times smaller per side."""
    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-3
    """Peak learning rate (AdamW; 5% warm-up, cosine decay)."""
    split: str = "train"
    """Dataset split to read (from info.json's splits); 'all' reads every episode."""
    frame_stride: int = 1
    """Use every N-th frame of each episode."""
    holdout: float = 0.1
    """Fraction of frames held out to measure the reconstruction AbsRel."""
    seed: int = 0
    """Seeds initialisation, the held-out choice and batch sampling."""
    progress: bool = True
    """Show a progress bar over training steps."""
