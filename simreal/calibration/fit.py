"""Fitting simulator parameters to recorded rig episodes.

The parameters to fit are written as a randomization YAML (the same format,
validation and targets as training randomization): every enabled entry is one
parameter, and its ``uniform`` or ``loguniform`` range is the search range.
For example::

    randomizers:
      - name: pole_mass
        target: {field: body_mass, names: [pole_1]}
        distribution: {type: uniform, low: 0.5, high: 2.0}   # search scale factors in [0.5, 2]
        operation: scale

The fit evaluates the simulator at exact values with the stack's fixed mode,
replays the recorded actions in short windows (see replay.py) and minimizes
the normalized squared error between simulated and recorded features:

- ``least_squares`` (scipy, trust-region reflective, finite differences) for
  smooth parameters (masses, friction, damping, gains);
- ``cma`` (CMA-ES, the ``cma`` package) for non-smooth ones such as action
  delays, which act in whole physics substeps;
- ``auto`` picks ``cma`` when an action delay is among the parameters.

The result can be written back as a randomization YAML centred on the fitted
values (`centered_spec_yaml`), to train around the calibrated model.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
import yaml
from scipy import optimize

from simreal.calibration.replay import Episode, ReplaySim, Windows, align_quaternions, cut_windows
from simreal.randomize.spec import RandomizationSpec

SEARCHABLE = ("uniform", "loguniform")


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    low: float
    high: float
    log: bool

    def value(self, u: float) -> float:
        u = float(np.clip(u, 0.0, 1.0))
        if self.log:
            return float(self.low * (self.high / self.low) ** u)
        return float(self.low + (self.high - self.low) * u)

    def unit(self, value: float) -> float:
        if self.log:
            return float(np.log(value / self.low) / np.log(self.high / self.low))
        return float((value - self.low) / (self.high - self.low))


def parameters_of(spec: RandomizationSpec) -> list[Parameter]:
    """The spec's enabled entries as parameters (search range = their uniform/loguniform range)."""
    params = []
    for r in spec.enabled():
        where = spec.locate(r.name)
        dist = r.distribution
        if r.family == "observation":
            raise spec.error(f"{where}.target", "observation noise is not a simulator parameter; remove it from "
                                                "the calibration file")
        if r.period != 0:
            raise spec.error(f"{where}.resample", "a calibrated parameter holds one value: use resample: episode")
        if r.per_element:
            raise spec.error(f"{where}.per_element", "calibration fits one shared value per entry; write one "
                                                     "entry per element instead")
        if dist.type not in SEARCHABLE:
            raise spec.error(f"{where}.distribution", f"the search range must be uniform or loguniform, got {dist.type}")
        if not dist.high > dist.low:
            raise spec.error(f"{where}.distribution", "the search range must have high > low")
        params.append(Parameter(r.name, float(dist.low), float(dist.high), dist.type == "loguniform"))
    if not params:
        raise spec.error("randomizers", "no enabled entries: nothing to calibrate")
    return params


def nominal_guess(spec: RandomizationSpec, params: list[Parameter]) -> np.ndarray:
    """Start at the unmodified model where the range allows it (scale 1, add 0), else mid-range."""
    by_name = {r.name: r for r in spec.enabled()}
    out = []
    for p in params:
        op = by_name[p.name].operation
        neutral = {"scale": 1.0, "add": 0.0}.get(op)
        out.append(p.unit(neutral) if neutral is not None and p.low <= neutral <= p.high else 0.5)
    return np.array(out)


