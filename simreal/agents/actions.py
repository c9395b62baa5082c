"""One map between an env's action space and the actions an agent's networks emit.

Every agent sees actions in one of two encodings, and ``ActionSpec`` converts both ways:

- ``"index"`` (PPO's heads, the planners): a Box as unit values in [-1, 1] (``dim`` = number of
  values), discrete spaces as one integer per dimension (``dim`` = number of dimensions);
- ``"one_hot"`` (the world models): a Box as unit values, discrete spaces as concatenated one-hot
  groups (``dim`` = the sum of the bins; every group must have the same number of bins, as the
  hand's 11-bin joints do, because the actor reshapes them into ``(groups, classes)``).

A Box is mapped linearly onto its bounds after clipping to [-1, 1], so a network never commands
outside them; a ``Discrete`` space's ``start`` offset is applied on the way out and removed on
the way in. The spec is rebuilt from the action space an export stores, so it carries nothing
that a saved policy would need to keep.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

ENCODINGS = ("index", "one_hot")


@dataclass(frozen=True)
class ActionSpec:
    """An action space as one agent encoding sees it (see the module docstring)."""

    kind: str                      # "continuous" or "discrete"
    encoding: str = "index"        # "index" or "one_hot"
    shape: tuple[int, ...] = ()    # the env's action shape
    low: tuple[float, ...] = ()    # continuous: the flattened Box bounds
    high: tuple[float, ...] = ()
    nvec: tuple[int, ...] = ()     # discrete: bins per dimension
    start: int = 0                 # Discrete: the space's first value
    scalar: bool = False           # Discrete: the env takes one integer, not an array

    @classmethod
    def from_space(cls, space: gym.Space, encoding: str = "index") -> "ActionSpec":
        """The spec of a Box, Discrete or MultiDiscrete space; refuses infinite bounds and other spaces."""
        if encoding not in ENCODINGS:
            raise ValueError(f"action encoding: expected one of {ENCODINGS}, got {encoding!r}")
        if isinstance(space, gym.spaces.Box):
            low = np.broadcast_to(space.low, space.shape).astype(np.float64).ravel()
            high = np.broadcast_to(space.high, space.shape).astype(np.float64).ravel()
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(f"action space {space}: Box bounds must be finite")
            return cls("continuous", encoding, tuple(space.shape), tuple(low.tolist()), tuple(high.tolist()))
        if isinstance(space, gym.spaces.Discrete):
            return cls("discrete", encoding, (), nvec=(int(space.n),), start=int(space.start), scalar=True)
        if isinstance(space, gym.spaces.MultiDiscrete):
            nvec = tuple(int(n) for n in np.asarray(space.nvec).ravel())
            if encoding == "one_hot" and len(set(nvec)) != 1:
                raise ValueError(f"action space {space}: one-hot actions need MultiDiscrete groups of one size")
            return cls("discrete", encoding, tuple(space.shape), nvec=nvec)
        raise ValueError(f"action space {space}: expected Box, Discrete or MultiDiscrete")

    # ------------------------------------------------------------------ sizes
    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def groups(self) -> int:
        """Discrete dimensions (1 for a Box, whose values are one group)."""
        return len(self.nvec) if self.discrete else 1

    @property
    def classes(self) -> int:
        """Bins per discrete dimension (one-hot encoding: all the same)."""
        if not self.discrete:
            return 0
        if len(set(self.nvec)) != 1:
            raise ValueError(f"MultiDiscrete bins {self.nvec} differ; no single class count")
        return self.nvec[0]

    @property
    def dim(self) -> int:
        """Length of one agent action vector in this encoding."""
        if not self.discrete:
            return int(np.prod(self.shape, dtype=np.int64))
        return len(self.nvec) if self.encoding == "index" else int(sum(self.nvec))

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.low, np.float64), np.asarray(self.high, np.float64)

    # ------------------------------------------------------------------ conversions
    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Agent actions ``(n, dim)`` as a batch of env actions ``(n, *shape)`` (``(n,)`` for Discrete)."""
        action = np.asarray(action)
        n = len(action)
        if not self.discrete:
            low, high = self._bounds
            unit = np.clip(action.reshape(n, -1), -1.0, 1.0)
            return (low + (unit + 1.0) * 0.5 * (high - low)).astype(np.float32).reshape((n, *self.shape))
        if self.encoding == "one_hot":
            index = action.reshape(n, self.groups, self.classes).argmax(-1)
        else:
            index = action.reshape(n, self.groups).astype(np.int64)
        if self.scalar:
            return index[:, 0].astype(np.int64) + self.start
        return index.astype(np.int64).reshape((n, *self.shape))

    def from_env(self, action: np.ndarray) -> np.ndarray:
        """Env actions ``(n, ...)`` as agent actions ``(n, dim)``: the inverse of ``to_env`` inside the bounds."""
        action = np.asarray(action)
        n = len(action)
        if not self.discrete:
            low, high = self._bounds
            span = high > low    # a fixed value (low == high) maps to the unit midpoint
            scaled = np.where(span, 2.0 * (action.reshape(n, -1) - low) / np.where(span, high - low, 1.0) - 1.0, 0.0)
            return np.clip(scaled, -1.0, 1.0).astype(np.float32)
        index = action.reshape(n, self.groups).astype(np.int64) - self.start
        if self.encoding == "index":
            return index
        return np.eye(self.classes, dtype=np.float32)[index].reshape(n, self.dim)

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniformly random agent actions ``(n, dim)`` (for prefilling a replay or a random baseline)."""
        if not self.discrete:
            return rng.uniform(-1.0, 1.0, (n, self.dim)).astype(np.float32)
        index = np.stack([rng.integers(0, k, n) for k in self.nvec], axis=1)
        if self.encoding == "index":
            return index
        return np.eye(self.classes, dtype=np.float32)[index].reshape(n, self.dim)
