"""Vision policies: the estimator's cube pose in place of the measured one, for any agent.

``VisionPolicy(policy, estimator)`` does it at the policy: any rig whose
observations carry the three camera images (``cameras``) runs a state-trained
policy on the CNN's pose, and the policy keeps the error of each estimate
against the rig's measured pose (``error_summary()``). ``env_kwargs()`` names
what a simulated hand rig needs to give those images (the estimator's size,
antialiasing and zoom).

``VisionObservation(env, estimator)`` (one Gymnasium env) and
``VisionVecEnv(venv, estimator)`` (the hand-cube VecEnv) replace the policy
keys ``object_pos`` and ``object_quat`` by the pose the CNN predicts from the
three camera images of the step, and recompute ``relative_quat`` (goal times
the inverse of the predicted orientation) from it. Everything else (fingertips,
goal, last action, the privileged ``state`` for critics) is untouched, so an
agent trained on the measured pose runs "from vision" unchanged.

The images are the env's ``cameras`` key when it has one of the estimator's
size, antialiasing and zoom (made with ``camera_obs=(H, W)``, ``camera_zoom``),
else the wrapper renders them itself (with the estimator's zoom), with the
env's visual randomization. The ``cameras`` key
is dropped from the observations unless ``keep_images=True``. In the vector
env, terminal observations are estimated too when the env has the ``cameras``
key (their images were taken before the automatic reset); otherwise they keep
the measured pose, which only a critic's bootstrap reads.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnvWrapper

from simreal.envs.hand_cube import CAMERAS_KEY
from simreal.perception.estimator import PoseEstimator
from simreal.utils.rotations import quat_canonical, quat_conj, quat_mul, rotation_angle

POSE_KEYS = ("object_pos", "object_quat", "relative_quat")


def _estimator(estimator) -> PoseEstimator:
    return estimator if isinstance(estimator, PoseEstimator) else PoseEstimator.load(estimator)


def _fits(space: gym.spaces.Dict, estimator: PoseEstimator, antialias, zoom) -> bool:
    box = space.spaces.get(CAMERAS_KEY)
    return (box is not None and tuple(box.shape) == estimator.image_shape
            and antialias == int(estimator.render.get("antialias", antialias))
            and float(zoom or 1.0) == float(estimator.render["zoom"]))


def replace_pose(obs: dict[str, np.ndarray], position: np.ndarray, quat: np.ndarray, rows=None) -> None:
    """Write predicted poses (n, 3), (n, 4) into batched obs (rows, or all), with the relative goal."""
    rows = slice(None) if rows is None else rows
    obs["object_pos"][rows] = position.astype(np.float32)
    obs["object_quat"][rows] = quat_canonical(quat).astype(np.float32)
    goal = obs["goal_quat"][rows].astype(np.float64)
    obs["relative_quat"][rows] = quat_canonical(quat_mul(goal, quat_conj(quat))).astype(np.float32)


def _check_keys(space: gym.spaces.Dict) -> None:
    missing = [k for k in POSE_KEYS + ("goal_quat",) if k not in space.spaces]
    if missing:
        raise ValueError(f"vision wrapper: the env has no {', '.join(missing)} key(s); it needs the hand-cube "
                         "env's policy keys")


class VisionObservation(gym.ObservationWrapper):
    """One hand-cube env whose policy keys carry the estimated cube pose (see the module docstring)."""

    def __init__(self, env: gym.Env, estimator, keep_images: bool = False):
        super().__init__(env)
        self.estimator = _estimator(estimator)
        space = env.observation_space
        _check_keys(space)
        sim = getattr(env.unwrapped, "sim", None)
        self._use_env_images = _fits(space, self.estimator, getattr(env.unwrapped, "camera_antialias", None),
                                     getattr(env.unwrapped, "camera_zoom", 1.0))
        self._renderer = None
        if not self._use_env_images:
            if sim is None:
                raise ValueError("vision wrapper: the env neither has a matching 'cameras' key nor a hand-cube sim "
                                 "to render one")
            from simreal.render.multicam import MultiCameraRenderer

            r = self.estimator.render
            self._renderer = MultiCameraRenderer(sim, int(r["height"]), int(r["width"]), cameras=r["cameras"],
                                                 antialias=int(r["antialias"]), zoom=r["zoom"])
        self.keep_images = keep_images
        spaces = dict(space.spaces)
        if keep_images and CAMERAS_KEY not in spaces:
            spaces[CAMERAS_KEY] = gym.spaces.Box(0, 255, self.estimator.image_shape, np.uint8)
        if not keep_images:
            spaces.pop(CAMERAS_KEY, None)
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, obs: dict) -> dict:
        images = obs[CAMERAS_KEY] if self._use_env_images else self._renderer.render(0)
        position, quat = self.estimator.predict(images[None])
        batched = {k: np.array(obs[k])[None] for k in POSE_KEYS + ("goal_quat",)}
        replace_pose(batched, position, quat)
        out = dict(obs)
        for k in POSE_KEYS:
            out[k] = batched[k][0]
        if self.keep_images:
            out[CAMERAS_KEY] = images
        else:
            out.pop(CAMERAS_KEY, None)
        return out

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()


class VisionVecEnv(VecEnvWrapper):
    """A hand-cube VecEnv whose policy keys carry the estimated cube pose of every copy."""

    def __init__(self, venv, estimator, keep_images: bool = False):
        self.estimator = _estimator(estimator)
        space = venv.observation_space
        _check_keys(space)
        self._use_env_images = _fits(space, self.estimator, getattr(venv, "camera_antialias", None),
                                     getattr(venv, "camera_zoom", 1.0))
        self._renderer = None
        if not self._use_env_images:
            sim = getattr(venv, "sim", None)
            if sim is None:
                raise ValueError("vision wrapper: the VecEnv neither has a matching 'cameras' key nor a hand-cube "
                                 "sim to render one (make it with camera_obs=(H, W))")
            from simreal.render.multicam import MultiCameraRenderer

            r = self.estimator.render
            self._renderer = MultiCameraRenderer(sim, int(r["height"]), int(r["width"]), cameras=r["cameras"],
                                                 antialias=int(r["antialias"]), zoom=r["zoom"])
        self.keep_images = keep_images
        spaces = dict(space.spaces)
        if keep_images:
            spaces[CAMERAS_KEY] = gym.spaces.Box(0, 255, self.estimator.image_shape, np.uint8)
        else:
            spaces.pop(CAMERAS_KEY, None)
        super().__init__(venv, observation_space=gym.spaces.Dict(spaces))

    def _process(self, obs: dict) -> dict:
        if self._use_env_images:
            images = obs[CAMERAS_KEY]
        else:
            images = self._renderer.render_many(range(self.num_envs))
        position, quat = self.estimator.predict(images)
        replace_pose(obs, position, quat)
        if self.keep_images:
            obs[CAMERAS_KEY] = images
        else:
            obs.pop(CAMERAS_KEY, None)
        return obs

    def reset(self):
        return self._process(self.venv.reset())

    def step_wait(self):
        obs, reward, done, infos = self.venv.step_wait()
        for info in infos:
            terminal = info.get("terminal_observation")
            if terminal is not None:
                if self._use_env_images:
                    batched = {k: np.asarray(v)[None].copy() for k, v in terminal.items()}
                    info["terminal_observation"] = {k: v[0] for k, v in self._process(batched).items()}
                elif not self.keep_images:
                    terminal.pop(CAMERAS_KEY, None)
        return self._process(obs), reward, done, infos

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.venv.close()


def camera_kwargs(estimator) -> dict:
    """Hand-cube env (and simulated rig) arguments whose ``cameras`` key fits ``estimator``:
    its image size, antialiasing and zoom."""
    r = _estimator(estimator).render
    return {"camera_obs": (int(r["height"]), int(r["width"])), "camera_zoom": float(r["zoom"]),
            "camera_antialias": int(r["antialias"])}


class VisionPolicy:
    """A policy trained on the measured cube pose, acting on the pose the CNN estimates from the
    observation's ``cameras`` images (see the module docstring); a `simreal.agents.Policy`."""

    def __init__(self, policy, estimator):
        self.policy = policy
        self.estimator = _estimator(estimator)
        _check_keys(policy.observation_space)
        self.action_space = policy.action_space
        self.observation_space = gym.spaces.Dict(dict(
            policy.observation_space.spaces, **{CAMERAS_KEY: gym.spaces.Box(0, 255, self.estimator.image_shape,
                                                                             np.uint8)}))
        self._position_errors: list[np.ndarray] = []
        self._angle_errors: list[np.ndarray] = []

    def env_kwargs(self) -> dict:
        """Hand-cube env arguments that make its ``cameras`` key match the estimator."""
        return camera_kwargs(self.estimator)

    def initial_state(self, batch_size: int):
        return self.policy.initial_state(batch_size)

    def reset_state(self, state, done: np.ndarray):
        return self.policy.reset_state(state, done)

    def act(self, obs: dict[str, np.ndarray], state, deterministic: bool = True):
        images = obs.get(CAMERAS_KEY)
        if images is None:
            raise ValueError("vision policy: the observation has no 'cameras' key; open the rig with the "
                             f"estimator's cameras ({self.env_kwargs()})")
        position, quat = self.estimator.predict(np.asarray(images, dtype=np.uint8))
        out = {k: np.array(v, copy=True) for k, v in obs.items() if k != CAMERAS_KEY}
        self._position_errors.append(np.linalg.norm(position - out["object_pos"], axis=-1))
        self._angle_errors.append(rotation_angle(quat, out["object_quat"].astype(np.float64)))
        replace_pose(out, position, quat)
        return self.policy.act(out, state, deterministic)

    def reset_errors(self) -> None:
        """Forget the errors kept so far (e.g. between the settings an evaluation runs)."""
        self._position_errors.clear()
        self._angle_errors.clear()

    def error_summary(self) -> dict | None:
        """Median and mean error of the estimates so far against the measured pose (mm, deg)."""
        if not self._position_errors:
            return None
        mm = np.concatenate(self._position_errors) * 1000.0
        deg = np.rad2deg(np.concatenate(self._angle_errors))
        return {"steps": int(mm.size), "position_mm_median": float(np.median(mm)), "position_mm_mean": float(mm.mean()),
                "angle_deg_median": float(np.median(deg)), "angle_deg_mean": float(deg.mean())}
