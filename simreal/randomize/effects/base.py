"""What every unmodeled effect is: its parameters, its per-copy state and stream, and the hooks the stack calls.

An effect is a class with a ``name``, its parameters with their nominal
values (``params``; the effect is off at the nominal) and any of the hooks
below. The stack calls each hook of every effect in the stack, effects in
``order`` (then name), at its place in the step (see
`simreal.randomize.stack`); an effect leaves out the hooks it has no use for.

* ``on_reset(ids)``: new episodes in copies ids, after every randomizer drew.
* ``on_ctrl(ctrl)``: joint targets (n, nu) in actuator units -> new targets
  (clipped to the control range by the stack). Backlash.
* ``substep_controls(cmd, current, substeps, timestep, low, high, out)`` and
  ``segments(cmd, current, substeps, timestep)``: the one effect that decides
  which command acts in each physics substep (at most one per stack).
  Action delay.
* ``before_physics(control_dt)``: just before the physics substeps (forces).
* ``on_observation(obs, control_dt, rows)``: after observation noise, on the
  measured keys (marker freeze).

The constructor takes the simulation and raises `EffectUnavailable` (with a
message saying what is missing) when the env lacks what the effect needs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer, match_names
from simreal.randomize.streams import CopyStreams

HOOKS = ("on_ctrl", "substep_controls", "before_physics", "on_observation")


def actuator_names(model) -> list[str]:
    """Actuator names, with ``actuator<i>`` for unnamed ones (Gymnasium's MuJoCo envs name none)."""
    return [model.actuator(i).name or f"actuator{i}" for i in range(model.nu)]


class EffectUnavailable(Exception):
    """The simulation lacks what an effect needs (markers, applied forces); the message says what."""


class EffectParam(BoundRandomizer):
    """A YAML randomizer on one parameter of an effect, for some of its elements."""

    def __init__(self, spec, file, effect: "Effect"):
        self.effect = effect
        self.param = spec.target.param
        elements = match_names(effect.element_names, spec.target.names)
        if elements.size == 0:
            sample = ", ".join(effect.element_names[:6])
            raise file.error(f"{file.locate(spec.name)}.target.names",
                             f"no element of effect {effect.name!r} matches {spec.target.names} (names include: {sample}, ...)")
        self.elements = elements
        self.op = OPERATIONS[spec.operation]
        super().__init__(spec, file, effect.n_envs, len(elements))

    def apply(self, ids: np.ndarray) -> None:
        self.effect.changed()


class Effect:
    """State and behaviour of one unmodeled effect on an N-copy simulation (see the module docstring)."""

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, float]] = {}  # parameter -> nominal value
    units: ClassVar[str] = ""                # one line for the schema's documentation
    order: ClassVar[int] = 0                 # among effects sharing a hook: lower first
    acts_on_action: ClassVar[bool] = False   # between the policy's action and the actuators
    acts_on_observation: ClassVar[bool] = False

    def __init__(self, sim, element_names: list[str]):
        self.sim = sim
        self.n_envs = sim.n_envs
        self.element_names = element_names
        self.nominal = dict(self.params)
        self.inputs: list[EffectParam] = []
        self.active = np.zeros(0, np.int64)  # element indices any randomizer touches
        self.streams = CopyStreams(self.n_envs, "effect", self.name)
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def hooks(cls) -> tuple[str, ...]:
        """The step hooks this effect implements (those of `HOOKS` it defines)."""
        return tuple(h for h in HOOKS if callable(getattr(cls, h, None)))

    def set_inputs(self, inputs: list[EffectParam]) -> None:
        """The randomizers on this effect, in YAML order (the stack calls this when it changes)."""
        self.inputs = inputs
        self.active = np.unique(np.concatenate([r.elements for r in inputs])) if inputs else np.zeros(0, np.int64)
        self.changed()

    def changed(self) -> None:
        """A randomizer on this effect drew new values (or the stack changed): recompute parameters."""
        self._cache.clear()

    def seed(self, i: int, seed: int | None) -> None:
        self.streams.seed(i, seed)

    def value(self, param: str) -> np.ndarray:
        """(n_envs, n_elements) current value: the nominal, then each randomizer on it in YAML order."""
        v = self._cache.get(param)
        if v is None:
            v = np.full((self.n_envs, len(self.element_names)), float(self.nominal[param]))
            for r in self.inputs:
                if r.param == param:
                    v[:, r.elements] = r.op(v[:, r.elements], r.values)
            self._cache[param] = v
        return v

    def on_reset(self, ids: np.ndarray) -> None:
        """New episodes in copies ids (called after every randomizer drew its values)."""
