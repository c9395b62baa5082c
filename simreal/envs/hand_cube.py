"""The Dactyl in-hand cube reorientation task on MuJoCo.

Three layers, as in dm_control:

* :class:`HandCubeConfig` -- the task's variants and constants, validated.
* :class:`HandCubeSim` -- N copies of the scene stepped by ``mujoco.batch``
  (one thread pool, per-copy model parameters) plus the task logic (goals,
  reward, termination), written once over arrays of N rows.
* :class:`HandCubeEnv` -- the Gymnasium env, a single-copy view of the sim.
  The vectorized env (:mod:`simreal.envs.vec_env`) is the N-copy view.

Task (OpenAI et al., "Learning Dexterous In-Hand Manipulation", 2018):
reward ``d_t - d_{t+1}`` with d the rotation angle between cube and goal,
+5 when ``d < 0.4`` rad (then a new goal), -20 when the cube drops. An episode
ends on a drop or after 50 consecutive successes, and is truncated after 8 s
without reaching a goal. Control: 80 ms per step, 20 relative joint-position
targets in [-1, 1], or Dactyl's 11 bins per actuator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np

from simreal.envs import scene as scene_mod
from simreal.envs.scene import SceneSpec
from simreal.utils.rotations import (
    CUBE_SYMMETRIES,
    quat_canonical,
    quat_conj,
    quat_from_axis_angle,
    quat_mul,
    quat_normalize,
    quat_rotate,
    random_quat,
    rotation_angle,
)
from simreal.utils.seeding import make_rng
from simreal.utils.keys import STATE_KEY

GoalMode = Literal["full", "vertical"]
ActionMode = Literal["continuous", "discrete"]
ControlMode = Literal["relative", "absolute"]

POLICY_KEYS = ("fingertip_pos", "object_pos", "object_quat", "goal_quat", "relative_quat", "last_action")
CAMERAS_KEY = "cameras"  # with camera_obs=(h, w): the three camera images, (3, h, w, 3) uint8


@dataclass(frozen=True)
class HandCubeConfig:
    """Variants and constants of the hand-cube task (all constructor flags of the env).

    Attributes:
        goal: ``"full"``: goals uniform over all 3-D orientations; ``"vertical"``:
            goals are rotations of the cube about the world's vertical axis only.
        action: ``"continuous"`` (Box in [-1, 1]^20) or ``"discrete"`` (Dactyl's
            ``n_bins`` bins per actuator, MultiDiscrete).
        control: ``"relative"``: targets are the current joint positions plus
            action x half the control range (Dactyl); ``"absolute"``: the action
            maps linearly onto the control range.
        control_dt: seconds per env step (80 ms in Dactyl), a multiple of the
            model timestep.
    """

    goal: GoalMode = "full"
    action: ActionMode = "continuous"
    n_bins: int = 11
    control: ControlMode = "relative"
    control_dt: float = 0.08
    success_threshold: float = 0.4
    success_bonus: float = 5.0
    drop_penalty: float = -20.0
    drop_height: float = 0.1
    max_consecutive_successes: int = 50
    goal_timeout: float = 8.0
    settle_time: float = 0.2
    scene: SceneSpec = field(default_factory=SceneSpec)

    def __post_init__(self):
        def choice(name, allowed):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"HandCube: {name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")

        def number(name, low, high, integer=False):
            value = getattr(self, name)
            kind = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
                what = "an integer" if integer else "a number"
                raise ValueError(f"HandCube: {name} must be {what} in [{low}, {high}]; got {value!r}")

        choice("goal", ("full", "vertical"))
        choice("action", ("continuous", "discrete"))
        choice("control", ("relative", "absolute"))
        number("n_bins", 2, 1001, integer=True)
        number("control_dt", 1e-3, 1.0)
        number("success_threshold", 1e-3, np.pi)
        number("success_bonus", -1e6, 1e6)
        number("drop_penalty", -1e6, 1e6)
        number("drop_height", -10.0, 10.0)
        number("max_consecutive_successes", 1, 10**9, integer=True)
        number("goal_timeout", 1e-3, 1e6)
        number("settle_time", 0.0, 10.0)
        if not isinstance(self.scene, SceneSpec):
            raise ValueError(f"HandCube: scene must be a simreal.envs.scene.SceneSpec; got {type(self.scene).__name__}")
        ratio = self.control_dt / self.scene.timestep
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(
                f"HandCube: control_dt ({self.control_dt}) must be a whole multiple of the model timestep "
                f"({self.scene.timestep})"
            )

    @property
    def substeps(self) -> int:
        return int(round(self.control_dt / self.scene.timestep))

    @property
    def timeout_steps(self) -> int:
        return int(round(self.goal_timeout / self.control_dt))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "HandCubeConfig":
        """Build from keyword flags, naming any unknown one in the error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"HandCube: unknown argument(s) {unknown}; known: {sorted(known)}")
        return cls(**kwargs)


