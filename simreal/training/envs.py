"""Training environments: one factory for our hand-cube env, Gymnasium MuJoCo and dm_control.

``make_training_env("dm_control/cartpole-swingup-v0", n_envs=8, seed=0,
randomization="dmc_cartpole")`` returns a Stable-Baselines3 ``VecEnv`` whose
observations are always a ``Dict`` of float32 vectors (plus ``image``, uint8
HxWx3, when ``pixels`` is set: for the hand-cube env its three cameras tiled
into one image, see `simreal.envs.hand_cube.PixelImage`). A native env
(`simreal.registration.native_env`: the hand cube) steps all copies in one batched sim; other ids
are Gymnasium envs (dm_control through ``shimmy``) wrapped in order:

    gym.make -> RandomizedEnv (YAML) -> ActionRepeat -> PixelObservation -> DictFloat32

so the randomization acts on every physics step and pixels show the randomized
scene. Copy i is seeded ``seed + i``.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np

from simreal.registration import make_vec, native_env, refuse_action_repeat
from simreal.utils.keys import IMAGE_KEY, STATE_KEY

PRIVILEGED_KEY = STATE_KEY  # the hand-cube env's privileged simulator state (for asymmetric critics)


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times, summing rewards (Dreamer's dm_control setting is 2)."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        self.repeat = int(repeat)

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class PixelObservation(gym.ObservationWrapper):
    """Add the env's rgb render as ``image`` (HxWx3 uint8); ``pixels_only`` drops the other keys."""

    def __init__(self, env: gym.Env, size: tuple[int, int], pixels_only: bool = False):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError("pixel observations need the env made with render_mode='rgb_array'")
        self.pixels_only = pixels_only
        image = gym.spaces.Box(0, 255, (int(size[0]), int(size[1]), 3), np.uint8)
        inner = env.observation_space
        spaces = {} if pixels_only else (dict(inner.spaces) if isinstance(inner, gym.spaces.Dict)
                                         else {"observation": inner})
        spaces["image"] = image
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, obs):
        out = {} if self.pixels_only else (dict(obs) if isinstance(obs, dict) else {"observation": obs})
        out["image"] = np.ascontiguousarray(self.env.render(), dtype=np.uint8)
        return out


