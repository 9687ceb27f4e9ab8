"""EmbodiedModel: one Qwen-VL backbone that reads images, state and language and produces text,
subtasks and actions (WALL-OSS's tightly coupled design).

Parts, each in its own file: the backbone (``backbone.py``), the split-FFN action expert
(``split_ffn.py``), the flow-matching head (``flow_head.py``), the FAST action tokenizer
(``fast_tokenizer.py``), the Uni-CoT sequence builder (``sequence.py``) and its attention masks
(``attention.py``). This file composes them behind the three calls users need:
``compute_loss``, ``sample_actions`` and ``generate_text``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import DynamicCache
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from embodia.configs.model import ModelConfig, preset
from embodia.models.action_space import TEMPLATE_DIM
from embodia.models.attention import (
    ACTION,
    PAD,
    TEXT,
    action_query_mask,
    for_implementation,
    sequence_mask,
)
from embodia.models.backbone import QwenVLBackbone
from embodia.models.flow import euler, interpolate, sample_time
from embodia.models.flow_head import FlowActionHead, flow_loss
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

CONFIG_FILE = "embodia_config.json"
WEIGHTS_FILE = "model.safetensors"
FAST_DIR = "fast_tokenizer"


@dataclass
class _Decoded:
    """What greedy decoding leaves: the ids per sample and, for a flow prefix, its KV cache with
    the kind of every cached key (PAD = not to be attended), each sample's next position and the
    batch's DOF mask."""

    ids: list[list[int]]
    cache: DynamicCache
    key_kinds: torch.Tensor
    next_pos: torch.Tensor
    dof_mask: torch.Tensor


@dataclass
class ActionOutput:
    actions: torch.Tensor  # (B, H, template_dim), normalised template space
    text: list[str]  # generated chain-of-thought (empty when the levels had none)
    valid: list[bool]  # FAST: whether the decoded token sequence was well formed


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


