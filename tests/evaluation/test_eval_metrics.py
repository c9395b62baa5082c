import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from simreal.evaluation import EpisodeResult, gap, markdown, run_episode, summarize, write_report


class CountingEnv(gym.Env):
    """Reward 1 per step; a 'success' every 3rd step; drops at step 7 when asked."""

    observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (1,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, drop=False):
        self.drop = drop

    def reset(self, *, seed=None, options=None):
        self.t, self.succ = 0, 0
        return {"x": np.zeros(1, np.float32)}, {}

    def step(self, action):
        assert action.shape == (1,)
        self.t += 1
        success = self.t % 3 == 0
        self.succ += success
        dropped = self.drop and self.t == 7
        info = {"consecutive_successes": self.succ, "is_success": success, "dropped": dropped}
        return {"x": np.zeros(1, np.float32)}, 1.0, dropped, self.t >= 10, info


class ConstantPolicy:
    observation_space, action_space = CountingEnv.observation_space, CountingEnv.action_space

    def initial_state(self, n):
        return None

    def act(self, obs, state, deterministic=True):
        assert obs["x"].shape == (1, 1)
        return np.zeros((1, 1), np.float32), state

    def reset_state(self, state, done):
        return state


def test_run_episode_reads_successes_drops_and_time_to_goal():
    r = run_episode(CountingEnv(), ConstantPolicy(), seed=0, control_dt=0.08)
    assert (r.ret, r.length, r.successes, r.dropped) == (10.0, 10, 3, False)
    assert r.time_to_goal == pytest.approx(0.24)
    d = run_episode(CountingEnv(drop=True), ConstantPolicy(), seed=0, control_dt=0.08)
    assert (d.length, d.successes, d.dropped) == (7, 2, True)


def test_summary_and_gap():
    sim = summarize([EpisodeResult(10, 10, 3, False, 0.2), EpisodeResult(20, 10, 5, False, 0.4)])
    rig = summarize([EpisodeResult(4, 5, 1, True, 0.6), EpisodeResult(6, 5, 0, True, None)])
    assert (sim.successes_median, sim.successes_max, sim.drop_rate) == (4.0, 5.0, 0.0)
    assert rig.reached_goal_rate == 0.5 and rig.time_to_goal_median == 0.6
    g = gap(sim, rig)
    assert g["return_mean"] == 10.0 and g["drop_rate"] == -1.0 and g["return_gap_fraction"] == pytest.approx(10 / 15)


def test_report_files(tmp_path):
    sim = summarize([EpisodeResult(10, 10, 3, False, 0.2)])
    rig = summarize([EpisodeResult(4, 5, 1, True, 0.6)])
    ep = [dataclasses.asdict(EpisodeResult(10, 10, 3, False, 0.2))]
    agent = {"name": "ppo-dr", "randomization": "dactyl", "sim": sim.to_json(), "rig": rig.to_json(),
             "gap": gap(sim, rig), "episodes": {"sim": ep, "rig": ep}}
    report = {"rig": {"name": "hand_heavy", "kind": "sim"}, "episodes": 1, "seed": 0,
              "agents": [agent, dict(agent, name="ppo-nodr", randomization=None)]}
    paths = write_report(tmp_path, report)
    text = paths["markdown"].read_text()
    assert "| ppo-dr | dactyl | 10.0 ± 0.0 | 4.0 ± 0.0 | 6.0 |" in text
    assert paths["plot"].stat().st_size > 1000 and markdown(report) == text
