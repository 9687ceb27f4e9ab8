"""EmbodiedModel: shapes in every mode, routing to the action expert, cached sampling, save/load,
importing a Hugging Face Qwen-VL checkpoint, and overfitting every loss on a handful of samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embodia.models.action_space import SAWYER, TEMPLATE_DIM
from embodia.models.attention import ACTION
from embodia.models.embodied import EmbodiedModel
from embodia.models.fast_tokenizer import FastActionTokenizer
from embodia.models.sequence import EmbodiedSample
from embodia.models.split_ffn import ActionFFN, SplitFFN

H = 32


def smooth_chunks(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.linspace(0, 1, H)[None, :, None]
    freq = rng.uniform(0.5, 2.0, size=(n, 1, 4))
    phase = rng.uniform(0, np.pi, size=(n, 1, 4))
    return (0.8 * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def fast_tokenizer() -> FastActionTokenizer:
    return FastActionTokenizer.fit(smooth_chunks(np.random.default_rng(0), 300), vocab_size=256)


def make_sample(rng, mode, fast_tok=None, views=2, chunk=None) -> EmbodiedSample:
    chunk = smooth_chunks(rng, 1)[0] if chunk is None else chunk
    return EmbodiedSample(
        images=[rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(views)],
        instruction="pick up the puck" + " now" * int(rng.integers(0, 3)),
        mode=mode,
        state=SAWYER.to_template(rng.normal(size=4)),
        dof_mask=SAWYER.dof_mask,
        reasoning="the puck is left of the gripper",
        subtask="grasp the puck",
        answer="the puck is red",
        actions=SAWYER.to_template(chunk),
        fast_ids=fast_tok.encode(chunk) if fast_tok is not None else [1, 2, 3],
    )


@pytest.fixture(scope="module", params=["tiny", "tiny-qwen3"])
def model(request, fast_tokenizer) -> EmbodiedModel:
    torch.manual_seed(0)
    m = EmbodiedModel.from_preset(request.param, fast_tokenizer=fast_tokenizer)
    m.fast_slots = SAWYER.indices.tolist()
    return m.eval()


def test_loss_names_and_shapes_for_every_mode(model, fast_tokenizer):
    rng = np.random.default_rng(1)
    for modes, expected in [
        (["flow"], {"flow", "text"}),
        (["fast"], {"fast", "text"}),
        (["text"], {"text"}),
        (["flow", "fast", "text"], {"flow", "fast", "text"}),
    ]:
        batch = model.collate([make_sample(rng, m, fast_tokenizer) for m in modes])
        losses = model.compute_loss(batch)
        assert set(losses) == expected | {"loss"}
        assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())


def test_sampling_shapes_for_every_mode(model, fast_tokenizer):
    rng = np.random.default_rng(2)
    samples = [
        make_sample(rng, "flow", fast_tokenizer),
        make_sample(rng, "flow", fast_tokenizer, 1),
    ]
    flow = model.sample_actions(samples, mode="flow")
    assert flow.actions.shape == (2, H, TEMPLATE_DIM)
    # dimensions the robot does not have stay zero
    assert flow.actions[:, :, ~torch.as_tensor(SAWYER.dof_mask)].abs().max() == 0
    cot = model.sample_actions(
        samples, mode="flow", levels=["reasoning", "subtask", "actions"], max_cot_tokens=4
    )
    assert cot.actions.shape == (2, H, TEMPLATE_DIM) and len(cot.text) == 2
    fast = model.sample_actions(samples, mode="fast", max_cot_tokens=4)
    assert fast.actions.shape == (2, H, TEMPLATE_DIM) and len(fast.valid) == 2
    text = model.generate_text([make_sample(rng, "text")], max_new_tokens=3)
    assert len(text) == 1 and len(text[0]) <= 3


def test_only_flow_action_tokens_reach_the_action_expert(model):
    rng = np.random.default_rng(3)
    batch = model.collate([make_sample(rng, m) for m in ("flow", "text", "flow", "fast")])
    seen = {"action": 0, "vl": 0}
    hooks = []
    for layer in model.backbone.decoder_layers:
        assert isinstance(layer.mlp, SplitFFN) and isinstance(layer.mlp.action, ActionFFN)
        hooks.append(
            layer.mlp.action.register_forward_hook(
                lambda _m, inp, _o: seen.__setitem__("action", seen["action"] + inp[0].shape[0])
            )
        )
        hooks.append(
            layer.mlp.vl.register_forward_hook(
                lambda _m, inp, _o: seen.__setitem__("vl", seen["vl"] + inp[0].shape[0])
            )
        )
    try:
        model.compute_loss(batch)
    finally:
        for h in hooks:
            h.remove()
    layers = len(model.backbone.decoder_layers)
    n_action = int((batch["kinds"] == ACTION).sum())
    assert n_action == 2 * H
    assert seen["action"] == layers * n_action
    assert seen["vl"] == layers * (batch["kinds"].numel() - n_action)


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_cached_flow_sampling_equals_rerunning_the_model(model, attention):
    rng = np.random.default_rng(4)
    samples = [make_sample(rng, "flow"), make_sample(rng, "flow", views=1)]  # left padding too
    old = model.cfg.action.attention
    model.cfg.action.attention = attention
    try:
        a = model.sample_actions(samples, generator=torch.Generator().manual_seed(5)).actions
        b = model.sample_actions(
            samples, use_cache=False, generator=torch.Generator().manual_seed(5)
        ).actions
    finally:
        model.cfg.action.attention = old
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_flow_after_chain_of_thought_reuses_the_decoding_cache_exactly(model, monkeypatch):
    """With reasoning and subtask levels, the flow's prefix is the greedy decoding's own KV cache
    (the prompt is not encoded a second time). Sample 0 closes its turn after two tokens, sample 1
    runs into the budget, so both the padded-key and the forced-close paths are compared with
    rebuilding and re-running the whole sequence."""
    rng = np.random.default_rng(14)
    samples = [make_sample(rng, "flow"), make_sample(rng, "flow", views=1)]
    real_head = model.backbone.lm_head
    calls = {"n": 0}

    def head_that_closes_sample_0(hidden):
        logits = real_head(hidden)
        calls["n"] += 1
        logits[:, model.special.im_end] = -1e9
        if calls["n"] == 3:
            logits[0, model.special.im_end] = 1e9
        return logits

    monkeypatch.setattr(model.backbone, "lm_head", head_that_closes_sample_0)
    levels = ["reasoning", "subtask", "actions"]
    outs = []
    for use_cache in (True, False):
        calls["n"] = 0
        noise = torch.randn(2, H, TEMPLATE_DIM, generator=torch.Generator().manual_seed(3))
        outs.append(
            model.sample_actions(
                samples, levels=levels, use_cache=use_cache, max_cot_tokens=6, noise=noise
            )
        )
    cached, rebuilt = outs
    assert cached.text == rebuilt.text
    assert len(model.tokenizer.encode(cached.text[0], add_special_tokens=False)) <= 2
    torch.testing.assert_close(cached.actions, rebuilt.actions, atol=1e-5, rtol=1e-4)


def test_cached_text_generation_equals_greedy_recompute(model):
    rng = np.random.default_rng(6)
    sample = make_sample(rng, "text")
    generated = model.generate_text([sample], max_new_tokens=6)[0]
    built = model.builder.prompt(sample, ["actions"])
    ids = list(built.input_ids)
    for token in generated:
        built.input_ids, built.labels, built.kinds = ids, [-100] * len(ids), [1] * len(ids)
        batch = model.collate([sample], built=[built])
        logits = model.backbone.lm_head(model.hidden_states(batch)[:, -1])
        assert int(logits.argmax(-1)) == token
        ids = [*ids, token]


def test_save_and_load_round_trip_offline(model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rng = np.random.default_rng(7)
    samples = [make_sample(rng, "flow")]
    path = model.save_pretrained(tmp_path / "ckpt")
    loaded = EmbodiedModel.from_pretrained(path).eval()
    assert loaded.cfg.to_dict() == model.cfg.to_dict()
    assert loaded.fast_slots == model.fast_slots
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, atol=0, rtol=0)
    a = model.sample_actions(samples, generator=torch.Generator().manual_seed(0)).actions
    b = loaded.sample_actions(samples, generator=torch.Generator().manual_seed(0)).actions
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    fast = make_sample(rng, "fast", model.fast_tokenizer)
    assert loaded.fast_tokenizer.encode(fast.actions[:, SAWYER.indices]) == fast.fast_ids


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3"])
def test_import_a_local_huggingface_qwen_checkpoint(tmp_path, monkeypatch, name):
    """A Hugging Face Qwen-VL directory (weights, tokenizer, image processor) loads offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from embodia.configs.model import preset
    from embodia.models.backbone import QwenVLBackbone
    from embodia.models.embodied import build_image_processor
    from embodia.models.text_tokenizer import load_preset_tokenizer, special_ids

    cfg = preset(name)
    tok = load_preset_tokenizer(num_fast_tokens=0)  # a "Qwen" tokenizer without embodia's extras
    sp = special_ids(tok)
    hf = QwenVLBackbone.from_config(cfg, len(tok), sp).hf
    hf.save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    build_image_processor(cfg).save_pretrained(tmp_path / "qwen")

    model = EmbodiedModel.from_pretrained(tmp_path / "qwen", image_size=64)
    assert model.cfg.backbone == cfg.backbone
    assert model.special.num_fast == 1024  # FAST tokens were added
    emb = model.backbone.hf.get_input_embeddings().weight
    torch.testing.assert_close(emb[: len(tok)], hf.get_input_embeddings().weight)
    rng = np.random.default_rng(8)
    losses = model.compute_loss(model.collate([make_sample(rng, "flow"), make_sample(rng, "text")]))
    assert torch.isfinite(losses["loss"])


