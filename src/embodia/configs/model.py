"""Typed model configs and the named presets (tiny, small, wall-oss-3b, gem-2b).

One config describes the whole EmbodiedModel: the Qwen-VL backbone's shapes, the split-FFN action
expert, the flow-matching and FAST action heads and the cross-embodiment action template. Presets
are data: a full-size preset is the published architecture's shapes, random-initialised from the
config alone; real weights come from `EmbodiedModel.from_pretrained(local_dir)`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from embodia.configs.depth import ActionDiTConfig, DepthConfig  # GEM (issue #4)

Backbone = Literal["qwen2.5-vl", "qwen3-vl"]


@dataclass
class VisionConfig:
    depth: int = 2
    hidden_size: int = 64
    intermediate_size: int = 128
    num_heads: int = 2
    patch_size: int = 8
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    # Qwen2.5-VL only: windowed attention except in these blocks
    window_size: int = 64
    fullatt_block_indexes: tuple[int, ...] = (1,)
    # Qwen3-VL only: vision layers whose features are added into the first decoder layers
    deepstack_visual_indexes: tuple[int, ...] = ()
    num_position_embeddings: int = 256


#: Fields that mean the same in these configs and in Hugging Face's Qwen-VL vision / text configs
#: (one list for both directions: building a backbone and importing a checkpoint).
HF_VISION_FIELDS = (
    "depth",
    "hidden_size",
    "intermediate_size",
    "num_heads",
    "patch_size",
    "spatial_merge_size",
    "temporal_patch_size",
)
HF_TEXT_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rms_norm_eps",
    "max_position_embeddings",
)


@dataclass
class TextConfig:
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    rope_theta: float = 1_000_000.0
    mrope_section: tuple[int, ...] = (4, 6, 6)  # sums to head_dim / 2
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = True


@dataclass
class ActionConfig:
    """Cross-embodiment actions: a fixed template with a DoF mask; chunks of `horizon` steps."""

    template_dim: int = 20  # WALL-OSS: two arms x (EE xyz + rot 3 + gripper), head, lift, base
    horizon: int = 32
    expert_intermediate_size: int = (
        64  # the action expert's FFN width (VL expert uses text.intermediate_size)
    )
    attention: Literal["bidirectional", "causal"] = "bidirectional"
    flow_steps: int = 10
    time_beta_alpha: float = 1.5  # t = (0.999 - Beta(1.5, 1)) / 0.999 puts more weight near noise
    time_beta_beta: float = 1.0
    num_fast_tokens: int = 1024
    # --- GEM (issue #4): GEM-VLA's DiT action expert as an alternative to the split-FFN one ---
    expert: Literal["in-backbone", "gem-dit"] = "in-backbone"
    dit: ActionDiTConfig = field(default_factory=ActionDiTConfig)  # used when expert="gem-dit"


#: Linear layers of the language model that LoRA adapts by default: attention and the
#: vision-language expert's FFN (the action expert, heads and proprio train fully instead).
LORA_TARGETS = (
    r".*language_model\.layers\.\d+\."
    r"(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.vl\.(gate_proj|up_proj|down_proj))"
)


@dataclass
class LoraSettings:
    """Low-rank adapters (PEFT's LoRA) on the backbone's language model; see ``models/lora.py``."""

    rank: int = 16
    alpha: float = 32.0
    """Scale numerator: the adapter's update is scaled by alpha / rank."""
    dropout: float = 0.0
    targets: str = LORA_TARGETS
    """Regex over module names inside the Hugging Face backbone (a full match, as PEFT does)."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    name: str = "tiny"
    backbone: Backbone = "qwen2.5-vl"
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    image_size: int = 64  # images are resized to image_size x image_size before patching
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"text": 1.0, "fast": 1.0, "flow": 1.0, "depth": 0.1}
    )
    depth: DepthConfig | None = None  # GEM's depth supervision (issue #4); None = off
    lora: LoraSettings | None = None  # LoRA adapters on the backbone; None = full weights
    scene_dims: int = 0
    """Values the training-only scene head regresses (``models/scene_head.py``); 0 = no head."""
    scene_readout: Literal["actions", "propri"] = "actions"
    """Where the scene head reads: the mean of the action tokens' states, or the <|propri|> token."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        data = dict(data)
        vision = VisionConfig(**_tuples(data.pop("vision", {})))
        text = TextConfig(**_tuples(data.pop("text", {})))
        action = dict(data.pop("action", {}))
        # --- GEM (issue #4): nested configs ---
        action["dit"] = ActionDiTConfig.from_dict(action.get("dit") or {})
        depth = data.pop("depth", None)
        data["depth"] = None if depth is None else DepthConfig.from_dict(depth)
        # ---
        lora = data.pop("lora", None)
        data["lora"] = None if lora is None else LoraSettings(**lora)
        action = ActionConfig(**action)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config: unknown field(s) {sorted(unknown)}")
        return cls(vision=vision, text=text, action=action, **data)

    def validate(self) -> None:
        t = self.text
        if sum(t.mrope_section) * 2 != t.head_dim:
            raise ValueError(
                f"text.mrope_section {t.mrope_section} must sum to head_dim/2 = {t.head_dim // 2}"
            )
        if t.num_attention_heads % t.num_key_value_heads:
            raise ValueError("text.num_attention_heads must be a multiple of num_key_value_heads")
        unit = self.vision.patch_size * self.vision.spatial_merge_size
        if self.image_size % unit:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch x merge = {unit}"
            )
        if self.depth is not None:  # GEM (issue #4)
            self.depth.validate()


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _tiny() -> ModelConfig:
    # ~3M parameters: a CPU training step at batch 8 stays far under a second. 64 px views at
    # patch 8 with 2x2 merging give 16 tokens per view.
    return ModelConfig(
        name="tiny",
        vision=VisionConfig(depth=2, hidden_size=96, intermediate_size=256, num_heads=3),
        text=TextConfig(
            hidden_size=192,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=6,
            num_key_value_heads=2,
            head_dim=32,
        ),
        action=ActionConfig(expert_intermediate_size=128),
        image_size=64,
    )


