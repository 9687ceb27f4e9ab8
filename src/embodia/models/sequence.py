"""Uni-CoT: one sequence builder for every mode (VQA / text, reasoning, subtask, FAST, flow).

A sample is one chat turn. The user side holds the observation (one vision block per camera), the
instruction or question, the proprioception slot and an "Output:" line naming the levels asked for;
the assistant side holds the levels that are present, in order::

    <|im_start|>user
    Observation: <|vision_start|><|image_pad|>...<|vision_end|> ...
    Instruction: put the puck on the goal
    Proprioception: <|propri|>
    Output: reasoning, subtask, FAST actions<|im_end|>     (or: ..., flow actions)
    <|im_start|>assistant
    Reasoning: ...
    Subtask: grasp the puck
    Action: <|fast_12|><|fast_7|>...<|im_end|>        (FAST target)
    ...<|im_end|><|action|> x H                        (flow target: H action slots follow)

In training, intermediate levels are dropped at random (and the "Output:" line says so), which
teaches the model to go from the instruction straight to actions or through reasoning and the
subtask first; at inference the caller picks the levels. The "Output:" line also names the action
head that answers (as wall-x's separate modes do): a flow sample closes the turn and hands over to
the action slots, a FAST sample writes "Action:" and its tokens, and the same prompt for both
would leave the model to guess which one is wanted. Labels cover the assistant side only; FAST
tokens are scored as their own loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image

from embodia.data.images import resize_depth, resize_rgb
from embodia.models.attention import ACTION, FAST, PAD, TEXT
from embodia.models.text_tokenizer import SpecialIds

Mode = Literal["text", "fast", "flow"]
#: How the "Output:" line names the actions level for each action head.
ACTION_LEVEL = {"flow": "flow actions", "fast": "FAST actions"}
IGNORE = -100
#: Distinct strings whose token ids a builder remembers (answers of VQA rows are mostly unique).
MAX_ENCODED = 4096


@dataclass
class EmbodiedSample:
    """One training or inference example, already in model space (normalised, template layout)."""

    images: list[np.ndarray]  # uint8 (H, W, 3) per camera view
    instruction: str  # the instruction, or the question for VQA
    mode: Mode = "flow"
    state: np.ndarray | None = None  # (template_dim,) normalised; None = no proprioception slot
    dof_mask: np.ndarray | None = None  # (template_dim,) bool
    reasoning: str | None = None
    subtask: str | None = None
    answer: str | None = None  # text mode: the response
    actions: np.ndarray | None = None  # (H, template_dim) normalised chunk (flow target)
    fast_ids: list[int] | None = None  # FAST indices of the chunk (fast target)
    # GEM (issue #4): per-view metric depth (H, W) float32 metres, 0 = invalid; None = no depth
    depths: list[np.ndarray | None] | None = None
    # training only: normalised object / goal coordinates (models/scene_head.py); None = none
    scene: np.ndarray | None = None


@dataclass
class Built:
    input_ids: list[int]
    labels: list[int]
    kinds: list[int]
    images: list[np.ndarray] = field(default_factory=list)


@dataclass
class DropConfig:
    """Probabilities of dropping each intermediate level when it is present (training only)."""

    reasoning: float = 0.5
    subtask: float = 0.3


class SequenceBuilder:
    """Turns :class:`EmbodiedSample` into token ids, labels and token kinds."""

    def __init__(self, tokenizer, special: SpecialIds, tokens_per_image: int, horizon: int) -> None:
        self.tok = tokenizer
        self.sp = special
        self.tokens_per_image = tokens_per_image
        self.horizon = horizon
        self._encoded: dict[str, list[int]] = {}

    def _text(self, text: str) -> list[int]:
        # Prompts repeat (a few instructions, subtasks and fixed labels per dataset): encoding
        # each string once takes a third of the collator's time off every batch after the first.
        ids = self._encoded.get(text)
        if ids is None:
            ids = self.tok.encode(text, add_special_tokens=False)
            if len(self._encoded) < MAX_ENCODED:
                self._encoded[text] = ids
        return list(ids)

    def prompt(self, sample: EmbodiedSample, levels: list[str]) -> Built:
        """The user turn and the assistant header: everything the model conditions on."""
        ids: list[int] = [self.sp.im_start, *self._text("user\nObservation:")]
        for _ in sample.images:
            ids += [*self._text(" "), self.sp.vision_start]
            ids += [self.sp.image_pad] * self.tokens_per_image
            ids += [self.sp.vision_end]
        label = "Question" if sample.mode == "text" else "Instruction"
        ids += self._text(f"\n{label}: {sample.instruction}")
        if sample.state is not None:
            ids += [*self._text("\nProprioception: "), self.sp.propri]
        if sample.mode != "text":
            named = [ACTION_LEVEL[sample.mode] if lv == "actions" else lv for lv in levels]
            ids += self._text("\nOutput: " + ", ".join(named))
        ids += [self.sp.im_end, *self._text("\n"), self.sp.im_start, *self._text("assistant\n")]
        return Built(ids, [IGNORE] * len(ids), [TEXT] * len(ids), list(sample.images))

    def levels(
        self, sample: EmbodiedSample, rng: np.random.Generator | None, drop: DropConfig | None
    ) -> list[str]:
        """The assistant-side levels present in this sample (after random dropping)."""
        if sample.mode == "text":
            return []
        out = []
        if sample.reasoning and not (rng is not None and drop and rng.random() < drop.reasoning):
            out.append("reasoning")
        if sample.subtask and not (rng is not None and drop and rng.random() < drop.subtask):
            out.append("subtask")
        out.append("actions")
        return out

    def build(
        self,
        sample: EmbodiedSample,
        rng: np.random.Generator | None = None,
        drop: DropConfig | None = None,
    ) -> Built:
        levels = self.levels(sample, rng, drop)
        seq = self.prompt(sample, levels)

        def add(ids: list[int], kind: int = TEXT, learn: bool = True) -> None:
            seq.input_ids += ids
            seq.labels += ids if learn else [IGNORE] * len(ids)
            seq.kinds += [kind] * len(ids)

        if sample.mode == "text":
            if sample.answer is None:
                raise ValueError("a text-mode sample needs an answer")
            add([*self._text(sample.answer), self.sp.im_end])
            return seq
        if "reasoning" in levels:
            add(self._text(f"Reasoning: {sample.reasoning}\n"))
        if "subtask" in levels:
            add(self._text(f"Subtask: {sample.subtask}\n"))
        if sample.mode == "fast":
            if sample.fast_ids is None:
                raise ValueError("a fast-mode sample needs fast_ids")
            add(self._text("Action: "))
            add([self.sp.fast_start + k for k in sample.fast_ids], kind=FAST)
            add([self.sp.im_end])
            return seq
        add([self.sp.im_end])
        add([self.sp.action] * self.horizon, kind=ACTION, learn=False)
        return seq


def preprocess_images(
    images: list[np.ndarray], image_processor, size: int
) -> dict[str, torch.Tensor]:
    """Resize every view to ``size`` x ``size`` and patch it with the backbone's image processor."""
    pil = []
    for img in images:
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (H, W, 3); got {arr.dtype} {arr.shape}")
        pil.append(Image.fromarray(resize_rgb(arr, size)))
    out = image_processor(images=pil, return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def collate(
    samples: list[EmbodiedSample],
    built: list[Built],
    image_processor,
    image_size: int,
    template_dim: int,
    horizon: int,
    pad_id: int,
    left_pad: bool = False,
) -> dict[str, torch.Tensor]:
    """Pad to a batch. Right padding for training; left padding for sampling (prefixes end together)."""
    length = max(len(b.input_ids) for b in built)
    n = len(built)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    kinds = torch.full((n, length), PAD, dtype=torch.long)
    for i, b in enumerate(built):
        sl = slice(length - len(b.input_ids), length) if left_pad else slice(0, len(b.input_ids))
        input_ids[i, sl] = torch.tensor(b.input_ids)
        labels[i, sl] = torch.tensor(b.labels)
        kinds[i, sl] = torch.tensor(b.kinds)
    batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "labels": labels, "kinds": kinds}
    images = [img for b in built for img in b.images]
    if images:
        batch.update(preprocess_images(images, image_processor, image_size))
    state = torch.zeros(n, template_dim)
    dof = torch.zeros(n, template_dim, dtype=torch.bool)
    actions = torch.zeros(n, horizon, template_dim)
    for i, s in enumerate(samples):
        if s.state is not None:
            state[i] = torch.as_tensor(s.state, dtype=torch.float32)
        if s.dof_mask is not None:
            dof[i] = torch.as_tensor(s.dof_mask, dtype=torch.bool)
        if s.actions is not None and s.mode == "flow":
            actions[i] = torch.as_tensor(s.actions, dtype=torch.float32)
    batch.update(state=state, dof_mask=dof, actions=actions)
    if any(s.depths is not None for s in samples):  # GEM (issue #4)
        batch["depth"] = collate_depths(samples, image_size)
    with_scene = [s.scene is not None for s in samples]
    if any(with_scene):
        dims = {len(s.scene) for s in samples if s.scene is not None}
        if len(dims) > 1:
            raise ValueError(f"scene targets of different lengths {sorted(dims)} in one batch")
        scene = torch.zeros(n, dims.pop())
        for i, s in enumerate(samples):
            if s.scene is not None:
                scene[i] = torch.as_tensor(s.scene, dtype=torch.float32)
        batch.update(scene=scene, scene_mask=torch.tensor(with_scene))
    return batch


def collate_depths(samples: list[EmbodiedSample], size: int) -> torch.Tensor:
    """(total views, size, size) float32 metres in image order; views without depth are all 0.

    Resized by nearest neighbour, so an invalid (0) pixel never blends into a valid one.
    """
    maps = []
    for s in samples:
        depths = s.depths if s.depths is not None else [None] * len(s.images)
        if len(depths) != len(s.images):
            raise ValueError(f"{len(depths)} depth maps for {len(s.images)} images")
        for d in depths:
            if d is None:
                maps.append(np.zeros((size, size), np.float32))
                continue
            arr = np.asarray(d, dtype=np.float32)
            if arr.ndim != 2:
                raise ValueError(f"depth maps must be (H, W); got {arr.shape}")
            maps.append(resize_depth(arr, size))
    return torch.from_numpy(np.stack(maps))
