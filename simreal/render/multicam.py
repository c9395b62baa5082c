"""Render the cameras of an N-copy simulation, copy by copy, with the copy's visual randomization.

One GL context (headless EGL unless ``MUJOCO_GL`` says otherwise), one render
model and data, for every copy: rendering copy i loads its per-copy model
fields and state from the ``mujoco.batch`` simulation, lets the randomization
stack's `VisualStack` dress the model, uploads the textures that changed for
this copy in place, draws each camera, and applies the image effects.
"""

from __future__ import annotations

import atexit
import copy
import os
import weakref
from typing import Sequence

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402


def _gl_context_class():
    from mujoco.rendering.classic import gl_context

    return getattr(gl_context, "GLContext", None)


_OPEN: "weakref.WeakSet[MultiCameraRenderer]" = weakref.WeakSet()
_AT_EXIT = [False]


def _close_open_renderers() -> None:
    """Free renderers still open at exit while the GL display still exists (MuJoCo's EGL
    backend terminates the display in its own exit handler, which runs after this one)."""
    for renderer in list(_OPEN):
        renderer.close()


class MultiCameraRenderer:
    """Images of named cameras of any copy of ``sim`` (a `HandCubeSim` or anything with ``model``,
    ``batch`` and ``randomization``), as one (n_cameras, height, width, 3) uint8 array per call.

    The offscreen buffer is sized to the images (not the model's ``offwidth`` x
    ``offheight``): the same pixels, without clearing and resolving a large buffer per image.

    Args:
        sim: the simulation; its ``randomization`` stack (if any) supplies the visual randomization.
        height, width: pixels per camera image.
        cameras: camera names (default: every camera of the model, in model order).
        hidden_group: a geom group hidden unless ``render(show_hidden=True)`` (the goal marker).
        antialias: multisamples per pixel (0 turns antialiasing off, about 2-3x faster with
            software GL); None keeps the model's ``offsamples``.
        zoom: magnification of every camera (>= 1): the image is the central 1/zoom of the
            camera's view (its field of view narrowed so that tan(fovy / 2) shrinks by zoom) at
            height x width pixels. The same pixels as rendering zoom times larger and cropping the
            centre, at the cost of the smaller image; applied on top of any randomized fovy.
    """

    def __init__(self, sim, height: int, width: int, cameras: Sequence[str] | None = None,
                 hidden_group: int | None = None, antialias: int | None = None, zoom: float = 1.0):
        self.sim = sim
        self.model = copy.copy(sim.model)
        m = self.model
        if min(height, width) < 8 or max(height, width) > 4096:
            raise ValueError(f"camera images must be 8 to 4096 pixels a side; got {height}x{width}")
        m.vis.global_.offwidth, m.vis.global_.offheight = int(width), int(height)
        if antialias is not None:
            if not 0 <= int(antialias) <= 16:
                raise ValueError(f"antialias must be 0 to 16 samples per pixel; got {antialias}")
            m.vis.quality.offsamples = int(antialias)
        self.antialias = int(m.vis.quality.offsamples)
        if not 1.0 <= float(zoom) <= 16.0:
            raise ValueError(f"zoom must be 1 to 16 (a magnification); got {zoom}")
        self.zoom = float(zoom)
        names = list(cameras) if cameras is not None else [m.camera(c).name for c in range(m.ncam)]
        ids = []
        for name in names:
            cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if cam < 0:
                known = ", ".join(m.camera(c).name for c in range(m.ncam))
                raise ValueError(f"no camera {name!r} in the model (cameras: {known})")
            ids.append(cam)
        self.camera_names = names
        self.camera_ids = np.asarray(ids, dtype=np.int64)
        self.height, self.width = int(height), int(width)
        self.hidden_group = hidden_group
        self.data = mujoco.MjData(m)
        gl_class = _gl_context_class()
        self._gl = gl_class(self.width, self.height) if gl_class is not None else None
        if not _AT_EXIT[0]:  # registered after the GL backend's own handler, so it runs first
            atexit.register(_close_open_renderers)
            _AT_EXIT[0] = True
        _OPEN.add(self)
        self._make_current()
        self._con = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._con)
        self._scene = mujoco.MjvScene(m, maxgeom=10000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._uploaded: dict[int, tuple] = {}  # texture id -> the key of what the GL context holds
        self._nominal_tex = sim.model.tex_data

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of one render: (cameras, height, width, 3)."""
        return (len(self.camera_ids), self.height, self.width, 3)

    def _make_current(self) -> None:
        if self._gl is not None:
            self._gl.make_current()

    def _visual(self):
        stack = getattr(self.sim, "randomization", None)
        visual = getattr(stack, "visual", None) if stack is not None else None
        return visual if visual else None

    def _upload(self, texid: int, data: np.ndarray, key) -> None:
        adr = int(self.model.tex_adr[texid])
        self.model.tex_data[adr:adr + data.size] = data
        mujoco.mjr_uploadTexture(self.model, self._con, texid)
        self._uploaded[texid] = key

    def _sync_textures(self, i: int, visual) -> None:
        """Upload the textures whose pixels for copy i differ from what the GL context holds."""
        wanted = visual.texture_ids if visual is not None else []
        for texid in [t for t in self._uploaded if t not in wanted]:  # a randomizer left: back to nominal
            m = self.model
            size = int(m.tex_width[texid] * m.tex_height[texid] * m.tex_nchannel[texid])
            adr = int(m.tex_adr[texid])
            self._upload(texid, self._nominal_tex[adr:adr + size], None)
            del self._uploaded[texid]
        for texid in wanted:
            key = visual.texture_key(i, texid)
            if self._uploaded.get(texid) != key:
                self._upload(texid, visual.texture_data(i, texid), key)

    def render(self, i: int = 0, show_hidden: bool = False, out: np.ndarray | None = None,
               effects: bool = True) -> np.ndarray:
        """Copy i seen by every camera: (n_cameras, height, width, 3) uint8.

        ``show_hidden`` draws the hidden geom group (the goal marker);
        ``effects=False`` skips the image effects (blur, contrast, noise, ...).
        """
        if self._con is None:
            raise RuntimeError("MultiCameraRenderer.render() called after close()")
        m, d = self.model, self.data
        batch = self.sim.batch
        batch.get_model(i, m)  # per-copy physics fields; every other field back to nominal
        batch.get_data(i, d)
        visual = self._visual()
        if visual is not None:
            visual.apply(i, m)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)
        self._make_current()
        if visual is not None or self._uploaded:
            self._sync_textures(i, visual)
        if self.hidden_group is not None:
            self._option.geomgroup[self.hidden_group] = int(show_hidden)
        if out is None:
            out = np.empty(self.shape, dtype=np.uint8)
        cat = mujoco.mjtCatBit.mjCAT_ALL.value
        fovy = m.cam_fovy.copy() if self.zoom != 1.0 else None
        if fovy is not None:  # narrowed for these images only, from this copy's (randomized) values
            m.cam_fovy[:] = np.rad2deg(2.0 * np.arctan(np.tan(np.deg2rad(fovy) / 2.0) / self.zoom))
        try:
            for k, cam in enumerate(self.camera_ids):
                self._camera.fixedcamid = int(cam)
                mujoco.mjv_updateScene(m, d, self._option, None, self._camera, cat, self._scene)
                mujoco.mjr_render(self._rect, self._scene, self._con)
                mujoco.mjr_readPixels(self._frame, None, self._rect, self._con)
                out[k] = self._frame[::-1]  # OpenGL rows run bottom-up
        finally:
            if fovy is not None:
                m.cam_fovy[:] = fovy
        if effects and visual is not None:
            visual.image_effects(i, out, self.camera_ids)
        return out

    def render_many(self, ids: Sequence[int], show_hidden: bool = False, effects: bool = True) -> np.ndarray:
        """(len(ids), n_cameras, height, width, 3) uint8: copies ids, one after the other."""
        out = np.empty((len(ids),) + self.shape, dtype=np.uint8)
        for k, i in enumerate(ids):
            self.render(int(i), show_hidden=show_hidden, out=out[k], effects=effects)
        return out

    def close(self) -> None:
        """Free the GL resources (safe to call twice)."""
        _OPEN.discard(self)
        if self._con is not None:
            self._make_current()
            self._con.free()
            self._con = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> "MultiCameraRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the GL library may be gone already
            pass