class DictFloat32(gym.ObservationWrapper):
    """Observations as a Dict: a Box becomes ``{"observation": ...}``, scalars become shape (1,),
    floating vectors float32; ``image`` keys stay uint8."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        inner = env.observation_space
        spaces = dict(inner.spaces) if isinstance(inner, gym.spaces.Dict) else {"observation": inner}
        out = {}
        for key, space in spaces.items():
            if not isinstance(space, gym.spaces.Box):
                raise TypeError(f"observation key {key!r}: only Box spaces are supported, got {space}")
            if space.dtype == np.uint8:
                out[key] = space
            else:
                shape = space.shape or (1,)
                low = np.broadcast_to(space.low, shape).astype(np.float32)
                high = np.broadcast_to(space.high, shape).astype(np.float32)
                out[key] = gym.spaces.Box(low, high, shape, np.float32)
        self.observation_space = gym.spaces.Dict(out)
        self._box = not isinstance(inner, gym.spaces.Dict)

    def observation(self, obs):
        obs = {"observation": obs} if self._box else obs
        return {k: (np.asarray(v) if self.observation_space[k].dtype == np.uint8
                    else np.asarray(v, dtype=np.float32).reshape(self.observation_space[k].shape))
                for k, v in obs.items()}


def gym_make(env_id: str, pixels: tuple[int, int] | None, env_kwargs: dict) -> gym.Env:
    """gymnasium.make with the dm_control ids registered and render settings for pixels; one-line errors."""
    kwargs = dict(env_kwargs)
    if env_id.startswith("dm_control/"):
        import shimmy  # noqa: F401  (registers the dm_control/* ids)

        if pixels is not None:
            kwargs.setdefault("render_mode", "rgb_array")
            kwargs.setdefault("render_kwargs", {"height": pixels[0], "width": pixels[1], "camera_id": 0})
    elif pixels is not None:
        kwargs.setdefault("render_mode", "rgb_array")
        kwargs.setdefault("height", pixels[0])
        kwargs.setdefault("width", pixels[1])
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f"env {env_id!r}: {exc}") from None
    except (ImportError, AttributeError) as exc:  # an entry point (module:Class) that does not import
        raise ValueError(f"env {env_id!r}: cannot load it ({type(exc).__name__}: {exc})") from None


def single_env_factory(env_id: str, seed: int | None = None, randomization=None, action_repeat: int = 1,
                       pixels: tuple[int, int] | None = None, pixels_only: bool = False,
                       env_kwargs: dict | None = None) -> Callable[[], gym.Env]:
    """A thunk building one wrapped Gymnasium env (see the module docstring for the order)."""

    def thunk() -> gym.Env:
        env = gym_make(env_id, pixels, env_kwargs or {})
        if randomization is not None:
            from simreal.randomize.wrappers import wrap

            env = wrap(env, randomization, seed=seed)
        if action_repeat > 1:
            env = ActionRepeat(env, action_repeat)
        if pixels is not None:
            env = PixelObservation(env, pixels, pixels_only=pixels_only)
        return DictFloat32(env)

    return thunk


def make_training_env(env_id: str, n_envs: int, seed: int | None = 0, randomization: Any = None,
                      randomization_in_state: bool = False, action_repeat: int = 1,
                      pixels: tuple[int, int] | None = None, pixels_only: bool = False,
                      env_kwargs: dict | None = None, nthread: int | None = None):
    """An SB3 ``VecEnv`` of ``n_envs`` copies with Dict observations (see the module docstring).

    ``randomization`` is a YAML path, a shipped name (``"dactyl"``) or a
    RandomizationSpec; ``None`` or ``"none"`` means nominal physics.
    ``env_kwargs`` go to the env constructor (``HandCubeConfig`` fields for the hand).
    """
    if isinstance(randomization, (str, pathlib.Path)) and str(randomization) in ("", "none"):
        randomization = None
    if native_env(env_id) is not None:
        refuse_action_repeat(env_id, action_repeat)
        extra = {"pixels": pixels, "pixels_only": pixels_only} if pixels is not None else {}
        venv = make_vec(env_id, n_envs, nthread=nthread, randomization=randomization,
                        randomization_in_state=randomization_in_state, **extra, **(env_kwargs or {}))
    else:
        from stable_baselines3.common.vec_env import DummyVecEnv

        thunks = [single_env_factory(env_id, None if seed is None else seed + i, randomization, action_repeat,
                                     pixels, pixels_only, env_kwargs) for i in range(n_envs)]
        venv = DummyVecEnv(thunks)
    if seed is not None:
        venv.seed(seed)
    return venv


def env_from_config(section: Mapping[str, Any], n_envs: int, seed: int | None, *,
                    pixels_only_default: bool = False):
    """`make_training_env` from a config's ``env`` section (``id``, ``randomization``,
    ``randomization_in_state``, ``action_repeat``, ``pixels``, ``pixels_only``, ``kwargs``,
    ``nthread``), each key checked where it enters: a bad value is a one-line ValueError naming it."""
    pixels = section.get("pixels")
    if pixels is not None:
        if not (isinstance(pixels, (list, tuple)) and len(pixels) == 2
                and all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in pixels)):
            raise ValueError(f"env.pixels: expected [height, width] (positive integers) or null, got {pixels!r}")
        pixels = (int(pixels[0]), int(pixels[1]))
    kwargs = section.get("kwargs") or None
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ValueError(f"env.kwargs: expected a mapping of env constructor arguments, got {kwargs!r}")
    return make_training_env(section["id"], n_envs, seed=seed, randomization=section.get("randomization"),
                             randomization_in_state=bool(section.get("randomization_in_state", False)),
                             action_repeat=int(section.get("action_repeat", 1)), pixels=pixels,
                             pixels_only=bool(section.get("pixels_only", pixels_only_default)),
                             env_kwargs=dict(kwargs) if kwargs else None, nthread=section.get("nthread"))


def episode_randomization(venv, i: int) -> dict[str, Any]:
    """The randomizer values copy ``i`` of a `make_training_env` VecEnv sampled for its current episode
    ({YAML name: float or list}; empty without randomization). For error messages: what was the env
    running on when something went wrong."""
    sim = getattr(venv, "sim", None)
    if sim is not None:  # the hand-cube env: one stack over every copy
        stack = getattr(sim, "randomization", None)
        return stack.info(i) if stack is not None else {}
    envs = getattr(venv, "envs", None)
    if not envs or not 0 <= i < len(envs):
        return {}
    from simreal.randomize.wrappers import RandomizedEnv

    layer = envs[i]
    while layer is not None:
        if isinstance(layer, RandomizedEnv):
            return layer.stack.info(0)
        layer = getattr(layer, "env", None)
    return {}


def split_keys(space: gym.spaces.Dict, actor_keys: list[str] | None = None,
               critic_keys: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Observation keys for an actor (what the robot measures) and a critic (privileged).

    Defaults: the actor reads every key except ``state`` and ``image``; the
    critic reads ``state`` when the env has it, else the actor's keys.
    """
    keys = list(space.spaces)
    for name, given in (("actor_keys", actor_keys), ("critic_keys", critic_keys)):
        for key in given or []:
            if key not in space.spaces:
                raise ValueError(f"{name}: observation key {key!r} not in the env's keys {keys}")
    actor = list(actor_keys) if actor_keys else [k for k in keys if k not in (PRIVILEGED_KEY, IMAGE_KEY)]
    critic = list(critic_keys) if critic_keys else ([PRIVILEGED_KEY] if PRIVILEGED_KEY in space.spaces else actor)
    if not actor:
        raise ValueError(f"no actor observation keys left among {keys}; name them with actor_keys")
    return actor, critic


def policy_returns(policy, section: Mapping[str, Any], episodes: int, seed: int,
                   on_end: Callable[[int, dict], None] | None = None) -> np.ndarray:
    """The returns of ``episodes`` episodes of a `simreal.agents.Policy` on the env of a config's ``env``
    section, one env copy each (copy i seeded ``seed + i``), each run to its own end; ``on_end(i, info)``
    sees the step info that ended copy i's episode (its ``terminal_observation`` included)."""
    venv = env_from_config(section, episodes, seed)
    try:
        obs, state = venv.reset(), policy.initial_state(episodes)
        total, ended = np.zeros(episodes), np.zeros(episodes, bool)
        while not ended.all():
            action, state = policy.act(obs, state)
            obs, reward, done, infos = venv.step(action)
            total += np.where(ended, 0.0, reward)
            for i in np.flatnonzero(done & ~ended):
                if on_end is not None:
                    on_end(int(i), infos[i])
            ended |= done
        return total
    finally:
        venv.close()
