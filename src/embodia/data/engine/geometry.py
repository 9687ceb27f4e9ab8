"""Where an object is in an image, from the simulator's geometry (never from a detector).

Boxes are the tight 2D extent of the projected surface of the object's visible geoms (mesh
vertices, or points on the primitive's surface), so they are amodal: a partly hidden object keeps its
whole box. Points are projections of a geom centre that the segmentation render confirms lands on
the object's own pixels; an object with no such point is treated as not visible in that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from embodia.data.engine.camera import PinholeCamera

#: MjvOption shows geom groups 0-2 by default; Meta-World keeps collision-only geoms in group 3+.
VISIBLE_GROUPS = (0, 1, 2)


@dataclass(frozen=True)
class Projection:
    """An object's 2D footprint in one camera, in continuous pixel coordinates."""

    point: tuple[float, float]  # (x, y), on the object's own pixels
    box: tuple[float, float, float, float]  # (x1, y1, x2, y2), clipped to the image
    depth: float  # metres along the optical axis at the reference point
    visible_pixels: int


def visible_geoms(model: mujoco.MjModel, geom_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(geom_ids, dtype=np.int64)
    keep = np.isin(model.geom_group[ids], VISIBLE_GROUPS) & (model.geom_rgba[ids, 3] > 0)
    return ids[keep]


def _primitive_points(geom_type: int, size: np.ndarray) -> np.ndarray:
    """Points on a primitive's surface in its local frame, enough to bound its projection."""
    ring = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    circle = np.stack([np.cos(ring), np.sin(ring)], axis=1)
    if geom_type == mujoco.mjtGeom.mjGEOM_BOX:
        signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
        return signs * size[:3]
    if geom_type == mujoco.mjtGeom.mjGEOM_SPHERE:
        r = size[0]
        pts = [
            np.c_[circle * r, np.zeros(16)],
            np.c_[circle[:, :1] * r, np.zeros(16), circle[:, 1:] * r],
        ]
        pts.append(np.c_[np.zeros(16), circle * r])
        return np.concatenate(pts)
    if geom_type in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        r, half = size[0], size[1]
        ends = [np.c_[circle * r, np.full(16, z)] for z in (-half, half)]
        if geom_type == mujoco.mjtGeom.mjGEOM_CAPSULE:
            ends.append(np.array([[0, 0, -half - r], [0, 0, half + r]]))
        return np.concatenate(ends)
    if geom_type == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
        signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
        return signs * size[:3]
    return np.zeros((1, 3))


def geom_surface_points(model: mujoco.MjModel, data: mujoco.MjData, geom_id: int) -> np.ndarray:
    """World-frame points on one geom's surface (mesh vertices or primitive samples)."""
    if model.geom_type[geom_id] == mujoco.mjtGeom.mjGEOM_MESH:
        mesh = model.geom_dataid[geom_id]
        start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
        local = model.mesh_vert[start : start + count].astype(np.float64)
    else:
        local = _primitive_points(int(model.geom_type[geom_id]), model.geom_size[geom_id])
    rot = data.geom_xmat[geom_id].reshape(3, 3)
    return local @ rot.T + data.geom_xpos[geom_id]


def object_surface_points(model, data, geom_ids: np.ndarray) -> np.ndarray:
    return np.concatenate([geom_surface_points(model, data, int(g)) for g in geom_ids])


def geom_volume_order(model: mujoco.MjModel, geom_ids: np.ndarray) -> np.ndarray:
    """Geoms from largest to smallest bounding box, so the point lands on the object's bulk."""
    half = model.geom_aabb[geom_ids, 3:]
    return np.asarray(geom_ids)[np.argsort(-np.prod(half, axis=1), kind="stable")]


def project_object(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    camera: PinholeCamera,
    geom_ids: np.ndarray,
    segmentation: np.ndarray,
    min_pixels: int = 4,
) -> Projection | None:
    """The object's point and box in ``camera``, or None if it is not visibly in the image."""
    geoms = visible_geoms(model, geom_ids)
    if geoms.size == 0:
        return None
    own = np.isin(segmentation, geoms)
    n_pixels = int(own.sum())
    if n_pixels < min_pixels:
        return None
    h, w = segmentation.shape
    candidates = [data.geom_xpos[int(g)] for g in geom_volume_order(model, geoms)]
    point, depth = None, None
    for candidate in candidates:
        uv, z = camera.project(candidate)
        x, y = uv[0]
        if not np.isfinite(x) or not (0 <= x < w and 0 <= y < h):
            continue
        if own[int(y), int(x)]:
            point, depth = (float(x), float(y)), float(z[0])
            break
    if point is None:
        return None
    uv, z = camera.project(object_surface_points(model, data, geoms))
    uv = uv[np.isfinite(uv).all(axis=1)]
    x1, y1 = np.clip(uv.min(axis=0), 0, [w, h])
    x2, y2 = np.clip(uv.max(axis=0), 0, [w, h])
    return Projection(point, (float(x1), float(y1), float(x2), float(y2)), depth, n_pixels)


def project_region(
    camera: PinholeCamera,
    position: np.ndarray,
    radius: float,
    depth_image: np.ndarray,
    occlusion_margin: float = 0.02,
) -> Projection | None:
    """A target region (a point in space with a radius): visible if in view and not hidden."""
    uv, z = camera.project(position)
    x, y = uv[0]
    h, w = depth_image.shape
    if not np.isfinite(x) or not (0 <= x < w and 0 <= y < h):
        return None
    seen = depth_image[int(y), int(x)]
    if seen > 0 and seen < z[0] - max(radius, occlusion_margin):
        return None  # something stands in front of the region
    r_px = camera.intrinsics[0, 0] * radius / z[0]
    box = (max(0.0, x - r_px), max(0.0, y - r_px), min(float(w), x + r_px), min(float(h), y + r_px))
    return Projection((float(x), float(y)), box, float(z[0]), 0)


def table_height(model: mujoco.MjModel, data: mujoco.MjData, body: str = "tablelink") -> float:
    """Height of the table top: the highest point of the table body's visible geoms."""
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
    if bid < 0:
        return 0.0
    geoms = visible_geoms(model, np.flatnonzero(model.geom_bodyid == bid))
    if geoms.size == 0:
        return 0.0
    return float(object_surface_points(model, data, geoms)[:, 2].max())
