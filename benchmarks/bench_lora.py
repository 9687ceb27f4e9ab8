"""LoRA against full fine-tuning: trainable parameters, and peak memory of a training step.

    python benchmarks/bench_lora.py                  # tiny measured on this CPU + wall-oss-3b counted
    python benchmarks/bench_lora.py --rank 32 --steps 5

* ``tiny`` (this CPU, fp32): each mode trains ``--steps`` AdamW steps on a batch of the model's own
  shape (2 views of 64 px, a flow chunk) in a fresh subprocess, so each figure is that process's
  own peak resident memory; the "model only" row is a process that only builds the model.
* ``wall-oss-3b`` is built on the meta device (no weights are allocated), so its parameter counts
  are exact; its memory is an estimate from those counts for bf16 mixed precision: full fine-tuning
  keeps fp32 master weights, gradients and two AdamW moments (16 bytes per parameter); LoRA keeps
  the frozen weights in bf16 (2 bytes) and 16 bytes per trainable parameter. Activations are not in
  the estimate (they depend on batch, sequence length and gradient checkpointing).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np
import torch

from embodia.configs.model import LoraSettings, preset
from embodia.models.action_space import SAWYER
from embodia.models.embodied import EmbodiedModel
from embodia.models.lora import inject
from embodia.models.sequence import EmbodiedSample
from embodia.training.groups import set_trainable


def build(name: str, rank: int, device: str = "cpu") -> tuple[EmbodiedModel, int, int]:
    """The model (adapters injected when rank > 0), its total and trainable parameter counts."""
    with torch.device(device):
        model = EmbodiedModel(preset(name))
        if rank:
            settings = LoraSettings(rank=rank, alpha=2.0 * rank)
            inject(model, settings)
            model.cfg.lora = settings
    trainable = set_trainable(model, ["all"])
    total = sum(p.numel() for p in model.parameters())
    return model, total, sum(p.numel() for n, p in model.named_parameters() if n in trainable)


def _batch(model: EmbodiedModel, n: int = 4):
    rng = np.random.default_rng(0)
    horizon = model.cfg.action.horizon
    samples = [
        EmbodiedSample(
            images=[rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)],
            instruction="open the drawer",
            mode="flow",
            state=SAWYER.state_to_template(rng.normal(size=4)),
            dof_mask=SAWYER.dof_mask,
            actions=SAWYER.to_template(rng.normal(size=(horizon, 4))),
        )
        for _ in range(n)
    ]
    return model.collate(samples, rng=rng)


def child(mode: str, rank: int, steps: int) -> None:
    """One measurement in this (fresh) process: build, optionally train, print JSON."""
    torch.manual_seed(0)
    model, total, trainable = build("tiny", rank if mode == "lora" else 0)
    if mode != "model-only":
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        batch = _batch(model)
        for _ in range(steps):
            loss = model.compute_loss(batch)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB -> MB
    print(json.dumps({"mode": mode, "total": total, "trainable": trainable, "peak_mb": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--child", choices=["model-only", "full", "lora"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.rank, args.steps)
        return

    print(f"tiny on this CPU (fp32, batch 4, {args.steps} AdamW steps, LoRA rank {args.rank}):")
    print("| mode | parameters | trainable | peak RSS |")
    print("|---|---|---|---|")
    for mode in ("model-only", "full", "lora"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--rank",
            str(args.rank),
            "--steps",
            str(args.steps),
        ]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        share = 100 * row["trainable"] / row["total"]
        print(
            f"| {mode} | {row['total'] / 1e6:.2f} M | {row['trainable'] / 1e6:.2f} M "
            f"({share:.1f}%) | {row['peak_mb']:.0f} MB |"
        )

    print(
        f"\nwall-oss-3b on the meta device (exact counts; memory estimated, bf16 mixed precision, "
        f"no activations), LoRA rank {args.rank}:"
    )
    print("| mode | parameters | trainable | weights + grads + AdamW (estimate) |")
    print("|---|---|---|---|")
    for rank in (0, args.rank):
        _, total, trainable = build("wall-oss-3b", rank, device="meta")
        if rank == 0:
            gib = 16 * total / 2**30
        else:
            gib = (2 * (total - trainable) + 16 * trainable) / 2**30
        mode = "full" if rank == 0 else "lora"
        print(
            f"| {mode} | {total / 1e9:.3f} B | {trainable / 1e6:.1f} M "
            f"({100 * trainable / total:.1f}%) | {gib:.1f} GiB |"
        )


if __name__ == "__main__":
    main()
