"""The Dreamer benchmark scripts run on their quick settings and report the keys their claims use."""

import pytest
import torch


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()   # the scripts set their own thread count
    yield
    torch.set_num_threads(threads)


def test_dreamer_throughput_quick_reports_rates(load_benchmark, capsys):
    result = load_benchmark("dreamer_throughput").main(["--quick", "--presets", "dreamer_v3"])
    row = result["results"][0]
    assert row["preset"] == "dreamer_v3" and row["size"] == "tiny"
    for key in ("updates_per_s", "replayed_steps_per_s", "env_steps_per_s", "train_env_steps_per_s", "params"):
        assert row[key] > 0
    assert row["replayed_steps_per_s"] == round(row["updates_per_s"] * 4 * 8, 1)


def test_dreamer_learning_quick_trains_reports_and_plots(load_benchmark, tmp_path, capsys):
    module = load_benchmark("dreamer_learning")
    args = ["--quick", "--presets", "dreamer_v3", "--steps", "600", "--out", str(tmp_path), "--quiet"]
    result = module.main(args)
    again = module.main(args + ["--report-only"])
    run = result["runs"]["dreamer_v3"]
    assert run["env_steps"] == 600 and run["updates"] > 0
    assert run["curve"][-1]["frames"] == 600 and run["final_eval_return"] is not None
    assert result["target"]["met"] is False and result["target"]["reached"] is None   # no claim from a quick run
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert again["runs"]["dreamer_v3"]["curve"] == run["curve"]   # read back, not retrained
