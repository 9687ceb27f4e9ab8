"""Subtask (phase) labels for every frame, read off the Meta-World expert's own decisions.

Each scripted expert picks its next target with a chain of if/elif branches in ``_desired_pos``
("far from the puck in xy -> go above it", "above it -> go down", ...); those branches *are* its
stages. Rather than re-deriving the stages from geometry (which would drift from what the expert
actually did), each act() records which ``return`` of ``_desired_pos`` produced the target, and
which ``return`` of ``_grab_effort`` set the gripper, and a per-task table maps that to an index
into ``TASKS[env_name].phases``.

Recording works on an instrumented twin of the expert's method: the method's own source, parsed
with ``ast``, with every ``return X`` rewritten to ``return _mark(k, X)``. ``_mark`` stores ``k``
and hands ``X`` back untouched, so the expert computes exactly the same numbers (the actions are
bit-identical) while nothing global such as ``sys.setprofile`` is touched, which would break
debuggers and profilers. The twin is installed on the policy *instance* only. Branches are numbered
in source order; if Meta-World ever changes an expert, the branch count check fails loudly.

Some experts dither between neighbouring branches (the dial's position moves while it is being
turned, a lagging handle re-triggers "go back to the handle"). For those tasks the table sets
``latch_from``: once the episode reaches that phase, the phase never goes back. Tasks where the
expert really starts over (re-approaching a lock that did not latch, a door handle it lost) are
left as they are, so the labels say what the robot is visibly doing.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from metaworld.policies import ENV_POLICY_MAP

from embodia.data.engine.tasks import TASKS

#: Meta-World's move() warns with this whenever an expert's gain saturates the action. The
#: environment clips to [-1, 1] and the engine records the clipped action, so it is an expected
#: event, not a problem: :meth:`ExpertWithPhases.act` counts it (``saturated_steps``, written to
#: each episode's metadata) instead of printing it thousands of times; any other warning passes.
SATURATION_WARNING = "Constant(s) may be too high"

_MARK = "_embodia_branch_mark"


@dataclass(frozen=True)
class PhaseMap:
    """How one expert's branches map onto its task's phases."""

    branches: tuple[int, ...] = ()  # phase index of the k-th marked branch (source order)
    # (branch, _grab_effort branch, phase): in that branch, a gripper decision overrides the phase,
    # which is how a grasp shows up in experts that close the gripper while still descending.
    grip: tuple[tuple[int, int, int], ...] = ()
    method: str = "_desired_pos"  # the expert method whose branches are traced
    marker: Literal["return", "move"] = "return"  # mark its returns, or its calls to ``move``
    latch_from: int | None = None  # once this phase is reached, the phase never decreases
    rule: Callable[[np.ndarray], int] | None = None  # phase from the observation, no tracing


def _soccer_phase(obs: np.ndarray) -> int:
    """Pushing once the hand is down beside the ball.

    The soccer expert has a single effective branch (it always heads for a point just behind the
    ball, which moves with the ball), so its stages only show in the geometry.
    """
    hand, ball = obs[:3], obs[4:7]
    near = np.linalg.norm(hand[:2] - ball[:2]) < 0.06 and hand[2] < ball[2] + 0.06
    return int(near)


def _single_phase(obs: np.ndarray) -> int:
    """The reach expert is one proportional step towards the goal: a single stage."""
    return 0


# Branch numbers are the order of `return` statements in each expert's source (read them next to
# the policy files in metaworld/policies); phase numbers index TASKS[env].phases.
PHASE_MAPS: dict[str, PhaseMap] = {
    # 0 above nut, 1 onto peg (last), 2 down to nut, 3 lift, 4 over peg; closes while descending.
    "assembly-v3": PhaseMap(branches=(0, 4, 1, 2, 3)),
    "basketball-v3": PhaseMap(branches=(0, 1, 3, 4), grip=((1, 1, 2),)),
    # 2 lifts while low, 3 carries over the bin; while holding, the hand may still be "lowered"
    # onto the block to close the gap to it, which stays the grasp phase.
    "bin-picking-v3": PhaseMap(branches=(0, 1, 2, 3, 4), grip=((1, 1, 2),)),
    # its 1 cm alignment test fails as the lid swings in the hand; before the lift that makes the
    # hand rise for real, after it the expert keeps carrying the lid.
    "box-close-v3": PhaseMap(branches=(0, 1, 3, 4), grip=((1, 1, 2),), latch_from=3),
    "button-press-topdown-v3": PhaseMap(branches=(0, 1)),
    "button-press-topdown-wall-v3": PhaseMap(branches=(0, 1)),
    "button-press-v3": PhaseMap(branches=(0, 1)),
    "button-press-wall-v3": PhaseMap(branches=(0, 0, 1, 2)),
    "coffee-button-v3": PhaseMap(branches=(0, 1)),
    "coffee-pull-v3": PhaseMap(branches=(0, 1, 3), grip=((1, 1, 2),)),
    "coffee-push-v3": PhaseMap(branches=(0, 1, 3), grip=((1, 1, 2),)),
    # the dial moves as it turns, briefly sending the expert back to "above the dial".
    "dial-turn-v3": PhaseMap(branches=(0, 1, 2), latch_from=0),
    # the nut lags the lifting hand, re-triggering "down to the nut" while holding it.
    "disassemble-v3": PhaseMap(branches=(0, 1, 3), grip=((1, 1, 2),), latch_from=0),
    # 0 rise and 1 go around the door, 2 come down beside it, 3 push; 2 and 3 alternate.
    "door-close-v3": PhaseMap(branches=(0, 0, 0, 1), latch_from=0),
    # 0 rise, 1 above the lock, 2 down onto it (pressing it), 3 push; a lock that did not latch
    # makes the expert rise and come down again, which is labelled as such.
    "door-lock-v3": PhaseMap(branches=(0, 0, 1, 1)),
    "door-open-v3": PhaseMap(branches=(0, 1, 2)),
    "door-unlock-v3": PhaseMap(branches=(0, 0, 1), latch_from=0),
    "drawer-close-v3": PhaseMap(branches=(0, 0, 1, 2)),
    # this expert branches inside get_action: mark its three calls to `move`.
    "drawer-open-v3": PhaseMap(branches=(0, 1, 2), method="get_action", marker="move"),
    "faucet-close-v3": PhaseMap(branches=(0, 1, 2), latch_from=0),
    "faucet-open-v3": PhaseMap(branches=(0, 1, 2), latch_from=0),
    "hammer-v3": PhaseMap(branches=(0, 1, 3, 4), grip=((1, 1, 2),)),
    "hand-insert-v3": PhaseMap(branches=(0, 1, 3, 4), grip=((1, 1, 2),)),
    "handle-press-side-v3": PhaseMap(branches=(0, 1), latch_from=0),
    "handle-press-v3": PhaseMap(branches=(0, 1), latch_from=0),
    # the gripper closes as the hand reaches the handle and keeps closing while it pulls.
    "handle-pull-side-v3": PhaseMap(branches=(0, 1, 2), grip=((1, 1, 2),), latch_from=0),
    # 0 to the handle, 1 level with it, 2 lift; lifting ratchets through all three.
    "handle-pull-v3": PhaseMap(branches=(0, 0, 1), latch_from=0),
    # 0 below the lever, 1 up against it (this is what raises it), 2 pull; 0 and 1 alternate.
    "lever-pull-v3": PhaseMap(branches=(0, 1, 1), latch_from=0),
    "pick-place-wall-v3": PhaseMap(branches=(0, 1, 3, 4, 4, 4), grip=((1, 1, 2),)),
    # its weak grip closes slowly, and until the puck is held every lift (2) loses the puck and
    # sends the hand back down (1): grasping and lifting are one phase.
    "pick-out-of-hole-v3": PhaseMap(branches=(0, 1, 2, 3), grip=((1, 1, 2),)),
    # 2 waits for the fingers to close; its _grab_effort closes in its *first* return.
    "pick-place-v3": PhaseMap(branches=(0, 1, 2, 3), grip=((1, 0, 2),)),
    "plate-slide-v3": PhaseMap(branches=(0, 1, 2)),
    "plate-slide-back-side-v3": PhaseMap(branches=(0, 1, 2)),
    # losing contact with the puck sends the expert back above it.
    "plate-slide-back-v3": PhaseMap(branches=(0, 1, 2, 2, 2)),
    "plate-slide-side-v3": PhaseMap(branches=(0, 1, 2, 2)),
    "peg-insert-side-v3": PhaseMap(branches=(0, 1, 3, 4), grip=((1, 1, 2),), latch_from=0),
    "peg-unplug-side-v3": PhaseMap(branches=(0, 1, 2), latch_from=0),
    "push-v3": PhaseMap(branches=(0, 1, 2)),
    "push-back-v3": PhaseMap(branches=(0, 1, 2)),
    # 2 push along the wall, 3 push past its end, 4 push to the goal.
    "push-wall-v3": PhaseMap(branches=(0, 1, 2, 2, 2)),
    "reach-v3": PhaseMap(rule=_single_phase),
    "reach-wall-v3": PhaseMap(branches=(0, 1), latch_from=0),
    # 2 over to the shelf's x, 3 rise to shelf height, 4 forward onto the shelf.
    "shelf-place-v3": PhaseMap(branches=(0, 1, 3, 3, 4), grip=((1, 1, 2),)),
    "soccer-v3": PhaseMap(rule=_soccer_phase, latch_from=0),
    # 2 and 3 line the stick up with the thermos, 4 and 5 push (or hook, then pull) it.
    "stick-push-v3": PhaseMap(branches=(0, 1, 2, 2, 3, 3)),
    "stick-pull-v3": PhaseMap(branches=(0, 1, 2, 2, 3, 4)),
    # its _grab_effort opens again (third return) once the block is near the edge.
    "sweep-v3": PhaseMap(branches=(0, 1, 3), grip=((1, 1, 2), (2, 2, 4))),
    "sweep-into-v3": PhaseMap(branches=(0, 1, 3), grip=((1, 1, 2),)),
    "window-close-v3": PhaseMap(branches=(0, 1, 2)),
    "window-open-v3": PhaseMap(branches=(0, 1, 2)),
}


class ExpertWithPhases:
    """Meta-World's scripted expert for one task, reporting its current phase with every action.

    Use one instance per episode, or call :meth:`reset` between episodes; a fresh episode is also
    recognised on its own from the observation (right after ``env.reset()`` the previous-frame
    half of the observation equals the current one).
    """

    def __init__(self, env_name: str) -> None:
        expert = TASKS[env_name].metaworld_env if env_name in TASKS else env_name
        if expert not in PHASE_MAPS:
            raise KeyError(f"no phase map for task {env_name!r}")
        self.env_name = env_name
        self.map = PHASE_MAPS[expert]
        self.n_phases = len(TASKS[env_name].phases)
        self.policy = ENV_POLICY_MAP[expert]()
        self.branch: int | None = None  # the marked branch taken by the last act()
        self.grip_branch: int | None = None  # the _grab_effort branch taken by the last act()
        self.saturated_steps = 0  # steps of this episode whose action the expert saturated
        self._floor = 0
        if self.map.rule is None:
            self._trace(self.map.method, self.map.marker, "branch", len(self.map.branches))
            if self.map.grip:
                self._trace("_grab_effort", "return", "grip_branch", None)
        used = [*self.map.branches, *(p for _, _, p in self.map.grip)]
        if any(not 0 <= p < self.n_phases for p in used):
            raise ValueError(f"{env_name}: phase map refers past its {self.n_phases} phases")

    def reset(self) -> None:
        """Forget the episode so far (only latching tasks keep any)."""
        self._floor = 0
        self.saturated_steps = 0

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, int]:
        """The expert's action for ``obs``, unchanged, and the index of the phase it is in."""
        if np.array_equal(obs[:18], obs[18:36]):
            self.reset()
        self.branch = self.grip_branch = None
        # Some experts (door-open, door-close) shift their parsed observation in place; a copy
        # keeps the caller's observation intact without changing what the expert computes.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            action = self.policy.get_action(np.array(obs, copy=True))
        for w in caught:
            if issubclass(w.category, UserWarning) and SATURATION_WARNING in str(w.message):
                self.saturated_steps += 1
            else:  # not ours to judge: pass it on as it was raised
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        phase = self._phase(obs)
        latch = self.map.latch_from
        if latch is not None:
            if self._floor >= latch:
                phase = max(phase, self._floor)
            self._floor = max(phase, self._floor)
        return action, phase

    def _phase(self, obs: np.ndarray) -> int:
        if self.map.rule is not None:
            return self.map.rule(obs)
        if self.branch is None:
            raise RuntimeError(f"{self.env_name}: the expert took none of its traced branches")
        for branch, grip, phase in self.map.grip:
            if branch == self.branch and grip == self.grip_branch:
                return phase
        return self.map.branches[self.branch]

    def _trace(self, method: str, marker: str, slot: str, expected: int | None) -> None:
        """Install an instrumented twin of ``method`` that writes its branch number to ``slot``."""

        def mark(k: int, value: Any) -> Any:
            setattr(self, slot, k)
            return value

        func = inspect.unwrap(getattr(type(self.policy), method))
        twin, n_marks = instrument(func, marker, mark)
        if expected is not None and n_marks != expected:
            raise RuntimeError(
                f"{self.env_name}: the expert's {method} has {n_marks} branches but the phase map "
                f"expects {expected}; Meta-World's policy changed, update PHASE_MAPS"
            )
        static = isinstance(inspect.getattr_static(type(self.policy), method), staticmethod)
        setattr(self.policy, method, twin if static else types.MethodType(twin, self.policy))


