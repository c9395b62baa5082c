"""Effects are plugins: a new one is a class and one registration, and the stack calls its hooks by kind."""

import gymnasium as gym
import numpy as np
import pytest

from simreal.envs.hand_cube import HandCubeEnv
from simreal.randomize import RandomizationError, effects, parse_spec, wrap
from simreal.randomize.effects import Effect, actuator_names


class CtrlOffset(Effect):
    """A toy effect: a constant offset on every joint target (actuator units)."""

    name = "ctrl_offset"
    params = {"offset": 0.0}
    acts_on_action = True

    def __init__(self, sim):
        super().__init__(sim, actuator_names(sim.model))
        self.calls = 0

    def on_ctrl(self, ctrl):
        self.calls += 1
        return ctrl + self.value("offset")


class SecondDelay(Effect):
    name = "second_delay"
    params = {"delay": 0.0}

    def __init__(self, sim):
        super().__init__(sim, actuator_names(sim.model))

    def substep_controls(self, cmd, current, substeps, timestep, low, high, out):
        return cmd

    def segments(self, cmd, current, substeps, timestep):
        return [(substeps, cmd)]


@pytest.fixture
def toy():
    effects.register(CtrlOffset)
    effects.register(SecondDelay)
    yield
    effects.unregister("ctrl_offset")
    effects.unregister("second_delay")


def offset_spec(value, *extra):
    entry = dict(name="offset", target={"effect": "ctrl_offset", "param": "offset"},
                 distribution={"type": "constant", "value": value}, operation="set")
    return parse_spec({"randomizers": [entry, *extra]}, "toy.yaml")


def test_a_registered_effect_validates_binds_and_acts_on_the_hand_and_a_wrapped_env(toy):
    hand = HandCubeEnv(randomization=offset_spec(0.05), control="absolute")
    hand.reset(seed=0)
    hand.step(np.zeros(20, np.float32))
    sim = hand.sim
    assert sim.randomization.effects["ctrl_offset"].calls == 1
    expected = np.clip(sim.ctrl_mid + 0.05, sim.ctrl_low, sim.ctrl_high)
    np.testing.assert_allclose(sim.ctrl[0], expected)

    env = wrap(gym.make("InvertedPendulum-v5"), offset_spec(0.5))
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert env.unwrapped.data.ctrl[0] == pytest.approx(0.5)
    env.close()


def test_an_unknown_effect_or_parameter_and_two_timing_effects_are_one_line(toy):
    with pytest.raises(RandomizationError, match=r"target.effect: .*unknown effect 'nope'.*ctrl_offset"):
        parse_spec({"randomizers": [dict(name="x", target={"effect": "nope", "param": "a"},
                                         distribution={"type": "constant", "value": 1}, operation="set")]}, "t.yaml")
    with pytest.raises(RandomizationError, match="has parameters offset; got 'width'"):
        parse_spec({"randomizers": [dict(name="x", target={"effect": "ctrl_offset", "param": "width"},
                                         distribution={"type": "constant", "value": 1}, operation="set")]}, "t.yaml")
    two = [dict(name=n, target={"effect": e, "param": "delay"}, distribution={"type": "constant", "value": 0.01},
                operation="set") for n, e in (("a", "action_delay"), ("b", "second_delay"))]
    with pytest.raises(RandomizationError, match="both decide when commands reach the actuators") as err:
        HandCubeEnv(randomization=parse_spec({"randomizers": two}, "t.yaml"))
    assert "\n" not in str(err.value)


def test_the_shipped_effects_declare_their_hooks():
    assert effects.effect_class("backlash").hooks() == ("on_ctrl",)
    assert effects.effect_class("action_delay").hooks() == ("substep_controls",)
    assert effects.effect_class("object_force").hooks() == ("before_physics",)
    assert effects.effect_class("marker_freeze").hooks() == ("on_observation",)
    with pytest.raises(TypeError, match="Effect subclass"):
        effects.register(object)
