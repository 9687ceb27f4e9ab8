"""The catalog of Meta-World v3 tasks: what to say about each one and what is in its scene.

Every task gets a canonical instruction plus paraphrases (so a policy does not overfit one
sentence), the expert's stages as short imperative subtasks (the labels ``phases.py`` assigns to
every frame), and the named things worth asking questions about. Objects are identified by MuJoCo
body names (a body's geoms and those of all its descendant bodies), because bodies are what move
as one rigid or articulated part; target regions are points (a site, or the environment's own
``_target_pos``) with a radius, because a goal has no geometry of its own.

Body and site names were read from each environment's model, choosing the bodies that the
observation's object position tracks (e.g. ``drawer_link`` for the drawer, ``lock_link`` for the
door lock) and never any robot body.

Task sets are read from Meta-World itself rather than copied, so they cannot drift from the
benchmark definitions.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import mujoco
import numpy as np
from metaworld import env_dict as _mw

SUFFIX = "-v3"


@dataclass(frozen=True)
class SceneObject:
    """A named thing in a task's scene, as referred to in questions and answers."""

    name: str  # natural-language name used in questions: "puck", "drawer", "goal"
    kind: Literal["object", "region"]  # a physical thing vs a target region (a point in space)
    bodies: tuple[str, ...] = ()  # MuJoCo bodies; the object = their geoms and their descendants'
    site: str | None = None  # a site whose position is the reference point (regions)
    use_target_pos: bool = False  # region located at ``env._target_pos`` (no site marks it)
    radius: float = 0.02  # regions only: metres, to turn the point into a small box in images


@dataclass(frozen=True)
class SharedStart:
    """A start state that several tasks share, so the image alone does not say what to do.

    Every task naming the same ``scene`` is built on one Meta-World environment (``base``) reset
    to the same layout, with one articulated ``joint`` set part of the way along its range (a
    ``fraction`` drawn per layout): a half-open drawer admits both "open" and "close". Layout seeds
    are keyed by ``scene``, so layout n of a split is the same start for every such task.
    """

    scene: str  # "drawer-half-v3": names the shared start
    base: str  # the Meta-World environment whose reset builds it
    joint: str  # the MuJoCo joint set partway
    fraction: tuple[float, float]  # of the joint's range, low and high, drawn uniformly


@dataclass(frozen=True)
class TaskSpec:
    """Language and scene description of one task: a Meta-World v3 task, or one of embodia's
    tasks built on one (``env``) from a start state it shares with other tasks (``start``)."""

    env_name: str  # "pick-place-v3"
    instruction: str  # canonical imperative instruction
    paraphrases: tuple[str, ...]  # other phrasings with the same meaning
    phases: tuple[str, ...]  # the expert's stages in order, as short imperative subtasks
    objects: tuple[SceneObject, ...]  # named objects and target regions in the scene
    env: str | None = None  # Meta-World task giving expert and success predicate (None: env_name)
    start: SharedStart | None = None  # None: the Meta-World task's own start state

    @property
    def metaworld_env(self) -> str:
        """The Meta-World environment whose expert, phases and success predicate this task uses."""
        return self.env or self.env_name


class UnknownTaskError(ValueError):
    """A task or task-set name that is neither a Meta-World v3 task nor a known set."""


def _obj(name: str, *bodies: str) -> SceneObject:
    return SceneObject(name, "object", bodies=bodies)


def _goal(name: str = "goal", radius: float = 0.03) -> SceneObject:
    return SceneObject(name, "region", use_target_pos=True, radius=radius)


def _task(
    env_name: str,
    instruction: str,
    paraphrases: Sequence[str],
    phases: Sequence[str],
    objects: Sequence[SceneObject],
) -> TaskSpec:
    return TaskSpec(env_name, instruction, tuple(paraphrases), tuple(phases), tuple(objects))


