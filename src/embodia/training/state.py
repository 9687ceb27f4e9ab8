"""Training checkpoints: the model checkpoint plus everything needed to continue exactly.

Layout of ``<run>/checkpoints/step-000123/``::

    embodia_config.json, model.safetensors, tokenizer + image processor files, fast_tokenizer/
    normalizers.json       per-dataset quantile statistics (what training normalised with)
    policy.json            the serving/evaluation transform for the primary action dataset
    trainer_state.json     stage, steps done, global step, the resolved run config
    training_weights.safetensors   with EMA on: the optimizer's weights (model.safetensors = EMA)
    optimizer.pt, scheduler.pt   (tensors and plain numbers only; loaded with weights_only=True)

A checkpoint is built in a temporary directory and renamed into place; ``checkpoints/latest`` names
the newest complete one (replaced atomically). Data order and all sampling randomness are
functions of (seed, stage, sample number), so no RNG state needs saving for an exact resume.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embodia.utils.fs import atomic_dir, atomic_write_text

TRAINER_STATE = "trainer_state.json"
NORMALIZERS = "normalizers.json"


@dataclass
class TrainerState:
    stage_index: int  # 1-based index into the curriculum
    stage_step: int  # optimizer steps completed in that stage
    global_step: int
    run_config: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, default=str)


def checkpoints_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def save_checkpoint(
    run: Path,
    name: str,
    model,
    optimizer,
    scheduler,
    state: TrainerState,
    normalizers: dict[str, dict],
    policy_configs: dict | None = None,
    keep: int = 2,
    average=None,
) -> Path:
    """``policy_configs``: dataset name -> PolicyConfig, the first written as ``policy.json``
    and the others as ``policies/<name>.json``. ``average`` (a
    :class:`~embodia.training.ema.WeightAverage`): save its weights as the model's and the
    optimizer's own weights beside them, for ``--resume``."""
    root = checkpoints_dir(run)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_dir(root / name) as tmp:
        if average is None:
            model.save_pretrained(tmp)
        else:
            from embodia.training.ema import save_training_weights

            with average.swapped_in(model):
                model.save_pretrained(tmp)
            save_training_weights(model, tmp)
        (tmp / NORMALIZERS).write_text(json.dumps(normalizers, indent=2))
        for i, (robot, config) in enumerate((policy_configs or {}).items()):
            config.save(tmp, None if i == 0 else robot)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / TRAINER_STATE).write_text(state.to_json())
    atomic_write_text(root / "latest", name)
    _prune(root, keep, protect={name})
    return root / name


def _prune(root: Path, keep: int, protect: set[str]) -> None:
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[: max(0, len(steps) - keep)]:
        if old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run: Path) -> Path | None:
    root = checkpoints_dir(run)
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    if not (path / TRAINER_STATE).exists():
        raise FileNotFoundError(f"{pointer} names {path.name}, which is incomplete or missing")
    return path


def load_trainer_state(path: Path) -> TrainerState:
    data = json.loads((Path(path) / TRAINER_STATE).read_text())
    return TrainerState(**data)


def load_optimizer_state(path: Path, optimizer, scheduler) -> None:
    """Restore optimizer and scheduler state (plain tensors and numbers only: no code runs)."""
    opt = Path(path) / "optimizer.pt"
    if opt.exists() and optimizer is not None:
        optimizer.load_state_dict(torch.load(opt, map_location="cpu", weights_only=True))
    sched = Path(path) / "scheduler.pt"
    if sched.exists() and scheduler is not None:
        scheduler.load_state_dict(torch.load(sched, map_location="cpu", weights_only=True))
