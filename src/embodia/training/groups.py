"""Named parameter groups, so a curriculum stage can say what it trains in words.

Groups are defined by parameter-name patterns over EmbodiedModel; a stage's ``trainable`` list is
resolved to a set of parameters and everything else is frozen. A group that matches no parameter
(e.g. "depth_generator" on a model without a depth head) is an error, caught before training.
"""

from __future__ import annotations

import re

from torch import nn

# group -> regex over named_parameters() names
GROUPS: dict[str, str] = {
    "vision": r"^backbone\.hf\.model\.visual\.",
    "embeddings": r"^backbone\.hf\.(model\.language_model\.embed_tokens|lm_head)\.",
    "llm": r"^backbone\.hf\.model\.language_model\.(layers\.\d+\.(self_attn|input_layernorm|post_attention_layernorm)|norm)\.",
    "vl_ffn": r"^backbone\.hf\.model\.language_model\.layers\.\d+\.mlp\.vl\.",
    # the split-FFN experts, or GEM-VLA's DiT expert when the model uses that instead
    "action_expert": r"^backbone\.hf\.model\.language_model\.layers\.\d+\.mlp\.action\.|^aux_heads\.action\.",
    "flow_head": r"^flow\.",
    "proprio": r"^proprio\.",
    "depth_connector": r"^aux_heads\.depth\.connector\.",
    "depth_generator": r"^aux_heads\.depth\.(dit|regressor|range_head)\.",  # + its metric scale
    "scene_head": r"^aux_heads\.scene\.",  # training-only scene-state regression
    # everything except the depth codec, which `embodia depth train-autoencoder` trains and GEM
    # keeps frozen (its latents are the generator's targets)
    "all": r"^(?!aux_heads\.depth\.codec\.)",
}
#: shorthand groups
ALIASES = {
    "backbone": ("vision", "embeddings", "llm", "vl_ffn"),
    "depth": ("depth_connector", "depth_generator"),
}


class UnknownGroupError(ValueError):
    pass


def resolve(model: nn.Module, names: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """Parameter names per requested group; raises if a group is unknown or matches nothing."""
    params = [n for n, _ in model.named_parameters()]
    out: dict[str, list[str]] = {}
    for name in names:
        for group in ALIASES.get(name, (name,)):
            if group not in GROUPS:
                raise UnknownGroupError(
                    f"unknown parameter group {group!r}; choose from {sorted([*GROUPS, *ALIASES])}"
                )
            pattern = re.compile(GROUPS[group])
            matched = [p for p in params if pattern.search(p)]
            if not matched:
                raise UnknownGroupError(
                    f"parameter group {group!r} matches no parameter of this model "
                    "(is the part it names, e.g. the depth generator, enabled in the model config?)"
                )
            out[group] = matched
    return out


def set_trainable(model: nn.Module, names: tuple[str, ...] | list[str]) -> set[str]:
    """Freeze everything, then unfreeze the named groups; returns the trainable parameter names.

    A model with LoRA adapters (``cfg.lora``) trains its pretrained backbone weights only through
    their adapters: a stage that names "llm" trains that group's adapters, not its weights."""
    chosen = {p for ps in resolve(model, names).values() for p in ps}
    cfg = getattr(model, "cfg", None)
    if getattr(cfg, "lora", None) is not None:
        from embodia.models.lora import trainable_under_lora

        chosen = {p for p in chosen if trainable_under_lora(p)}
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
    return chosen
