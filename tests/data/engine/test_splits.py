"""Splits are deterministic and never share a layout."""

import numpy as np
import pytest

from embodia.data.engine.scene import MetaWorldScene
from embodia.data.engine.splits import SplitOverlapError, check_disjoint, layout_seed, plan_episodes


def test_plan_is_deterministic_ordered_and_stable_when_growing():
    a = plan_episodes(0, ["reach-v3", "push-v3"], {"train": 3, "val": 1, "test": 1})
    b = plan_episodes(0, ["reach-v3", "push-v3"], {"train": 3, "val": 1, "test": 1})
    assert a == b
    assert [s.split for s in a] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    bigger = plan_episodes(0, ["reach-v3", "push-v3"], {"train": 5, "val": 1, "test": 1})
    # adding episodes keeps the seeds of the ones already there
    assert {s.key: s.layout_seed for s in a} == {
        s.key: s.layout_seed for s in bigger if s.key in {x.key for x in a}
    }
    assert len({s.key for s in bigger}) == len(bigger)


def test_seeds_differ_across_splits_tasks_and_root_seed():
    seeds = {
        layout_seed(r, t, s, n)
        for r in (0, 1)
        for t in ("reach-v3", "push-v3")
        for s in ("train", "val", "test")
        for n in range(20)
    }
    assert len(seeds) == 2 * 2 * 3 * 20
    with pytest.raises(ValueError, match="split"):
        layout_seed(0, "reach-v3", "holdout", 0)


def test_sampled_layouts_of_splits_never_overlap():
    scene = MetaWorldScene("pick-place-v3")
    plan = plan_episodes(3, ["pick-place-v3"], {"train": 8, "val": 4, "test": 4})
    layouts = []
    for spec in plan:
        scene.reset(spec.layout_seed)
        layouts.append((spec.env_name, spec.split, scene.layout.copy()))
    scene.close()
    check_disjoint(layouts)
    vecs = np.array([v for _, _, v in layouts])
    assert len(np.unique(vecs.round(9), axis=0)) == len(plan)


def test_overlap_is_detected():
    vec = np.array([0.1, 0.6, 0.02])
    with pytest.raises(SplitOverlapError, match=r"train.*test|test.*train"):
        check_disjoint([("reach-v3", "train", vec), ("reach-v3", "test", vec.copy())])


def test_same_seed_gives_the_same_layout():
    scene = MetaWorldScene("drawer-open-v3")
    scene.reset(11)
    first = scene.layout.copy()
    scene.reset(12)
    scene.reset(11)
    np.testing.assert_array_equal(first, scene.layout)
    scene.close()


def test_poses_are_current_right_after_reset():
    """Frame 0 must show the new layout, not the previous one (peg-insert-side moves its box in reset)."""
    import copy

    import mujoco

    scene = MetaWorldScene("peg-insert-side-v3")
    for seed in (1, 2):
        obs = scene.reset(seed)
        fresh = copy.copy(scene.data)
        mujoco.mj_kinematics(scene.model, fresh)
        np.testing.assert_array_equal(scene.data.xpos, fresh.xpos)
        np.testing.assert_array_equal(obs[:18], obs[18:36])
    scene.close()
