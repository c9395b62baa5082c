"""Adding a randomizer family is one module plus `register_family`: this file is the whole toy family
(a gain on the policy's action, target ``{gain: GLOBS}``), and files, the stack and the step
pipeline take it with no other edit; unregistered, the same file fails in one line."""

import numpy as np
import pytest
from pydantic import Field

from simreal.randomize import parse_spec
from simreal.randomize.base import BoundRandomizer, match_names
from simreal.randomize.effects import actuator_names
from simreal.randomize.spec import FAMILIES, Family, RandomizationError, _Strict, register_family, unregister_family

from fake_sim import FakeSim


class GainTarget(_Strict):
    """The actuators (globs over their names) whose action channel is multiplied."""

    gain: list[str] = Field(min_length=1)


class ActionGain(BoundRandomizer):
    hooks = frozenset({"on_action"})

    def __init__(self, spec, file, sim):
        self.channels = match_names(actuator_names(sim.model), spec.target.gain)
        super().__init__(spec, file, sim.n_envs, len(self.channels))

    def on_action(self, action):
        action = action.copy()
        action[:, self.channels] *= self.values
        return np.clip(action, -1.0, 1.0)


def bind(stack, r):
    return ActionGain(r, stack.spec, stack.sim)


@pytest.fixture
def gain_family():
    register_family(Family("action_gain", ("gain",), f"{__name__}:bind"), targets={"gain": GainTarget},
                    before="action")
    yield
    unregister_family("action_gain")


FILE = {"randomizers": [
    {"name": "weak_elbow", "target": {"gain": ["a_elbow"]}, "distribution": {"type": "constant", "value": 0.5},
     "operation": "set"},
    {"name": "bias", "target": {"action": "all"}, "distribution": {"type": "constant", "value": 0.1},
     "operation": "add"},
]}


def test_a_registered_family_validates_binds_and_acts_in_the_pipeline(gain_family):
    spec = parse_spec(FILE, "gain.yaml")
    assert [r.family for r in spec.randomizers] == ["action_gain", "action"]
    assert list(FAMILIES).index("action_gain") == list(FAMILIES).index("action") - 1
    sim = FakeSim(2)
    stack = sim.set_randomization(spec)
    stack.on_reset(np.arange(2))
    assert [b.family for b in stack.ordered()] == ["action_gain", "action"]
    ctrl = sim.step(np.full((2, 2), 0.8))
    np.testing.assert_allclose(ctrl, [[0.9, 0.5]] * 2)  # the gain acts on the action alongside its noise
    with pytest.raises(RandomizationError, match=r"one of the keys .*'gain'"):
        parse_spec({"randomizers": [{**FILE["randomizers"][0], "target": {"nope": 1}}]}, "bad.yaml")


def test_without_the_family_the_file_fails_in_one_line_naming_the_key(gain_family):
    unregister_family("action_gain")
    try:
        where = r"^gain.yaml: randomizers\[0\] \(weak_elbow\)\.target: expected a mapping"
        with pytest.raises(RandomizationError, match=where) as err:
            parse_spec(FILE, "gain.yaml")
        assert "\n" not in str(err.value) and "'gain'" not in str(err.value)
    finally:
        register_family(Family("action_gain", ("gain",), f"{__name__}:bind"), targets={"gain": GainTarget})
    with pytest.raises(ValueError, match="already registered"):
        register_family(Family("action_gain", ("gain",), f"{__name__}:bind"))
