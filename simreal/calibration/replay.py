"""Replaying recorded actions in simulation from recorded states, at given parameter values.

Calibration compares what a rig recorded with what the simulator does from the
same states under the same actions. Long open-loop replays drift apart for
reasons that have nothing to do with the parameters (contacts, chaos), so the
episodes are cut into short windows (multiple shooting). Each window
replays ``warmup`` recorded actions first, so that action delays and backlash
hold the commands they would hold on the rig, then puts the simulator into the
recorded state (the warm-up's own drift is discarded) and predicts ``horizon``
steps that are compared with the recording.

Two simulators implement `ReplaySim`:

- `HandReplay`: the hand-cube task, every window a copy of one batched
  simulation (all windows of all episodes step together). The state is read
  from the privileged ``state`` key (hand joints, cube pose and velocities).
- `GymReplay`: a Gymnasium or dm_control env (through shimmy) under
  `simreal.randomize.wrap`, windows one after another. An env needs a *state
  adapter* that sets the simulator state from a recorded observation and
  names the compared features; `STATE_ADAPTERS` has dm_control's cartpole.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import mujoco
import numpy as np

from simreal.randomize.spec import RandomizationSpec
from simreal.utils.keys import STATE_KEY


@dataclasses.dataclass
class Episode:
    """One recorded episode: observations (T+1 per key, the first before any action) and T actions."""

    observations: dict[str, np.ndarray]
    actions: np.ndarray

    def __post_init__(self):
        self.actions = np.asarray(self.actions, dtype=np.float64)
        if self.actions.ndim != 2:
            raise ValueError(f"episode actions must be (T, action_dim), got shape {self.actions.shape}")
        for key, value in self.observations.items():
            if len(value) != len(self.actions) + 1:
                raise ValueError(f"episode observation {key!r} has {len(value)} steps; expected "
                                 f"{len(self.actions) + 1} (one more than the {len(self.actions)} actions)")

    def __len__(self) -> int:
        return len(self.actions)


@dataclasses.dataclass
class Windows:
    """Windows cut from episodes: start observations, actions, and the recorded features to match."""

    start: dict[str, np.ndarray]   # (n, ...) observation at each window's first (warm-up) action
    resume: dict[str, np.ndarray]  # (n, ...) observation the prediction starts from, after the warm-up
    actions: np.ndarray            # (n, warmup + horizon, action_dim)
    target: np.ndarray             # (n, horizon, features)
    origin: list[tuple[int, int]]  # (episode index, first compared step) per window


def cut_windows(episodes: list[Episode], features: Callable[[dict[str, np.ndarray]], np.ndarray],
                horizon: int, warmup: int, max_windows: int | None = None,
                rng: np.random.Generator | None = None) -> Windows:
    """Non-overlapping windows of ``warmup + horizon`` actions from every episode."""
    if horizon < 1 or warmup < 0:
        raise ValueError(f"horizon must be >= 1 and warmup >= 0; got {horizon}, {warmup}")
    starts, resumes, acts, targets, origin = [], [], [], [], []
    span = warmup + horizon
    for e, ep in enumerate(episodes):
        feats = features(ep.observations)
        for s0 in range(0, len(ep) - span + 1, horizon):
            starts.append({k: v[s0] for k, v in ep.observations.items()})
            resumes.append({k: v[s0 + warmup] for k, v in ep.observations.items()})
            acts.append(ep.actions[s0:s0 + span])
            targets.append(feats[s0 + warmup + 1:s0 + span + 1])
            origin.append((e, s0 + warmup + 1))
    if not starts:
        longest = max((len(ep) for ep in episodes), default=0)
        raise ValueError(f"no window of {span} steps (warmup {warmup} + horizon {horizon}) fits in the episodes "
                         f"(longest: {longest} steps); lower --horizon or record longer episodes")
    if max_windows is not None and len(starts) > max_windows:
        keep = np.sort((rng or np.random.default_rng(0)).choice(len(starts), max_windows, replace=False))
        starts, resumes, acts, targets, origin = ([x[i] for i in keep]
                                                  for x in (starts, resumes, acts, targets, origin))
    start = {k: np.stack([s[k] for s in starts]) for k in starts[0]}
    resume = {k: np.stack([s[k] for s in resumes]) for k in resumes[0]}
    return Windows(start, resume, np.stack(acts), np.stack(targets), origin)


class ReplaySim(Protocol):
    spec: RandomizationSpec

    def features(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """(T, F) compared features of recorded observations (T steps of each key)."""

    def feature_groups(self) -> dict[str, slice]:
        """Names of feature groups (for per-group errors and plots) and their columns."""

    def rollout(self, values: dict[str, float], windows: Windows, warmup: int) -> np.ndarray:
        """(n, horizon, F) simulated features of every window at the given parameter values."""


def align_quaternions(pred: np.ndarray, target: np.ndarray, groups: dict[str, slice]) -> np.ndarray:
    """pred with every ``*_quat`` group's sign flipped to match target (q and -q are one rotation)."""
    out = pred.copy()
    for name, sl in groups.items():
        if name.endswith("quat"):
            sign = np.sign(np.sum(pred[..., sl] * target[..., sl], axis=-1, keepdims=True))
            out[..., sl] *= np.where(sign == 0, 1.0, sign)
    return out


