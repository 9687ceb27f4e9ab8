"""Offscreen RGB + metric depth (+ segmentation) rendering of a MuJoCo scene, fast on a CPU.

Why not ``mujoco.Renderer``: it renders the scene once for colour and again for depth. One
``mjr_render`` fills both the colour and the depth buffer, so reading them together halves the cost
per camera. With multisampling, shadows and reflections off, Mesa's CPU renderer then gives a
128 px RGB + depth frame in a few milliseconds. Depth is converted from the reversed-Z buffer to
metric depth along the camera axis exactly as ``mujoco.Renderer`` does (same float32 coefficients).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mujoco
import numpy as np

#: Default cut-off (metres) beyond which a pixel is background: the skybox is drawn tens of metres
#: away, while everything in a table-top scene lies within a few metres of the camera.
DEFAULT_MAX_DEPTH = 10.0


class RenderError(RuntimeError):
    """Rendering could not be set up (bad camera name, no GL backend, size over the framebuffer)."""


@dataclass
class CameraFrame:
    """One camera's view at one instant. ``depth`` is metres along the optical axis, 0 = invalid."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32


def camera_id(model: mujoco.MjModel, name: str) -> int:
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cid < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise RenderError(f"unknown camera {name!r}; this scene has cameras {names}")
    return cid


class OffscreenRenderer:
    """Renders named cameras of one MuJoCo model; images are upright as configured per camera.

    ``rotate180`` names cameras whose MuJoCo frame renders upside down (Meta-World's corner cameras);
    their images, depth and segmentation are turned by 180 degrees (``img[::-1, ::-1]``, not a flip,
    which would mirror the scene). :mod:`embodia.data.engine.camera` applies the same turn to the
    camera pose so projections match the stored pixels.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        cameras: list[str],
        height: int = 128,
        width: int = 128,
        rotate180: frozenset[str] = frozenset(),
        max_depth: float = DEFAULT_MAX_DEPTH,
    ) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise RenderError(
                f"image size {width}x{height} exceeds the model's offscreen framebuffer "
                f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}"
            )
        self.model = model
        self.cameras = list(cameras)
        self.camera_ids = {name: camera_id(model, name) for name in cameras}
        self.height, self.width = height, width
        self.rotate180 = frozenset(rotate180)
        # Multisampling costs several times the render itself on a CPU rasteriser.
        model.vis.quality.offsamples = 0
        try:
            self._gl = mujoco.GLContext(width, height)
            self._gl.make_current()
        except Exception as exc:  # pragma: no cover - depends on the machine's GL stack
            raise RenderError(
                f"could not create an offscreen GL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): "
                f"{exc}. Use MUJOCO_GL=egl (Mesa) or osmesa (apt install libosmesa6)."
            ) from exc
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), dtype=np.uint8)
        self._zbuf = np.empty((height, width), dtype=np.float32)
        extent = model.stat.extent
        far = np.float32(model.vis.map.zfar * extent)
        near = np.float32(model.vis.map.znear * extent)
        c = -(far + near) / (far - near)
        d = -(np.float32(2) * far * near) / (far - near)
        self._c = np.float32(-0.5) * c - np.float32(0.5)
        self._d = np.float32(-0.5) * d
        self.max_depth = float(max_depth)

    def _draw(self, data: mujoco.MjData, name: str, segmentation: bool) -> None:
        self._camera.fixedcamid = self.camera_ids[name]
        mujoco.mjv_updateScene(
            self.model,
            data,
            self._option,
            None,
            self._camera,
            mujoco.mjtCatBit.mjCAT_ALL,
            self._scene,
        )
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        self._gl.make_current()
        mujoco.mjr_render(self._rect, self._scene, self._context)

    def _upright(self, name: str, image: np.ndarray) -> np.ndarray:
        # MuJoCo reads rows bottom-up; flipping rows gives the usual top-down image.
        image = image[::-1]
        if name in self.rotate180:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def render(self, data: mujoco.MjData, name: str) -> CameraFrame:
        """RGB and metric depth of one camera from a single rasterisation."""
        self._draw(data, name, segmentation=False)
        mujoco.mjr_readPixels(self._rgb, self._zbuf, self._rect, self._context)
        depth = (
            np.float64(self._d) / (self._zbuf.astype(np.float64) + np.float64(self._c))
        ).astype(np.float32)
        depth[(depth >= self.max_depth) | ~np.isfinite(depth)] = 0.0
        return CameraFrame(rgb=self._upright(name, self._rgb), depth=self._upright(name, depth))

    def render_all(self, data: mujoco.MjData) -> dict[str, CameraFrame]:
        return {name: self.render(data, name) for name in self.cameras}

    def segmentation(self, data: mujoco.MjData, name: str) -> np.ndarray:
        """Per-pixel geom id (-1 for background or non-geom objects), upright like :meth:`render`."""
        self._draw(data, name, segmentation=True)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._context)
        rgb = self._rgb.astype(np.int64)
        seg_id = rgb[..., 0] + rgb[..., 1] * 256 + rgb[..., 2] * 65536 - 1
        geom_ids = np.full(seg_id.shape, -1, dtype=np.int64)
        n = self._scene.ngeom
        objtype = np.array([self._scene.geoms[i].objtype for i in range(n)], dtype=np.int64)
        objid = np.array([self._scene.geoms[i].objid for i in range(n)], dtype=np.int64)
        valid = (seg_id >= 0) & (seg_id < n)
        hit = seg_id[valid]
        is_geom = objtype[hit] == int(mujoco.mjtObj.mjOBJ_GEOM)
        ids = np.where(is_geom, objid[hit], -1)
        geom_ids[valid] = ids
        return self._upright(name, geom_ids)

    def close(self) -> None:
        """Free the GL context explicitly: EGL complains if it is left to interpreter exit."""
        if getattr(self, "_context", None) is not None:
            self._context.free()
            self._context = None
        if getattr(self, "_gl", None) is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
