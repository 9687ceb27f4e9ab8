"""Task catalog and expert phase labelling, checked against Meta-World itself."""

from __future__ import annotations

import itertools

import mujoco
import numpy as np
import pytest
from metaworld import env_dict
from metaworld.policies import ENV_POLICY_MAP

from embodia.data.engine.phases import PHASE_MAPS, ExpertWithPhases
from embodia.data.engine.scene import MetaWorldScene
from embodia.data.engine.tasks import (
    TASK_SETS,
    TASKS,
    SceneObject,
    UnknownTaskError,
    all_instructions,
    object_geom_ids,
    object_position,
    resolve_tasks,
)

# Meta-World's experts warn about their own large gains on every step; that is not under test.
pytestmark = pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")

# The published MT10 benchmark, written out independently of the code under test.
PUBLISHED_MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
SAMPLE_TASKS = (
    "pick-place-v3",
    "drawer-open-v3",
    "button-press-topdown-v3",
    "door-open-v3",
    "reach-v3",
)
# Generous bounds of the Sawyer's table workspace (metres, world frame).
WORKSPACE_LO = np.array([-0.6, 0.3, -0.05])
WORKSPACE_HI = np.array([0.6, 1.1, 0.6])


# ---------------------------------------------------------------- catalog


def test_catalog_covers_exactly_the_metaworld_tasks():
    metaworld = {name for name, spec in TASKS.items() if spec.start is None}
    assert metaworld == set(ENV_POLICY_MAP) == set(env_dict.MT50_V3)
    assert len(metaworld) == 50
    assert set(PHASE_MAPS) == metaworld
    # the rest start from a shared state and borrow a Meta-World task's expert and goal
    assert {TASKS[n].metaworld_env for n in set(TASKS) - metaworld} <= metaworld
    for name, spec in TASKS.items():
        assert spec.env_name == name


@pytest.mark.parametrize("name", sorted(TASKS))
def test_spec_is_complete(name):
    spec = TASKS[name]
    texts = all_instructions(name)
    assert texts[0] == spec.instruction
    assert len(spec.paraphrases) >= 4
    assert len({t.lower().rstrip(".") for t in texts}) == len(texts), "phrasings must differ"
    assert all(t[0].isupper() and t.endswith(".") for t in texts)
    assert spec.phases and all(p and p == p.strip() and not p.endswith(".") for p in spec.phases)
    assert all(p[0].islower() for p in spec.phases), "phases are lower-case imperative subtasks"
    assert any(o.kind == "object" for o in spec.objects)
    assert len({o.name for o in spec.objects}) == len(spec.objects)
    for obj in spec.objects:
        if obj.kind == "object":
            assert obj.bodies and obj.site is None and not obj.use_target_pos
        else:
            assert (obj.site is not None) != obj.use_target_pos and obj.radius > 0


def test_task_sets_match_metaworld():
    assert TASK_SETS["MT10"] == PUBLISHED_MT10 == tuple(env_dict.MT10_V3)
    assert TASK_SETS["MT50"] == tuple(env_dict.MT50_V3)
    for bench in ("ML10", "ML45"):
        split = getattr(env_dict, f"{bench}_V3")
        assert TASK_SETS[f"{bench}-train"] == tuple(split["train"])
        assert TASK_SETS[f"{bench}-test"] == tuple(split["test"])
    assert len(TASK_SETS["ML45-train"]) == 45 and len(TASK_SETS["ML10-test"]) == 5
    assert all(set(tasks) <= set(TASKS) for tasks in TASK_SETS.values())


# ---------------------------------------------------------------- resolve_tasks


def test_resolve_accepts_names_without_suffix_and_keeps_order():
    assert resolve_tasks(["pick-place", "reach-v3", "Door-Open"]) == [
        "pick-place-v3",
        "reach-v3",
        "door-open-v3",
    ]


def test_resolve_expands_sets_case_insensitively_and_deduplicates():
    got = resolve_tasks(["pick-place-v3", "mt10", "reach", "ML10-TEST"])
    assert got[0] == "pick-place-v3"
    assert got[1:10] == [t for t in PUBLISHED_MT10 if t != "pick-place-v3"]
    assert got[10:] == [t for t in env_dict.ML10_V3["test"] if t not in PUBLISHED_MT10]
    assert len(got) == len(set(got))
    assert resolve_tasks(["MT50"]) == list(env_dict.MT50_V3)
    assert resolve_tasks("reach") == ["reach-v3"]  # a lone string is one name


def test_resolve_rejects_a_typo_with_a_suggestion():
    with pytest.raises(UnknownTaskError) as err:
        resolve_tasks(["reach", "pick-plcae"])
    message = str(err.value)
    assert "pick-plcae" in message and "pick-place-v3" in message and "MT10" in message
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnknownTaskError, match="MT10"):
        resolve_tasks(["mt11"])


# ---------------------------------------------------------------- objects

_XML = """
<mujoco>
  <worldbody>
    <body name="robot"><geom type="sphere" size="0.05"/></body>
    <body name="thing" pos="0.1 0.7 0.2" euler="0 0 90">
      <geom type="box" size="0.1 0.02 0.01" pos="0.05 0 0"/>
      <body name="part" pos="0 0 0.05"><geom type="sphere" size="0.01"/></body>
    </body>
  </worldbody>
</mujoco>
"""


