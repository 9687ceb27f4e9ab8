"""QA answers are computed exactly from the given scene state."""

import json

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