# Recurring objects, so that the same thing has the same name in every task.
_PUCK = _obj("puck", "obj")
_BLOCK = _obj("block", "obj")
_WALL = _obj("wall", "wall")
_MUG = _obj("mug", "obj")
_COFFEE_MACHINE = _obj("coffee machine", "coffee_machine")
_BUTTON = _obj("button", "button")
_NUT = _obj("nut", "RoundNut")
_NET = _obj("net", "puck_goal")
_PLATE_PUCK = _obj("puck", "puck_channel")
_STICK = _obj("stick", "stick")
_THERMOS = _obj("thermos", "object")
_DOOR = _obj("door", "door_link")
_LOCK = _obj("lock", "lock_link")
_HANDLE = _obj("handle", "handle_link")
_DRAWER = _obj("drawer", "drawer_link")
_FAUCET = (_obj("faucet", "faucetBase"), _obj("faucet handle", "faucet_link2"))
_WINDOW = _obj("window", "windowb_a")

# Phases shared by the many tasks whose expert picks something up the same way.
_REACH_AND_GRASP = ("move above the {0}", "lower the gripper to the {0}", "grasp the {0}")


def _grasp(thing: str, *rest: str) -> tuple[str, ...]:
    return tuple(p.format(thing) for p in _REACH_AND_GRASP) + rest


