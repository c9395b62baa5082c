"""The `Sim` protocol: what every randomizer, effect and renderer may ask of a simulation.

Two implementations: `simreal.envs.hand_cube.HandCubeSim` (N copies over
``mujoco.batch``, stepping its own physics substeps) and
`simreal.randomize.wrappers.SingleModelSim` (one copy over any Gymnasium or
dm_control MuJoCo env, which steps its own physics inside ``env.step``). The
randomization stack runs the same step pipeline on both
(`simreal.randomize.stack.RandomizationStack.command`, ``on_step``,
``on_observation``); what differs is declared here, not branched on by env id:

* ``substeps`` and ``command_period``: how finely a command can change within
  one control step. The hand sim runs ``substeps`` physics steps of
  ``command_period`` seconds (the timestep) and takes per-substep controls, so
  an action delay cuts the step where it ends; a wrapped env takes one
  command per control step (``substeps == 1``, ``command_period`` the control
  period), so delays round to whole control steps.
* ``xfrc_applied`` and ``markers``: present or not; an effect that needs one
  the sim lacks is refused at bind with a one-line reason.

The test suite's `tests/randomize/fake_sim.py` is the smallest implementation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import mujoco
import numpy as np


class FieldAccess(Protocol):
    """Per-copy model fields, as ``mujoco.batch.Batch`` gives them."""

    def expand(self, field: str) -> np.ndarray:
        """A live (n_envs, ...) array of the copies' values of an MjModel field (or ``opt.NAME``)."""
        ...

    def set_const(self, ids: np.ndarray) -> None:
        """Recompute the derived constants (``mj_setConst``) of copies ids after edits to their fields."""
        ...


@runtime_checkable
class Sim(Protocol):
    n_envs: int
    model: mujoco.MjModel        # the nominal model the copies share: names, sizes, nominal values
    batch: FieldAccess
    markers: list                # [(marker name, [(observation key, columns slice), ...])]; [] if none

    @property
    def ctrl(self) -> np.ndarray:
        """(n_envs, nu) live controls."""
        ...

    @property
    def ctrl_low(self) -> np.ndarray:
        """(nu,) lower ends of the command range, in actuator units (``ctrl_high`` the upper)."""
        ...

    @property
    def ctrl_high(self) -> np.ndarray:
        ...

    @property
    def control_dt(self) -> float:
        """Seconds per control step, now."""
        ...

    @property
    def substeps(self) -> int:
        """Command periods per control step (see the module docstring)."""
        ...

    @property
    def command_period(self) -> float:
        """Seconds each of the ``substeps`` commands acts for (nominal)."""
        ...

    def unit_from_action(self, action: np.ndarray) -> np.ndarray:
        """The policy's action as (n_envs, nu) float64 in [-1, 1] (what action noise acts on)."""
        ...

    def ctrl_from_unit(self, unit: np.ndarray) -> np.ndarray:
        """(n_envs, nu) actuator commands from a [-1, 1] action, inside [ctrl_low, ctrl_high]."""
        ...

    def ctrl_from_action(self, action: np.ndarray) -> np.ndarray:
        """``ctrl_from_unit(unit_from_action(action))``, where a sim can do it without the round trip."""
        ...
