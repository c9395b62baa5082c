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


def __getattr__(name: str):
    if name == "MultiCameraRenderer":  # lazy: importing simreal.render stays free of GL
        from simreal.render.multicam import MultiCameraRenderer

        return MultiCameraRenderer
    raise AttributeError(f"module 'simreal.render' has no attribute {name!r}")


__all__ = ["MultiCameraRenderer"]
