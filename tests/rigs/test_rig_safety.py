"""The safety layer every rig runs behind: adversarial actions, joint limits, rate limit, watchdog, e-stop."""

import threading
import time

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simreal.rigs.base import (
    EmergencyStopped,
    EpisodeNotStarted,
    Rig,
    RigInfo,
    SafetyConfig,
    WatchdogTripped,
)
from simreal.rigs.leap import LEAP_OFFSET, SIM_HIGH, SIM_LOW, FakeMotorBus, LeapHandRig

LOW = np.array([-1.0, -0.5, 0.0])
HIGH = np.array([1.0, 0.5, 2.0])


class PositionRig(Rig):
    """A 3-joint position-controlled rig whose 'hardware' logs what it received.

    Actions in [-1, 1] map onto [LOW, HIGH]; the joints jump to their targets.
    """

    def __init__(self, safety=None):
        self.position = np.array([0.0, 0.0, 1.0])
        self.sent: list[np.ndarray] = []
        self.safe_states = 0
        self.stops = 0
        space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        obs = gym.spaces.Dict({"q": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
        super().__init__(name="position-rig", kind="sim", observation_space=obs, action_space=space, control_dt=0.01,
                         command_names=["j0", "j1", "j2"], command_low=LOW, command_high=HIGH,
                         command_units="rad", safety=safety)

    def _obs(self):
        return {"q": self.position.astype(np.float32)}

    def _command_of(self, action):
        return LOW + 0.5 * (action + 1.0) * (HIGH - LOW)

    def _action_of(self, command):
        return (2.0 * command - HIGH - LOW) / (HIGH - LOW)

    def _reset(self, seed, options):
        self.position = np.array([0.0, 0.0, 1.0])
        return self._obs(), {}

    def _apply(self, command, action):
        self.sent.append(command.copy())
        self.position = command.copy()
        return self._obs(), 0.0, False, False, {}

    def _hold_command(self):
        return self.position.copy()

    def _safe_state(self):
        self.safe_states += 1

    def _emergency_stop(self):
        self.stops += 1


def _check_invariants(rig: PositionRig, max_delta: float) -> None:
    previous = np.array([0.0, 0.0, 1.0])
    for cmd in rig.sent:
        assert np.all(np.isfinite(cmd))
        assert np.all(cmd >= LOW) and np.all(cmd <= HIGH)
        assert np.all(np.abs(cmd - previous) <= max_delta + 1e-12)
        previous = cmd


def test_adversarial_actions_never_reach_the_hardware():
    rig = PositionRig(SafetyConfig(max_delta=0.1))
    rig.reset()
    attacks = [np.full(3, np.nan), np.full(3, np.inf), np.array([1e9, -1e9, 1e9]), np.array([-1e9, 1e9, -1e9]),
               np.array([np.nan, 0.0, 0.0]), np.array([0.0, -np.inf, 0.0])]
    attacks += [np.full(3, (-1.0) ** k * 1e9) for k in range(20)]  # alternating extremes
    flags = []
    for a in attacks:
        _, _, _, _, info = rig.step(a)
        flags.append(info["safety"])
    _check_invariants(rig, 0.1)
    # a NaN/inf action holds the last safe command exactly (here: the reset position)
    assert np.array_equal(rig.sent[0], [0.0, 0.0, 1.0]) and np.array_equal(rig.sent[1], [0.0, 0.0, 1.0])
    assert [f["non_finite"] for f in flags[:6]] == [True, True, False, False, True, True]
    stats = rig.safety_stats
    assert (stats.steps, stats.non_finite) == (26, 4)
    assert stats.clipped == 22 and stats.rate_limited == 22
    # +-1e9 is clipped to the limits, and the command moves at most 0.1 per step toward them
    assert np.allclose(rig.sent[2], [0.1, -0.1, 1.1]) and np.allclose(rig.sent[3], [0.0, 0.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                   st.sampled_from([1e9, -1e9, 1e300, -1e300])), min_size=3, max_size=3),
                min_size=1, max_size=25),
       st.floats(min_value=0.01, max_value=1.0))
