"""One config field switches the objective; each switch changes only what it names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import depth_model, random_sample
from embodia.configs.model import preset
from embodia.models.embodied import EmbodiedModel


def losses_at(model, batch, seed=0):
    torch.manual_seed(seed)
    return {k: v.item() for k, v in model.compute_loss(batch).items()}


@pytest.fixture(scope="module")
def batch_samples():
    rng = np.random.default_rng(0)
    return [random_sample(rng, views=2), random_sample(rng, views=1, mode="text")]


def test_none_is_the_model_without_the_head(batch_samples):
    base = depth_model("none")
    torch.manual_seed(0)
    plain = EmbodiedModel(preset("tiny"))
    assert "depth" not in base.aux_heads
    assert base.state_dict().keys() == plain.state_dict().keys()
    for k, v in plain.state_dict().items():
        assert torch.equal(base.state_dict()[k], v), k
    with_depth = depth_model("depth")
    batch = base.collate(batch_samples)
    a, b = losses_at(base, batch), losses_at(with_depth, batch)
    assert "depth" not in a and "depth" in b
    for k in ("text", "flow"):  # the same backbone, batch and noise: the other losses are equal
        assert a[k] == pytest.approx(b[k], rel=1e-6)
    assert b["loss"] == pytest.approx(a["loss"] + 0.1 * b["depth"], rel=1e-5)  # weight 0.1


def test_rgb_changes_only_the_target(batch_samples):
    depth, rgb = depth_model("depth"), depth_model("rgb")
    sd_d, sd_r = depth.state_dict(), rgb.state_dict()
    # same modules, same weights; only depth has a metric scale to predict (the range head)
    scale = {k for k in sd_d if k.startswith("aux_heads.depth.range_head.")}
    assert scale and set(sd_d) - scale == set(sd_r)
    assert all(torch.equal(sd_d[k], sd_r[k]) for k in sd_r)
    batch = depth.collate(batch_samples)
    img_d, _, has_d, _ = depth.aux_heads["depth"].targets(depth, batch)
    img_r, _, has_r, _ = rgb.aux_heads["depth"].targets(rgb, batch)
    assert torch.equal(has_d, has_r)  # the same images are supervised
    assert img_d.shape == img_r.shape and not torch.allclose(img_d, img_r)
    # the rgb target is the very image the backbone saw, in [-1, 1]
    first = torch.from_numpy(batch_samples[0].images[0]).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(img_r[0], first, atol=4e-3, rtol=0)
    a, b = losses_at(depth, batch), losses_at(rgb, batch)
    assert a["text"] == pytest.approx(b["text"], rel=1e-6)
    assert a["flow"] == pytest.approx(b["flow"], rel=1e-6)
    assert a["depth"] != b["depth"]
    out = rgb.generate_depth(batch_samples[:1], steps=1)
    assert out.depth is None and out.image.shape == (2, 3, 64, 64)


def test_regression_changes_only_the_generator(batch_samples):
    gen, reg = depth_model("depth"), depth_model("regression")
    sd_g, sd_r = gen.state_dict(), reg.state_dict()
    own = ("connector", "range_head")  # shared by both arms (each has a scale to predict)
    head_g = {k for k in sd_g if k.startswith("aux_heads.depth.") and not any(o in k for o in own)}
    head_r = {k for k in sd_r if k.startswith("aux_heads.depth.") and not any(o in k for o in own)}
    assert all(k.startswith(("aux_heads.depth.dit.", "aux_heads.depth.codec.")) for k in head_g)
    assert head_r and all(k.startswith("aux_heads.depth.regressor.") for k in head_r)
    shared = set(sd_g) - head_g
    assert shared == set(sd_r) - head_r
    assert all(torch.equal(sd_g[k], sd_r[k]) for k in shared)  # backbone and connector included
    batch = gen.collate(batch_samples)
    a, b = losses_at(gen, batch), losses_at(reg, batch)
    assert a["text"] == pytest.approx(b["text"], rel=1e-6) and "depth" in b
    out = reg.generate_depth(batch_samples[:1])
    assert out.depth.shape == (2, 64, 64) and torch.isfinite(out.depth).all()


def test_samples_without_depth_give_no_depth_loss():
    model = depth_model()
    rng = np.random.default_rng(4)
    assert "depth" not in model.compute_loss(model.collate([random_sample(rng, depth=False)]))
    mixed = random_sample(rng, views=2)
    mixed.depths = [mixed.depths[0], None]  # one view with depth, one without
    batch = model.collate([mixed])
    assert batch["depth"].shape == (2, 64, 64) and float(batch["depth"][1].abs().sum()) == 0
    _, _, has, _ = model.aux_heads["depth"].targets(model, batch)
    assert has.tolist() == [True, False]


def test_the_depth_loss_trains_the_backbone():
    model = depth_model()
    rng = np.random.default_rng(5)
    batch = model.collate([random_sample(rng, views=2, mode="text")])
    losses = model.compute_loss(batch)
    model.zero_grad()
    losses["depth"].backward()
    last = model.backbone.decoder_layers[-1].self_attn.o_proj.weight.grad
    assert last is not None and float(last.abs().sum()) > 0
    assert all(p.grad is None for p in model.aux_heads["depth"].codec.parameters())  # frozen
