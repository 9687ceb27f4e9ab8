"""LoRA fine-tuning of a local Qwen-VL checkpoint: only adapters and the new parts train, the
checkpoint carries the adapters (also in PEFT's format), and `embodia export --merge` writes a
plain checkpoint whose actions equal the adapted model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from small_dataset import generate_small

from embodia.configs.serve import ExportConfig
from embodia.configs.train import TrainConfig
from embodia.export import export
from embodia.models.embodied import EmbodiedModel
from embodia.models.lora import ADAPTER_DIR, is_adapter, lora_layers
from embodia.policy import Policy
from embodia.training.trainer import TrainingError, train


@pytest.fixture(scope="module", params=["tiny", "tiny-qwen3"])
def qwen_dir(tmp_path_factory, request) -> Path:
    """A randomly initialised tiny Qwen2.5-VL / Qwen3-VL saved as Hugging Face writes one."""
    from embodia.configs.model import preset
    from embodia.models.backbone import QwenVLBackbone
    from embodia.models.embodied import build_image_processor
    from embodia.models.text_tokenizer import load_preset_tokenizer, special_ids

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("qwen") / request.param
    cfg = preset(request.param)
    cfg.image_size = 128  # what an import defaults to (8 x 8 merged patches)
    tok = load_preset_tokenizer(num_fast_tokens=0)
    QwenVLBackbone.from_config(cfg, len(tok), special_ids(tok)).hf.save_pretrained(out)
    tok.save_pretrained(out)
    build_image_processor(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "ds"
    return generate_small(out, tasks=("reach",), episodes_per_task=(2, 0, 0), max_steps=20)


def _train(init, dataset, tmp_path, stages, output="run", **kw) -> Path:
    return train(
        TrainConfig(
            datasets=(dataset,),
            init=init,
            output=tmp_path / output,
            curriculum_file=stages,
            batch_size=2,
            workers=0,
            log_with="none",
            progress=False,
            frame_cache=tmp_path / "cache",
            **kw,
        )
    )


def _obs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "images": {
            c: rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for c in ("corner", "gripperPOV")
        },
        "state": rng.normal(size=4).astype(np.float32),
        "prompt": "reach the goal",
        "seed": seed,
    }


def test_lora_trains_adapters_and_new_parts_only_then_merges_to_the_same_actions(
    qwen_dir, dataset, tmp_path, flow_stage_file
):
    from safetensors.torch import load_file

    base = {
        n: p.detach()
        for n, p in EmbodiedModel.from_pretrained(qwen_dir).named_parameters()
        if n.startswith("backbone.hf.model.")
        and ".mlp.action." not in n
        and "embed_tokens" not in n
    }  # (the rows of added tokens are drawn at random)
    last = _train(qwen_dir, dataset, tmp_path, flow_stage_file(3, lr=1e-2), lora=4)
    trained = load_file(str(last / "model.safetensors"))
    # every pretrained backbone weight is exactly the base's: only the adapters moved
    wrapped = {k.replace(".base_layer.", "."): v for k, v in trained.items() if not is_adapter(k)}
    assert any(k.startswith("backbone.hf.model.visual.") for k in base)
    for name, weight in base.items():
        torch.testing.assert_close(wrapped[name], weight, atol=0, rtol=0, msg=name)
    b_weights = [v for k, v in trained.items() if ".lora_B." in k]
    assert b_weights and any(v.abs().sum() > 0 for v in b_weights)  # B starts at 0, so it trained
    adapter = last / ADAPTER_DIR
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8.0
    peft_keys = load_file(str(adapter / "adapter_model.safetensors")).keys()
    assert all(k.startswith("base_model.model.") and "lora_" in k for k in peft_keys)

    adapted = Policy.load(tmp_path / "run")
    assert adapted.model.cfg.lora is not None and lora_layers(adapted.model)
    n_train = sum(p.numel() for n, p in adapted.model.named_parameters() if is_adapter(n))
    assert 0 < n_train < 0.2 * sum(p.numel() for p in adapted.model.parameters())
    before = [adapted.infer(_obs(s))["actions"] for s in range(3)]

    export(ExportConfig(checkpoint=tmp_path / "run", output=tmp_path / "merged", merge=True))
    merged = Policy.load(tmp_path / "merged")
    assert merged.model.cfg.lora is None and not lora_layers(merged.model)
    assert not (tmp_path / "merged" / ADAPTER_DIR).exists()
    for s, want in enumerate(before):
        np.testing.assert_allclose(merged.infer(_obs(s))["actions"], want, atol=1e-5)
    with pytest.raises(ValueError, match="exists"):
        export(ExportConfig(checkpoint=tmp_path / "run", output=tmp_path / "merged", merge=True))
    with pytest.raises(ValueError, match="no LoRA adapters"):
        export(ExportConfig(checkpoint=tmp_path / "merged", output=tmp_path / "m2", merge=True))
    assert not (tmp_path / "m2").exists()


def test_lora_is_refused_on_a_checkpoint_that_already_has_adapters(
    qwen_dir, dataset, tmp_path, flow_stage_file
):
    stages = flow_stage_file(3)
    _train(qwen_dir, dataset, tmp_path, stages, lora=2)
    with pytest.raises(TrainingError, match="already carries LoRA adapters"):
        _train(tmp_path / "run", dataset, tmp_path, stages, output="again", lora=2)
