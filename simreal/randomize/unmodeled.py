"""Unmodeled effects: what the simulator leaves out and a real rig does anyway.

Action noise acts on the normalized action in [-1, 1] before it becomes joint
targets (``resample: episode`` is correlated noise, ``resample: step``
uncorrelated; ``operation: add`` or ``scale``); the result is clipped to [-1, 1].

The other effects have *parameters* that YAML randomizers target with
``{effect: NAME, param: NAME, names: [GLOB...]}``. A parameter starts from its
nominal value (the effect is off there) and every randomizer on it is applied in
YAML order (set, scale, add), so ``action_delay.delay`` can be "30 ms, 10 %
per episode" plus "0 or 1 extra control step per actuator". Effects keep their
own state (command history, held marker values, forces) and their own RNG stream
per env copy, ``make_rng(seed, "effect", NAME)``.

* ``backlash.width`` (rad, per actuator): a play operator on the joint target.
  The applied target moves only once the command has crossed the gap, then
  trails it by half the width; reversing direction first crosses the gap.
* ``action_delay.delay`` (s, per actuator): a command reaches actuator j
  ``delay_j`` after it was issued, at physics-substep resolution; until then the
  previous commands act. The control step is split where delays end, so a 30 ms
  delay in an 80 ms step runs 15 substeps on the old command and 25 on the new.
* ``marker_freeze`` (per motion-capture marker): ``rate`` (1/s) of random
  tracking losses, each held for an exponential ``duration`` (mean, s);
  ``occlusion_distance`` (m) freezes a marker whenever it is that close to
  another marker or to the object's surface. A frozen marker repeats the value
  it last reported, so it is applied after observation noise.
* ``object_force`` (per body): each control step, with ``probability``, a new
  random force ~ N(0, (scale * nominal body mass)^2) per axis replaces the
  current one; forces decay as exp(-t / ``decay_time``).

Robot commands stay inside the actuator control range whatever the effects do.
"""

from __future__ import annotations


import numpy as np
from scipy import special

from simreal.randomize.base import OPERATIONS, BoundRandomizer, match_names
from simreal.randomize.distributions import open_unit
from simreal.randomize.spec import EFFECT_PARAMS
from simreal.randomize.streams import CopyStreams


def actuator_names(model) -> list[str]:
    """Actuator names, with ``actuator<i>`` for unnamed ones (Gymnasium's MuJoCo envs name none)."""
    return [model.actuator(i).name or f"actuator{i}" for i in range(model.nu)]


class ActionNoise(BoundRandomizer):
    def __init__(self, spec, file, sim):
        names = actuator_names(sim.model)
        channels = match_names(names, None if spec.target.action == "all" else spec.target.action)
        if channels.size == 0:
            raise file.error(f"{file.locate(spec.name)}.target.action",
                             f"no actuator matches {spec.target.action} (actuators include: {', '.join(names[:5])}, ...)")
        self.channels = channels
        self.op = OPERATIONS[spec.operation]
        super().__init__(spec, file, sim.n_envs, len(channels))

    def on_action(self, action: np.ndarray) -> np.ndarray:
        out = action.copy()
        out[:, self.channels] = self.op(action[:, self.channels], self.values)
        return np.clip(out, -1.0, 1.0)


class EffectParam(BoundRandomizer):
    """A YAML randomizer on one parameter of an effect, for some of its elements."""

    def __init__(self, spec, file, effect: "Effect"):
        self.effect = effect
        self.param = spec.target.param
        elements = match_names(effect.element_names, spec.target.names)
        if elements.size == 0:
            sample = ", ".join(effect.element_names[:6])
            raise file.error(f"{file.locate(spec.name)}.target.names",
                             f"no element of effect {effect.name!r} matches {spec.target.names} (names include: {sample}, ...)")
        self.elements = elements
        self.op = OPERATIONS[spec.operation]
        super().__init__(spec, file, effect.n_envs, len(elements))

    def apply(self, ids: np.ndarray) -> None:
        self.effect.changed()


class EffectUnavailable(Exception):
    """The simulation lacks what an effect needs (markers, applied forces); the message says what."""