_SPECS: tuple[TaskSpec, ...] = (
    _task(
        "assembly-v3",
        "Pick up the nut and place it onto the peg.",
        (
            "Grab the ring nut and slide it down over the peg.",
            "Put the nut on the peg.",
            "Lift the nut by its handle and fit it onto the peg.",
            "Assemble the nut onto the peg.",
        ),
        (
            "move above the nut",
            "lower the gripper and grasp the nut",
            "lift the nut",
            "carry the nut above the peg",
            "lower the nut onto the peg",
        ),
        (_NUT, _obj("peg", "peg")),
    ),
    _task(
        "basketball-v3",
        "Pick up the basketball and dunk it into the hoop.",
        (
            "Grab the ball and put it through the hoop.",
            "Lift the basketball and drop it in the basket.",
            "Score a basket by placing the ball in the hoop.",
            "Carry the ball to the hoop and dunk it.",
        ),
        _grasp("ball", "lift the ball to the height of the hoop", "put the ball into the hoop"),
        (_obj("ball", "bsktball"), _obj("hoop", "hooplink")),
    ),
    _task(
        "bin-picking-v3",
        "Pick up the block and place it in the target bin.",
        (
            "Move the block from its bin into the other bin.",
            "Grab the green block and drop it into the target bin.",
            "Transfer the block to the other bin.",
            "Lift the block out of its bin and put it in the target bin.",
        ),
        (
            "move above the block",
            "lower the gripper to the block",
            "grasp and lift the block",
            "carry the block over the target bin",
            "lower the block into the target bin",
        ),
        (_obj("block", "obj"), _obj("start bin", "bin_start"), _obj("target bin", "bin_goal")),
    ),
    _task(
        "box-close-v3",
        "Pick up the lid and place it on the box.",
        (
            "Close the box by putting the lid on it.",
            "Grab the lid by its handle and cover the box.",
            "Put the lid onto the box.",
            "Lift the lid and close the box with it.",
        ),
        _grasp("lid", "lift the lid", "put the lid on the box"),
        (_obj("lid", "boxbodytop"), _obj("box", "boxbody")),
    ),
    _task(
        "button-press-topdown-v3",
        "Press the button from above.",
        (
            "Push the button down from the top.",
            "Press down on the button.",
            "Push the top button down.",
            "Lower the gripper onto the button and press it.",
        ),
        ("move above the button", "press the button down"),
        (_BUTTON,),
    ),
    _task(
        "button-press-topdown-wall-v3",
        "Press the button from above, reaching past the wall.",
        (
            "Push the button down from the top without hitting the wall.",
            "Reach past the wall and press the button down.",
            "Press down on the button next to the wall.",
            "Push the button beside the wall down from above.",
        ),
        ("move above the button", "press the button down"),
        (_BUTTON, _WALL),
    ),
    _task(
        "button-press-v3",
        "Press the button on the front of the box.",
        (
            "Push the button in.",
            "Press the button horizontally.",
            "Push the button forward into the box.",
            "Press the button in with the gripper.",
        ),
        ("line the gripper up with the button", "push the button in"),
        (_BUTTON,),
    ),
    _task(
        "button-press-wall-v3",
        "Reach over the wall and press the button.",
        (
            "Press the button behind the wall.",
            "Go over the wall and push the button in.",
            "Push the button in, reaching over the wall.",
            "Move past the wall and press the button.",
        ),
        (
            "move over the wall towards the button",
            "lower the gripper in front of the button",
            "push the button in",
        ),
        (_BUTTON, _WALL),
    ),
    _task(
        "coffee-button-v3",
        "Press the button on the coffee machine.",
        (
            "Push the coffee machine's button.",
            "Start the coffee machine by pressing its button.",
            "Press the coffee button.",
            "Push the button on the front of the coffee maker.",
        ),
        ("line the gripper up with the coffee button", "push the coffee button"),
        (_obj("coffee button", "cmbutton"), _COFFEE_MACHINE, _MUG),
    ),
    _task(
        "coffee-pull-v3",
        "Pull the mug away from the coffee machine to the goal.",
        (
            "Grab the mug and pull it away from the coffee machine.",
            "Take the mug from the coffee machine and move it to the goal.",
            "Slide the mug out from under the coffee machine.",
            "Pull the coffee mug to the target position.",
        ),
        _grasp("mug", "pull the mug to the goal"),
        (_MUG, _COFFEE_MACHINE, _goal()),
    ),
    _task(
        "coffee-push-v3",
        "Push the mug under the coffee machine.",
        (
            "Slide the mug under the coffee machine's spout.",
            "Move the mug to the coffee machine.",
            "Put the mug beneath the coffee spout by sliding it.",
            "Push the coffee mug to the goal under the machine.",
        ),
        _grasp("mug", "slide the mug under the coffee machine"),
        (_MUG, _COFFEE_MACHINE, _goal()),
    ),
    _task(
        "dial-turn-v3",
        "Turn the dial.",
        (
            "Rotate the dial.",
            "Twist the dial knob.",
            "Spin the dial to the target angle.",
            "Turn the knob on the dial.",
        ),
        ("move above the dial", "lower the gripper to the dial", "turn the dial"),
        (_obj("dial", "dial"),),
    ),
    _task(
        "disassemble-v3",
        "Pick the nut up off the peg.",
        (
            "Remove the nut from the peg.",
            "Lift the ring nut off the peg.",
            "Take the nut off the peg.",
            "Disassemble the nut from the peg.",
        ),
        _grasp("nut", "lift the nut off the peg"),
        (_NUT, _obj("peg", "peg")),
    ),
    _task(
        "door-close-v3",
        "Close the door.",
        (
            "Push the door shut.",
            "Swing the door closed.",
            "Shut the open door.",
            "Push the door until it is closed.",
        ),
        ("move next to the door", "push the door closed"),
        (_DOOR,),
    ),
    _task(
        "door-lock-v3",
        "Lock the door by turning the lock.",
        (
            "Turn the lock to lock the door.",
            "Push the lock down to lock the door.",
            "Engage the door lock.",
            "Rotate the door lock into the locked position.",
        ),
        ("move above the lock", "push the lock down"),
        (_LOCK, _DOOR),
    ),
    _task(
        "door-open-v3",
        "Open the door.",
        (
            "Pull the door open.",
            "Swing the door open by its handle.",
            "Grab the door handle and open the door.",
            "Open the door all the way.",
        ),
        (
            "move above the door handle",
            "lower the gripper next to the door handle",
            "pull the door open",
        ),
        (_DOOR,),
    ),
    _task(
        "door-unlock-v3",
        "Unlock the door by turning the lock.",
        (
            "Turn the lock to unlock the door.",
            "Rotate the door lock to the unlocked position.",
            "Disengage the door lock.",
            "Push the lock sideways to unlock the door.",
        ),
        ("move the gripper to the lock", "push the lock sideways"),
        (_LOCK, _DOOR),
    ),
    _task(
        "drawer-close-v3",
        "Close the drawer.",
        (
            "Push the drawer shut.",
            "Slide the drawer closed.",
            "Push the open drawer back in.",
            "Shut the drawer.",
        ),
        (
            "move above the drawer",
            "lower the gripper in front of the drawer",
            "push the drawer closed",
        ),
        (_DRAWER,),
    ),
    _task(
        "drawer-open-v3",
        "Open the drawer.",
        (
            "Pull the drawer open.",
            "Slide the drawer out.",
            "Grab the drawer handle and pull it open.",
            "Pull the drawer out by its handle.",
        ),
        (
            "move above the drawer handle",
            "lower the gripper to the drawer handle",
            "pull the drawer open",
        ),
        (_DRAWER,),
    ),
    _task(
        "faucet-close-v3",
        "Close the faucet.",
        (
            "Turn off the faucet.",
            "Rotate the faucet handle to close it.",
            "Turn the faucet handle to the closed position.",
            "Close the tap.",
        ),
        (
            "move above the faucet handle",
            "lower the gripper to the faucet handle",
            "turn the faucet handle closed",
        ),
        _FAUCET,
    ),
    _task(
        "faucet-open-v3",
        "Open the faucet.",
        (
            "Turn on the faucet.",
            "Rotate the faucet handle to open it.",
            "Turn the faucet handle to the open position.",
            "Open the tap.",
        ),
        (
            "move above the faucet handle",
            "lower the gripper to the faucet handle",
            "turn the faucet handle open",
        ),
        _FAUCET,
    ),
    _task(
        "hammer-v3",
        "Pick up the hammer and hammer the nail in.",
        (
            "Use the hammer to drive the nail into the block.",
            "Grab the hammer and hit the nail.",
            "Hammer the nail in.",
            "Pick up the hammer and knock the nail in.",
        ),
        _grasp("hammer", "lift the hammer in line with the nail", "hit the nail with the hammer"),
        (_obj("hammer", "hammerbody"), _obj("nail", "nail_link")),
    ),
    _task(
        "hand-insert-v3",
        "Pick up the block and insert it into the hole.",
        (
            "Put the block into the hole.",
            "Grab the block and drop it in the hole in the table.",
            "Insert the wooden block into the hole.",
            "Place the block in the hole.",
        ),
        _grasp("block", "carry the block above the hole", "insert the block into the hole"),
        (_BLOCK, _goal("hole")),
    ),
    _task(
        "handle-press-side-v3",
        "Press the handle down from the side.",
        (
            "Push the side handle down.",
            "Press down on the handle.",
            "Push the handle all the way down.",
            "Lower the handle by pressing on it.",
        ),
        ("move above the handle", "press the handle down"),
        (_HANDLE,),
    ),
    _task(
        "handle-press-v3",
        "Press the handle down.",
        (
            "Push the handle down.",
            "Press down on the handle until it stops.",
            "Lower the handle by pushing on it.",
            "Push the handle all the way down.",
        ),
        ("move above the handle", "press the handle down"),
        (_HANDLE,),
    ),
    _task(
        "handle-pull-side-v3",
        "Pull the handle up from the side.",
        (
            "Lift the side handle up.",
            "Pull up on the handle.",
            "Raise the handle.",
            "Pull the handle all the way up.",
        ),
        (
            "move above the handle",
            "lower the gripper to the handle",
            "grasp the handle and pull it up",
        ),
        (_HANDLE,),
    ),
    _task(
        "handle-pull-v3",
        "Pull the handle up.",
        (
            "Lift the handle.",
            "Pull up on the handle.",
            "Raise the handle all the way up.",
            "Grab the handle and pull it upward.",
        ),
        ("move the gripper under the handle", "pull the handle up"),
        (_HANDLE,),
    ),
    _task(
        "lever-pull-v3",
        "Pull the lever up.",
        (
            "Raise the lever.",
            "Lift the lever up.",
            "Rotate the lever upward.",
            "Push the lever up to the top.",
        ),
        ("move the gripper under the end of the lever", "raise the lever"),
        (_obj("lever", "lever_link1"),),
    ),
    _task(
        "pick-place-wall-v3",
        "Pick up the puck and place it at the goal behind the wall.",
        (
            "Lift the puck over the wall and put it at the goal.",
            "Grab the puck and carry it over the wall to the goal.",
            "Move the puck past the wall to the target.",
            "Pick the puck up and place it on the other side of the wall.",
        ),
        _grasp("puck", "lift the puck above the wall", "carry the puck over the wall to the goal"),
        (_PUCK, _WALL, _goal()),
    ),
    _task(
        "pick-out-of-hole-v3",
        "Pick the puck out of the hole and move it to the goal.",
        (
            "Lift the puck out of the hole.",
            "Take the puck out of the hole and bring it to the goal.",
            "Grab the puck from the hole and raise it to the target.",
            "Remove the puck from the hole and put it at the goal.",
        ),
        (
            "move above the puck",
            "lower the gripper into the hole",
            "grasp the puck and lift it out of the hole",
            "move the puck to the goal",
        ),
        (_PUCK, _goal()),
    ),
    _task(
        "pick-place-v3",
        "Pick up the puck and place it at the goal.",
        (
            "Grab the puck and move it to the goal.",
            "Lift the puck and put it at the target position.",
            "Pick the puck up and carry it to the goal.",
            "Place the puck at the goal location.",
        ),
        _grasp("puck", "carry the puck to the goal"),
        (_PUCK, _goal()),
    ),
    _task(
        "plate-slide-v3",
        "Slide the puck into the net.",
        (
            "Push the puck forward into the goal net.",
            "Slide the puck across the table into the net.",
            "Push the puck into the hockey net.",
            "Shove the puck into the net.",
        ),
        ("move above the puck", "lower the gripper behind the puck", "slide the puck into the net"),
        (_PLATE_PUCK, _NET),
    ),
    _task(
        "plate-slide-back-side-v3",
        "Slide the puck sideways out of the net.",
        (
            "Push the puck sideways out of the goal net.",
            "Slide the puck out of the net to the side.",
            "Get the puck out of the net by sliding it sideways.",
            "Move the puck out of the net sideways to the goal.",
        ),
        (
            "move above the puck",
            "lower the gripper beside the puck",
            "slide the puck sideways out of the net",
        ),
        (_PLATE_PUCK, _NET, _goal()),
    ),
    _task(
        "plate-slide-back-v3",
        "Slide the puck back out of the net.",
        (
            "Pull the puck out of the net.",
            "Drag the puck back out of the goal net.",
            "Slide the puck out of the net back to the goal.",
            "Retrieve the puck from the net by sliding it back.",
        ),
        ("move above the puck", "lower the gripper onto the puck", "pull the puck out of the net"),
        (_PLATE_PUCK, _NET, _goal()),
    ),
    _task(
        "plate-slide-side-v3",
        "Slide the puck sideways into the net.",
        (
            "Push the puck to the side into the net.",
            "Slide the puck into the net beside it.",
            "Push the puck sideways into the goal net.",
            "Shove the puck sideways into the net.",
        ),
        (
            "move above the puck",
            "lower the gripper beside the puck",
            "slide the puck sideways into the net",
        ),
        (_PLATE_PUCK, _NET),
    ),
    _task(
        "peg-insert-side-v3",
        "Insert the peg into the hole from the side.",
        (
            "Pick up the peg and push it sideways into the hole.",
            "Grab the peg and insert it into the hole in the box.",
            "Put the peg into the hole.",
            "Slide the peg into the side hole.",
        ),
        _grasp("peg", "carry the peg in line with the hole", "insert the peg into the hole"),
        (_obj("peg", "peg"), _obj("box", "box"), _goal("hole", radius=0.02)),
    ),
    _task(
        "peg-unplug-side-v3",
        "Unplug the plug from the socket.",
        (
            "Pull the plug out of the socket.",
            "Remove the plug from the socket.",
            "Grab the plug and pull it out sideways.",
            "Take the plug out of the socket.",
        ),
        (
            "move above the plug",
            "lower the gripper and grasp the plug",
            "pull the plug out of the socket",
        ),
        (_obj("plug", "plug1"), _obj("socket", "box")),
    ),
    _task(
        "push-v3",
        "Push the puck to the goal.",
        (
            "Slide the puck to the goal.",
            "Push the puck across the table to the target.",
            "Move the puck to the goal by pushing it.",
            "Shove the puck to the target position.",
        ),
        ("move above the puck", "lower the gripper to the puck", "push the puck to the goal"),
        (_PUCK, _goal()),
    ),
    _task(
        "push-back-v3",
        "Pull the puck back to the goal.",
        (
            "Drag the puck back towards the goal.",
            "Slide the puck backwards to the goal.",
            "Move the puck back to the target.",
            "Bring the puck back to the goal position.",
        ),
        ("move above the puck", "lower the gripper to the puck", "pull the puck back to the goal"),
        (_PUCK, _goal()),
    ),
    _task(
        "push-wall-v3",
        "Push the puck around the wall to the goal.",
        (
            "Slide the puck past the wall to the goal.",
            "Push the puck to the goal behind the wall.",
            "Move the puck around the wall to the target.",
            "Shove the puck around the wall to the goal position.",
        ),
        (
            "move above the puck",
            "lower the gripper to the puck",
            "push the puck around the wall to the goal",
        ),
        (_PUCK, _WALL, _goal()),
    ),
    _task(
        "reach-v3",
        "Reach the goal position.",
        (
            "Move the gripper to the goal.",
            "Reach for the target position.",
            "Bring the end effector to the goal.",
            "Go to the goal location.",
        ),
        ("move the gripper to the goal",),
        (_goal(), _PUCK),
    ),
    _task(
        "reach-wall-v3",
        "Reach over the wall to the goal position.",
        (
            "Move the gripper over the wall to the goal.",
            "Reach the goal behind the wall.",
            "Go over the wall to the target position.",
            "Bring the gripper past the wall to the goal.",
        ),
        ("lift the gripper over the wall", "move the gripper to the goal"),
        (_goal(), _WALL, _PUCK),
    ),
    _task(
        "shelf-place-v3",
        "Pick up the block and place it on the shelf.",
        (
            "Put the block on the shelf.",
            "Grab the block and set it on the shelf.",
            "Lift the block onto the shelf.",
            "Place the block at the goal on the shelf.",
        ),
        _grasp("block", "lift the block to the height of the shelf", "put the block on the shelf"),
        (_BLOCK, _obj("shelf", "shelf"), _goal()),
    ),
    _task(
        "soccer-v3",
        "Push the ball into the goal.",
        (
            "Kick the soccer ball into the goal.",
            "Score a goal with the ball.",
            "Roll the ball into the net.",
            "Push the soccer ball into the goal.",
        ),
        ("move behind the ball", "push the ball into the goal"),
        (_obj("ball", "soccer_ball"), _obj("goal", "goal_whole")),
    ),
    _task(
        "stick-push-v3",
        "Use the stick to push the thermos to the goal.",
        (
            "Grab the stick and push the thermos to the target with it.",
            "Push the thermos to the goal with the stick.",
            "Pick up the stick and use it to shove the thermos.",
            "Move the thermos to the goal by pushing it with the stick.",
        ),
        (
            "move above the stick",
            "lower the gripper and grasp the stick",
            "line the stick up with the thermos",
            "push the thermos to the goal with the stick",
        ),
        (_STICK, _THERMOS, _goal()),
    ),
    _task(
        "stick-pull-v3",
        "Use the stick to pull the thermos to the goal.",
        (
            "Grab the stick, hook the thermos handle and pull the thermos to the goal.",
            "Pull the thermos to the target with the stick.",
            "Pick up the stick and use it to drag the thermos.",
            "Hook the thermos with the stick and pull it to the goal.",
        ),
        (
            "move above the stick",
            "lower the gripper and grasp the stick",
            "line the stick up with the thermos handle",
            "hook the stick into the thermos handle",
            "pull the thermos to the goal",
        ),
        (_STICK, _THERMOS, _goal()),
    ),
    _task(
        "sweep-v3",
        "Sweep the block off the table.",
        (
            "Push the block off the edge of the table.",
            "Sweep the cube to the table edge.",
            "Slide the block off the table.",
            "Move the block off the side of the table.",
        ),
        _grasp("block", "sweep the block to the edge of the table", "release the block"),
        (_obj("block", "obj"), _goal("table edge")),
    ),
    _task(
        "sweep-into-v3",
        "Sweep the block into the hole.",
        (
            "Push the block into the hole.",
            "Slide the block into the hole in the table.",
            "Sweep the cube into the goal hole.",
            "Move the block into the hole.",
        ),
        _grasp("block", "sweep the block into the hole"),
        (_BLOCK, _goal("hole")),
    ),
    _task(
        "window-close-v3",
        "Close the window.",
        (
            "Slide the window shut.",
            "Push the window closed.",
            "Slide the window sideways to close it.",
            "Shut the window.",
        ),
        (
            "move above the window handle",
            "lower the gripper beside the window handle",
            "slide the window closed",
        ),
        (_WINDOW,),
    ),
    _task(
        "window-open-v3",
        "Open the window.",
        (
            "Slide the window open.",
            "Push the window open.",
            "Slide the window sideways to open it.",
            "Open the sliding window.",
        ),
        (
            "move above the window handle",
            "lower the gripper beside the window handle",
            "slide the window open",
        ),
        (_WINDOW,),
    ),
)

