"""Pinhole camera models of MuJoCo cameras, in the OpenCV convention, matching the stored pixels.

Every 2D answer in the data (grounding points and boxes) comes from projecting simulator geometry
through these models, so they must agree exactly with :class:`OffscreenRenderer`'s images:
pixel (row i, column j) covers the continuous square [j, j+1) x [i, i+1), the principal point is the
image centre, and cameras whose images the renderer turns by 180 degrees have their pose turned the
same way about the optical axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

# MuJoCo cameras look down -z with +y up; OpenCV cameras look down +z with +y down.
_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])
_TURN_180 = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics ``K`` (3x3) and camera-to-world pose (4x4, OpenCV axes: x right, y down, z forward)."""

    name: str
    width: int
    height: int
    intrinsics: np.ndarray
    cam_to_world: np.ndarray

    @property
    def world_to_cam(self) -> np.ndarray:
        rot, pos = self.cam_to_world[:3, :3], self.cam_to_world[:3, 3]
        out = np.eye(4)
        out[:3, :3] = rot.T
        out[:3, 3] = -rot.T @ pos
        return out

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> camera-frame points (N, 3); z is the metric depth."""
        pts = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
        w2c = self.world_to_cam
        return pts @ w2c[:3, :3].T + w2c[:3, 3]

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> continuous pixel coordinates (N, 2) as (x=u, y=v) and depth (N,).

        Points behind the camera get NaN pixel coordinates.
        """
        cam = self.to_camera(points_world)
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (cam[:, :2] / z[:, None]) @ self.intrinsics[:2, :2].T + self.intrinsics[:2, 2]
        uv[z <= 1e-9] = np.nan
        return uv, z

    def pixel_ray(self, u: float, v: float) -> tuple[np.ndarray, np.ndarray]:
        """World-frame origin and unit direction of the ray through continuous pixel (u, v)."""
        k = self.intrinsics
        d_cam = np.array([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], 1.0])
        d_world = self.cam_to_world[:3, :3] @ d_cam
        return self.cam_to_world[:3, 3].copy(), d_world / np.linalg.norm(d_world)


def intrinsics_matrix(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """MuJoCo's fovy is the vertical field of view; pixels are square."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def mujoco_camera(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    name: str,
    width: int,
    height: int,
    rotate180: bool = False,
) -> PinholeCamera:
    """The camera as it is in ``data`` now (moving cameras, e.g. on the gripper, change per step)."""
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cid < 0:
        raise ValueError(f"unknown camera {name!r}")
    rot = data.cam_xmat[cid].reshape(3, 3) @ _MJ_TO_CV
    if rotate180:
        rot = rot @ _TURN_180
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = data.cam_xpos[cid]
    return PinholeCamera(
        name=name,
        width=width,
        height=height,
        intrinsics=intrinsics_matrix(float(model.cam_fovy[cid]), width, height),
        cam_to_world=pose,
    )


def renders_upside_down(model: mujoco.MjModel, data: mujoco.MjData, name: str) -> bool:
    """Whether world 'up' points down in this camera's image, so the image should be turned.

    Cameras looking nearly straight down (a gripper camera) have no meaningful 'up' and are left
    as they are. This replaces a hand-kept list of which Meta-World cameras are upside down.
    """
    cam = mujoco_camera(model, data, name, 2, 2)
    forward = cam.cam_to_world[:3, 2]
    if abs(forward[2]) > 0.9:
        return False
    down_in_image = cam.cam_to_world[:3, 1]  # image +y (down) in world coordinates
    return float(down_in_image[2]) > 0.0
