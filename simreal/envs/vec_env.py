"""N hand-cube copies on a thread pool, behind Stable-Baselines3's VecEnv interface.

All copies live in one :class:`~simreal.envs.hand_cube.HandCubeSim`, so a step
is one ``mujoco.batch`` call over every copy (C threads, no processes, no
pickling) plus numpy over (n_envs, ...) arrays. Copy i seeded with ``s + i``
follows exactly the trajectory of a single :class:`HandCubeEnv` seeded with
``s + i``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim, ImageObservations, check_render_args


class HandCubeVecEnv(VecEnv):
    """Vectorized hand-cube env (SB3 ``VecEnv``): auto-reset, ``terminal_observation`` in infos.

    Args:
        n_envs: number of copies.
        nthread: threads stepping them (default: every core).
        render_mode: ``"rgb_array"`` to enable ``get_images``/``render``.
        render_size: (height, width) of each camera view.
        randomization: a YAML path or RandomizationSpec; each copy samples its own values.
        randomization_in_state: also append the sampled values to the privileged ``state``.
        camera_obs: (height, width) to add the key ``cameras``: every camera's image of each copy,
            (n_envs, 3, height, width, 3) uint8, with the copy's visual randomization.
        camera_antialias: multisamples per pixel of those images (default: the scene's).
        camera_zoom: the cameras' magnification for those images (default 1).
        pixels, pixel_cameras, pixels_only: the ``image`` key of every copy, (n_envs, height, width, 3):
            the cameras tiled into one image (`simreal.envs.hand_cube.PixelImage`), and with
            ``pixels_only`` no measured cube pose keys (as `HandCubeEnv`).
        **kwargs: fields of :class:`HandCubeConfig`.
    """

    def __init__(self, n_envs: int, nthread: int | None = None, render_mode: str | None = None,
                 render_size: tuple[int, int] = (240, 320), randomization=None,
                 randomization_in_state: bool = False, camera_obs: tuple[int, int] | None = None,
                 camera_antialias: int | None = None, camera_zoom: float = 1.0,
                 pixels: tuple[int, int] | None = None, pixel_cameras=None, pixels_only: bool = False,
                 **kwargs: Any):
        check_render_args(render_mode, render_size)
        if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be a positive integer; got {n_envs!r}")
        if nthread is None:
            nthread = min(int(n_envs), os.cpu_count() or 1)
        if not isinstance(nthread, int) or nthread < 1:
            raise ValueError(f"nthread must be a positive integer; got {nthread!r}")
        self.config = HandCubeConfig.from_kwargs(**kwargs)
        self.sim = HandCubeSim(n_envs, self.config, nthread=nthread)
        self.sim.set_randomization(randomization, in_state=randomization_in_state)
        self.render_mode = render_mode
        self.render_size = render_size
        self._renderer = None
        self._actions: np.ndarray | None = None
        self._all = np.arange(n_envs)
        self.images = ImageObservations(self.sim, camera_obs, camera_antialias, camera_zoom, pixels, pixel_cameras,
                                        pixels_only)
        self.camera_obs, self.camera_zoom = self.images.camera_obs, self.images.camera_zoom
        self.camera_antialias, self.pixels_only = self.images.antialias, self.images.pixels_only
        obs_space = self.images.space(self.sim.observation_space())
        super().__init__(n_envs, obs_space, self.sim.action_space())

    # ------------------------------------------------------------ VecEnv API
    def reset(self):
        for i, seed in enumerate(self._seeds):
            if seed is not None or self.sim.rngs[i] is None:
                self.sim.seed(i, seed)
        self._reset_seeds()
        self._reset_options()
        self.sim.reset(self._all)
        self.reset_infos = [self._reset_info(i) for i in range(self.num_envs)]
        return self.images.add(self.sim.observe(), self._all)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        reward, terminated, truncated, success, dropped = self.sim.step(self._actions)
        self._actions = None
        done = terminated | truncated
        infos = [self._info(i, success[i], dropped[i]) for i in range(self.num_envs)]
        obs = self.images.add(self.sim.observe(), self._all)
        if done.any():
            ids = np.flatnonzero(done)
            for i in ids:
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            self.sim.reset(ids)  # each copy continues its own RNG stream
            for i in ids:
                infos[i].update(self.sim.randomization_info(i))
            fresh = self.images.add(self.sim.observe(ids), ids)
            for key, f in fresh.items():
                obs[key][ids] = f[ids]
        return obs, reward.astype(np.float32), done, infos

    def _reset_info(self, i: int) -> dict[str, Any]:
        return dict(self._info(i, False, False), **self.sim.randomization_info(i))

    def _info(self, i: int, is_success, dropped) -> dict[str, Any]:
        return {
            "consecutive_successes": int(self.sim.consecutive_successes[i]),
            "is_success": bool(is_success),
            "rotation_distance": float(self.sim.prev_dist[i]),
            "dropped": bool(dropped),
        }

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.images.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        if self._renderer is None:
            self._renderer = self.sim.make_renderer(*self.render_size)
        return [np.concatenate(self._renderer.render(i, show_goal=True), axis=1) for i in range(self.num_envs)]

    # All copies share one config and one sim: attributes are shared, not per copy.
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        target = self if hasattr(self, attr_name) else self.config
        value = getattr(target, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("HandCubeVecEnv: attributes are shared by all copies; set them for all indices")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name == "set_goal":
            return [self.sim.set_goal(i, *method_args, **method_kwargs) for i in self._get_indices(indices)]
        if method_name == "render":
            images = self.get_images()
            return [images[i] for i in self._get_indices(indices)]
        raise AttributeError(f"HandCubeVecEnv: no per-copy method {method_name!r} (have: set_goal, render)")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
