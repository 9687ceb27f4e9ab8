"""``embodia export``: a trained checkpoint as a serving checkpoint, LoRA adapters merged or kept.

The output holds what ``Policy.load`` reads (the model's weights and config, tokenizer, image
processor, FAST tokenizer, ``policy.json``) and nothing of the training run. It is written into a
temporary sibling and renamed into place, so a failed export leaves no half-written directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from embodia.configs.serve import ExportConfig
from embodia.models.checkpoint import resolve_checkpoint
from embodia.policy_config import ROBOTS_DIR
from embodia.utils.fs import atomic_dir


def export(cfg: ExportConfig) -> Path:
    from embodia.models.lora import merge
    from embodia.policy import Policy

    out = Path(cfg.output)
    if out.exists() and not cfg.overwrite:
        raise ValueError(f"--output {out} exists (pass --overwrite to replace it)")
    policy = Policy.load(cfg.checkpoint)
    adapters = policy.model.cfg.lora
    if cfg.merge:
        if adapters is None:
            raise ValueError(
                f"--merge: {cfg.checkpoint} has no LoRA adapters (it was not trained with --lora); "
                "export it without --merge"
            )
        layers = merge(policy.model)
        print(f"merged {layers} LoRA layers (rank {adapters.rank}) into the backbone weights")
    source = resolve_checkpoint(cfg.checkpoint)
    with atomic_dir(out) as tmp:
        policy.save(tmp)
        if (source / ROBOTS_DIR).is_dir():  # the run's other robots (policies/<name>.json)
            shutil.copytree(source / ROBOTS_DIR, tmp / ROBOTS_DIR)
    kind = "adapters kept" if adapters is not None and not cfg.merge else "plain weights"
    print(f"wrote {out} ({kind}); serve it with: embodia serve --checkpoint {out}")
    return out
