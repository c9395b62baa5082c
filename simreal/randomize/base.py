"""What every bound randomizer shares: its spec, one RNG stream per env copy, its last samples."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Sequence

import numpy as np

from simreal.randomize.streams import CopyStreams

if TYPE_CHECKING:
    from simreal.randomize.spec import Randomizer, RandomizationSpec


def match_names(names: Sequence[str], patterns: Sequence[str] | None) -> np.ndarray:
    """Indices of the names that match any of the glob patterns (case-sensitive), in name order; every
    index when patterns is None. The one name selector of every randomizer family."""
    if patterns is None:
        return np.arange(len(names))
    return np.array([i for i, n in enumerate(names) if any(fnmatch.fnmatchcase(n, p) for p in patterns)],
                    dtype=np.int64)

OPERATIONS = {
    "set": lambda nominal, x: np.broadcast_to(x, np.broadcast_shapes(np.shape(nominal), np.shape(x))).copy(),
    "scale": lambda nominal, x: nominal * x,
    "add": lambda nominal, x: nominal + x,
}


class BoundRandomizer:
    """A randomizer from the YAML, bound to an N-copy simulation.

    ``size`` is how many numbers one sample has (1 if shared by the selected
    elements, else one per element). ``values`` holds each copy's current
    sample, (n_envs, size). ``fixed`` (set by fixed-parameter mode) replaces
    sampling with exact values. ``distribution`` starts as the YAML's and is
    what ADR widens or narrows; ``pinned`` holds per-copy values ADR fixes for
    one episode (a range boundary).
    """

    # the stack hooks a family's randomizer takes part in, beyond on_reset / on_step / apply:
    # "on_action" (action in [-1, 1] -> action), "on_observation" (obs, rows: in place),
    # "restore" (ids: put the simulation's nominal values back when removed or restored)
    hooks: frozenset[str] = frozenset()

    def __init__(self, spec: Randomizer, file: RandomizationSpec, n_envs: int, size: int,
                 per_element: bool | None = None):
        self.spec = spec
        self.name = spec.name
        self.family = spec.family
        self.file = file
        self.n_envs = n_envs
        self.size = size if (spec.per_element if per_element is None else per_element) else 1
        self.values = np.zeros((n_envs, self.size))
        self.streams = CopyStreams(n_envs, "randomizer", self.name, block=max(256, 16 * self.size))
        self.fixed: np.ndarray | None = None
        self.distribution = spec.distribution
        self.pinned: dict[int, float] = {}
        self._steps = np.zeros(n_envs, dtype=np.int64)
        self._all = np.arange(n_envs)

    def error(self, key: str, message: str):
        return self.file.error(f"{self.file.locate(self.name)}.{key}", message)

    def seed(self, i: int, seed: int | None) -> None:
        self.streams.seed(i, seed)

    def draw(self, ids: np.ndarray) -> None:
        """New samples for copies ids, each from its own stream (or the fixed values)."""
        if self.fixed is not None:
            self.values[ids] = self.fixed
            return
        if len(ids) == 0:
            return
        u = self.streams.take(ids, self.size)  # each copy from its own stream, drawn even when pinned
        if ids is self._all:
            self.values[:] = self.distribution.from_uniform(u)
        else:
            self.values[ids] = self.distribution.from_uniform(u)
        if self.pinned:
            for i in ids:
                pin = self.pinned.get(int(i))
                if pin is not None:
                    self.values[i] = pin

    def set_fixed(self, value) -> None:
        value = np.asarray(value, dtype=float).reshape(-1)
        if value.size not in (1, self.size):
            raise self.error("fixed", f"expected 1 or {self.size} values, got {value.size}")
        self.fixed = np.broadcast_to(value, (self.size,)).copy()

    # hooks; families override what they use
    def on_reset(self, ids: np.ndarray) -> None:
        self._steps[ids] = 0
        self.draw(ids)
        self.apply(ids)

    def on_step(self) -> None:
        """Advance one control step; resample where the period says so."""
        period = self.spec.period
        if period == 1:
            self.draw(self._all)
            self.apply(self._all)
        elif period:
            self._steps += 1
            due = np.flatnonzero(self._steps % period == 0)
            if len(due):
                self.draw(due)
                self.apply(due)

    def apply(self, ids: np.ndarray) -> None:
        """Push the current samples of copies ids into the simulation (physics) -- or nothing."""

    def info(self, i: int):
        v = self.values[i]
        return float(v[0]) if self.size == 1 else v.tolist()

    def describe(self) -> str:
        r = self.spec
        return (f"{self.name:<28} {self.family:<11} {r.operation:<5} {self.distribution.type:<11} "
                f"{'episode' if r.period == 0 else f'every {r.period} step(s)':<16} size {self.size}")
