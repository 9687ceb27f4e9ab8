"""The cross-embodiment action template: one action space shared by every robot, with a DoF mask.

WALL-OSS's template has 20 dimensions: two arms, each end-effector xyz + rotation (3) + gripper,
then head, lift and base. A robot fills the dimensions it has (its DoF mask) and leaves the rest at
zero, so one model, one flow head and one normaliser layout serve different action spaces. Joint-
space robots map their joints onto the slots in order (the template is a layout, not kinematics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodia.utils.fs import ConfigFileError, read_config_file

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(self.slots))
        if self.state_slots is not None:
            object.__setattr__(self, "state_slots", tuple(self.state_slots))
        if self.state_dims is not None:
            object.__setattr__(self, "state_dims", tuple(int(d) for d in self.state_dims))
        if not isinstance(self.name, str) or not self.name:
            raise EmbodimentError(f"an embodiment needs a non-empty name, got {self.name!r}")
        for field_name, slots in (("action", self.slots), ("state", self.state_slots or ())):
            unknown = [s for s in slots if s not in TEMPLATE]
            if unknown:
                raise EmbodimentError(
                    f"embodiment {self.name!r}: {field_name} slot(s) {unknown} are not in the "
                    f"template {list(TEMPLATE)}"
                )
            if len(set(slots)) != len(slots):
                raise EmbodimentError(
                    f"embodiment {self.name!r}: {field_name} slots repeat: {list(slots)}"
                )
        if not self.slots:
            raise EmbodimentError(f"embodiment {self.name!r}: no action slots")
        if self.state_dims is not None:
            want = len(self.state_slots or self.slots)
            if len(self.state_dims) != want or min(self.state_dims) < 0:
                raise EmbodimentError(
                    f"embodiment {self.name!r}: state_dims {list(self.state_dims)} must name "
                    f"{want} non-negative elements, one per state slot"
                )

    def to_dict(self) -> dict[str, Any]:
        """The definition as a user's embodiment file holds it (``action``, ``state``, ...)."""
        out: dict[str, Any] = {"name": self.name, "action": list(self.slots)}
        if self.state_slots is not None:
            out["state"] = list(self.state_slots)
        if self.state_dims is not None:
            out["state_dims"] = list(self.state_dims)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "embodiment") -> Embodiment:
        """Parse ``{"name", "action": [slots], "state": [slots]?, "state_dims": [ints]?}``."""
        if not isinstance(data, dict):
            raise EmbodimentError(f"{where}: must be a mapping, got {type(data).__name__}")
        known = {"name", "action", "state", "state_dims", "description"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EmbodimentError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        for key in ("name", "action"):
            if key not in data:
                raise EmbodimentError(f"{where}: missing field {key!r}")
        for key in ("action", "state", "state_dims"):
            if key in data and not isinstance(data[key], list):
                raise EmbodimentError(f"{where}: field {key!r} must be a list, got {data[key]!r}")
        try:
            return cls(
                data["name"],
                tuple(data["action"]),
                tuple(data["state"]) if "state" in data else None,
                tuple(data["state_dims"]) if "state_dims" in data else None,
            )
        except EmbodimentError as exc:
            raise EmbodimentError(f"{where}: {exc}") from exc

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


class EmbodimentError(ValueError):
    """An embodiment name or definition is unknown or malformed; the message names it."""


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

#: Franka Panda as LIBERO's LeRobot datasets carry it: actions are end-effector deltas (xyz,
#: axis-angle) plus the gripper command; the 8-D state is the end-effector position, its
#: axis-angle orientation and the two finger positions (both gripper slots: the template is a
#: layout, and a one-armed robot leaves the right arm's slots free).
LIBERO_PANDA = Embodiment(
    "libero-panda",
    TEMPLATE[:7],
    state_slots=(*TEMPLATE[:7], "right_gripper"),
)

#: SO-100 / SO-101 (LeRobot's arm): 5 joints + gripper, in joint space for both action and
#: state; the joints fill the arm's six slots in order (no kinematics needed).
SO100 = Embodiment("so100", (*TEMPLATE[:5], "left_gripper"))

#: ALOHA (bimanual): per arm 6 joints + gripper, left then right, actions and state alike.
ALOHA = Embodiment("aloha", TEMPLATE[:14])

EMBODIMENTS = {e.name: e for e in (SAWYER, SAWYER_PRIVILEGED, LIBERO_PANDA, SO100, ALOHA)}


def load_embodiment(spec: str | Path) -> Embodiment:
    """A built-in embodiment by name, or a user's own from a JSON / YAML file.

    The file names the template slot of every action dimension (and, when the state's meaning
    differs, of every state dimension), e.g. ``{"name": "my-arm", "action": ["left_ee_x", ...,
    "left_gripper"], "state": [...]}``; see :data:`TEMPLATE` for the slots.
    """
    text = str(spec)
    if text in EMBODIMENTS:
        return EMBODIMENTS[text]
    path = Path(text)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise EmbodimentError(
            f"unknown embodiment {text!r}: use one of {sorted(EMBODIMENTS)} or a .json / .yaml "
            "file that defines one"
        )
    if not path.is_file():
        raise EmbodimentError(f"embodiment file {path} does not exist")
    try:
        data = read_config_file(path)
    except ConfigFileError as exc:
        raise EmbodimentError(str(exc)) from exc
    return Embodiment.from_dict(data, str(path))