class EmbodiedModel(nn.Module):
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
            from embodia.models.depth.head import DepthHead

            self.aux_heads["depth"] = DepthHead(cfg.depth, hidden, cfg.image_size, unit)
        if not in_backbone:
            from embodia.models.depth.action_dit import GemActionExpert

            self.aux_heads["action"] = GemActionExpert(
                cfg.action.dit, self.backbone, TEMPLATE_DIM, cfg.action.horizon
            )
        # ---

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

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def generate_text(
        self,
        samples: list[EmbodiedSample],
        levels: list[str] | None = None,
        max_new_tokens: int = 64,
    ) -> list[list[int]]:
        """Greedy decoding of the assistant turn until <|im_end|> (ids without it).

        ``levels`` ("reasoning", "subtask", "actions") is what the prompt asks for; text-mode
        samples (VQA) ignore it. The prompt is encoded once and its KV cache reused per token.
        """
        return self._greedy(samples, levels or ["actions"], max_new_tokens).ids

    def _greedy(
        self, samples: list[EmbodiedSample], levels: list[str], max_new_tokens: int, close=False
    ) -> _Decoded:
        """Greedy decoding with one KV cache for the batch. With ``close`` every sample's turn is
        also fed up to and including its <|im_end|> (one forced at the budget), so the cache
        then holds exactly the flow prefix ``prompt + chain of thought + <|im_end|>`` of
        training, and the action queries can attend to it without encoding the prompt again.
        Keys fed after a sample's turn has closed are marked PAD, so nothing attends to them."""
        built = [self.builder.prompt(s, levels) for s in samples]
        batch = self.collate(samples, left_pad=True, built=built)
        emb, image_mask, deepstack = self._embed(batch, None, None)
        key_kinds = batch["kinds"]
        positions = self._positions(batch)
        hidden, cache = self.backbone.decode(
            emb,
            self._mask(sequence_mask(key_kinds)),
            positions,
            cache=DynamicCache(),
            use_cache=True,
            visual_pos_masks=image_mask,
            deepstack=deepstack,
        )
        b = len(samples)
        next_pos = positions.amax(dim=(0, 2)) + 1  # (B,)
        out: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        last = hidden[:, -1]

        def feed(token: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
            nonlocal key_kinds, cache, next_pos
            key_kinds = torch.cat([key_kinds, torch.where(valid, TEXT, PAD)[:, None]], 1)
            pos = next_pos[None, :, None].expand(3, b, 1)
            hidden, cache = self.backbone.decode(
                self.backbone.embed_tokens(token[:, None]),
                self._mask((key_kinds != PAD)[:, None, None, :]),
                pos,
                cache=cache,
                use_cache=True,
            )
            next_pos = next_pos + valid.long()
            return hidden[:, -1]

        for _ in range(max_new_tokens):
            token = self.backbone.lm_head(last).argmax(dim=-1)
            live = ~done
            for i in range(b):
                if live[i]:
                    if int(token[i]) == self.special.im_end:
                        done[i] = True
                    else:
                        out[i].append(int(token[i]))
            if bool(done.all()) and not close:
                break
            last = feed(torch.where(live, token, self.special.pad), live)
            if bool(done.all()):
                break
        if close and not bool(done.all()):  # out of budget: close the open turns as training does
            im_end = torch.full((b,), self.special.im_end, device=self.device)
            feed(torch.where(done, self.special.pad, im_end), ~done)
        return _Decoded(out, cache, key_kinds, next_pos, batch["dof_mask"])

    @torch.no_grad()
    def generate_depth(
        self,
        samples_or_batch,
        guidance: float | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ):
        """GEM: each input image's depth map (metres), generated from its own visual tokens.

        Classifier-free guidance and Euler steps default to ``cfg.depth`` (5.0, 30); returns a
        ``DepthOutput`` (see ``embodia.models.depth.head``). Needs ``cfg.depth`` (issue #4).
        """
        if "depth" not in self.aux_heads:
            raise ValueError("this model has no depth head (set ModelConfig.depth)")
        return self.aux_heads["depth"].generate(self, samples_or_batch, guidance, steps, generator)

    def decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    @torch.no_grad()
    def sample_actions(
        self,
        samples: list[EmbodiedSample],
        mode: str = "flow",
        levels: list[str] | None = None,
        steps: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        max_cot_tokens: int = 96,
        noise: torch.Tensor | None = None,
    ) -> ActionOutput:
        """An action chunk per sample, in normalised template space.

        ``levels`` chooses Uni-CoT: ["actions"] goes straight from the instruction to actions;
        ["reasoning", "subtask", "actions"] generates those first, in the same call.
        Flow: the prefix (images, text, state, chain of thought) is encoded once and its KV cache
        reused by every Euler step (``use_cache=False`` re-runs the whole model each step, for
        checking). FAST: tokens are decoded greedily and mapped back through the FAST tokenizer.
        ``noise`` (B, H, template dim) is the flow's starting point; without it, it is drawn from
        ``generator``. Passing it per sample makes a chunk independent of what else is batched.
        """
        levels = levels or ["actions"]
        if mode not in ("flow", "fast"):
            raise ValueError(f"mode must be 'flow' or 'fast', not {mode!r}")
        # the prompt names the head that answers (models/sequence.py)
        samples = [s if s.mode == mode else replace(s, mode=mode) for s in samples]
        shape = (len(samples), self.cfg.action.horizon, TEMPLATE_DIM)
        if noise is None:
            noise = torch.randn(shape, generator=generator)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        if mode == "fast":
            budget = max_cot_tokens + self.cfg.action.horizon * TEMPLATE_DIM
            return self._fast_from_ids(self.generate_text(samples, levels, max_new_tokens=budget))
        cot = levels != ["actions"]
        # with chain of thought and the flow expert, the decoding's own cache is the flow prefix
        reuse = cot and use_cache and self.flow is not None
        decoded = self._greedy(samples, levels, max_cot_tokens, close=reuse) if cot else None
        cot_ids = decoded.ids if decoded is not None else [[] for _ in samples]
        text = [self.decode_text(ids) for ids in cot_ids]
        if self.flow is None:  # GEM-VLA's DiT expert (issue #4)
            batch = self._flow_batch(samples, levels, cot_ids)
            actions = self.aux_heads["action"].sample(self, batch, noise, steps)
            return ActionOutput(actions, text, [True] * len(samples))
        if reuse:
            actions = self._denoise(
                decoded.cache, decoded.key_kinds, decoded.next_pos, decoded.dof_mask, noise, steps
            )
        else:
            actions = self._flow(samples, levels, cot_ids, steps, use_cache, noise)
        return ActionOutput(actions, text, [True] * len(samples))

    def _flow_batch(self, samples, levels, cot_ids) -> dict:
        built = []
        h = self.cfg.action.horizon
        for s, extra in zip(samples, cot_ids, strict=True):
            b = self.builder.prompt(s, levels)
            ids = [*extra, self.special.im_end]
            b.input_ids += ids + [self.special.action] * h
            b.labels += [IGNORE] * (len(ids) + h)
            b.kinds += [TEXT] * len(ids) + [ACTION] * h
            built.append(b)
        return self.collate(samples, left_pad=True, built=built)

    def _flow(self, samples, levels, cot_ids, steps, use_cache, noise) -> torch.Tensor:
        """Flow sampling from a freshly encoded prefix (``use_cache=False``: the whole sequence
        again at every Euler step, the reference the cached paths are checked against)."""
        batch = self._flow_batch(samples, levels, cot_ids)
        h = self.cfg.action.horizon
        dof = batch["dof_mask"]
        if not use_cache:

            def rerun(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return self.flow.velocity(self.hidden_states(batch, x, t)[:, -h:])

            x = euler(rerun, noise.to(self.device, self.dtype), steps or self.cfg.action.flow_steps)
            return x * dof[:, None, :].to(x.dtype)
        positions = self._positions(batch)
        prefix = {
            k: v[:, :-h] if k in ("input_ids", "labels", "kinds") else v for k, v in batch.items()
        }
        emb, image_mask, deepstack = self._embed(prefix, None, None)
        _, cache = self.backbone.decode(
            emb,
            self._mask(sequence_mask(prefix["kinds"])),
            positions[..., :-h],
            cache=DynamicCache(),
            use_cache=True,
            visual_pos_masks=image_mask,
            deepstack=deepstack,
        )
        next_pos = positions[0, :, -h]
        return self._denoise(cache, prefix["kinds"], next_pos, dof, noise, steps)

    def _denoise(self, cache, key_kinds, next_pos, dof, noise, steps) -> torch.Tensor:
        """The flow's Euler loop over a cached prefix: H action queries at positions
        ``next_pos + 0..H-1`` attend to the prefix's valid keys and to each other; each step's
        action keys are cropped off again, so every step sees the prefix alone."""
        b, h = dof.shape[0], self.cfg.action.horizon
        mask = self._mask(action_query_mask(key_kinds, h, self.cfg.action.attention))
        offsets = torch.arange(h, device=self.device)
        action_pos = (next_pos[:, None] + offsets[None])[None].expand(3, b, h)

        def cached(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            hidden, _ = self.backbone.decode(
                self.flow.embed(x, dof, t),
                mask,
                action_pos,
                cache=cache,
                use_cache=True,
                action_mask=all_actions,
            )
            cache.crop(-h)  # drop this step's action keys: the next step sees only the prefix
            return self.flow.velocity(hidden)

        all_actions = torch.ones(b, h, dtype=torch.bool, device=self.device)
        x = euler(cached, noise.to(self.device, self.dtype), steps or self.cfg.action.flow_steps)
        return x * dof[:, None, :].to(x.dtype)

    def _fast_from_ids(self, generated: list[list[int]]) -> ActionOutput:
        if self.fast_tokenizer is None:
            raise ValueError("FAST decoding needs a fitted FAST tokenizer (embodia tokenizer fit)")
        sp = self.special
        actions, texts, valid = [], [], []
        for ids in generated:
            fast = [
                i - sp.fast_start for i in ids if sp.fast_start <= i < sp.fast_start + sp.num_fast
            ]
            first = next(
                (n for n, i in enumerate(ids) if sp.fast_start <= i < sp.fast_start + sp.num_fast),
                len(ids),
            )
            texts.append(self.decode_text(ids[:first]))
            chunk, ok = self._decode_fast(fast)
            actions.append(chunk)
            valid.append(ok)
        return ActionOutput(torch.stack(actions).to(self.device), texts, valid)

    def _decode_fast(self, fast_ids: list[int]) -> tuple[torch.Tensor, bool]:
        """FAST ids -> (H, template_dim); the tokenizer's own dims fill the first slots it names."""
        result = self.fast_tokenizer.decode_checked(fast_ids)
        chunk, ok = torch.as_tensor(result.actions, dtype=torch.float32), result.valid
        out = torch.zeros(self.cfg.action.horizon, TEMPLATE_DIM)
        slots = torch.as_tensor(self.fast_slots, dtype=torch.long)
        hh = min(self.cfg.action.horizon, chunk.shape[0])
        out[:hh, slots] = chunk[:hh, : len(slots)]
        return out, bool(ok)

    @property
    def fast_slots(self) -> list[int]:
        """Template indices the FAST tokenizer's action dims map to (set with the embodiment)."""
        return getattr(self, "_fast_slots", list(range(self.fast_tokenizer.config.action_dim)))

    @fast_slots.setter
    def fast_slots(self, slots: list[int]) -> None:
        self._fast_slots = [int(s) for s in slots]

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
