"""Training throughput: samples/s of `embodia train` end to end (data loading with workers,
Uni-CoT batching, forward, backward, AdamW) for the tiny and small presets on this machine.

    python benchmarks/bench_train.py --dataset outputs/quickstart [--presets tiny small] [--steps 30]

The first steps (worker start-up, episode decoding into the cache) are excluded: the rate is
measured over the second half of the run, from metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from embodia.configs.train import TrainConfig
from embodia.training.report import read_metrics
from embodia.training.trainer import train


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", type=Path, default=Path("outputs/quickstart"))
    p.add_argument("--presets", nargs="+", default=["tiny", "small"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="embodia-bench-train-"))
    stages = root / "stages.json"
    stages.write_text(
        json.dumps(
            [
                {
                    "name": "bench",
                    "steps": args.steps,
                    "trainable": ["all"],
                    "loss_weights": {"flow": 1.0, "fast": 1.0, "text": 1.0},
                    "mixture": {"episodes": 0.8, "conversations": 0.2},
                    "action_modes": {"flow": 0.5, "fast": 0.5},
                    "lr": 1e-4,
                }
            ]
        )
    )
    try:
        for name in args.presets:
            out = root / name
            train(
                TrainConfig(
                    datasets=(args.dataset,),
                    output=out,
                    preset=name,
                    curriculum_file=stages,
                    batch_size=args.batch_size,
                    workers=args.workers,
                    log_every=1,
                    checkpoint_every=10**9,
                    log_with="none",
                    progress=False,
                )
            )
            rows = read_metrics(out / "metrics.jsonl")
            half = rows[len(rows) // 2 :]
            # samples/s is cumulative since the stage started: take the rate over the second half
            n0, n1 = half[0]["global_step"], half[-1]["global_step"]
            t0 = n0 * args.batch_size / half[0]["samples_per_s"]
            t1 = n1 * args.batch_size / half[-1]["samples_per_s"]
            rate = (n1 - n0) * args.batch_size / (t1 - t0)
            print(
                f"[{name}] batch {args.batch_size}, 2 views, {args.workers} loader workers: "
                f"{rate:.1f} samples/s ({1000 * args.batch_size / rate:.0f} ms/step)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
