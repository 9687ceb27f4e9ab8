"""GEM depth supervision benchmark: the extra training-step cost of the depth objective and the
latency of generating depth maps.

    python benchmarks/bench_depth.py                                   # tiny on CPU
    python benchmarks/bench_depth.py --presets gem-2b --device cuda --dtype bfloat16 --batch 4

Training step: a batch of flow / FAST / text samples, two views each with a depth map,
forward + backward + AdamW, on the same model built without the depth head and with it (same
seed, so the backbone is identical); the ratio is with / without. Latency: one observation (two
views -> two depth maps), the default 30 Euler steps with classifier-free guidance 5 (conditional
and unconditional batched), and with guidance 1 (conditional only), median of several runs.
The full-size preset uses SANA-1.5-class DiT and DC-AE f32c32 shapes, random-initialised.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from bench_model import sample as model_sample  # benchmarks/ is on sys.path when run
from bench_model import sync
from embodia.configs.depth import depth_preset
from embodia.configs.model import preset
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample


def sample(rng: np.random.Generator, mode: str, horizon: int) -> EmbodiedSample:
    """bench_model's sample plus a metric depth map per view."""
    s = model_sample(rng, mode, horizon)
    s.depths = [rng.uniform(0.3, 3.0, (128, 128)).astype(np.float32) for _ in range(2)]
    return s


def build(name: str, depth: bool, device: str, dtype: torch.dtype) -> EmbodiedModel:
    cfg = preset(name)
    if depth:
        cfg.depth = depth_preset(name)
    torch.manual_seed(0)
    return EmbodiedModel(cfg).to(device, dtype)


def step_time(model: EmbodiedModel, batch: dict, device: str, repeats: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    times = []
    for i in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        losses = model.compute_loss(batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    del opt
    return statistics.median(times)


@torch.no_grad()
def latency(model: EmbodiedModel, obs, device: str, guidance: float, repeats: int) -> float:
    model.eval()
    times = []
    for i in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        model.generate_depth(obs, guidance=guidance)
        sync(device)
        if i >= 1:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--presets", nargs="+", default=["tiny"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"load average at start={load:.2f}"
    )
    for name in args.presets:
        rng = np.random.default_rng(0)
        horizon = preset(name).action.horizon
        modes = (["flow"] * 4 + ["fast"] * 2 + ["text"] * 2) * (args.batch // 8 + 1)
        samples = [sample(rng, m, horizon) for m in modes[: args.batch]]
        plain = build(name, False, args.device, dtype)
        batch = plain.collate(samples, rng=np.random.default_rng(0))
        base = step_time(plain, batch, args.device, args.repeats)
        del plain
        model = build(name, True, args.device, dtype)
        head = sum(q.numel() for q in model.aux_heads["depth"].parameters()) / 1e6
        total = sum(q.numel() for q in model.parameters()) / 1e6
        with_depth = step_time(model, batch, args.device, args.repeats)
        print(
            f"[{name}] {total:.1f}M parameters ({head:.1f}M in the depth head incl. the frozen "
            f"codec); training step, batch {args.batch} x 2 views: {base * 1000:.0f} ms without "
            f"depth, {with_depth * 1000:.0f} ms with -> {with_depth / base:.2f}x"
        )
        obs = [sample(rng, "flow", horizon)]
        steps = model.cfg.depth.steps
        cfg_lat = latency(model, obs, args.device, model.cfg.depth.guidance, args.repeats)
        cond_lat = latency(model, obs, args.device, 1.0, args.repeats)
        print(
            f"[{name}] depth sampling, 2 views, {steps} Euler steps: "
            f"{cfg_lat * 1000:.0f} ms with CFG {model.cfg.depth.guidance:g}, "
            f"{cond_lat * 1000:.0f} ms conditional only"
        )
        del model


if __name__ == "__main__":
    main()
