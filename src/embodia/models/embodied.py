"""EmbodiedModel: one Qwen-VL backbone that reads images, state and language and produces text,
subtasks and actions (WALL-OSS's tightly coupled design).

Parts, each in its own file: the backbone (``backbone.py``), the split-FFN action expert
(``split_ffn.py``), the flow-matching head (``flow_head.py``), the FAST action tokenizer
(``fast_tokenizer.py``), the Uni-CoT sequence builder (``sequence.py``) and its attention masks
(``attention.py``). This file builds the model from them, embeds a batch (images, text,
proprioception, noisy actions) and computes the training losses (``compute_loss``); the calls of
inference (``sample_actions``, ``generate_text``, ``generate_depth``) are in ``inference.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from embodia.configs.model import ModelConfig, preset
from embodia.models.action_space import TEMPLATE_DIM
from embodia.models.attention import (
    ACTION,
    PAD,
    for_implementation,
    sequence_mask,
)
from embodia.models.backbone import QwenVLBackbone
from embodia.models.flow import interpolate, sample_time
from embodia.models.flow_head import FlowActionHead, flow_loss
from embodia.models.inference import InferenceMixin
from embodia.models.sequence import (
    IGNORE,
    Built,
    DropConfig,
    EmbodiedSample,
    SequenceBuilder,
    collate,
)
from embodia.models.split_ffn import install_action_expert
from embodia.models.text_tokenizer import load_preset_tokenizer, special_ids
from embodia.utils.fs import atomic_dir

if TYPE_CHECKING:
    from embodia.configs.depth import DepthConfig

CONFIG_FILE = "embodia_config.json"
WEIGHTS_FILE = "model.safetensors"
FAST_DIR = "fast_tokenizer"


def build_image_processor(cfg: ModelConfig) -> Qwen2VLImageProcessorPil:
    """A local image processor for a preset (no hub, no torchvision: the PIL variant)."""
    pixels = cfg.image_size * cfg.image_size
    mean_std = (
        {"image_mean": [0.5] * 3, "image_std": [0.5] * 3} if cfg.backbone == "qwen3-vl" else {}
    )
    return Qwen2VLImageProcessorPil(
        patch_size=cfg.vision.patch_size,
        merge_size=cfg.vision.spatial_merge_size,
        temporal_patch_size=cfg.vision.temporal_patch_size,
        size={"shortest_edge": pixels, "longest_edge": pixels},
        **mean_std,
    )


class EmbodiedModel(InferenceMixin, nn.Module):
    def __init__(
        self,
        cfg: ModelConfig,
        tokenizer=None,
        image_processor=None,
        backbone: QwenVLBackbone | None = None,
        fast_tokenizer=None,
    ) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.tokenizer = tokenizer or load_preset_tokenizer(cfg.action.num_fast_tokens)
        self.special = special_ids(self.tokenizer)
        self.image_processor = image_processor or build_image_processor(cfg)
        self.fast_tokenizer = fast_tokenizer
        sp = self.special
        self.backbone = backbone or QwenVLBackbone.from_config(cfg, len(self.tokenizer), sp)
        hidden = self.backbone.hidden_size
        in_backbone = cfg.action.expert == "in-backbone"  # GEM-VLA's "gem-dit" brings its own
        if in_backbone:
            install_action_expert(
                self.backbone.decoder_layers,
                hidden,
                cfg.action.expert_intermediate_size,
            )
        self.proprio = nn.Linear(2 * TEMPLATE_DIM, hidden)
        self.flow = FlowActionHead(TEMPLATE_DIM, hidden) if in_backbone else None
        unit = cfg.vision.patch_size * cfg.vision.spatial_merge_size
        self.tokens_per_image = (cfg.image_size // unit) ** 2
        self.builder = SequenceBuilder(
            self.tokenizer, sp, self.tokens_per_image, cfg.action.horizon
        )
        # Extra objectives that read the same forward pass (GEM's depth generator plugs in here):
        # each module's ``compute_loss(model, batch, hidden) -> dict[str, Tensor]``.
        self.aux_heads = nn.ModuleDict()
        # --- GEM (issue #4): depth supervision and GEM-VLA's DiT action expert ---
        if cfg.depth is not None and cfg.depth.objective != "none":
            self.add_depth_head(cfg.depth)
        if not in_backbone:
            from embodia.models.depth.action_dit import GemActionExpert

            self.aux_heads["action"] = GemActionExpert(
                cfg.action.dit, self.backbone, TEMPLATE_DIM, cfg.action.horizon
            )
        # ---
        if cfg.scene_dims:
            self.add_scene_head(cfg.scene_dims, cfg.scene_readout)
        if cfg.lora is not None:  # a checkpoint trained with adapters: the same layers first
            from embodia.models.lora import inject

            inject(self, cfg.lora)

    def add_depth_head(self, depth: DepthConfig) -> None:
        """GEM's auxiliary head on this model's final visual tokens (also on a loaded or
        imported backbone that has none yet: GEM starts from a pretrained Qwen VLM)."""
        from embodia.models.depth.head import DepthHead

        if "depth" in self.aux_heads:
            raise ValueError("the model already has a depth head")
        unit = self.cfg.vision.patch_size * self.cfg.vision.spatial_merge_size
        head = DepthHead(depth, self.backbone.hidden_size, self.cfg.image_size, unit)
        self.aux_heads["depth"] = head.to(self.device)
        self.cfg.depth = depth

    def add_scene_head(self, dims: int, readout: str = "actions") -> None:
        """The training-only scene-state objective (``models/scene_head.py``), also on a loaded
        checkpoint that has none yet (``train --init ... --scene-key``)."""
        from embodia.models.scene_head import SceneHead

        if "scene" in self.aux_heads:
            head = self.aux_heads["scene"]
            if (head.dims, head.readout) != (dims, readout):
                raise ValueError(
                    f"the model's scene head reads {head.dims} values at {head.readout!r}, "
                    f"not {dims} at {readout!r}"
                )
            return
        head = SceneHead(self.backbone.hidden_size, dims, readout)
        self.aux_heads["scene"] = head.to(self.device)
        self.cfg.scene_dims, self.cfg.scene_readout = dims, readout

    @classmethod
    def from_preset(cls, name: str, fast_tokenizer=None) -> EmbodiedModel:
        return cls(preset(name), fast_tokenizer=fast_tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # ------------------------------------------------------------------ batching

    def collate(
        self,
        samples: list[EmbodiedSample],
        rng: np.random.Generator | None = None,
        drop: DropConfig | None = None,
        left_pad: bool = False,
        built: list[Built] | None = None,
    ) -> dict[str, torch.Tensor]:
        built = built or [self.builder.build(s, rng, drop) for s in samples]
        batch = collate(
            samples,
            built,
            self.image_processor,
            self.cfg.image_size,
            TEMPLATE_DIM,
            self.cfg.action.horizon,
            self.special.pad,
            left_pad=left_pad,
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    # ------------------------------------------------------------------ forward

    def _embed(self, batch: dict, noisy: torch.Tensor | None, t: torch.Tensor | None):
        ids, kinds = batch["input_ids"], batch["kinds"]
        emb = self.backbone.embed_tokens(ids)
        image_mask = ids == self.special.image_pad
        deepstack = None
        if "pixel_values" in batch and bool(image_mask.any()):
            vf = self.backbone.vision(batch["pixel_values"].to(emb.dtype), batch["image_grid_thw"])
            if vf.embeds.shape[0] != int(image_mask.sum()):
                raise ValueError(
                    f"{int(image_mask.sum())} image tokens but {vf.embeds.shape[0]} vision embeddings"
                )
            emb = emb.masked_scatter(image_mask[..., None], vf.embeds.to(emb.dtype))
            deepstack = vf.deepstack
        propri = ids == self.special.propri
        if bool(propri.any()):
            rows = propri.nonzero()[:, 0]
            feats = torch.cat([batch["state"], batch["dof_mask"].to(batch["state"].dtype)], dim=-1)
            emb = emb.clone()
            emb[propri] = self.proprio(feats.to(emb.dtype))[rows]
        action = kinds == ACTION
        if noisy is not None and bool(action.any()):
            has = action.any(dim=1)
            tokens = self.flow.embed(noisy[has], batch["dof_mask"][has], t[has]).to(emb.dtype)
            emb = emb.clone()
            emb[action] = tokens.reshape(-1, tokens.shape[-1])
        return emb, (image_mask if bool(image_mask.any()) else None), deepstack

    def _mask(self, mask: torch.Tensor) -> torch.Tensor:
        return for_implementation(mask, self.cfg.attn_implementation, self.dtype)

    def _route(self, action_mask: torch.Tensor) -> torch.Tensor | None:
        """The routing mask for the backbone's split FFNs; None where the layers have no action
        expert (GEM-VLA's DiT expert scores the actions outside the backbone)."""
        return action_mask if self.flow is not None else None

    def _positions(self, batch: dict) -> torch.Tensor:
        return self.backbone.positions(
            batch["input_ids"], batch.get("image_grid_thw"), (batch["kinds"] != PAD).long()
        )

    def hidden_states(
        self, batch: dict, noisy: torch.Tensor | None = None, t: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final-layer hidden states of the whole sequence (B, S, hidden)."""
        emb, image_mask, deepstack = self._embed(batch, noisy, t)
        mask = self._mask(sequence_mask(batch["kinds"], self.cfg.action.attention))
        hidden, _ = self.backbone.decode(
            emb,
            mask,
            self._positions(batch),
            visual_pos_masks=image_mask,
            deepstack=deepstack,
            action_mask=self._route(batch["kinds"] == ACTION),
        )
        return hidden

    def forward(
        self, batch: dict, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``compute_loss``: going through ``forward`` lets DDP / FSDP wrappers see the call."""
        return self.compute_loss(batch, generator)

    def compute_loss(
        self, batch: dict, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Every objective present in the batch, named, plus ``loss``: their weighted sum."""
        kinds = batch["kinds"]
        has_flow = (kinds == ACTION).any(dim=1)
        if self.flow is None:  # GEM-VLA: the DiT expert (an aux head) scores the actions
            has_flow = torch.zeros_like(has_flow)
        noisy = t = target = None
        if bool(has_flow.any()):
            actions = batch["actions"].to(self.dtype)
            if "flow_t" in batch:  # drawn per sample by the data loader: same on any world size
                t, eps = batch["flow_t"].to(self.dtype), batch["flow_noise"].to(self.dtype)
            else:
                t = sample_time(
                    actions.shape[0],
                    self.cfg.action.time_beta_alpha,
                    self.cfg.action.time_beta_beta,
                    generator,
                    self.device,
                ).to(self.dtype)
                eps = torch.randn(actions.shape, generator=generator).to(self.device, self.dtype)
            noisy, target = interpolate(eps, actions, t)
        hidden = self.hidden_states(batch, noisy, t)
        losses: dict[str, torch.Tensor] = {}
        labels = batch["labels"][:, 1:]
        sel = labels != IGNORE
        if bool(sel.any()):
            logits = self.backbone.lm_head(hidden[:, :-1][sel]).float()
            tgt = labels[sel]
            is_fast = (tgt >= self.special.fast_start) & (
                tgt < self.special.fast_start + self.special.num_fast
            )
            if bool((~is_fast).any()):
                losses["text"] = F.cross_entropy(logits[~is_fast], tgt[~is_fast])
            if bool(is_fast.any()):
                losses["fast"] = F.cross_entropy(logits[is_fast], tgt[is_fast])
        if noisy is not None:
            h = self.cfg.action.horizon
            act_hidden = hidden[kinds == ACTION].reshape(-1, h, hidden.shape[-1])
            pred = self.flow.velocity(act_hidden).float()
            losses["flow"] = flow_loss(pred, target[has_flow].float(), batch["dof_mask"][has_flow])
        for head in self.aux_heads.values():
            losses.update(head.compute_loss(self, batch, hidden))
        weights = self.cfg.loss_weights
        losses["loss"] = sum(weights.get(k, 1.0) * v for k, v in losses.items())
        return losses

    # ------------------------------------------------------------------ persistence

    def save_pretrained(self, directory: str | Path) -> Path:
        """Weights (safetensors), config, tokenizer, image processor (and FAST tokenizer), atomically."""
        from safetensors.torch import save_model

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            save_model(self, str(tmp / WEIGHTS_FILE))
            meta = {"model": self.cfg.to_dict(), "fast_slots": getattr(self, "_fast_slots", None)}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
            self.tokenizer.save_pretrained(tmp)
            self.image_processor.save_pretrained(tmp)
            if self.fast_tokenizer is not None:
                self.fast_tokenizer.save(tmp / FAST_DIR)
            if self.cfg.lora is not None:
                from embodia.models.lora import save_adapter

                save_adapter(self, tmp)
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, map_location: str = "cpu", image_size: int | None = None
    ) -> EmbodiedModel:
        """Load an embodia checkpoint, or import a Hugging Face Qwen2.5-VL / Qwen3-VL checkpoint.

        Everything is read from ``directory``; nothing is downloaded. ``image_size`` sets the
        square input resolution of an imported backbone (default: 8 x 8 merged patches, 64 tokens).
        """
        from embodia.models.checkpoint import (
            load_embodia_checkpoint,
            load_qwen_checkpoint,
            resolve_checkpoint,
        )

        directory = resolve_checkpoint(directory)
        if (directory / CONFIG_FILE).exists():
            return load_embodia_checkpoint(cls, directory, map_location)
        if (directory / "config.json").exists():
            return load_qwen_checkpoint(cls, directory, image_size=image_size)
        raise FileNotFoundError(
            f"{directory}: neither an embodia checkpoint ({CONFIG_FILE}) nor a "
            "Hugging Face model (config.json)"
        )
