"""`embodia depth train-autoencoder`: fit the presets' latent space on the engine's depth.

Reads every camera's RGB and metric depth from a LeRobot v3 dataset, encodes the targets the way
the depth head will (``encodings``), trains ``DepthAutoencoder`` (L1, invalid pixels weighted 0.1:
they must still decode to *something* stable, but only valid pixels are ever scored), sets the
latent scaling factor to 1 / std of the training latents, and measures reconstruction AbsRel on
held-out frames. The output directory (config + weights + report) is replaced atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from embodia.configs.depth import DepthConfig, TrainAutoencoderConfig
from embodia.data.images import resize_depth_maps
from embodia.models.depth.autoencoder import AutoencoderSpec, DepthAutoencoder
from embodia.models.depth.encodings import decode_depth, encode_depth
from embodia.models.depth.metrics import depth_metrics

INVALID_WEIGHT = 0.1


@dataclass
class Frames:
    rgb: torch.Tensor  # (N, 3, S, S) in [0, 1]
    depth: torch.Tensor  # (N, S, S) metres, 0 = invalid


def load_frames(dataset: Path, split: str, size: int, stride: int = 1) -> Frames:
    """Every camera's (RGB, depth) pair of every ``stride``-th frame, resized to ``size``."""
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

    ds = LeRobotV3Dataset(dataset)
    cams = [
        k.removeprefix("observation.depth.")
        for k in ds.features
        if k.startswith("observation.depth.")
    ]
    cams = [c for c in cams if f"observation.images.{c}" in ds.features]
    if not cams:
        raise ValueError(
            f"{dataset}: no camera with both observation.images.* and observation.depth.*"
        )
    keys = [f"observation.{kind}.{c}" for c in cams for kind in ("images", "depth")]
    rgb, depth = [], []
    for e in ds.episode_indices(None if split == "all" else split):
        ep = ds.load_episode(e, keys=keys)
        for c in cams:
            rgb.append(torch.from_numpy(ep[f"observation.images.{c}"][::stride]))
            depth.append(torch.from_numpy(ep[f"observation.depth.{c}"][::stride]))
    img = torch.cat(rgb).permute(0, 3, 1, 2).float() / 255.0
    if img.shape[-1] != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True)
    return Frames(img.clamp(0, 1), resize_depth_maps(torch.cat(depth).float(), size))


def depth_config(cfg: TrainAutoencoderConfig) -> DepthConfig:
    return DepthConfig(
        objective=cfg.target,
        encoding=cfg.encoding,
        normalization=cfg.normalization,
        near=cfg.near,
        far=cfg.far,
    )


def targets(frames: Frames, dcfg: DepthConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoded images in [-1, 1], per-pixel loss weights)."""
    valid = frames.depth > 0
    if dcfg.objective == "rgb":
        return frames.rgb * 2 - 1, torch.ones_like(frames.depth)
    image, _ = encode_depth(frames.depth, valid, dcfg)
    return image, torch.where(valid, 1.0, INVALID_WEIGHT)


@torch.no_grad()
def reconstruction_report(
    ae: DepthAutoencoder, frames: Frames, dcfg: DepthConfig, batch: int = 64
) -> dict[str, float]:
    """AbsRel / delta1 of decode(encode(target)) against ground truth (depth targets) and L1 in
    target space. Percentile-normalised maps are decoded with the ground truth's own range."""
    image, _ = targets(frames, dcfg)
    recon = torch.cat(
        [ae.decode(ae.encode(image[i : i + batch])) for i in range(0, len(image), batch)]
    )
    report = {"l1": float((recon.clamp(-1, 1) - image).abs().mean()), "frames": len(image)}
    if dcfg.objective == "depth":
        valid = frames.depth > 0
        _, rng = encode_depth(frames.depth, valid, dcfg)
        pred = decode_depth(recon.clamp(-1, 1), rng, dcfg)
        m = depth_metrics(pred, frames.depth)
        # the floor set by the encoding itself (percentile clipping, fixed-range clipping)
        floor = depth_metrics(decode_depth(image, rng, dcfg), frames.depth)
        report.update(abs_rel=m["abs_rel"], delta1=m["delta1"], encoding_abs_rel=floor["abs_rel"])
    return report


def train_autoencoder(cfg: TrainAutoencoderConfig) -> tuple[Path, dict]:
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    dcfg = depth_config(cfg)
    dcfg.validate()
    frames = load_frames(cfg.dataset, cfg.split, cfg.image_size, cfg.frame_stride)
    n = frames.depth.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    n_hold = min(n - 1, max(1, round(cfg.holdout * n))) if n > 1 else 0
    hold, train = order[:n_hold], order[n_hold:]
    train_frames = Frames(frames.rgb[train], frames.depth[train])
    hold_frames = Frames(frames.rgb[hold], frames.depth[hold])
    image, weight = targets(train_frames, dcfg)
    spec = AutoencoderSpec(
        in_channels=dcfg.channels,
        latent_channels=cfg.latent_channels,
        widths=tuple(cfg.widths),
        target={
            "target": cfg.target,
            "encoding": cfg.encoding,
            "normalization": cfg.normalization,
            "near": cfg.near,
            "far": cfg.far,
        },
    )
    if cfg.image_size % spec.compression:
        raise ValueError(f"image_size {cfg.image_size} is not a multiple of {spec.compression}")
    ae = DepthAutoencoder(spec)
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.lr, weight_decay=0.0)
    warmup = max(1, cfg.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    bar = tqdm(range(cfg.steps), desc="autoencoder", disable=not cfg.progress, leave=False)
    ae.train()
    for _ in bar:
        idx = torch.randint(
            0, image.shape[0], (min(cfg.batch_size, image.shape[0]),), generator=gen
        )
        x, w = image[idx], weight[idx][:, None]
        loss = ((ae.decode(ae.encode(x)) - x).abs() * w).sum() / (w.sum() * x.shape[1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    ae.eval()
    with torch.no_grad():
        z = torch.cat([ae.encoder(image[i : i + 256]) for i in range(0, len(image), 256)])
        ae.spec.scaling_factor = float(1.0 / z.std().clamp(min=1e-6))
    report = reconstruction_report(ae, hold_frames if n_hold else train_frames, dcfg)
    report.update(train_frames=len(train), steps=cfg.steps, final_loss=float(loss.item()))
    return ae.save(cfg.output, report), report


def run(cfg: TrainAutoencoderConfig) -> None:
    path, report = train_autoencoder(cfg)
    line = f"wrote {path}: held-out reconstruction L1 {report['l1']:.4f}"
    if "abs_rel" in report:
        line += (
            f", AbsRel {report['abs_rel']:.4f} (encoding alone {report['encoding_abs_rel']:.4f}), "
            f"delta1 {report['delta1']:.3f}"
        )
    print(line + f" on {report['frames']} frames")
