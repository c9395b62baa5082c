"""``object_force`` (per body): random pushes, as Dactyl applied to the cube.

Each control step, with ``probability``, a new random force ~ N(0, (scale *
nominal body mass)^2) per axis replaces the current one; forces decay as
exp(-t / ``decay_time``).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from simreal.randomize.distributions import open_unit
from simreal.randomize.effects.base import Effect, EffectUnavailable


class ObjectForce(Effect):
    name = "object_force"
    params = {"probability": 0.0, "scale": 0.0, "decay_time": 1.0}
    units = "probability (per control step), scale (N per kg of nominal mass, std), decay_time (s) (per body)"

    def __init__(self, sim):
        if getattr(sim, "xfrc_applied", None) is None:
            raise EffectUnavailable("this env does not expose applied forces (xfrc_applied)")
        m = sim.model
        super().__init__(sim, [m.body(b).name for b in range(m.nbody)])
        self.force = np.zeros((self.n_envs, m.nbody, 3))
        self._mass = m.body_mass.copy()

    def on_reset(self, ids):
        self.force[ids] = 0.0
        self.sim.xfrc_applied[np.ix_(ids, self.active)] = 0.0

    def before_physics(self, control_dt: float) -> None:
        bodies = self.active
        if bodies.size == 0:
            return
        p = self.value("probability")[:, bodies]
        scale = self.value("scale")[:, bodies]
        decay = np.exp(-control_dt / np.maximum(self.value("decay_time")[:, bodies], 1e-9))
        f = self.force[:, bodies] * decay[..., None]
        k = len(bodies)
        u = self.streams.take(None, 4 * k)  # per copy: one coin and 3 axes per body
        new = u[:, :k] < p
        if new.any():
            draw = special.ndtri(open_unit(u[:, k:])).reshape(self.n_envs, k, 3)
            draw *= (scale * self._mass[bodies])[..., None]
            f[new] = draw[new]
        self.force[:, bodies] = f
        self.sim.xfrc_applied[:, bodies, :3] = f
