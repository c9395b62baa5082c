"""The LEAP hand adapter on a fake motor bus: conventions, reset ramp, lag, stop."""

import math

import numpy as np
import pytest

from simreal.rigs.base import SafetyConfig
from simreal.rigs.leap import (
    LEAP_OFFSET,
    SIM_HIGH,
    SIM_LOW,
    FakeMotorBus,
    LeapHandRig,
    MotorBus,
)


def test_action_and_command_conventions():
    rig = LeapHandRig(FakeMotorBus())
    assert isinstance(rig.bus, MotorBus) and rig.kind == "sim"  # a fake bus is not real hardware
    info = rig.info()
    assert info.command_names[0] == "index_mcp_side" and len(info.command_names) == 16
    assert np.allclose(info.command_low, SIM_LOW + LEAP_OFFSET) and np.allclose(info.command_high, SIM_HIGH + LEAP_OFFSET)
    assert np.allclose(rig._command_of(-np.ones(16)), SIM_LOW + 3.14159)  # LEAP: motor = sim angle + pi
    assert np.allclose(rig._command_of(np.ones(16)), SIM_HIGH + 3.14159)
    a = np.linspace(-1, 1, 16)
    assert np.allclose(rig._action_of(rig._command_of(a)), a)
    assert info.safety.max_delta == 0.2 and info.safety.watchdog_timeout == 0.5  # the adapter's defaults


def test_reset_ramps_home_within_the_rate_limit_and_the_bus_lags():
    start = np.full(16, LEAP_OFFSET) + np.where(np.arange(16) % 2, 0.5, -0.3)
    start = np.clip(start, SIM_LOW + LEAP_OFFSET, SIM_HIGH + LEAP_OFFSET)
    bus = FakeMotorBus(initial=start, dt=0.05, time_constant=0.05)
    rig = LeapHandRig(bus, safety=SafetyConfig(max_delta=0.1))
    obs, info = rig.reset()
    writes = np.array(bus.writes)
    assert bus.torque and len(writes) == 5  # 0.5 rad at 0.1 rad per write
    assert np.max(np.abs(np.diff(np.vstack([start, writes]), axis=0))) <= 0.1 + 1e-12
    assert np.allclose(writes[-1], LEAP_OFFSET) and np.allclose(obs["joint_target"], 0.0, atol=1e-6)
    # first-order lag: each write closes 1 - exp(-1) = 63.2% of the gap
    gap = bus.targets - bus.positions
    before = obs["joint_pos"].astype(np.float64)
    obs, reward, terminated, truncated, _ = rig.step(rig._action_of(bus.targets))
    assert np.allclose(bus.targets - bus.positions, gap * math.exp(-1.0))
    assert reward == 0.0 and not terminated and not truncated
    assert np.allclose(obs["joint_pos"], bus.positions - LEAP_OFFSET, atol=1e-6)
    assert np.allclose(obs["joint_vel"], (obs["joint_pos"] - before) / 0.05, atol=1e-3)


def test_episode_length_and_stops():
    bus = FakeMotorBus()
    rig = LeapHandRig(bus, max_episode_steps=3, safety=SafetyConfig(watchdog_timeout=None))
    rig.reset()
    ends = [rig.step(np.zeros(16))[3] for _ in range(3)]
    assert ends == [False, False, True] and not rig.episode_active
    rig.reset()
    rig.emergency_stop("test")
    assert bus.torque is False
    rig.clear_emergency_stop()
    rig.reset()
    assert bus.torque is True
    with pytest.raises(ValueError, match="home must be 16 joint angles within the joint limits"):
        LeapHandRig(bus, home=np.full(16, 3.0))
    with pytest.raises(TypeError, match="read_positions, write_targets and set_torque"):
        LeapHandRig(object())
    rig.close()
