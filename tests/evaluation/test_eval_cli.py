import json

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
