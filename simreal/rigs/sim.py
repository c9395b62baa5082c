"""Simulated rigs: an env with physics fixed at held-out values, latency and noise, behind the Rig API.

A *reality* is a randomization YAML in fixed mode plus a ``rig:`` block::

    rig:
      envs: [dm_control/cartpole-swingup-v0, dm_control/cartpole-balance-v0]   # the first is the default
      env_kwargs: {}                # constructor arguments (HandCubeConfig fields for the hand)
      description: one line
      safety: {max_delta: 0.5}      # optional SafetyConfig defaults for this rig
    version: 1
    randomizers:                    # the usual randomization schema (see randomizations/*.yaml)
      - name: pole_mass
        target: {field: body_mass, names: [pole_1]}
        distribution: {type: constant, value: 2.0}
        operation: scale

Physics fields and unmodeled effects (delays, backlash, pushes) must be
``constant``: they are the reality's values, the same in every episode.
Observation and action noise may be random (a sensor's noise is). ``extends``
and ``adr`` are not allowed: a reality lists every value it sets. Shipped
realities live in ``rigs/realities/`` (``list_realities()``); each value there
is commented against the training ranges of the shipped randomization files.

`SimulatedRig` runs the hand-cube env (``simreal/HandCube-v0``) or any
Gymnasium MuJoCo / dm_control env under a reality, as a stand-in for hardware.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from simreal.registration import native_env
from simreal.rigs.base import Rig, RigError, SafetyConfig

REALITIES_DIR = pathlib.Path(__file__).resolve().parents[2] / "rigs" / "realities"
_RIG_KEYS = ("envs", "env_kwargs", "description", "safety")
_FIXED_FAMILIES = ("physics", "effect")
MAX_SEED = 2**32  # episode seeds are in [0, MAX_SEED): numpy's seed range, which dm_control's envs need


@dataclasses.dataclass(frozen=True)
class Reality:
    """A held-out world: fixed physics values, latency and noise, for the envs it names."""

    name: str
    source: str
    envs: tuple[str, ...]
    description: str
    env_kwargs: dict[str, Any]
    safety: SafetyConfig
    spec: Any  # simreal.randomize.RandomizationSpec

    @property
    def env_id(self) -> str:
        """The default env."""
        return self.envs[0]

    def values(self) -> list[dict[str, Any]]:
        """Every randomizer of the reality as plain data (target, distribution, operation, source)."""
        return [r.model_dump(mode="json", exclude_none=True) for r in self.spec.enabled()]


def list_realities() -> list[str]:
    """Names of the shipped realities."""
    return sorted(p.stem for p in REALITIES_DIR.glob("*.yaml"))


def _resolve(name: str | os.PathLike) -> pathlib.Path:
    path = pathlib.Path(name)
    for candidate in (path, REALITIES_DIR / path, REALITIES_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(list_realities()) or "none"
    raise RigError(f"{name}: no such reality file (shipped realities: {shipped})")


def load_reality(name: str | os.PathLike | Reality) -> Reality:
    """A shipped reality by name (``"hand_laggy"``) or a reality YAML file, validated (one-line errors)."""
    if isinstance(name, Reality):
        return name
    from simreal.randomize.spec import RandomizationError, parse_spec, read_yaml

    path = _resolve(name)
    source = str(path.resolve())
    try:
        data = read_yaml(path.resolve())  # the randomization files' reader: UTF-8, empty, depth, YAML errors
    except RandomizationError as exc:
        raise RigError(str(exc)) from None
    if not isinstance(data, dict):
        raise RigError(f"{source}: (top level): expected a mapping with 'rig' and 'randomizers'")
    rig = data.pop("rig", None)
    if not isinstance(rig, dict):
        raise RigError(f"{source}: rig: required mapping with 'envs' (the env ids this reality fits) is missing")
    unknown = sorted(set(rig) - set(_RIG_KEYS))
    if unknown:
        raise RigError(f"{source}: rig.{unknown[0]}: unknown key (known: {', '.join(_RIG_KEYS)})")
    envs = rig.get("envs")
    envs = [envs] if isinstance(envs, str) else envs
    if not envs or not isinstance(envs, list) or not all(isinstance(e, str) and e for e in envs):
        raise RigError(f"{source}: rig.envs: expected an env id or a list of env ids; got {rig.get('envs')!r}")
    env_kwargs = rig.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise RigError(f"{source}: rig.env_kwargs: expected a mapping; got {type(env_kwargs).__name__}")
    description = rig.get("description", "")
    if not isinstance(description, str):
        raise RigError(f"{source}: rig.description: expected a string")
    try:
        safety = SafetyConfig.from_dict(rig.get("safety"), "rig.safety")
    except ValueError as exc:
        raise RigError(f"{source}: {exc}") from None
    for key in ("extends", "remove", "adr"):
        if data.get(key):
            raise RigError(f"{source}: {key}: not allowed in a reality (list every value it sets, fixed)")
    try:
        spec = parse_spec(data, source)
    except RandomizationError as exc:
        raise RigError(str(exc)) from None
    for i, r in enumerate(spec.randomizers):
        if r.enabled and r.family in _FIXED_FAMILIES and r.distribution.type != "constant":
            raise RigError(f"{source}: randomizers[{i}] ({r.name}).distribution: a reality fixes {r.family} values; "
                           f"use {{type: constant, value: ...}} (only observation and action noise may be random)")
    return Reality(name=path.stem, source=source, envs=tuple(envs), description=description,
                   env_kwargs=dict(env_kwargs), safety=safety, spec=spec)


def _render_kwargs(env_id: str, size: tuple[int, int]) -> dict[str, Any]:
    h, w = int(size[0]), int(size[1])
    if env_id.startswith("dm_control/"):
        return {"render_mode": "rgb_array", "render_kwargs": {"height": h, "width": w, "camera_id": 0}}
    return {"render_mode": "rgb_array", "height": h, "width": w}


class SimulatedRig(Rig):
    """An env under a fixed reality, as a rig (kind ``sim``).

    Args:
        reality: a shipped reality name, a reality YAML path, a `Reality`, or
            ``None`` for the nominal simulator (then ``env_id`` is required).
        env_id: the env to run (default: the reality's first env); must be one
            the reality lists. Use the id the policy was trained on.
        env_kwargs: env constructor arguments, over the reality's ``env_kwargs``
            (HandCubeConfig fields for the hand: ``goal``, ``control``, ...).
        action_repeat, pixels, pixels_only: as in the training env
            (`simreal.training.envs.make_training_env`); the hand takes pixels (its tiled
            camera image) but no action repeat.
        seed: episode ``k`` (counting resets) without an explicit seed uses ``seed + k``.
        safety: SafetyConfig fields over the reality's ``rig.safety`` defaults.
        cameras: (height, width) to record camera images with each observation
            (the hand's three cameras; camera 0 of other envs).
        realtime: pace steps at ``control_dt`` of wall-clock time, like hardware.
        name: the rig's name (default ``sim:<reality>``).

    Commands: for the hand, the 20 joint position targets (rad; limits: the
    actuators' control range), from the action as the env maps it (relative to
    the measured angles for ``control="relative"``; with ``action="discrete"``
    the safety layer picks, per actuator, the bin nearest the wanted target
    whose own target keeps within the limits and ``max_delta`` of the last
    one, so ``max_delta`` must be at least the bin spacing, a tenth of the
    control range with 11 bins); for other envs the action
    itself (limits: the action space's bounds). The safe state holds the joints
    where they are (hand) or sets every control to zero.
    """

    def __init__(self, reality: str | os.PathLike | Reality | None = "hand_nominal", *, env_id: str | None = None,
                 env_kwargs: Mapping[str, Any] | None = None, action_repeat: int = 1,
                 pixels: tuple[int, int] | None = None, pixels_only: bool = False, seed: int = 0,
                 safety: SafetyConfig | None = None, cameras: tuple[int, int] | None = None,
                 realtime: bool = False, name: str | None = None):
        self.reality = None if reality is None else load_reality(reality)
        if self.reality is None:
            if env_id is None:
                raise RigError("SimulatedRig: give a reality or an env_id (nominal simulator)")
        elif env_id is None:
            env_id = self.reality.env_id
        elif env_id not in self.reality.envs:
            raise RigError(f"{self.reality.source}: reality {self.reality.name!r} is for {', '.join(self.reality.envs)}; "
                           f"got env {env_id!r}")
        self.seed = int(seed)
        if not 0 <= self.seed < MAX_SEED:
            raise RigError(f"SimulatedRig: seed must be in [0, 2**32); got {seed}")
        self.realtime = bool(realtime)
        self.cameras = None if cameras is None else (int(cameras[0]), int(cameras[1]))
        self.env_kwargs = {**(self.reality.env_kwargs if self.reality else {}), **dict(env_kwargs or {})}
        self.action_repeat = int(action_repeat)
        self.pixels = None if pixels is None else (int(pixels[0]), int(pixels[1]))
        self.holding = False  # the safe state was applied (watchdog, stop or episode end)
        self._episodes = 0
        self._next_tick = 0.0
        spec = self.reality.spec if self.reality is not None and self.reality.spec.enabled() else None
        native = native_env(env_id)
        backend_class = GymRigBackend if native is None else native.load("rig")
        self.backend = backend_class(self, env_id, spec, pixels_only)
        self.env, self.stack = self.backend.env, self.backend.stack
        self.sim = getattr(self.backend, "sim", None)  # the batched Sim of a native env, else None
        base_safety = self.reality.safety if self.reality is not None else SafetyConfig()
        super().__init__(name=name or f"sim:{self.reality.name if self.reality else 'nominal'}", kind="sim",
                         observation_space=self.env.observation_space, action_space=self.env.action_space,
                         control_dt=self.backend.control_dt, command_names=self.backend.command_names,
                         command_low=self.backend.low, command_high=self.backend.high,
                         command_units=self.backend.units,
                         safety=base_safety.merged(safety), env_id=env_id)

    # ------------------------------------------------------------------ hooks
    def _reset(self, seed, options):
        if seed is None:
            seed = self.seed + self._episodes
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < MAX_SEED:
            self.episode_seed = None
            raise ValueError(f"rig {self.name}: reset seed must be an integer in [0, 2**32); got {seed!r}")
        try:
            obs, info = self.env.reset(seed=int(seed), options=options)
        except BaseException:
            self.episode_seed = None  # no episode started: nothing counted, no seed
            raise
        self.episode_seed = int(seed)
        self._episodes += 1
        self.holding = False
        self._next_tick = time.monotonic() + self.control_dt
        return obs, dict(info)

    def _command_of(self, action: np.ndarray) -> np.ndarray:
        return self.backend.command_of(action)

    def _action_of(self, command: np.ndarray) -> np.ndarray:
        return self.backend.action_of(command)

    def _command_choices(self) -> np.ndarray:
        return self.backend.command_choices()

    def _command_spacing(self) -> np.ndarray:
        return self.backend.command_spacing()

    def _apply(self, command, action):
        if self.realtime:
            delay = self._next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_tick = max(self._next_tick, time.monotonic()) + self.control_dt
        self.holding = False
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), dict(info)

    def _hold_command(self) -> np.ndarray:
        return self.backend.hold_command()

    def _safe_state(self) -> None:
        self.backend.safe_state()
        self.holding = True

    def _close(self) -> None:
        self.env.close()

    def _frames(self) -> dict[str, np.ndarray] | None:
        if self.cameras is None or self.pixels is not None:
            return None
        return self.backend.frames()

    def _sim_state(self) -> dict[str, np.ndarray]:
        return self.backend.sim_state()

    def _extra_info(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"env_kwargs": dict(self.env_kwargs), "action_repeat": self.action_repeat,
                                 "pixels": list(self.pixels) if self.pixels else None, "seed": self.seed}
        if self.reality is not None:
            extra["reality"] = {"name": self.reality.name, "source": self.reality.source,
                                "description": self.reality.description, "randomizers": self.reality.values()}
        return {**extra, **self.backend.extra_info()}


class GymRigBackend:
    """The `SimulatedRig` backend of any Gymnasium / dm_control MuJoCo env with Box actions: commands
    are the action itself (limits: the action space's bounds), the safe state sets every control to
    zero, frames are camera 0."""

    units = "actuator control (the env's action)"
    discrete = False

    def __init__(self, rig: SimulatedRig, env_id: str, spec, pixels_only: bool):
        from simreal.randomize.effects import actuator_names
        from simreal.randomize.wrappers import RandomizedEnv, find_mujoco
        from simreal.training.envs import single_env_factory

        kwargs = dict(rig.env_kwargs)
        if rig.cameras is not None and rig.pixels is None:
            kwargs.update(_render_kwargs(env_id, rig.cameras))
        self.env = single_env_factory(env_id, seed=rig.seed, randomization=spec, action_repeat=rig.action_repeat,
                                      pixels=rig.pixels, pixels_only=pixels_only, env_kwargs=kwargs)()
        # gymnasium's PassiveEnvChecker (gym.make's) marks its first reset as checked before running it; when
        # that first reset fails (a bad seed or options from a client) it keeps no reset data and every first
        # step after it fails ("cannot unpack non-iterable NoneType object"), whatever later resets do. So the
        # env's first reset happens here, with the rig's own valid seed; every episode reseeds it anyway.
        self.env.reset(seed=rig.seed)
        if not isinstance(self.env.action_space, gym.spaces.Box):
            raise RigError(f"SimulatedRig: {env_id} has a {type(self.env.action_space).__name__} action space; "
                           "rigs need continuous (Box) actions")
        layer, self.stack = self.env, None
        while isinstance(layer, gym.Wrapper):
            if isinstance(layer, RandomizedEnv):
                self.stack = layer.stack
                break
            layer = layer.env
        model, self._data, control_dt = find_mujoco(self.env)
        self.control_dt = float(control_dt()) * rig.action_repeat
        space = self.env.action_space
        names = actuator_names(model)
        self.command_names = names if space.shape == (len(names),) else [f"a{i}" for i in range(space.shape[0])]
        self.low = np.broadcast_to(space.low, space.shape).astype(np.float64).ravel()
        self.high = np.broadcast_to(space.high, space.shape).astype(np.float64).ravel()

    def command_of(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=np.float64).ravel()

    def action_of(self, command: np.ndarray) -> np.ndarray:
        return command

    def command_choices(self) -> np.ndarray:
        raise RigError("SimulatedRig: a Box action space has no discrete command choices")

    def command_spacing(self) -> np.ndarray:
        raise RigError("SimulatedRig: a Box action space has no discrete command spacing")

    def hold_command(self) -> np.ndarray:
        return np.clip(np.zeros_like(self.low), self.low, self.high)

    def safe_state(self) -> None:
        data = self._data()
        data.ctrl[:] = np.clip(0.0, self.low, self.high) if data.ctrl.shape == self.low.shape else 0.0

    def frames(self) -> dict[str, np.ndarray]:
        return {"camera0": np.asarray(self.env.render(), dtype=np.uint8)}

    def sim_state(self) -> dict[str, np.ndarray]:
        data = self._data()
        return {"qpos": data.qpos.copy(), "qvel": data.qvel.copy()}

    def extra_info(self) -> dict[str, Any]:
        return {}

    def hold_policy(self):
        raise RigError("--policy hold needs a simulated hand-cube rig (sim:hand_*)")