def test_limits_hold_for_any_action_sequence(actions, max_delta):
    rig = PositionRig(SafetyConfig(max_delta=max_delta))
    rig.reset()
    for a in actions:
        rig.step(np.asarray(a))
    _check_invariants(rig, max_delta)
    assert rig.safety_stats.steps == len(actions)


def test_tighter_limits_and_per_channel_rate():
    rig = PositionRig(SafetyConfig(max_delta=(0.5, 0.01, 0.5), low=-0.2, high=(0.3, 0.3, 5.0)))
    info = rig.info()
    assert info.command_low == (-0.2, -0.2, 0.0) and info.command_high == (0.3, 0.3, 2.0)
    rig.reset()
    for _ in range(5):
        rig.step(np.ones(3))
    assert np.allclose(rig.sent[-1], [0.3, 0.05, 2.0])  # 0.01 per step on j1; j2 at its joint limit


def test_bad_shapes_and_order_are_errors():
    rig = PositionRig()
    with pytest.raises(EpisodeNotStarted, match="reset"):
        rig.step(np.zeros(3))
    rig.reset()
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        rig.step(np.zeros(4))
    rig.step(np.zeros((1, 3)))  # a policy's batch of one is fine
    with pytest.raises(ValueError, match="max_delta must be > 0"):
        SafetyConfig(max_delta=0.0)
    with pytest.raises(ValueError, match=r"rig.safety.max_speed: unknown key"):
        SafetyConfig.from_dict({"max_speed": 1.0}, "rig.safety")
    with pytest.raises(ValueError, match="empty"):
        PositionRig(SafetyConfig(low=1.5, high=1.6))


def test_subclasses_cannot_bypass_the_safety_layer():
    with pytest.raises(TypeError, match="Rig.step enforces the safety layer"):
        class Sneaky(PositionRig):  # noqa: F841
            def step(self, action):
                return self._apply(action, action)


def test_watchdog_puts_the_rig_in_its_safe_state():
    rig = PositionRig(SafetyConfig(watchdog_timeout=0.2))
    rig.reset()
    for _ in range(5):  # commands faster than the timeout: no trip
        rig.step(np.zeros(3))
        time.sleep(0.01)
    assert rig.safe_states == 0 and not rig.watchdog_tripped
    time.sleep(0.6)
    assert rig.watchdog_tripped and rig.safe_states == 1 and rig.safety_stats.watchdog_trips == 1
    assert not rig.episode_active
    with pytest.raises(WatchdogTripped, match="reset"):
        rig.step(np.zeros(3))
    rig.reset()  # a new episode clears the trip
    rig.step(np.zeros(3))
    rig.end_episode()  # between episodes the watchdog is disarmed
    time.sleep(0.4)
    assert rig.safety_stats.watchdog_trips == 1
    rig.close()


def test_emergency_stop_latches_until_cleared():
    rig = PositionRig()
    rig.reset()
    rig.step(np.zeros(3))
    rig.emergency_stop("operator pressed the button")
    assert rig.stopped == "operator pressed the button" and rig.stops == 1
    with pytest.raises(EmergencyStopped, match="operator pressed the button"):
        rig.step(np.zeros(3))
    with pytest.raises(EmergencyStopped):
        rig.reset()
    rig.clear_emergency_stop()
    with pytest.raises(EpisodeNotStarted):
        rig.step(np.zeros(3))
    rig.reset()
    rig.step(np.zeros(3))
    assert rig.safety_stats.emergency_stops == 1


def test_emergency_stop_from_another_thread_stops_a_running_loop():
    rig = PositionRig()
    rig.reset()
    timer = threading.Timer(0.05, rig.emergency_stop, args=("watcher",))
    timer.start()
    steps = 0
    with pytest.raises(EmergencyStopped):
        while steps < 10_000:
            rig.step(np.zeros(3))
            steps += 1
            time.sleep(0.001)
    timer.join()
    assert 0 < steps < 10_000 and rig.stops == 1


