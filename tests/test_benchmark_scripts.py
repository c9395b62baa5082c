"""The benchmark scripts run and report the keys their claims are stated in (tiny settings)."""


def test_env_throughput_reports_its_keys(capsys, load_benchmark):
    result = load_benchmark("env_throughput").main(["--steps", "15", "--vec-steps", "3", "--n-envs", "4", "--repeats", "1"])
    for key in ("physics_bound_steps_per_s", "single_env_steps_per_s", "vec_env_steps_per_s", "n_envs"):
        assert result[key] > 0
    assert result["env_matches_raw_physics_bitwise"] is True


def test_randomization_overhead_reports_its_keys(capsys, load_benchmark):
    result = load_benchmark("randomization_overhead").main(["--vec-steps", "2", "--steps", "3", "--n-envs", "2", "--repeats", "1",
                                                 "--resets", "5", "--recompiles", "1"])
    for key in ("step_overhead_ratio", "single_env_overhead_ratio", "reset_randomize_ms", "recompile_reset_ms"):
        assert result[key] > 0
    assert result["recompiled_model_matches"] is True  # both paths did the same randomization


def test_hand_transfer_targets_compare_dr_against_the_nominal_baseline(load_benchmark):
    targets = load_benchmark("hand_transfer").targets

    def row(name, sim, ratio):
        return {"row": name, "settings": {"nominal": {"mean": sim}, "sim:hand_laggy": {"ratio_to_sim": ratio}}}

    report = {"success_threshold": 1.0, "settings": ["nominal", "sim:hand_laggy"],
              "rows": [row("ppo-dactyl", 12.0, 0.85), row("ppo-none", 15.0, 0.3)]}
    met = targets(report)
    assert met["all_met"] and met["dr_keeps_80pct"]["sim:hand_laggy"] and met["nominal_keeps_less"]["sim:hand_laggy"]
    report["rows"][0] = row("ppo-dactyl", 0.5, 0.9)  # keeps its successes, but never learned: not met
    assert not targets(report)["all_met"] and targets(report)["dr_learned"] is False
    report["rows"][0] = row("ppo-dactyl", 12.0, 0.2)
    assert targets(report)["nominal_keeps_less"]["sim:hand_laggy"] is False
    report["rows"].append(row("ppo-dactyl_adr", 12.0, 0.9))  # the ADR row, where a study has one, is the claim's
    assert targets(report)["dr_row"] == "ppo-dactyl_adr" and targets(report)["all_met"]


def test_hand_transfer_refuses_bad_input_in_one_line(load_benchmark, capsys, tmp_path):
    import pytest

    main = load_benchmark("hand_transfer").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--ship", "ppo-sac", "--no-train"])  # checked before anything runs
    assert exit_info.value.code == 2 and "--ship: ppo-sac: not a row this benchmark ships" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-train", "--out", str(tmp_path)])  # nothing trained there
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "not trained yet" in err


def test_model_based_comparison_targets_need_a_margin_over_random_and_ppo_for_pets_and_mbpo(load_benchmark):
    bench = load_benchmark("model_based_comparison")
    random = {"mean": 20.0, "stderr": 2.0}
    rows = {"pets": {"eval": {"mean": 300.0, "stderr": 10.0}}, "mbpo": {"eval": {"mean": 150.0, "stderr": 10.0}},
            "i2a": {"eval": {"mean": 40.0, "stderr": 10.0}}, "ppo": {"eval": {"mean": 200.0, "stderr": 5.0}}}
    out = bench.targets(rows, random)
    assert out["above_random"] == {"pets": True, "mbpo": True, "i2a": False, "ppo": True}  # i2a: 20 < 2 x 12
    assert out["sample_efficient_vs_ppo"] == {"pets": True, "mbpo": False}
    assert out["all_met"] is False
    args = bench.main.__globals__["argparse"].Namespace(steps=100, ppo_factor=5)
    assert bench.budget("ppo", args) == 500 and bench.budget("pets", args) == 100
    assert bench.frames_per_step("dreamer_v3") == bench.ACTION_REPEAT and bench.frames_per_step("pets") == 1
