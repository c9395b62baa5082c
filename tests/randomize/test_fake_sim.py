"""The step pipeline on the smallest Sim: the documented order, clipping, nominals restored."""

import numpy as np

from simreal.envs.sim import Sim
from simreal.randomize import parse_spec

from fake_sim import FakeSim


def entry(name, target, value, op="set", **kw):
    return dict(name=name, target=target, distribution={"type": "constant", "value": value}, operation=op, **kw)


def test_the_pipeline_runs_noise_backlash_delay_and_forces_in_order_on_any_sim():
    sim = FakeSim(2)
    assert isinstance(sim, Sim)
    stack = sim.set_randomization(parse_spec({"randomizers": [
        entry("mass", {"field": "body_mass", "names": ["forearm"]}, 2.0, "scale"),
        entry("bias", {"action": "all"}, 0.5, "add"),
        entry("play", {"effect": "backlash", "param": "width"}, 0.2),
        entry("late", {"effect": "action_delay", "param": "delay"}, 0.02),  # 2 of the 4 substeps
        entry("push_p", {"effect": "object_force", "param": "probability", "names": ["arm"]}, 1.0),
        entry("push_s", {"effect": "object_force", "param": "scale", "names": ["arm"]}, 1.0),
    ]}, "fake.yaml"))
    for i in range(2):
        stack.seed(i, 7)
    stack.on_reset(np.arange(2))
    forearm = sim.model.body("forearm").id
    np.testing.assert_allclose(sim.batch.expand("body_mass")[:, forearm], 0.6)
    first = sim.step(np.full((2, 2), 0.9))    # 0.9 + 0.5 noise -> 1 (clipped); backlash: starts there
    assert first.shape == (2, 4, 2)           # the delay cuts the step: the reset ctrl, then the new command
    np.testing.assert_allclose(first[:, 2:], 1.0)
    np.testing.assert_allclose(first[:, :2], 0.0)
    second = sim.step(np.full((2, 2), -0.5))  # 0.0 after noise; backlash trails by half the width: 0.1
    np.testing.assert_allclose(second[:, :2], 1.0)
    np.testing.assert_allclose(second[:, 2:], 0.1)
    assert np.all(np.abs(sim.xfrc_applied[:, sim.model.body("arm").id, :3]) > 0)
    assert np.all((first >= -1) & (first <= 1))
    stack.remove("mass")
    np.testing.assert_allclose(sim.batch.expand("body_mass")[:, forearm], 0.3)  # back to nominal
    stack.remove("push_s")
    stack.remove("push_p")
    assert np.all(sim.xfrc_applied == 0)