# ------------------------------------------------------------------ the hand
class HandReplay:
    """Batched replay on the hand-cube simulation (one copy per window)."""

    GROUPS = ("hand_qpos", "object_pos", "object_quat")

    def __init__(self, spec: RandomizationSpec, env_kwargs: dict | None = None, nthread: int | None = None):
        from simreal.envs.hand_cube import HandCubeConfig

        self.spec = spec
        kwargs = dict(env_kwargs or {})
        kwargs.update(settle_time=0.0, drop_height=-10.0, goal_timeout=1e6)  # replay never ends an episode
        self.config = HandCubeConfig.from_kwargs(**kwargs)
        self.nthread = nthread
        self._sim = None
        from simreal.envs.hand_cube import HandCubeSim

        probe = HandCubeSim(1, self.config, nthread=1)
        self.layout = probe.state_layout
        sizes = {g: self.layout[g].stop - self.layout[g].start for g in self.GROUPS}
        self._groups, start = {}, 0
        for g in self.GROUPS:
            self._groups[g] = slice(start, start + sizes[g])
            start += sizes[g]

    def feature_groups(self) -> dict[str, slice]:
        return dict(self._groups)

    def features(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        if STATE_KEY not in observations:
            raise ValueError(f"hand-cube calibration needs the privileged {STATE_KEY!r} key in the recorded observations")
        state = np.asarray(observations[STATE_KEY], dtype=np.float64)
        return np.concatenate([state[..., self.layout[g]] for g in self.GROUPS], axis=-1)

    def _sim_for(self, n: int):
        from simreal.envs.hand_cube import HandCubeSim

        if self._sim is None or self._sim.n_envs != n:
            self._sim = HandCubeSim(n, self.config, nthread=self.nthread or min(n, 2))
            self._sim.set_randomization(self.spec)
        return self._sim

    def _set_state(self, sim, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        lay, o, d = self.layout, sim.obj_qadr, sim.obj_dadr
        sim.qpos[:, sim.hand_qadr] = state[:, lay["hand_qpos"]]
        sim.qvel[:, sim.hand_dadr] = state[:, lay["hand_qvel"]]
        sim.qpos[:, o:o + 3] = state[:, lay["object_pos"]]
        sim.qpos[:, o + 3:o + 7] = state[:, lay["object_quat"]]
        sim.qvel[:, d:d + 3] = state[:, lay["object_linvel"]]
        sim.qvel[:, d + 3:d + 6] = state[:, lay["object_angvel"]]
        sim.batch.forward(stage=sim._stage)

    def rollout(self, values: dict[str, float], windows: Windows, warmup: int) -> np.ndarray:
        n, span, _ = windows.actions.shape
        sim = self._sim_for(n)
        sim.randomization.set_fixed(values)
        ids = np.arange(n)
        for i in ids:
            sim.seed(int(i), 0)
        sim.reset(ids)
        self._set_state(sim, windows.start["state"])
        sim._hold_pose(ids)
        horizon = span - warmup
        out = np.empty((n, horizon, windows.target.shape[-1]))
        o = sim.obj_qadr
        for t in range(span):
            if t == warmup:
                self._set_state(sim, windows.resume["state"])
            sim.step(windows.actions[:, t])
            if t >= warmup:
                q = sim.qpos
                out[:, t - warmup] = np.concatenate(
                    [q[:, sim.hand_qadr], q[:, o:o + 3], q[:, o + 3:o + 7]], axis=-1)
        return out


# ------------------------------------------------------- Gymnasium / dm_control
@dataclasses.dataclass(frozen=True)
class StateAdapter:
    """How to put a recorded observation into an env's simulator state, and what to compare."""

    set_state: Callable[[mujoco.MjModel, mujoco.MjData, dict[str, np.ndarray]], None]
    groups: tuple[tuple[str, str], ...]  # (feature group name, observation key), compared in this order


def _cartpole_state(model: mujoco.MjModel, data: mujoco.MjData, obs: dict[str, np.ndarray]) -> None:
    x, cos, sin = np.asarray(obs["position"], dtype=np.float64).reshape(-1)[:3]
    data.qpos[:] = (x, np.arctan2(sin, cos))
    data.qvel[:] = np.asarray(obs["velocity"], dtype=np.float64).reshape(-1)[:2]


_CARTPOLE = StateAdapter(_cartpole_state, (("position", "position"), ("velocity", "velocity")))
STATE_ADAPTERS: dict[str, StateAdapter] = {
    "dm_control/cartpole-swingup-v0": _CARTPOLE,
    "dm_control/cartpole-balance-v0": _CARTPOLE,
}


class GymReplay:
    """Window-by-window replay on one Gymnasium env wrapped with the parameter spec."""

    def __init__(self, env_id: str, spec: RandomizationSpec, env_kwargs: dict | None = None,
                 action_repeat: int = 1):
        from simreal.randomize.wrappers import RandomizedEnv, wrap
        from simreal.training.envs import gym_make

        if env_id not in STATE_ADAPTERS:
            raise ValueError(f"calibration of {env_id!r} needs a state adapter (known: {', '.join(STATE_ADAPTERS)} "
                             "and simreal/HandCube-v0); add one to simreal.calibration.replay.STATE_ADAPTERS")
        self.spec = spec
        self.adapter = STATE_ADAPTERS[env_id]
        self.action_repeat = int(action_repeat)  # physics control steps per recorded action, as on the rig
        self.env: RandomizedEnv = wrap(gym_make(env_id, None, env_kwargs or {}), spec, seed=0)
        self._groups, start = {}, 0
        space = self.env.observation_space
        for name, key in self.adapter.groups:
            size = int(np.prod(space[key].shape))
            self._groups[name] = slice(start, start + size)
            start += size

    def feature_groups(self) -> dict[str, slice]:
        return dict(self._groups)

    def features(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for _, key in self.adapter.groups:
            if key not in observations:
                raise ValueError(f"recorded observations lack key {key!r} (have {', '.join(observations)})")
            v = np.asarray(observations[key], dtype=np.float64)
            parts.append(v.reshape(v.shape[0], -1))
        return np.concatenate(parts, axis=-1)

    def rollout(self, values: dict[str, float], windows: Windows, warmup: int) -> np.ndarray:
        env, stack = self.env, self.env.stack
        stack.set_fixed(values)
        n, span, _ = windows.actions.shape
        out = np.empty((n, span - warmup, windows.target.shape[-1]))
        for w in range(n):
            env.reset(seed=0)
            self._set_state({k: v[w] for k, v in windows.start.items()})
            for t in range(span):
                if t == warmup:
                    self._set_state({k: v[w] for k, v in windows.resume.items()})
                action = windows.actions[w, t].astype(env.action_space.dtype)
                for _ in range(self.action_repeat):
                    obs, *_ = env.step(action)
                if t >= warmup:
                    out[w, t - warmup] = self.features({k: np.asarray(v)[None] for k, v in obs.items()})[0]
        return out

    def _set_state(self, obs: dict[str, np.ndarray]) -> None:
        model, data = self.env.sim.model, self.env.sim.data
        self.adapter.set_state(model, data, obs)
        mujoco.mj_forward(model, data)

    def close(self) -> None:
        self.env.close()


def make_replay(env_id: str, spec: RandomizationSpec, env_kwargs: dict | None = None,
                action_repeat: int = 1) -> ReplaySim:
    """The replay sim of env_id: its native replay (`registration.NativeEnv.replay`, the hand's
    `HandReplay`) or `GymReplay` for any Gymnasium / dm_control env."""
    from simreal.registration import native_env, refuse_action_repeat

    native = native_env(env_id)
    if native is not None:
        refuse_action_repeat(env_id, action_repeat)
        return native.load("replay")(spec, env_kwargs)
    return GymReplay(env_id, spec, env_kwargs, action_repeat)
