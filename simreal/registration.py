"""Gymnasium registration and the `simreal.make` / `simreal.make_vec` entry points."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

HAND_CUBE_ID = "simreal/HandCube-v0"

if HAND_CUBE_ID not in gym.registry:
    gym.register(HAND_CUBE_ID, entry_point="simreal.envs.hand_cube:HandCubeEnv")


def make(env_id: str = HAND_CUBE_ID, **kwargs: Any) -> gym.Env:
    """Make one environment (`gymnasium.make`, with simreal's envs registered)."""
    return gym.make(env_id, **kwargs)


def make_vec(env_id: str = HAND_CUBE_ID, n_envs: int = 8, seed: int | None = None, nthread: int | None = None,
             **kwargs: Any):
    """A Stable-Baselines3 VecEnv of n_envs copies.

    The hand-cube task steps all copies in one ``mujoco.batch`` thread pool
    (``nthread``: default all cores); any other Gymnasium id falls back to
    SB3's DummyVecEnv.
    """
    if env_id == HAND_CUBE_ID:
        from simreal.envs.vec_env import HandCubeVecEnv

        venv = HandCubeVecEnv(n_envs, nthread=nthread, **kwargs)
    else:
        from stable_baselines3.common.env_util import make_vec_env

        venv = make_vec_env(env_id, n_envs=n_envs, env_kwargs=kwargs)
    if seed is not None:
        venv.seed(seed)
    return venv
