"""The randomization YAML on any MuJoCo env: Gymnasium MuJoCo envs and dm_control suite tasks.

::

    import gymnasium, shimmy  # shimmy registers the dm_control/* ids
    from simreal.randomize import wrap

    env = wrap(gymnasium.make("Hopper-v5"), "randomizations/my_hopper.yaml")
    env = wrap(gymnasium.make("dm_control/cartpole-swingup-v0"), "dmc_cartpole")
    obs, info = env.reset(seed=0)          # info["randomization"]: this episode's samples
    print(env.describe())                  # the stack, in application order

The same :class:`~simreal.randomize.stack.RandomizationStack` that drives the
hand-cube env is bound to a one-copy view of the env's own ``MjModel`` and
``MjData`` (:class:`SingleModelSim`). Every physics edit starts from the
nominal value the stack cached at bind time, so nothing compounds across
episodes; the wrapper writes nothing to the model itself.

What the wrapper does, per the stack's order:

* ``reset``: the stack picks the new episode's parameters *before* the inner
  env resets, so the new episode starts (and its initial ``mj_forward`` runs)
  on the randomized model; then observation noise. ``info["randomization"]``
  holds the samples by YAML name.
* A simulation that becomes invalid under the sampled values (dm_control's
  ``PhysicsError``: NaN, inf or huge accelerations) in ``reset`` or ``step`` is
  a one-line `simreal.utils.finite.PhysicsDiverged` naming the env, the
  episode step and the randomizer values of that episode.
* ``step``: the stack's step pipeline (``RandomizationStack.command``, the
  same code the hand sim steps through; `simreal.envs.sim` says what differs).
  With any action randomization in the stack, the action is first
  clipped to the action space (MuJoCo clamps a limited ``ctrl`` the same way);
  action noise on the action normalized to [-1, 1] with the action
  space's bounds; backlash and action delay on the command in actuator units
  (these envs send the action straight to ``data.ctrl``, so the action-space
  bounds are the control range); random forces on bodies; the inner step;
  per-step resampling; observation noise.
* Observations: a ``Dict`` observation (dm_control through shimmy) is targeted
  by its keys, a ``Box`` observation by the key ``observation``
  (``target: {observation: observation}``). Noise applies to the flattened
  values of a key; where the space has finite bounds the result is clipped to
  them, so observations stay inside the (unchanged) observation space.

Differences from the hand-cube env, which steps the physics itself:

* ``action_delay`` works at *control-step* resolution: the env runs its own
  physics substeps, so a command cannot change in the middle of one. Each
  actuator's delay is rounded to a whole number of (nominal) control periods
  and the command issued that many steps ago is sent; a fresh episode's history
  is filled with the reset control (``data.ctrl`` after reset, clipped).
* ``backlash.width`` is in actuator-control units (a torque or force command
  for ``motor`` actuators), not radians.
* ``marker_freeze`` is unavailable (these envs have no motion-capture markers).
* The ``visual`` list acts on ``env.render()``: the wrapper dresses the model
  with this episode's camera, light and material values for the duration of
  the call, puts them back, and applies the image effects to the frame; the
  physics and the measured observations never see them. Textures are refused
  (they live in the inner renderer's GL context).
* Action noise, backlash and action delay need a ``Box`` action space with one
  finite-bounded channel per actuator; otherwise binding fails with a one-line
  error.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Callable

import gymnasium as gym
import mujoco
import numpy as np

from simreal.randomize import effects
from simreal.randomize.spec import RandomizationError, RandomizationSpec, load_spec
from simreal.randomize.stack import RandomizationStack
from simreal.utils.finite import PhysicsDiverged, format_values

__all__ = ["SingleModelSim", "RandomizedEnv", "wrap", "find_mujoco"]


class _OptScalar(np.ndarray):
    """A (1, 1) array standing for a scalar MjOption field; every write goes on to the model.

    ``model.opt.timestep`` is a Python float, not a view, so the array the
    stack writes into must push its value to the model itself. Views of it
    (the stack reshapes before writing) share the push.
    """

    _push: Callable[[], None] | None

    def __array_finalize__(self, obj):
        self._push = getattr(obj, "_push", None)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if self._push is not None:
            self._push()


class _SingleBatch:
    """What ``FieldRandomizer`` needs from ``mujoco.batch.Batch``, for one copy over a plain model."""

    def __init__(self, sim: "SingleModelSim"):
        self._sim = sim
        self._model = sim.model
        self._scratch = mujoco.MjData(sim.model)  # mj_setConst's workspace; the env's data stays untouched
        self._opt_scalars: dict[str, _OptScalar] = {}

    def expand(self, field: str) -> np.ndarray:
        """A live (1, ...) array of the model's values of field; writes reach the model."""
        m = self._model
        if not field.startswith("opt."):
            return getattr(m, field)[None]
        name = field[4:]
        value = getattr(m.opt, name)
        if isinstance(value, np.ndarray):
            return value[None]  # a view into the model's MjOption
        arr = self._opt_scalars.get(name)
        if arr is None:
            arr = np.array([[float(value)]]).view(_OptScalar)
            kind = type(value)
            base = arr

            def push(name=name, kind=kind, base=base):
                v = float(np.asarray(base).flat[0])
                setattr(m.opt, name, int(round(v)) if kind is int else v)

            arr._push = push
            self._opt_scalars[name] = arr
        return arr

    def sync(self) -> None:
        """Push the scalar option fields to the model (the arrays already do on every write)."""
        for arr in self._opt_scalars.values():
            if arr._push is not None:
                arr._push()

    def set_const(self, ids: np.ndarray) -> None:
        """Recompute the model's derived constants (``mj_setConst``) on a scratch MjData."""
        self.sync()
        mujoco.mj_setConst(self._model, self._scratch)


