"""Grounded reasoning for every frame: the Uni-CoT "Reasoning:" level, computed from simulator state.

WALL-OSS's chain of thought goes instruction -> reasoning -> subtask -> actions. A reasoning text
is only worth training on if it is true of the frame it is attached to, so, like the QA answers,
it is written from the simulator: where each task object is relative to the gripper (metres and
centimetres in the robot's frame: ahead = away from the robot's base, +y; right = +x; above =
+z), whether the gripper is open, which of the expert's stages are done, and the plan from here
(the current stage, then the rest). For example::

    The drawer is 0.21 m away: 15 cm ahead, 4 cm left and 12 cm below the gripper. The gripper is
    open. Done: move above the drawer. Now: lower the gripper in front of the drawer; then: push
    the drawer closed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Components of an offset smaller than this are not spoken (they would read as noise).
MIN_OFFSET_M = 0.01
#: Meta-World's gripper opening (observation element 3): above this the fingers are apart.
OPEN_ABOVE = 0.8


def _offset(delta: np.ndarray) -> str:
    parts = []
    words = zip(delta, ("right", "ahead", "above"), ("left", "behind", "below"), strict=True)
    for value, pos, neg in words:
        if abs(value) >= MIN_OFFSET_M:
            parts.append(f"{round(abs(value) * 100)} cm {pos if value > 0 else neg}")
    if not parts:
        return "at the gripper"
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{joined} of the gripper"


def describe_object(name: str, position: np.ndarray, gripper: np.ndarray) -> str:
    delta = np.asarray(position, dtype=np.float64) - np.asarray(gripper, dtype=np.float64)
    where = _offset(delta)
    return f"The {name} is {np.linalg.norm(delta):.2f} m away: {where}."


def reasoning_text(
    objects: Sequence[tuple[str, np.ndarray]],
    gripper: np.ndarray,
    gripper_opening: float,
    phases: Sequence[str],
    phase_index: int,
) -> str:
    """The reasoning of one frame from the state it was recorded in (see the module docstring)."""
    if not 0 <= phase_index < len(phases):
        raise ValueError(f"phase index {phase_index} outside the task's {len(phases)} phases")
    sentences = [describe_object(name, pos, gripper) for name, pos in objects]
    state = "open" if gripper_opening > OPEN_ABOVE else "closed"
    sentences.append(f"The gripper is {state}.")
    done = "; ".join(phases[:phase_index]) or "nothing yet"
    plan = f"Now: {phases[phase_index]}"
    if phase_index + 1 < len(phases):
        plan += "; then: " + "; ".join(phases[phase_index + 1 :])
    sentences.append(f"Done: {done}. {plan}.")
    return " ".join(sentences)
