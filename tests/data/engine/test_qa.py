"""QA answers are computed exactly from the given scene state."""

import json
from collections import Counter

import numpy as np

from embodia.data.engine import qa
from embodia.data.engine.camera import PinholeCamera, intrinsics_matrix
from embodia.data.engine.geometry import Projection


def _camera() -> PinholeCamera:
    # looking along world +y from the origin; OpenCV axes: x right = world x, y down = world -z
    pose = np.eye(4)
    pose[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)
    return PinholeCamera("cam", 100, 100, intrinsics_matrix(60.0, 100, 100), pose)


def _entity(name, kind, pos, cam):
    uv, z = cam.project(np.array(pos))
    x, y = uv[0]
    return qa.SceneEntity(
        name,
        kind,
        np.array(pos, float),
        Projection((x, y), (x - 5, y - 5, x + 5, y + 5), float(z[0]), 50),
    )


def _ctx(entities, cam):
    return qa.FrameContext(
        cam,
        entities,
        "Pick up the puck.",
        ("reach the puck", "grasp the puck"),
        1,
        0.0,
        "img.png",
        "img_depth.png",
        {"frame_index": 0},
    )


def test_camera_projects_centre_and_right():
    cam = _camera()
    uv, z = cam.project(np.array([[0.0, 1.0, 0.0], [0.1, 1.0, 0.0], [0.0, 1.0, 0.1]]))
    assert np.allclose(uv[0], [50, 50]) and z[0] == 1.0
    assert uv[1, 0] > 50  # +x is to the right
    assert uv[2, 1] < 50  # up is up


def test_spatial_answers_are_exact():
    cam = _camera()
    puck = _entity("puck", "object", [-0.2, 0.8, 0.05], cam)
    mug = _entity("mug", "object", [0.2, 1.2, 0.15], cam)
    ctx = _ctx([puck, mug], cam)
    samples = qa.spatial_samples(ctx, np.random.default_rng(0), limit=100)
    by_cat = {}
    for s in samples:
        by_cat.setdefault(s["category"], []).append(s)
    dist = by_cat["distance"][0]["answer"]["value"]
    assert dist == round(float(np.linalg.norm(puck.position - mug.position)), 4)
    assert by_cat["depth_order"][0]["answer"] == {"choice": "puck"}
    rel = {s["conversations"][0]["value"]: s["answer"]["choice"] for s in by_cat["relation"]}
    assert any(v == "left" for k, v in rel.items() if "left or to the right" in k)
    assert any(v == "mug" for k, v in rel.items() if "higher" in k)
    heights = sorted(s["answer"]["value"] for s in by_cat["height"])
    assert heights == [0.05, 0.15]


