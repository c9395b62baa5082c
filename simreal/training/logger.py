"""Metrics to TensorBoard and to ``metrics.jsonl``, under one naming scheme.

Names are ``<group>/<name>``: ``train/...`` for learner statistics,
``eval/...`` for evaluation episodes, ``rand/...`` for randomization values
and ADR ranges, ``time/...`` for throughput. Each `Logger.scalars` call also
appends one JSON line ``{"step": N, "name": value, ...}`` so benchmarks and
plots read runs without TensorBoard.

On resume, records after the resumed step are dropped from both (TensorBoard's
``purge_step``; the JSON lines are rewritten), so curves never fold back.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping

import numpy as np


class Logger:
    def __init__(self, run_dir: str | pathlib.Path, resume_step: int | None = None, tensorboard: bool = True):
        self.dir = pathlib.Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.dir / "metrics.jsonl"
        if resume_step is not None and self.jsonl_path.exists():
            kept = [line for line in self.jsonl_path.read_text().splitlines()
                    if line.strip() and _step_of(line) <= resume_step]
            self.jsonl_path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None and self.jsonl_path.exists():
            self.jsonl_path.unlink()
        self._jsonl = open(self.jsonl_path, "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=resume_step)

    def scalars(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Log a dict of scalars at ``step`` (non-finite values are kept in JSON as null)."""
        record: dict[str, Any] = {"step": int(step)}
        for name, value in metrics.items():
            value = float(np.asarray(value))
            record[name] = value if math.isfinite(value) else None
            if self._tb is not None:
                self._tb.add_scalar(name, value, int(step))
        self._jsonl.write(json.dumps(record) + "\n")

    def image(self, tag: str, step: int, image: np.ndarray) -> None:
        """An HxWx3 uint8 (or float in [0, 1]) image to TensorBoard."""
        if self._tb is not None:
            self._tb.add_image(tag, np.asarray(image), int(step), dataformats="HWC")

    def flush(self) -> None:
        self._jsonl.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MetricAverager:
    """Means of metrics between two log records (each key over the adds that carried it)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, Any]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop(self, prefix: str = "") -> dict[str, float]:
        out = {prefix + k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1


def read_metrics(path: str | pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``metrics.jsonl`` as ``{name: (steps, values)}`` (the last record per step wins)."""
    series: dict[str, dict[int, float]] = {}
    for line in pathlib.Path(path).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        step = int(record.pop("step"))
        for name, value in record.items():
            series.setdefault(name, {})[step] = math.nan if value is None else float(value)
    return {name: (np.array(sorted(v)), np.array([v[s] for s in sorted(v)])) for name, v in series.items()}
