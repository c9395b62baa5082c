"""Rollout storage, GAE, and the segment layout that runs an LSTM over whole sequences.

A rollout is ``T`` steps of ``N`` envs, stored time-major ``(T, N, ...)``.
``starts[t, n]`` marks an observation that begins an episode, ``dones[t, n]``
a step that ended one (terminated, or truncated with the value of the
truncated state already added to the reward).

**Segments.** The update replays the actor's LSTM over each env's sequence.
Instead of a Python loop over time steps that resets the state where an
episode starts (what sb3-contrib's RecurrentPPO falls back to), every env's
column is cut into *segments* at its episode starts. A segment starts from the
state stored at the rollout start (the first segment of an env, when no
episode starts there) or from zeros (every other segment), so the reset is
exact.

**Blocks.** The segments of a minibatch are sorted by length and grouped into
*blocks*; each block's segments are laid side by side, padded to its longest,
and one ``nn.LSTM`` call runs over them. Padding sits after each segment's
end, where a causal LSTM cannot reach back into the valid steps, and only the
real steps are gathered from a block's output. One block for everything wastes
most of its work when episodes are short (a 90-step segment beside twenty
10-step ones), many blocks pay a fixed cost per call; the grouping minimizes
`call_cost` over the sorted lengths (exactly, by dynamic programming). With no
episode start in a minibatch, its segments are all ``T`` long and form a
single block.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from simreal.agents.ppo.policy import select_state


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


# Cost of one LSTM call (forward and backward) over S segments padded to L steps, in units of
# one segment-step: CALL_OVERHEAD + L * (STEP_OVERHEAD + S). Measured on one CPU thread with a
# 64-input, 128-unit LSTM (2026-11-21): about 250 us per call plus 1 us per time step plus 3.1 us
# per segment-step. Other sizes move the balance (a bigger LSTM makes the fixed costs relatively
# smaller); the grouping only decides how fast the replay runs, never what it computes.
CALL_OVERHEAD = 80.0
STEP_OVERHEAD = 0.3


def call_cost(segments: int, length: int) -> float:
    return CALL_OVERHEAD + length * (STEP_OVERHEAD + segments)


def group_sorted_lengths(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Split lengths sorted in descending order into runs ``[begin, end)`` of least total `call_cost`.

    A run's padded length is its first (longest) length.
    """
    S = len(lengths)
    best = np.zeros(S + 1)
    cut = np.zeros(S + 1, dtype=int)
    first = lengths.astype(float)
    for j in range(1, S + 1):
        i = np.arange(j)
        cost = best[:j] + CALL_OVERHEAD + first[:j] * (STEP_OVERHEAD + (j - i))
        k = int(np.argmin(cost))
        best[j], cut[j] = cost[k], k
    runs, j = [], S
    while j > 0:
        runs.append((int(cut[j]), j))
        j = int(cut[j])
    return runs[::-1]


@dataclasses.dataclass
class Block:
    """Segments laid side by side for one LSTM call."""

    index: torch.Tensor   # (L, S) long: t * N + n (padding points at a valid step of its segment)
    env: torch.Tensor     # (S,) long: the env column of each segment
    keep: torch.Tensor    # (S,) float: 0 where the segment begins an episode (zero initial state)
    valid: torch.Tensor   # (n,) long: the real steps' positions in the block flattened to (L * S)


@dataclasses.dataclass
class Minibatch:
    """A minibatch's blocks, and the rollout steps their gathered outputs stand for."""

    blocks: list[Block]
    index: torch.Tensor   # (steps,) long: t * N + n of every real step, in the order `gather` returns

    @property
    def steps(self) -> int:
        return self.index.numel()

    def gather(self, run, inputs: torch.Tensor, state0: tuple) -> torch.Tensor:
        """``run(x, state)`` (a network over ``(L, S, ...)`` returning ``(output, state)``) over every block:
        the outputs at the real steps, ``(steps, ...)``, in the order of `index`.

        ``inputs`` are flattened rollout tensors ``(T * N, ...)``; ``state0`` the state before step 0.
        """
        outs = []
        for b in self.blocks:
            y, _ = run(inputs[b.index], select_state(state0, b.env, b.keep))
            outs.append(y.flatten(0, 1)[b.valid])
        return outs[0] if len(outs) == 1 else torch.cat(outs)


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
        self._of_env = np.split(np.arange(len(env)), np.flatnonzero(np.diff(env)) + 1)

    @property
    def n_segments(self) -> int:
        return len(self.seg_env)

    def minibatch(self, envs: np.ndarray, device: torch.device | str = "cpu") -> Minibatch:
        """The segments of env columns ``envs``, grouped into blocks (longest first)."""
        sel = np.concatenate([self._of_env[int(n)] for n in envs])
        sel = sel[np.argsort(-self.seg_len[sel], kind="stable")]
        lengths = self.seg_len[sel]
        blocks, index = [], []
        for begin, end in group_sorted_lengths(lengths):
            seg, seg_len = sel[begin:end], lengths[None, begin:end]
            offsets = np.arange(int(seg_len[0, 0]))[:, None]
            valid = (offsets < seg_len).ravel()
            t = self.seg_start[seg][None, :] + np.minimum(offsets, seg_len - 1)
            block_index = t * self.N + self.seg_env[seg][None, :]
            index.append(block_index.ravel()[valid])
            blocks.append(Block(
                index=torch.as_tensor(block_index, dtype=torch.long, device=device),
                env=torch.as_tensor(self.seg_env[seg], dtype=torch.long, device=device),
                keep=torch.as_tensor(~self.seg_fresh[seg], dtype=torch.float32, device=device),
                valid=torch.as_tensor(np.flatnonzero(valid), dtype=torch.long, device=device),
            ))
        return Minibatch(blocks=blocks, index=torch.as_tensor(np.concatenate(index), dtype=torch.long, device=device))


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