def check_render_args(render_mode: str | None, render_size: tuple[int, int]) -> None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"HandCube: render_mode must be None or 'rgb_array'; got {render_mode!r}")
    if len(render_size) != 2 or min(render_size) < 8:
        raise ValueError(f"HandCube: render_size must be (height, width) >= 8 px; got {render_size!r}")


def _f32_box(size: int, low: float = -np.inf, high: float = np.inf) -> gym.spaces.Box:
    return gym.spaces.Box(low, high, shape=(size,), dtype=np.float32)


class HandCubeSim:
    """N copies of the hand-cube scene and task, stepped together.

    Arrays are (n_envs, ...). Each copy has its own model parameters (via
    ``mujoco.batch`` expanded fields) and its own task RNG stream.
    """

    def __init__(self, n_envs: int, config: HandCubeConfig, nthread: int = 1,
                 model: mujoco.MjModel | None = None):
        if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be a positive integer; got {n_envs!r}")
        self.n_envs = int(n_envs)
        self.config = config
        self.model = model if model is not None else scene_mod.build_model(config.scene)
        m = self.model
        self.batch = mujoco.batch.Batch(m, self.n_envs, nthread=nthread, persistent=True)

        # Names resolved once; never hard-coded ids.
        act_joint = m.actuator_trnid[:, 0]
        if np.any(m.actuator_trntype != mujoco.mjtTrn.mjTRN_JOINT):
            raise ValueError("HandCube expects joint-transmission actuators")
        self.act_qadr = m.jnt_qposadr[act_joint].copy()
        self.ctrl_low = m.actuator_ctrlrange[:, 0].copy()
        self.ctrl_high = m.actuator_ctrlrange[:, 1].copy()
        self.ctrl_mid = 0.5 * (self.ctrl_low + self.ctrl_high)
        self.ctrl_half = 0.5 * (self.ctrl_high - self.ctrl_low)
        hand_joints = [j for j in range(m.njnt) if m.joint(j).name.startswith(scene_mod.HAND_JOINT_PREFIX)]
        self.hand_joint_names = [m.joint(j).name for j in hand_joints]
        self.hand_qadr = m.jnt_qposadr[hand_joints].copy()
        self.hand_dadr = m.jnt_dofadr[hand_joints].copy()
        # where each actuated joint's angle sits within the state's hand_qpos block
        self.act_in_hand = np.array([hand_joints.index(j) for j in act_joint])
        obj_joint = m.joint(scene_mod.OBJECT_JOINT)
        self.obj_qadr = int(obj_joint.qposadr[0])
        self.obj_dadr = int(obj_joint.dofadr[0])
        self.tip_sites = np.array([m.site(s).id for s in scene_mod.FINGERTIP_SITES])
        self.goal_mocap = int(m.body_mocapid[m.body(scene_mod.GOAL_BODY).id])
        self.nu = m.nu

        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self.ctrl = self.batch.bind("ctrl")
        self.mocap_quat = self.batch.bind("mocap_quat")
        self.site_xpos = self.batch.bind("site_xpos")
        self.xfrc_applied = self.batch.bind("xfrc_applied")
        self.control_dt = config.control_dt
        self.timestep = config.scene.timestep
        # motion-capture markers (marker_freeze): the fingertips and the cube, as the observation keys they feed
        self.markers = [(name, [("fingertip_pos", slice(3 * k, 3 * k + 3))])
                        for k, name in enumerate(scene_mod.FINGERTIP_SITES)]
        self.markers.append((scene_mod.OBJECT_BODY, [("object_pos", slice(0, 3)), ("object_quat", slice(0, 4))]))
        self._object_half = m.geom_size[m.geom(scene_mod.OBJECT_GEOM).id].copy()
        self._diag = np.arange(len(scene_mod.FINGERTIP_SITES))

        n = self.n_envs
        self.goal = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
        self.prev_dist = np.zeros(n)
        self.consecutive_successes = np.zeros(n, dtype=np.int64)
        self.steps_since_goal = np.zeros(n, dtype=np.int64)
        self.last_action = np.zeros((n, self.nu))
        self.episode_return = np.zeros(n)
        self.rngs: list[np.random.Generator | None] = [None] * n
        self.randomization = None  # a simreal.randomize.RandomizationStack, see set_randomization
        self.randomization_in_state = False  # append the sampled values to the privileged state
        self._stage = int(mujoco.mjtStage.mjSTAGE_VEL)
        self._substep_ctrl = np.empty((n, self.config.substeps, self.nu))  # per-substep controls (action delay)
        self._settle_substeps = int(round(config.settle_time / config.scene.timestep))
        self.state_layout = self._state_layout()

    # ----------------------------------------------------------------- spaces
    def _state_layout(self) -> dict[str, slice]:
        sizes = [
            ("hand_qpos", len(self.hand_qadr)),
            ("hand_qvel", len(self.hand_dadr)),
            ("object_pos", 3),
            ("object_quat", 4),
            ("object_linvel", 3),
            ("object_angvel", 3),
            ("goal_quat", 4),
        ]
        if self.randomization_in_state and self.randomization is not None:
            sizes.append(("randomization", self.randomization.privileged_size))
        layout, start = {}, 0
        for name, size in sizes:
            layout[name] = slice(start, start + size)
            start += size
        return layout

    def observation_space(self) -> gym.spaces.Dict:
        state_size = max(s.stop for s in self.state_layout.values())
        unit = dict(low=-1.0, high=1.0)
        return gym.spaces.Dict(
            {
                "fingertip_pos": _f32_box(15),
                "object_pos": _f32_box(3),
                "object_quat": _f32_box(4, **unit),
                "goal_quat": _f32_box(4, **unit),
                "relative_quat": _f32_box(4, **unit),
                "last_action": _f32_box(self.nu, **unit),
                STATE_KEY: _f32_box(state_size),
            }
        )

    def action_space(self) -> gym.spaces.Space:
        if self.config.action == "discrete":
            return gym.spaces.MultiDiscrete(np.full(self.nu, self.config.n_bins, dtype=np.int64))
        return gym.spaces.Box(-1.0, 1.0, shape=(self.nu,), dtype=np.float32)

    # ------------------------------------------------------------------ reset
    def seed(self, i: int, seed: int | None) -> None:
        """Restart copy i's task RNG stream, and each randomizer's, from seed (None: fresh entropy)."""
        self.rngs[i] = make_rng(seed, "task")
        if self.randomization is not None:
            self.randomization.seed(i, seed)

    def set_randomization(self, spec, in_state: bool = False) -> None:
        """Bind a randomization spec (a RandomizationSpec or a YAML path); None removes it.

        ``in_state`` appends every sampled value to the privileged ``state``
        (layout entry ``"randomization"``, in the stack's order).
        """
        from simreal.randomize.stack import RandomizationStack

        if self.randomization is not None:
            for name in list(self.randomization.names):
                self.randomization.remove(name)  # back to nominal values
        # the stack reads only the policy keys of the space, so a stale state size does not matter here
        self.randomization = None if spec is None else RandomizationStack(spec, self, self.observation_space())
        if self.randomization is not None and self.randomization.adr is not None:
            self.randomization.adr.check_metric(("return", "consecutive_successes"))
        self.randomization_in_state = bool(in_state)
        self.state_layout = self._state_layout()

    def randomization_info(self, i: int) -> dict[str, Any]:
        """Copy i's reset info from the stack: ``randomization`` (sampled values) and, with ADR, ``adr``."""
        rnd = self.randomization
        info: dict[str, Any] = {"randomization": rnd.info(i) if rnd is not None else {}}
        if rnd is not None and rnd.adr is not None:
            info["adr"] = rnd.adr.stats()
        return info

    def reset(self, ids: np.ndarray) -> None:
        """Start new episodes in copies ids (sorted): cube on the palm, new goal."""
        ids = np.asarray(ids, dtype=np.int64)
        for i in ids:
            if self.rngs[i] is None:
                self.seed(int(i), None)
        self.batch.reset(ids, stage=int(mujoco.mjtStage.mjSTAGE_NONE))
        if self.randomization is not None:
            self.randomization.on_reset(ids)  # physics first: the settle below runs on the new model
        for i in ids:
            rng = self.rngs[i]
            yaw = quat_from_axis_angle((0.0, 0.0, 1.0), rng.uniform(-np.pi, np.pi))
            if self.config.goal == "full":
                start = quat_mul(yaw, CUBE_SYMMETRIES[rng.integers(len(CUBE_SYMMETRIES))])
            else:
                start = yaw
            self.qpos[i, self.obj_qadr + 3 : self.obj_qadr + 7] = start
        self._hold_pose(ids)
        if self._settle_substeps:
            self.batch.step(ids, nstep=self._settle_substeps, stage=self._stage)
        else:
            self.batch.forward(ids, stage=self._stage)
        self.consecutive_successes[ids] = 0
        self.steps_since_goal[ids] = 0
        self.last_action[ids] = 0.0
        self.episode_return[ids] = 0.0
        self._new_goals(ids)

    def _hold_pose(self, ids: np.ndarray) -> None:
        self.ctrl[ids] = np.clip(self.qpos[np.ix_(ids, self.act_qadr)], self.ctrl_low, self.ctrl_high)

    def _new_goals(self, ids: np.ndarray) -> None:
        for i in ids:
            rng = self.rngs[i]
            if self.config.goal == "full":
                goal = random_quat(rng, 1)[0]
            else:
                yaw = quat_from_axis_angle((0.0, 0.0, 1.0), rng.uniform(-np.pi, np.pi))
                goal = quat_canonical(quat_mul(yaw, self.object_quat(i)))
            self.set_goal(int(i), goal)

    def set_goal(self, i: int, quat: np.ndarray) -> None:
        """Set copy i's goal orientation (and its marker); resets the distance baseline."""
        q = np.asarray(quat, dtype=np.float64)
        q = quat_canonical(q / np.linalg.norm(q))
        self.goal[i] = q
        self.mocap_quat[i, self.goal_mocap] = q
        self.prev_dist[i] = rotation_angle(self.object_quat(i), q)

    def object_quat(self, i: int | slice = slice(None)) -> np.ndarray:
        return quat_normalize(self.qpos[i, self.obj_qadr + 3 : self.obj_qadr + 7])

    # ------------------------------------------------------------------- step
    def action_to_unit(self, actions: np.ndarray) -> np.ndarray:
        """Actions as (n, nu) float64 in [-1, 1] (bins mapped, values clipped)."""
        a = np.asarray(actions)
        if self.config.action == "discrete":
            return np.clip(a, 0, self.config.n_bins - 1) * (2.0 / (self.config.n_bins - 1)) - 1.0
        return np.clip(a, -1.0, 1.0).astype(np.float64, copy=False)

    # the Sim protocol's command mapping (simreal.envs.sim): the randomization stack's step pipeline calls these
    @property
    def substeps(self) -> int:
        return self.config.substeps

    @property
    def command_period(self) -> float:
        return self.timestep

    def unit_from_action(self, actions: np.ndarray) -> np.ndarray:
        return self.action_to_unit(actions).reshape(self.n_envs, self.nu)

    def ctrl_from_unit(self, unit: np.ndarray) -> np.ndarray:
        """Joint targets: about the current joint angles (relative control) or the range's middle."""
        center = self.qpos[:, self.act_qadr] if self.config.control == "relative" else self.ctrl_mid
        return np.clip(center + unit * self.ctrl_half, self.ctrl_low, self.ctrl_high)

    def ctrl_from_action(self, actions: np.ndarray) -> np.ndarray:
        return self.ctrl_from_unit(self.unit_from_action(actions))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every copy one control step.

        Returns (reward, terminated, truncated, is_success, dropped), each (n,).
        Copies that succeeded already hold their next goal.
        """
        cfg = self.config
        a = self.unit_from_action(actions)
        self.last_action[:] = a  # what the policy asked for, before any action noise
        rnd = self.randomization
        if rnd is None:
            self.ctrl[:] = self.ctrl_from_unit(a)
            self.batch.step(nstep=cfg.substeps, stage=self._stage)
        else:
            ctrl = rnd.command(actions, out=self._substep_ctrl)
            if ctrl.ndim == 2:
                self.ctrl[:] = ctrl
                self.batch.step(nstep=cfg.substeps, stage=self._stage)
            else:  # action delays switch controls mid-step: one rollout with per-substep controls
                self.batch.rollout(cfg.substeps, control=ctrl, record=())
                self.batch.forward(stage=self._stage)  # as step(stage=...) leaves it; bit-identical
            rnd.on_step()

        dist = rotation_angle(self.object_quat(), self.goal)
        reward = self.prev_dist - dist
        self.prev_dist[:] = dist
        success = dist < cfg.success_threshold
        dropped = self.qpos[:, self.obj_qadr + 2] < cfg.drop_height
        self.steps_since_goal += 1
        if success.any():
            reward[success] += cfg.success_bonus
            self.consecutive_successes[success] += 1
            self.steps_since_goal[success] = 0
            self._new_goals(np.flatnonzero(success))
        if dropped.any():
            reward[dropped] += cfg.drop_penalty
        terminated = dropped | (self.consecutive_successes >= cfg.max_consecutive_successes)
        truncated = (self.steps_since_goal >= cfg.timeout_steps) & ~terminated
        self.episode_return += reward
        if rnd is not None and rnd.adr is not None:
            done = np.flatnonzero(terminated | truncated)
            if len(done):
                rnd.on_episode_end(done, self.episode_metric(rnd.adr.metric)[done])
        return reward, terminated, truncated, success, dropped

    def episode_metric(self, name: str) -> np.ndarray:
        """Per-copy performance of the running episodes: ``return`` or ``consecutive_successes``."""
        return self.episode_return.copy() if name == "return" else self.consecutive_successes.astype(float)

    def marker_occlusion(self, distance: np.ndarray) -> np.ndarray:
        """(n, markers) bool: a fingertip closer than distance to another fingertip or to the cube's surface."""
        tips = self.site_xpos[:, self.tip_sites]  # (n, 5, 3)
        diff = tips[:, :, None] - tips[:, None]
        gaps = np.einsum("nijk,nijk->nij", diff, diff)
        gaps[:, self._diag, self._diag] = np.inf
        o = self.obj_qadr
        rel = tips - self.qpos[:, None, o : o + 3]
        local = quat_rotate(quat_conj(self.qpos[:, None, o + 3 : o + 7]), rel)  # mj keeps the free-joint quat unit
        outside = np.maximum(np.abs(local) - self._object_half, 0.0)
        d2 = np.minimum(gaps.min(axis=-1), np.einsum("nik,nik->ni", outside, outside))
        near = d2 < np.square(distance[:, : len(self.tip_sites)])
        return np.concatenate([near, np.zeros((self.n_envs, 1), dtype=bool)], axis=1)  # the cube is never occluded

    # ------------------------------------------------------------ observation
    def observe(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Observations of every copy, as fresh float32 arrays (n, ...).

        With ``rows``, only those copies' observations are valid and only their
        randomization state advances (used after a partial reset).
        """
        n, q, v, o, d = self.n_envs, self.qpos, self.qvel, self.obj_qadr, self.obj_dadr
        obj_quat = quat_canonical(self.object_quat())
        obj_pos = q[:, o : o + 3]
        parts = [q[:, self.hand_qadr], v[:, self.hand_dadr], obj_pos, obj_quat, v[:, d : d + 6], self.goal]
        rnd = self.randomization
        if self.randomization_in_state and rnd is not None:
            parts.append(rnd.privileged())
        obs = {
            "fingertip_pos": self.site_xpos[:, self.tip_sites].reshape(n, 15).astype(np.float32),
            "object_pos": obj_pos.astype(np.float32),
            "object_quat": obj_quat.astype(np.float32),
            "goal_quat": self.goal.astype(np.float32),
            "last_action": self.last_action.astype(np.float32),
        }
        if rnd is not None:
            rnd.on_observation(obs, rows)  # measured keys: noise, then marker freeze
        relative = quat_canonical(quat_mul(self.goal, quat_conj(obs["object_quat"].astype(np.float64))))
        derived = {"relative_quat": relative.astype(np.float32)}
        if rnd is not None:
            rnd.on_observation(derived, rows)  # noise aimed at the derived key itself
        obs["relative_quat"] = derived["relative_quat"]
        obs[STATE_KEY] = np.concatenate(parts, axis=1).astype(np.float32)
        return {k: obs[k] for k in POLICY_KEYS + (STATE_KEY,)}

    # -------------------------------------------------------------- rendering
    def make_renderer(self, height: int, width: int) -> "SceneRenderer":
        return SceneRenderer(self, height, width)


def bind_spec(spec) -> Any:
    """A RandomizationSpec bound to a one-copy hand-cube sim (names and fields checked): its stack.
    The hand's `registration.NativeEnv.binding_sim`."""
    sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
    sim.set_randomization(spec)
    return sim.randomization


class SceneRenderer:
    """Renders copies of a :class:`HandCubeSim` from its named cameras (headless EGL by default).

    Each copy is drawn with its own visual randomization (the randomization
    file's ``visual`` list), through `simreal.render.multicam.MultiCameraRenderer`.
    """

    def __init__(self, sim: HandCubeSim, height: int, width: int):
        from simreal.render.multicam import MultiCameraRenderer

        self.sim = sim
        self.camera_names = [c.name for c in sim.config.scene.cameras]
        self.renderer = MultiCameraRenderer(sim, height, width, hidden_group=scene_mod.GOAL_GEOM_GROUP)

    def render(self, i: int = 0, cameras: list[str] | None = None, show_goal: bool = False) -> list[np.ndarray]:
        """One (H, W, 3) uint8 image per camera of copy i; the goal marker only if show_goal."""
        images = self.renderer.render(i, show_hidden=show_goal)
        names = self.renderer.camera_names
        for name in cameras or ():
            if name not in names:
                raise ValueError(f"no camera {name!r} (cameras: {', '.join(names)})")
        return [images[names.index(name)] for name in cameras or self.camera_names]

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


def check_camera_obs(camera_obs) -> tuple[int, int] | None:
    """``camera_obs`` as (height, width), or None; one-line error otherwise."""
    if camera_obs is None:
        return None
    try:
        size = tuple(int(s) for s in camera_obs)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"HandCube: camera_obs must be (height, width) >= 8 px or None; got {camera_obs!r}")
    return size


