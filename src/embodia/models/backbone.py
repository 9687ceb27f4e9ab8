"""The Qwen-VL backbone: Hugging Face's Qwen2.5-VL (WALL-OSS) or Qwen3-VL (GEM) classes.

embodia drives the backbone's parts itself (vision tower, token embeddings, M-RoPE positions,
decoder stack, LM head) instead of calling the model's own forward, because it writes extra
embeddings into the sequence (proprioception, noisy actions), routes tokens between the two FFN
experts, and needs its own attention masks and prefix cache. :class:`QwenVLBackbone` hides the
differences between the two families behind one small interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from embodia.configs.model import HF_TEXT_FIELDS, HF_VISION_FIELDS, ModelConfig
from embodia.models.split_ffn import has_action_expert
from embodia.models.text_tokenizer import SpecialIds


@dataclass
class VisionFeatures:
    """Vision-token embeddings of every image in a batch, in sequence order."""

    embeds: torch.Tensor  # (total vision tokens, hidden)
    deepstack: list[torch.Tensor] | None = None  # Qwen3-VL: per early decoder layer, same rows


def hf_config(
    cfg: ModelConfig, vocab_size: int, special: SpecialIds
) -> Qwen2_5_VLConfig | Qwen3VLConfig:
    """The Hugging Face config for ``cfg`` with embodia's tokenizer's vocabulary and special ids."""
    v, t = cfg.vision, cfg.text
    text = dict(
        {f: getattr(t, f) for f in HF_TEXT_FIELDS},
        vocab_size=vocab_size,
        head_dim=t.head_dim,
        tie_word_embeddings=t.tie_word_embeddings,
        pad_token_id=special.pad,
        eos_token_id=special.eos,
        bos_token_id=None,
    )
    ids = dict(
        image_token_id=special.image_pad,
        video_token_id=special.video_pad,
        vision_start_token_id=special.vision_start,
        vision_end_token_id=special.vision_end,
        tie_word_embeddings=t.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=special.eos,
        pad_token_id=special.pad,
    )
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": t.rope_theta,
        "mrope_section": list(t.mrope_section),
    }
    vision = dict({f: getattr(v, f) for f in HF_VISION_FIELDS}, out_hidden_size=t.hidden_size)
    if cfg.backbone == "qwen2.5-vl":
        vision.update(
            window_size=v.window_size, fullatt_block_indexes=list(v.fullatt_block_indexes)
        )
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    else:
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(
            deepstack_visual_indexes=list(v.deepstack_visual_indexes),
            num_position_embeddings=v.num_position_embeddings,
        )
        config = Qwen3VLConfig(text_config=text, vision_config=vision, **ids)
    config._attn_implementation = cfg.attn_implementation
    config.text_config._attn_implementation = cfg.attn_implementation
    config.vision_config._attn_implementation = cfg.attn_implementation
    return config


class QwenVLBackbone(nn.Module):
    """A Qwen2.5-VL or Qwen3-VL conditional-generation model, driven part by part."""

    def __init__(
        self, hf_model: Qwen2_5_VLForConditionalGeneration | Qwen3VLForConditionalGeneration
    ):
        super().__init__()
        self.hf = hf_model
        self.is_qwen3 = isinstance(hf_model, Qwen3VLForConditionalGeneration)

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, special: SpecialIds) -> QwenVLBackbone:
        config = hf_config(cfg, vocab_size, special)
        model_cls = (
            Qwen3VLForConditionalGeneration
            if cfg.backbone == "qwen3-vl"
            else Qwen2_5_VLForConditionalGeneration
        )
        return cls(model_cls(config))

    @property
    def config(self):
        return self.hf.config

    @property
    def language_model(self) -> nn.Module:
        return self.hf.model.language_model

    @property
    def decoder_layers(self) -> nn.ModuleList:
        return self.language_model.layers

    @property
    def hidden_size(self) -> int:
        return self.hf.config.text_config.hidden_size

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.embed_tokens(input_ids)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.hf.lm_head(hidden)

    def vision(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> VisionFeatures:
        out = self.hf.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
        embeds = torch.cat(list(out.pooler_output), dim=0)
        deepstack = None
        if self.is_qwen3 and getattr(out, "deepstack_features", None):
            deepstack = [torch.cat(list(f), dim=0) for f in out.deepstack_features]
        return VisionFeatures(embeds, deepstack)

    def positions(
        self,
        input_ids: torch.Tensor,
        image_grid_thw: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """M-RoPE position ids (3, B, S); padding (attention_mask 0) gets position 0."""
        mm_types = (input_ids == self.hf.config.image_token_id).int()
        if image_grid_thw is None or not mm_types.any():
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            pos = (mask.cumsum(-1) - 1).clamp(min=0) * mask
            return pos[None].expand(3, -1, -1)
        pos, _ = self.hf.model.get_rope_index(
            input_ids, mm_types, image_grid_thw=image_grid_thw, attention_mask=attention_mask
        )
        return pos

    def decode(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache=None,
        use_cache: bool = False,
        visual_pos_masks: torch.Tensor | None = None,
        deepstack: list[torch.Tensor] | None = None,
        action_mask: torch.Tensor | None = None,
    ):
        """Run the decoder stack with a ready 4D attention mask; returns (hidden, cache).

        ``action_mask`` (B, S) bool routes those positions through the layers' action experts
        (layers split by :func:`embodia.models.split_ffn.install_action_expert`); None sends
        every token through the vision-language FFN. transformers 5 names the KV cache
        ``cache`` (``past_key_values`` is deprecated there)."""
        kwargs = {}
        if self.is_qwen3:
            kwargs = {"visual_pos_masks": visual_pos_masks, "deepstack_visual_embeds": deepstack}
            mask = attention_mask
        else:
            mask = {"full_attention": attention_mask}
        if action_mask is not None:
            if not has_action_expert(self.decoder_layers):
                raise ValueError("action_mask given, but the decoder layers have no action expert")
            kwargs["action_mask"] = action_mask
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        return out.last_hidden_state, out.cache
