"""Calibration recovers known parameters from episodes recorded at those parameters."""

import gymnasium as gym
import numpy as np
import pytest
import shimmy  # noqa: F401

from simreal.calibration import Calibrator, Episode, centered_spec_yaml, make_replay, parameters_of
from simreal.randomize import load_spec, wrap
from simreal.randomize.spec import RandomizationError

CARTPOLE = "dm_control/cartpole-swingup-v0"

POLE_MASS = """
version: 1
randomizers:
  - name: pole_mass
    target: {field: body_mass, names: [pole_1]}
    distribution: {type: uniform, low: 0.5, high: 2.0}
    operation: scale
"""
PARAMS = POLE_MASS + """\
  - name: hinge_damping
    target: {field: dof_damping, names: [hinge_1]}
    distribution: {type: uniform, low: 0.0, high: 0.05}
    operation: set
  - name: motor_gain
    target: {field: actuator_gainprm, columns: [0]}
    distribution: {type: loguniform, low: 0.5, high: 2.0}
    operation: scale
"""


def _spec(tmp_path, text, name="params.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path)


def record_cartpole(spec, true, episodes=3, steps=150, obs_noise=0.0, seed=0):
    """Episodes of smooth random actions on cartpole at the true values (a simulated rig)."""
    env = wrap(gym.make(CARTPOLE), spec, seed=0)
    env.stack.set_fixed(true)
    rng = np.random.default_rng(seed)
    out = []
    for e in range(episodes):
        obs, _ = env.reset(seed=e)
        record = {k: [v] for k, v in obs.items()}
        actions, a = [], 0.0
        for _ in range(steps):
            a = float(np.clip(0.8 * a + 0.6 * rng.normal(), -1, 1))
            obs, *_ = env.step(np.array([a]))
            actions.append([a])
            for k, v in obs.items():
                record[k].append(v + obs_noise * rng.normal(size=np.shape(v)))
        out.append(Episode({k: np.array(v) for k, v in record.items()}, np.array(actions)))
    env.close()
    return out


def test_least_squares_recovers_cartpole_parameters_within_10_percent_from_noisy_logs(tmp_path):
    spec = _spec(tmp_path, PARAMS)
    true = {"pole_mass": 1.4, "hinge_damping": 0.02, "motor_gain": 0.8}
    episodes = record_cartpole(spec, true, obs_noise=0.003)
    cal = Calibrator(make_replay(CARTPOLE, spec), episodes, horizon=10, warmup=2)
    result = cal.fit("least_squares", max_evals=200)
    for name, value in true.items():
        assert result.values[name] == pytest.approx(value, rel=0.10), name
    assert result.cost_final < 0.2 * result.cost_initial
    assert result.rmse_final["velocity"] < result.rmse_initial["velocity"]
    assert result.initial_values["pole_mass"] == 1.0 and result.initial_values["motor_gain"] == 1.0


def test_cma_recovers_an_action_delay(tmp_path):
    spec = _spec(tmp_path, POLE_MASS + """\
  - name: delay
    target: {effect: action_delay, param: delay}
    distribution: {type: uniform, low: 0.0, high: 0.03}
    operation: set
""")
    true = {"pole_mass": 0.7, "delay": 0.02}  # two 10 ms control steps
    episodes = record_cartpole(spec, true, episodes=2, steps=120)
    cal = Calibrator(make_replay(CARTPOLE, spec), episodes, horizon=8, warmup=4)
    result = cal.fit("auto", max_evals=150)
    assert result.method == "cma"
    assert result.values["pole_mass"] == pytest.approx(0.7, rel=0.10)
    assert round(result.values["delay"] / 0.01) == 2  # whole control steps are what the wrapper can apply


def test_hand_replay_recovers_joint_damping(tmp_path):
    from simreal.envs.hand_cube import HandCubeEnv

    spec = _spec(tmp_path, """
version: 1
randomizers:
  - name: hand_damping
    target: {field: dof_damping, names: ["robot0:*"]}
    distribution: {type: loguniform, low: 0.3, high: 3.0}
    operation: scale
""")
    env = HandCubeEnv(randomization=spec)
    env.sim.randomization.set_fixed({"hand_damping": 1.6})
    rng = np.random.default_rng(0)
    episodes = []
    for e in range(2):
        obs, _ = env.reset(seed=e)
        record, actions = {"state": [obs["state"]]}, []
        for _ in range(16):
            a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, *_ = env.step(a)
            actions.append(a)
            record["state"].append(obs["state"])
        episodes.append(Episode({k: np.array(v) for k, v in record.items()}, np.array(actions)))
    cal = Calibrator(make_replay("simreal/HandCube-v0", spec), episodes, horizon=4, warmup=1)
    result = cal.fit("least_squares", max_evals=40)
    assert result.values["hand_damping"] == pytest.approx(1.6, rel=0.10)
    assert result.rmse_final["hand_qpos"] < 0.5 * result.rmse_initial["hand_qpos"]


def test_centered_yaml_is_a_valid_randomization_file_around_the_fit(tmp_path):
    spec = _spec(tmp_path, PARAMS)
    true = {"pole_mass": 1.4, "hinge_damping": 0.02, "motor_gain": 0.8}
    cal = Calibrator(make_replay(CARTPOLE, spec), record_cartpole(spec, true, episodes=1, steps=40), horizon=5)
    result = cal.fit("least_squares", max_evals=60)
    out = tmp_path / "calibrated.yaml"
    out.write_text(centered_spec_yaml(spec, result, spread=0.1))
    calibrated = load_spec(out)
    for p in parameters_of(calibrated):
        assert p.low <= result.values[p.name] <= p.high
        assert p.low >= {q.name: q for q in parameters_of(spec)}[p.name].low


@pytest.mark.parametrize("entry, match", [
    ("target: {observation: position}\n    distribution: {type: uniform, low: 0, high: 1}\n    operation: add",
     "observation noise is not a simulator parameter"),
    ("target: {field: body_mass, names: [pole_1]}\n    distribution: {type: normal, mean: 1, std: 0.1}\n"
     "    operation: scale", "uniform or loguniform"),
    ("target: {field: dof_damping}\n    distribution: {type: uniform, low: 0, high: 1}\n    operation: set\n"
     "    per_element: true", "one entry per element"),
])
def test_bad_parameter_files_fail_in_one_line_naming_the_key(tmp_path, entry, match):
    spec = _spec(tmp_path, f"version: 1\nrandomizers:\n  - name: p\n    {entry}\n")
    with pytest.raises(RandomizationError, match=match) as err:
        parameters_of(spec)
    assert "randomizers[0]" in str(err.value) and "\n" not in str(err.value)
