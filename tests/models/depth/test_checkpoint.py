"""Depth-enabled checkpoints are self-contained; full-scale parts load from local diffusers dirs."""

from __future__ import annotations

import shutil

import numpy as np
import torch

from conftest import random_sample
from embodia.configs.depth import CodecConfig, DepthConfig, DiTConfig, depth_preset
from embodia.configs.model import ModelConfig, preset
from embodia.models.depth.autoencoder import AutoencoderSpec, DepthAutoencoder
from embodia.models.embodied import EmbodiedModel


def test_config_round_trips_through_a_dict():
    cfg = preset("tiny")
    cfg.depth = depth_preset("tiny", objective="regression", encoding="inverse")
    cfg.action.expert = "gem-dit"
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert ModelConfig.from_dict(preset("tiny").to_dict()).depth is None


def test_save_and_load_without_the_autoencoder_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = AutoencoderSpec(in_channels=3, target={"target": "depth", "encoding": "colormap"})
    torch.manual_seed(0)
    DepthAutoencoder(spec).save(tmp_path / "ae")
    cfg = preset("tiny")
    cfg.depth = depth_preset("tiny", codec=CodecConfig(path=str(tmp_path / "ae")))
    model = EmbodiedModel(cfg).eval()
    assert cfg.depth.codec.config is not None and cfg.depth.dit.config is not None
    model.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "ae")  # the checkpoint carries the codec's weights and config
    loaded = EmbodiedModel.from_pretrained(tmp_path / "ckpt").eval()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    samples = [random_sample(np.random.default_rng(0), views=1)]
    a = model.generate_depth(samples, steps=2, generator=torch.Generator().manual_seed(0))
    b = loaded.generate_depth(samples, steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.depth, b.depth)


def test_codec_trained_for_another_target_is_refused(tmp_path):
    DepthAutoencoder(AutoencoderSpec(target={"target": "rgb"})).save(tmp_path / "ae")
    cfg = preset("tiny")
    cfg.depth = depth_preset("tiny", codec=CodecConfig(path=str(tmp_path / "ae")))
    try:
        EmbodiedModel(cfg)
    except ValueError as exc:
        assert "rgb" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


def test_sana_dit_and_dc_ae_load_from_local_diffusers_directories(tmp_path, monkeypatch):
    """The full-scale path with tiny random-initialised diffusers models saved locally."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import AutoencoderDC, SanaTransformer2DModel

    torch.manual_seed(0)
    dcae = AutoencoderDC(
        in_channels=3,
        latent_channels=8,
        attention_head_dim=8,
        encoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 16, 16),
        decoder_block_out_channels=(8, 16, 16),
        encoder_layers_per_block=(1, 1, 1),
        decoder_layers_per_block=(1, 1, 1),
        encoder_qkv_multiscales=((), (), (5,)),
        decoder_qkv_multiscales=((), (), (5,)),
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.5,
    )
    sana = SanaTransformer2DModel(
        in_channels=8,
        out_channels=8,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=1,
        num_cross_attention_heads=2,
        cross_attention_head_dim=16,
        cross_attention_dim=32,
        caption_channels=48,
        sample_size=16,
        patch_size=1,
    )
    dcae.save_pretrained(tmp_path / "dcae")
    sana.save_pretrained(tmp_path / "sana")
    cfg = preset("tiny")
    cfg.depth = DepthConfig(
        dit=DiTConfig(path=str(tmp_path / "sana")),
        codec=CodecConfig(kind="dc-ae", path=str(tmp_path / "dcae")),
    )
    model = EmbodiedModel(cfg)
    head = model.aux_heads["depth"]
    assert head.codec.compression == 4 and head.latent_size == 16
    assert head.connector.out_dim == 48  # the connector feeds SANA's caption_channels
    for k, v in sana.state_dict().items():
        assert torch.equal(head.dit.state_dict()[k], v), k
    rng = np.random.default_rng(0)
    batch = model.collate([random_sample(rng, views=2)])
    losses = model.compute_loss(batch)
    assert torch.isfinite(losses["depth"])
    out = model.generate_depth([random_sample(rng, views=1)], steps=2)
    assert out.depth.shape == (1, 64, 64) and torch.isfinite(out.depth).all()
    model.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "sana")
    shutil.rmtree(tmp_path / "dcae")
    loaded = EmbodiedModel.from_pretrained(tmp_path / "ckpt")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_gem_2b_with_depth_and_dit_expert_builds_from_config_alone():
    """Meta device: SANA-1.5-class DiT (1.6B), DC-AE f32c32 and GEM-VLA's 14-block expert."""
    from embodia.configs.depth import gem_action_dit

    cfg = preset("gem-2b")
    cfg.depth = depth_preset("gem-2b")
    cfg.action.expert, cfg.action.dit = "gem-dit", gem_action_dit("gem-2b")
    with torch.device("meta"):
        model = EmbodiedModel(cfg)
    head = model.aux_heads["depth"]

    def count(m):
        return sum(p.numel() for p in m.parameters()) / 1e9

    assert 1.5 < count(head.dit) < 1.7 and 0.3 < count(head.codec) < 0.4
    assert head.codec.compression == 32 and head.latent_size == 7  # 224 px
    assert head.connector.out_dim == 2304
    assert len(model.aux_heads["action"].blocks) == 14
    assert 0.3 < count(model.aux_heads["action"]) < 0.4