_BY_NAME = {spec.env_name: spec for spec in _SPECS}
if set(_BY_NAME) != set(_mw.MT50_V3) or len(_BY_NAME) != len(_SPECS):
    raise RuntimeError("the task catalog and Meta-World's MT50 disagree on the task names")

# Fractions measured from the range's low end: the drawer counts as open below 0.05 and closed
# above 0.8 of its slide, the window closed below 0.2 and open above 0.9; each band sits in the
# middle, so neither outcome holds at the start and both take a comparable motion.
_DRAWER_HALF = SharedStart("drawer-half-v3", "drawer-open-v3", "goal_slidey", (0.35, 0.55))
_WINDOW_HALF = SharedStart("window-half-v3", "window-open-v3", "window_slide", (0.45, 0.65))


def _from_shared_start(env_name: str, task: str, start: SharedStart) -> TaskSpec:
    """``task``'s language, expert and success predicate, started from ``start``."""
    return replace(_BY_NAME[task], env_name=env_name, env=task, start=start)


#: Instruction-following tasks: pairs that start from the same state (a half-open drawer or
#: window) and differ only in what the instruction asks. Scored by whether the robot did what
#: was asked (the confusion between the pair's outcomes is in every rollout's results).
AMBIGUOUS_SPECS = (
    _from_shared_start("drawer-half-open-v3", "drawer-open-v3", _DRAWER_HALF),
    _from_shared_start("drawer-half-close-v3", "drawer-close-v3", _DRAWER_HALF),
    _from_shared_start("window-half-open-v3", "window-open-v3", _WINDOW_HALF),
    _from_shared_start("window-half-close-v3", "window-close-v3", _WINDOW_HALF),
)