def check_camera_zoom(zoom) -> float:
    """``camera_zoom`` as a float from 1 to 16 (a magnification); one-line error otherwise."""
    if isinstance(zoom, bool) or not isinstance(zoom, (int, float)) or not 1.0 <= float(zoom) <= 16.0:
        raise ValueError(f"HandCube: camera_zoom must be a number from 1 to 16 (a magnification); got {zoom!r}")
    return float(zoom)


IMAGE_KEY = "image"  # with pixels=(h, w): the cameras tiled into one (h, w, 3) uint8 image (world-model agents)
MEASURED_POSE_KEYS = ("object_pos", "object_quat", "relative_quat")  # dropped by pixels_only


class PixelImage:
    """The ``image`` key of a hand-cube env made with ``pixels=(height, width)``.

    The named cameras (default: all three) are rendered with the visual randomization and tiled into
    one image, row by row in a square grid: one camera fills the image, two to four share a 2x2 grid
    (an unused cell stays black), so 64x64 pixels give each of the three cameras 32x32. This is the
    HxWx3 image the RSSM agents and Ha's World Models encode.
    """

    def __init__(self, sim: "HandCubeSim", size, cameras=None, antialias: int | None = None, zoom: float = 1.0):
        from simreal.render.multicam import MultiCameraRenderer

        scene = [c.name for c in sim.config.scene.cameras]
        size = check_camera_obs(size)
        if size is None:
            raise ValueError("HandCube: pixels must be (height, width)")
        cameras = scene if cameras is None else [str(c) for c in cameras]
        unknown = [c for c in cameras if c not in scene]
        if not cameras or unknown or len(cameras) > 4 or len(set(cameras)) != len(cameras):
            raise ValueError(f"HandCube: pixel_cameras must be 1 to 4 distinct cameras of {scene}; got {cameras!r}")
        self.grid = 1 if len(cameras) == 1 else 2
        if size[0] % self.grid or size[1] % self.grid:
            raise ValueError(f"HandCube: pixels {size} must be even to tile {len(cameras)} cameras in a 2x2 grid")
        self.size, self.cameras = size, cameras
        self.cell = (size[0] // self.grid, size[1] // self.grid)
        self.renderer = MultiCameraRenderer(sim, *self.cell, cameras=cameras, antialias=antialias, zoom=zoom)
        self.space = gym.spaces.Box(0, 255, (size[0], size[1], 3), np.uint8)

    def render(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(self.space.shape, np.uint8) if out is None else out
        h, w = self.cell
        for k, view in enumerate(self.renderer.render(int(i))):
            row, col = divmod(k, self.grid)
            out[row * h:(row + 1) * h, col * w:(col + 1) * w] = view
        return out

    def close(self) -> None:
        self.renderer.close()


def camera_obs_space(sim: HandCubeSim, size: tuple[int, int]) -> gym.spaces.Box:
    """The ``cameras`` key: every scene camera's image, (n_cameras, height, width, 3) uint8."""
    return gym.spaces.Box(0, 255, (len(sim.config.scene.cameras), size[0], size[1], 3), np.uint8)


class ImageObservations:
    """The image keys of a hand sim's observations, shared by `HandCubeEnv` and the vectorized env.

    ``camera_obs`` (height, width) adds ``cameras``: every camera's image of a copy; ``pixels``
    (height, width) adds ``image``: the ``pixel_cameras`` tiled into one image (`PixelImage`);
    ``pixels_only`` then drops the measured cube pose (`MEASURED_POSE_KEYS`). Both are drawn with
    the copy's visual randomization, ``camera_antialias`` multisamples per pixel and ``camera_zoom``.
    """

    def __init__(self, sim: HandCubeSim, camera_obs=None, camera_antialias: int | None = None,
                 camera_zoom: float = 1.0, pixels=None, pixel_cameras=None, pixels_only: bool = False):
        self.camera_obs = check_camera_obs(camera_obs)
        self.camera_zoom = check_camera_zoom(camera_zoom)
        self.pixels_only = bool(pixels_only)
        if self.pixels_only and pixels is None:
            raise ValueError("HandCube: pixels_only needs pixels=(height, width)")
        self.n = sim.n_envs
        self._spaces = {}
        self.cameras = None
        if self.camera_obs is not None:
            from simreal.render.multicam import MultiCameraRenderer

            self._spaces[CAMERAS_KEY] = camera_obs_space(sim, self.camera_obs)
            self.cameras = MultiCameraRenderer(sim, *self.camera_obs, antialias=camera_antialias,
                                               cameras=[c.name for c in sim.config.scene.cameras],
                                               zoom=self.camera_zoom)
        self.image = None if pixels is None else PixelImage(sim, pixels, pixel_cameras, camera_antialias,
                                                             self.camera_zoom)
        if self.image is not None:
            self._spaces[IMAGE_KEY] = self.image.space

    @property
    def antialias(self) -> int | None:
        """Multisamples per pixel of the ``cameras`` images (None without them)."""
        return None if self.cameras is None else self.cameras.antialias

    def space(self, base: gym.spaces.Dict) -> gym.spaces.Dict:
        """``base`` (the sim's observation space) with the image keys added and the dropped keys removed."""
        kept = {k: v for k, v in base.spaces.items() if not (self.pixels_only and k in MEASURED_POSE_KEYS)}
        return gym.spaces.Dict(dict(kept, **self._spaces))

    def add(self, obs: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, np.ndarray]:
        """A batched observation (all copies) with the image keys of copies ``ids`` drawn (others black)."""
        for key, draw in ((CAMERAS_KEY, self.cameras), (IMAGE_KEY, self.image)):
            if draw is not None:
                images = obs[key] = np.zeros((self.n,) + self._spaces[key].shape, np.uint8)
                for i in ids:
                    draw.render(int(i), out=images[i])
        if self.pixels_only:
            for key in MEASURED_POSE_KEYS:
                obs.pop(key, None)
        return obs

    def close(self) -> None:
        for draw in (self.cameras, self.image):
            if draw is not None:
                draw.close()
        self.cameras = self.image = None


class HandCubeEnv(gym.Env):
    """Shadow hand reorienting a cube to goal orientations (Dactyl), as a Gymnasium env.

    Observations are a Dict: the policy keys (``fingertip_pos``, ``object_pos``,
    ``object_quat``, ``goal_quat``, ``relative_quat``, ``last_action``) and the
    privileged ``state`` for an asymmetric critic (hand joint angles and
    velocities, object pose and velocities, goal; layout in ``state_layout``).
    Quaternions are (w, x, y, z) with w >= 0. ``info`` carries
    ``consecutive_successes``, ``is_success``, ``rotation_distance``, ``dropped``.

    Keyword arguments are the fields of :class:`HandCubeConfig`, plus
    ``randomization`` (a YAML path or RandomizationSpec; the values sampled at
    reset come back in ``info["randomization"]``), ``randomization_in_state``
    (also append them to the privileged ``state``), ``render_mode``
    (``"rgb_array"``: the cameras side by side), ``render_size`` (height, width) per camera,
    and ``camera_obs`` (height, width): add the key ``cameras``, every camera's image of the
    step, (3, height, width, 3) uint8, drawn with the file's visual randomization
    (``camera_antialias``: multisamples per pixel, default the scene's; ``camera_zoom``: the
    cameras' magnification, as the pose estimator's ``--zoom``, default 1). ``pixels`` (height,
    width) adds ``image``: the cameras (``pixel_cameras``, default all three) tiled into one image
    (`PixelImage`), for the world-model agents; ``pixels_only`` then drops the measured cube pose
    (``object_pos``, ``object_quat``, ``relative_quat``): the cube is seen only in the image, while
    proprioception, the goal and the privileged ``state`` stay.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12.5}

    def __init__(self, render_mode: str | None = None, render_size: tuple[int, int] = (240, 320),
                 randomization=None, randomization_in_state: bool = False,
                 camera_obs: tuple[int, int] | None = None, camera_antialias: int | None = None,
                 camera_zoom: float = 1.0, pixels: tuple[int, int] | None = None, pixel_cameras=None,
                 pixels_only: bool = False, **kwargs: Any):
        check_render_args(render_mode, render_size)
        self.config = HandCubeConfig.from_kwargs(**kwargs)
        self.sim = HandCubeSim(1, self.config)
        self.sim.set_randomization(randomization, in_state=randomization_in_state)
        self.render_mode = render_mode
        self.render_size = tuple(int(s) for s in render_size)
        self.action_space = self.sim.action_space()
        self.metadata = dict(self.metadata, render_fps=1.0 / self.config.control_dt)
        self._renderer: SceneRenderer | None = None
        self._ids = np.zeros(1, dtype=np.int64)
        self.images = ImageObservations(self.sim, camera_obs, camera_antialias, camera_zoom, pixels, pixel_cameras,
                                        pixels_only)
        self.camera_obs, self.camera_zoom = self.images.camera_obs, self.images.camera_zoom
        self.camera_antialias, self.pixels_only = self.images.antialias, self.images.pixels_only
        self.observation_space = self.images.space(self.sim.observation_space())

    @property
    def model(self) -> mujoco.MjModel:
        return self.sim.model

    @property
    def state_layout(self) -> dict[str, slice]:
        return self.sim.state_layout

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or self.sim.rngs[0] is None:
            self.sim.seed(0, seed)
        self.sim.reset(self._ids)
        return self._obs(), self.reset_info()

    def step(self, action):
        reward, terminated, truncated, success, dropped = self.sim.step(np.asarray(action)[None])
        info = self._info(is_success=bool(success[0]), dropped=bool(dropped[0]))
        return self._obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.images.add(self.sim.observe(), self._ids).items()}

    def reset_info(self) -> dict[str, Any]:
        return dict(self._info(False, False), **self.sim.randomization_info(0))

    def _info(self, is_success: bool, dropped: bool) -> dict[str, Any]:
        return {
            "consecutive_successes": int(self.sim.consecutive_successes[0]),
            "is_success": is_success,
            "rotation_distance": float(self.sim.prev_dist[0]),
            "dropped": dropped,
        }

    def set_goal(self, quat) -> None:
        """Set the goal orientation (w, x, y, z) of the running episode."""
        self.sim.set_goal(0, quat)

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("HandCube.render() called without render_mode='rgb_array'")
            return None
        return np.concatenate(self.render_cameras(show_goal=True), axis=1)

    def render_cameras(self, cameras: list[str] | None = None, show_goal: bool = False) -> list[np.ndarray]:
        """One image per camera (the three pose cameras by default), goal marker hidden."""
        if self._renderer is None:
            self._renderer = self.sim.make_renderer(*self.render_size)
        return self._renderer.render(0, cameras, show_goal=show_goal)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.images.close()
