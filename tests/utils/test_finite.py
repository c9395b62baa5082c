"""Non-finite numbers: the checks every trainer runs, and exports that refuse NaN weights both ways."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal import cli
from simreal.agents import load_policy
from simreal.training.export import load_export, save_export
from simreal.utils.finite import (NonFiniteError, all_finite, check_observations, check_scalars,
                                     check_state_dict, fetch, fmt, format_values)
from simreal.training.run import RunDir

SPACE = gym.spaces.Dict({"obs": gym.spaces.Box(-1, 1, (3,), np.float32)})


def test_formatting_is_compact():
    assert [fmt(x) for x in (np.nan, np.inf, -np.inf, 0.123456789, 12345678.0, 3)] == \
        ["nan", "inf", "-inf", "0.1235", "1.235e+07", "3"]
    text = format_values({"mass": 1.23456, "noise": [np.inf, 1.0], "gains": list(np.arange(10.0)) + [np.nan],
                          "kind": "box"})
    assert text == "mass=1.235, noise=[inf, 1], gains=[0, 1, 2, 3, ... 11 values, 1 non-finite], kind=box"
    assert format_values({}) == "none"


def test_scalars_observations_and_state_dicts_name_what_and_where(tmp_path):
    check_scalars({"loss": 1.0, "gradient norm": 0.5}, "here")
    with pytest.raises(NonFiniteError, match=r"^PPO update 3 \(env step 192\): gradient norm is inf$"):
        check_scalars({"loss": 1.0, "gradient norm": float("inf")}, "PPO update 3 (env step 192)")
    assert fetch({"a": torch.tensor(1.5), "b": torch.tensor(float("nan"))})["a"] == 1.5

    obs = {"pos": np.zeros((4, 3), np.float32), "image": np.zeros((4, 2, 2, 3), np.uint8)}
    assert all_finite(*obs.values())
    obs["pos"][2, 1] = -np.inf
    assert not all_finite(*obs.values())
    with pytest.raises(NonFiniteError) as err:
        check_observations(obs, "at step 7", randomization=lambda i: {"noise": float(i), "mass": [1.0, 2.0]})
    assert str(err.value) == ("at step 7: observation 'pos' of env 2 is -inf (element 1); that episode's "
                              "randomization: noise=2, mass=[1, 2]")
    with pytest.raises(NonFiniteError, match="observation 'pos' of env 5 is -inf"):
        check_observations({"pos": obs["pos"][1:3]}, "x", copies=[4, 5])

    run = RunDir(tmp_path / "run")
    state = {"model": {"w": torch.ones(3), "steps": torch.tensor(3)}, "optimizer": {0: {"exp_avg": torch.ones(2)}}}
    check_state_dict(state, "ckpt", run)
    state["optimizer"][0]["exp_avg"][1] = float("nan")
    with pytest.raises(NonFiniteError) as err:
        check_state_dict(state, "ckpt", run)
    assert str(err.value) == ("ckpt: tensor 'optimizer/0/exp_avg' holds nan (1 of 2 values non-finite); "
                              "no checkpoint was written yet")
    run.save_checkpoint({"x": 1}, 64)
    with pytest.raises(NonFiniteError, match=r"the last finite checkpoint is .*step_000000000064\.pt$"):
        check_state_dict(state, "ckpt", run)


def test_an_export_of_nan_weights_is_refused_and_a_nan_policy_file_does_not_load(tmp_path):
    path = tmp_path / "policy.pt"
    save_export(path, "ppo", {}, SPACE, SPACE["obs"], {"w": torch.ones(2)})
    before = path.read_bytes()
    with pytest.raises(NonFiniteError, match=r"weight 'w' holds nan \(1 of 2 values non-finite\); refusing"):
        save_export(path, "ppo", {}, SPACE, SPACE["obs"], {"w": torch.tensor([1.0, float("nan")])})
    assert path.read_bytes() == before  # the last finite export stays

    bad = tmp_path / "bad.pt"
    torch.save({"format": "simreal-policy", "version": 1, "agent": "ppo", "config": {},
                "observation_space": {"type": "Dict", "spaces": {}}, "action_space": {"type": "Discrete", "n": 2},
                "weights": {"actor.w": torch.tensor([float("inf")])}, "extra": {}}, bad)
    for load in (load_export, load_policy):
        with pytest.raises(NonFiniteError) as err:
            load(bad)
        message = str(err.value)
        assert "\n" not in message and str(bad) in message and "'actor.w' holds inf" in message


def test_evaluate_refuses_a_nan_policy_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env: {id: simreal/HandCube-v0}\n")
    torch.save({"format": "simreal-policy", "version": 1, "agent": "ppo", "config": {},
                "observation_space": {"type": "Dict", "spaces": {}}, "action_space": {"type": "Discrete", "n": 2},
                "weights": {"head.w": torch.tensor([float("nan")])}, "extra": {}}, run / "policy.pt")
    out = tmp_path / "report"
    assert cli.main(["evaluate", "--agent", str(run), "--rig", "sim:cartpole_heavy_pole", "--episodes", "1",
                     "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'head.w' holds nan" in err[0] and str(run / "policy.pt") in err[0], err
    assert not (out / "report.json").exists()
