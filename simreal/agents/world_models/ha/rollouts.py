"""Random rollouts: collecting them, storing them in the run directory, and batching them for M.

Each episode is one ``.npz`` file (written atomically; read with
``allow_pickle=False``) under ``RUN_DIR/rollouts/``::

    image     uint8 (T + 1, 64, 64, 3)   every frame, the last one included
    action    float32 (T, action_dim)    in [-1, 1] (the model's action space)
    reward    float32 (T,)
    terminal  bool ()                    the episode ended by termination (not a time limit)

Episode ``i`` is a pure function of the run seed and ``i`` (its env seed and its
action stream are derived from both), so collecting in parallel, in any order,
or across a resume gives the same files.
"""

from __future__ import annotations

import os
import pathlib
from typing import Mapping, Sequence

import numpy as np
import torch

from simreal.agents.actions import ActionSpec

# streams of derived seeds (one per use, so adding one never shifts another)
COLLECT_ENV, COLLECT_ACTIONS, VAE_BATCH, VAE_NOISE, MDN_BATCH, CMA, DREAM, REAL, EVAL = range(9)


def derive_seed(seed: int, stream: int, *index: int) -> int:
    """A 63-bit seed for ``(seed, stream, index...)``, independent of every other combination."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, stream, *(int(i) for i in index)])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def env_seed(seed: int, stream: int, *index: int) -> int:
    """A 31-bit seed (what Gymnasium and dm_control accept) for ``(seed, stream, index...)``."""
    return derive_seed(seed, stream, *index) % (2 ** 31 - 1)


def run_episode(env, spec: ActionSpec, seed: int, act) -> dict[str, np.ndarray]:
    """One episode of a 1-copy VecEnv from ``env.seed(seed)``; ``act(obs) -> model action (1, dim)``."""
    env.seed(seed)
    obs = env.reset()
    images, actions, rewards = [obs["image"][0]], [], []
    while True:
        action = act(obs)
        obs, reward, done, info = env.step(spec.to_env(action))
        actions.append(np.asarray(action, np.float32)[0])
        rewards.append(float(reward[0]))
        if done[0]:
            images.append(info[0]["terminal_observation"]["image"])
            terminal = not info[0].get("TimeLimit.truncated", False)
            break
        images.append(obs["image"][0])
    return {"image": np.stack(images).astype(np.uint8), "action": np.stack(actions).astype(np.float32),
            "reward": np.asarray(rewards, np.float32), "terminal": np.asarray(terminal)}


def random_episode(env, spec: ActionSpec, seed: int, index: int) -> dict[str, np.ndarray]:
    """Episode ``index`` of the random-policy collection (uniform actions each step)."""
    rng = np.random.default_rng(derive_seed(seed, COLLECT_ACTIONS, index))
    return run_episode(env, spec, env_seed(seed, COLLECT_ENV, index), lambda obs: spec.random(1, rng))


class RolloutStore:
    """Episodes as ``episode_{i:06d}.npz`` files in one folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)

    def file(self, index: int) -> pathlib.Path:
        return self.path / f"episode_{index:06d}.npz"

    def write(self, index: int, episode: Mapping[str, np.ndarray]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file(index)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **episode)
        os.replace(tmp, target)

    def read(self, index: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Episode ``index`` (only ``keys`` when given: the frames are most of a file)."""
        with np.load(self.file(index), allow_pickle=False) as data:
            return {k: data[k] for k in (keys or data.files)}

    def read_all(self, count: int, keys: Sequence[str] | None = None) -> list[dict[str, np.ndarray]]:
        return [self.read(i, keys) for i in range(count)]


def sequence_batch(mu: list[np.ndarray], logvar: list[np.ndarray], episodes: list[Mapping[str, np.ndarray]],
                   picks: np.ndarray, starts: np.ndarray, length: int, generator: torch.Generator,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """Padded (B, L) training windows for M: inputs z_t (sampled from the stored mu, logvar), a_t; targets
    z_{t+1}, r_t, done_t (1 on an episode's terminal step); ``mask`` 1 on real steps.

    ``picks`` are episode indices, ``starts`` each window's first step, ``length`` the window length.
    """
    batch = len(picks)
    z_size, action_dim = mu[0].shape[-1], episodes[0]["action"].shape[-1]
    mu_b = np.zeros((batch, length + 1, z_size), np.float32)
    logvar_b = np.zeros((batch, length + 1, z_size), np.float32)
    action = np.zeros((batch, length, action_dim), np.float32)
    reward = np.zeros((batch, length), np.float32)
    done = np.zeros((batch, length), np.float32)
    mask = np.zeros((batch, length), np.float32)
    for row, (i, start) in enumerate(zip(picks, starts)):
        steps = len(episodes[i]["action"])
        n = min(length, steps - start)
        mu_b[row, :n + 1] = mu[i][start:start + n + 1]
        logvar_b[row, :n + 1] = logvar[i][start:start + n + 1]
        action[row, :n] = episodes[i]["action"][start:start + n]
        reward[row, :n] = episodes[i]["reward"][start:start + n]
        mask[row, :n] = 1.0
        if start + n == steps and bool(episodes[i]["terminal"]):
            done[row, n - 1] = 1.0
    mu_t, logvar_t = torch.from_numpy(mu_b), torch.from_numpy(logvar_b)
    z = mu_t + torch.exp(0.5 * logvar_t) * torch.randn(mu_t.shape, generator=generator)
    out = {"z": z[:, :-1], "z_next": z[:, 1:], "action": torch.from_numpy(action), "reward": torch.from_numpy(reward),
           "done": torch.from_numpy(done), "mask": torch.from_numpy(mask)}
    return {k: v.to(device) for k, v in out.items()}
