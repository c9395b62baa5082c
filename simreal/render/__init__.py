"""Headless multi-camera rendering with visual randomization, image effects and preview grids.

* `simreal.render.multicam.MultiCameraRenderer` -- the cameras of an N-copy simulation, per copy,
  dressed by the copy's visual randomization (``MUJOCO_GL=egl``: GPU EGL where present).
* `simreal.render.textures` -- procedural textures and HSV transforms (numpy).
* `simreal.render.effects` -- blur, brightness, contrast and noise on rendered images.
* `simreal.envs.preview` -- a grid of randomized views, to see what a YAML file does.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported anywhere below

from simreal.utils.lazy import lazy_exports  # noqa: E402


__getattr__ = lazy_exports(__name__, {"MultiCameraRenderer": "multicam"})  # importing simreal.render stays GL-free


__all__ = ["MultiCameraRenderer"]