def test_object_geoms_include_descendants_and_boxes_follow_rotation():
    model = mujoco.MjModel.from_xml_string(_XML)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    thing = SceneObject("thing", "object", bodies=("thing",))
    ids = object_geom_ids(model, thing)
    assert [model.body(model.geom_bodyid[g]).name for g in ids] == ["thing", "part"]
    # The box sits 5 cm along the body's x axis, which the 90 degree yaw turns into world +y.
    lo = np.array([0.1 - 0.02, 0.7 + 0.05 - 0.1, 0.2 - 0.01])
    hi = np.array([0.1 + 0.02, 0.7 + 0.05 + 0.1, 0.2 + 0.05 + 0.01])
    np.testing.assert_allclose(object_position(model, data, None, thing), (lo + hi) / 2, atol=1e-9)


def test_missing_body_is_named_in_the_error():
    model = mujoco.MjModel.from_xml_string(_XML)
    with pytest.raises(ValueError, match="'lid'"):
        object_geom_ids(model, SceneObject("lid", "object", bodies=("lid",)))


@pytest.mark.parametrize("name", SAMPLE_TASKS)
def test_scene_objects_resolve_in_the_real_scene(name):
    scene = MetaWorldScene(name)
    try:
        obs = scene.reset(3)
        model, data = scene.model, scene.data
        robot = {model.body(b).id for b in ("base",)}
        for obj in TASKS[name].objects:
            pos = object_position(model, data, scene.env, obj)
            assert pos.shape == (3,) and np.all(np.isfinite(pos))
            assert np.all(pos >= WORKSPACE_LO) and np.all(pos <= WORKSPACE_HI), (obj.name, pos)
            if obj.kind == "object":
                ids = object_geom_ids(model, obj)
                assert ids.size > 0
                roots = {_root_body(model, model.geom_bodyid[g]) for g in ids}
                assert not roots & robot, f"{obj.name} includes robot geoms"
        if name in ("pick-place-v3", "reach-v3"):
            puck = next(o for o in TASKS[name].objects if o.name == "puck")
            np.testing.assert_allclose(
                object_position(model, data, scene.env, puck), obs[4:7], atol=0.01
            )
            goal = next(o for o in TASKS[name].objects if o.name == "goal")
            np.testing.assert_allclose(object_position(model, data, scene.env, goal), obs[-3:])
    finally:
        scene.close()


def _root_body(model: mujoco.MjModel, body: int) -> int:
    while model.body_parentid[body] != 0:
        body = model.body_parentid[body]
    return body


# ---------------------------------------------------------------- phases


def test_every_phase_map_fits_its_expert_and_its_phases():
    # Construction checks the branch count against the expert's source and the phase indices.
    for name in TASKS:
        expert = ExpertWithPhases(name)
        assert expert.n_phases == len(TASKS[name].phases)


def _rollout(name: str, layout_seed: int, max_steps: int = 500):
    scene = MetaWorldScene(name)
    raw = ENV_POLICY_MAP[name]()
    expert = ExpertWithPhases(name)
    phases, success = [], False
    try:
        obs = scene.reset(layout_seed)
        for _ in range(max_steps):
            before = obs.copy()
            action, phase = expert.act(obs)
            np.testing.assert_array_equal(obs, before, err_msg="act() must not modify obs")
            reference = raw.get_action(obs.copy())
            assert action.dtype == reference.dtype
            np.testing.assert_array_equal(action, reference)
            phases.append(phase)
            obs, _, _, info = scene.step(action)
            if info["success"]:
                success = True
                break
    finally:
        scene.close()
    return phases, success


def test_pick_place_phases_follow_the_expert():
    phases, success = _rollout("pick-place-v3", layout_seed=0)
    assert success
    assert phases[0] == 0
    assert phases[-1] == len(TASKS["pick-place-v3"].phases) - 1
    assert all(a <= b for a, b in itertools.pairwise(phases)), phases
    assert set(phases) == set(range(len(TASKS["pick-place-v3"].phases)))


def test_actions_unchanged_for_an_expert_that_edits_its_observation():
    # door-open's expert shifts the door position inside its parsed observation in place.
    phases, _ = _rollout("door-open-v3", layout_seed=1, max_steps=40)
    assert phases[0] == 0 and max(phases) >= 1


def test_drawer_open_phases_come_from_its_get_action_branches():
    phases, success = _rollout("drawer-open-v3", layout_seed=2)
    assert success and phases[0] == 0 and phases[-1] == 2
    assert all(a <= b for a, b in itertools.pairwise(phases))


def test_latched_phase_restarts_with_a_new_episode():
    scene = MetaWorldScene("dial-turn-v3")
    expert = ExpertWithPhases("dial-turn-v3")
    try:
        for layout_seed in (0, 1):
            obs = scene.reset(layout_seed)
            phases = []
            for _ in range(200):
                action, phase = expert.act(obs)
                phases.append(phase)
                obs, _, _, info = scene.step(action)
                if info["success"]:
                    break
            assert phases[0] == 0 and phases[-1] == 2, layout_seed
            assert all(a <= b for a, b in itertools.pairwise(phases))
    finally:
        scene.close()


def test_expert_saturation_is_counted_not_printed_and_other_warnings_pass():
    """Meta-World warns on every saturated expert action; the engine counts those steps (they are
    recorded per episode) and lets every other warning through unchanged."""
    import warnings

    scene = MetaWorldScene("pick-place-v3")
    try:
        obs = scene.reset(0)
        expert = ExpertWithPhases("pick-place-v3")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(40):
                action, _ = expert.act(obs)
                obs, *_ = scene.step(np.clip(action, -1, 1))
        assert expert.saturated_steps > 0
        assert not [w for w in caught if "may be too high" in str(w.message)]

        real = expert.policy.get_action

        def noisy_policy(o):
            warnings.warn("something else", RuntimeWarning, stacklevel=1)
            return real(o)

        expert.policy.get_action = noisy_policy
        with pytest.warns(RuntimeWarning, match="something else"):
            expert.act(obs)
    finally:
        scene.close()
