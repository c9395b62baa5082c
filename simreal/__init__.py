"""simreal: sim-to-real domain randomization on MuJoCo."""

from __future__ import annotations

import os

# Headless rendering unless the user chose a backend; must precede `import mujoco`.
os.environ.setdefault("MUJOCO_GL", "egl")

from simreal.registration import HAND_CUBE_ID, make, make_vec  # noqa: E402

__version__ = "0.1.0"
__all__ = ["make", "make_vec", "HAND_CUBE_ID", "__version__"]