class SingleModelSim:
    """The `simreal.envs.sim.Sim` of one wrapped env: one copy over the env's own ``MjModel``/``MjData``.

    ``data`` is fetched through a callable each time, in case the env swaps its
    MjData object; the model is the one the stack bound to and must not change.
    The env steps its own physics, so a command holds for a whole control step
    (``substeps == 1``); the command range is the action space's bounds (these
    envs send the action straight to ``data.ctrl``), set by `set_command_range`.
    """

    n_envs = 1
    substeps = 1

    def __init__(self, model: mujoco.MjModel, data: Callable[[], mujoco.MjData] | mujoco.MjData,
                 control_dt: Callable[[], float] | float):
        self.model = model
        self._data = data if callable(data) else (lambda: data)
        self._control_dt = control_dt if callable(control_dt) else (lambda: float(control_dt))
        self.batch = _SingleBatch(self)
        self.markers: list = []
        self.nominal_control_dt = float(self._control_dt())
        self.nominal_timestep = float(model.opt.timestep)
        self.ctrl_low = self.ctrl_high = None  # see set_command_range

    def set_command_range(self, low: np.ndarray, high: np.ndarray) -> None:
        self.ctrl_low, self.ctrl_high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self._mid = 0.5 * (self.ctrl_low + self.ctrl_high)
        self._half = 0.5 * (self.ctrl_high - self.ctrl_low)
        self._safe_half = np.where(self._half > 0, self._half, 1.0)

    @property
    def command_period(self) -> float:
        """Delays count in whole (nominal) control periods."""
        return self.nominal_control_dt

    def ctrl_from_action(self, action) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64).reshape(1, -1), self.ctrl_low, self.ctrl_high)

    def unit_from_action(self, action) -> np.ndarray:
        return np.clip((self.ctrl_from_action(action) - self._mid) / self._safe_half, -1.0, 1.0)

    def ctrl_from_unit(self, unit: np.ndarray) -> np.ndarray:
        return np.clip(self._mid + unit * self._half, self.ctrl_low, self.ctrl_high)

    @property
    def data(self) -> mujoco.MjData:
        return self._data()

    @property
    def xfrc_applied(self) -> np.ndarray:
        """(1, nbody, 6) live view of the applied Cartesian forces."""
        return self._data().xfrc_applied[None]

    @property
    def ctrl(self) -> np.ndarray:
        return self._data().ctrl[None]

    @property
    def control_dt(self) -> float:
        """Seconds per env step, now (follows a randomized ``opt.timestep``)."""
        return float(self._control_dt())

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)


