"""Data-engine throughput: frames/s for 2 views RGB + metric depth at 128 px, 1 vs N workers.

A "frame" is one control step with every camera rendered (RGB + depth), the expert queried, the
physics stepped, and the episode encoded (video + depth PNG) and committed to staging: everything
`embodia data generate` does per step. The final consolidation into the LeRobot layout is timed
separately (it runs once per dataset, not per frame).

Also prints a single-process breakdown of one step, to show what limits the rate.

    python benchmarks/bench_engine.py [--tasks pick-place reach drawer-open] [--episodes 4] [--workers 2]
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

from embodia.configs.data import GenerateConfig
from embodia.data.engine import generate as gen


def breakdown(cameras: tuple[str, ...], size: int, steps: int = 150) -> dict[str, float]:
    """Milliseconds per step spent in each part, single process."""
    from embodia.data.engine.camera import mujoco_camera
    from embodia.data.engine.phases import ExpertWithPhases
    from embodia.data.engine.rendering import OffscreenRenderer
    from embodia.data.engine.scene import MetaWorldScene

    scene = MetaWorldScene("pick-place-v3")
    obs = scene.reset(1)
    renderer = OffscreenRenderer(scene.model, list(cameras), size, size, frozenset({"corner"}))
    expert = ExpertWithPhases("pick-place-v3")
    t = dict.fromkeys(["render_" + c for c in cameras] + ["camera_pose", "expert", "physics"], 0.0)
    for _ in range(steps):
        for c in cameras:
            s = time.perf_counter()
            renderer.render(scene.data, c)
            t["render_" + c] += time.perf_counter() - s
        s = time.perf_counter()
        for c in cameras:
            mujoco_camera(scene.model, scene.data, c, size, size)
        t["camera_pose"] += time.perf_counter() - s
        s = time.perf_counter()
        action, _ = expert.act(obs)
        t["expert"] += time.perf_counter() - s
        s = time.perf_counter()
        obs, _, trunc, _ = scene.step(np.clip(action, -1, 1))
        t["physics"] += time.perf_counter() - s
        if trunc:
            obs = scene.reset(2)
    renderer.close()
    scene.close()
    return {k: 1000 * v / steps for k, v in t.items()}


def run(
    tasks: list[str], episodes: int, workers: int, size: int, root: Path, backend: str = "local"
) -> dict[str, float]:
    cfg = GenerateConfig(
        output=root / f"{backend}-w{workers}",
        backend=backend,
        tasks=tuple(tasks),
        episodes_per_task=(episodes, 0, 0),
        workers=workers,
        image_size=size,
        progress=False,
    )
    stage = gen.staging_dir(cfg)
    resolved = gen.validate(cfg)
    gen._check_resume(stage, cfg)
    plan = gen.plan_episodes(cfg.seed, resolved, cfg.split_of_counts())
    shards = gen.ShardAssembler(cfg, stage, plan, set())
    start = time.perf_counter()
    # recording includes assembling each shard as it completes (in the driver, as generate does)
    gen._run_workers(cfg, stage, gen.recording_order(plan), 0, len(plan), shards.episode_staged)
    record_s = time.perf_counter() - start
    start = time.perf_counter()
    gen._finalize(cfg, stage, plan, shards)
    finalize_s = time.perf_counter() - start
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

    frames = LeRobotV3Dataset(cfg.output).num_frames
    return {
        "frames": frames,
        "record_s": record_s,
        "fps": frames / record_s,
        "finalize_s": finalize_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tasks", nargs="+", default=["pick-place", "reach", "drawer-open", "button-press"]
    )
    p.add_argument("--episodes", type=int, default=3, help="episodes per task")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", type=int, default=128)
    args = p.parse_args()
    cams = GenerateConfig().cameras
    print(f"cores: {os.cpu_count()}  cameras: {cams}  size: {args.size}px  tasks: {args.tasks}")
    parts = breakdown(cams, args.size)
    total = sum(parts.values())
    print(
        "single-process step breakdown (ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        + f"  => {total:.1f} ms/step, {1000 / total:.1f} frames/s before encoding/IO"
    )
    root = Path(tempfile.mkdtemp(prefix="embodia-bench-"))
    try:
        results = {}
        for w in sorted({1, args.workers}):
            r = run(args.tasks, args.episodes, w, args.size, root)
            results[w] = r
            print(
                f"workers={w}: {r['frames']} frames in {r['record_s']:.1f} s -> {r['fps']:.1f} frames/s "
                f"(+ {r['finalize_s']:.1f} s to assemble the LeRobot dataset)"
            )
        if len(results) == 2:
            print(
                f"speed-up with {args.workers} workers: {results[args.workers]['fps'] / results[1]['fps']:.2f}x"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
