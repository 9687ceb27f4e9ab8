"""The Ray backend against local workers: what distributing episodes costs and what it gives.

Prints, in one run on this machine:
  1. Ray's own overhead: round trip of an empty task and of an empty actor call (ms), beside
     one environment step in a local worker process (what a rollout pays per step and slot);
  2. data generation, frames/s with ``--workers`` local processes vs ``--workers`` Ray workers;
  3. rollout evaluation (the scripted expert, rendering every step), episodes/s local vs Ray;
  4. the same generation on a simulated cluster (``ray.cluster_utils.Cluster``: separate
     raylets with one CPU each) of 1 node, then 2 nodes: the scaling from adding a node, with
     episodes scheduled across nodes and committed by the driver without a shared file system.

Each backend is timed ``--repeats`` times, alternating, after an untimed warm-up; the ratios
use the best run of each.

    python benchmarks/bench_cluster.py [--tasks reach drawer-open] [--episodes 3] [--workers 2]
        [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from bench_engine import run as generate_run

# Only light imports at the top: the local pool spawns its workers, and a spawned worker
# re-imports this script; Ray and torch (through the evaluation modules) are imported where used,
# as the ``embodia`` CLI does, so the local figure pays what a user's run pays.


def _noop() -> None:
    return None


class _Noop:
    def call(self) -> None:
        return None


def overhead(calls: int = 200) -> dict[str, float]:
    """Median milliseconds of an empty Ray task / actor call and of a local env step."""
    import ray

    from embodia.evaluation.workers import Slot

    _empty = ray.remote(num_cpus=1)(_noop)
    _Empty = ray.remote(num_cpus=1)(_Noop)
    ray.get(_empty.remote())  # a warm worker
    task = []
    for _ in range(calls):
        tic = time.perf_counter()
        ray.get(_empty.remote())
        task.append(time.perf_counter() - tic)
    actor = _Empty.remote()
    ray.get(actor.call.remote())
    actor_ms = []
    for _ in range(calls):
        tic = time.perf_counter()
        ray.get(actor.call.remote())
        actor_ms.append(time.perf_counter() - tic)
    ray.kill(actor)
    slot = Slot("metaworld", ("corner", "gripperPOV"), 128, process=True)
    episode = {"task": "reach-v3", "seed": 0, "number": 0, "instruction": "reach the goal"}
    slot.call("reset", (episode, True))
    step = []
    for _ in range(calls // 4):
        tic = time.perf_counter()
        slot.call("step", (np.zeros(4), True))
        step.append(time.perf_counter() - tic)
    slot.close()
    return {
        "task_ms": 1000 * float(np.median(task)),
        "actor_call_ms": 1000 * float(np.median(actor_ms)),
        "local_env_step_ms": 1000 * float(np.median(step)),
    }


def evaluate(tasks: list[str], episodes: int, workers: int, backend: str) -> dict[str, float]:
    from embodia.configs.eval import RolloutConfig
    from embodia.evaluation.rollout import rollout_episodes, summarize
    from embodia.evaluation.setup import build_rollout

    cfg = RolloutConfig(
        policy="expert",
        tasks=tuple(tasks),
        episodes_per_task=episodes,
        max_steps=150,
        workers=workers,
        videos=0,
        backend=backend,
    )
    setup = build_rollout(cfg)
    setup.policy.needs_images = True  # a model reads images: render every step
    results, timing = rollout_episodes(setup.policy, setup.episodes, setup.settings)
    return {
        "episodes": len(results),
        "wall_s": timing["wall_s"],
        "episodes_per_s": len(results) / timing["wall_s"],
        "steps_per_s": timing["steps_per_s"],
        "success": summarize(results)["overall"]["rate"],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", nargs="+", default=["reach", "drawer-open"])
    p.add_argument("--episodes", type=int, default=3, help="episodes per task")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", type=int, default=128)
    p.add_argument(
        "--repeats", type=int, default=2, help="timed runs per backend, alternating local / ray"
    )
    args = p.parse_args()
    import ray

    from embodia.utils.cluster import connect_ray

    print(f"cores: {os.cpu_count()}  ray {ray.__version__}  tasks: {args.tasks}")
    root = Path(tempfile.mkdtemp(prefix="embodia-bench-cluster-"))
    try:
        # untimed warm-up: the first run on a machine pays the OS file cache, EGL and shader
        # start-up, which would otherwise all land on whichever backend is timed first
        generate_run(args.tasks, 1, args.workers, args.size, root / "warmup")
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            "generate": {"local": [], "ray": []},
            "rollout": {"local": [], "ray": []},
        }
        for rep in range(args.repeats):
            # the local pool runs with no Ray up: an idle raylet and its prestarted workers take
            # a share of two cores and would flatter Ray by slowing the local pool
            for backend in ("local", "ray"):
                if backend == "ray":
                    connect_ray(None, args.workers)
                runs["generate"][backend].append(
                    generate_run(
                        args.tasks,
                        args.episodes,
                        args.workers,
                        args.size,
                        root / f"{backend}-{rep}",
                        backend,
                    )
                )
                runs["rollout"][backend].append(
                    evaluate(args.tasks, args.episodes, args.workers, backend)
                )
                if backend == "ray" and rep + 1 < args.repeats:
                    ray.shutdown()
        o = overhead()
        print(
            f"overhead: empty task {o['task_ms']:.2f} ms, empty actor call "
            f"{o['actor_call_ms']:.2f} ms; one env step in a local worker "
            f"{o['local_env_step_ms']:.2f} ms"
        )
        best = {}
        for job, key, unit in (
            ("generate", "fps", "frames/s"),
            ("rollout", "episodes_per_s", "episodes/s"),
        ):
            for backend, rs in runs[job].items():
                for r in rs:
                    detail = (
                        f"{r['frames']} frames in {r['record_s']:.1f} s"
                        if job == "generate"
                        else f"{r['episodes']} episodes in {r['wall_s']:.1f} s, "
                        f"{r['steps_per_s']:.1f} steps/s, success {r['success']:.0%}"
                    )
                    print(
                        f"{job:<8} {backend:>5} workers={args.workers}: {detail} -> "
                        f"{r[key]:.2f} {unit}"
                    )
                best[job, backend] = max(r[key] for r in rs)
            print(
                f"{job} ray / local (best of {args.repeats} each): "
                f"{best[job, 'ray'] / best[job, 'local']:.2f}x"
            )
        ray.shutdown()

        from ray.cluster_utils import Cluster

        # scaling: the same episodes on a simulated cluster of 1, then 2 nodes of one CPU each
        # (separate raylets, each with its own resources; the driver commits every episode)
        cluster = Cluster()
        scaling = []
        try:
            for nodes in (1, 2):
                cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                ray.init(address=cluster.address, include_dashboard=False, logging_level="WARNING")
                alive = len([n for n in ray.nodes() if n["Alive"]])
                r = generate_run(
                    args.tasks, args.episodes, nodes, args.size, root / f"nodes{nodes}", "ray"
                )
                scaling.append(r["fps"])
                print(
                    f"generate ray on a simulated {alive}-node cluster (1 CPU each): "
                    f"{r['frames']} frames in {r['record_s']:.1f} s -> {r['fps']:.1f} frames/s"
                )
                ray.shutdown()
        finally:
            cluster.shutdown()
        print(f"scaling 1 -> 2 nodes: {scaling[1] / scaling[0]:.2f}x (ideal 2.00x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
