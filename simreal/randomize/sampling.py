"""Draw many episodes' worth of randomizer samples from a bound stack; write them as CSV and histograms.

What ``simreal randomization sample`` runs. ``draw_samples`` seeds copy 0 of a
:class:`~simreal.randomize.stack.RandomizationStack` once and calls its reset
hook ``n`` times (no physics steps), so the samples are exactly what ``n``
consecutive episodes of an env seeded with ``seed`` would get. The values are
the raw draws of each randomizer's distribution (a scale factor, an offset, a
noise level), before its operation is applied to the nominal value.
"""

from __future__ import annotations

import csv
import math
import pathlib
from typing import Any

import numpy as np


def draw_samples(stack, n: int, seed: int | None, progress: bool = True) -> dict[str, np.ndarray]:
    """``n`` independent episode samples of every randomizer in ``stack``: name -> (n, size) array.

    Copy 0 is seeded once with ``seed`` and reset ``n`` times; each randomizer
    draws from its own stream, so the result does not depend on what else the
    stack holds. ADR (if the file has it) is held off while sampling, so the
    draws follow the file's distributions rather than ADR's boundary pins.
    """
    from tqdm import tqdm

    n = int(n)
    if n < 1:
        raise ValueError(f"need at least one sample; got n={n}")
    out = {b.name: np.empty((n, b.size)) for b in stack.items}
    ids = np.array([0], dtype=np.int64)
    adr, stack.adr = stack.adr, None
    try:
        stack.seed(0, seed)
        for k in tqdm(range(n), desc="sampling", unit="episode", leave=False, disable=not progress):
            stack.on_reset(ids)
            for b in stack.items:
                out[b.name][k] = b.values[0]
    finally:
        stack.adr = adr
    return out


def columns(samples: dict[str, np.ndarray]) -> list[str]:
    """CSV column names: ``name`` for one-number randomizers, ``name[k]`` per element otherwise."""
    cols = []
    for name, values in samples.items():
        cols += [name] if values.shape[1] == 1 else [f"{name}[{k}]" for k in range(values.shape[1])]
    return cols


def _count(samples: dict[str, np.ndarray], n: int | None) -> int:
    if samples:
        return next(iter(samples.values())).shape[0]
    return int(n or 0)


def write_csv(samples: dict[str, np.ndarray], path: str | pathlib.Path, n: int | None = None) -> pathlib.Path:
    """One row per sample, first column ``sample`` (0..n-1); floats written exactly (shortest round-trip).

    ``n`` gives the row count when ``samples`` is empty (a file with no enabled randomizer).
    """
    path = pathlib.Path(path)
    n = _count(samples, n)
    table = np.concatenate(list(samples.values()), axis=1) if samples else np.zeros((n, 0))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", *columns(samples)])
        for k in range(n):
            writer.writerow([k, *map(repr, table[k].tolist())])
    return path


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def describe_distribution(dist) -> str:
    """Short text of a distribution and its parameters: ``uniform(0.95, 1.05)``."""
    t = dist.type
    if t in ("uniform", "loguniform"):
        return f"{t}({_fmt(dist.low)}, {_fmt(dist.high)})"
    if t == "normal":
        return f"normal({_fmt(dist.mean)}, {_fmt(dist.std)})"
    if t == "truncnormal":
        return f"truncnormal({_fmt(dist.mean)}, {_fmt(dist.std)}, [{_fmt(dist.low)}, {_fmt(dist.high)}])"
    if t == "choice":
        return "choice{" + ", ".join(_fmt(v) for v in dist.values) + "}"
    if t == "constant":
        return f"constant {_fmt(dist.value)}"
    return t


def _frozen(dist) -> Any | None:
    """The distribution's scipy law, or None when it has none (constant) or it is degenerate."""
    scipy = getattr(dist, "scipy", None)
    if scipy is None:
        return None
    try:
        law = scipy()
    except (NotImplementedError, ValueError, ZeroDivisionError):
        return None
    return law


def _plot_one(ax, name: str, values: np.ndarray, bound) -> None:
    from matplotlib.ticker import MaxNLocator

    dist = getattr(bound, "distribution", None) or bound.spec.distribution
    pooled = values.reshape(-1)
    size = values.shape[1]
    title = name if size == 1 else f"{name}\n({size} elements pooled)"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"{describe_distribution(dist)}, {bound.spec.operation}", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    finite = pooled[np.isfinite(pooled)]
    if finite.size == 0:
        ax.text(0.5, 0.5, "no finite samples", ha="center", va="center", transform=ax.transAxes)
        return

    if dist.type == "choice":
        support = np.asarray(dist.values, float)
        probs = dist.probabilities()
        uniq = np.unique(support)
        gap = np.min(np.diff(uniq)) if uniq.size > 1 else max(abs(uniq[0]), 1.0)
        freq = np.array([np.mean(finite == v) for v in uniq])
        ax.bar(uniq, freq, width=0.6 * gap, color="C0", alpha=0.6, label="samples")
        expected = np.array([probs[support == v].sum() for v in uniq])
        ax.plot(uniq, expected, "o", color="C3", label="pmf")
        ax.set_ylabel("probability", fontsize=8)
        return

    lo, hi = float(finite.min()), float(finite.max())
    law = _frozen(dist) if hi > lo else None
    if hi > lo:
        ax.hist(finite, bins=min(60, max(10, int(math.sqrt(finite.size)))), density=True, color="C0", alpha=0.6)
        ax.set_ylabel("density", fontsize=8)
    else:  # every draw the same (a constant, or a degenerate range): one narrow bar of all the samples
        half = 0.5 * max(abs(lo), 1e-9)
        ax.bar([lo], [finite.size], width=0.04 * half, color="C0", alpha=0.6)
        ax.set_xlim(lo - half, lo + half)
        ax.set_ylabel("count", fontsize=8)
    if law is not None:
        a, b = law.support()
        x_lo, x_hi = max(lo, a) if np.isfinite(a) else lo, min(hi, b) if np.isfinite(b) else hi
        pad = 0.05 * (x_hi - x_lo)
        x = np.linspace(x_lo - pad, x_hi + pad, 400)
        with np.errstate(all="ignore"):
            y = law.pdf(x)
        if np.all(np.isfinite(y)):
            ax.plot(x, y, color="C3", lw=1.2, label="density")
            return
    value = getattr(dist, "value", None)
    ax.axvline(value if value is not None else lo, color="C3", lw=1.2)


def plot_histograms(samples: dict[str, np.ndarray], stack, path: str | pathlib.Path, ncols: int = 5,
                    n: int | None = None) -> pathlib.Path:
    """One histogram per randomizer (per-element ones pooled), the file's density or pmf on top; a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = pathlib.Path(path)
    bound = {b.name: b for b in stack.items}
    names = [name for name in samples if name in bound]
    ncols = max(1, min(ncols, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(3.6 * ncols, 2.9 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    if not names:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no enabled randomizers", ha="center", va="center")
    n = _count(samples, n)
    for j, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, j + 1)
        _plot_one(ax, name, samples[name], bound[name])
    fig.suptitle(f"{pathlib.Path(stack.spec.source).name}: {n} episode samples per randomizer", fontsize=11)
    fig.savefig(path, dpi=80)
    return path
