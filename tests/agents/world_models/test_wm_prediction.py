"""World-model prediction error on recorded rig episodes (transfer evaluation of Dreamer exports)."""

import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from simreal.agents import load_policy
from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.prediction import open_loop_error
from simreal.cli import main


def test_one_hot_actions_invert_to_env():
    rng = np.random.default_rng(0)
    box = ActionSpec.from_space(gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 5.0], np.float32)))
    a = rng.uniform(-1, 1, (7, 2)).astype(np.float32)
    np.testing.assert_allclose(box.from_env(box.to_env(a)), a, atol=1e-6)
    multi = ActionSpec.from_space(gym.spaces.MultiDiscrete([11, 11, 11]), "one_hot")
    index = rng.integers(0, 11, (5, 3))
    onehot = multi.from_env(index)
    assert onehot.shape == (5, 33) and np.array_equal(multi.to_env(onehot), index)


@pytest.fixture(scope="module")
def dreamer_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("wm") / "run"
    assert main(["train", "dreamer", "--preset", "dreamer_v3", "--preset", "tiny", "--quiet", "--steps", "240",
                 "--env", "dm_control/cartpole-balance-v0", "--run-dir", str(run)]) == 0
    return run


def episodes_from_env(n_steps: int, seed: int, actions_fn):
    import shimmy  # noqa: F401  (registers the dm_control ids)

    env = gym.make("dm_control/cartpole-balance-v0")
    obs, _ = env.reset(seed=seed)
    observations, actions = [obs], []
    for t in range(n_steps):
        a = actions_fn(t)
        obs, *_ = env.step(a)
        observations.append(obs)
        actions.append(a)
    env.close()
    keys = observations[0].keys()
    return SimpleNamespace(observations={k: np.stack([o[k] for o in observations]).astype(np.float32) for k in keys},
                           actions=np.array(actions, np.float32))


def test_export_carries_the_decoder_and_measures_open_loop_error(dreamer_run):
    policy = load_policy(dreamer_run / "policy.pt")
    assert policy.decoder is not None
    episode = episodes_from_env(120, 0, lambda t: np.array([np.sin(t / 5.0)], np.float32))
    first = policy.prediction_error([episode])
    assert first is not None and np.isfinite(first) and first > 0
    assert policy.prediction_error([episode]) == first  # deterministic: the most likely latents
    # the number is the mean over windows: two copies of the episode give the same mean
    assert policy.prediction_error([episode, episode]) == pytest.approx(first, rel=1e-6)
    # an episode shorter than one window (5 + 45 steps) cannot be scored
    short = episodes_from_env(20, 1, lambda t: np.zeros(1, np.float32))
    assert policy.prediction_error([short]) is None
    # the export's method is the module function on the exported networks
    p = policy.policy
    error = open_loop_error(p.encoder, p.rssm, policy.decoder, p.layout, p.spec, [episode], context=5, horizon=45)
    assert error == pytest.approx(first)


def test_evaluate_report_shows_the_prediction_error_of_a_world_model(dreamer_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--agent", str(dreamer_run), "--rig", "sim:cartpole_laggy", "--episodes", "1",
                 "--max-steps", "60", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    error = report["agents"][0]["prediction_error"]
    assert np.isfinite(error) and error > 0
    assert "prediction error" in (out / "report.md").read_text()


def test_planet_export_measures_prediction_error_too(tmp_path):
    run = tmp_path / "planet"
    assert main(["train", "planet", "--preset", "tiny", "--quiet", "--steps", "160",
                 "--env", "dm_control/cartpole-balance-v0", "--run-dir", str(run)]) == 0
    policy = load_policy(run / "policy.pt")
    episode = episodes_from_env(60, 2, lambda t: np.array([0.5], np.float32))
    error = policy.prediction_error([episode])
    assert error is not None and np.isfinite(error) and error > 0
