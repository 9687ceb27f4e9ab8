"""Meta-World environments with a fresh, reproducible layout for every layout seed.

Meta-World's benchmark classes pre-sample 50 layouts per task and ``reset(seed=...)`` is ignored, so
"N episodes" easily means the same few initial states over and over. Here every episode names its
own layout seed: the environment's private RNG is seeded with it and the task's random reset vector
(object and goal positions) is drawn from it, which is bitwise reproducible and never frozen.

A task with a shared start (``TaskSpec.start``: a half-open drawer that "open" and "close" both
apply to) is built on its scene's base environment whatever the instruction, so the start says
nothing about it; every rival task's own environment, reset to the same layout and given the
simulator state each step, judges whether its goal holds. The step reports the instructed task's
success and reward, and in ``info["outcomes"]`` which rivals' goals hold.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT50_V3_ARGS_KWARGS

from embodia.data.engine.tasks import TASKS, rivals

#: Control rate of every Meta-World v3 task: 0.0025 s physics step x frame_skip 5.
CONTROL_FPS = 80


class MetaWorldScene:
    """One Meta-World task, reset to a given layout seed; goal observable as in the MT benchmarks."""

    def __init__(self, env_name: str) -> None:
        if env_name not in TASKS:
            raise ValueError(f"unknown Meta-World task {env_name!r}")
        self.env_name = env_name
        self.start = TASKS[env_name].start
        self.env: Any = _environment(env_name if self.start is None else self.start.base)
        # rival task -> its own environment, judging its goal on the shared simulator state
        self.judges: dict[str, Any] = {}
        if self.start is not None:
            self.judges = {t: _environment(TASKS[t].metaworld_env) for t in rivals(env_name)}
            # the goal marker would show where the instruction leads: the image must not
            self.env.model.site_rgba[self.env.model.site("goal").id, 3] = 0.0
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
        self.layout = np.array(self.env._last_rand_vec, dtype=np.float64)
        if self.start is not None:
            self._set_shared_start(layout_seed)
        # Several tasks move bodies during reset without recomputing poses, so renders and object
        # positions would show the previous layout until the first step (peg-insert-side's box is
        # up to 28 cm off). Kinematics alone fixes that and leaves the physics bit-identical.
        mujoco.mj_kinematics(self.env.model, self.env.data)
        mujoco.mj_camlight(self.env.model, self.env.data)
        obs = np.asarray(self.env._get_obs(), dtype=np.float64)
        obs[18:36] = obs[:18]  # the "previous frame" part, as Meta-World's own reset sets it
        self.env._prev_obs = obs[:18].copy()
        return obs

    def _set_shared_start(self, layout_seed: int) -> None:
        """Move the start's joint partway (a fraction drawn from the layout seed, appended to the
        layout) and reset every judge to this layout; the base environment then carries the
        instructed task's target, so observations and goal regions are the instructed ones."""
        start = self.start
        assert start is not None and self.layout is not None
        joint = self.env.model.joint(start.joint)
        low, high = joint.range
        fraction = np.random.default_rng([int(layout_seed), 1]).uniform(*start.fraction)
        self.env.data.qpos[joint.qposadr[0]] = low + fraction * (high - low)
        self.env.data.qvel[:] = 0.0
        mujoco.mj_forward(self.env.model, self.env.data)
        for judge in self.judges.values():
            judge._freeze_rand_vec = True
            judge._last_rand_vec = self.layout.copy()
            judge.reset()
        self.env._target_pos = np.array(self.judges[self.env_name]._target_pos, dtype=np.float64)
        self.env.model.site("goal").pos = self.env._target_pos
        self.layout = np.append(self.layout, fraction)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict]:
        obs, reward, _terminated, truncated, info = self.env.step(action)
        if self.judges:
            outcomes = {}
            for task, judge in self.judges.items():
                judge.set_state(self.env.data.qpos.copy(), self.env.data.qvel.copy())
                r, judged = judge.evaluate_state(np.asarray(judge._get_obs()), action)
                outcomes[task] = bool(judged["success"])
                if task == self.env_name:
                    reward, info = r, dict(judged)
            info["outcomes"] = outcomes
        return obs, float(reward), bool(truncated), info

    def joint_positions(self) -> np.ndarray:
        """Arm joints and the two finger joints (the robot's own proprioception)."""
        return np.array(self.env.data.qpos[:9], dtype=np.float32)

    def close(self) -> None:
        self.env.close()
        for judge in self.judges.values():
            judge.close()


def _environment(env_name: str) -> Any:
    """A Meta-World v3 environment with the goal observable and a fresh layout per seed."""
    if env_name not in ALL_V3_ENVIRONMENTS:
        raise ValueError(f"unknown Meta-World task {env_name!r}")
    env: Any = ALL_V3_ENVIRONMENTS[env_name]()
    kwargs = dict(MT50_V3_ARGS_KWARGS[env_name]["kwargs"])
    kwargs.pop("task_id", None)
    env._set_task_inner(**kwargs)
    env._set_task_called = True
    if env._partially_observable:
        env._partially_observable = False
        # the observation space is a cached property computed from the observability flag
        env.__dict__.pop("sawyer_observation_space", None)
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    return env
