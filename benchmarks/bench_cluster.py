"""The Ray backend against local workers: what distributing episodes costs and what it gives.

Prints, in one run on this machine:
  1. Ray's own overhead: round trip of an empty task and of an empty actor call (ms), beside
     one environment step in a local worker process (what a rollout pays per step and slot);
  2. data generation, frames/s with ``--workers`` local processes vs ``--workers`` Ray workers;
  3. rollout evaluation (the scripted expert, rendering every step), episodes/s local vs Ray;
  4. the same generation on a simulated 2-node cluster (``ray.cluster_utils.Cluster``, the
     cores split between two raylets), to show episodes scheduled across nodes and committed
     by the driver without a shared file system. On one machine it cannot be faster than (2).

    python benchmarks/bench_cluster.py [--tasks reach drawer-open] [--episodes 3] [--workers 2]
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
import ray

from bench_engine import run as generate_run
from embodia.configs.eval import RolloutConfig
from embodia.evaluation.rollout import rollout_episodes, summarize
from embodia.evaluation.setup import build_rollout
from embodia.evaluation.workers import Slot
from embodia.utils.cluster import connect_ray


@ray.remote(num_cpus=1)
def _empty() -> None:
    return None


@ray.remote(num_cpus=1)
class _Empty:
    def call(self) -> None:
        return None


def overhead(calls: int = 200) -> dict[str, float]:
    """Median milliseconds of an empty Ray task / actor call and of a local env step."""
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
    args = p.parse_args()
    print(f"cores: {os.cpu_count()}  ray {ray.__version__}  tasks: {args.tasks}")
    root = Path(tempfile.mkdtemp(prefix="embodia-bench-cluster-"))
    try:
        # every local figure first, with no Ray running: an idle raylet and its prestarted
        # workers take a share of two cores and would flatter Ray by slowing the local pool
        gen, ev = {}, {}
        for backend in ("local", "ray"):
            if backend == "ray":
                connect_ray(None, args.workers)
            gen[backend] = generate_run(
                args.tasks, args.episodes, args.workers, args.size, root / backend, backend
            )
            ev[backend] = evaluate(args.tasks, args.episodes, args.workers, backend)
        o = overhead()
        print(
            f"overhead: empty task {o['task_ms']:.2f} ms, empty actor call "
            f"{o['actor_call_ms']:.2f} ms; one env step in a local worker "
            f"{o['local_env_step_ms']:.2f} ms"
        )
        for backend, r in gen.items():
            print(
                f"generate {backend:>5} workers={args.workers}: {r['frames']} frames in "
                f"{r['record_s']:.1f} s -> {r['fps']:.1f} frames/s"
            )
        print(f"generate ray / local: {gen['ray']['fps'] / gen['local']['fps']:.2f}x")
        for backend, r in ev.items():
            print(
                f"rollout  {backend:>5} workers={args.workers}: {r['episodes']} episodes in "
                f"{r['wall_s']:.1f} s -> {r['episodes_per_s']:.2f} episodes/s, "
                f"{r['steps_per_s']:.1f} steps/s, success {r['success']:.0%}"
            )
        print(
            f"rollout ray / local: {ev['ray']['episodes_per_s'] / ev['local']['episodes_per_s']:.2f}x"
        )
        ray.shutdown()

        from ray.cluster_utils import Cluster

        cluster = Cluster()
        per_node = max(1, args.workers // 2)
        for _ in range(2):
            cluster.add_node(num_cpus=per_node)
        ray.init(address=cluster.address, include_dashboard=False, logging_level="WARNING")
        r = generate_run(args.tasks, args.episodes, 2 * per_node, args.size, root / "2nodes", "ray")
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        print(
            f"generate ray on a simulated {nodes}-node cluster ({per_node} CPU each): "
            f"{r['frames']} frames in {r['record_s']:.1f} s -> {r['fps']:.1f} frames/s"
        )
        ray.shutdown()
        cluster.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
