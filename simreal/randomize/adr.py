"""Automatic domain randomization (ADR), after OpenAI et al., "Solving Rubik's Cube
with a Robot Hand" (2019), section 5 / Algorithm 1.

Every randomizer with an ``adr:`` block is one ADR parameter: its uniform range
[low, high] starts where the YAML puts it (often a single nominal point) and
moves by ``step`` within ``limits``. At each reset, with probability
``boundary_probability``, a copy's episode pins one parameter (chosen uniformly)
at one of its two boundaries, the other parameters being sampled as usual. When
that episode ends, its performance (``metric``: the episode return, or an info
key such as ``consecutive_successes``) goes into the buffer of that boundary.
When a buffer holds ``buffer_size`` results, their mean decides:

* mean >= thresholds.high: the policy copes -- move the boundary outwards (widen);
* mean <  thresholds.low: too hard -- move it inwards (narrow), but never past where it started:
  the range always holds its initial range (often the nominal point), as in the paper, where each
  boundary moves between the initial value and its limit. Without that, a boundary that fails at the
  nominal point walks the whole range away from it and the policy stops seeing nominal physics;
* otherwise nothing; the buffer is cleared in every case.

The state (ranges, buffers, which copy tests which boundary, RNG streams) is a
plain dict of numbers and strings (``state_dict``), safe to save with
``torch.save`` and to load with ``weights_only=True``. ``stats()`` gives the
ranges and the ADR entropy, the mean over parameters of log(high - low) in nats
(widths below 1e-6 count as 1e-6 so a point range stays finite).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simreal.randomize.distributions import Uniform
from simreal.randomize.spec import RandomizationError
from simreal.utils.seeding import make_rng

MIN_WIDTH = 1e-6
SIDES = ("low", "high")


class AdrParameter:
    """The moving range of one randomizer."""

    def __init__(self, bound, settings):
        self.bound = bound
        self.name = bound.name
        self.step = float(settings.step)
        self.limits = (float(settings.limits[0]), float(settings.limits[1]))
        self.low = float(bound.spec.distribution.low)
        self.high = float(bound.spec.distribution.high)
        self.initial = (self.low, self.high)  # narrowing stops here
        self.buffers: dict[str, list[float]] = {"low": [], "high": []}
        self.sync()

    def boundary(self, side: str) -> float:
        return self.low if side == "low" else self.high

    def sync(self) -> None:
        """Sampling follows the current range."""
        self.bound.distribution = Uniform(type="uniform", low=self.low, high=self.high)

    def update(self, side: str, mean: float, thresholds: tuple[float, float]) -> int:
        """Move one boundary from a full buffer's mean: +1 widened, -1 narrowed, 0 unchanged."""
        lo_t, hi_t = thresholds
        if mean >= hi_t:
            if side == "low":
                new = max(self.low - self.step, self.limits[0])
                moved, self.low = new != self.low, new
            else:
                new = min(self.high + self.step, self.limits[1])
                moved, self.high = new != self.high, new
            result = 1 if moved else 0
        elif mean < lo_t:
            if side == "low":
                new = max(self.low, min(self.low + self.step, self.initial[0]))
                moved, self.low = new != self.low, new
            else:
                new = min(self.high, max(self.high - self.step, self.initial[1]))
                moved, self.high = new != self.high, new
            result = -1 if moved else 0
        else:
            result = 0
        self.sync()
        return result


class ADR:
    """ADR over the ``adr:`` randomizers of a bound stack (one per N-copy simulation)."""

    def __init__(self, stack):
        cfg = stack.spec.adr
        if cfg is None:
            first = stack.spec.adr_randomizers()[0].name
            raise stack.spec.error(f"{stack.spec.locate(first)}.adr", "needs the file-level 'adr' settings")
        self.config = cfg
        self.metric = cfg.metric
        self.thresholds = (float(cfg.thresholds[0]), float(cfg.thresholds[1]))
        self.params = [AdrParameter(b, b.spec.adr) for b in stack.items if b.spec.adr is not None]
        n = stack.sim.n_envs
        self.rngs = [make_rng(None, "adr") for _ in range(n)]
        self.testing: list[tuple[int, str] | None] = [None] * n
        self.updates = 0

    def check_metric(self, available: tuple[str, ...]) -> None:
        if self.metric not in available:
            raise RandomizationError(f"adr.metric: this env reports {', '.join(map(repr, available))}; got {self.metric!r}")

    def seed(self, i: int, seed: int | None) -> None:
        self.rngs[i] = make_rng(seed, "adr")

    def before_reset(self, ids: np.ndarray) -> None:
        """Choose, per copy, whether its next episode tests a boundary, and pin that value."""
        for i in ids:
            i = int(i)
            for p in self.params:
                p.bound.pinned.pop(i, None)
            rng = self.rngs[i]
            self.testing[i] = None
            if self.params and rng.random() < self.config.boundary_probability:
                j = int(rng.integers(len(self.params)))
                side = SIDES[int(rng.integers(2))]
                self.testing[i] = (j, side)
                self.params[j].bound.pinned[i] = self.params[j].boundary(side)

    def on_episode_end(self, ids: np.ndarray, metrics: np.ndarray) -> None:
        for i, value in zip(ids, metrics):
            test = self.testing[int(i)]
            if test is None:
                continue
            self.testing[int(i)] = None
            p = self.params[test[0]]
            buf = p.buffers[test[1]]
            buf.append(float(value))
            if len(buf) >= self.config.buffer_size:
                mean = float(np.mean(buf))
                buf.clear()
                if p.update(test[1], mean, self.thresholds):
                    self.updates += 1

    def entropy(self) -> float:
        if not self.params:
            return 0.0
        return float(np.mean([np.log(max(p.high - p.low, MIN_WIDTH)) for p in self.params]))

    def stats(self) -> dict[str, float]:
        """For logs: ``adr/entropy``, ``adr/updates`` and each ``adr/<name>/low|high``."""
        out = {"adr/entropy": self.entropy(), "adr/updates": float(self.updates)}
        for p in self.params:
            out[f"adr/{p.name}/low"] = p.low
            out[f"adr/{p.name}/high"] = p.high
        return out

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "params": {p.name: {"low": p.low, "high": p.high, "buffer_low": list(p.buffers["low"]),
                                "buffer_high": list(p.buffers["high"])} for p in self.params},
            "testing": [None if t is None else [t[0], t[1]] for t in self.testing],
            "rngs": [rng.bit_generator.state for rng in self.rngs],
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = {p.name for p in self.params}
        saved = set(state.get("params", {}))
        if saved != names:
            raise RandomizationError(f"adr state: saved parameters {sorted(saved)} do not match this file's {sorted(names)}")
        for p in self.params:
            s = state["params"][p.name]
            p.low, p.high = float(s["low"]), float(s["high"])
            p.buffers = {"low": [float(x) for x in s["buffer_low"]], "high": [float(x) for x in s["buffer_high"]]}
            p.sync()
        if len(state["testing"]) == len(self.testing):
            self.testing = [None if t is None else (int(t[0]), str(t[1])) for t in state["testing"]]
            for rng, rs in zip(self.rngs, state["rngs"]):
                rng.bit_generator.state = rs
            for p in self.params:
                p.bound.pinned.clear()
            for i, t in enumerate(self.testing):
                if t is not None:
                    self.params[t[0]].bound.pinned[i] = self.params[t[0]].boundary(t[1])
        self.updates = int(state.get("updates", 0))
