"""``backlash.width`` (rad, per actuator): a play operator on the joint target.

The applied target moves only once the command has crossed the gap, then
trails it by half the width; reversing direction first crosses the gap.
"""

from __future__ import annotations

import numpy as np

from simreal.randomize.effects.base import Effect, actuator_names


class Backlash(Effect):
    name = "backlash"
    params = {"width": 0.0}
    units = "width (rad, per actuator; actuator-control units on a wrapped env)"
    acts_on_action = True

    def __init__(self, sim):
        super().__init__(sim, actuator_names(sim.model))
        self.applied = np.full((self.n_envs, sim.model.nu), np.nan)

    def on_reset(self, ids):
        self.applied[ids] = np.nan

    def on_ctrl(self, ctrl: np.ndarray) -> np.ndarray:
        half = 0.5 * np.maximum(self.value("width"), 0.0)
        prev = np.where(np.isnan(self.applied), ctrl, self.applied)
        out = np.clip(prev, ctrl - half, ctrl + half)  # the play operator
        self.applied = out
        return out
