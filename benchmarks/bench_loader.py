"""Does the data path keep up with the model? Training samples/s through `embodia train`'s own
loader (frame cache, Uni-CoT batching, loader workers) against the model alone on the same batches
held in memory, in one run.

    python benchmarks/bench_loader.py --dataset data/mt10 [--preset tiny] [--batch-size 16]

1. ``prepare``: the trainer's set-up, which builds the frame cache on first use (timed: "cold"
   when the cache did not exist yet, run it twice to see the warm figure).
2. model only: the first ``--steps`` batches of the stage are collected, then the same forward,
   backward and AdamW step runs over them from memory;
3. end to end: the same steps again from a fresh loader (its workers start from scratch, as in a
   run; the first ``--warmup`` steps are left out of the rate).
2 and 3 alternate ``--rounds`` times (A B A B) and the means are compared, so that the drift of a
shared machine's speed falls on both.

The ratio end-to-end / model-only is the figure that matters (the issue's target: >= 0.9); the
loader alone (no model) is printed too. The stage is a flow-matching action stage as in the
quickstart recipe, on the dataset's train split.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from embodia.configs.train import TrainConfig
from embodia.training.groups import set_trainable
from embodia.training.trainer import Trainer

STAGE = {
    "name": "bench",
    "trainable": ["all"],
    "loss_weights": {"flow": 1.0},
    "mixture": {"episodes": 1.0},
    "action_modes": {"flow": 1.0},
    "level_drop": {"subtask": 1.0, "reasoning": 1.0},
    "lr": 1e-4,
}


def step_fn(model, stage):
    set_trainable(model, stage.trainable)
    model.cfg.loss_weights = dict(stage.loss_weights)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=stage.lr)
    model.train()

    def step(batch) -> None:
        losses = model(batch)
        losses["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--frame-cache", type=Path, default=None)
    p.add_argument("--rounds", type=int, default=2, help="model-only / end-to-end alternations")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="embodia-bench-loader-"))
    try:
        stages = root / "stages.json"
        stages.write_text(json.dumps([{**STAGE, "steps": args.steps}]))
        cfg = TrainConfig(
            datasets=(args.dataset,),
            output=root / "run",
            preset=args.preset,
            curriculum_file=stages,
            batch_size=args.batch_size,
            workers=args.workers,
            frame_cache=args.frame_cache,
            log_with="none",
        )
        trainer = Trainer(cfg)
        tic = time.perf_counter()
        trainer.prepare()
        prepare_s = time.perf_counter() - tic
        idx, stage = trainer.stages[0]
        episodes = sum(len(s.episodes) for s in trainer.sources if s.kind == "episodes")
        step = step_fn(trainer.model, stage)

        tic = time.perf_counter()
        batches = list(trainer.stage_loader(idx, stage, 0))
        loader_only = (len(batches) - args.warmup) * args.batch_size
        loader_s = time.perf_counter() - tic
        for b in batches[: args.warmup]:
            step(b)

        def model_only() -> float:
            tic = time.perf_counter()
            for b in batches[args.warmup :]:
                step(b)
            return (len(batches) - args.warmup) * args.batch_size / (time.perf_counter() - tic)

        def end_to_end() -> float:
            it = iter(trainer.stage_loader(idx, stage, 0))
            for _ in range(args.warmup):
                step(next(it))
            tic, n = time.perf_counter(), 0
            for b in it:
                step(b)
                n += 1
            return n * args.batch_size / (time.perf_counter() - tic)

        # A B A B: the machine's speed drifts (shared CPU); alternating cancels most of it
        rates = {"model": [], "e2e": []}
        for _ in range(args.rounds):
            rates["model"].append(model_only())
            rates["e2e"].append(end_to_end())
        model_rate = statistics.mean(rates["model"])
        e2e_rate = statistics.mean(rates["e2e"])

        print(
            f"dataset {args.dataset} ({episodes} train episodes), preset {args.preset}, "
            f"batch {args.batch_size}, {args.workers} loader workers, torch threads "
            f"{torch.get_num_threads()}"
        )
        print(f"prepare (frame cache included): {prepare_s:.1f} s")
        print(
            f"loader alone (incl. worker start): {loader_only / loader_s:.1f} samples/s "
            f"({len(batches)} batches in {loader_s:.1f} s)"
        )
        print(
            f"model only, batches in memory: {model_rate:.1f} samples/s "
            f"(rounds: {', '.join(f'{r:.1f}' for r in rates['model'])})"
        )
        print(
            f"end to end through the loader: {e2e_rate:.1f} samples/s "
            f"(rounds: {', '.join(f'{r:.1f}' for r in rates['e2e'])})"
        )
        print(f"ratio end-to-end / model-only: {e2e_rate / model_rate:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