#: Every task, keyed by name: Meta-World v3's in its own MT50 order, then embodia's
#: shared-start tasks.
TASKS: dict[str, TaskSpec] = {
    **{name: _BY_NAME[name] for name in _mw.MT50_V3},
    **{spec.env_name: spec for spec in AMBIGUOUS_SPECS},
}

#: Benchmark task sets, read from Meta-World's definitions.
TASK_SETS: dict[str, tuple[str, ...]] = {
    "MT10": tuple(_mw.MT10_V3),
    "MT25": tuple(_mw.MT25_V3),
    "MT50": tuple(_mw.MT50_V3),
    **{
        f"{bench}-{split}": tuple(getattr(_mw, f"{bench}_V3")[split])
        for bench in ("ML10", "ML25", "ML45")
        for split in ("train", "test")
    },
    "ambiguous": tuple(spec.env_name for spec in AMBIGUOUS_SPECS),
}


def rivals(env_name: str) -> tuple[str, ...]:
    """The tasks that start from ``env_name``'s start state, itself first: what a robot given
    that start could have done. A task with its own start has no rival but itself."""
    start = TASKS[env_name].start
    if start is None:
        return (env_name,)
    others = [s.env_name for s in TASKS.values() if s.start == start and s.env_name != env_name]
    return (env_name, *others)


