"""Gymnasium registration and the `simreal.make` / `simreal.make_vec` entry points."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

HAND_CUBE_ID = "simreal/HandCube-v0"

if HAND_CUBE_ID not in gym.registry:
    gym.register(HAND_CUBE_ID, entry_point="simreal.envs.hand_cube:HandCubeEnv")


def check_config_env_id(env_id: Any, where: str, hint: str = "pass it on the command line with --env") -> str:
    """``env_id`` as read from a file (a run's config.yaml, a config preset), refused when it would import code.

    Gymnasium's ``module:name`` form imports ``module`` before looking ``name`` up, so a config file
    naming ``os:x`` or ``mypkg.evil:Env-v0`` would run any installed module. From a file only plain
    ids are taken (registered ones, or ones gymnasium refuses as unknown without importing
    anything); an entry point must come from the command line. A one-line `ConfigError` otherwise.
    """
    from simreal.training.config import ConfigError

    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"{where}: expected an env id (a string), got {env_id!r}")
    if ":" in env_id and env_id not in gym.registry:
        module = env_id.split(":", 1)[0]
        raise ConfigError(f"{where}: {env_id!r} is a module:name entry point, which would import module "
                          f"{module!r}; a config may only name registered gymnasium ids, entry points are taken "
                          f"from the command line only ({hint})")
    return env_id


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