@dataclasses.dataclass
class FitResult:
    values: dict[str, float]
    initial_values: dict[str, float]
    method: str
    cost_initial: float
    cost_final: float
    rmse_initial: dict[str, float]   # per feature group, in the features' own units
    rmse_final: dict[str, float]
    evaluations: int
    seconds: float
    windows: int
    horizon: int
    warmup: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class Calibrator:
    """Fits ``spec``'s parameters on ``episodes`` with a `ReplaySim`."""

    def __init__(self, sim: ReplaySim, episodes: list[Episode], horizon: int = 10, warmup: int = 3,
                 max_windows: int | None = 256, seed: int = 0):
        self.sim = sim
        self.spec = sim.spec
        self.params = parameters_of(self.spec)
        self.horizon, self.warmup = horizon, warmup
        self.windows: Windows = cut_windows(episodes, sim.features, horizon, warmup, max_windows,
                                            np.random.default_rng(seed))
        self.groups = sim.feature_groups()
        # each feature group weighs the same: divide by its pooled spread over the recording
        scale = np.ones(self.windows.target.shape[-1])
        for sl in self.groups.values():
            scale[sl] = max(float(np.std(self.windows.target[..., sl])), 1e-6)
        self.scale = scale
        self.seed = seed
        self.evaluations = 0

    def values(self, u: np.ndarray) -> dict[str, float]:
        return {p.name: p.value(x) for p, x in zip(self.params, u)}

    def simulate(self, values: dict[str, float]) -> np.ndarray:
        self.evaluations += 1
        pred = self.sim.rollout(values, self.windows, self.warmup)
        return align_quaternions(pred, self.windows.target, self.groups)

    def residuals(self, u: np.ndarray) -> np.ndarray:
        pred = self.simulate(self.values(u))
        r = (pred - self.windows.target) / self.scale
        r = np.where(np.isfinite(r), r, 1e3)  # a diverged simulation is just very wrong
        return r.ravel() / np.sqrt(r.size)

    def group_rmse(self, values: dict[str, float]) -> dict[str, float]:
        err = self.simulate(values) - self.windows.target
        return {g: float(np.sqrt(np.mean(np.square(err[..., sl])))) for g, sl in self.groups.items()}

    def fit(self, method: str = "auto", max_evals: int = 200, x0: np.ndarray | None = None,
            progress: Callable[[int, float], None] | None = None, diff_step: float = 0.01) -> FitResult:
        """Minimize the replay error; ``max_evals`` bounds the simulations of all windows.

        ``diff_step`` is the finite-difference step of least squares, as a fraction of each
        search range: contacts make the error rough at small scales, so it is not tiny.
        """
        if method == "auto":
            delays = {r.name for r in self.spec.enabled() if r.family == "effect" and r.target.effect == "action_delay"}
            method = "cma" if delays & {p.name for p in self.params} else "least_squares"
        if method not in ("least_squares", "cma"):
            raise ValueError(f"method must be auto, least_squares or cma; got {method!r}")
        t0 = time.perf_counter()
        u0 = nominal_guess(self.spec, self.params) if x0 is None else np.asarray(x0, dtype=float)
        initial = self.values(u0)
        rmse0 = self.group_rmse(initial)
        cost0 = float(np.sum(np.square(self.residuals(u0))))
        self.evaluations = 0

        def cost(u):
            c = float(np.sum(np.square(self.residuals(u))))
            if progress is not None:
                progress(self.evaluations, c)
            return c

        if method == "least_squares":
            def fun(u):
                r = self.residuals(u)
                if progress is not None:
                    progress(self.evaluations, float(np.sum(r * r)))
                return r

            res = optimize.least_squares(fun, u0, bounds=(0.0, 1.0), diff_step=diff_step, x_scale=0.1,
                                         max_nfev=max(1, max_evals // (len(u0) + 1)), xtol=1e-6, ftol=1e-8)
            u_best = res.x
        else:
            import cma

            opts = {"bounds": [0.0, 1.0], "maxfevals": max_evals, "seed": self.seed + 1, "verbose": -9,
                    "tolfun": 1e-10, "popsize": max(6, 4 + int(3 * np.log(len(u0))))}
            es = cma.CMAEvolutionStrategy(list(u0), 0.3, opts)
            while not es.stop():
                candidates = es.ask()
                es.tell(candidates, [cost(np.asarray(c)) for c in candidates])
            u_best = np.asarray(es.result.xbest if es.result.xbest is not None else u0)
        evaluations = self.evaluations
        final = self.values(u_best)
        cost1 = float(np.sum(np.square(self.residuals(u_best))))
        if cost1 > cost0:  # never report something worse than where we started
            final, cost1, u_best = initial, cost0, u0
        return FitResult(values=final, initial_values=initial, method=method, cost_initial=cost0,
                         cost_final=cost1, rmse_initial=rmse0, rmse_final=self.group_rmse(final),
                         evaluations=evaluations, seconds=time.perf_counter() - t0,
                         windows=len(self.windows.actions), horizon=self.horizon, warmup=self.warmup)


def centered_spec_yaml(spec: RandomizationSpec, result: FitResult, spread: float = 0.1,
                       note: str = "") -> str:
    """The parameter file with each range re-centred on its fitted value.

    The new range is the fitted value +- ``spread`` of the search range's width
    (in log space for loguniform), kept inside the search range.
    """
    params = {p.name: p for p in parameters_of(spec)}
    out = []
    for r in spec.enabled():
        p, v = params[r.name], result.values[r.name]
        entry = r.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        entry["name"], entry["target"] = r.name, r.target.model_dump(mode="json", exclude_none=True)
        entry["operation"] = r.operation
        if p.log:
            half = spread * np.log(p.high / p.low)
            low, high = max(p.low, v * np.exp(-half)), min(p.high, v * np.exp(half))
            entry["distribution"] = {"type": "loguniform", "low": _round(low), "high": _round(high)}
        else:
            half = spread * (p.high - p.low)
            low, high = max(p.low, v - half), min(p.high, v + half)
            entry["distribution"] = {"type": "uniform", "low": _round(low), "high": _round(high)}
        entry["source"] = (f"calibrated: fitted {v:.6g} (search range [{p.low:g}, {p.high:g}]); "
                           f"range +-{spread:g} of the search width around it" + (f"; {note}" if note else ""))
        out.append(entry)
    header = ("# Written by `simreal calibrate`: each range is centred on the value fitted to the rig logs.\n"
              f"# Fit: {result.method}, {result.windows} windows of {result.horizon} steps, "
              f"cost {result.cost_initial:.4g} -> {result.cost_final:.4g}.\n")
    return header + yaml.safe_dump({"version": 1, "description": "calibrated simulator parameters",
                                    "randomizers": out}, sort_keys=False)


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def plot_fit(calibrator: Calibrator, result: FitResult, path, windows: int = 4, features_per_group: int = 2) -> None:
    """Recorded against simulated trajectories (initial and fitted values) for a few windows, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = calibrator.simulate(result.initial_values)
    after = calibrator.simulate(result.values)
    target = calibrator.windows.target
    worst = np.argsort(-np.abs(before - target).reshape(len(target), -1).mean(axis=1))[:windows]
    columns = [(g, sl.start + k) for g, sl in calibrator.groups.items()
               for k in range(min(features_per_group, sl.stop - sl.start))]
    fig, axes = plt.subplots(len(worst), len(columns), figsize=(2.6 * len(columns), 2.0 * len(worst)),
                             squeeze=False, sharex=True)
    t = np.arange(1, target.shape[1] + 1)
    for r, w in enumerate(worst):
        episode, step = calibrator.windows.origin[w]
        for c, (group, col) in enumerate(columns):
            ax = axes[r, c]
            ax.plot(t, target[w, :, col], "k-", lw=1.5, label="recorded")
            ax.plot(t, before[w, :, col], ":", color="tab:red", label="initial")
            ax.plot(t, after[w, :, col], "--", color="tab:green", label="calibrated")
            if r == 0:
                ax.set_title(f"{group}[{col - calibrator.groups[group].start}]", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"ep {episode}, t {step}", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("steps into window")
    fig.suptitle(f"calibration ({result.method}): cost {result.cost_initial:.3g} -> {result.cost_final:.3g}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
