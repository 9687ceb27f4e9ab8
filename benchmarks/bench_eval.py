"""Rollout-evaluation throughput: an MT10 evaluation with 0 (in-process) vs N worker processes.

Runs the real harness (`embodia.evaluation.rollout.rollout_episodes`) with the given policy and
prints wall time, environment steps per second and where the time went (policy calls in the main
process vs stepping + rendering in the environment slots). With ``--policy model`` the checkpoint
reads two 128 px views every ``--execute-steps`` steps; ``expert`` / ``random`` need no images
(``--render`` forces rendering every step, as a model with ensembling would).

    python benchmarks/bench_eval.py --policy expert --render
    python benchmarks/bench_eval.py --policy model --checkpoint runs/tiny --max-steps 120
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

from embodia.configs.eval import RolloutConfig
from embodia.evaluation.rollout import rollout_episodes, summarize
from embodia.evaluation.setup import build_rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="expert", choices=["model", "expert", "random"])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--tasks", nargs="+", default=["MT10"])
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--execute-steps", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--render", action="store_true", help="render every step (as for ensembling)")
    args = ap.parse_args()
    for workers in args.workers:
        cfg = RolloutConfig(
            checkpoint=args.checkpoint,
            policy=args.policy,
            tasks=tuple(args.tasks),
            episodes_per_task=args.episodes,
            max_steps=args.max_steps,
            execute_steps=args.execute_steps if args.policy == "model" else None,
            workers=workers,
            videos=0,
        )
        setup = build_rollout(cfg)
        if args.render:
            setup.policy.needs_images = True
        results, t = rollout_episodes(setup.policy, setup.episodes, setup.settings)
        ov = summarize(results)["overall"]
        print(
            f"{args.policy:>6} workers={workers}: {len(results)} episodes, {t['steps']} steps in "
            f"{t['wall_s']:.1f} s = {t['steps_per_s']:.1f} steps/s; policy {t['policy_s']:.1f} s "
            f"({t['queries']} calls), envs {t['env_s']:.1f} s; success {ov['rate']:.0%}"
        )


if __name__ == "__main__":
    main()
