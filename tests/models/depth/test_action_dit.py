"""GEM-VLA's DiT action expert: a config alternative to the in-backbone split-FFN expert."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_sample
from embodia.configs.depth import gem_action_dit
from embodia.configs.model import preset
from embodia.models.action_space import SAWYER, TEMPLATE_DIM
from embodia.models.attention import sequence_mask
from embodia.models.depth.action_dit import GemActionExpert, block_layers
from embodia.models.embodied import EmbodiedModel
from embodia.models.split_ffn import SplitFFN


def gem_vla(depth: bool = False, seed: int = 0) -> EmbodiedModel:
    from embodia.configs.depth import depth_preset

    cfg = preset("tiny")
    cfg.action.expert = "gem-dit"
    cfg.action.dit = gem_action_dit("tiny")
    if depth:
        cfg.depth = depth_preset("tiny")
    torch.manual_seed(seed)
    return EmbodiedModel(cfg)


def test_block_layers_spread_over_the_backbone():
    cfg = gem_action_dit("gem-2b")
    layers = block_layers(cfg, 28)
    assert len(layers) == 14 and layers[-1] == 27 and layers == sorted(layers)
    assert block_layers(gem_action_dit("tiny"), 4) == [0, 1, 2, 3]


def test_expert_replaces_the_in_backbone_one():
    model = gem_vla(depth=True)
    assert isinstance(model.aux_heads["action"], GemActionExpert)
    assert model.flow is None
    assert not any(isinstance(layer.mlp, SplitFFN) for layer in model.backbone.decoder_layers)
    rng = np.random.default_rng(0)
    batch = model.collate([random_sample(rng), random_sample(rng, views=1, mode="text")])
    losses = model.compute_loss(batch)
    assert set(losses) == {"text", "flow", "depth", "loss"}
    w = model.cfg.loss_weights
    expected = w["text"] * losses["text"] + w["flow"] * losses["flow"] + 0.1 * losses["depth"]
    torch.testing.assert_close(losses["loss"], expected)


def test_blocks_read_the_states_of_their_layers():
    """Block i's memory is the output of backbone layer layers[i] (Hugging Face's
    ``output_hidden_states`` as the reference; its last entry is after the final norm)."""
    model = gem_vla()
    expert = model.aux_heads["action"]
    rng = np.random.default_rng(1)
    batch = model.collate([random_sample(rng)])
    lm = model.backbone.language_model
    with torch.no_grad():
        final = model.hidden_states(batch)
        captured = [s.clone() for s in expert.layer_states()]
        ref = lm(
            inputs_embeds=model._embed(batch, None, None)[0],
            attention_mask={"full_attention": model._mask(sequence_mask(batch["kinds"]))},
            position_ids=model._positions(batch),
            output_hidden_states=True,
        ).hidden_states
    last = len(model.backbone.decoder_layers) - 1
    for block, layer in enumerate(expert.layers):
        if layer < last:
            torch.testing.assert_close(captured[block], ref[layer + 1])  # [0]: the embeddings
        else:
            torch.testing.assert_close(lm.norm(captured[block]), final)


def test_sampling_goes_through_sample_actions():
    model = gem_vla().eval()
    rng = np.random.default_rng(2)
    samples = [random_sample(rng), random_sample(rng, views=1)]
    expert = model.aux_heads["action"]
    calls = []
    original = expert.velocity
    expert.velocity = lambda *a, **k: calls.append(1) or original(*a, **k)
    out = model.sample_actions(samples, generator=torch.Generator().manual_seed(0))
    assert out.actions.shape == (2, 32, TEMPLATE_DIM) and len(calls) == 5  # GEM's 5 steps
    assert out.actions[:, :, ~torch.as_tensor(samples[0].dof_mask)].abs().max() == 0
    calls.clear()
    model.sample_actions(samples, steps=3)
    assert len(calls) == 3


@pytest.mark.slow
def test_tiny_gem_vla_overfits_two_chunks():
    model = gem_vla(seed=1)
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 32)[:, None]
    samples = []
    for k in range(2):
        s = random_sample(rng, views=1, depth=False)
        chunk = 0.8 * np.sin(2 * np.pi * (t + 0.25 * k) * np.array([1, 1.5, 0.5, 1]))
        s.actions = SAWYER.to_template(chunk.astype(np.float32))
        samples.append(s)
    batch = model.collate(samples * 4)  # 4 noise draws per chunk and step: steadier training
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    for _ in range(150):
        loss = model.compute_loss(batch)["flow"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    pred = model.sample_actions(samples, steps=10, generator=torch.Generator().manual_seed(0))
    dims = torch.as_tensor(SAWYER.indices)
    target = torch.as_tensor(np.stack([s.actions for s in samples]))[..., dims]
    err = float(((pred.actions[..., dims] - target) ** 2).mean())
    assert err < 0.25 * float((target**2).mean()), err  # an untrained expert: ~3.5x the variance
