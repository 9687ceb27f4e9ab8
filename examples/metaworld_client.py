"""A robot loop: drive one Meta-World episode through an embodia policy server.

    embodia serve --preset tiny &                     # or --checkpoint DIR
    python examples/metaworld_client.py --task pick-place --port 8000
    python examples/metaworld_client.py --serve-preset tiny   # self-contained: server in-process

This is what robot code looks like: it renders the server's cameras exactly as the data engine
recorded them (same renderer, same upside-down fix, same state = end-effector xyz + gripper
opening), sends images + state + instruction, and executes the returned actions one control tick
at a time through :class:`~embodia.serving.chunk_broker.ChunkBroker`, which fetches the next chunk
while the current one is still being executed. With random weights (``--preset tiny``) the
episode will not succeed; it runs end to end and reports steps, chunks and latency.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering, before MuJoCo is imported

import numpy as np
import tyro

from embodia.serving.chunk_broker import ChunkBroker
from embodia.serving.client import PolicyClient


@dataclass
class ExampleConfig:
    """Run one Meta-World episode with actions from an embodia policy server."""

    task: str = "reach"
    """Meta-World task, with or without -v3."""
    layout_seed: int = 0
    """Object / goal layout of the episode."""
    max_steps: int = 150
    """Episode length cap, control ticks (80 Hz)."""
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    """Default: $EMBODIA_API_KEY."""
    image_size: int = 128
    """Rendered view size in pixels (the server resizes to the model's input)."""
    execute_steps: int | None = None
    """Actions executed from each chunk before switching (default: the whole chunk)."""
    prefetch_steps: int = 4
    """Request the next chunk this many ticks before the switch."""
    serve_preset: str | None = None
    """Start an in-process server with this random-weights preset instead of connecting."""


def run(cfg: ExampleConfig) -> dict:
    from embodia.data.engine.camera import renders_upside_down
    from embodia.data.engine.rendering import OffscreenRenderer
    from embodia.data.engine.scene import MetaWorldScene
    from embodia.data.engine.tasks import all_instructions, resolve_tasks

    (env_name,) = resolve_tasks([cfg.task])
    server = None
    if cfg.serve_preset is not None:
        from embodia.serving.demo import demo_policy
        from embodia.serving.server import PolicyServer
        from embodia.serving.thread import ServerThread

        server = ServerThread(PolicyServer(demo_policy(cfg.serve_preset), port=0)).start()
        cfg.port = server.port
    scene = MetaWorldScene(env_name)
    try:
        client = PolicyClient(
            cfg.host, cfg.port, api_key=cfg.api_key or os.environ.get("EMBODIA_API_KEY")
        )
        cameras = client.metadata["cameras"]
        state = scene.reset(cfg.layout_seed)
        instruction = all_instructions(env_name)[0]
        upside_down = frozenset(
            c for c in cameras if renders_upside_down(scene.model, scene.data, c)
        )
        renderer = OffscreenRenderer(
            scene.model, cameras, cfg.image_size, cfg.image_size, upside_down
        )
        broker = ChunkBroker(client, cfg.execute_steps, cfg.prefetch_steps)
        success, steps, start = False, 0, time.perf_counter()
        try:
            while steps < cfg.max_steps:
                steps += 1
                views = renderer.render_all(scene.data)
                obs = {
                    "images": {c: views[c].rgb for c in cameras},
                    "state": state[:4].astype(np.float32),  # EE xyz + gripper opening
                    "prompt": instruction,
                }
                action = np.clip(broker.act(obs), -1.0, 1.0)  # what the environment executes
                state, _reward, truncated, info = scene.step(action)
                if info.get("success"):
                    success = True
                    break
                if truncated:
                    break
        finally:
            broker.close()
            renderer.close()
            client.close()
        elapsed = time.perf_counter() - start
    finally:
        scene.close()
        if server is not None:
            server.stop()
    result = {
        "task": env_name,
        "instruction": instruction,
        "success": success,
        "steps": steps,
        "chunks": broker.stats.chunks,
        "blocked_ticks": broker.stats.blocked,
        "wait_s": round(broker.stats.wait_s, 3),
        "ticks_per_s": round(steps / elapsed, 1),
    }
    return result


def main() -> None:
    result = run(tyro.cli(ExampleConfig))
    print(
        f"{result['task']} ({result['instruction']!r}): success={result['success']} "
        f"after {result['steps']} steps; {result['chunks']} chunks, "
        f"{result['blocked_ticks']} ticks waited for a chunk ({result['wait_s']} s), "
        f"{result['ticks_per_s']} ticks/s"
    )


if __name__ == "__main__":
    main()
