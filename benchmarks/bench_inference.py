"""One policy call, four ways, in one run: the model's own chunk latency, `Policy.infer` in this
process, a policy call inside `embodia eval rollout`, and a request through `embodia serve`.

    python benchmarks/bench_inference.py --checkpoint runs/tiny [--tasks drawer-close] [--requests 30]

1. model: ``EmbodiedModel.sample_actions`` on an already-built sample (cached flow prefix,
   the checkpoint's Euler steps): what the model costs;
2. policy: ``Policy.infer`` on a raw observation (two 128 px views, state, prompt): validation,
   normalisation, resizing, patching, sampling and un-normalisation;
3. rollout: the real evaluation loop (``rollout_episodes``, environment worker processes), its
   policy time divided by its policy calls (one call answers every slot that needs a chunk);
4. serve: the real ``embodia serve`` process and openpi-style client on loopback: the client's
   round trip and the server's own ``infer_ms``.

Each figure is a median (rollout: a mean over its calls) and is also printed as a ratio to (1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_serve import start_server
from embodia.configs.eval import RolloutConfig
from embodia.evaluation.rollout import rollout_episodes
from embodia.evaluation.setup import build_rollout
from embodia.policy import Policy
from embodia.serving.client import PolicyClient


def observation(rng: np.random.Generator, policy: Policy, size: int) -> dict:
    return {
        "images": {
            c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in policy.config.cameras
        },
        "state": np.zeros(policy.state_dim, np.float32),
        "prompt": "close the drawer",
    }


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tasks", nargs="+", default=["drawer-close"])
    ap.add_argument("--episodes", type=int, default=2, help="rollout episodes per task")
    ap.add_argument("--max-steps", type=int, default=96)
    ap.add_argument("--workers", type=int, default=2, help="rollout environment workers")
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--image-size", type=int, default=128)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    policy = Policy.load(args.checkpoint)
    print(
        f"checkpoint {args.checkpoint}: {policy.model.cfg.name}, horizon {policy.horizon}, "
        f"cameras {list(policy.config.cameras)}; torch threads {torch.get_num_threads()}, "
        f"CPUs {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}"
    )
    obs = observation(rng, policy, args.image_size)
    sample = policy.reader.action_sample(policy.reader.canonical(obs), policy.config.mode)
    model_ms = median_ms(
        lambda: policy.model.sample_actions([sample], steps=policy.config.flow_steps),
        args.requests,
    )
    policy_ms = median_ms(lambda: policy.infer(obs), args.requests)

    cfg = RolloutConfig(
        checkpoint=Path(args.checkpoint),
        tasks=tuple(args.tasks),
        episodes_per_task=args.episodes,
        max_steps=args.max_steps,
        execute_steps=8,
        workers=args.workers,
        videos=0,
    )
    setup = build_rollout(cfg)
    _, timing = rollout_episodes(setup.policy, setup.episodes, setup.settings)
    rollout_ms = 1000 * timing["policy_s"] / max(1, timing["policy_calls"])
    per_request = timing["queries"] / max(1, timing["policy_calls"])

    proc, url = start_server(None, None, checkpoint=args.checkpoint)
    try:
        with PolicyClient(url, None, timeout=120) as client:
            infer_ms: list[float] = []

            def request() -> None:
                reply = client.infer(observation(rng, policy, args.image_size))
                infer_ms.append(reply["server_timing"]["infer_ms"])

            serve_ms = median_ms(request, args.requests)
            server_infer_ms = statistics.median(infer_ms[3:])
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    rows = [
        ("model chunk (sample_actions)", model_ms),
        ("Policy.infer in process", policy_ms),
        (f"eval rollout policy call ({per_request:.1f} obs/call)", rollout_ms),
        ("embodia serve: server infer_ms", server_infer_ms),
        ("embodia serve: client round trip", serve_ms),
    ]
    for name, ms in rows:
        print(f"{name:<44} {ms:8.1f} ms   {ms / model_ms:5.2f}x model")


if __name__ == "__main__":
    main()
