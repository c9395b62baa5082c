"""Observation noise: per-episode (correlated) and per-step (uncorrelated), additive or multiplicative.

A YAML entry with ``resample: episode`` is correlated noise (one draw held for
the episode); ``resample: step`` is uncorrelated noise (a fresh draw every
step). Stack both on one key for Dactyl's model. Only policy keys can be
targeted: the privileged ``state`` stays clean for the critic.

Quaternion keys (names ending in ``_quat``) take rotation noise: the sample is
a rotation vector in radians (3 numbers, one per axis, whatever
``per_element`` says; ``operation: add``)
and the observed orientation is rotated by it, so it stays a unit quaternion.
"""

from __future__ import annotations

import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer
from simreal.utils.rotations import quat_canonical, quat_from_rotvec, quat_mul
from simreal.utils.keys import STATE_KEY

PRIVILEGED_KEYS = (STATE_KEY,)


class ObservationNoise(BoundRandomizer):
    hooks = frozenset({"on_observation"})

    def __init__(self, spec, file, sim, obs_space):
        key = spec.target.observation
        where = f"{file.locate(spec.name)}.target.observation"
        if key in PRIVILEGED_KEYS:
            raise file.error(where, f"{key!r} is the privileged state, which stays noise-free")
        spaces = getattr(obs_space, "spaces", None)
        if not isinstance(spaces, dict) or key not in spaces:
            keys = ", ".join(spaces) if isinstance(spaces, dict) else "none: the observation is not a dict"
            raise file.error(where, f"no observation key {key!r} (keys: {keys})")
        self.key = key
        size = int(np.prod(obs_space[key].shape))
        self.is_quat = key.endswith("_quat") and size == 4
        if self.is_quat:
            if spec.operation != "add":
                raise file.error(f"{file.locate(spec.name)}.operation",
                                 f"quaternion key {key!r} takes additive rotation noise (radians); got {spec.operation!r}")
            size = 3
        self.op = OPERATIONS[spec.operation]
        # a rotation is always drawn per axis
        super().__init__(spec, file, sim.n_envs, size, per_element=True if self.is_quat else None)

    def on_observation(self, obs: dict[str, np.ndarray], rows: np.ndarray | None = None) -> None:
        """Noise the key in place (when obs has it); obs holds the copies ``rows`` (all copies if None)."""
        if self.key not in obs:
            return
        x = obs[self.key]
        values = self.values if rows is None else self.values[rows]
        if self.is_quat:
            rot = quat_from_rotvec(values)
            obs[self.key] = quat_canonical(quat_mul(x.astype(np.float64), rot)).astype(x.dtype)
            return
        flat = x.reshape(x.shape[0], -1)
        obs[self.key] = self.op(flat, values.astype(x.dtype)).reshape(x.shape).astype(x.dtype)


def bind(stack, r) -> ObservationNoise:
    """The observation family's binder (`simreal.randomize.spec.FAMILIES`)."""
    return ObservationNoise(r, stack.spec, stack.sim, stack.obs_space)
