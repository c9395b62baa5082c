"""ReplayRig plays recorded episodes back exactly; recorded actions replay in simulation bit for bit."""

import numpy as np
import pytest

from simreal.rigs import DatasetReader, RigError, open_rig, random_policy, record, run_episodes
from simreal.rigs.replay import ReplayRig
from simreal.rigs.sim import SimulatedRig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "laggy"
    rig = SimulatedRig("cartpole_laggy")
    record(rig, path)
    results = run_episodes(rig, random_policy(rig, seed=3), 3, seed=20, max_steps=25)
    rig.close()
    return path, results


def test_replay_reproduces_the_recorded_episodes(dataset):
    path, results = dataset
    rig = ReplayRig(path)
    info = rig.info()
    assert info.kind == "replay" and info.name == "replay:sim:cartpole_laggy" and info.control_dt == 0.01
    reader = DatasetReader(path)
    for k, result in enumerate(results):
        obs, reset_info = rig.reset()
        ep = reader[k]
        assert reset_info["episode"] == k and reset_info["recorded_seed"] == 20 + k
        assert np.array_equal(obs["position"], ep.observations["position"][0])
        rewards, steps = [], 0
        while True:
            logged = rig.next_action()
            nudged = logged - 0.25 * np.sign(logged)  # a policy under evaluation, off by 0.25 every other step
            obs, reward, terminated, truncated, step_info = rig.step(logged if steps % 2 else nudged)
            steps += 1
            rewards.append(reward)
            assert np.array_equal(obs["velocity"], ep.observations["velocity"][steps])
            assert step_info["action_error"] == (0.0 if (steps - 1) % 2 else pytest.approx(0.25))
            if terminated or truncated:
                break
        assert steps == result.steps == 25 and np.array_equal(rewards, result.rewards)
    with pytest.raises(RigError, match="all 3 recorded episodes played"):
        rig.reset()
    obs, reset_info = rig.reset(options={"episode": 1})
    assert reset_info["recorded_seed"] == 21
    rig.close()
    looping = ReplayRig(path, episodes=[2], loop=True)
    assert [looping.reset()[1]["episode"] for _ in range(3)] == [2, 2, 2]
    assert open_rig(f"replay:{path}").kind == "replay" and open_rig(str(path)).kind == "replay"


def test_recorded_actions_replay_in_simulation_bit_for_bit(dataset):
    """Calibration's premise: the log's actions, replayed on the same reality and seed, give the log."""
    path, _ = dataset
    reader = DatasetReader(path)
    rig = SimulatedRig("cartpole_laggy")
    for ep in reader:
        obs, _ = rig.reset(seed=ep.seed)
        assert np.array_equal(obs["position"], ep.observations["position"][0])
        for t, action in enumerate(ep.actions):
            obs, reward, *_ = rig.step(action)
            assert np.array_equal(obs["position"], ep.observations["position"][t + 1])
            assert reward == ep.rewards[t]
        assert np.array_equal(rig._sim_state()["qpos"], ep.sim_state["qpos"][-1])
    rig.close()
