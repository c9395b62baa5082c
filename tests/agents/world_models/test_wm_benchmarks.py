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
    # both are rounded from the same unrounded rate (to 0.001 and 0.1), so they agree to within 0.1
    assert row["replayed_steps_per_s"] == pytest.approx(row["updates_per_s"] * 4 * 8, abs=0.1)


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


def test_dreamer_learning_reports_the_mean_over_seeds(load_benchmark, tmp_path, capsys):
    """--report-only finds every seed's run; the table and the target use their mean, per seed kept."""
    import json

    module = load_benchmark("dreamer_learning")
    for seed, returns in ((0, [100.0, 480.0]), (3, [200.0, 560.0])):
        run = tmp_path / f"dreamer_v3_micro_seed{seed}"
        run.mkdir()
        curve = [{"frames": 50_000, "return": returns[0]}, {"frames": 100_000, "return": returns[1]}]
        if seed == 3:
            curve.insert(0, {"frames": 20_000, "return": 10.0})   # only one seed evaluated here
        run.joinpath("summary.json").write_text(json.dumps({
            "frames": 100_000, "updates": 11_875, "episodes": 100, "seconds": 3000.0 + seed,
            "train_return_last10": returns[1], "eval": curve,
            "episode_returns": [{"frames": 1000, "return": 5.0}]}))
    result = module.main(["--report-only", "--presets", "dreamer_v3", "--out", str(tmp_path)])
    target = result["target"]
    assert target["seeds"] == [0, 3] and target["per_seed"] == [480.0, 560.0]
    assert target["reached"] == 520.0 and target["met"] is True
    v3 = result["runs"]["dreamer_v3"]
    assert v3["curve"] == [{"frames": 50_000, "return": 150.0}, {"frames": 100_000, "return": 520.0}]
    assert v3["wall_seconds"] == 3003.0
    assert result["table"][0]["eval_return_at_100k_per_seed"] == [480.0, 560.0]
    assert result["table"][0]["eval_return_last3_mean"] == pytest.approx((290.0 + (10.0 + 200.0 + 560.0) / 3) / 2)
    only_zero = module.main(["--report-only", "--presets", "dreamer_v3", "--seeds", "0", "--out", str(tmp_path)])
    assert only_zero["target"]["reached"] == 480.0 and only_zero["target"]["met"] is False
    with pytest.raises(SystemExit, match="--seeds"):
        module.main(["--report-only", "--seeds", "0,x", "--out", str(tmp_path)])


def test_dreamer_learning_tag_names_the_saved_files(load_benchmark, tmp_path, monkeypatch, capsys):
    """--tag keeps a variant's table beside the default one; a tag that is no file name is refused."""
    import datetime
    import json

    module = load_benchmark("dreamer_learning")
    common = __import__("_common")
    results = tmp_path / "results"
    monkeypatch.setattr(module, "RESULTS", results)
    monkeypatch.setattr(common, "RESULTS", results)
    run = tmp_path / "runs" / "dreamer_v3_micro_seed0"
    run.mkdir(parents=True)
    run.joinpath("summary.json").write_text(json.dumps({
        "frames": 100_000, "updates": 23_750, "episodes": 100, "seconds": 3000.0, "train_return_last10": 500.0,
        "eval": [{"frames": 50_000, "return": 300.0}, {"frames": 100_000, "return": 520.0}],
        "episode_returns": [{"frames": 1000, "return": 5.0}]}))
    module.main(["--report-only", "--presets", "dreamer_v3", "--out", str(tmp_path / "runs"),
                 "--tag", "tr256", "--save"])
    day = datetime.date.today().isoformat()
    assert sorted(p.name for p in results.iterdir()) == [f"dreamer_learning_tr256_{day}.json",
                                                          f"dreamer_learning_tr256_{day}.png"]
    with pytest.raises(SystemExit):
        module.main(["--report-only", "--out", str(tmp_path / "runs"), "--tag", "../x"])
    assert "--tag '../x'" in capsys.readouterr().err


def test_dreamer_learning_refuses_a_run_trained_with_other_settings(load_benchmark, tmp_path, capsys):
    """A run folder from other settings is neither resumed nor reported under this invocation's label."""
    import types

    from simreal.training.config import dump_config

    module = load_benchmark("dreamer_learning")
    args = types.SimpleNamespace(out=str(tmp_path), size="micro", set=["run.train_ratio=64"], quick=False,
                                 steps=100_000, randomization="none", threads=1, eval_every=10_000,
                                 eval_episodes=10, checkpoint_every=10_000, device="auto")
    run = module.run_dir_of(args, "dreamer_v3", 0)
    run.mkdir()
    run.joinpath("config.yaml").write_text(dump_config(module.run_config("dreamer_v3", 0, args)))
    module.check_settings("dreamer_v3", 0, types.SimpleNamespace(**{**vars(args), "threads": 2, "steps": 5}))
    with pytest.raises(SystemExit, match=r"run.train_ratio=64.0 \(now 256.0\).*another --out"):
        module.check_settings("dreamer_v3", 0, types.SimpleNamespace(**{**vars(args), "set": []}))
