"""Action noise: on the normalized action in [-1, 1], before it becomes joint targets.

``resample: episode`` is correlated noise, ``resample: step`` uncorrelated;
``operation: add`` or ``scale``; the result is clipped to [-1, 1]. Target
``{action: all}`` or ``{action: [ACTUATOR GLOB...]}``.
"""

from __future__ import annotations

import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer, match_names
from simreal.randomize.effects.base import actuator_names


class ActionNoise(BoundRandomizer):
    hooks = frozenset({"on_action"})

    def __init__(self, spec, file, sim):
        names = actuator_names(sim.model)
        channels = match_names(names, None if spec.target.action == "all" else spec.target.action)
        if channels.size == 0:
            raise file.error(f"{file.locate(spec.name)}.target.action",
                             f"no actuator matches {spec.target.action} (actuators include: {', '.join(names[:5])}, ...)")
        self.channels = channels
        self.op = OPERATIONS[spec.operation]
        super().__init__(spec, file, sim.n_envs, len(channels))

    def on_action(self, action: np.ndarray) -> np.ndarray:
        out = action.copy()
        out[:, self.channels] = self.op(action[:, self.channels], self.values)
        return np.clip(out, -1.0, 1.0)


def bind(stack, r) -> ActionNoise:
    """The action family's binder (`simreal.randomize.spec.FAMILIES`)."""
    return ActionNoise(r, stack.spec, stack.sim)
