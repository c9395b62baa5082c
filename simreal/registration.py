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


def bind_to_env(spec, env_id: str):
    """A RandomizationStack of spec on a one-copy simulation of env_id (names and fields checked):
    the hand-cube sim for simreal/HandCube-v0, else the env made by Gymnasium (dm_control ids too)
    under `simreal.randomize.wrappers.wrap`. A bad file or env id is a one-line error."""
    if env_id == HAND_CUBE_ID:
        from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim

        sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
        sim.set_randomization(spec)
        return sim.randomization
    from simreal.randomize.wrappers import wrap

    if env_id.startswith("dm_control/") and env_id not in gym.registry:
        import shimmy  # noqa: F401  (registers the dm_control/ ids)
    try:
        env = gym.make(env_id)  # "module:ID" imports module first, for ids registered elsewhere
    except gym.error.Error as exc:
        raise ValueError(f"--env {env_id}: {exc}") from None
    return wrap(env, spec).stack
