"""``action_delay.delay`` (s, per actuator): a command reaches actuator j ``delay_j`` after it was issued.

At physics-substep resolution; until then the previous commands act. The
control step is split where delays end, so a 30 ms delay in an 80 ms step runs
15 substeps on the old command and 25 on the new.
"""

from __future__ import annotations

import numpy as np

from simreal.randomize.effects.base import Effect, actuator_names


class ActionDelay(Effect):
    name = "action_delay"
    params = {"delay": 0.0}
    units = "delay (s, per actuator)"
    acts_on_action = True

    def __init__(self, sim):
        super().__init__(sim, actuator_names(sim.model))
        self.history = np.full((self.n_envs, 2, sim.model.nu), np.nan)  # [:, k] = command issued k steps ago

    def on_reset(self, ids):
        self.history[ids] = np.nan

    def delay_substeps(self, timestep: float) -> np.ndarray:
        return np.rint(np.maximum(self.value("delay"), 0.0) / timestep).astype(np.int64)

    def _advance(self, cmd: np.ndarray, current: np.ndarray, substeps: int,
                 timestep: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Push cmd into the history; (history, whole steps of delay, extra substeps) per copy."""
        d = self.delay_substeps(timestep)
        lag, rem = np.divmod(d, substeps)
        need = int(lag.max()) + 2
        h = self.history
        if h.shape[1] < need:
            h = self.history = np.concatenate([h, np.repeat(h[:, -1:], need - h.shape[1], axis=1)], axis=1)
        fresh = np.isnan(h[:, 0, 0])
        if fresh.any():
            h[fresh] = current[fresh, None, :]
        h[:, 1:] = h[:, :-1].copy()  # one step older
        h[:, 0] = cmd
        return h, lag, rem

    def substep_controls(self, cmd: np.ndarray, current: np.ndarray, substeps: int, timestep: float,
                         low: np.ndarray, high: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The control step's controls, clipped to [low, high]: (n, nu) when no copy switches
        mid-step, else (n, substeps, nu) written into out.

        The same controls as `segments` gives, as the one array a batched rollout takes.
        """
        h, lag, rem = self._advance(cmd, current, substeps, timestep)  # lag, rem: (n, nu)
        copies, actuators = np.arange(h.shape[0])[:, None], np.arange(h.shape[2])[None, :]
        now = np.clip(h[copies, lag, actuators], low, high)
        if not rem.any():
            return now
        # substep k of an actuator still runs the older command while k < rem
        np.copyto(out, now[:, None])
        older = np.clip(h[copies, lag + 1, actuators], low, high)
        np.copyto(out, older[:, None], where=np.arange(substeps)[None, :, None] < rem[:, None])
        return out

    def segments(self, cmd: np.ndarray, current: np.ndarray, substeps: int, timestep: float) -> list[tuple[int, np.ndarray]]:
        """Split one control step into (nstep, ctrl) pieces; ``current`` fills history a fresh episode lacks."""
        h, lag, rem = self._advance(cmd, current, substeps, timestep)
        bounds = np.unique(rem)
        if bounds[0] != 0:
            bounds = np.concatenate([[0], bounds])
        copies, actuators = np.arange(h.shape[0])[:, None], np.arange(h.shape[2])[None, :]
        pieces = []
        for k, start in enumerate(bounds):
            end = bounds[k + 1] if k + 1 < len(bounds) else substeps
            pieces.append((int(end - start), h[copies, lag + (start < rem), actuators]))
        return pieces