def layout_key(env_name: str) -> str:
    """What layout seeds are keyed by: the shared start's scene, else the task itself."""
    start = TASKS[env_name].start
    return env_name if start is None else start.scene


def resolve_tasks(names: Sequence[str]) -> list[str]:
    """Expand task and set names into unique env names, keeping the order they first appear in.

    Accepts "pick-place-v3", "pick-place" and set names in any case ("MT10", "ml45-test"); a
    single string is one name, not a sequence of letters.
    """
    sets = {key.casefold(): key for key in TASK_SETS}
    out: dict[str, None] = {}
    for raw in [names] if isinstance(names, str) else names:
        name = raw.strip()
        if name.casefold() in sets:
            out.update(dict.fromkeys(TASK_SETS[sets[name.casefold()]]))
            continue
        env_name = name.lower() if name.lower().endswith(SUFFIX) else f"{name.lower()}{SUFFIX}"
        if env_name not in TASKS:
            raise UnknownTaskError(_unknown_message(raw))
        out[env_name] = None
    return list(out)


def _unknown_message(raw: str) -> str:
    # Match against every accepted spelling, then suggest each hit in its canonical form.
    canonical = {s.lower(): s for s in TASK_SETS}
    for env_name in TASKS:
        canonical[env_name] = canonical[env_name.removesuffix(SUFFIX)] = env_name
    matches = difflib.get_close_matches(raw.strip().lower(), canonical, n=6, cutoff=0.6)
    guesses = list(dict.fromkeys(canonical[m] for m in matches))[:3]
    hint = f" Did you mean {' or '.join(repr(g) for g in guesses)}?" if guesses else ""
    return (
        f"unknown Meta-World task or task set {raw!r}.{hint} Task names are Meta-World v3 "
        f"environments such as 'pick-place-v3' (the {SUFFIX!r} suffix is optional); "
        f"task sets are {', '.join(TASK_SETS)}."
    )


