"""Condition dropout and classifier-free guidance behave as GEM specifies."""

from __future__ import annotations

import numpy as np
import torch

from conftest import depth_model, random_sample
from embodia.models.depth.connector import drop_condition
from embodia.models.depth.dit import dit_velocity
from embodia.models.depth.flow import euler_sample, guided_velocity


def test_dropout_zeroes_whole_conditions_at_the_configured_rate():
    cond = torch.randn(4000, 5, 8) + 3.0
    out, dropped = drop_condition(cond, 0.1, torch.Generator().manual_seed(0))
    assert 0.08 < float(dropped.float().mean()) < 0.12
    assert torch.all(out[dropped] == 0)
    assert torch.equal(out[~dropped], cond[~dropped])
    same, none = drop_condition(cond, 0.0)
    assert same is cond and not none.any()


def test_dropout_only_in_training():
    model = depth_model(cond_dropout=0.5)
    head = model.aux_heads["depth"]
    calls = []
    original = head.dit.forward

    def spy(*args, **kwargs):
        calls.append(kwargs["encoder_hidden_states"].detach().flatten(1).abs().sum(1))
        return original(*args, **kwargs)

    head.dit.forward = spy
    rng = np.random.default_rng(0)
    batch = model.collate([random_sample(rng, views=2) for _ in range(8)])
    torch.manual_seed(0)
    model.train()
    model.compute_loss(batch)
    model.eval()
    model.compute_loss(batch)
    assert (calls[0] == 0).any() and not (calls[1] == 0).any()


def test_guidance_scale_one_equals_the_conditional_prediction():
    model = depth_model().eval()
    dit = model.aux_heads["depth"].dit
    torch.manual_seed(0)
    x = torch.randn(3, 4, 8, 8)
    cond = torch.randn(3, 16, 64)
    s = torch.rand(3)

    def vel(a, c, t):
        return dit_velocity(dit, a, c, t)

    with torch.no_grad():
        v_c, v_u = vel(x, cond, s), vel(x, torch.zeros_like(cond), s)
        assert torch.equal(guided_velocity(vel, x, cond, s, 1.0), v_c)

        # the two-pass formula agrees at scale 1 too, and is v_u + g (v_c - v_u) in general
        def two_pass(g):
            return (
                guided_velocity(vel, x, cond, s, g + 1e-12)
                if g == 1.0
                else guided_velocity(vel, x, cond, s, g)
            )

        torch.testing.assert_close(two_pass(1.0), v_c, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(guided_velocity(vel, x, cond, s, 0.0), v_u, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            guided_velocity(vel, x, cond, s, 5.0), v_u + 5.0 * (v_c - v_u), atol=1e-4, rtol=1e-4
        )


def test_euler_integrates_a_known_flow_exactly():
    """With the true velocity of a straight path (eps - x) the sampler lands on x."""
    target = torch.randn(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))

    def vel(x, cond, s):
        return torch.cat([eps - target] * (x.shape[0] // target.shape[0]))

    out = euler_sample(
        vel, torch.zeros(2, 1, 1), tuple(target.shape), steps=7, guidance=3.0, generator=g
    )
    torch.testing.assert_close(out, target, atol=1e-5, rtol=1e-5)


def test_generate_depth_steps_and_guidance_are_configurable():
    model = depth_model().eval()
    rng = np.random.default_rng(3)
    samples = [random_sample(rng, views=1), random_sample(rng, views=2)]
    head = model.aux_heads["depth"]
    seen = []
    original = head.dit.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["hidden_states"].shape[0])
        return original(*args, **kwargs)

    head.dit.forward = spy
    out = model.generate_depth(samples, guidance=1.0, steps=3)
    assert seen == [3, 3, 3]  # one conditional pass per step for all 3 images
    seen.clear()
    out = model.generate_depth(samples, steps=2)  # default guidance 5: cond + uncond batched
    assert seen == [6, 6]
    assert out.depth.shape == (3, 64, 64) and out.rows == [0, 1, 1]
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()
    # the predicted scale decodes to metres from RGB; the samples' own depth is never used
    assert out.metric and not out.aligned.any()
    relative = depth_model(scale="none").eval()
    assert relative.generate_depth(samples, steps=2).aligned.all()  # GEM's relative maps
    a = model.generate_depth(samples, steps=2, generator=torch.Generator().manual_seed(1)).depth
    b = model.generate_depth(samples, steps=2, generator=torch.Generator().manual_seed(1)).depth
    assert torch.equal(a, b)