def test_leap_hand_on_a_fake_bus_under_attack():
    bus = FakeMotorBus()
    rig = LeapHandRig(bus, safety=SafetyConfig(max_delta=0.1, watchdog_timeout=None))
    rig.reset()
    n_reset = len(bus.writes)
    for k in range(30):
        rig.step(np.full(16, [np.nan, 1e9, -1e9, np.inf][k % 4]))
    low, high = SIM_LOW + LEAP_OFFSET, SIM_HIGH + LEAP_OFFSET
    targets = np.array(bus.writes)
    assert np.all(targets >= low - 1e-12) and np.all(targets <= high + 1e-12)
    assert np.max(np.abs(np.diff(targets, axis=0))) <= 0.1 + 1e-12
    assert rig.safety_stats.non_finite == 15 and len(bus.writes) == n_reset + 30
    rig.emergency_stop("test")
    assert bus.torque is False  # the LEAP adapter's stop: torque off
    rig.close()


def test_rig_info_round_trips_as_plain_data():
    import json

    info = PositionRig(SafetyConfig(max_delta=0.2)).info()
    again = RigInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert again.to_dict() == info.to_dict() and again.safety.max_delta == 0.2


BINS = np.array([[-1.0, -0.6, 0.0, 0.3, 1.0],   # uneven bins: the largest gap (0.7) is the channel's spacing
                 [-0.5, -0.25, 0.0, 0.25, 0.5],
                 [0.0, 0.5, 1.0, 1.5, 2.0]])


class BinRig(PositionRig):
    """PositionRig with a MultiDiscrete action: 5 fixed bins per joint (absolute targets)."""

    def __init__(self, safety=None):
        Rig.__init__(self, name="bin-rig", kind="sim",
                     observation_space=gym.spaces.Dict({"q": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)}),
                     action_space=gym.spaces.MultiDiscrete([5, 5, 5]), control_dt=0.01,
                     command_names=["j0", "j1", "j2"], command_low=LOW, command_high=HIGH, command_units="rad",
                     safety=safety)
        self.position = np.array([0.0, 0.0, 1.0])
        self.sent, self.actions, self.safe_states, self.stops = [], [], 0, 0

    def _command_of(self, action):
        return BINS[np.arange(3), np.clip(np.rint(action), 0, 4).astype(int)]

    def _command_choices(self):
        return BINS

    def _apply(self, command, action):
        self.actions.append(action.copy())
        return super()._apply(command, action)


def test_discrete_actions_refuse_a_rate_limit_below_the_bin_spacing():
    with pytest.raises(ValueError, match=r"max_delta 0.5 is below the bin spacing .*0.7 on channel j0.*at least 0.7"):
        BinRig(SafetyConfig(max_delta=0.5))
    with pytest.raises(ValueError, match=r"limits of channel j1 .* narrower than the bin spacing"):
        BinRig(SafetyConfig(low=(-1.0, -0.1, 0.0), high=(1.0, 0.1, 2.0)))
    BinRig(SafetyConfig(max_delta=(0.7, 0.25, 0.5)))  # one value per channel, each at its spacing


def test_discrete_actions_move_at_most_max_delta_from_bin_to_bin():
    rig = BinRig(SafetyConfig(max_delta=(0.7, 0.25, 0.5)))
    rig.reset()
    rng = np.random.default_rng(0)
    for k in range(150):
        action = rng.integers(0, 5, 3) if k % 10 else np.array([np.nan, 99, -99])
        rig.step(action)
    commands = np.array(rig.sent)
    assert np.all(commands >= LOW) and np.all(commands <= HIGH)
    steps = np.abs(np.diff(np.vstack([[0.0, 0.0, 1.0], commands]), axis=0))
    assert np.all(steps <= np.array([0.7, 0.25, 0.5]) + 1e-12)
    # every command is a bin's, and the action sent is that bin
    actions = np.array(rig.actions)
    assert actions.dtype == np.int64
    assert np.array_equal(BINS[np.arange(3), actions], commands)
    # a wanted bin within reach is taken exactly; the rate limit was needed on some steps
    assert rig.safety_stats.rate_limited > 20 and len(set(map(tuple, actions))) > 20