def all_instructions(env_name: str) -> tuple[str, ...]:
    """The canonical instruction followed by its paraphrases."""
    spec = TASKS[env_name]
    return (spec.instruction, *spec.paraphrases)


def instructions(env_name: str, held_out: int = 0, which: str = "seen") -> tuple[str, ...]:
    """The instructions an episode may be given when the last ``held_out`` paraphrases of each
    task are kept out of the data: ``seen`` = the others (the canonical one first), what every
    generated episode draws from; ``held-out`` = those kept out, for measuring whether a policy
    follows phrasings it never trained on (``embodia eval rollout --instructions held-out``)."""
    every = all_instructions(env_name)
    if not 0 <= held_out < len(every):
        raise ValueError(
            f"{env_name}: cannot hold out {held_out} of its {len(every)} instructions "
            f"(at least one must stay for training)"
        )
    if which not in ("seen", "held-out"):
        raise ValueError(f"instructions must be 'seen' or 'held-out', not {which!r}")
    if which == "held-out" and held_out == 0:
        raise ValueError(f"{env_name}: the data held out no paraphrase (held_out_instructions 0)")
    cut = len(every) - held_out
    return every[:cut] if which == "seen" else every[cut:]


def object_geom_ids(model: mujoco.MjModel, obj: SceneObject) -> np.ndarray:
    """Ids of the geoms of ``obj``'s bodies and of all their descendant bodies, ascending."""
    roots = []
    for body in obj.bodies:
        body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if body_id < 0:
            raise ValueError(
                f"scene object {obj.name!r} names body {body!r}, which is not in this model"
            )
        roots.append(body_id)
    # MuJoCo numbers every body after its parent, so one forward pass marks whole subtrees.
    inside = np.zeros(model.nbody, dtype=bool)
    inside[roots] = True
    for body_id in range(1, model.nbody):
        inside[body_id] |= inside[model.body_parentid[body_id]]
    return np.flatnonzero(inside[model.geom_bodyid]).astype(np.int64)


