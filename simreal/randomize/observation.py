"""Observation noise: per-episode (correlated) and per-step (uncorrelated), additive or multiplicative.

A YAML entry with ``resample: episode`` is correlated noise (one draw held for
the episode); ``resample: step`` is uncorrelated noise (a fresh draw every
step). Stack both on one key for Dactyl's model. Only policy keys can be
targeted: the privileged ``state`` stays clean for the critic.
"""

from __future__ import annotations

import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer

PRIVILEGED_KEYS = ("state",)


class ObservationNoise(BoundRandomizer):
    def __init__(self, spec, file, sim, obs_space):
        key = spec.target.observation
        where = f"{file.locate(spec.name)}.target.observation"
        if key in PRIVILEGED_KEYS:
            raise file.error(where, f"{key!r} is the privileged state, which stays noise-free")
        if key not in obs_space.spaces:
            raise file.error(where, f"no observation key {key!r} (keys: {', '.join(obs_space.spaces)})")
        self.key = key
        self.op = OPERATIONS[spec.operation]
        super().__init__(spec, file, sim.n_envs, int(np.prod(obs_space[key].shape)))

    def on_observation(self, obs: dict[str, np.ndarray]) -> None:
        x = obs[self.key]
        obs[self.key] = self.op(x, self.values.reshape(x.shape[0], -1).astype(x.dtype)).astype(x.dtype)
