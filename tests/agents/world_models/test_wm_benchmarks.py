"""The Dreamer benchmark scripts run on their quick settings and report the keys their claims use."""

import importlib.util
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parents[3]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dreamer_throughput_quick_reports_rates(capsys):
    threads = torch.get_num_threads()
    try:
        result = load("dreamer_throughput").main(["--quick", "--presets", "dreamer_v3"])
    finally:
        torch.set_num_threads(threads)
    row = result["results"][0]
    assert row["preset"] == "dreamer_v3" and row["size"] == "tiny"
    for key in ("updates_per_s", "replayed_steps_per_s", "env_steps_per_s", "train_env_steps_per_s", "params"):
        assert row[key] > 0
    assert row["replayed_steps_per_s"] == round(row["updates_per_s"] * 4 * 8, 1)


def test_dreamer_learning_quick_trains_reports_and_plots(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        module = load("dreamer_learning")
        result = module.main(["--quick", "--presets", "dreamer_v3", "--steps", "600", "--out", str(tmp_path),
                              "--quiet"])
        again = module.main(["--quick", "--presets", "dreamer_v3", "--steps", "600", "--out", str(tmp_path),
                             "--quiet", "--report-only"])
    finally:
        torch.set_num_threads(threads)
    run = result["runs"]["dreamer_v3"]
    assert run["env_steps"] == 600 and run["updates"] > 0
    assert run["curve"][-1]["frames"] == 600 and run["final_eval_return"] is not None
    assert result["target"]["met"] is False   # a quick run never claims the target
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert again["runs"]["dreamer_v3"]["curve"] == run["curve"]   # read back, not retrained
