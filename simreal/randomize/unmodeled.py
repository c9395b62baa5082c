"""Unmodeled effects. This file so far holds action noise; backlash, action delay,
timing jitter, marker freeze/occlusion and random forces follow (issue 3).

Action noise acts on the normalized action in [-1, 1] before it becomes joint
targets: ``resample: episode`` is correlated noise, ``resample: step``
uncorrelated; ``operation: add`` or ``scale``. The result is clipped back to
[-1, 1], so the robot's command stays in range whatever the noise.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer


class ActionNoise(BoundRandomizer):
    def __init__(self, spec, file, sim):
        names = [sim.model.actuator(i).name for i in range(sim.model.nu)]
        if spec.target.action == "all":
            channels = np.arange(len(names))
        else:
            channels = np.array([i for i, n in enumerate(names)
                                 if any(fnmatch.fnmatchcase(n, p) for p in spec.target.action)], dtype=np.int64)
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
