"""The renderer's depth and the camera model's projections agree with the simulator's geometry."""

import mujoco
import numpy as np
import pytest

from embodia.data.engine.camera import mujoco_camera, renders_upside_down
from embodia.data.engine.rendering import OffscreenRenderer, RenderError
from embodia.data.engine.scene import MetaWorldScene

CAMERAS = ["corner", "corner2", "corner3", "topview", "behindGripper", "gripperPOV"]
SIZE = 96


@pytest.fixture(scope="module")
def scene():
    sc = MetaWorldScene("pick-place-v3")
    sc.reset(7)
    rotate = frozenset(c for c in CAMERAS if renders_upside_down(sc.model, sc.data, c))
    renderer = OffscreenRenderer(sc.model, CAMERAS, SIZE, SIZE, rotate)
    yield sc, renderer, rotate
    renderer.close()
    sc.close()


def test_corner_cameras_are_turned_upright_and_gripper_camera_is_not(scene):
    _, _, rotate = scene
    assert "corner" in rotate
    assert "gripperPOV" not in rotate


# behindGripper sits inside the arm's right_l0 mesh: the rasteriser culls those back faces, a ray
# cast from inside hits them, so the two legitimately disagree there.
@pytest.mark.parametrize("cam_name", [c for c in CAMERAS if c != "behindGripper"])
def test_depth_matches_ray_cast(scene, cam_name):
    sc, renderer, rotate = scene
    frame = renderer.render(sc.data, cam_name)
    cam = mujoco_camera(sc.model, sc.data, cam_name, SIZE, SIZE, cam_name in rotate)
    geomgroup = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)
    geomid = np.zeros(1, dtype=np.int32)
    # a camera mounted on the robot sits inside its own body's meshes, which the rasteriser culls
    own_body = int(sc.model.cam_bodyid[sc.model.camera(cam_name).id]) or -1
    checked = 0
    for i in range(3, SIZE, 11):
        for j in range(5, SIZE, 13):
            if frame.depth[i, j] == 0:
                continue
            origin, direction = cam.pixel_ray(j + 0.5, i + 0.5)
            dist = mujoco.mj_ray(
                sc.model, sc.data, origin, direction, geomgroup, 1, own_body, geomid
            )
            assert dist > 0, f"ray through ({i},{j}) hit nothing but depth is {frame.depth[i, j]}"
            along_axis = dist * float(direction @ cam.cam_to_world[:3, 2])
            # a ray through the pixel centre can graze an edge the rasteriser resolved differently
            if abs(along_axis - frame.depth[i, j]) > 0.01:
                continue
            assert along_axis == pytest.approx(frame.depth[i, j], abs=2e-3)
            checked += 1
    assert checked >= 20


def test_background_is_masked_and_depth_is_metric(scene):
    sc, renderer, _ = scene
    frame = renderer.render(sc.data, "corner")
    valid = frame.depth[frame.depth > 0]
    assert valid.size > 0.5 * frame.depth.size
    assert valid.min() > 0.2 and valid.max() < renderer.max_depth
    assert frame.rgb.shape == (SIZE, SIZE, 3) and frame.rgb.dtype == np.uint8


@pytest.mark.parametrize("cam_name", ["corner", "corner2", "corner3", "topview"])
def test_projected_geom_centre_lands_on_its_own_pixels(scene, cam_name):
    sc, renderer, rotate = scene
    model, data = sc.model, sc.data
    puck = np.flatnonzero(model.geom_bodyid == model.body("obj").id)
    seg = renderer.segmentation(data, cam_name)
    cam = mujoco_camera(model, data, cam_name, SIZE, SIZE, cam_name in rotate)
    uv, z = cam.project(data.geom_xpos[puck])
    x, y = uv[0]
    assert 0 <= x < SIZE and 0 <= y < SIZE
    assert seg[int(y), int(x)] in puck
    # and the depth image at that pixel is the puck's surface, a little in front of its centre
    depth = renderer.render(data, cam_name).depth
    assert 0 < z[0] - depth[int(y), int(x)] < 0.03


def test_unknown_camera_is_a_clear_error(scene):
    sc, _, _ = scene
    with pytest.raises(RenderError, match="no-such-cam"):
        OffscreenRenderer(sc.model, ["no-such-cam"], SIZE, SIZE)
