"""An example hardware adapter: the LEAP hand (16 Dynamixel motors driven by position targets).

Conventions, from the public LEAP_Hand_API (python/leap_hand_utils and main.py):

* 16 motors, ids 0-15: index (0-3), middle (4-7), ring (8-11), thumb (12-15);
  per finger MCP side, MCP forward, PIP, DIP (the thumb's four in its own order).
* Motor angles are radians with an offset of pi: the motors read pi (180 deg)
  where the "sim"/Allegro convention reads 0 (the flat hand). ``LEAP_OFFSET``
  below is that pi; observations and ``home`` here use the sim convention.
* Joint limits in the sim convention (``LEAPsim_limits``, also the API's
  ``angle_safety_clip``) are ``SIM_LOW``/``SIM_HIGH``; the rig's command limits
  are those plus pi, in motor radians.
* The motors run in current-based position mode (operating mode 5), P gain
  600 (450 for the three side joints), D gain 200 (150), current limit 350 mA
  for the lite hand (550 for the full one); the API recommends reading at most
  ~90 samples per second, so the default control period here is 50 ms.

The hardware plugs in through a `MotorBus` (``read_positions``,
``write_targets``, ``set_torque``): `DynamixelMotorBus` drives a real hand
through LEAP's own ``DynamixelClient``; `FakeMotorBus` is a first-order lag
toward the targets, for tests and dry runs. `LeapHandRig` is the `Rig` around
a bus: actions in [-1, 1] map onto each joint's range (LEAP's ``sim_ones``
convention for RL policies), observations are ``joint_pos`` and ``joint_vel``
(sim convention, rad and rad/s) and ``joint_target`` (the last safe target,
sim convention). The watchdog's safe state holds the measured position; the
emergency stop turns the motor torque off.

Serving it over the network next to the robot::

    simreal rig serve --leap /dev/ttyUSB0 --token-file ~/.config/simreal/rig_token
    simreal rig serve --leap fake          # the same with a FakeMotorBus
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

from simreal.rigs.base import Rig, RigError, SafetyConfig
from simreal.utils.seeding import make_rng

N_MOTORS = 16
LEAP_OFFSET = 3.14159  # motor radians = sim radians + this (the API's own constant)
SIM_LOW = np.array([-1.047, -0.314, -0.506, -0.366, -1.047, -0.314, -0.506, -0.366,
                    -1.047, -0.314, -0.506, -0.366, -0.349, -0.47, -1.20, -1.34])
SIM_HIGH = np.array([1.047, 2.23, 1.885, 2.042, 1.047, 2.23, 1.885, 2.042,
                     1.047, 2.23, 1.885, 2.042, 2.094, 2.443, 1.90, 1.88])
JOINT_NAMES = tuple(f"{finger}_{joint}" for finger in ("index", "middle", "ring")
                    for joint in ("mcp_side", "mcp_forward", "pip", "dip")) + (
    "thumb_0", "thumb_1", "thumb_2", "thumb_3")
DEFAULT_SAFETY = SafetyConfig(max_delta=0.2, watchdog_timeout=0.5)  # 0.2 rad per 50 ms step = 4 rad/s


@runtime_checkable
class MotorBus(Protocol):
    """The motors of a position-controlled hand (radians in the motors' own convention)."""

    def read_positions(self) -> np.ndarray: ...

    def write_targets(self, targets: np.ndarray) -> None: ...

    def set_torque(self, enabled: bool) -> None: ...


class FakeMotorBus:
    """Motors that follow their targets with a first-order lag, one control period per write.

    ``positions`` moves toward the last target by ``1 - exp(-dt / time_constant)``
    of the gap at each ``write_targets`` (so it is deterministic, whatever the
    wall clock does); with torque off the motors do not move. Every write is
    kept in ``writes`` (with the torque state) so tests can check what the
    "hardware" received. ``noise`` adds Gaussian read noise (rad).
    """

    def __init__(self, n_motors: int = N_MOTORS, dt: float = 0.05, time_constant: float = 0.05,
                 initial: np.ndarray | None = None, noise: float = 0.0, seed: int = 0):
        self.n_motors = int(n_motors)
        self.alpha = 1.0 - math.exp(-float(dt) / float(time_constant))
        start = np.full(self.n_motors, LEAP_OFFSET) if initial is None else np.asarray(initial, np.float64)
        self.positions = start.astype(np.float64).copy()
        self.targets = self.positions.copy()
        self.torque = False
        self.noise = float(noise)
        self.rng = make_rng(seed, "fake_motor_bus")
        self.writes: list[np.ndarray] = []
        self.torque_log: list[bool] = []

    def read_positions(self) -> np.ndarray:
        if self.noise:
            return self.positions + self.noise * self.rng.standard_normal(self.n_motors)
        return self.positions.copy()

    def write_targets(self, targets: np.ndarray) -> None:
        targets = np.asarray(targets, np.float64)
        if targets.shape != (self.n_motors,) or not np.all(np.isfinite(targets)):
            raise ValueError(f"FakeMotorBus: targets must be {self.n_motors} finite numbers; got {targets!r}")
        self.writes.append(targets.copy())
        self.torque_log.append(self.torque)
        self.targets = targets.copy()
        if self.torque:
            self.positions += self.alpha * (self.targets - self.positions)

    def set_torque(self, enabled: bool) -> None:
        self.torque = bool(enabled)


class DynamixelMotorBus:
    """A real LEAP hand through the LEAP_Hand_API's ``DynamixelClient`` (not tested here: no hardware).

    Needs ``dynamixel_sdk`` and LEAP_Hand_API's ``python`` folder on the path
    (``leap_hand_utils.dynamixel_client``). Configures the motors as LEAP's
    ``main.py`` does: current-based position mode, P/I/D gains, current limit.
    """

    def __init__(self, port: str, motor_ids: Sequence[int] = tuple(range(N_MOTORS)), baudrate: int = 4_000_000,
                 kp: float = 600.0, ki: float = 0.0, kd: float = 200.0, current_limit: float = 350.0):
        try:
            from leap_hand_utils.dynamixel_client import DynamixelClient
        except ImportError:
            raise RigError("the LEAP hand needs LEAP_Hand_API's python/ folder on PYTHONPATH and "
                           "'pip install dynamixel_sdk' (https://github.com/leap-hand/LEAP_Hand_API)") from None
        self.motors = list(motor_ids)
        self.client = DynamixelClient(self.motors, port, baudrate)
        self.client.connect()
        side = [m for m in (0, 4, 8) if m in self.motors]
        ones = np.ones(len(self.motors))
        self.client.sync_write(self.motors, ones * 5, 11, 1)            # operating mode 5: current-based position
        self.client.set_torque_enabled(self.motors, True)
        self.client.sync_write(self.motors, ones * kp, 84, 2)           # position P gain
        self.client.sync_write(side, np.ones(len(side)) * kp * 0.75, 84, 2)
        self.client.sync_write(self.motors, ones * ki, 82, 2)           # position I gain
        self.client.sync_write(self.motors, ones * kd, 80, 2)           # position D gain
        self.client.sync_write(side, np.ones(len(side)) * kd * 0.75, 80, 2)
        self.client.sync_write(self.motors, ones * current_limit, 102, 2)  # current limit (mA)

    def read_positions(self) -> np.ndarray:
        return np.asarray(self.client.read_pos(), np.float64)

    def write_targets(self, targets: np.ndarray) -> None:
        self.client.write_desired_pos(self.motors, np.asarray(targets, np.float64))

    def set_torque(self, enabled: bool) -> None:
        self.client.set_torque_enabled(self.motors, bool(enabled))

    def close(self) -> None:
        self.client.disconnect()


class LeapHandRig(Rig):
    """The LEAP hand as a rig (kind ``real``; ``sim`` when its bus is a `FakeMotorBus`).

    Args:
        bus: the motors (a `MotorBus`).
        control_dt: seconds per step; with ``realtime`` each step waits for its tick.
        max_episode_steps: an episode is truncated after this many steps (a real
            rig has no task end of its own; rewards are 0).
        home: the reset pose (sim convention, rad), default the flat hand (zeros).
        safety: over `DEFAULT_SAFETY` (0.2 rad per step, 0.5 s watchdog).
        realtime: pace steps at ``control_dt`` (default: True unless the bus is fake).
    """

    def __init__(self, bus: MotorBus, *, control_dt: float = 0.05, max_episode_steps: int = 200,
                 home: np.ndarray | None = None, safety: SafetyConfig | None = None,
                 realtime: bool | None = None, name: str = "leap_hand"):
        if not isinstance(bus, MotorBus):
            raise TypeError(f"LeapHandRig: bus must have read_positions, write_targets and set_torque; "
                            f"got {type(bus).__name__}")
        self.bus = bus
        self.max_episode_steps = int(max_episode_steps)
        self.fake = isinstance(bus, FakeMotorBus)
        self.realtime = (not self.fake) if realtime is None else bool(realtime)
        self.home = np.zeros(N_MOTORS) if home is None else np.asarray(home, np.float64)
        if self.home.shape != (N_MOTORS,) or np.any(self.home < SIM_LOW) or np.any(self.home > SIM_HIGH):
            raise ValueError(f"LeapHandRig: home must be {N_MOTORS} joint angles within the joint limits")
        self.low, self.high = SIM_LOW + LEAP_OFFSET, SIM_HIGH + LEAP_OFFSET
        self.torque_enabled = False
        self._steps = 0
        self._prev_pos = np.zeros(N_MOTORS)
        self._target = np.zeros(N_MOTORS)
        self._next_tick = 0.0
        joint = gym.spaces.Box(-np.inf, np.inf, (N_MOTORS,), np.float32)
        obs_space = gym.spaces.Dict({
            "joint_pos": joint,
            "joint_vel": joint,
            "joint_target": gym.spaces.Box(SIM_LOW.astype(np.float32), SIM_HIGH.astype(np.float32),
                                           (N_MOTORS,), np.float32),
        })
        action_space = gym.spaces.Box(-1.0, 1.0, (N_MOTORS,), np.float32)
        super().__init__(name=name, kind="sim" if self.fake else "real", observation_space=obs_space,
                         action_space=action_space, control_dt=control_dt, command_names=JOINT_NAMES,
                         command_low=self.low, command_high=self.high,
                         command_units="rad (motor position targets, LEAP convention: sim angle + pi)",
                         safety=DEFAULT_SAFETY.merged(safety))

    # ------------------------------------------------------------------ mapping
    def _command_of(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, np.float64).ravel()
        return SIM_LOW + 0.5 * (a + 1.0) * (SIM_HIGH - SIM_LOW) + LEAP_OFFSET

    def _action_of(self, command: np.ndarray) -> np.ndarray:
        sim = np.asarray(command, np.float64) - LEAP_OFFSET
        return (2.0 * sim - SIM_HIGH - SIM_LOW) / (SIM_HIGH - SIM_LOW)

    # ------------------------------------------------------------------ hooks
    def _observe(self) -> dict[str, np.ndarray]:
        pos = np.asarray(self.bus.read_positions(), np.float64) - LEAP_OFFSET
        vel = (pos - self._prev_pos) / self.control_dt
        self._prev_pos = pos
        return {"joint_pos": pos.astype(np.float32), "joint_vel": vel.astype(np.float32),
                "joint_target": (self._target - LEAP_OFFSET).astype(np.float32)}

    def _wait_tick(self) -> None:
        if self.realtime:
            delay = self._next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_tick = max(self._next_tick, time.monotonic()) + self.control_dt

    def _reset(self, seed, options):
        """Torque on, then move to ``home`` no faster than the safety layer's max change per step."""
        self.bus.set_torque(True)
        self.torque_enabled = True
        current = np.clip(np.asarray(self.bus.read_positions(), np.float64), self.low, self.high)
        goal = self.home + LEAP_OFFSET
        step = self.safety.max_delta if self.safety.max_delta is not None else np.full(N_MOTORS, np.inf)
        self._next_tick = time.monotonic()
        target = current
        for _ in range(10_000):
            target = target + np.clip(goal - target, -step, step)
            self._wait_tick()
            self.bus.write_targets(target)
            if np.allclose(target, goal):
                break
        self._target = target
        self._prev_pos = np.asarray(self.bus.read_positions(), np.float64) - LEAP_OFFSET
        self._steps = 0
        return self._observe(), {"home": self.home.tolist()}

    def _apply(self, command, action):
        self._wait_tick()
        self.bus.write_targets(command)
        self._target = np.asarray(command, np.float64).copy()
        self._steps += 1
        obs = self._observe()
        truncated = self._steps >= self.max_episode_steps
        return obs, 0.0, False, truncated, {}

    def _hold_command(self) -> np.ndarray:
        return np.clip(np.asarray(self.bus.read_positions(), np.float64), self.low, self.high)

    def _safe_state(self) -> None:
        """Hold the measured position (torque stays on)."""
        if self.torque_enabled:
            self.bus.write_targets(self._hold_command())

    def _emergency_stop(self) -> None:
        """Torque off: the motors go limp."""
        self.bus.set_torque(False)
        self.torque_enabled = False

    def _close(self) -> None:
        self._safe_state()
        close = getattr(self.bus, "close", None)
        if callable(close):
            close()

    def _extra_info(self) -> dict[str, Any]:
        return {"bus": type(self.bus).__name__, "max_episode_steps": self.max_episode_steps,
                "home": self.home.tolist(), "leap_offset": LEAP_OFFSET}
