"""Running a policy for episodes and summarizing what happened.

Per episode (from what `simreal.rigs.run_episode` returns): return, length, and, where the env's info reports them (the
hand-cube task does), consecutive successes, whether the object was dropped,
and the time to the first goal. Summaries give the median and maximum of
consecutive successes (as Dactyl reports them), the drop rate, the median
time to goal and the mean return.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

import numpy as np


@dataclasses.dataclass
class EpisodeMetrics:
    """The metrics of one episode, computed from a rig's `simreal.rigs.EpisodeResult` (rewards and infos)."""

    ret: float
    length: int
    successes: int | None = None        # consecutive successes at the end (hand-cube info)
    dropped: bool | None = None
    time_to_goal: float | None = None   # seconds to the first success; None if never


@dataclasses.dataclass
class Summary:
    episodes: int
    return_mean: float
    return_std: float
    return_median: float
    length_mean: float
    successes_median: float | None = None
    successes_max: float | None = None
    successes_mean: float | None = None
    drop_rate: float | None = None
    time_to_goal_median: float | None = None
    reached_goal_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def episode_metrics(rewards: np.ndarray, infos: dict[str, np.ndarray], control_dt: float) -> EpisodeMetrics:
    """An episode's metrics from its per-step rewards and scalar infos (as `simreal.rigs.run_episode` gives)."""
    rewards = np.asarray(rewards, dtype=float)
    out = EpisodeMetrics(float(rewards.sum()), int(len(rewards)))
    succ = infos.get("consecutive_successes")
    if succ is not None and len(succ):
        out.successes = int(succ[-1])
        hit = np.flatnonzero((np.asarray(infos.get("is_success", succ)) > 0) | (np.asarray(succ) > 0))
        out.time_to_goal = float((hit[0] + 1) * control_dt) if len(hit) else None
    dropped = infos.get("dropped")
    if dropped is not None:
        out.dropped = bool(np.any(np.asarray(dropped) > 0))
    return out


def summarize(results: Iterable[EpisodeMetrics]) -> Summary:
    results = list(results)
    if not results:
        raise ValueError("no episodes to summarize")
    returns = np.array([r.ret for r in results])
    out = Summary(len(results), float(returns.mean()), float(returns.std()), float(np.median(returns)),
                  float(np.mean([r.length for r in results])))
    if all(r.successes is not None for r in results):
        s = np.array([r.successes for r in results], dtype=float)
        out.successes_median, out.successes_max, out.successes_mean = float(np.median(s)), float(s.max()), float(s.mean())
        times = [r.time_to_goal for r in results if r.time_to_goal is not None]
        out.reached_goal_rate = len(times) / len(results)
        out.time_to_goal_median = float(np.median(times)) if times else None
    if all(r.dropped is not None for r in results):
        out.drop_rate = float(np.mean([r.dropped for r in results]))
    return out


GAP_KEYS = ("return_mean", "successes_median", "successes_mean", "drop_rate", "time_to_goal_median")


def gap(sim: Summary, rig: Summary) -> dict[str, float | None]:
    """Sim minus rig for each metric both have (positive return gap = the rig does worse)."""
    out = {}
    for key in GAP_KEYS:
        a, b = getattr(sim, key), getattr(rig, key)
        out[key] = None if a is None or b is None else float(a - b)
    if sim.return_mean != 0:
        out["return_gap_fraction"] = float((sim.return_mean - rig.return_mean) / abs(sim.return_mean))
    return out
