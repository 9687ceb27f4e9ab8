"""A tiny model learns to generate the depth of a few engine images from its visual tokens."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from embodia.configs.depth import CodecConfig, DepthConfig, depth_preset
from embodia.configs.model import preset
from embodia.models.depth.autoencoder import AutoencoderSpec, DepthAutoencoder
from embodia.models.depth.encodings import encode_depth
from embodia.models.depth.metrics import depth_metrics, mean_depth_baseline
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample


def fit_autoencoder(gt: torch.Tensor, directory, steps: int = 100) -> None:
    """The latent space for these images (the command trains it on whole datasets)."""
    cfg = DepthConfig()
    image, _ = encode_depth(gt, gt > 0, cfg)
    weight = torch.where(gt > 0, 1.0, 0.1)[:, None]
    torch.manual_seed(0)
    ae = DepthAutoencoder(AutoencoderSpec(in_channels=3, target={"target": "depth"}))
    opt = torch.optim.AdamW(ae.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = ((ae.decode(ae.encode(image)) - image).abs() * weight).sum() / (weight.sum() * 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        ae.spec.scaling_factor = float(1 / ae.encoder(image).std())
    ae.save(directory)


@pytest.mark.slow
def test_tiny_model_overfits_engine_depth(engine_frames, tmp_path):
    gt = torch.from_numpy(np.stack([d for _, d in engine_frames]))  # corner x 2, gripperPOV x 2
    fit_autoencoder(gt, tmp_path / "ae")
    cfg = preset("tiny")
    cfg.depth = depth_preset("tiny", codec=CodecConfig(path=str(tmp_path / "ae")))
    torch.manual_seed(0)
    model = EmbodiedModel(cfg)
    samples = [
        EmbodiedSample(
            images=[rgb],
            instruction="how far is the puck?",
            mode="text",
            answer="about 1 m",
            depths=[depth],
        )
        for rgb, depth in engine_frames
    ]
    batch = model.collate(samples)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    # the model's own objective: text + 0.1 x depth. 500 steps, not 300: at 300 the result
    # depends on the machine's float kernels (AbsRel 0.223 on an AVX-512 EPYC, failing the
    # 0.6 x baseline bar, where it passed elsewhere); at 500 it is 0.127 with AVX-512
    # kernels and 0.160 with ATEN_CPU_CAPABILITY=avx2, both well inside the bar
    for _ in range(500):
        loss = model.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = model.generate_depth(
        samples, generator=torch.Generator().manual_seed(0)
    )  # CFG 5, 30 steps
    # metres from RGB alone: the samples' ground truth does not enter generation
    assert out.metric and not out.aligned.any()
    blind_to_gt = [dataclasses.replace(s, depths=None) for s in samples]
    same = model.generate_depth(blind_to_gt, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(same.depth, out.depth)
    ours = depth_metrics(out.depth, gt)
    baseline = mean_depth_baseline(gt)  # each image's own mean depth everywhere: knows the scale
    print(
        f"overfit AbsRel {ours['abs_rel']:.3f} (delta1 {ours['delta1']:.3f}) vs mean depth "
        f"{baseline['abs_rel']:.3f} (delta1 {baseline['delta1']:.3f})"
    )
    # (decoding with GEM's fixed fallback bounds instead of the predicted scale: AbsRel ~0.9)
    assert ours["abs_rel"] < 0.6 * baseline["abs_rel"], (ours, baseline)
    # each map is its own image's: closer to it than to the other camera's view
    for i in range(4):
        own = depth_metrics(out.depth[i], gt[i])["abs_rel"]
        other = depth_metrics(out.depth[i], gt[(i + 2) % 4])["abs_rel"]
        assert own < other, (i, own, other)
    # and it comes from the condition: without it (guidance 0) the maps are much worse
    blind = model.generate_depth(samples, guidance=0.0, generator=torch.Generator().manual_seed(0))
    assert depth_metrics(blind.depth, gt)["abs_rel"] > 1.5 * ours["abs_rel"]
