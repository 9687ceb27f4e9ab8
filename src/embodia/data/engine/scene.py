"""Meta-World environments with a fresh, reproducible layout for every layout seed.

Meta-World's benchmark classes pre-sample 50 layouts per task and ``reset(seed=...)`` is ignored, so
"N episodes" easily means the same few initial states over and over. Here every episode names its
own layout seed: the environment's private RNG is seeded with it and the task's random reset vector
(object and goal positions) is drawn from it, which is bitwise reproducible and never frozen.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT50_V3_ARGS_KWARGS

#: Control rate of every Meta-World v3 task: 0.0025 s physics step x frame_skip 5.
CONTROL_FPS = 80


class MetaWorldScene:
    """One Meta-World task, reset to a given layout seed; goal observable as in the MT benchmarks."""

    def __init__(self, env_name: str) -> None:
        if env_name not in ALL_V3_ENVIRONMENTS:
            raise ValueError(f"unknown Meta-World task {env_name!r}")
        self.env_name = env_name
        self.env: Any = ALL_V3_ENVIRONMENTS[env_name]()
        kwargs = dict(MT50_V3_ARGS_KWARGS[env_name]["kwargs"])
        kwargs.pop("task_id", None)
        self.env._set_task_inner(**kwargs)
        self.env._set_task_called = True
        if self.env._partially_observable:
            self.env._partially_observable = False
            # the observation space is a cached property computed from the observability flag
            self.env.__dict__.pop("sawyer_observation_space", None)
        self.env._freeze_rand_vec = False
        self.env.seeded_rand_vec = True
        self.layout: np.ndarray | None = None
        if self.fps != CONTROL_FPS:
            raise RuntimeError(
                f"{env_name} runs at {self.fps} Hz, not the expected {CONTROL_FPS} Hz"
            )

    @property
    def model(self):
        return self.env.model

    @property
    def data(self):
        return self.env.data

    @property
    def max_steps(self) -> int:
        return int(self.env.max_path_length)

    @property
    def fps(self) -> int:
        return round(1.0 / (self.env.model.opt.timestep * self.env.frame_skip))

    def reset(self, layout_seed: int) -> np.ndarray:
        """Reset to the layout drawn from ``layout_seed``; returns the 39-D observation."""
        self.env.seed(int(layout_seed))
        self.env.reset()
        # Several tasks move bodies during reset without recomputing poses, so renders and object
        # positions would show the previous layout until the first step (peg-insert-side's box is
        # up to 28 cm off). Kinematics alone fixes that and leaves the physics bit-identical.
        mujoco.mj_kinematics(self.env.model, self.env.data)
        mujoco.mj_camlight(self.env.model, self.env.data)
        obs = np.asarray(self.env._get_obs(), dtype=np.float64)
        obs[18:36] = obs[:18]  # the "previous frame" part, as Meta-World's own reset sets it
        self.env._prev_obs = obs[:18].copy()
        self.layout = np.array(self.env._last_rand_vec, dtype=np.float64)
        return obs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict]:
        obs, reward, _terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(truncated), info

    def joint_positions(self) -> np.ndarray:
        """Arm joints and the two finger joints (the robot's own proprioception)."""
        return np.array(self.env.data.qpos[:9], dtype=np.float32)

    def close(self) -> None:
        self.env.close()