def object_position(
    model: mujoco.MjModel, data: mujoco.MjData, env: Any, obj: SceneObject
) -> np.ndarray:
    """World xyz of ``obj``'s reference point for the current simulator state.

    A site or the target position when the object names one, else the centre of the world-aligned
    bounding box of its geoms (each geom's local box rotated into the world, so rotated parts such
    as an opened door still get the right extent).
    """
    if obj.site is not None:
        site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, obj.site)
        if site_id < 0:
            raise ValueError(f"scene object {obj.name!r} names site {obj.site!r}, not in model")
        return np.array(data.site_xpos[site_id], dtype=np.float64)
    if obj.use_target_pos:
        return np.array(env._target_pos, dtype=np.float64)
    geoms = object_geom_ids(model, obj)
    if geoms.size == 0:
        raise ValueError(f"scene object {obj.name!r} has no geoms, site or target position")
    local_centre = model.geom_aabb[geoms, :3]
    half = model.geom_aabb[geoms, 3:]
    rot = data.geom_xmat[geoms].reshape(-1, 3, 3)
    centre = data.geom_xpos[geoms] + np.einsum("nij,nj->ni", rot, local_centre)
    extent = np.einsum("nij,nj->ni", np.abs(rot), half)
    lo, hi = (centre - extent).min(axis=0), (centre + extent).max(axis=0)
    return (lo + hi) / 2.0
