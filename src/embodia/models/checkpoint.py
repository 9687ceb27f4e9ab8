"""Loading checkpoints from local directories (never from a hub).

Two kinds: an embodia checkpoint (``embodia_config.json`` + ``model.safetensors`` + tokenizer +
image processor [+ FAST tokenizer]) and a Hugging Face Qwen2.5-VL / Qwen3-VL checkpoint, whose
backbone weights, tokenizer and image processor are imported; embodia's special tokens are added
to that tokenizer and the embeddings resized, and the action expert and heads start fresh.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import (
    AutoTokenizer,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from embodia.configs.model import (
    HF_TEXT_FIELDS,
    HF_VISION_FIELDS,
    ActionConfig,
    ModelConfig,
    TextConfig,
    VisionConfig,
)


class CheckpointError(ValueError):
    """A checkpoint directory is incomplete or inconsistent (the message names the file)."""


LATEST = "latest"


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory a user means, whichever of the forms they name.

    Every command that takes a checkpoint accepts the same four: a checkpoint directory
    (``runs/x/checkpoints/step-N``), a run directory (``runs/x``), its ``checkpoints/`` folder,
    or the ``checkpoints/latest`` pointer file itself; the last three resolve to the step that
    ``latest`` names.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_file():
        if path.name != LATEST:
            raise FileNotFoundError(
                f"checkpoint {path} is a file; give a checkpoint or run directory "
                f"(or its checkpoints/{LATEST})"
            )
        return _follow(path)
    for base in (path, path / "checkpoints"):
        pointer = base / LATEST
        if pointer.is_file():
            return _follow(pointer)
        if pointer.is_dir():
            return pointer
    return path


def _follow(pointer: Path) -> Path:
    target = pointer.parent / pointer.read_text().strip()
    if not target.is_dir():
        raise FileNotFoundError(f"{pointer} names {target.name}, which does not exist")
    return target


def load_embodia_checkpoint(cls, directory: Path, map_location: str = "cpu"):
    from safetensors.torch import load_model

    from embodia.models.embodied import CONFIG_FILE, FAST_DIR, WEIGHTS_FILE

    try:
        meta = json.loads((directory / CONFIG_FILE).read_text())
        cfg = ModelConfig.from_dict(meta["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: unreadable model config ({exc})"
        ) from exc
    weights = directory / WEIGHTS_FILE
    if not weights.exists():
        raise CheckpointError(f"{weights} is missing")
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(directory, local_files_only=True)
    fast = None
    if (directory / FAST_DIR).exists():
        from embodia.models.fast_tokenizer import FastActionTokenizer

        fast = FastActionTokenizer.load(directory / FAST_DIR)
    model = cls(cfg, tokenizer=tokenizer, image_processor=image_processor, fast_tokenizer=fast)
    missing, unexpected = load_model(model, str(weights), strict=False, device=map_location)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match the config "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    if meta.get("fast_slots") is not None:
        model.fast_slots = meta["fast_slots"]
    return model


def config_from_hf(hf_config, num_fast_tokens: int = 1024) -> ModelConfig:
    """Our config mirroring a Hugging Face Qwen-VL config's shapes."""
    t, v = hf_config.text_config, hf_config.vision_config
    qwen3 = hf_config.model_type.startswith("qwen3")
    rope = t.rope_parameters or {}
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    text = TextConfig(
        **{f: getattr(t, f) for f in HF_TEXT_FIELDS},
        head_dim=head_dim,
        rope_theta=float(rope.get("rope_theta", 1e6)),
        mrope_section=tuple(
            rope.get("mrope_section", (head_dim // 4, head_dim // 8, head_dim // 8))
        ),
        tie_word_embeddings=bool(getattr(hf_config, "tie_word_embeddings", False)),
    )
    vision = VisionConfig(
        **{f: getattr(v, f) for f in HF_VISION_FIELDS},
        window_size=getattr(v, "window_size", 112),
        fullatt_block_indexes=tuple(getattr(v, "fullatt_block_indexes", ()) or ()),
        deepstack_visual_indexes=tuple(getattr(v, "deepstack_visual_indexes", ()) or ()),
        num_position_embeddings=getattr(v, "num_position_embeddings", 2304),
    )
    return ModelConfig(
        name=f"imported-{hf_config.model_type}",
        backbone="qwen3-vl" if qwen3 else "qwen2.5-vl",
        vision=vision,
        text=text,
        action=ActionConfig(
            expert_intermediate_size=max(64, t.intermediate_size // 5),
            num_fast_tokens=num_fast_tokens,
        ),
        image_size=v.patch_size * v.spatial_merge_size * 8,  # 64 vision tokens per view
    )


def load_qwen_checkpoint(
    cls, directory: Path, num_fast_tokens: int = 1024, image_size: int | None = None
):
    """Import a local Hugging Face Qwen2.5-VL / Qwen3-VL checkpoint as an EmbodiedModel backbone."""
    from embodia.models.backbone import QwenVLBackbone
    from embodia.models.text_tokenizer import EMBODIA_SPECIAL_TOKENS, fast_token

    config = json.loads((directory / "config.json").read_text())
    kind = config.get("model_type", "")
    model_cls = {
        "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
        "qwen3_vl": Qwen3VLForConditionalGeneration,
    }.get(kind)
    if model_cls is None:
        raise CheckpointError(
            f"{directory / 'config.json'}: model_type {kind!r} is not qwen2_5_vl or qwen3_vl"
        )
    hf = model_cls.from_pretrained(directory, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    new = [
        t
        for t in [*EMBODIA_SPECIAL_TOKENS, *(fast_token(k) for k in range(num_fast_tokens))]
        if t not in tokenizer.get_vocab()
    ]
    tokenizer.add_tokens(new, special_tokens=True)
    if len(tokenizer) > hf.get_input_embeddings().weight.shape[0]:
        hf.resize_token_embeddings(len(tokenizer))
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(directory, local_files_only=True)
    cfg = config_from_hf(hf.config, num_fast_tokens)
    if image_size:
        cfg.image_size = image_size
    return cls(
        cfg, tokenizer=tokenizer, image_processor=image_processor, backbone=QwenVLBackbone(hf)
    )
