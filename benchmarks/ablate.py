"""One row of the ablation table: a recipe with one thing changed, trained at several seeds on the
recipe's data and evaluated closed loop on its test layouts, pooled with a Wilson interval.

    python benchmarks/ablate.py --data outputs/qs_s0/data --variant ema --seeds 0 1 2

The data must be the recipe's (``embodia recipe --name quickstart`` writes it to
``<output>/data``); a variant with data settings of its own (``demos80``, the camera rows)
generates its dataset with the recipe's other settings, so its test layouts are the same. Each seed's run goes to ``outputs/ablations/<variant>/s<seed>/run`` and its
evaluation beside it; a run that already finished is evaluated again rather than retrained, so a
variant that changes only the evaluation (e.g. ``exec4``) reuses ``base``'s checkpoints. The row
(per task and pooled, with the commands' settings) is printed as a Markdown table row and written to
``outputs/ablations/<variant>/row.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from embodia.configs.recipes import METAWORLD_SCENE, recipe
from embodia.configs.train import TrainConfig
from embodia.evaluation.rollout import run_rollouts
from embodia.evaluation.stats import rate_summary
from embodia.pipeline import recipe_data_config, recipe_rollout_config, recipe_train_settings
from embodia.training import state as ckpt
from embodia.training.trainer import train
from embodia.utils.fs import atomic_write_text


@dataclass(frozen=True)
class Variant:
    """One row: what changed, as overrides of the recipe's stage, training run (TrainConfig) and
    evaluation (RolloutConfig)."""

    what: str
    stage: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)
    runs_of: str | None = None
    """Evaluate this variant's checkpoints instead of training (an evaluation-only row)."""
    data: dict = field(default_factory=dict)
    """Overrides of the recipe's data settings (``episodes_per_task``, ``cameras``): the variant
    trains on a dataset of its own, generated into ``<output>/<variant>/data`` with the recipe's
    other settings (the same seed, so the same test layouts); empty = ``--data``."""


