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
