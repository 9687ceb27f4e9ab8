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
    """Where a robot's own action (and state) dimensions sit in the template."""

    name: str
    slots: tuple[str, ...]  # template slot per robot dimension, in the robot's order

    @property
    def indices(self) -> np.ndarray:
        return np.array([TEMPLATE.index(s) for s in self.slots], dtype=np.int64)

    @property
    def dof_mask(self) -> np.ndarray:
        mask = np.zeros(TEMPLATE_DIM, dtype=bool)
        mask[self.indices] = True
        return mask

    def to_template(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != len(self.slots):
            raise ValueError(f"{self.name}: expected {len(self.slots)} dims, got shape {x.shape}")
        out = np.zeros((*x.shape[:-1], TEMPLATE_DIM), dtype=np.float32)
        out[..., self.indices] = x
        return out

    def from_template(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[..., self.indices]


#: Meta-World's Sawyer: end-effector xyz deltas + gripper effort; state = EE xyz + gripper opening.
SAWYER = Embodiment("metaworld-sawyer", ("left_ee_x", "left_ee_y", "left_ee_z", "left_gripper"))

EMBODIMENTS = {e.name: e for e in (SAWYER,)}