VARIANTS: dict[str, Variant] = {
    "base": Variant("the recipe as it is", {}, {}, {}, None),
    "exec2": Variant(
        "2 actions executed per chunk (base's checkpoints)",
        {},
        {},
        {"execute_steps": 2},
        "base",
    ),
    "exec4": Variant(
        "4 actions executed per chunk (base's checkpoints)",
        {},
        {},
        {"execute_steps": 4},
        "base",
    ),
    "exec8": Variant(
        "8 actions executed per chunk (base's checkpoints; the recipes' setting before 4)",
        {},
        {},
        {"execute_steps": 8},
        "base",
    ),
    "exec16": Variant(
        "16 actions executed per chunk (base's checkpoints)",
        {},
        {},
        {"execute_steps": 16},
        "base",
    ),
    "heldout": Variant(
        "the instruction paraphrases held out of training, on the same layouts (base's checkpoints)",
        {},
        {},
        {"instructions": "held-out"},
        "base",
    ),
    "ema": Variant("EMA of the weights, decay 0.995", {}, {"ema": 0.995}, {}, None),
    "no-vqa": Variant(
        "episodes only (no embodied-VQA samples)",
        {"mixture": {"episodes": 1.0}},
        {},
        {},
        None,
    ),
    "no-vqa-exec4": Variant(
        "episodes only, 4 actions executed per chunk (no-vqa's checkpoints)",
        {"mixture": {"episodes": 1.0}},
        {},
        {"execute_steps": 4},
        "no-vqa",
    ),
    "no-vqa-no-shift": Variant(
        "episodes only, no random shifts (row A1b's stage at the recipe's steps)",
        {"mixture": {"episodes": 1.0}, "image_shift": 0},
        {},
        {},
        None,
    ),
    "no-shift": Variant("no random-shift augmentation", {"image_shift": 0}, {}, {}, None),
    "lr3e-4": Variant("learning rate 3e-4", {"lr": 3e-4}, {}, {}, None),
    "steps2400": Variant(
        "2400 training steps instead of 1700 (the same cosine schedule stretched)",
        {"steps": 2400},
        {},
        {},
        None,
    ),
    "demos80": Variant(
        "80 demonstrations per task instead of 40 (the same test layouts)",
        data={"episodes_per_task": (80, 0, 10)},
    ),
    "res96": Variant(
        "96 px model input (36 tokens per view instead of 16), shifts scaled to 6 px",
        {"image_shift": 6},
        {"image_size": 96},
        {},
        None,
    ),
    "cam-topview": Variant(
        "the top-down camera instead of the corner one (topview + gripperPOV; own dataset)",
        data={"cameras": ("topview", "gripperPOV")},
    ),
    "cam-corner3": Variant(
        "the corner3 camera instead of corner (corner3 + gripperPOV; own dataset)",
        data={"cameras": ("corner3", "gripperPOV")},
    ),
    "demos80-steps2400": Variant(
        "80 demonstrations per task and 2400 steps (the recipe's cameras; own dataset)",
        {"steps": 2400},
        data={"episodes_per_task": (80, 0, 10)},
    ),
    "scene": Variant(
        "scene-state supervision read from the action tokens: they regress the objects' and "
        "goal's positions (training only, weight 1; the policy still sees images + "
        "proprioception)",
        {"loss_weights": {"flow": 1.0, "text": 1.0, "scene": 1.0}},
        {"scene_key": METAWORLD_SCENE[0], "scene_dims": METAWORLD_SCENE[1], "horizon": 32},
    ),
    "scene-propri": Variant(
        "scene-state supervision read from the <|propri|> token (the end of the prefix)",
        {"loss_weights": {"flow": 1.0, "text": 1.0, "scene": 1.0}},
        {
            "scene_key": METAWORLD_SCENE[0],
            "scene_dims": METAWORLD_SCENE[1],
            "scene_readout": "propri",
            "horizon": 32,  # as measured, before the recipe moved to 16-step chunks
        },
    ),
    "h16": Variant(
        "16-step action chunks instead of 32 (4 still executed per chunk; the recipe's since)",
        train={"horizon": 16},
    ),
    "h16-noise0": Variant(
        "h16's checkpoints, flow sampled from zero noise (`eval rollout --flow-noise-scale 0`)",
        eval={"flow_noise_scale": 0.0},
        runs_of="h16",
    ),
    "h16-noise05": Variant(
        "h16's checkpoints, flow noise scaled by 0.5 (`eval rollout --flow-noise-scale 0.5`)",
        eval={"flow_noise_scale": 0.5},
        runs_of="h16",
    ),
    "h32": Variant(
        "32-step action chunks (the preset's; the quickstart recipe's before row h16)",
        train={"horizon": 32},
    ),
    "h8": Variant(
        "8-step action chunks instead of 32 (4 still executed per chunk)",
        train={"horizon": 8},
    ),
    "stream": Variant(
        "streamed training: shards of 20 episodes, windows of 2 shards (a quarter of the split)",
        train={"stream_shard_episodes": 20, "stream_window": 2},
    ),
    "cam3": Variant(
        "three views: topview + corner + gripperPOV (own dataset)",
        data={"cameras": ("topview", "corner", "gripperPOV")},
    ),
}


def _stage_file(stages, path: Path) -> Path:
    rows = []
    for s in stages:
        d = asdict(s)
        d["trainable"] = list(s.trainable)
        rows.append(d)
    atomic_write_text(path, json.dumps(rows, indent=2))
    return path


def _own_data(rec, output: Path, workers: int) -> Path:
    """The (variant's) recipe's dataset, reused when already generated."""
    from embodia.data.engine.generate import already_generated, generate

    gen = recipe_data_config(rec, output, workers)
    if not already_generated(gen):
        generate(gen)
    return output