def _tiny_qwen3() -> ModelConfig:
    # The tiny preset on GEM's backbone family (Qwen3-VL: deepstack, interleaved M-RoPE).
    cfg = _tiny()
    cfg.name, cfg.backbone = "tiny-qwen3", "qwen3-vl"
    cfg.vision.deepstack_visual_indexes, cfg.vision.num_position_embeddings = (0,), 64
    return cfg


def _small() -> ModelConfig:
    return ModelConfig(
        name="small",
        vision=VisionConfig(
            depth=4,
            hidden_size=192,
            intermediate_size=512,
            num_heads=3,
            patch_size=8,
            window_size=64,
            fullatt_block_indexes=(1, 3),
        ),
        text=TextConfig(
            hidden_size=384,
            intermediate_size=1024,
            num_hidden_layers=6,
            num_attention_heads=6,
            num_key_value_heads=2,
            head_dim=64,
            mrope_section=(8, 12, 12),
        ),
        action=ActionConfig(expert_intermediate_size=256),
        image_size=128,
    )


def _wall_oss_3b() -> ModelConfig:
    # Qwen2.5-VL-3B shapes (WALL-OSS's backbone) plus an action expert of FFN 2048 in every layer.
    return ModelConfig(
        name="wall-oss-3b",
        backbone="qwen2.5-vl",
        vision=VisionConfig(
            depth=32,
            hidden_size=1280,
            intermediate_size=3420,
            num_heads=16,
            patch_size=14,
            window_size=112,
            fullatt_block_indexes=(7, 15, 23, 31),
        ),
        text=TextConfig(
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            head_dim=128,
            rope_theta=1_000_000.0,
            mrope_section=(16, 24, 24),
            max_position_embeddings=128_000,
            tie_word_embeddings=True,
        ),
        action=ActionConfig(expert_intermediate_size=2048),
        image_size=224,
    )


def _gem_2b() -> ModelConfig:
    # Qwen3-VL-2B shapes (GEM's backbone).
    return ModelConfig(
        name="gem-2b",
        backbone="qwen3-vl",
        vision=VisionConfig(
            depth=24,
            hidden_size=1024,
            intermediate_size=4096,
            num_heads=16,
            patch_size=16,
            deepstack_visual_indexes=(5, 11, 17),
            num_position_embeddings=2304,
        ),
        text=TextConfig(
            hidden_size=2048,
            intermediate_size=6144,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            rope_theta=5_000_000.0,
            mrope_section=(24, 20, 20),
            max_position_embeddings=128_000,
            tie_word_embeddings=True,
        ),
        action=ActionConfig(expert_intermediate_size=2048),
        image_size=224,
    )


PRESETS = {
    "tiny": _tiny,
    "tiny-qwen3": _tiny_qwen3,
    "small": _small,
    "wall-oss-3b": _wall_oss_3b,
    "gem-2b": _gem_2b,
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    cfg.validate()
    return cfg
