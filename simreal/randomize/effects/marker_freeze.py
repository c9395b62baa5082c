"""``marker_freeze`` (per motion-capture marker): tracking losses and occlusion.

``rate`` (1/s) of random tracking losses, each held for an exponential
``duration`` (mean, s); ``occlusion_distance`` (m) freezes a marker whenever it
is that close to another marker or to the object's surface. A frozen marker
repeats the value it last reported, so it is applied after observation noise.
The simulation lists its markers (``sim.markers``: name and the observation
columns each feeds) and answers ``sim.marker_occlusion(distance)``.
"""

from __future__ import annotations

import numpy as np

from simreal.randomize.effects.base import Effect, EffectUnavailable


class MarkerFreeze(Effect):
    name = "marker_freeze"
    params = {"rate": 0.0, "duration": 0.0, "occlusion_distance": 0.0}
    units = "rate (1/s), duration (s, mean), occlusion_distance (m) (per marker)"
    acts_on_observation = True

    def __init__(self, sim):
        markers: list[tuple[str, list[tuple[str, slice]]]] = getattr(sim, "markers", None) or []
        if not markers:
            raise EffectUnavailable("this env has no motion-capture markers to freeze")
        super().__init__(sim, [name for name, _ in markers])
        self.markers = markers
        n, m = self.n_envs, len(markers)
        self.left = np.zeros((n, m), dtype=np.int64)
        self.fresh = np.ones(n, dtype=bool)
        self.held: dict[str, np.ndarray] = {}
        self.frozen = np.zeros((n, m), dtype=bool)  # what the last observation froze (for tests and logs)
        # per observation key: the columns markers feed and which marker feeds each
        columns: dict[str, tuple[list[int], list[int]]] = {}
        for j, (_, parts) in enumerate(markers):
            for key, sl in parts:
                cols, owner = columns.setdefault(key, ([], []))
                idx = list(range(sl.start, sl.stop))
                cols += idx
                owner += [j] * len(idx)
        self._columns = {k: (np.array(c), np.array(o)) for k, (c, o) in columns.items()}
        self._keys = set(self._columns)

    def on_reset(self, ids):
        self.left[ids] = 0
        self.fresh[ids] = True

    def on_observation(self, obs: dict[str, np.ndarray], control_dt: float, rows: np.ndarray | None = None) -> None:
        """Freeze markers in obs (the copies ``rows``, or all), then advance their countdowns."""
        if not self._keys <= obs.keys():
            return
        # every copy: slices (views), not fancy indexing; the stream takes None as "all"
        rows = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        rate, duration = self.value("rate")[rows], self.value("duration")[rows]
        p_start = 1.0 - np.exp(-np.maximum(rate, 0.0) * control_dt)
        left = self.left[rows].copy()
        m = len(self.markers)
        u = self.streams.take(None if isinstance(rows, slice) else rows, 2 * m)  # per copy: a coin and a length per marker
        start = u[:, :m] < p_start
        if start.any():
            steps = np.rint(-np.log1p(-u[:, m:]) * np.maximum(duration, 0.0) / control_dt).astype(np.int64)
            left = np.where(start, np.maximum(left, steps), left)
        occlusion = self.value("occlusion_distance")
        frozen = left > 0
        if np.any(occlusion > 0):
            frozen |= self.sim.marker_occlusion(occlusion)[rows]
        frozen &= ~self.fresh[rows, None]
        for key, (cols, marker) in self._columns.items():
            x = obs[key]
            held = self.held.setdefault(key, np.zeros((self.n_envs,) + x.shape[1:], dtype=x.dtype))
            if frozen.any():  # fresh copies are never frozen, so a new (zero) buffer is never read
                x[:, cols] = np.where(frozen[:, marker], held[rows][:, cols], x[:, cols])
            held[rows] = x
        self.frozen[rows] = frozen
        self.left[rows] = np.maximum(left - 1, 0)
        self.fresh[rows] = False
