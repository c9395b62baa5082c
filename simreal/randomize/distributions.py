"""Distributions a randomization YAML can name, as validated pydantic models.

Each has ``sample(rng, shape) -> np.ndarray`` (float64) and ``support()``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
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

    def sample(self, rng, shape=()):
        return rng.uniform(self.low, self.high, shape)

    def scipy(self):
        return stats.uniform(self.low, self.high - self.low)


class LogUniform(_Interval):
    """exp(Uniform(log low, log high)): scale factors symmetric in ratio (Dactyl's damping, gains)."""

    type: Literal["loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)

    def sample(self, rng, shape=()):
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), shape))

    def scipy(self):
        return stats.loguniform(self.low, self.high)


class Normal(_Dist):
    type: Literal["normal"]
    mean: float = 0.0
    std: float = Field(ge=0)

    def sample(self, rng, shape=()):
        return rng.normal(self.mean, self.std, shape)

    def scipy(self):
        return stats.norm(self.mean, self.std)


class TruncNormal(_Dist):
    """Normal(mean, std) restricted to [low, high] (inverse-CDF sampling: exact, no rejection loop)."""

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

    def sample(self, rng, shape=()):
        return np.clip(self.scipy().ppf(rng.uniform(size=shape)), self.low, self.high)


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

    def sample(self, rng, shape=()):
        return np.asarray(self.values, float)[rng.choice(len(self.values), size=shape, p=self.probabilities())]

    def scipy(self):
        return stats.rv_discrete(values=(np.arange(len(self.values)), self.probabilities()))


class Constant(_Dist):
    type: Literal["constant"]
    value: float

    def sample(self, rng, shape=()):
        return np.full(shape, self.value, dtype=float)


Distribution = Annotated[
    Union[Uniform, LogUniform, Normal, TruncNormal, Choice, Constant], Field(discriminator="type")
]
DISTRIBUTION_TYPES = ("uniform", "loguniform", "normal", "truncnormal", "choice", "constant")
