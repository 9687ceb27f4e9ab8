"""DepthHead: GEM's generative depth supervision as an auxiliary objective of EmbodiedModel.

Registered as ``model.aux_heads["depth"]``; ``EmbodiedModel.compute_loss`` calls
``compute_loss(model, batch, hidden)`` on the same forward pass as the language / action losses
and weights the result by ``cfg.loss_weights["depth"]`` (0.1, GEM's).

Per image that has ground-truth depth in the batch: its own final-layer vision-token states ->
connector -> condition (zeroed with p = ``cond_dropout``) -> the SANA DiT predicts the rectified-flow
velocity of the encoded depth's latent (frozen codec). ``objective`` is the ablation switch and
changes only what it names: ``rgb`` swaps the target for the image itself (same images, same
modules), ``regression`` swaps the generator for a dense regression head (same connector);
``none`` builds no head at all.

Metres without ground truth: GEM's percentile encoding is relative (each map is normalised by its
own inverse-depth range), so decoding needs that range. With ``scale="predicted"`` (the default)
a small :class:`RangeHead` predicts it from the same condition tokens, trained beside the
generator on the ground truth's range, so ``generate`` returns metric depth from RGB alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from embodia.configs.depth import DepthConfig
from embodia.data.images import resize_depth_maps
from embodia.models.depth.codec import build_codec
from embodia.models.depth.connector import Connector, drop_condition
from embodia.models.depth.dit import build_dit, dit_velocity
from embodia.models.depth.encodings import (
    DepthRange,
    decode_depth,
    encode_depth,
    inverse_range,
)
from embodia.models.depth.flow import euler_sample, noisy_latents, sample_noise_level
from embodia.models.depth.regression import DenseRegressionHead
from embodia.models.depth.tokens import image_rows, image_token_states, unpatchify_rgb
from embodia.models.noise import sample_draws


def _per_image_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over images of each image's mean error on its valid cells (N, C, h, w), mask
    (N, 1, h, w): every image weighs the same, however many valid pixels it has, so the loss of
    a batch split over DDP ranks averages to the loss of the whole batch."""
    per_image = (err * mask).flatten(1).sum(1) / (mask.flatten(1).sum(1) * err.shape[1]).clamp(
        min=1
    )
    return per_image.mean()


class RangeHead(nn.Module):
    """Each image's inverse-depth percentile range from its mean-pooled condition tokens.

    Predicts (log lo, log(hi - lo)) in log 1/m, so the range is positive and ordered by
    construction; trained with an L1 loss in that space (relative errors, equal for near and far
    cameras)."""

    def __init__(self, width: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, 2)
        )

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """(N, tokens, width) -> (N, 2) log-space range."""
        return self.net(cond.mean(dim=1))

    @staticmethod
    def target(rng: DepthRange) -> torch.Tensor:
        return torch.stack([rng.lo.log(), (rng.hi - rng.lo).clamp(min=1e-6).log()], dim=1)

    @staticmethod
    def to_range(pred: torch.Tensor) -> DepthRange:
        lo = pred[:, 0].float().exp()
        return DepthRange(lo, lo + pred[:, 1].float().exp())


@dataclass
class DepthOutput:
    image: torch.Tensor  # (N, C, R, R) generated encoding (or RGB) in [-1, 1], one per image
    depth: torch.Tensor | None  # (N, R, R) metres (None for the rgb ablation)
    rows: list[int]  # the sample each image belongs to (images in sample, then view order)
    ranges: DepthRange | None  # inverse-depth range each map was decoded with
    aligned: torch.Tensor | None  # (N,) bool: range taken from ground truth (percentile mode)
    metric: bool = (
        False  # the maps are in metres without any ground truth (predicted or fixed range)
    )


def condition_width(cfg: DepthConfig) -> int:
    """The DiT's condition input width, known before the DiT is built (see DepthHead.__init__)."""
    d = cfg.dit
    if d.path and (Path(d.path) / "config.json").is_file():
        return int(json.loads((Path(d.path) / "config.json").read_text())["caption_channels"])
    if d.config is not None:
        return int(d.config["caption_channels"])
    return d.caption_channels


