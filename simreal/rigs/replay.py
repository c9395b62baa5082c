"""A rig that plays recorded episodes back: offline evaluation on logs, with the log's actions at hand.

::

    rig = ReplayRig("outputs/rig-logs/hand_laggy")       # a dataset written by simreal.rigs.recording
    obs, info = rig.reset()                              # observation 0 of the next recorded episode
    while True:
        action = rig.next_action()                       # the action the log took here (post-safety)
        obs, reward, terminated, truncated, info = rig.step(action)
        if terminated or truncated:
            break

A log cannot react: ``step`` returns the recorded next observation whatever the
action; ``info["recorded_action"]`` and ``info["action_error"]`` (largest
absolute difference to the given action) show how far a policy under
evaluation is from what was done. ``rig.episode`` is the whole
`RecordedEpisode` (observations, actions, commands, ground-truth ``sim_state``
of simulated rigs, frames) for evaluations that need arrays, such as a world
model's open-loop prediction error or calibration.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from simreal.rigs.base import Rig, RigError, SafetyConfig, action_bounds
from simreal.rigs.recording import DatasetReader, RecordedEpisode


class ReplayRig(Rig):
    """Recorded episodes, in order (kind ``replay``), with the recording rig's spaces, timing and limits.

    Args:
        path: a dataset folder written by `simreal.rigs.recording.DatasetWriter`.
        episodes: indices (into the dataset, in order) to play; default all.
        loop: start over after the last episode (else ``reset`` raises `RigError`).

    ``reset(options={"episode": i})`` plays dataset index ``i`` next. The
    safety layer works on actions as the recording rig's action space bounds
    them (no rate limit, no watchdog).
    """

    def __init__(self, path: str | os.PathLike, episodes: Sequence[int] | None = None, loop: bool = False,
                 name: str | None = None):
        self.reader = DatasetReader(path)
        self.path = str(path)
        self.source = self.reader.rig_info
        if not len(self.reader):
            raise RigError(f"{path}: the dataset holds no episodes")
        self.order = list(range(len(self.reader))) if episodes is None else [int(i) for i in episodes]
        for i in self.order:
            if not 0 <= i < len(self.reader):
                raise RigError(f"{path}: episode index {i} out of range ({len(self.reader)} episodes)")
        self.loop = bool(loop)
        self._cursor = 0
        self.episode: RecordedEpisode | None = None
        self.t = 0
        space = self.reader.action_space
        low, high = action_bounds(space)
        super().__init__(name=name or f"replay:{self.source.name}", kind="replay",
                         observation_space=self.reader.observation_space, action_space=space,
                         control_dt=self.source.control_dt,
                         command_names=[f"a{i}" for i in range(low.size)], command_low=low, command_high=high,
                         command_units="the recording rig's action", safety=SafetyConfig(),
                         env_id=self.source.env_id)

    def next_action(self) -> np.ndarray:
        """The recorded action for the coming step (the post-safety action the recording rig applied)."""
        if self.episode is None or self.t >= self.episode.steps:
            raise RigError(f"rig {self.name}: no recorded step left; call reset()")
        return self.episode.actions[self.t].copy()

    # ------------------------------------------------------------------ hooks
    def _reset(self, seed, options):
        index = (options or {}).get("episode")
        if index is None:
            if self._cursor >= len(self.order):
                if not self.loop:
                    raise RigError(f"rig {self.name}: all {len(self.order)} recorded episodes played "
                                   "(pass loop=True to start over)")
                self._cursor = 0
            index = self.order[self._cursor]
            self._cursor += 1
        elif not 0 <= int(index) < len(self.reader):
            raise RigError(f"rig {self.name}: episode index {index} out of range ({len(self.reader)} episodes)")
        self.episode = self.reader[int(index)]
        self.episode_seed = self.episode.seed
        self.t = 0
        info: dict[str, Any] = {k: v[0] for k, v in self.episode.infos.items()}
        info.update(episode=int(index), recorded_episode_id=self.episode.id, recorded_seed=self.episode.seed,
                    recorded_end=self.episode.end)
        return self.episode.observation(0), info

    def _apply(self, command, action):
        ep, t = self.episode, self.t
        if ep is None or t >= ep.steps:
            raise RigError(f"rig {self.name}: the recorded episode has no step {t}")
        self.t = t + 1
        recorded = ep.actions[t]
        info: dict[str, Any] = {k: v[t + 1] for k, v in ep.infos.items()}
        info["recorded_action"] = recorded.copy()
        info["action_error"] = float(np.max(np.abs(np.asarray(action, np.float64) - recorded))) if recorded.size else 0.0
        terminated = bool(ep.terminations[t])
        truncated = bool(ep.truncations[t]) or (self.t >= ep.steps and not terminated)
        return ep.observation(t + 1), float(ep.rewards[t]), terminated, truncated, info

    def _hold_command(self) -> np.ndarray:
        if self.episode is not None and self.episode.steps:
            return self.episode.actions[0].astype(np.float64).ravel()
        return np.clip(np.zeros_like(self.safety.low), self.safety.low, self.safety.high)

    def _safe_state(self) -> None:
        pass

    def _extra_info(self) -> dict[str, Any]:
        return {"dataset": self.path, "episodes": len(self.order), "recorded_by": self.source.to_dict()}
