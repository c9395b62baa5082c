"""Distributions a randomization YAML can name, as validated pydantic models.

Every law is sampled by inverse CDF: ``from_uniform(u)`` maps uniforms in
[0, 1) to samples, and ``sample(rng, shape)`` is ``from_uniform(rng.random(shape))``.
One uniform per number keeps each RNG stream's position independent of the
law, and lets a randomizer draw the uniforms of many env copies (each from its
own stream) and transform them in one vectorized call.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from scipy import special, stats


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's true/false/yes/no: pydantic would read them as 1 and 0
        raise PydanticCustomError("number_type", "Input should be a number, not a boolean")
    return value


def _finite(value: Any) -> Any:
    """No booleans, NaN or infinities, and nothing that only becomes a float as inf (1e400, 10**400)."""
    value = _not_bool(value)
    if isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        except ValueError:
            return value  # not a number at all: pydantic says so
        if not math.isfinite(number):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


FiniteFloat = Annotated[float, BeforeValidator(_finite), Field(allow_inf_nan=False)]
"""The number type of every float a randomization file holds: finite, never a boolean."""
WholeNumber = Annotated[int, BeforeValidator(_not_bool)]
"""The integer type of every whole number a randomization file holds: never a boolean."""


def open_unit(u: np.ndarray) -> np.ndarray:
    """u kept off 0 and 1, where the normal quantile is infinite (rng.random can return exactly 0)."""
    return np.clip(u, 1e-300, np.nextafter(1.0, 0.0))


Z_REACH = float(-special.ndtri(1e-300))
"""How many std a normal sample can reach (about 37): where `open_unit` keeps the quantile finite."""


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

    def support(self) -> tuple[float, float]:
        """(lowest, highest) sample; infinite ends for an unbounded law (a normal with std > 0)."""
        raise NotImplementedError


class _Interval(_Dist):
    """A law on [low, high]: high must not be below low."""

    @model_validator(mode="after")
    def _check(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if not math.isfinite(self.high - self.low):
            raise ValueError(f"the width high - low overflows ({self.low} to {self.high})")
        return self

    def support(self):
        return float(self.low), float(self.high)


class Uniform(_Interval):
    """Uniform on [low, high]."""

    type: Literal["uniform"]
    low: FiniteFloat
    high: FiniteFloat

    def from_uniform(self, u):
        return self.low + (self.high - self.low) * u

    def scipy(self):
        return stats.uniform(self.low, self.high - self.low)


class LogUniform(_Interval):
    """exp(Uniform(log low, log high)): scale factors symmetric in ratio (Dactyl's damping, gains)."""

    type: Literal["loguniform"]
    low: FiniteFloat = Field(gt=0)
    high: FiniteFloat = Field(gt=0)

    def from_uniform(self, u):
        lo = np.log(self.low)
        return np.exp(lo + (np.log(self.high) - lo) * u)

    def scipy(self):
        return stats.loguniform(self.low, self.high)


class Normal(_Dist):
    type: Literal["normal"]
    mean: FiniteFloat = 0.0
    std: FiniteFloat = Field(ge=0)

    @model_validator(mode="after")
    def _check(self):
        if not math.isfinite(abs(self.mean) + Z_REACH * self.std):
            raise ValueError(f"samples overflow: mean +- {Z_REACH:.0f} std (how far the sampler reaches) is not finite")
        return self

    def support(self):
        return (self.mean, self.mean) if self.std == 0 else (-math.inf, math.inf)

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
    mean: FiniteFloat = 0.0
    std: FiniteFloat = Field(gt=0)
    low: FiniteFloat
    high: FiniteFloat

    @model_validator(mode="after")
    def _check(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        return self

    def support(self):
        return float(self.low), float(self.high)

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
    values: list[FiniteFloat] = Field(min_length=1)
    weights: list[FiniteFloat] | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(f"weights has {len(self.weights)} entries, values has {len(self.values)}")
            if min(self.weights) < 0 or not 0 < sum(self.weights) < math.inf:
                raise ValueError("weights must be >= 0 with a positive, finite sum")
        return self

    def support(self):
        return float(min(self.values)), float(max(self.values))

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
    value: FiniteFloat

    def from_uniform(self, u):
        return np.full(np.shape(u), self.value, dtype=float)

    def support(self):
        return float(self.value), float(self.value)


Distribution = Annotated[
    Union[Uniform, LogUniform, Normal, TruncNormal, Choice, Constant], Field(discriminator="type")
]
DISTRIBUTION_TYPES = ("uniform", "loguniform", "normal", "truncnormal", "choice", "constant")
