"""Inference of :class:`~embodia.models.embodied.EmbodiedModel`: text, actions and depth.

Everything here runs under ``torch.no_grad`` on a trained model, and reads in the order of one
call: the prompt is built and encoded once with a KV cache (``_greedy``); for the flow head the
action queries then attend to that cache at every Euler step (``_denoise``), after decoding a chain
of thought when the levels ask for one, and FAST tokens are decoded greedily and mapped back
through the FAST tokenizer. The model class itself (``embodied.py``) builds the parts, embeds a
batch and computes the training losses; this mixin adds the calls users make at test time:
``generate_text``, ``sample_actions`` and ``generate_depth``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from transformers import DynamicCache

from embodia.models.action_space import TEMPLATE_DIM
from embodia.models.attention import ACTION, PAD, TEXT, action_query_mask, sequence_mask
from embodia.models.flow import euler
from embodia.models.sequence import IGNORE, EmbodiedSample


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


class InferenceMixin:
    """The inference half of ``EmbodiedModel`` (it uses the model's backbone, builder, embedding,
    masks, positions and heads; see ``embodied.py``)."""

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
