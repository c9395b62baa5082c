"""The Rig protocol and the safety layer every rig runs behind.

A rig is one robot (or a stand-in for one) with the same observation and action
spaces as the env a policy was trained on::

    rig = SimulatedRig("hand_laggy")               # or RemoteRig(...), ReplayRig(...), LeapHandRig(...)
    obs, info = rig.reset(seed=0)
    obs, reward, terminated, truncated, info = rig.step(action)
    rig.info()                                     # name, kind (sim/real/replay), joints, limits, spaces
    rig.close()

It is single-env: ``obs`` is a dict of unbatched arrays; ``step`` takes one
action (shape ``action_space.shape``, or ``(1, *shape)`` straight from a
policy's batched output).

**Safety.** `Rig.reset`, `Rig.step`, `Rig.close` and the stop methods are
final: a subclass implements the underscore hooks (``_reset``, ``_apply``,
``_hold_command``, ``_safe_state``, ...) and cannot bypass the layer. Each step:

1. the action is reshaped to the action space (a wrong size raises ValueError);
2. a non-finite action (any NaN or inf) is replaced by the last safe command
   (``info["safety"]["non_finite"]``, counted in ``safety_stats``);
3. otherwise it is clipped to the action space's bounds and turned into a
   hardware *command* (``_command_of``: a joint position target in radians for a
   position-controlled hand, the motor command itself for a torque rig);
4. the command is clipped to the joint limits (the rig's ``command_low/high``,
   narrowed by ``SafetyConfig.low/high``) and its change since the last command
   limited to ``SafetyConfig.max_delta`` per step. A discrete (MultiDiscrete)
   action space can only send its bins' commands (``_command_choices``): per
   channel the layer takes the bin nearest the wanted command among those within
   the limits and ``max_delta`` of the last command, and a rig refuses a
   ``max_delta`` (or a low/high band) smaller than its bin spacing;
5. the rig applies it (``_apply``); what the hardware received is recorded.

A **watchdog** thread (``SafetyConfig.watchdog_timeout`` seconds) puts the rig
in its safe state (``_safe_state``: hold the current position, or zero torque,
as the rig defines) when no command arrives during an episode; the episode is
over and ``step`` raises `WatchdogTripped` until the next ``reset``. An
**emergency stop** (``emergency_stop()``, from any thread) latches: ``step`` and
``reset`` raise `EmergencyStopped` until ``clear_emergency_stop()``.

**Recording.** ``rig.attach_recorder(writer)`` (see `simreal.rigs.recording`)
records every episode the rig runs, flushed to disk as each one ends (also
when it is cut short by a stop, an error, ``end_episode`` or ``close``).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from simreal.utils import spaces

KINDS = ("sim", "real", "replay")


# ----------------------------------------------------------------------------- errors
class RigError(RuntimeError):
    """A rig refused or failed an operation (the message is one line)."""


class RigStopped(RigError):
    """The rig is in its safe state and takes no commands (a stop or a watchdog trip)."""


class EmergencyStopped(RigStopped):
    """The emergency stop is latched; ``clear_emergency_stop()`` then ``reset()``."""


class WatchdogTripped(RigStopped):
    """No command arrived in time; the rig went to its safe state. ``reset()`` starts again."""


class EpisodeNotStarted(RigError):
    """``step`` without a running episode (call ``reset`` first)."""


# ----------------------------------------------------------------------------- config
def _channels(value: float | Sequence[float] | np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"safety: {what} must be one number or {n} numbers (one per command channel); "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"safety: {what} must be finite; got {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the safety layer, in the rig's command units (see ``RigInfo.command_units``).

    Attributes:
        max_delta: largest change of each command channel per step (one number
            or one per channel); ``None``: not limited.
        watchdog_timeout: seconds without a command, during an episode, before
            the rig goes to its safe state; ``None``: no watchdog.
        low, high: limits tighter than the rig's own joint limits (one number or
            one per channel); ``None``: the rig's limits.
    """

    max_delta: float | tuple[float, ...] | None = None
    watchdog_timeout: float | None = None
    low: float | tuple[float, ...] | None = None
    high: float | tuple[float, ...] | None = None

    def __post_init__(self):
        for name in ("max_delta", "low", "high"):
            value = getattr(self, name)
            if isinstance(value, (list, np.ndarray)):
                object.__setattr__(self, name, tuple(float(v) for v in np.asarray(value).ravel()))
        if self.max_delta is not None and np.any(np.asarray(self.max_delta, dtype=float) <= 0):
            raise ValueError(f"safety: max_delta must be > 0 (or null for no limit); got {self.max_delta}")
        if self.watchdog_timeout is not None:
            t = self.watchdog_timeout
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise ValueError(f"safety: watchdog_timeout must be a number of seconds > 0 (or null); got {t!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "safety") -> "SafetyConfig":
        """From a mapping (a reality file's ``rig.safety`` block); unknown keys are a one-line error."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping with keys max_delta, watchdog_timeout, low, high; "
                             f"got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
        try:
            return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {str(exc).removeprefix('safety: ')}") from None

    def merged(self, override: "SafetyConfig | None") -> "SafetyConfig":
        """This config with every field ``override`` sets (not None) replaced."""
        if override is None:
            return self
        changes = {f.name: getattr(override, f.name) for f in dataclasses.fields(self)
                   if getattr(override, f.name) is not None}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


@dataclass
class SafetyStats:
    """Cumulative counts of what the safety layer did (since the rig was made)."""

    steps: int = 0
    non_finite: int = 0        # actions with a NaN or inf, replaced by the last safe command
    clipped: int = 0           # steps where the action or the command was clipped to a bound or joint limit
    rate_limited: int = 0      # steps where the change per step was limited
    watchdog_trips: int = 0
    emergency_stops: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class SafetyLayer:
    """The per-step filter (no threads, no I/O): action checks, joint limits, rate limit."""

    def __init__(self, low: np.ndarray, high: np.ndarray, config: SafetyConfig, names: Sequence[str],
                 spacing: np.ndarray | None = None):
        n = len(low)
        self.config = config
        self.names = list(names)
        low = np.asarray(low, dtype=np.float64)
        high = np.asarray(high, dtype=np.float64)
        tight_low = _channels(config.low, n, "low")
        tight_high = _channels(config.high, n, "high")
        self.low = low if tight_low is None else np.maximum(low, tight_low)
        self.high = high if tight_high is None else np.minimum(high, tight_high)
        if np.any(self.low > self.high):
            k = int(np.argmax(self.low > self.high))
            raise ValueError(f"safety: the limits of channel {self.names[k] if k < len(self.names) else k} are "
                             f"empty ([{self.low[k]}, {self.high[k]}]); check low/high against the rig's joint limits")
        self.max_delta = _channels(config.max_delta, n, "max_delta")
        self.spacing = None if spacing is None else np.asarray(spacing, dtype=np.float64).reshape(n)
        if self.spacing is not None:
            self._check_spacing()
        self.last: np.ndarray | None = None  # the last safe command (what the rig was sent)
        self.previous: np.ndarray | None = None  # the one before (the rate limit's reference this step)
        self.stats = SafetyStats()

    def start(self, hold: np.ndarray) -> None:
        """A new episode: the rate limit and the NaN fallback start from ``hold`` (clipped to the limits)."""
        self.last = np.clip(np.asarray(hold, dtype=np.float64), self.low, self.high)

    def limit(self, command: np.ndarray | None) -> tuple[np.ndarray, dict[str, bool]]:
        """The safe command for a wanted one (``None``: a non-finite action, hold the last command)."""
        if self.last is None:
            raise EpisodeNotStarted("the safety layer has no reference command; call reset() first")
        self.previous = self.last
        flags = {"non_finite": command is None, "clipped": False, "rate_limited": False}
        if command is None:
            safe = self.last.copy()
        else:
            safe = np.clip(command, self.low, self.high)
            flags["clipped"] = bool(np.any(safe != command))
            if self.max_delta is not None:
                limited = np.clip(safe, self.last - self.max_delta, self.last + self.max_delta)
                flags["rate_limited"] = bool(np.any(limited != safe))
                safe = limited
        self.last = safe
        return safe, flags

    def _check_spacing(self) -> None:
        """Discrete commands: refuse limits the bins cannot keep (a rate limit below the spacing of
        neighbouring bins would freeze the joints or break the limit; so would a band narrower than it)."""
        spacing, tol = self.spacing, 1e-9
        if self.max_delta is not None and np.any(self.max_delta < spacing - tol):
            k = int(np.argmax(spacing - self.max_delta))
            name = self.names[k] if k < len(self.names) else k
            raise ValueError(f"safety: max_delta {self.max_delta[k]:.6g} is below the bin spacing of the discrete "
                             f"actions ({spacing[k]:.6g} on channel {name}; {spacing.min():.6g} to "
                             f"{spacing.max():.6g} over the channels): no bin keeps within it; use max_delta of at "
                             f"least {spacing.max():.6g} (or at least each channel's spacing, one value per channel)")
        narrow = (self.high - self.low) < spacing - tol
        if np.any(narrow):
            k = int(np.argmax(narrow))
            name = self.names[k] if k < len(self.names) else k
            raise ValueError(f"safety: the limits of channel {name} ([{self.low[k]:.6g}, {self.high[k]:.6g}]) are "
                             f"narrower than the bin spacing of the discrete actions ({spacing[k]:.6g}): "
                             f"no bin may fall inside; widen low/high to at least the spacing")

    def limit_choice(self, command: np.ndarray | None,
                     choices: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, bool]]:
        """The safe command when each channel can only take a few values (a discrete action space).

        ``choices`` is (channels, values): the command each action value gives now (NaN pads a channel
        with fewer values). Per channel, of the values within the limits and within ``max_delta`` of
        the last command, the one nearest the wanted command (clipped to the limits; ``None``: hold the
        last command) is taken, the smaller move on a tie. When none is (only when the last command is
        not itself a choice, e.g. relative targets after the joint was pushed more than half its range
        away), the choice within the limits nearest the last command is.
        Returns (the chosen column per channel, the safe command, flags).
        """
        if self.last is None:
            raise EpisodeNotStarted("the safety layer has no reference command; call reset() first")
        self.previous = last = self.last
        choices = np.asarray(choices, dtype=np.float64)
        flags = {"non_finite": command is None, "clipped": False, "rate_limited": False}
        if command is None:
            target = last
        else:
            target = np.clip(command, self.low, self.high)
            flags["clipped"] = bool(np.any(target != command))
        tol = 1e-9
        valid = np.isfinite(choices)
        c = np.where(valid, choices, 0.0)
        inside = valid & (c >= self.low[:, None] - tol) & (c <= self.high[:, None] + tol)
        to_last = np.abs(c - last[:, None])
        ok = inside if self.max_delta is None else inside & (to_last <= self.max_delta[:, None] + tol)
        to_target = np.where(ok, np.abs(c - target[:, None]), np.inf)
        nearest = ok & (to_target <= to_target.min(axis=1, keepdims=True) + 1e-12)
        best = np.argmin(np.where(nearest, to_last, np.inf), axis=1)
        pool = np.where(inside.any(axis=1, keepdims=True), inside, valid)
        fallback = np.argmin(np.where(pool, to_last, np.inf), axis=1)
        index = np.where(ok.any(axis=1), best, fallback)
        rows = np.arange(len(c))
        safe = c[rows, index]
        flags["rate_limited"] = command is not None and bool(np.any(np.abs(safe - target) > tol))
        self.last = safe
        return index, safe, flags


# ----------------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class RigInfo:
    """What a rig is: identity, timing, spaces, command channels and their limits.

    ``command_names`` name the command channels (the joints of a position-
    controlled hand); ``command_low/high`` are their limits in
    ``command_units``. ``extra`` holds plain-data details of the rig (the
    reality's values for a simulated rig, the source dataset for a replay, ...).
    """

    name: str
    kind: str
    control_dt: float
    observation_space: gym.spaces.Dict
    action_space: gym.spaces.Space
    command_names: tuple[str, ...]
    command_low: tuple[float, ...]
    command_high: tuple[float, ...]
    command_units: str
    safety: SafetyConfig
    env_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-safe); spaces as `space_to_data` (Minari's form) describes them."""
        return {"name": self.name, "kind": self.kind, "control_dt": self.control_dt, "env_id": self.env_id,
                "observation_space": space_to_data(self.observation_space),
                "action_space": space_to_data(self.action_space),
                "command_names": list(self.command_names), "command_low": list(self.command_low),
                "command_high": list(self.command_high), "command_units": self.command_units,
                "safety": self.safety.to_dict(), "extra": jsonable(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RigInfo":
        try:
            return cls(name=str(data["name"]), kind=str(data["kind"]), control_dt=float(data["control_dt"]),
                       observation_space=space_from_data(data["observation_space"]),
                       action_space=space_from_data(data["action_space"]),
                       command_names=tuple(data["command_names"]),
                       command_low=tuple(float(v) for v in data["command_low"]),
                       command_high=tuple(float(v) for v in data["command_high"]),
                       command_units=str(data["command_units"]),
                       safety=SafetyConfig.from_dict(data.get("safety")), env_id=data.get("env_id"),
                       extra=dict(data.get("extra") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RigError(f"rig info: missing or invalid entry ({type(exc).__name__}: {exc})") from None


def space_to_data(space: gym.Space) -> dict:
    """`simreal.utils.spaces.space_to_data` (Minari's form), its refusal as a `RigError`."""
    try:
        return spaces.space_to_data(space)
    except spaces.SpaceFormatError as exc:
        raise RigError(str(exc)) from None


def space_from_data(data: Mapping | str) -> gym.Space:
    """`simreal.utils.spaces.space_from_data` (a JSON string too), its refusal as a `RigError`."""
    try:
        return spaces.space_from_data(data)
    except spaces.SpaceFormatError as exc:
        raise RigError(str(exc)) from None


def action_bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) of a Box or MultiDiscrete action space, float64, flattened."""
    if isinstance(space, gym.spaces.Box):
        return (np.broadcast_to(space.low, space.shape).astype(np.float64).ravel(),
                np.broadcast_to(space.high, space.shape).astype(np.float64).ravel())
    if isinstance(space, gym.spaces.MultiDiscrete):
        start = np.asarray(space.start, np.float64).ravel()
        return start, start + np.asarray(space.nvec, np.float64).ravel() - 1.0
    raise RigError(f"rig actions must be Box or MultiDiscrete; got {type(space).__name__}")


def jsonable(value: Any) -> Any:
    """Plain JSON-safe data from numpy scalars and arrays, tuples, nested dicts (other objects as str)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (int, float, str)):
        return value
    return str(value)


# ----------------------------------------------------------------------------- the rig
_FINAL = ("reset", "step", "close", "emergency_stop", "clear_emergency_stop", "end_episode", "info",
          "attach_recorder", "detach_recorder")


class Rig:
    """Base class of every rig: the public API, the safety layer, the watchdog and recording.

    Subclasses call ``super().__init__(...)`` with their spaces and command
    channels, and implement:

    * ``_reset(seed, options) -> (obs, info)``: start an episode;
    * ``_apply(command, action) -> (obs, reward, terminated, truncated, info)``:
      send one safe command (``action`` is the same command in the action
      space, as the env would take it);
    * ``_hold_command() -> command``: the command that holds the rig where it is;
    * ``_safe_state()``: put the hardware in its safe state (hold / zero torque);
      called by the watchdog (from its thread), at episode ends and on close.

    and may override ``_command_of(action)`` / ``_action_of(command)`` (the
    mapping between actions and commands; identity by default),
    ``_applied_command(command, action)`` (when actions are coarser than commands),
    ``_command_choices()`` / ``_command_spacing()`` (a MultiDiscrete action space: the
    command of each action value now, and the largest gap between neighbouring ones),
    ``_emergency_stop()`` (default: ``_safe_state``), ``_clear_emergency_stop()``,
    ``_on_episode_end()``, ``_close()``, ``_frames()`` (camera images to record),
    ``_sim_state()`` (ground-truth simulator state to record) and ``_extra_info()``.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _FINAL:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__}.{name}: Rig.{name} enforces the safety layer and cannot be "
                                f"overridden; implement the underscore hooks instead (see simreal.rigs.base.Rig)")

    def __init__(self, *, name: str, kind: str, observation_space: gym.spaces.Dict, action_space: gym.spaces.Space,
                 control_dt: float, command_names: Sequence[str], command_low: np.ndarray,
                 command_high: np.ndarray, command_units: str, safety: SafetyConfig | None = None,
                 env_id: str | None = None):
        if kind not in KINDS:
            raise ValueError(f"rig kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if not isinstance(action_space, (gym.spaces.Box, gym.spaces.MultiDiscrete)):
            raise ValueError(f"rig {name}: the safety layer needs a Box or MultiDiscrete action space; "
                             f"got {type(action_space).__name__}")
        if not isinstance(observation_space, gym.spaces.Dict):
            raise ValueError(f"rig {name}: observations must be a Dict space; got {type(observation_space).__name__}")
        self.name = name
        self.kind = kind
        self.observation_space = observation_space
        self.action_space = action_space
        self.control_dt = float(control_dt)
        self.env_id = env_id
        self.command_names = tuple(command_names)
        self.command_units = command_units
        self.safety_config = safety or SafetyConfig()
        self._discrete = isinstance(action_space, gym.spaces.MultiDiscrete)
        if self._discrete and int(np.prod(action_space.shape)) != len(self.command_names):
            raise ValueError(f"rig {name}: a MultiDiscrete action space needs one value per command channel "
                             f"({len(self.command_names)}); got shape {action_space.shape}")
        self.safety = SafetyLayer(np.asarray(command_low, float), np.asarray(command_high, float),
                                  self.safety_config, self.command_names,
                                  spacing=self._command_spacing() if self._discrete else None)
        low, high = action_bounds(action_space)
        self._action_low = low.reshape(action_space.shape)
        self._action_high = high.reshape(action_space.shape)
        self._lock = threading.RLock()
        self._episode_active = False
        self._estop: str | None = None
        self._tripped = False
        self._closed = False
        self._last_command_time = 0.0
        self._episode_start = 0.0
        self._episode_steps = 0
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self._recorder = None
        self.episode_seed: int | None = None  # the running episode's seed (a subclass may resolve a default)

    # ------------------------------------------------------------------ public API (final)
    def info(self) -> RigInfo:
        """Name, kind, timing, spaces, command channels, limits and the rig's own details."""
        return RigInfo(name=self.name, kind=self.kind, control_dt=self.control_dt,
                       observation_space=self.observation_space, action_space=self.action_space,
                       command_names=self.command_names, command_low=tuple(self.safety.low.tolist()),
                       command_high=tuple(self.safety.high.tolist()), command_units=self.command_units,
                       safety=self.safety_config, env_id=self.env_id, extra=self._extra_info())

    @property
    def safety_stats(self) -> SafetyStats:
        return self.safety.stats

    @property
    def episode_active(self) -> bool:
        return self._episode_active

    @property
    def stopped(self) -> str | None:
        """Why the emergency stop is latched, or None."""
        return self._estop

    @property
    def watchdog_tripped(self) -> bool:
        return self._tripped

    @property
    def recorder(self):
        return self._recorder

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Start an episode (a running one is ended first, recorded as ``interrupted``)."""
        self._check_open()
        with self._lock:
            if self._estop is not None:
                raise EmergencyStopped(f"rig {self.name}: emergency stop latched ({self._estop}); "
                                       "call clear_emergency_stop() first")
            if self._episode_active:
                self._finish("interrupted")
            self._tripped = False
            self.episode_seed = seed
            obs, info = self._reset(seed, options)
            self.safety.start(self._hold_command())
            now = time.monotonic()
            self._episode_start = self._last_command_time = now
            self._episode_steps = 0
            self._episode_active = True
            if self._recorder is not None:
                self._recorder.begin_episode(obs, info, seed=self.episode_seed, frames=self._frames(),
                                             sim_state=self._sim_state())
            self._start_watchdog()
            return obs, info

    def step(self, action) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        """One control step with ``action`` made safe first (see the module docstring)."""
        self._check_open()
        raw = self._as_action(action)
        with self._lock:
            if self._estop is not None:  # checked under the lock: a stop that came first always wins
                raise EmergencyStopped(f"rig {self.name}: emergency stop latched ({self._estop}); "
                                       "call clear_emergency_stop() then reset()")
            if self._tripped:
                raise WatchdogTripped(f"rig {self.name}: the watchdog tripped (no command for "
                                      f"{self.safety_config.watchdog_timeout} s); the rig holds its safe state, "
                                      "call reset()")
            if not self._episode_active:
                raise EpisodeNotStarted(f"rig {self.name}: no episode running; call reset() first")
            self._last_command_time = time.monotonic()
            if np.all(np.isfinite(raw)):
                clipped_action = np.clip(raw, self._action_low, self._action_high)
                wanted = self._command_of(clipped_action)
                action_clipped = bool(np.any(clipped_action != raw))
            else:
                wanted, action_clipped = None, False
            if self._discrete:  # only the bins' commands can be sent: the layer picks among them
                index, command, flags = self.safety.limit_choice(wanted, self._command_choices())
                sent = (self._action_low.ravel() + index).astype(self.action_space.dtype)
                sent = sent.reshape(self.action_space.shape)
            else:
                command, flags = self.safety.limit(wanted)
                sent = np.asarray(self._action_of(command), dtype=self.action_space.dtype)
                sent = sent.reshape(self.action_space.shape)
            flags["clipped"] = flags["clipped"] or action_clipped
            stats = self.safety.stats
            stats.steps += 1
            stats.non_finite += flags["non_finite"]
            stats.clipped += flags["clipped"]
            stats.rate_limited += flags["rate_limited"]
            command = self._applied_command(command, sent)
            self.safety.last = command
            try:
                obs, reward, terminated, truncated, info = self._apply(command, sent)
            except RigStopped as exc:  # e.g. a remote rig's server stopped
                self._finish("estop" if isinstance(exc, EmergencyStopped) else "watchdog", safe_state=False)
                raise
            except Exception:
                self._finish("error")
                raise
            self._last_command_time = time.monotonic()
            self._episode_steps += 1
            info = dict(info)
            info["safety"] = flags
            if self._recorder is not None:
                self._recorder.add_step(obs=obs, action=sent, reward=float(reward), terminated=bool(terminated),
                                        truncated=bool(truncated), info=info, command=command, policy_action=raw,
                                        safety=flags, time=self._last_command_time - self._episode_start,
                                        frames=self._frames(), sim_state=self._sim_state())
            if terminated or truncated:
                self._finish("terminated" if terminated else "truncated")
            return obs, float(reward), bool(terminated), bool(truncated), info

    def end_episode(self, reason: str = "cut_off") -> None:
        """End the running episode now (e.g. an evaluation's step cap): safe state, recording flushed."""
        with self._lock:
            if self._episode_active:
                self._finish(reason)

    def emergency_stop(self, reason: str = "emergency stop") -> None:
        """Latch the emergency stop (any thread): the rig goes to its stop state and refuses commands."""
        self._estop = str(reason) or "emergency stop"  # first, so no new step starts
        with self._lock:
            self.safety.stats.emergency_stops += 1
            if self._episode_active:
                self._finish("estop", safe_state=False)
            self._emergency_stop()

    def clear_emergency_stop(self) -> None:
        """Unlatch the emergency stop; the next call must be ``reset()``."""
        with self._lock:
            self._clear_emergency_stop()
            self._estop = None

    def attach_recorder(self, recorder) -> None:
        """Record every episode from the next ``reset`` on (a `simreal.rigs.recording.DatasetWriter`)."""
        with self._lock:
            if self._episode_active:
                raise RigError(f"rig {self.name}: attach a recorder between episodes (before reset)")
            self._recorder = recorder

    def detach_recorder(self):
        """Stop recording (a running episode is flushed first); returns the recorder."""
        with self._lock:
            recorder, self._recorder = self._recorder, None
            if recorder is not None and recorder.episode_open:
                recorder.end_episode("detached")
            return recorder

    def close(self) -> None:
        """End a running episode (recorded as ``closed``), stop the watchdog, release the hardware."""
        if self._closed:
            return
        with self._lock:
            if self._episode_active:
                self._finish("closed")
            self._closed = True
        self._watchdog_stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=1.0)
        with self._lock:
            if self._recorder is not None:
                self._recorder.close()
            self._close()

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise RigError(f"rig {self.name}: closed")

    def _as_action(self, action) -> np.ndarray:
        shape = self.action_space.shape
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"rig {self.name}: action must be numbers of shape {shape}; "
                             f"got {type(action).__name__}") from None
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"rig {self.name}: action must have shape {shape} (or (1, *shape)); got {arr.shape}")
        return arr.reshape(shape)

    def _finish(self, end: str, safe_state: bool = True) -> None:
        """Close the running episode (caller holds the lock)."""
        self._episode_active = False
        if self._recorder is not None and self._recorder.episode_open:
            self._recorder.end_episode(end)
        if safe_state:
            try:
                self._on_episode_end(end)
            except Exception:  # the episode is over either way; a failing hold must not hide the cause
                if end not in ("error", "closed"):
                    raise

    def _start_watchdog(self) -> None:
        timeout = self.safety_config.watchdog_timeout
        if timeout is None or self._watchdog is not None:
            return
        self._watchdog = threading.Thread(target=self._watch, args=(float(timeout),),
                                          name=f"rig-watchdog-{self.name}", daemon=True)
        self._watchdog.start()

    def _watch(self, timeout: float) -> None:
        period = max(min(timeout / 4.0, 0.25), 0.001)
        while not self._watchdog_stop.wait(period):
            if not self._episode_active or time.monotonic() - self._last_command_time <= timeout:
                continue
            if not self._lock.acquire(timeout=period):
                continue  # a command is being applied: that is activity
            try:
                if self._episode_active and time.monotonic() - self._last_command_time > timeout:
                    self._tripped = True
                    self.safety.stats.watchdog_trips += 1
                    self._finish("watchdog", safe_state=False)
                    self._safe_state()
            except Exception:  # noqa: BLE001 - the watchdog thread must survive a failing adapter
                pass
            finally:
                self._lock.release()

    # ------------------------------------------------------------------ hooks
    def _reset(self, seed: int | None, options: dict | None) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError

    def _apply(self, command: np.ndarray, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        raise NotImplementedError

    def _hold_command(self) -> np.ndarray:
        raise NotImplementedError

    def _safe_state(self) -> None:
        raise NotImplementedError

    def _command_of(self, action: np.ndarray) -> np.ndarray:
        """Action (clipped to the action space) -> command in command units; identity by default."""
        return np.asarray(action, dtype=np.float64).ravel()

    def _action_of(self, command: np.ndarray) -> np.ndarray:
        """Command -> the action that produces it (what the env receives and what is recorded)."""
        return np.asarray(command, dtype=np.float64)

    def _applied_command(self, command: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The command ``action`` really produces, when the action cannot express ``command`` exactly;
        it is recorded and becomes the rate limit's reference. Default: ``command`` (discrete action
        spaces get it exact from ``_command_choices``)."""
        return command

    def _command_choices(self) -> np.ndarray:
        """A MultiDiscrete action space: (channels, values), the command each action value
        (``start + column``) gives in the current state; NaN pads a channel with fewer values.
        Default: the action values themselves (the identity ``_command_of``)."""
        space = self.action_space
        nvec = np.asarray(space.nvec).ravel()
        values = np.arange(int(nvec.max()), dtype=np.float64)[None, :]
        choices = np.asarray(space.start, np.float64).ravel()[:, None] + values
        return np.where(values < nvec[:, None], choices, np.nan)

    def _command_spacing(self) -> np.ndarray:
        """A MultiDiscrete action space: the largest gap between neighbouring commands of each
        channel, in any state (the safety layer refuses a ``max_delta`` below it).
        Default: from ``_command_choices()`` as it is at construction."""
        choices = np.sort(np.asarray(self._command_choices(), np.float64), axis=1)
        gaps = np.diff(choices, axis=1)
        return np.nanmax(np.where(np.isfinite(gaps), gaps, np.nan), axis=1, initial=0.0)

    def _emergency_stop(self) -> None:
        self._safe_state()

    def _clear_emergency_stop(self) -> None:
        pass

    def _on_episode_end(self, end: str) -> None:
        """The episode ended (``end`` says how: terminated, truncated, cut_off, error, ...)."""
        self._safe_state()

    def _close(self) -> None:
        pass

    def _frames(self) -> dict[str, np.ndarray] | None:
        """Camera images (H, W, 3) uint8 by camera name to record with each observation, or None."""
        return None

    def _sim_state(self) -> dict[str, np.ndarray] | None:
        """Ground-truth simulator state (``qpos``, ``qvel``) to record with each observation, or None."""
        return None

    def _extra_info(self) -> dict[str, Any]:
        return {}
