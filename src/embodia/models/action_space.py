"""The cross-embodiment action template: one action space shared by every robot, with a DoF mask.

WALL-OSS's template has 20 dimensions: two arms, each end-effector xyz + rotation (3) + gripper,
then head, lift and base. A robot fills the dimensions it has (its DoF mask) and leaves the rest at
zero, so one model, one flow head and one normaliser layout serve different action spaces. Joint-
space robots map their joints onto the slots in order (the template is a layout, not kinematics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPLATE = (
    "left_ee_x",
    "left_ee_y",
    "left_ee_z",
    "left_rot_x",
    "left_rot_y",
    "left_rot_z",
    "left_gripper",
    "right_ee_x",
    "right_ee_y",
    "right_ee_z",
    "right_rot_x",
    "right_rot_y",
    "right_rot_z",
    "right_gripper",
    "head_pan",
    "head_tilt",
    "lift",
    "base_x",
    "base_y",
    "base_yaw",
)
TEMPLATE_DIM = len(TEMPLATE)


@dataclass(frozen=True)
class Embodiment:
    """Where a robot's action and state dimensions sit in the template.

    Action and state map separately: ``slots`` places the action's dimensions, ``state_slots``
    the state's (default: the same slots, for robots whose state is the action's quantities).
    ``state_dims`` picks the elements of the dataset's state vector that are used (default: all),
    so a state feature wider than the template, like Meta-World's 39-D simulator state, can feed
    the proprioception slot with the part that matters.
    """

    name: str
    slots: tuple[str, ...]  # template slot per robot action dimension, in the robot's order
    state_slots: tuple[str, ...] | None = None
    state_dims: tuple[int, ...] | None = None

    @property
    def indices(self) -> np.ndarray:
        return np.array([TEMPLATE.index(s) for s in self.slots], dtype=np.int64)

    @property
    def dof_mask(self) -> np.ndarray:
        mask = np.zeros(TEMPLATE_DIM, dtype=bool)
        mask[self.indices] = True
        return mask

    @property
    def state_width(self) -> int | None:
        """Width of the state vector the robot sends (None: any, as long as it has every
        element ``state_dims`` names), else the number of state slots."""
        return None if self.state_dims is not None else len(self.state_slots or self.slots)

    def fits_action(self, width: int) -> bool:
        return width == len(self.slots)

    def fits_state(self, width: int) -> bool:
        """Whether a state vector of ``width`` elements can feed this embodiment."""
        if self.state_dims is not None:
            return width > max(self.state_dims)
        return width == len(self.state_slots or self.slots)

    def to_template(self, x: np.ndarray) -> np.ndarray:
        """Actions (..., robot dims) -> (..., TEMPLATE_DIM), zeros elsewhere."""
        return _place(self.name, np.asarray(x, dtype=np.float32), self.indices)

    def from_template(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[..., self.indices]

    def state_to_template(self, x: np.ndarray) -> np.ndarray:
        """A (normalised) state vector -> (TEMPLATE_DIM,) at the state slots."""
        x = np.asarray(x, dtype=np.float32)
        if self.state_dims is not None:
            if x.shape[-1] <= max(self.state_dims):
                raise ValueError(
                    f"{self.name}: the state needs elements {list(self.state_dims)}, "
                    f"got shape {x.shape}"
                )
            x = x[..., list(self.state_dims)]
        slots = self.state_slots or self.slots
        return _place(self.name, x, np.array([TEMPLATE.index(s) for s in slots]))


def _place(name: str, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    if x.shape[-1] != len(indices):
        raise ValueError(f"{name}: expected {len(indices)} dims, got shape {x.shape}")
    out = np.zeros((*x.shape[:-1], TEMPLATE_DIM), dtype=np.float32)
    out[..., indices] = x
    return out


#: Meta-World's Sawyer: end-effector xyz deltas + gripper effort; state = EE xyz + gripper opening.
SAWYER = Embodiment("metaworld-sawyer", ("left_ee_x", "left_ee_y", "left_ee_z", "left_gripper"))

#: The privileged-state control (not a robot): Sawyer's actions, but the state is the simulator's
#: own ``observation.environment_state`` -- hand xyz, gripper, both objects' xyz and the goal xyz
#: (elements 0-6, 11-13, 36-38 of Meta-World's 39-D observation). A policy that sees where the
#: objects are needs no vision: if it does not come close to the expert, the action pipeline is
#: what fails. Trained with ``--state-key observation.environment_state --embodiment`` this name.
SAWYER_PRIVILEGED = Embodiment(
    "metaworld-sawyer-privileged",
    SAWYER.slots,
    state_slots=TEMPLATE[:13],
    state_dims=(0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 36, 37, 38),
)

EMBODIMENTS = {e.name: e for e in (SAWYER, SAWYER_PRIVILEGED)}