def test_tiny_model_overfits_every_loss(fast_tokenizer):
    torch.manual_seed(0)
    model = EmbodiedModel.from_preset("tiny", fast_tokenizer=fast_tokenizer)
    rng = np.random.default_rng(9)
    samples = [
        make_sample(rng, m, fast_tokenizer, views=1) for m in ("flow", "fast", "text", "flow")
    ]
    batch = model.collate(samples, rng=np.random.default_rng(0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    first = {k: v.item() for k, v in model.compute_loss(batch, gen).items()}
    for _ in range(150):
        losses = model.compute_loss(batch, gen)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        last = {
            k: np.mean([model.compute_loss(batch, gen)[k].item() for _ in range(4)]) for k in first
        }
    assert last["text"] < 0.05 * first["text"], (first, last)
    assert last["fast"] < 0.05 * first["fast"], (first, last)
    assert last["flow"] < 0.35 * first["flow"], (first, last)


@pytest.mark.parametrize(
    ("name", "layers", "hidden", "billions"),
    [("wall-oss-3b", 36, 2048, (3.8, 4.0)), ("gem-2b", 28, 2048, (2.1, 2.3))],
)
def test_full_size_presets_build_from_config_alone(name, layers, hidden, billions):
    """Built on the meta device: the published shapes, plus an action expert in every layer."""
    from embodia.configs.model import preset

    with torch.device("meta"):
        model = EmbodiedModel(preset(name))
    assert len(model.backbone.decoder_layers) == layers
    assert model.backbone.hidden_size == hidden
    assert all(isinstance(layer.mlp, SplitFFN) for layer in model.backbone.decoder_layers)
    expert = model.backbone.decoder_layers[0].mlp.action.gate_proj
    assert expert.out_features == 2048
    total = sum(p.numel() for p in model.parameters()) / 1e9
    assert billions[0] < total < billions[1]


def test_the_prompt_names_the_action_head_so_a_mixture_trained_model_answers_in_each(
    fast_tokenizer,
):
    """Flow and FAST samples of one observation used to share a byte-identical prompt, so a model
    trained on both could not know whether to close the turn (flow) or write FAST tokens: one of
    the two modes below then answered in the other's format."""
    torch.manual_seed(0)
    fast_tok = fast_tokenizer
    model = EmbodiedModel.from_preset("tiny", fast_tokenizer=fast_tok)
    model.fast_slots = SAWYER.indices.tolist()
    rng = np.random.default_rng(12)
    chunk = smooth_chunks(rng, 1)[0]
    base = make_sample(rng, "flow", fast_tok, views=1, chunk=chunk)
    base.reasoning = None
    from dataclasses import replace

    samples = [replace(base, mode="flow"), replace(base, mode="fast")]
    prompts = [model.builder.prompt(s, ["subtask", "actions"]).input_ids for s in samples]
    assert prompts[0] != prompts[1]
    # no level dropping: every sample carries its subtask, so the model must learn when to stop
    batch = model.collate(samples)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(120):
        losses = model.compute_loss(batch, gen)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    model.eval()
    flow = model.sample_actions([base], mode="flow", levels=["subtask", "actions"])
    assert flow.text == ["Subtask: grasp the puck\n"], flow.text
    fast = model.sample_actions([base], mode="fast", levels=["subtask", "actions"])
    assert fast.valid == [True] and fast.text[0].startswith("Subtask: grasp the puck\nAction:")
    np.testing.assert_allclose(fast.actions[0][:, SAWYER.indices].numpy(), chunk, atol=0.1)