class DepthHead(nn.Module):
    def __init__(self, cfg: DepthConfig, hidden_size: int, image_size: int, unit: int) -> None:
        """``unit``: pixels per merged vision token side (patch x merge)."""
        super().__init__()
        if cfg.objective == "none":
            raise ValueError("depth.objective 'none' builds no head")
        self.cfg = cfg
        self.grid = (image_size // unit, image_size // unit)
        self.resolution = cfg.resolution or image_size
        # The connector is built first so every objective starts from the same connector weights.
        self.connector = Connector(hidden_size, condition_width(cfg))
        self.range_head = None
        if (
            cfg.objective != "rgb"
            and cfg.normalization == "percentile"
            and cfg.scale == "predicted"
        ):
            # on a fork of the RNG: every arm's generator / regressor starts as it would without it
            with torch.random.fork_rng(devices=[]):
                self.range_head = RangeHead(self.connector.out_dim)
        self.codec = self.dit = self.regressor = None
        if cfg.objective == "regression":
            if self.resolution % self.grid[0]:
                raise ValueError(
                    f"depth.resolution {self.resolution} is not a multiple of the "
                    f"{self.grid[0]}-token grid"
                )
            patch = self.resolution // self.grid[0]
            self.regressor = DenseRegressionHead(
                self.connector.out_dim, cfg.regression_hidden, cfg.channels, patch
            )
            return
        self.codec = build_codec(cfg)
        if self.codec.in_channels != cfg.channels:
            raise ValueError(
                f"the codec encodes {self.codec.in_channels}-channel images but objective "
                f"{cfg.objective!r} with encoding {cfg.encoding!r} needs {cfg.channels}"
            )
        trained = self.codec.trained_for.get("target")
        if trained is not None and trained != cfg.objective:
            raise ValueError(f"the codec was trained on {trained!r} targets, not {cfg.objective!r}")
        if self.resolution % self.codec.compression:
            raise ValueError(
                f"depth.resolution {self.resolution} is not a multiple of the "
                f"codec's compression {self.codec.compression}"
            )
        self.latent_size = self.resolution // self.codec.compression
        self.dit = build_dit(cfg, self.codec.latent_channels, self.latent_size)

    @property
    def scale_source(self) -> str:
        """Where generated maps get their metres from, with no ground truth in the request."""
        if self.cfg.objective == "rgb":
            return "none (generates RGB)"
        if self.range_head is not None:
            return "predicted (metric from RGB alone)"
        if self.cfg.normalization == "fixed":
            return f"fixed inverse-depth range [1/{self.cfg.far}, 1/{self.cfg.near}] (metric)"
        return "none (GEM's relative depth decoded with fixed bounds: the scale is not metric)"

    @property
    def metric(self) -> bool:
        return self.cfg.objective != "rgb" and (
            self.range_head is not None or self.cfg.normalization == "fixed"
        )

    # ------------------------------------------------------------------ inputs

    def conditions(self, model, batch: dict, hidden: torch.Tensor) -> torch.Tensor:
        """(N_images, tokens, cond) connector output for every image of the batch, in order."""
        merge = model.cfg.vision.spatial_merge_size
        states = image_token_states(
            hidden, batch["input_ids"], model.special.image_pad, batch["image_grid_thw"], merge
        )
        if len({s.shape[0] for s in states}) != 1:
            raise ValueError("depth supervision needs every image at the model's image_size")
        return self.connector(torch.stack(states), self.grid)

    def targets(self, model, batch: dict):
        """(encoded target (N, C, R, R), valid pixels (N, R, R), has depth (N,), range)."""
        depth = resize_depth_maps(batch["depth"].float(), self.resolution)
        valid = depth > 0
        has = valid.flatten(1).any(dim=1)
        if self.cfg.objective == "rgb":
            rgb = torch.stack(
                unpatchify_rgb(
                    batch["pixel_values"], batch["image_grid_thw"], model.image_processor
                )
            )
            if rgb.shape[-1] != self.resolution:
                rgb = F.interpolate(
                    rgb, size=(self.resolution,) * 2, mode="bilinear", antialias=True
                )
            return rgb * 2 - 1, torch.ones_like(valid), has, None
        image, rng = encode_depth(depth, valid, self.cfg)
        return image, valid, has, rng

    # ------------------------------------------------------------------ training

    def compute_loss(self, model, batch: dict, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        if "depth" not in batch or "image_grid_thw" not in batch:
            return {}
        image, valid, has, rng = self.targets(model, batch)
        if not bool(has.any()):
            return {}
        cond = self.conditions(model, batch, hidden)
        # every random number of an image from its sample's own stream (models/noise.py)
        rows = image_rows(batch["input_ids"], model.special.image_pad, [cond.shape[1]] * len(cond))
        views = [rows[:i].count(r) for i, r in enumerate(rows)]
        picked = has.nonzero()[:, 0].tolist()
        draws = sample_draws(batch, "depth", [rows[i] for i in picked], [views[i] for i in picked])
        cond = cond[has]
        scale_loss = 0.0
        if self.range_head is not None:  # the metric scale, from the undropped condition
            want = RangeHead.target(DepthRange(rng.lo[has], rng.hi[has])).to(cond.dtype)
            scale_loss = F.l1_loss(self.range_head(cond).float(), want.float())
        uniforms = draws.rand(1)[:, 0]  # drawn in training and eval alike: streams stay aligned
        if self.training:
            cond, _ = drop_condition(cond, self.cfg.cond_dropout, uniforms=uniforms)
        image, valid = image[has].to(cond.dtype), valid[has]
        if self.regressor is not None:
            pred = self.regressor(cond, self.grid)
            mask = valid[:, None].to(pred.dtype)
            return {"depth": _per_image_mean((pred - image).abs(), mask) + scale_loss}
        with torch.no_grad():
            latents = self.codec.encode(image)
        s = sample_noise_level(
            latents.shape[0], self.cfg.time_sampling, device=latents.device, draws=draws
        )
        eps = draws.randn(*latents.shape[1:]).to(latents.device, latents.dtype)
        x_s, target = noisy_latents(latents, eps, s.to(latents.dtype))
        pred = dit_velocity(self.dit, x_s, cond, s.to(latents.dtype))
        c = self.codec.compression
        cell = F.max_pool2d(valid[:, None].to(pred.dtype), c) if c > 1 else valid[:, None]
        cell = cell.to(pred.dtype)
        err = (pred.float() - target.float()) ** 2
        return {"depth": _per_image_mean(err, cell.float()) + scale_loss}

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def generate(
        self,
        model,
        batch_or_samples,
        guidance: float | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> DepthOutput:
        """Every image's map: Euler steps with classifier-free guidance, decoded to metres.

        Takes a collated batch or a list of ``EmbodiedSample`` (only their prompts are encoded).
        Metres: ``fixed`` normalisation and ``scale="predicted"`` decode from the image alone
        (``metric``; ground truth in the batch is never used). Otherwise (GEM's relative depth)
        the range comes from the samples' ground-truth depth when they carry it (``aligned``),
        else from [1/far, 1/near].
        """
        guidance = self.cfg.guidance if guidance is None else guidance
        steps = steps or self.cfg.steps
        batch = batch_or_samples
        if isinstance(batch_or_samples, list):
            built = [model.builder.prompt(s, ["actions"]) for s in batch_or_samples]
            batch = model.collate(batch_or_samples, built=built)
        hidden = model.hidden_states(batch)
        cond = self.conditions(model, batch, hidden)
        counts = [cond.shape[1]] * cond.shape[0]
        rows = image_rows(batch["input_ids"], model.special.image_pad, counts)
        if self.regressor is not None:
            image = self.regressor(cond, self.grid)
        else:
            shape = (cond.shape[0], self.codec.latent_channels, self.latent_size, self.latent_size)
            latents = euler_sample(
                partial(dit_velocity, self.dit), cond, shape, steps, guidance, generator
            )
            image = self.codec.decode(latents).clamp(-1, 1)
        if self.cfg.objective == "rgb":
            return DepthOutput(image, None, rows, None, None)
        n = image.shape[0]
        no_truth = torch.zeros(n, dtype=torch.bool, device=image.device)
        if self.range_head is not None:
            rng, aligned = RangeHead.to_range(self.range_head(cond)), no_truth
        elif "depth" in batch and self.cfg.normalization == "percentile":
            gt = resize_depth_maps(batch["depth"].float(), self.resolution)
            rng = inverse_range(gt, gt > 0, self.cfg)
            aligned = (gt > 0).flatten(1).any(dim=1)
        else:  # fixed normalisation's own (metric) range, or GEM's fallback bounds
            dummy = torch.zeros(n, 1, 1, device=image.device)
            rng, aligned = inverse_range(dummy, dummy > 0, self.cfg), no_truth
        depth = decode_depth(image, rng, self.cfg)
        return DepthOutput(image, depth, rows, rng, aligned, self.metric)
