"""Running policies on rigs: episodes with results per step, scripted policies, batching helpers.

::

    from simreal.agents import load_policy
    from simreal.rigs import SimulatedRig, record, run_episodes

    rig = SimulatedRig("cartpole_heavy_pole", env_id="dm_control/cartpole-swingup-v0")
    writer = record(rig, "outputs/rig-logs/ppo_dr")          # every episode goes to a Minari dataset
    writer.set_tags(agent="ppo_dr")
    results = run_episodes(rig, load_policy("runs/ppo_dr/policy.pt"), episodes=10, seed=100, max_steps=1000)
    results[0].episode_return, results[0].end, results[0].infos   # per-step arrays of the numeric infos

A rig is one env: the policy is called with a batch of one (``{key: obs[None]}``)
and its recurrent state is reset at every episode start.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from simreal.rigs.base import EmergencyStopped, Rig, RigStopped, action_bounds
from simreal.utils.seeding import make_rng


def batch_obs(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One rig observation as a batch of one, as policies take it."""
    return {k: np.asarray(v)[None] for k, v in obs.items()}


@dataclasses.dataclass
class EpisodeResult:
    """What one episode on a rig gave.

    ``end``: ``terminated``, ``truncated`` (by the rig), ``cut_off`` (``max_steps``
    reached), ``estop``, ``watchdog`` or ``error: ...``. ``rewards`` has one
    entry per step; ``infos`` one array per numeric scalar info key of the
    steps (e.g. ``is_success``, ``consecutive_successes``, ``dropped`` for the
    hand), in step order. ``safety`` counts the safety layer's interventions.
    """

    index: int
    seed: int | None
    steps: int
    end: str
    rewards: np.ndarray
    infos: dict[str, np.ndarray]
    last_info: dict[str, Any]
    safety: dict[str, int]

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))


def _scalar_infos(info: dict) -> dict[str, float]:
    return {k: float(v) for k, v in info.items()
            if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))}


def run_episode(rig: Rig, policy, *, seed: int | None = None, deterministic: bool = True,
                max_steps: int | None = None, index: int = 0,
                on_step: Callable[[int, dict, float, dict], None] | None = None) -> EpisodeResult:
    """One episode of ``policy`` (a `simreal.agents.Policy`) on ``rig``.

    Stops when the rig ends the episode, after ``max_steps`` (the episode is
    then ended on the rig as ``cut_off``), or when the rig stops (e-stop,
    watchdog: ``end`` says which; the exception is not re-raised).
    ``on_step(t, obs, reward, info)`` sees every step.
    """
    obs, _ = rig.reset(seed=seed)
    state = policy.initial_state(1)
    rewards: list[float] = []
    rows: list[dict[str, float]] = []
    counts = {"non_finite": 0, "clipped": 0, "rate_limited": 0}
    info: dict = {}
    end = "cut_off"
    t = 0
    while max_steps is None or t < max_steps:
        action, state = policy.act(batch_obs(obs), state, deterministic)
        try:
            obs, reward, terminated, truncated, info = rig.step(np.asarray(action)[0])
        except RigStopped as exc:
            end = "estop" if isinstance(exc, EmergencyStopped) else "watchdog"
            info = {"stopped": str(exc)}
            break
        t += 1
        rewards.append(reward)
        rows.append(_scalar_infos(info))
        for flag in counts:
            counts[flag] += bool(info["safety"][flag])
        if on_step is not None:
            on_step(t, obs, reward, info)
        if terminated or truncated:
            end = "terminated" if terminated else "truncated"
            break
    else:
        rig.end_episode("cut_off")
    keys = [k for k in rows[0] if all(k in r for r in rows)] if rows else []
    return EpisodeResult(index=index, seed=rig.episode_seed, steps=t, end=end, rewards=np.asarray(rewards),
                         infos={k: np.asarray([r[k] for r in rows]) for k in keys}, last_info=dict(info),
                         safety=counts)