def test_grounding_coordinates_qwen3_and_absolute():
    cam = _camera()
    puck = _entity("puck", "object", [0.0, 1.0, 0.0], cam)
    rng = np.random.default_rng(1)
    for style, expected in (("qwen3", [500, 500]), ("qwen2.5", [50, 50])):
        out = qa.grounding_samples(_ctx([puck], cam), rng, style)
        ans = out[0]["answer"]
        key = "point_2d" if "point_2d" in ans else "bbox_2d"
        got = (
            ans[key][:2]
            if key == "point_2d"
            else [(ans[key][0] + ans[key][2]) // 2, (ans[key][1] + ans[key][3]) // 2]
        )
        assert got == expected
        assert json.loads(out[0]["conversations"][1]["value"])[0]["label"] == "puck"


def test_ambiguous_comparisons_are_not_asked():
    cam = _camera()
    a = _entity("puck", "object", [0.0, 1.0, 0.0], cam)
    b = _entity("mug", "object", [0.001, 1.001, 0.001], cam)
    samples = qa.spatial_samples(_ctx([a, b], cam), np.random.default_rng(0), limit=100)
    assert {s["category"] for s in samples} == {"distance", "height"}


def test_planning_gives_current_stage_and_full_plan():
    cam = _camera()
    out = qa.planning_samples(_ctx([], cam), np.random.default_rng(0), include_plan=True)
    assert out[0]["answer"] == {"subtask": "grasp the puck", "index": 1}
    assert out[1]["answer"]["subtasks"] == ["reach the puck", "grasp the puck"]
    assert "1. Reach the puck." in out[1]["conversations"][1]["value"]


def test_spatial_questions_are_spread_over_categories():
    cam = _camera()
    things = [
        _entity(n, "object", p, cam)
        for n, p in [("puck", [-0.3, 0.8, 0.0]), ("mug", [0.0, 1.1, 0.1]), ("box", [0.3, 1.4, 0.2])]
    ]
    samples = qa.spatial_samples(_ctx(things, cam), np.random.default_rng(0), limit=4)
    cats = [s["category"] for s in samples]
    assert len(cats) == 4 and len(set(cats)) == 4


# ---------------------------------------------------------------- balancing a split


def _choice(env, subject, cls, image="i.png", category="depth_order", task_type="spatial"):
    return {
        "env_name": env,
        "category": category,
        "task_type": task_type,
        "subject": list(subject),
        "answer_class": cls,
        "image": image,
    }


def test_balance_ties_the_most_common_answers_and_drops_fixed_ones():
    rows = (
        [_choice("door", ("a", "b", "c"), "x")] * 10
        + [_choice("door", ("a", "b", "c"), "y")] * 4
        + [_choice("door", ("a", "b", "c"), "z")] * 3
        + [_choice("door", ("a", "b", "c"), "w")] * 1
        + [_choice("door", ("a", "b"), "a")] * 5  # only ever one answer: dropped
        + [_choice("door", ("a", "b"), "a", category="relation")] * 2
        + [_choice("door", ("a", "b"), "b", category="relation")] * 6
        + [_choice("door", (), "1. Reach.", category="plan", task_type="planning")] * 3
    )
    rows = [dict(r, n=i) for i, r in enumerate(rows)]
    kept = qa.balance(rows, np.random.default_rng(0))
    count = Counter((r["category"], tuple(r["subject"]), r["answer_class"]) for r in kept)
    assert count == {
        ("depth_order", ("a", "b", "c"), "x"): 3,
        ("depth_order", ("a", "b", "c"), "y"): 3,
        ("depth_order", ("a", "b", "c"), "z"): 3,
        ("depth_order", ("a", "b", "c"), "w"): 1,
        ("relation", ("a", "b"), "a"): 2,
        ("relation", ("a", "b"), "b"): 2,
        ("plan", (), "1. Reach."): 3,  # a plan follows from the instruction: kept as it is
    }
    assert [r["n"] for r in kept] == sorted(r["n"] for r in kept)  # input order kept
    again = qa.balance(rows, np.random.default_rng(0))
    assert [r["n"] for r in again] == [r["n"] for r in kept]  # seeded


def test_a_category_budget_scales_every_group_and_keeps_its_ties():
    rows = [_choice("door", ("a", "b"), c) for c in "ab" * 20] + [
        _choice("window", ("a", "b"), c) for c in "ab" * 10
    ]
    kept = qa.balance(rows, np.random.default_rng(0), budgets={"depth_order": 30})
    count = Counter((r["env_name"], r["answer_class"]) for r in kept)
    assert count == {("door", "a"): 10, ("door", "b"): 10, ("window", "a"): 5, ("window", "b"): 5}


def test_which_thing_is_named_first_is_drawn_at_random():
    cam = _camera()
    puck = _entity("puck", "object", [-0.2, 0.8, 0.05], cam)
    mug = _entity("mug", "object", [0.2, 1.2, 0.15], cam)
    firsts, sides = Counter(), Counter()
    for seed in range(40):
        for s in qa.spatial_samples(_ctx([puck, mug], cam), np.random.default_rng(seed)):
            question = s["conversations"][0]["value"]
            if s["category"] != "height":  # pairs: sorted, the same group in either order
                assert s["subject"][-2:] == ["mug", "puck"]
            if s["category"] == "depth_order":
                firsts[question.index("puck") < question.index("mug")] += 1
                assert s["answer_class"] == "puck"
            if "left or to the right" in question:
                sides[s["answer"]["choice"]] += 1
                assert s["answer_class"] == "puck"  # the thing on the left, in either order
    assert min(firsts.values()) >= 10 and min(sides.values()) >= 10
