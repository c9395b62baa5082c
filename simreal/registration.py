"""Gymnasium registration, the registry of simreal's native envs, and the `simreal.make` /
`simreal.make_vec` / `bind_to_env` entry points.

Two kinds of env run under simreal's randomizers:

* **native** envs, which simreal simulates itself, every copy in one batched `simreal.envs.sim.Sim`
  (the hand cube): each has a `NativeEnv` entry here naming, by import path, its vector env,
  the one-copy sim that binds randomization files, its rig backend and its calibration replay;
* **any other** Gymnasium or dm_control MuJoCo env, through the one adapter
  (`simreal.randomize.wrappers.wrap`, `simreal.envs.sim.SingleModelSim`).

Code that builds envs asks `native_env(env_id)` instead of comparing ids, so a new batched env is
one `register_native` call (plus its modules).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import gymnasium as gym

HAND_CUBE_ID = "simreal/HandCube-v0"


@dataclasses.dataclass(frozen=True)
class NativeEnv:
    """Entry points ("module:attribute", imported when first used) of an env simreal simulates itself.

    vec_env: ``(n_envs, nthread=None, **env kwargs) -> SB3 VecEnv`` (``randomization=`` among the kwargs).
    binding_sim: ``(spec) -> RandomizationStack``: the spec bound to a one-copy sim (names, fields checked).
    rig: the `simreal.rigs.sim` backend class that maps actions to hardware commands; None: no rigs.
    replay: the `simreal.calibration.replay.ReplaySim` class; None: no calibration.
    action_repeat: whether the env takes an ``action_repeat`` option (else its control period is its own).
    """

    env_id: str
    vec_env: str
    binding_sim: str
    rig: str | None = None
    replay: str | None = None
    action_repeat: bool = False

    def load(self, field: str):
        """The object an entry point names; a missing one is a one-line ValueError."""
        target = getattr(self, field)
        if target is None:
            raise ValueError(f"{self.env_id}: has no {field.replace('_', ' ')} (registration.NativeEnv.{field})")
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


NATIVE: dict[str, NativeEnv] = {}


def register_native(native: NativeEnv, entry_point: str) -> None:
    """Register a native env with Gymnasium (one copy: ``entry_point``) and with simreal (``native``)."""
    if native.env_id not in gym.registry:
        gym.register(native.env_id, entry_point=entry_point)
    NATIVE[native.env_id] = native


def native_env(env_id: str) -> NativeEnv | None:
    """The native-env entry of env_id, or None for an env that runs through the Gymnasium adapter."""
    return NATIVE.get(env_id)


def refuse_action_repeat(env_id: str, action_repeat: int) -> None:
    """A one-line ValueError when a native env that has no action_repeat option is given one."""
    native = native_env(env_id)
    if native is not None and not native.action_repeat and action_repeat != 1:
        raise ValueError(f"{env_id}: action_repeat is not an option of this env (its control period is a config "
                         "field: control_dt)")


register_native(NativeEnv(HAND_CUBE_ID, vec_env="simreal.envs.vec_env:HandCubeVecEnv",
                          binding_sim="simreal.envs.hand_cube:bind_spec",
                          rig="simreal.rigs.hand:HandRigBackend", replay="simreal.calibration.replay:HandReplay"),
                entry_point="simreal.envs.hand_cube:HandCubeEnv")


def make(env_id: str = HAND_CUBE_ID, **kwargs: Any) -> gym.Env:
    """Make one environment (`gymnasium.make`, with simreal's envs registered)."""
    return gym.make(env_id, **kwargs)


def make_vec(env_id: str = HAND_CUBE_ID, n_envs: int = 8, seed: int | None = None, nthread: int | None = None,
             **kwargs: Any):
    """A Stable-Baselines3 VecEnv of n_envs copies.

    A native env (the hand cube) steps all copies in one ``mujoco.batch`` thread pool
    (``nthread``: default all cores); any other Gymnasium id falls back to SB3's DummyVecEnv.
    """
    native = native_env(env_id)
    if native is not None:
        venv = native.load("vec_env")(n_envs, nthread=nthread, **kwargs)
    else:
        from stable_baselines3.common.env_util import make_vec_env

        venv = make_vec_env(env_id, n_envs=n_envs, env_kwargs=kwargs)
    if seed is not None:
        venv.seed(seed)
    return venv


def bind_to_env(spec, env_id: str):
    """A RandomizationStack of spec on a one-copy simulation of env_id (names and fields checked):
    the native sim for a native env, else the env made by Gymnasium (dm_control ids too) under
    `simreal.randomize.wrappers.wrap`. A bad file or env id is a one-line error."""
    native = native_env(env_id)
    if native is not None:
        return native.load("binding_sim")(spec)
    from simreal.randomize.wrappers import wrap

    if env_id.startswith("dm_control/") and env_id not in gym.registry:
        import shimmy  # noqa: F401  (registers the dm_control/ ids)
    try:
        env = gym.make(env_id)  # "module:ID" imports module first, for ids registered elsewhere
    except gym.error.Error as exc:
        raise ValueError(f"--env {env_id}: {exc}") from None
    return wrap(env, spec).stack


def recorded_env(env_id: str, env_kwargs: dict | None = None, float32: bool = False) -> gym.Env:
    """The entry point of the env specs simreal writes into its recordings (``simreal.registration:recorded_env``):
    the registered env ``env_id`` made with ``env_kwargs``, so Minari's ``recover_environment`` works for envs whose
    own registration is not serializable (shimmy's dm_control entry points are Python callables). ``float32``
    casts float observations to float32, as rigs record them."""
    import numpy as np

    env = gym.make(env_id, **dict(env_kwargs or {}))
    if not float32:
        return env

    def cast(space: gym.Space) -> gym.Space:
        if isinstance(space, gym.spaces.Dict):
            return gym.spaces.Dict({k: cast(v) for k, v in space.spaces.items()})
        if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
            return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32)
        return space

    def to32(obs):
        if isinstance(obs, dict):
            return {k: to32(v) for k, v in obs.items()}
        arr = np.asarray(obs)
        return arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else obs

    return gym.wrappers.TransformObservation(env, to32, cast(env.observation_space))
