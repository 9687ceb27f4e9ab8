"""The published-size presets at real size: one forward pass, one cached flow sample, FAST decoding
and (gem-2b) one depth generation, in bf16, so shapes, dtypes, routing and caches run at the sizes
the papers use (the unit tests only build them on the meta device).

    python benchmarks/bench_full_size.py                                   # both, this CPU
    python benchmarks/bench_full_size.py --presets gem-2b --device cuda    # the same on a GPU

Weights are random (built from the config in bf16, about 8 GB for wall-oss-3b: no download). One
observation of two 128 px views, the preset's chunk, ``--flow-steps`` Euler steps with the prefix
cached, ``--fast-tokens`` greedily decoded tokens (a random model never closes its turn, so the
figure is per token) and ``--depth-steps`` Euler steps of the depth generator with guidance 5.
Prints seconds per call and the process's peak resident memory after each preset.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import numpy as np
import torch

from embodia.configs.depth import depth_preset
from embodia.configs.model import preset
from embodia.models.action_space import SAWYER
from embodia.models.embodied import EmbodiedModel
from embodia.models.fast_tokenizer import FastActionTokenizer
from embodia.models.sequence import EmbodiedSample


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kB


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    tic = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - tic


def observation(rng: np.random.Generator, horizon: int) -> EmbodiedSample:
    return EmbodiedSample(
        images=[rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)],
        instruction="pick up the puck and place it at the goal",
        mode="flow",
        state=SAWYER.to_template(rng.normal(size=4)),
        dof_mask=SAWYER.dof_mask,
        actions=SAWYER.to_template(rng.normal(size=(horizon, 4)) * 0.3),
        depths=[rng.uniform(0.3, 2.0, (128, 128)).astype(np.float32) for _ in range(2)],
    )


@torch.no_grad()
def run(name: str, args) -> None:
    cfg = preset(name)
    if name == "gem-2b" or args.depth:
        cfg.depth = depth_preset(name)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # built in bf16: fp32 weights would not fit here
    try:
        model, build_s = timed(lambda: EmbodiedModel(cfg).to(args.device).eval(), args.device)
    finally:
        torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    print(f"[{name}] {params:.2f}B parameters, {model.dtype}, built in {build_s:.0f} s")
    rng = np.random.default_rng(0)
    horizon = model.cfg.action.horizon
    chunks = np.sin(np.linspace(0, 6, horizon))[None, :, None] * rng.uniform(0.2, 1, (200, 1, 4))
    model.fast_tokenizer = FastActionTokenizer.fit(chunks.astype(np.float32), vocab_size=256)
    model.fast_slots = SAWYER.indices.tolist()
    obs = observation(rng, horizon)
    batch = {k: v.to(args.device) for k, v in model.collate([obs]).items()}
    losses, fwd_s = timed(lambda: model.compute_loss(batch), args.device)
    print(
        f"[{name}] forward (flow + depth losses, {batch['input_ids'].shape[1]} tokens): "
        f"{fwd_s:.1f} s; losses { ({k: round(float(v), 3) for k, v in losses.items()}) }"
    )
    out, flow_s = timed(lambda: model.sample_actions([obs], steps=args.flow_steps), args.device)
    assert out.actions.shape == (1, horizon, out.actions.shape[-1])
    assert torch.isfinite(out.actions.float()).all()
    print(f"[{name}] flow chunk, {args.flow_steps} cached Euler steps: {flow_s:.1f} s")
    ids, fast_s = timed(
        lambda: model.generate_text([obs], ["actions"], max_new_tokens=args.fast_tokens),
        args.device,
    )
    print(
        f"[{name}] FAST-mode greedy decoding, {len(ids[0])} tokens: {fast_s:.1f} s "
        f"({fast_s / max(1, len(ids[0])):.2f} s per token incl. the prompt)"
    )
    if "depth" in model.aux_heads:
        depth, depth_s = timed(
            lambda: model.generate_depth([obs], steps=args.depth_steps), args.device
        )
        assert torch.isfinite(depth.depth.float()).all()
        print(
            f"[{name}] depth generation, 2 views, {args.depth_steps} Euler steps with CFG: "
            f"{depth_s:.1f} s -> maps {tuple(depth.depth.shape)} metric={depth.metric}"
        )
    print(f"[{name}] peak resident memory so far: {peak_rss_gb():.1f} GB")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--presets", nargs="+", default=["wall-oss-3b", "gem-2b"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--flow-steps", type=int, default=10)
    p.add_argument("--fast-tokens", type=int, default=8)
    p.add_argument("--depth-steps", type=int, default=2)
    p.add_argument("--depth", action="store_true", help="give every preset a depth head")
    args = p.parse_args()
    print(f"device={args.device} threads={torch.get_num_threads()}")
    for name in args.presets:
        run(name, args)
        gc.collect()  # the previous preset's weights go before the next is built


if __name__ == "__main__":
    main()
