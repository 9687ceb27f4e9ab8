"""Where a window-open policy's gripper goes: its offset from the expert's target over time.

    python benchmarks/trace_window_open.py --checkpoint outputs/qs/run --episodes 4

Runs a checkpoint closed loop on window-open test layouts (the layouts ``eval rollout`` uses,
replanning every ``--execute-steps``) and prints, every 20 steps, the gripper's horizontal distance
``dxy`` and height ``dz`` from the point the scripted expert aims at first (the handle offset by
Meta-World's (-3, -3, -8) cm), and the handle's x (it moves when the window slides). The expert
descends only once ``dxy`` < 4 cm and then pushes +x; a policy that pushes with ``dxy`` of 10 cm or
more pushes beside the handle (docs/learning.md, "Where window-open fails").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from embodia.evaluation.metaworld_env import MetaWorldEvalEnv, metaworld_episodes
from embodia.evaluation.policies import ModelChunkPolicy, Request, load_policy, training_data_config

EXPERT_OFFSET = np.array([-0.03, -0.03, -0.08])  # SawyerWindowOpenV3Policy's handle offset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--split", default="test")
    ap.add_argument("--execute-steps", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=300)
    args = ap.parse_args()

    policy = load_policy(args.checkpoint)
    chunks = ModelChunkPolicy(policy, None, ("actions",))
    data = training_data_config(args.checkpoint)
    episodes = metaworld_episodes(
        ("window-open",),
        args.split,
        args.episodes,
        int(data.get("seed", 0)),
        int(data.get("held_out_instructions", 1)),
    )
    env = MetaWorldEvalEnv(
        episodes[0]["task"], tuple(policy.config.cameras), int(data.get("image_size", 128))
    )
    for ep in episodes:
        obs, rows, success = env.reset(ep, True), [], False
        chunks.begin_episode(0, ep)
        for t in range(0, args.max_steps, args.execute_steps):
            actions = chunks.predict([Request(0, t, ep, obs)])[0].actions
            for action in actions[: args.execute_steps]:
                s = obs["env_state"]
                target = s[4:7] + EXPERT_OFFSET
                rows.append((np.linalg.norm(s[:2] - target[:2]), s[2] - target[2], s[4]))
                obs = env.step(action, True)
                success |= obs["success"]
            if success:
                break
        print(f"layout {ep['number']}: success {success}, {len(rows)} steps")
        for i in range(0, len(rows), 20):
            dxy, dz, hx = rows[i]
            print(f"  t={i:3d}  dxy={dxy:.3f} m  dz={dz:+.3f} m  handle x={hx:+.3f} m")
    env.close()


if __name__ == "__main__":
    main()
