"""One Meta-World task for evaluation, observed exactly as the data engine recorded it.

The policy must see what it saw in training: the same cameras, rendered by the engine's
:class:`~embodia.data.engine.rendering.OffscreenRenderer` with the same upside-down correction, at
the dataset's resolution (the model then resizes as in training), and the same state (end-effector
xyz + gripper opening = ``obs[:4]``). Layouts come from the engine's layout seeds, so split
``test`` gives initial states that no training episode had.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from embodia.data.engine.camera import renders_upside_down
from embodia.data.engine.phases import ExpertWithPhases
from embodia.data.engine.rendering import OffscreenRenderer
from embodia.data.engine.scene import MetaWorldScene
from embodia.data.engine.splits import layout_seed
from embodia.data.engine.tasks import TASKS, instructions, layout_key, resolve_tasks

#: Meta-World v3's own truncation (``max_path_length``); the default step limit.
METAWORLD_MAX_STEPS = 500


def metaworld_episodes(
    tasks: tuple[str, ...],
    split: str,
    n: int,
    seed: int,
    held_out: int = 0,
    which: str = "seen",
) -> list[dict]:
    """Episode descriptions: one layout seed per (task, split, number), never the same twice.

    The instruction is drawn with the layout seed, as the data engine does, from the paraphrases
    the training data used (``seen``) or from the ``held_out`` ones it never used (``held-out``):
    the same layouts either way, so the two scores differ only in the phrasing.
    """
    out = []
    for task in resolve_tasks(tasks):
        for number in range(n):
            s = layout_seed(seed, layout_key(task), split, number)
            choices = instructions(task, held_out, which)
            instruction = str(np.random.default_rng(s).choice(choices))
            out.append(
                {
                    "task": task,
                    "number": number,
                    "seed": s,
                    "split": split,
                    "instruction": instruction,
                }
            )
    return out


class MetaWorldEvalEnv:
    """A task's scene plus a renderer for the configured cameras (created on first render).

    Every observation also carries ``subtask``: the phase the task's scripted expert assigns to
    the current state (the labels the data engine trained subtask prediction on), the reference
    a policy's predicted subtask is scored against. A step reports ``outcome``: the task whose
    goal holds (the instructed one or, from a shared start, a rival's), else None.
    """

    max_steps = METAWORLD_MAX_STEPS

    def __init__(self, task: str, cameras: tuple[str, ...], image_size: int) -> None:
        self.task = task
        self.scene = MetaWorldScene(task)
        self.scene.reset(0)
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.rotate180 = frozenset(
            c for c in self.cameras if renders_upside_down(self.scene.model, self.scene.data, c)
        )
        self._renderer: OffscreenRenderer | None = None
        self._obs: np.ndarray | None = None
        self._phases = TASKS[task].phases
        self._expert = ExpertWithPhases(task)

    def reset(self, episode: dict[str, Any], render: bool) -> dict[str, Any]:
        self._obs = self.scene.reset(int(episode["seed"]))
        self._expert.reset()
        out = self._observation(render)
        out["layout"] = [float(v) for v in self.scene.layout]
        return out

    def step(self, action: np.ndarray, render: bool) -> dict[str, Any]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._obs, reward, truncated, info = self.scene.step(action)
        out = self._observation(render)
        success = bool(info.get("success", 0.0))
        reached = [t for t, held in info.get("outcomes", {}).items() if held]
        out.update(
            reward=float(reward),
            success=success,
            truncated=bool(truncated),
            outcome=self.task if success else (reached[0] if reached else None),
        )
        return out

    def _observation(self, render: bool) -> dict[str, Any]:
        obs = self._obs
        with warnings.catch_warnings():  # the experts warn about their own gains every step
            warnings.simplefilter("ignore", UserWarning)
            _, phase = self._expert.act(obs)
        out: dict[str, Any] = {
            "state": obs[:4].astype(np.float32),
            "env_state": obs.copy(),
            "subtask": self._phases[phase],
        }
        if render:
            out["images"] = self.render()
        return out

    def render(self) -> dict[str, np.ndarray]:
        if self._renderer is None:
            size = self.image_size
            self._renderer = OffscreenRenderer(
                self.scene.model, list(self.cameras), size, size, self.rotate180
            )
        return {c: f.rgb.copy() for c, f in self._renderer.render_all(self.scene.data).items()}

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self.scene.close()
