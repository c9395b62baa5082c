"""The PPO benchmark scripts run end to end on their --quick settings and report their claims' keys."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("env", ["cartpole", "hopper"])
def test_throughput_reports_both_learners_and_the_ratio(env, capsys):
    result = load("ppo_throughput").main(["--quick", "--env", env])
    assert result["settings"]["env"] == env
    assert result["ours_steps_per_s"] > 0 and result["sb3_steps_per_s"] > 0
    # the ratio is of the unrounded rates: the rounded ones can disagree in the last digit (1.49 vs 1.48)
    assert result["ratio"] == pytest.approx(result["ours_steps_per_s"] / result["sb3_steps_per_s"], abs=0.011)
    for side in ("ours", "sb3"):
        timing = result["per_update_s"][side]
        assert 0 < timing["env_s"] <= timing["collect_s"] and timing["update_s"] > 0


def test_learning_writes_curves_json_and_png(tmp_path, capsys):
    result = load("ppo_learning").main(["--quick", "--seeds", "2", "--out", str(tmp_path)])
    cartpole = result["cartpole"]
    assert [r["seed"] for r in cartpole["runs"]] == [0, 1] and cartpole["target"] == 700.0
    assert all(r["steps"] == 512 and r["final_return"] is not None for r in cartpole["runs"])
    assert result["hand_cube"]["successes"]["train"] is not None
    assert (tmp_path / "ppo_learning.png").stat().st_size > 10_000
    assert (tmp_path / "cartpole-seed1" / "policy.pt").exists()
    again = load("ppo_learning").main(["--quick", "--seeds", "1", "--out", str(tmp_path), "--resume",
                                       "--tasks", "cartpole"])
    assert again["cartpole"]["runs"][0]["final_return"] == cartpole["runs"][0]["final_return"]  # not redone
    # a saved result redraws from its JSON alone, one panel per task it holds
    saved = tmp_path / "only_cartpole.json"
    saved.write_text(json.dumps(again))
    load("ppo_learning").main(["--replot", str(saved)])
    assert saved.with_suffix(".png").stat().st_size > 10_000


def test_learning_passes_overrides_to_every_run(tmp_path, capsys):
    result = load("ppo_learning").main(["--quick", "--seeds", "1", "--tasks", "cartpole", "--out", str(tmp_path),
                                        "--set", "run.steps=256"])
    assert result["cartpole"]["runs"][0]["steps"] == 256