def instrument(
    func: Callable[..., Any], marker: str, mark: Callable[[int, Any], Any]
) -> tuple[Callable[..., Any], int]:
    """Recompile ``func`` from its source with its returns (or ``move`` calls) passed through
    ``mark(k, value)``, k counting them in source order; returns the twin and the count."""
    lines, first_line = inspect.getsourcelines(func)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise TypeError(f"cannot instrument {func!r}")
    fdef.decorator_list = []
    sites = [n for n in ast.walk(fdef) if _is_marked(n, marker)]
    sites.sort(key=lambda n: (n.lineno, n.col_offset))
    _MarkSites({id(n): k for k, n in enumerate(sites)}).visit(tree)
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, first_line - 1)
    scope = {**func.__globals__, _MARK: mark}
    exec(compile(tree, inspect.getsourcefile(func) or "<expert>", "exec"), scope)
    return scope[fdef.name], len(sites)


def _is_marked(node: ast.AST, marker: str) -> bool:
    if marker == "return":
        return isinstance(node, ast.Return)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == marker


class _MarkSites(ast.NodeTransformer):
    """Wraps the chosen nodes' values in ``_MARK(k, ...)``."""

    def __init__(self, ordinal: dict[int, int]) -> None:
        self.ordinal = ordinal

    def _wrap(self, k: int, value: ast.expr) -> ast.Call:
        return ast.Call(ast.Name(_MARK, ast.Load()), [ast.Constant(k), value], [])

    def visit_Return(self, node: ast.Return) -> ast.Return:
        self.generic_visit(node)
        if id(node) in self.ordinal:
            node.value = self._wrap(self.ordinal[id(node)], node.value or ast.Constant(None))
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if id(node) in self.ordinal:
            return self._wrap(self.ordinal[id(node)], node)
        return node
