"""Distributions a randomization YAML can name, as validated pydantic models.

Every law is sampled by inverse CDF: ``from_uniform(u)`` maps uniforms in
[0, 1) to samples, and ``sample(rng, shape)`` is ``from_uniform(rng.random(shape))``.
One uniform per number keeps each RNG stream's position independent of the
law, and lets a randomizer draw the uniforms of many env copies (each from its
own stream) and transform them in one vectorized call.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import special, stats


def open_unit(u: np.ndarray) -> np.ndarray:
    """u kept off 0 and 1, where the normal quantile is infinite (rng.random can return exactly 0)."""
    return np.clip(u, 1e-300, np.nextafter(1.0, 0.0))


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        return self.from_uniform(rng.random(shape))

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """Samples from uniforms u in [0, 1) (same shape, float64)."""
        raise NotImplementedError

    def scipy(self):
        """The same law as a frozen scipy.stats distribution (for tests and plots)."""
        raise NotImplementedError


class _Interval(_Dist):
    """A law on [low, high]: high must not be below low."""

    @model_validator(mode="after")
    def _check(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class Uniform(_Interval):
    """Uniform on [low, high]."""

    type: Literal["uniform"]
    low: float
    high: float

    def from_uniform(self, u):
        return self.low + (self.high - self.low) * u

    def scipy(self):
        return stats.uniform(self.low, self.high - self.low)


class LogUniform(_Interval):
    """exp(Uniform(log low, log high)): scale factors symmetric in ratio (Dactyl's damping, gains)."""

    type: Literal["loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)

    def from_uniform(self, u):
        lo = np.log(self.low)
        return np.exp(lo + (np.log(self.high) - lo) * u)

    def scipy(self):
        return stats.loguniform(self.low, self.high)


class Normal(_Dist):
    type: Literal["normal"]
    mean: float = 0.0
    std: float = Field(ge=0)

    def from_uniform(self, u):
        return self.mean + self.std * special.ndtri(open_unit(u))

    def scipy(self):
        return stats.norm(self.mean, self.std)


class TruncNormal(_Dist):
    """Normal(mean, std) restricted to [low, high] (inverse-CDF sampling: exact, no rejection loop).

    Sampling uses the standard normal CDF and its inverse as ufuncs (a few
    microseconds a draw, so it can be resampled every step); intervals in the
    upper tail are mirrored to the lower one, where the CDF keeps its precision.
    """

    type: Literal["truncnormal"]
    mean: float = 0.0
    std: float = Field(gt=0)
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        return self

    def scipy(self):
        a, b = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        return stats.truncnorm(a, b, loc=self.mean, scale=self.std)

    def from_uniform(self, u):
        a, b = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        flip = a > 0  # mirror an upper-tail interval
        if flip:
            a, b = -b, -a
        lo, hi = special.ndtr(a), special.ndtr(b)
        z = special.ndtri(open_unit(lo + u * (hi - lo)))
        if flip:
            z = -z
        return np.clip(self.mean + self.std * z, self.low, self.high)


class Choice(_Dist):
    """One of values, with optional weights (normalized)."""

    type: Literal["choice"]
    values: list[float] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(f"weights has {len(self.weights)} entries, values has {len(self.values)}")
            if min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ValueError("weights must be >= 0 with a positive sum")
        return self

    def probabilities(self) -> np.ndarray:
        w = np.ones(len(self.values)) if self.weights is None else np.asarray(self.weights, float)
        return w / w.sum()

    def from_uniform(self, u):
        edges = np.cumsum(self.probabilities())[:-1]
        return np.asarray(self.values, float)[np.searchsorted(edges, u, side="right")]

    def scipy(self):
        return stats.rv_discrete(values=(np.arange(len(self.values)), self.probabilities()))


class Constant(_Dist):
    type: Literal["constant"]
    value: float

    def from_uniform(self, u):
        return np.full(np.shape(u), self.value, dtype=float)


Distribution = Annotated[
    Union[Uniform, LogUniform, Normal, TruncNormal, Choice, Constant], Field(discriminator="type")
]
DISTRIBUTION_TYPES = ("uniform", "loguniform", "normal", "truncnormal", "choice", "constant")
