"""benchmarks/world_model_comparison.py on its quick settings: it trains, tabulates, plots, reads back."""

import pytest
import torch


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()   # the runs set their own thread count
    yield
    torch.set_num_threads(threads)


def test_world_model_comparison_quick_trains_tabulates_plots_and_reads_back(load_benchmark, tmp_path, capsys):
    module = load_benchmark("world_model_comparison")
    agents = ["planet", "dreaming", "worldmodels"]
    args = ["--quick", "--agents", ",".join(agents), "--steps", "200", "--out", str(tmp_path), "--quiet"]
    result = module.main(args)
    again = module.main(args + ["--report-only"])
    ran = [row["agent"] for row in result["table"]]
    assert sorted(ran + list(result["skipped"])) == sorted(agents)
    if "worldmodels" in result["skipped"]:          # another agent's package: skipped with a reason when absent
        assert "not in this checkout" in result["skipped"]["worldmodels"]
    for row in result["table"]:
        assert row["env_frames"] == 200 and row["params"] > 0 and row["wall_seconds"] > 0
        assert row["final_eval_return"] is not None and row["updates"] > 0
        assert row["action_repeat"] == module.ACTION_REPEAT[row["agent"]]
    rows = {row["agent"]: row for row in result["table"]}
    assert rows["planet"]["action_repeat"] == 8 and rows["dreaming"]["action_repeat"] == 2
    assert result["settings"]["env"] == "dm_control/cartpole-swingup-v0"
    assert result["settings"]["randomization"] == "dmc_cartpole" and result["settings"]["quick"] is True
    assert "cpu_count" in result["machine"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert again["runs"] == result["runs"] and again["table"] == result["table"]   # read back, not retrained
    nothing = module.main(args + ["--report-only", "--agents", "dreaming_v2"])   # no run of it in --out
    assert nothing["table"] == [] and "plot" not in nothing


def test_world_model_comparison_rejects_unknown_agents(load_benchmark, tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_benchmark("world_model_comparison").main(["--agents", "muzero", "--out", str(tmp_path)])
    assert "unknown agent(s) muzero" in capsys.readouterr().err


def test_world_models_is_skipped_with_a_reason_when_its_package_is_missing(load_benchmark, tmp_path, monkeypatch,
                                                                           capsys):
    module = load_benchmark("world_model_comparison")
    monkeypatch.setattr(module, "worldmodels_config_path", lambda: None)
    result = module.main(["--quick", "--agents", "worldmodels", "--out", str(tmp_path), "--quiet"])
    assert result["table"] == [] and "not in this checkout" in result["skipped"]["worldmodels"]
    assert "skipping worldmodels" in capsys.readouterr().err