def _finished(run: Path, steps: int) -> bool:
    try:
        last = ckpt.latest_checkpoint(run)
    except FileNotFoundError:
        return False
    return last is not None and ckpt.load_trainer_state(last).global_step >= steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--recipe", default="quickstart")
    ap.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--output", type=Path, default=Path("outputs/ablations"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--execute-steps",
        type=int,
        default=None,
        help="actions executed per chunk, for variants that do not set it (default: the "
        "recipe's; the rows measured before the recipes moved to 4 used 8)",
    )
    args = ap.parse_args()

    variant = VARIANTS[args.variant]
    rec = replace(recipe(args.recipe), **variant.data)
    stage_over, train_over, eval_over = variant.stage, variant.train, variant.eval
    runs_of, what = variant.runs_of, variant.what
    stages = [replace(s, **stage_over) for s in rec.stages]
    steps = sum(s.steps for s in stages)
    out = args.output / args.variant
    data = args.data
    if variant.data:
        data = _own_data(rec, out / "data", args.workers)
    per_seed = {}
    for seed in args.seeds:
        seed_dir = out / f"s{seed}"
        run = (args.output / runs_of / f"s{seed}" / "run") if runs_of else seed_dir / "run"
        train_s = None
        if not _finished(run, steps):
            if runs_of:
                raise SystemExit(f"{run}: run variant {runs_of!r} for seed {seed} first")
            seed_dir.mkdir(parents=True, exist_ok=True)
            tic = time.perf_counter()
            train(
                TrainConfig(
                    datasets=(data,),
                    output=run,
                    preset=rec.preset,
                    curriculum_file=_stage_file(stages, seed_dir / "stages.json"),
                    batch_size=rec.batch_size,
                    seed=seed,
                    workers=args.workers,
                    checkpoint_every=10**9,
                    log_with="none",
                    **{**recipe_train_settings(rec), **train_over},
                )
            )
            train_s = time.perf_counter() - tic
        ev = rec.eval
        executed = ev.execute_steps if args.execute_steps is None else args.execute_steps
        rollout = replace(
            recipe_rollout_config(rec, run, seed_dir / "eval", args.workers),
            execute_steps=executed,
            videos=0,
            **eval_over,
        )
        result_dir = run_rollouts(rollout)
        res = json.loads((result_dir / "results.json").read_text())["results"]
        per_seed[seed] = {
            "overall": res["overall"],
            "per_task": {t: v["successes"] for t, v in res["per_task"].items()},
            "episodes_per_task": ev.episodes_per_task,
            "train_s": train_s,
        }
        print(
            f"seed {seed}: {res['overall']['successes']}/{res['overall']['episodes']}", flush=True
        )

    tasks = list(next(iter(per_seed.values()))["per_task"])
    wins = sum(r["overall"]["successes"] for r in per_seed.values())
    n = sum(r["overall"]["episodes"] for r in per_seed.values())
    pooled = rate_summary(wins, n)
    lo, hi = pooled["ci95"]
    task_cells = [
        f"{sum(r['per_task'][t] for r in per_seed.values())}/"
        f"{sum(r['episodes_per_task'] for r in per_seed.values())}"
        for t in tasks
    ]
    seed_cells = " / ".join(f"{100 * r['overall']['rate']:.1f}" for r in per_seed.values())
    row = {
        "variant": args.variant,
        "what": what,
        "seeds": args.seeds,
        "per_seed": per_seed,
        "pooled": pooled,
        "tasks": tasks,
        "overrides": {"stage": stage_over, "train": train_over, "eval": eval_over},
        "data": str(data),
        "execute_steps": rollout.execute_steps,
        "instructions": rollout.instructions,
    }
    atomic_write_text(out / "row.json", json.dumps(row, indent=2))
    print(
        f"| {args.variant} | {what} | {seed_cells} | {wins}/{n} = {100 * pooled['rate']:.1f}% "
        f"({100 * lo:.1f}-{100 * hi:.1f}) | " + " | ".join(task_cells) + " |"
    )


if __name__ == "__main__":
    main()