class Effect:
    """State and behaviour of one unmodeled effect on an N-copy simulation."""

    name = ""

    def __init__(self, sim, element_names: list[str]):
        self.sim = sim
        self.n_envs = sim.n_envs
        self.element_names = element_names
        self.nominal = EFFECT_PARAMS[self.name]
        self.inputs: list[EffectParam] = []
        self.active = np.zeros(0, np.int64)  # element indices any randomizer touches
        self.streams = CopyStreams(self.n_envs, "effect", self.name)
        self._cache: dict[str, np.ndarray] = {}

    def set_inputs(self, inputs: list[EffectParam]) -> None:
        """The randomizers on this effect, in YAML order (the stack calls this when it changes)."""
        self.inputs = inputs
        self.active = np.unique(np.concatenate([r.elements for r in inputs])) if inputs else np.zeros(0, np.int64)
        self.changed()

    def changed(self) -> None:
        """A randomizer on this effect drew new values (or the stack changed): recompute parameters."""
        self._cache.clear()

    def seed(self, i: int, seed: int | None) -> None:
        self.streams.seed(i, seed)

    def value(self, param: str) -> np.ndarray:
        """(n_envs, n_elements) current value: the nominal, then each randomizer on it in YAML order."""
        v = self._cache.get(param)
        if v is None:
            v = np.full((self.n_envs, len(self.element_names)), float(self.nominal[param]))
            for r in self.inputs:
                if r.param == param:
                    v[:, r.elements] = r.op(v[:, r.elements], r.values)
            self._cache[param] = v
        return v

    def on_reset(self, ids: np.ndarray) -> None:
        """New episodes in copies ids (called after every randomizer drew its values)."""


class Backlash(Effect):
    name = "backlash"

    def __init__(self, sim):
        super().__init__(sim, actuator_names(sim.model))
        self.applied = np.full((self.n_envs, sim.model.nu), np.nan)

    def on_reset(self, ids):
        self.applied[ids] = np.nan

    def on_ctrl(self, ctrl: np.ndarray) -> np.ndarray:
        half = 0.5 * np.maximum(self.value("width"), 0.0)
        prev = np.where(np.isnan(self.applied), ctrl, self.applied)
        out = np.clip(prev, ctrl - half, ctrl + half)  # the play operator
        self.applied = out
        return out


class ActionDelay(Effect):
    name = "action_delay"

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


class ObjectForce(Effect):
    name = "object_force"

    def __init__(self, sim):
        if getattr(sim, "xfrc_applied", None) is None:
            raise EffectUnavailable("this env does not expose applied forces (xfrc_applied)")
        m = sim.model
        super().__init__(sim, [m.body(b).name for b in range(m.nbody)])
        self.force = np.zeros((self.n_envs, m.nbody, 3))
        self._mass = m.body_mass.copy()

    def on_reset(self, ids):
        self.force[ids] = 0.0
        self.sim.xfrc_applied[np.ix_(ids, self.active)] = 0.0

    def before_physics(self, control_dt: float) -> None:
        bodies = self.active
        if bodies.size == 0:
            return
        p = self.value("probability")[:, bodies]
        scale = self.value("scale")[:, bodies]
        decay = np.exp(-control_dt / np.maximum(self.value("decay_time")[:, bodies], 1e-9))
        f = self.force[:, bodies] * decay[..., None]
        k = len(bodies)
        u = self.streams.take(None, 4 * k)  # per copy: one coin and 3 axes per body
        new = u[:, :k] < p
        if new.any():
            draw = special.ndtri(open_unit(u[:, k:])).reshape(self.n_envs, k, 3)
            draw *= (scale * self._mass[bodies])[..., None]
            f[new] = draw[new]
        self.force[:, bodies] = f
        self.sim.xfrc_applied[:, bodies, :3] = f


class MarkerFreeze(Effect):
    name = "marker_freeze"

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
        self._all = np.arange(n)

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


EFFECTS = {cls.name: cls for cls in (Backlash, ActionDelay, ObjectForce, MarkerFreeze)}
