"""How ADR's ranges moved during a training run, read back from the run's logs.

A PPO run under a file with ``adr:`` randomizers logs ``rand/adr/<name>/low|high``, ``rand/adr/entropy`` and
``rand/adr/updates`` into its ``metrics.jsonl`` at every logging step. `read_history` collects them per
parameter, `table` says where each range stands against its ``adr.limits`` (from the run's own
randomization file), and `plot_history` draws each range as a band over env steps with its limits.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from simreal.randomize.spec import RandomizationError

PREFIX = "rand/adr/"


@dataclasses.dataclass
class AdrTrace:
    name: str
    steps: np.ndarray
    low: np.ndarray
    high: np.ndarray
    limits: tuple[float, float] | None = None   # from the run's randomization file, where it still loads
    start: tuple[float, float] | None = None

    @property
    def reached(self) -> float | None:
        """The range's width now as a fraction of the limits' width (1.0: widened all the way)."""
        if self.limits is None or self.limits[1] <= self.limits[0]:
            return None
        return float((self.high[-1] - self.low[-1]) / (self.limits[1] - self.limits[0]))


@dataclasses.dataclass
class AdrHistory:
    run_dir: pathlib.Path
    randomization: str | None
    traces: list[AdrTrace]
    entropy: tuple[np.ndarray, np.ndarray]
    updates: tuple[np.ndarray, np.ndarray]


def read_history(run_dir: str | pathlib.Path) -> AdrHistory:
    """The ADR ranges a run logged; a one-line `RandomizationError` where it logged none."""
    from simreal.training.logger import read_metrics

    run_dir = pathlib.Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise RandomizationError(f"{path}: not found; give a training run folder (it holds metrics.jsonl)")
    try:
        series = read_metrics(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise RandomizationError(f"{path}: not a metrics log ({type(exc).__name__}: {exc})") from None
    names = sorted({key[len(PREFIX):-len("/low")] for key in series
                    if key.startswith(PREFIX) and key.endswith("/low") and f"{key[:-4]}/high" in series})
    if not names:
        raise RandomizationError(f"{path}: no ADR ranges logged (rand/adr/...): the run's randomization "
                                 "file has no 'adr' randomizers")
    randomization, settings = _adr_settings(run_dir)
    traces = []
    for name in names:
        steps, low = series[f"{PREFIX}{name}/low"]
        _, high = series[f"{PREFIX}{name}/high"]
        limits, start = settings.get(name, (None, None))
        traces.append(AdrTrace(name, steps, low, high, limits, start))
    empty = (np.zeros(0), np.zeros(0))
    return AdrHistory(run_dir, randomization, traces, series.get(f"{PREFIX}entropy", empty),
                      series.get(f"{PREFIX}updates", empty))


def _adr_settings(run_dir: pathlib.Path) -> tuple[str | None, dict]:
    """``(file, {name: (limits, start)})`` from the run's saved config; empty where it no longer loads."""
    import yaml

    from simreal.randomize.spec import load_spec

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        name = cfg["env"]["randomization"]
        spec = load_spec(name)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):  # RandomizationError is a ValueError
        return None, {}  # the ranges are still worth showing without their limits
    return str(name), {r.name: (tuple(map(float, r.adr.limits)), (float(r.distribution.low),
                                                                  float(r.distribution.high)))
                       for r in spec.adr_randomizers()}


def table(history: AdrHistory) -> str:
    """A markdown table: each range at the last logged step, its limits, and how far it widened."""
    last = int(max(t.steps[-1] for t in history.traces))
    lines = [f"ADR ranges of {history.run_dir} at env step {last:,}"
             + (f" ({history.randomization})" if history.randomization else ""), "",
             "| randomizer | range now | limits | widened |", "|---|---|---|---|"]
    for t in history.traces:
        limits = "?" if t.limits is None else f"[{t.limits[0]:.4g}, {t.limits[1]:.4g}]"
        reached = "?" if t.reached is None else f"{100 * t.reached:.0f}%"
        lines.append(f"| {t.name} | [{t.low[-1]:.4g}, {t.high[-1]:.4g}] | {limits} | {reached} |")
    steps, entropy = history.entropy
    if len(entropy):
        ups = history.updates[1]
        lines += ["", f"ADR entropy {entropy[-1]:.2f} nats per parameter (a point range counts as log 1e-6 = -13.8)"
                  + (f"; {int(ups[-1])} boundary moves" if len(ups) else "")]
    return "\n".join(lines)


def plot_history(history: AdrHistory, path: str | pathlib.Path, ncols: int = 6) -> pathlib.Path:
    """One panel per ADR parameter: its [low, high] band over env steps, the limits dashed, then the entropy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(history.traces) + 1
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(2.6 * ncols, 2.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, t in zip(axes, history.traces):
        ax.fill_between(t.steps, t.low, t.high, step="post", color="tab:blue", alpha=0.35, linewidth=0)
        ax.step(t.steps, t.low, where="post", color="tab:blue", linewidth=0.8)
        ax.step(t.steps, t.high, where="post", color="tab:blue", linewidth=0.8)
        if t.limits is not None:
            for y in t.limits:
                ax.axhline(y, color="0.4", linestyle="--", linewidth=0.8)
        if t.start is not None:
            ax.axhline(0.5 * (t.start[0] + t.start[1]), color="tab:green", linestyle=":", linewidth=0.8)
        reached = "" if t.reached is None else f" ({100 * t.reached:.0f}%)"
        ax.set_title(t.name + reached, fontsize=8)
        ax.tick_params(labelsize=6)
    ax = axes[len(history.traces)]
    steps, entropy = history.entropy
    ax.plot(steps, entropy, color="tab:red", linewidth=1.0)
    ax.set_title("ADR entropy (nats/param)", fontsize=8)
    ax.tick_params(labelsize=6)
    for ax in axes[n:]:
        ax.set_visible(False)
    where = "/".join(history.run_dir.resolve().parts[-2:])
    fig.suptitle(f"ADR ranges over env steps: {where}"
                 + (f" ({history.randomization}; dashed: limits, dotted: start)" if history.randomization else ""),
                 fontsize=9)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