def run_episodes(rig: Rig, policy, episodes: int, *, seed: int | None = 0, deterministic: bool = True,
                 max_steps: int | None = None, progress: bool = False,
                 on_step: Callable[[int, dict, float, dict], None] | None = None) -> list[EpisodeResult]:
    """``episodes`` episodes, episode i seeded ``seed + i`` (``seed=None``: the rig's own sequence)."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc=f"episodes on {rig.name}", unit="ep", leave=False)
    results = []
    try:
        for i in range(episodes):
            results.append(run_episode(rig, policy, seed=None if seed is None else seed + i,
                                       deterministic=deterministic, max_steps=max_steps, index=i, on_step=on_step))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


class FunctionPolicy:
    """A stateless `simreal.agents.Policy` from ``fn(obs_batch) -> actions (B, ...)``."""

    def __init__(self, fn: Callable[[dict[str, np.ndarray]], np.ndarray], observation_space: gym.Space,
                 action_space: gym.Space):
        self.fn = fn
        self.observation_space = observation_space
        self.action_space = action_space

    def initial_state(self, batch_size: int) -> tuple:
        return ()

    def act(self, obs: dict[str, np.ndarray], state: Any, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        return np.asarray(self.fn(obs)), state

    def reset_state(self, state: Any, done: np.ndarray) -> Any:
        return state


def zero_policy(rig: Rig) -> FunctionPolicy:
    """Always the action 0 of a Box space (its middle when symmetric); the middle bin of a MultiDiscrete one."""
    space = rig.action_space
    if isinstance(space, gym.spaces.MultiDiscrete):
        value = (np.asarray(space.start) + (np.asarray(space.nvec) - 1) // 2).astype(space.dtype)
    else:
        value = np.zeros(space.shape, space.dtype)
    return FunctionPolicy(lambda obs: np.repeat(value[None], len(next(iter(obs.values()))), axis=0),
                          rig.observation_space, space)


def random_policy(rig: Rig, seed: int = 0) -> FunctionPolicy:
    """Uniform random actions over the action space, from its own seeded stream."""
    rng = make_rng(seed, "rig_random_policy")
    space = rig.action_space

    low, high = action_bounds(space)

    def act(obs):
        n = len(next(iter(obs.values())))
        if isinstance(space, gym.spaces.MultiDiscrete):
            return rng.integers(low, high + 1, size=(n, low.size)).reshape(n, *space.shape).astype(space.dtype)
        return rng.uniform(low, high, size=(n, low.size)).reshape(n, *space.shape).astype(space.dtype)

    return FunctionPolicy(act, rig.observation_space, space)


class ExcitationPolicy:
    """A scripted, bounded excitation for system identification (``rig record --policy excite``): on each
    action dimension a multisine, the sum of sines with periods ``periods`` control steps and seeded phases,
    divided by their count so it stays in [-1, 1], scaled to ``amplitude`` x half the action range around its
    middle (a MultiDiscrete space: the nearest bin). Its state is each copy's step in the episode, so every
    episode plays the same sequence from its start. Slow periods move the masses, fast ones the delays and
    damping; the rig's safety layer still applies its own rate limits on top."""

    def __init__(self, rig: Rig, seed: int = 0, amplitude: float = 0.5, periods: tuple[int, ...] = (4, 9, 17, 33, 65)):
        import math

        if not (isinstance(amplitude, (int, float)) and math.isfinite(amplitude) and 0.0 < amplitude <= 1.0):
            raise ValueError(f"excitation amplitude: expected a number in (0, 1], got {amplitude!r}")
        self.observation_space, self.action_space = rig.observation_space, rig.action_space
        low, high = action_bounds(self.action_space)
        self.low, self.high = np.asarray(low, np.float64).ravel(), np.asarray(high, np.float64).ravel()
        self.amplitude, self.periods = float(amplitude), np.asarray(periods, np.float64)
        self.phases = make_rng(seed, "rig_excitation").uniform(0.0, 2.0 * np.pi, (self.low.size, len(periods)))

    def initial_state(self, batch_size: int) -> np.ndarray:
        return np.zeros(batch_size, np.int64)

    def reset_state(self, state: np.ndarray, done: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(done, bool), 0, state)

    def unit(self, steps: np.ndarray) -> np.ndarray:
        """(n, dims) in [-1, 1]: the multisine at each copy's step."""
        angle = 2.0 * np.pi * steps[:, None, None] / self.periods[None, None, :] + self.phases[None]
        return np.sin(angle).sum(-1) / len(self.periods)

    def act(self, obs: dict[str, np.ndarray], state: np.ndarray, deterministic: bool = True):
        n = len(next(iter(obs.values())))
        steps = np.zeros(n, np.int64) if state is None or len(state) != n else np.asarray(state)
        mid, half = (self.low + self.high) / 2.0, (self.high - self.low) / 2.0
        value = np.clip(mid + self.amplitude * half * self.unit(steps), self.low, self.high)
        space = self.action_space
        if isinstance(space, gym.spaces.MultiDiscrete):
            value = np.rint(value)
        return value.reshape(n, *space.shape).astype(space.dtype), steps + 1
