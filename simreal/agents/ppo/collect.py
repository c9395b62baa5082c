"""PPO's collection: one rollout of a VecEnv's copies into a `RolloutBuffer`, in one place.

The single-process trainer runs one `Collector` over every env copy; a Ray rollout worker
(`simreal.agents.ppo.workers`) runs one over its slice of the copies, copy ``offset + i`` of the whole
layout being its local copy ``i`` (seeded ``seed + offset + i``, as in one process). What a step does
is the module docstring of `simreal.agents.ppo.ppo` (collection, truncation bootstrap, non-finite
checks); a rollout ends with V of the observation after its last step, under the weights it was
collected with (the value GAE bootstraps from).

``noise`` (optional, ``(n_steps, n, ...)``) replaces the action head's own draws: the learner of a
run with workers draws every copy's sampling noise from the torch generator in the order one process
would (`draw_noise`), so the workers' rollouts are the single-process rollout, number for number.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from simreal.agents.ppo.buffer import RolloutBuffer
from simreal.agents.ppo.policy import ActorCritic, flatten_obs, reset_state, select_state
from simreal.utils.finite import (NonFiniteError, PhysicsDiverged, all_finite, check_observations, check_rewards,
                                  checkpoint_note)


def scalar_mean(value: Any) -> float | None:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return float(arr.mean()) if arr.size else None


def where_text(update: int, env_steps: int, n_envs: int, t: int | None, steps_per_update: int = 0) -> str:
    """``PPO update U (env step S)`` at rollout step ``t`` (None: the rollout's end), for error messages."""
    steps = env_steps + (steps_per_update if t is None else t * n_envs)
    return f"PPO update {update + 1} (env step {steps})"


def draw_noise(head, n_steps: int, n_envs: int) -> torch.Tensor:
    """The sampling noise a rollout of ``n_envs`` copies draws, step by step in one process's order (the
    generator's stream then continues exactly as after that rollout)."""
    if head.kind == "gaussian":
        return torch.stack([torch.randn(n_envs, head.action_size) for _ in range(n_steps)])
    return torch.stack([torch.empty(n_envs, head.dims, head.bins).exponential_() for _ in range(n_steps)])


def non_finite_observation(venv, keys: list[str], obs: Mapping[str, np.ndarray], where: str, run=None,
                           what: str = "observation", copies: list[int] | None = None, randomization: bool = True,
                           offset: int = 0) -> None:
    """Raise `NonFiniteError` naming the key, env copy (``offset`` + its row) and element of a batch known to hold
    a NaN or inf, with the randomizer values of that copy's episode; ``copies``: the batch holds those only."""
    from simreal.training.envs import episode_randomization

    # as the networks read them (float32: a float64 beyond its range is inf there)
    batch = {k: np.asarray(obs[k], dtype=np.float32) for k in keys}
    local = list(range(len(next(iter(batch.values()))))) if copies is None else list(copies)
    values = (lambda i: episode_randomization(venv, i - offset)) if randomization else None
    check_observations(batch, where, what, values, run, [offset + i for i in local])
    raise NonFiniteError(f"{where}: non-finite {what}{checkpoint_note(run)}")  # not reached


class Collector:
    """The rollout state of some env copies (observations, recurrent states, running episodes) and one rollout.

    ``where(t)`` names rollout step ``t`` (None: its end) in error messages; ``run`` is the run folder they
    point to; ``offset`` is the copies' place in the whole layout (errors name global copy numbers).
    """

    def __init__(self, venv, model: ActorCritic, actor_keys: list[str], critic_keys: list[str], action_spec,
                 gamma: float, buffer: RolloutBuffer, device: torch.device, run=None, offset: int = 0):
        self.venv, self.model, self.action_spec, self.gamma = venv, model, action_spec, float(gamma)
        self.actor_keys, self.critic_keys = list(actor_keys), list(critic_keys)
        self.keys = self.actor_keys + [k for k in self.critic_keys if k not in self.actor_keys]
        self.buffer, self.device, self.run, self.offset = buffer, device, run, int(offset)
        n = buffer.n_envs
        self.obs: dict[str, np.ndarray] = {}
        self.state: tuple = ((), ())
        self.starts = np.ones(n, dtype=bool)
        self.ep_return, self.ep_length = np.zeros(n), np.zeros(n, dtype=np.int64)
        self.rand_values: dict[str, list[tuple[tuple[int, int], float]]] = {}

    # ------------------------------------------------------------------ segments
    def start_segment(self, seed: int) -> None:
        """Re-seed (copy i: ``seed + offset + i``) and reset every copy, zero the recurrent states."""
        n = self.buffer.n_envs
        self.venv.seed(seed + self.offset)
        self.obs = self.venv.reset()
        self.state = self.model.initial_state(n, self.device)
        self.starts = np.ones(n, dtype=bool)
        self.ep_return[:] = 0.0
        self.ep_length[:] = 0
        for i, info in enumerate(getattr(self.venv, "reset_infos", []) or []):
            self.record_randomization(info, (-1, self.offset + i))

    def record_randomization(self, info: Mapping, when: tuple[int, int]) -> None:
        """Keep the scalar means of an episode's randomizer values, keyed by (rollout step, global copy)."""
        for name, value in (info.get("randomization") or {}).items():
            mean = scalar_mean(value)
            if mean is not None:
                self.rand_values.setdefault(name, []).append((when, mean))

    def pop_randomization(self) -> dict[str, list[tuple[tuple[int, int], float]]]:
        out, self.rand_values = self.rand_values, {}
        return out

    # ------------------------------------------------------------------ the rollout
    def collect(self, where: Callable[[int | None], str], noise: torch.Tensor | None = None) -> dict[str, list]:
        """Fill the buffer with one rollout; returns the ended episodes' ``ends`` (rollout step, global copy),
        ``returns``, ``lengths`` and ``successes`` (NaN where the env reports none) and ``last_value`` (n,), V
        after the last step."""
        buf, model, venv, dev, gamma = self.buffer, self.model, self.venv, self.device, self.gamma
        same_keys = self.critic_keys == self.actor_keys
        obs, state, starts = self.obs, self.state, self.starts
        buf.initial_state = state
        returns, lengths, successes, ends = [], [], [], []
        with torch.inference_mode():
            for t in range(buf.n_steps):
                ra = flatten_obs(obs, self.actor_keys)
                rc = ra if same_keys else flatten_obs(obs, self.critic_keys)
                if not (all_finite(ra) and (same_keys or all_finite(rc))):  # one vectorized check per step
                    self.non_finite_observation(obs, where(t))
                buf.raw_actor[t] = ra
                buf.raw_critic[t] = rc
                buf.starts[t] = starts
                keep = torch.from_numpy((~starts).astype(np.float32)).to(dev)
                xa_raw = torch.from_numpy(ra).to(dev)
                xc_raw = xa_raw if same_keys else torch.from_numpy(rc).to(dev)
                step_noise = None if noise is None else noise[t].to(dev)
                action, log_prob, value, state, xa, xc = model.step(xa_raw, xc_raw, state, keep, noise=step_noise)
                buf.actor_obs[t] = xa
                buf.critic_obs[t] = xc
                buf.actions[t] = action
                buf.log_probs[t] = log_prob
                buf.values[t] = value
                try:
                    obs, reward, done, infos = venv.step(self.action_spec.to_env(action.cpu().numpy()))
                except PhysicsDiverged as exc:
                    raise PhysicsDiverged(f"{where(t)}: {exc}{checkpoint_note(self.run)}") from None
                reward = np.asarray(reward, dtype=np.float64)
                if not all_finite(reward):
                    check_rewards(reward, where(t + 1), self.run)
                self.ep_return += reward
                self.ep_length += 1
                if done.any():
                    ids = np.flatnonzero(done)
                    cut = [i for i in ids if infos[i].get("TimeLimit.truncated") and "terminal_observation" in infos[i]]
                    if cut:
                        reward = reward.copy()
                        reward[cut] += gamma * self.terminal_values(infos, cut, state[1], where(t + 1))
                    reset_infos = getattr(venv, "reset_infos", None)
                    for i in ids:
                        ends.append((t, self.offset + int(i)))
                        returns.append(float(self.ep_return[i]))
                        lengths.append(float(self.ep_length[i]))
                        successes.append(float(infos[i]["consecutive_successes"])
                                         if "consecutive_successes" in infos[i] else float("nan"))
                        self.record_randomization(infos[i] if "randomization" in infos[i]
                                                  else (reset_infos[i] if reset_infos else {}), (t, self.offset + i))
                    self.ep_return[ids] = 0.0
                    self.ep_length[ids] = 0
                buf.rewards[t] = torch.from_numpy(reward.astype(np.float32)).to(dev)
                buf.dones[t] = torch.from_numpy(done.astype(np.float32)).to(dev)
                starts = np.asarray(done, dtype=bool)
            if not all_finite(*(obs[k] for k in self.keys)):  # the next rollout's first, bootstrapped here
                self.non_finite_observation(obs, where(buf.n_steps))
            self.obs, self.state, self.starts = obs, state, starts
            critic = model.critic
            xc = critic.normalizer(torch.from_numpy(flatten_obs(obs, self.critic_keys)).to(dev))
            keep = torch.from_numpy((~starts).astype(np.float32)).to(dev)
            last, _ = critic.step(xc, reset_state(state[1], keep))
            last_value = model.value(last)
        return {"ends": ends, "returns": returns, "lengths": lengths, "successes": successes, "last_value": last_value}

    # ------------------------------------------------------------------ non-finite
    def non_finite_observation(self, obs: Mapping[str, np.ndarray], where: str, what: str = "observation",
                               copies: list[int] | None = None, randomization: bool = True) -> None:
        non_finite_observation(self.venv, self.keys, obs, where, self.run, what, copies, randomization, self.offset)

    def terminal_values(self, infos: list, ids: list[int], critic_state: tuple, where: str) -> np.ndarray:
        """V(terminal observation) of copies ``ids``, continuing their critic state by one step."""
        terminal = {k: np.stack([infos[i]["terminal_observation"][k] for i in ids]) for k in self.keys}
        if not all_finite(*terminal.values()):  # (the env has moved on to the next episode's randomization)
            self.non_finite_observation(terminal, where, "terminal observation", list(ids), False)
        critic = self.model.critic
        x = critic.normalizer(torch.from_numpy(flatten_obs(terminal, self.critic_keys)).to(self.device))
        columns = torch.as_tensor(ids, device=self.device)
        state = select_state(critic_state, columns, torch.ones(len(ids), device=self.device))
        value, _ = critic.step(x, state)
        return self.model.value(value).double().cpu().numpy()
