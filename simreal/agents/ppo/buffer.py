"""Rollout storage, GAE, and the segment layout that runs an LSTM over whole sequences.

A rollout is ``T`` steps of ``N`` envs, stored time-major ``(T, N, ...)``.
``starts[t, n]`` marks an observation that begins an episode, ``dones[t, n]``
a step that ended one (terminated, or truncated with the value of the
truncated state already added to the reward).

**Segments.** The update replays the actor's LSTM over each env's sequence.
Instead of a Python loop over time steps that resets the state where an
episode starts (what sb3-contrib's RecurrentPPO falls back to), every env's
column is cut into *segments* at its episode starts; the segments of a
minibatch are laid side by side, padded to the longest, and one ``nn.LSTM``
call runs over all of them. A segment starts from the state stored at the
rollout start (the first segment of an env, when no episode starts there) or
from zeros (every other segment), so the reset is exact. Padding sits after
each segment's end, where a causal LSTM cannot reach back into the valid
steps; it is masked out of the losses.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimates and returns (Schulman et al. 2016).

    ``rewards``, ``values``, ``dones``: (T, N); ``values[t]`` is V(s_t);
    ``dones[t]`` is 1 when the episode ended after step t (no bootstrapping
    across it; a truncated episode's bootstrap value is already in
    ``rewards[t]``); ``last_value`` (N,) is V of the observation after the
    last step. Returns (advantages, returns = advantages + values).
    """
    T = rewards.shape[0]
    not_done = 1.0 - dones.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(T - 1, -1, -1):
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        next_adv = delta + gamma * lam * not_done[t] * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


@dataclasses.dataclass
class Minibatch:
    """Where a minibatch's segments sit in the rollout: ``(L, S)`` indices into the flattened ``T * N`` steps."""

    index: torch.Tensor   # (L, S) long: t * N + n (padding points at a valid step; masked)
    mask: torch.Tensor    # (L, S) float: 1 on real steps
    env: torch.Tensor     # (S,) long: the env column of each segment
    keep: torch.Tensor    # (S,) float: 0 where the segment begins an episode (zero initial state)
    steps: int            # real steps in the minibatch


class SegmentLayout:
    """A rollout's env columns cut at episode starts (see the module docstring)."""

    def __init__(self, starts: np.ndarray):
        starts = np.asarray(starts, dtype=bool)
        self.T, self.N = starts.shape
        cuts = starts.copy()
        cuts[0, :] = True
        env, start = np.nonzero(cuts.T)  # ordered by env, then time
        following = np.append(start[1:], self.T)
        same_env = np.append(env[1:] == env[:-1], False)
        self.seg_env = env
        self.seg_start = start
        self.seg_len = np.where(same_env, following, self.T) - start
        self.seg_fresh = starts[start, env]

    @property
    def n_segments(self) -> int:
        return len(self.seg_env)

    def minibatch(self, envs: np.ndarray, device: torch.device | str = "cpu") -> Minibatch:
        """The segments of env columns ``envs``, padded side by side."""
        sel = np.flatnonzero(np.isin(self.seg_env, envs))
        lengths = self.seg_len[sel]
        L = int(lengths.max())
        offsets = np.arange(L)[:, None]
        valid = offsets < lengths[None, :]
        t = np.minimum(self.seg_start[sel][None, :] + offsets, self.T - 1)
        index = t * self.N + self.seg_env[sel][None, :]
        return Minibatch(
            index=torch.as_tensor(index, dtype=torch.long, device=device),
            mask=torch.as_tensor(valid, dtype=torch.float32, device=device),
            env=torch.as_tensor(self.seg_env[sel], dtype=torch.long, device=device),
            keep=torch.as_tensor(~self.seg_fresh[sel], dtype=torch.float32, device=device),
            steps=int(lengths.sum()),
        )


class RolloutBuffer:
    """One rollout of ``n_steps`` x ``n_envs``: normalized observations, actions, log-probs, values, rewards."""

    def __init__(self, n_steps: int, n_envs: int, actor_size: int, critic_size: int,
                 action_shape: tuple[int, ...], action_dtype: torch.dtype, device: torch.device):
        T, N = int(n_steps), int(n_envs)
        self.n_steps, self.n_envs, self.device = T, N, device
        z = dict(device=device)
        self.actor_obs = torch.zeros(T, N, actor_size, **z)
        self.critic_obs = torch.zeros(T, N, critic_size, **z)
        self.actions = torch.zeros(T, N, *action_shape, dtype=action_dtype, **z)
        self.log_probs = torch.zeros(T, N, **z)
        self.values = torch.zeros(T, N, **z)
        self.rewards = torch.zeros(T, N, **z)
        self.dones = torch.zeros(T, N, **z)
        self.starts = np.zeros((T, N), dtype=bool)
        self.raw_actor = np.zeros((T, N, actor_size), dtype=np.float32)   # for the normalizer statistics
        self.raw_critic = np.zeros((T, N, critic_size), dtype=np.float32)
        self.initial_state: tuple = ((), ())  # (actor, critic) recurrent state before step 0

    def flat(self, tensor: torch.Tensor) -> torch.Tensor:
        """(T, N, ...) -> (T * N, ...), the layout `Minibatch.index` points into."""
        return tensor.reshape(self.n_steps * self.n_envs, *tensor.shape[2:])
