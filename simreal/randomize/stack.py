"""Randomizers composed in one documented order, inspectable and editable.

Order within a step (as robogym documents it):

1. reset: physics randomizers edit the model (from nominal values), then every
   randomizer draws its per-episode values;
2. action: action noise, in YAML order, on the normalized action;
3. physics substeps;
4. observation: observation noise, in YAML order, on policy keys only.

Each randomizer draws from its own stream, ``make_rng(env_seed, "randomizer",
name)``, so adding or removing one never changes another's numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simreal.randomize.base import BoundRandomizer
from simreal.randomize.observation import ObservationNoise
from simreal.randomize.physics import FieldRandomizer
from simreal.randomize.spec import RandomizationError, RandomizationSpec, Randomizer, load_spec
from simreal.randomize.unmodeled import ActionNoise

FAMILY_ORDER = ("physics", "action", "observation")


class RandomizationStack:
    """The bound randomizers of one spec on one N-copy simulation."""

    def __init__(self, spec: RandomizationSpec | str, sim, obs_space):
        self.spec = load_spec(spec) if not isinstance(spec, RandomizationSpec) else spec
        self.sim = sim
        self.obs_space = obs_space
        self.items: list[BoundRandomizer] = []
        self._seeds: list[int | None] = [None] * sim.n_envs
        for r in self.spec.enabled():
            self.insert(len(self.items), r)

    # ------------------------------------------------------------- editing
    def _bind(self, r: Randomizer) -> BoundRandomizer:
        if r.family == "physics":
            bound = FieldRandomizer(r, self.spec, self.sim)
            for other in self.items:
                if isinstance(other, FieldRandomizer) and other.field == bound.field and other.elements & bound.elements:
                    raise self.spec.error(f"{self.spec.locate(r.name)}.target",
                                          f"overlaps {other.name!r} on {bound.field!r}; each element has one randomizer")
            return bound
        if r.family == "action":
            return ActionNoise(r, self.spec, self.sim)
        return ObservationNoise(r, self.spec, self.sim, self.obs_space)

    def insert(self, index: int, randomizer: Randomizer) -> BoundRandomizer:
        """Bind and insert a randomizer; its stream follows the env seeds already given."""
        if any(b.name == randomizer.name for b in self.items):
            raise RandomizationError(f"{self.spec.source}: randomizer {randomizer.name!r} is already in the stack")
        bound = self._bind(randomizer)
        for i, seed in enumerate(self._seeds):
            bound.seed(i, seed)
        self.items.insert(index, bound)
        return bound

    def remove(self, name: str) -> BoundRandomizer:
        """Remove by name; the model fields it edited go back to their nominal values at once."""
        bound = self[name]
        self.items.remove(bound)
        if isinstance(bound, FieldRandomizer):
            bound.restore(np.arange(self.sim.n_envs))
        return bound

    def __getitem__(self, name: str) -> BoundRandomizer:
        for b in self.items:
            if b.name == name:
                return b
        raise KeyError(f"no randomizer {name!r} (have: {', '.join(self.names) or 'none'})")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.items]

    def describe(self) -> str:
        """A table of the stack, in application order."""
        return "\n".join(b.describe() for b in self.ordered())

    def ordered(self) -> list[BoundRandomizer]:
        return sorted(self.items, key=lambda b: FAMILY_ORDER.index(b.family))

    # ------------------------------------------------------------- fixed mode
    def set_fixed(self, values: dict[str, Any] | None) -> None:
        """Evaluate at exact values: {name: value or per-element list}; None returns to sampling."""
        for b in self.items:
            b.fixed = None
        for name, value in (values or {}).items():
            self[name].set_fixed(value)

    # ------------------------------------------------------------------ hooks
    def seed(self, i: int, seed: int | None) -> None:
        self._seeds[i] = seed
        for b in self.items:
            b.seed(i, seed)

    def on_reset(self, ids: np.ndarray) -> None:
        for b in self.ordered():
            b.on_reset(ids)

    def on_action(self, action: np.ndarray) -> np.ndarray:
        for b in self.items:
            if isinstance(b, ActionNoise):
                action = b.on_action(action)
        return action

    def on_step(self) -> None:
        for b in self.items:
            b.on_step()

    def on_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for b in self.items:
            if isinstance(b, ObservationNoise):
                b.on_observation(obs)
        return obs

    def info(self, i: int) -> dict[str, Any]:
        """Copy i's sampled values, keyed by YAML name (floats, or lists for per-element samples)."""
        return {b.name: b.info(i) for b in self.items}

    def privileged(self) -> np.ndarray:
        """(n_envs, total size) of every sampled value, for the critic's observation."""
        if not self.items:
            return np.zeros((self.sim.n_envs, 0))
        return np.concatenate([b.values for b in self.items], axis=1)
