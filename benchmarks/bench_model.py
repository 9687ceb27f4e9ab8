"""VLA core benchmark: training-step time per preset, flow sampling latency with the prefix
KV cache vs re-running the whole model at every Euler step, and one Uni-CoT call (reasoning +
subtask + flow actions) reusing the text decoding's cache as the flow prefix vs encoding the
prompt and chain of thought again (what ``sample_actions`` did before).

    python benchmarks/bench_model.py                       # tiny + small on CPU
    python benchmarks/bench_model.py --presets wall-oss-3b --device cuda --dtype bfloat16 --latency-only

Training step: batch 8, two 128 px views per sample (resized to the preset's input size), a mix of
flow, FAST and text samples, forward + backward + AdamW. Latency: one observation (2 views),
chunk 32, 10 Euler steps, median of several runs after warm-up. The Uni-CoT call decodes
``--cot-tokens`` greedy tokens (a random-init model rarely closes its turn early, so both variants
decode the same number) before the chunk.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from embodia.models.action_space import SAWYER
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample


def sample(rng: np.random.Generator, mode: str, horizon: int) -> EmbodiedSample:
    return EmbodiedSample(
        images=[rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)],
        instruction="pick up the puck and place it at the goal",
        mode=mode,
        state=SAWYER.to_template(rng.normal(size=4)),
        dof_mask=SAWYER.dof_mask,
        subtask="grasp the puck",
        answer="the puck is to the left of the goal",
        actions=SAWYER.to_template(rng.normal(size=(horizon, 4)) * 0.3),
        fast_ids=list(rng.integers(0, 200, size=20)),
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_step_time(model: EmbodiedModel, device: str, repeats: int) -> float:
    rng = np.random.default_rng(0)
    modes = ["flow"] * 4 + ["fast"] * 2 + ["text"] * 2
    batch = model.collate([sample(rng, m, model.cfg.action.horizon) for m in modes], rng=rng)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
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
    return statistics.median(times)


def collate_time(model: EmbodiedModel, repeats: int) -> float:
    rng = np.random.default_rng(0)
    samples = [
        sample(rng, m, model.cfg.action.horizon) for m in ["flow"] * 4 + ["fast"] * 2 + ["text"] * 2
    ]
    start = time.perf_counter()
    for _ in range(repeats):
        model.collate(samples, rng=rng)
    return (time.perf_counter() - start) / repeats


@torch.no_grad()
def latency(model: EmbodiedModel, device: str, use_cache: bool, steps: int, repeats: int) -> float:
    rng = np.random.default_rng(1)
    obs = [sample(rng, "flow", model.cfg.action.horizon)]
    times = []
    for i in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        model.sample_actions(obs, steps=steps, use_cache=use_cache)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def cot_latency(
    model: EmbodiedModel, device: str, reuse: bool, steps: int, tokens: int, repeats: int
):
    """One reasoning + subtask + flow-actions call; ``reuse=False`` is the former path: decode the
    text, then encode prompt + text again as the flow's prefix."""
    rng = np.random.default_rng(2)
    obs = [sample(rng, "flow", model.cfg.action.horizon)]
    levels = ["reasoning", "subtask", "actions"]
    noise = torch.zeros(1, model.cfg.action.horizon, obs[0].actions.shape[-1])
    times = []
    for i in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        if reuse:
            model.sample_actions(
                obs, levels=levels, steps=steps, max_cot_tokens=tokens, noise=noise
            )
        else:
            ids = model._greedy(obs, levels, tokens).ids
            model._flow(obs, levels, ids, steps, True, noise)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--presets", nargs="+", default=["tiny", "small"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cot-tokens", type=int, default=24)
    p.add_argument("--latency-only", action="store_true")
    args = p.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()}")
    for name in args.presets:
        torch.manual_seed(0)
        model = EmbodiedModel.from_preset(name).to(args.device, dtype)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"[{name}] {params:.1f}M parameters, {model.tokens_per_image} tokens per view "
            f"({model.cfg.image_size}px), chunk {model.cfg.action.horizon}"
        )
        if not args.latency_only:
            model.train()
            step = train_step_time(model, args.device, args.repeats)
            col = collate_time(model, args.repeats)
            print(
                f"[{name}] training step (batch 8, 2 views): {step * 1000:.0f} ms "
                f"(+ {col * 1000:.0f} ms to build the batch)"
            )
        model.eval()
        cached = latency(model, args.device, True, args.steps, args.repeats)
        full = latency(model, args.device, False, args.steps, args.repeats)
        print(
            f"[{name}] flow chunk latency, {args.steps} steps: cached prefix {cached * 1000:.1f} ms, "
            f"re-run each step {full * 1000:.1f} ms -> {full / cached:.1f}x"
        )
        reused = cot_latency(model, args.device, True, args.steps, args.cot_tokens, args.repeats)
        again = cot_latency(model, args.device, False, args.steps, args.cot_tokens, args.repeats)
        print(
            f"[{name}] reasoning + subtask + flow chunk ({args.cot_tokens} text tokens): decoding "
            f"cache reused {reused * 1000:.1f} ms, prefix encoded again {again * 1000:.1f} ms "
            f"-> {(again - reused) * 1000:.1f} ms saved ({again / reused:.2f}x)"
        )
        del model


if __name__ == "__main__":
    main()
