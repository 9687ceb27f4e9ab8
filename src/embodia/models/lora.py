"""LoRA fine-tuning of the backbone with PEFT: inject, freeze, save the adapters, merge.

Fine-tuning a real Qwen-VL checkpoint on one robot's data rarely needs (or fits in memory for)
every backbone weight: low-rank adapters on the language model's attention and vision-language
FFN carry the adaptation, while the parts that are new to the model (the action expert, the flow
head, the proprio projection, GEM's heads) train fully. The adapters are PEFT's own layers,
injected in place (``peft.inject_adapter_in_model``), so parameter names stay embodia's and a
checkpoint with adapters loads like any other: ``ModelConfig.lora`` says to inject them first.

* :func:`inject` wraps the target ``nn.Linear`` layers (``LoraSettings.targets``) in LoRA layers.
* :func:`trainable_under_lora` is the freezing rule: backbone weights train only through their
  adapters.
* :func:`save_adapter` writes the adapters in PEFT's format beside the checkpoint
  (``adapter/adapter_model.safetensors`` + ``adapter_config.json``), loadable by PEFT onto the
  Hugging Face backbone on its own.
* :func:`merge` folds every adapter into its base weight and removes the LoRA layers, giving a
  plain model (``embodia export --merge``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from torch import nn

from embodia.configs.model import LoraSettings

ADAPTER_DIR = "adapter"
#: Parameter-name prefixes of the backbone's own (pretrained) weights; under LoRA they are frozen
#: and learn only through their adapters. The split FFN's action expert sits inside the decoder
#: layers but is new to the model, so it trains fully.
_BACKBONE = re.compile(r"^backbone\.hf\.")
_ACTION_EXPERT = re.compile(r"\.mlp\.action\.")


def _peft_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.targets,
        bias="none",
    )


def inject(model: nn.Module, settings: LoraSettings) -> int:
    """Wrap the backbone's target layers in LoRA layers (in place); returns how many."""
    from peft import inject_adapter_in_model

    hf = model.backbone.hf
    before = {n for n, m in hf.named_modules() if isinstance(m, nn.Linear)}
    pattern = re.compile(settings.targets)
    targets = [n for n in before if pattern.fullmatch(n)]
    if not targets:
        raise ValueError(
            f"LoRA targets {settings.targets!r} match no linear layer of the backbone "
            f"(e.g. {sorted(before)[:3]})"
        )
    inject_adapter_in_model(_peft_config(settings), hf)
    return len(targets)


def is_adapter(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def trainable_under_lora(name: str) -> bool:
    """Whether parameter ``name`` may train when the model carries adapters."""
    if not _BACKBONE.search(name) or _ACTION_EXPERT.search(name):
        return True
    return is_adapter(name)


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def save_adapter(model: nn.Module, directory: Path) -> Path:
    """The adapters in PEFT's on-disk format, keyed relative to the Hugging Face backbone."""
    from safetensors.torch import save_file

    settings = model.cfg.lora
    out = Path(directory) / ADAPTER_DIR
    out.mkdir(parents=True, exist_ok=True)
    prefix = "backbone.hf."
    tensors = {
        "base_model.model." + n[len(prefix) :].replace(".default.", "."): p.detach()
        .cpu()
        .contiguous()
        for n, p in model.named_parameters()
        if is_adapter(n)
    }
    save_file(tensors, str(out / "adapter_model.safetensors"))
    config = _peft_config(settings).to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    config["embodia"] = asdict(settings)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2, default=str))
    return out


def merge(model: nn.Module) -> int:
    """Fold each adapter into its base weight and put the plain layer back; returns how many.

    Afterwards the model has no LoRA layers and ``cfg.lora`` is None, so it saves and loads as
    an ordinary checkpoint (serving needs no PEFT)."""
    layers = lora_layers(model)
    for name, layer in layers:
        layer.merge(safe_merge=True)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.get_base_layer())
    model.cfg.lora = None
    return len(layers)