def find_mujoco(env: gym.Env) -> tuple[mujoco.MjModel, Callable[[], mujoco.MjData], Callable[[], float]]:
    """The raw (model, data getter, control period getter) under a Gymnasium or shimmy dm_control env."""
    u = env.unwrapped
    model, data = getattr(u, "model", None), getattr(u, "data", None)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):  # gymnasium.envs.mujoco.MujocoEnv
        if hasattr(u, "dt"):
            return model, (lambda: u.data), (lambda: float(u.dt))
        frame_skip = int(getattr(u, "frame_skip", 1))
        return model, (lambda: u.data), (lambda: float(model.opt.timestep) * frame_skip)
    inner = getattr(u, "_env", None)
    physics = getattr(inner, "physics", None)
    if physics is not None and isinstance(getattr(getattr(physics, "model", None), "ptr", None), mujoco.MjModel):
        model = physics.model.ptr  # dm_control through shimmy: the raw mujoco structs behind the wrappers

        def control_dt() -> float:
            if hasattr(inner, "control_timestep"):
                return float(inner.control_timestep())
            return float(physics.timestep()) * int(getattr(inner, "_n_sub_steps", 1))

        return model, (lambda: inner.physics.data.ptr), control_dt
    hint = " (HandCube takes randomization=... itself)" if type(u).__name__.startswith("HandCube") else ""
    raise TypeError(f"wrap: {type(u).__name__} is not a MuJoCo env this wrapper knows: expected a Gymnasium "
                    f"MuJoCo env (.model/.data) or a dm_control env through shimmy (._env.physics){hint}")


class RandomizedEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A MuJoCo env under a randomization YAML; spaces unchanged. ``stack`` is the bound stack."""

    def __init__(self, env: gym.Env, spec: RandomizationSpec | str | pathlib.Path, seed: int | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec, seed=seed)  # env.spec can remake the wrapped env
        gym.Wrapper.__init__(self, env)
        model, data, control_dt = find_mujoco(env)
        self.sim = SingleModelSim(model, data, control_dt)
        spec = spec if isinstance(spec, RandomizationSpec) else load_spec(spec)
        self._box_obs = isinstance(env.observation_space, gym.spaces.Box)
        if self._box_obs:
            obs_space = gym.spaces.Dict({"observation": env.observation_space})
        elif isinstance(env.observation_space, gym.spaces.Dict):
            obs_space = env.observation_space
        else:
            obs_space = gym.spaces.Dict({})  # observation noise on it fails at bind with the keys listed
        self._obs_space = obs_space
        self._check_actions(spec, model)
        space = env.action_space
        if isinstance(space, gym.spaces.Box) and space.shape == (model.nu,):
            self.sim.set_command_range(space.low, space.high)
        self.stack = RandomizationStack(spec, self.sim, obs_space)
        self._check_visual(spec)
        self._ids = np.zeros(1, dtype=np.int64)
        self._return = 0.0
        self._done = False
        self._t = 0  # steps into the episode
        self._physics_errors = physics_errors()
        if seed is not None:
            self.stack.seed(0, seed)

    # ------------------------------------------------------------- binding
    def _check_actions(self, spec: RandomizationSpec, model: mujoco.MjModel) -> None:
        space = self.env.action_space
        uses = [r for r in spec.enabled()
                if r.family == "action" or (r.family == "effect" and effects.effect_class(r.target.effect).acts_on_action)]
        if not uses:
            return
        where = f"{spec.locate(uses[0].name)}.target"
        if not isinstance(space, gym.spaces.Box):
            raise spec.error(where, f"action randomization needs a Box action space; got {type(space).__name__}")
        if space.shape != (model.nu,):
            raise spec.error(where, f"action randomization needs one action per actuator ({model.nu}); "
                                    f"the action space has shape {space.shape}")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise spec.error(where, "action randomization needs finite action-space bounds (to normalize to [-1, 1])")

    def _check_visual(self, spec: RandomizationSpec) -> None:
        """Textures live in the inner renderer's GL context, which a wrapper cannot reach: refused by name."""
        visual = self.stack.visual
        for texid in visual.texture_ids:
            source = visual.texture_sources(texid)[0]
            raise spec.error(f"{spec.locate(source.name)}.target",
                             "textures cannot be randomized on a wrapped env (it renders with its own GL "
                             "context); randomize material colors (mat_rgba, geom_rgba), lights and cameras instead")

    # ---------------------------------------------------------------- gym API
    def render(self):
        """The inner env's render, drawn with this episode's visual randomization (cameras, lights, materials
        on the model for the duration of the call, then the image effects); the physics never sees them."""
        visual = self.stack.visual
        if not visual:
            return self.env.render()
        model, data = self.sim.model, self.sim.data  # the visual fields are nominal outside this call
        visual.apply(0, model)
        mujoco.mj_camlight(model, data)  # camera and light poses from the dressed model
        try:
            frame = self.env.render()
        finally:
            visual.restore_nominal(model)
            mujoco.mj_camlight(model, data)
        if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.dtype == np.uint8:
            frame = np.array(frame)  # the renderer may hand out its own buffer
            camera = getattr(self.env.unwrapped, "camera_id", None)
            visual.image_effects(0, frame[None], np.array([camera if isinstance(camera, int) and camera >= 0 else 0]))
        return frame

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.stack.seed(0, seed)
        self.stack.on_reset(self._ids)  # parameters first: the inner reset runs on the new model
        self.sim.batch.sync()
        self._t = 0
        try:
            obs, info = self.env.reset(seed=seed, options=options)
        except self._physics_errors as exc:
            raise self._diverged(exc, None) from None
        self._return, self._done = 0.0, False
        info = dict(info)
        info["randomization"] = self.stack.info(0)
        if self.stack.adr is not None:
            info["adr"] = self.stack.adr.stats()
        return self._observe(obs), info

    def step(self, action):
        stack = self.stack
        if stack.acts_on_action:  # the stack's step pipeline, one command per control step
            action = stack.command(action)[0].astype(self.env.action_space.dtype)
        else:
            stack.before_physics(self.sim.control_dt)
        self.sim.batch.sync()
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except self._physics_errors as exc:
            raise self._diverged(exc, self._t + 1) from None
        self._t += 1
        stack.on_step()
        self.sim.batch.sync()
        obs = self._observe(obs)
        self._return += float(reward)
        if (terminated or truncated) and not self._done:
            self._done = True
            if stack.adr is not None:
                stack.on_episode_end(self._ids, np.array([self._metric(stack.adr.metric, info)], dtype=float))
        return obs, reward, terminated, truncated, info

    def describe(self) -> str:
        return self.stack.describe()

    def restore_nominal(self) -> None:
        """Put every randomized model field back to its nominal value and clear applied forces."""
        self.stack.restore_nominal()
        self.sim.batch.sync()

    def close(self):
        """Leave the env's model as it was found (another wrapper would take it as nominal), then close."""
        self.restore_nominal()
        super().close()

    # ---------------------------------------------------------------- helpers
    def _diverged(self, exc: BaseException, step: int | None) -> PhysicsDiverged:
        """The simulator's refusal (in episode step ``step``, None: at reset) as one line, with the values
        this episode was sampled to run on."""
        spec = getattr(self.env, "spec", None)
        name = spec.id if spec is not None and spec.id else type(self.env.unwrapped).__name__
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        when = "at reset" if step is None else f"in step {step} of the episode"
        return PhysicsDiverged(f"{name}: the simulation became invalid {when} ({detail}); that episode's "
                               f"randomization: {format_values(self.stack.info(0))}")

    def _metric(self, name: str, info: dict[str, Any]) -> float:
        if name == "return":
            return self._return
        if name not in info:
            raise RandomizationError(f"{self.stack.spec.source}: adr.metric: the env's step info has no key "
                                     f"{name!r} (keys: {', '.join(map(str, info)) or 'none'}); use 'return' or one of those")
        return float(info[name])

    def _observe(self, obs):
        if not self.stack.acts_on_observation:
            return obs
        if self._box_obs:
            batch = {"observation": np.array(obs).reshape(1, -1)}
            out = self.stack.on_observation(batch)
            return self._restore(out["observation"], obs, self.env.observation_space)
        if not isinstance(obs, dict):
            return obs
        batch = {k: np.array(v).reshape(1, -1) for k, v in obs.items()}
        out = self.stack.on_observation(batch)
        spaces = self._obs_space.spaces
        return type(obs)((k, self._restore(out[k], v, spaces.get(k))) for k, v in obs.items())

    @staticmethod
    def _restore(noisy: np.ndarray, original, space) -> np.ndarray:
        """A key's values back to the original shape and dtype, clipped to finite Box bounds."""
        original = np.asarray(original)
        x = noisy.reshape(original.shape)
        if isinstance(space, gym.spaces.Box) and (space.bounded_below.any() or space.bounded_above.any()):
            x = np.clip(x, space.low, space.high)
        return x.astype(original.dtype, copy=False)


def physics_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a simulator raises when its state becomes invalid: dm_control's ``PhysicsError``
    once dm_control is loaded (any dm_control env imports it). Gymnasium's MuJoCo envs only warn."""
    control = sys.modules.get("dm_control.rl.control")
    return (control.PhysicsError,) if control is not None else ()


def wrap(env: gym.Env, spec: RandomizationSpec | str | pathlib.Path, seed: int | None = None) -> RandomizedEnv:
    """Bind a randomization spec (a RandomizationSpec, a YAML path or a shipped name) to a MuJoCo env."""
    return RandomizedEnv(env, spec, seed=seed)
