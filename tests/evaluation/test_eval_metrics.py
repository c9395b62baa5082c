import dataclasses

import numpy as np
import pytest

from simreal.evaluation import EpisodeMetrics, episode_metrics, gap, markdown, summarize, write_report


def test_episode_metrics_read_successes_drops_and_time_to_goal():
    infos = {"consecutive_successes": np.array([0, 0, 1, 1, 1, 2]), "is_success": np.array([0, 0, 1, 0, 0, 1]),
             "dropped": np.zeros(6)}
    r = episode_metrics(np.ones(6), infos, control_dt=0.08)
    assert (r.ret, r.length, r.successes, r.dropped) == (6.0, 6, 2, False)
    assert r.time_to_goal == pytest.approx(0.24)
    infos["dropped"][-1] = 1
    infos["consecutive_successes"][:] = 0
    infos["is_success"][:] = 0
    d = episode_metrics(np.ones(6), infos, control_dt=0.08)
    assert (d.successes, d.dropped, d.time_to_goal) == (0, True, None)
    plain = episode_metrics(np.array([1.0, 2.0]), {}, control_dt=0.01)
    assert (plain.ret, plain.successes, plain.dropped) == (3.0, None, None)


def test_summary_and_gap():
    sim = summarize([EpisodeMetrics(10, 10, 3, False, 0.2), EpisodeMetrics(20, 10, 5, False, 0.4)])
    rig = summarize([EpisodeMetrics(4, 5, 1, True, 0.6), EpisodeMetrics(6, 5, 0, True, None)])
    assert (sim.successes_median, sim.successes_max, sim.drop_rate) == (4.0, 5.0, 0.0)
    assert rig.reached_goal_rate == 0.5 and rig.time_to_goal_median == 0.6
    g = gap(sim, rig)
    assert g["return_mean"] == 10.0 and g["drop_rate"] == -1.0 and g["return_gap_fraction"] == pytest.approx(10 / 15)


def test_report_files(tmp_path):
    sim = summarize([EpisodeMetrics(10, 10, 3, False, 0.2)])
    rig = summarize([EpisodeMetrics(4, 5, 1, True, 0.6)])
    ep = [dataclasses.asdict(EpisodeMetrics(10, 10, 3, False, 0.2))]
    agent = {"name": "ppo-dr", "randomization": "dactyl", "sim": sim.to_json(), "rig": rig.to_json(),
             "gap": gap(sim, rig), "episodes": {"sim": ep, "rig": ep}}
    report = {"rig": {"name": "hand_heavy", "kind": "sim"}, "episodes": 1, "seed": 0,
              "agents": [agent, dict(agent, name="ppo-nodr", randomization=None)]}
    paths = write_report(tmp_path, report)
    text = paths["markdown"].read_text()
    assert "| ppo-dr | dactyl | 10.0 ± 0.0 | 4.0 ± 0.0 | 6.0 |" in text
    assert paths["plot"].stat().st_size > 1000 and markdown(report) == text


def test_the_transfer_headline_names_no_agent_when_none_reaches_a_goal():
    from simreal.evaluation.report import headline

    def agent(name, successes, gap):
        return {"name": name, "sim": {"successes_mean": successes}, "gap": {"return_mean": gap}}

    text = headline([agent("ppo_dr", 0.0, 0.0), agent("dreamer", 0.2, 3.0)])
    assert "No agent reaches a goal" in text and "ppo_dr" not in text
    text = headline([agent("ppo_dr", 6.0, 4.0), agent("broken", 0.0, 0.0)])
    assert "**ppo_dr**" in text and "broken: no goal reached" in text
    assert "**a**" in headline([{"name": "a", "sim": {}, "gap": {"return_mean": 1.0}},
                                {"name": "b", "sim": {}, "gap": {"return_mean": 5.0}}])  # return-only envs
