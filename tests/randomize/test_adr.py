"""ADR: ranges widen on good boundary performance, narrow on bad, stay in limits; state survives a checkpoint."""

import numpy as np
import pytest
import torch

from simreal.envs.hand_cube import HandCubeEnv
from simreal.envs.vec_env import HandCubeVecEnv
from simreal.randomize import RandomizationError, parse_spec


def adr_spec(metric="return", buffer_size=4, boundary_probability=1.0, low=1.0, high=1.0, thresholds=(0.0, 1.0)):
    return parse_spec({
        "adr": {"metric": metric, "thresholds": list(thresholds), "buffer_size": buffer_size,
                "boundary_probability": boundary_probability},
        "randomizers": [
            {"name": "mass", "target": {"field": "body_mass", "names": ["object"]}, "operation": "scale",
             "distribution": {"type": "uniform", "low": low, "high": high}, "adr": {"step": 0.1, "limits": [0.5, 1.5]}},
            {"name": "friction", "target": {"field": "geom_friction", "names": ["object"], "columns": [0]},
             "operation": "scale", "distribution": {"type": "uniform", "low": 1.0, "high": 1.0},
             "adr": {"step": 0.2, "limits": [0.6, 1.4]}},
        ]}, "adr.yaml")


def drive(stack, score, episodes):
    """Run ADR's bookkeeping for episodes of copy 0 scoring `score` (no physics needed)."""
    for _ in range(episodes):
        stack.on_reset(np.array([0]))
        stack.on_episode_end(np.array([0]), np.array([score]))


def test_ranges_widen_to_the_limits_and_narrow_back():
    env = HandCubeEnv(randomization=adr_spec(), settle_time=0.0)
    env.reset(seed=0)
    stack = env.sim.randomization
    adr = stack.adr
    assert adr.entropy() == pytest.approx(np.log(1e-6))
    drive(stack, 5.0, 400)  # always above the high threshold
    mass, friction = adr.params
    assert (mass.low, mass.high) == pytest.approx((0.5, 1.5))
    assert (friction.low, friction.high) == pytest.approx((0.6, 1.4))
    assert adr.entropy() == pytest.approx(np.mean([np.log(1.0), np.log(0.8)]))
    # sampling follows the widened range
    values = []
    for _ in range(300):
        stack.on_reset(np.array([0]))
        values.append(stack["mass"].values[0, 0])
    assert min(values) >= 0.5 and max(values) <= 1.5 and np.std(values) > 0.2
    drive(stack, -5.0, 600)  # always below the low threshold: back to the starting point, no further
    assert (mass.low, mass.high) == pytest.approx((1.0, 1.0))
    assert (friction.low, friction.high) == pytest.approx((1.0, 1.0))


def test_a_failing_boundary_never_walks_the_range_off_its_start():
    # widen mass's low side once, then fail at its high side (still the nominal point): the high
    # boundary stays at 1.0 instead of following the low one down, so nominal physics stays in range
    env = HandCubeEnv(randomization=adr_spec(buffer_size=1), settle_time=0.0)
    env.reset(seed=0)
    mass = env.sim.randomization.adr.params[0]
    assert mass.update("low", 5.0, (0.0, 1.0)) == 1 and mass.low == pytest.approx(0.9)
    assert mass.update("high", -5.0, (0.0, 1.0)) == 0 and mass.high == 1.0
    assert mass.update("low", -5.0, (0.0, 1.0)) == -1 and mass.low == pytest.approx(1.0)
    assert mass.update("low", -5.0, (0.0, 1.0)) == 0 and mass.low == 1.0


def test_boundary_episodes_pin_the_value_and_others_sample():
    env = HandCubeEnv(randomization=adr_spec(low=0.8, high=1.2, boundary_probability=0.5), settle_time=0.0)
    env.reset(seed=1)
    stack = env.sim.randomization
    pinned = free = 0
    for _ in range(200):
        stack.on_reset(np.array([0]))
        test = stack.adr.testing[0]
        mass = stack["mass"].values[0, 0]
        if test is not None and test[0] == 0:
            assert mass == (0.8 if test[1] == "low" else 1.2)
            pinned += 1
        elif test is None:
            free += 1
            assert 0.8 <= mass <= 1.2
        stack.on_episode_end(np.array([0]), np.array([0.5]))  # between thresholds: ranges stay
    assert pinned > 20 and free > 60
    assert (stack.adr.params[0].low, stack.adr.params[0].high) == (0.8, 1.2)


def test_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    env = HandCubeEnv(randomization=adr_spec(), settle_time=0.0)
    env.reset(seed=0)
    stack = env.sim.randomization
    drive(stack, 5.0, 30)
    stack.on_reset(np.array([0]))
    path = tmp_path / "ckpt.pt"
    torch.save({"randomization": stack.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)["randomization"]
    other = HandCubeEnv(randomization=adr_spec(), settle_time=0.0).sim.randomization
    other.load_state_dict(loaded)
    assert other.adr.stats() == stack.adr.stats()
    assert other.adr.testing == stack.adr.testing
    assert other["mass"].pinned == stack["mass"].pinned
    # both continue identically
    drive(stack, 5.0, 10)
    drive(other, 5.0, 10)
    assert other.adr.stats() == stack.adr.stats()
    with pytest.raises(RandomizationError, match="no adr"):
        HandCubeEnv(randomization=parse_spec({"randomizers": []}, "x.yaml")).sim.randomization.load_state_dict(loaded)


def test_env_reports_episode_metric_and_adr_stats():
    # zero successes meets a high threshold of 0: every decided boundary widens
    env = HandCubeVecEnv(2, randomization=adr_spec(metric="consecutive_successes", buffer_size=1, thresholds=(-1, 0)),
                         goal_timeout=0.16, settle_time=0.0)
    env.seed(0)
    env.reset()
    assert "adr/entropy" in env.reset_infos[0]["adr"]
    for _ in range(6):  # 2-step episodes end by timeout
        obs, reward, done, infos = env.step(np.zeros((2, 20), np.float32))
    adr = env.sim.randomization.adr
    assert adr.updates > 0 and adr.entropy() > np.log(1e-6)
    with pytest.raises(RandomizationError, match="adr.metric"):
        HandCubeEnv(randomization=adr_spec(metric="reward_sum"))


def test_adr_history_of_a_run_prints_its_ranges_and_plots_them(tmp_path, capsys):
    import json

    from simreal.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env: {randomization: dactyl_adr}\n")
    records = [{"step": 0, "rand/adr/masses/low": 1.0, "rand/adr/masses/high": 1.0, "rand/adr/entropy": -13.8},
               {"step": 2048, "rand/adr/masses/low": 0.75, "rand/adr/masses/high": 1.25, "rand/adr/entropy": -0.7,
                "rand/adr/updates": 4.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["randomization", "adr", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| masses | [0.75, 1.25] | [0.5, 1.5] | 50% |" in out and "4 boundary moves" in out
    assert (run / "adr.png").stat().st_size > 5000
    # a folder without ADR logs, or without logs at all: one line naming the file
    (run / "metrics.jsonl").write_text(json.dumps({"step": 0, "train/loss": 1.0}) + "\n")
    assert main(["randomization", "adr", str(run)]) == 2
    assert "no ADR ranges logged" in capsys.readouterr().err
    assert main(["randomization", "adr", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl: not found" in err and err.count("\n") == 1
