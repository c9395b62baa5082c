import json

import pytest
import yaml

from simreal.cli import main

PARAMS = """
version: 1
randomizers:
  - name: pole_mass
    target: {field: body_mass, names: [pole_1]}
    distribution: {type: uniform, low: 0.5, high: 3.0}
    operation: scale
  - name: actuator_gain
    target: {field: actuator_gainprm, columns: [0]}
    distribution: {type: loguniform, low: 0.5, high: 2.0}
    operation: scale
"""


def test_calibrate_cli_fits_recorded_logs_and_writes_yaml_json_and_plot(tmp_path, capsys):
    logs = tmp_path / "logs"
    assert main(["rig", "record", "sim:cartpole_heavy_pole", "--env", "dm_control/cartpole-swingup-v0",
                 "--policy", "random", "--episodes", "1", "--max-steps", "60", "--out", str(logs), "--quiet"]) == 0
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    out = tmp_path / "cal" / "calibrated.yaml"
    assert main(["calibrate", "--logs", str(logs), "--params", str(params), "--out", str(out),
                 "--max-evals", "30", "--horizon", "5", "--quiet"]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["cost_final"] <= result["cost_initial"] and result["env_id"] == "dm_control/cartpole-swingup-v0"
    written = yaml.safe_load(out.read_text())
    assert [r["name"] for r in written["randomizers"]] == ["pole_mass", "actuator_gain"]
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert main(["randomization", "check", str(out), "--no-env"]) == 0


def test_calibrate_cli_errors_are_one_line(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    assert main(["calibrate", "--logs", str(tmp_path / "nope"), "--params", str(params), "--out",
                 str(tmp_path / "o.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a recorded dataset" in err and len(err.splitlines()) == 1


def test_evaluate_cli_compares_two_agents_on_a_simulated_rig(tmp_path, capsys):
    runs = []
    for name, randomization in (("ppo_dr", "dmc_cartpole"), ("ppo_nodr", "none")):
        run = tmp_path / name
        assert main(["train", "ppo", "--preset", "cartpole", "--preset", "tiny", "--steps", "128",
                     "--run-dir", str(run), "--randomization", randomization, "--quiet"]) == 0
        runs.append(str(run))
    out = tmp_path / "report"
    assert main(["evaluate", "--agent", ",".join(runs), "--rig", "sim:cartpole_heavy_pole", "--episodes", "2",
                 "--max-steps", "20", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [a["name"] for a in report["agents"]] == ["ppo_dr", "ppo_nodr"]
    assert report["agents"][0]["randomization"] == "dmc_cartpole" and report["agents"][1]["randomization"] is None
    for agent in report["agents"]:
        assert agent["sim"]["episodes"] == 2 and agent["rig"]["length_mean"] == 20
        assert agent["gap"]["return_mean"] == agent["sim"]["return_mean"] - agent["rig"]["return_mean"]
    from simreal.rigs import DatasetReader

    assert len(DatasetReader(out / "logs" / "ppo_dr")) == 2  # every rig episode recorded
    assert "| ppo_dr | dmc_cartpole |" in (out / "report.md").read_text()


@pytest.fixture(scope="module")
def hand_agent(tmp_path_factory):
    run = tmp_path_factory.mktemp("agents") / "hand"
    assert main(["train", "ppo", "--preset", "hand_cube", "--preset", "tiny", "--steps", "64", "--run-dir", str(run),
                 "--quiet"]) == 0
    return run


def _evaluate(agent, rig, out, *extra):
    return main(["evaluate", "--agent", str(agent), "--rig", rig, "--episodes", "1", "--max-steps", "3",
                 "--out", str(out), "--quiet", *extra])


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simreal evaluate: error: "), captured.err
    assert "episodes on" not in captured.out  # failed before running any episode
    return err[0]


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notarun").mkdir()
    assert _evaluate(tmp_path / "notarun", "sim:hand_nominal", tmp_path / "out") == 2
    err = _one_error_line(capsys)
    assert "not a training run (no config.yaml and no policy.pt)" in err and "resum" not in err


def test_evaluate_refuses_an_entry_point_from_the_runs_config(tmp_path, capsys, hand_agent):
    import shutil
    import sys

    run = tmp_path / "copied"
    shutil.copytree(hand_agent, run)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("simreal/HandCube-v0", "this:Foo-v0"))
    assert _evaluate(run, "sim:hand_nominal", tmp_path / "out") == 2
    err = _one_error_line(capsys)
    assert "'this:Foo-v0' is a module:name entry point" in err and "this" not in sys.modules


@pytest.mark.parametrize("rig, message", [
    ("sim:no_such_reality", "no_such_reality: no such reality file"),
    ("leap:fake", "rig 'leap:fake' does not fit agent hand (trained on simreal/HandCube-v0): the rig's "
                  "observations have no fingertip_pos,"),
])
def test_evaluate_checks_the_rig_before_any_episode_and_leaves_nothing_behind(tmp_path, capsys, hand_agent, rig,
                                                                              message):
    out = tmp_path / "out"
    assert _evaluate(hand_agent, rig, out) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()
    assert _evaluate(hand_agent, "sim:hand_nominal", out) == 0  # the rerun with a good rig just works
    assert (out / "report.json").exists() and sorted(p.name for p in (out / "logs").iterdir()) == ["hand"]


def test_a_failed_evaluation_can_be_run_again_into_the_same_folder(tmp_path, capsys, hand_agent, monkeypatch):
    import simreal.rigs

    real = simreal.rigs.run_episodes
    calls = []

    def failing(rig, *args, **kwargs):  # the rig fails halfway through (a dropped connection, ...)
        calls.append(rig.name)
        if len(calls) == 2:
            rig.reset(seed=0)
            rig.step(rig.action_space.sample())  # records a step, then
            raise simreal.rigs.RigError("connection lost")
        return real(rig, *args, **kwargs)

    monkeypatch.setattr(simreal.rigs, "run_episodes", failing)
    out = tmp_path / "out"
    assert _evaluate(hand_agent, "sim:hand_laggy", out) == 2
    assert "connection lost" in capsys.readouterr().err
    monkeypatch.setattr(simreal.rigs, "run_episodes", real)
    assert _evaluate(hand_agent, "sim:hand_laggy", out) == 0
    from simreal.rigs import DatasetReader

    assert len(DatasetReader(out / "logs" / "hand")) == 1 and not (out / "logs" / "hand.partial").exists()
    assert _evaluate(hand_agent, "sim:hand_laggy", out) == 2  # a finished evaluation's logs are not overwritten
    assert "already holds the rig logs of an earlier evaluation" in capsys.readouterr().err
