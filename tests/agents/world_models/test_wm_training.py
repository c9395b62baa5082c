"""End to end: `simreal train dreamer` per preset on CPU in seconds, determinism, resume, faults, export."""

import json

import numpy as np
import pytest
import torch

from simreal.agents import load_policy
from simreal.cli import main
from simreal.training.logger import read_metrics
from simreal.training.run import RunDir, load_weights_only

SMOKE = ["--preset", "tiny", "--quiet"]
LOSS_KEYS = ("train/wm_loss", "train/kl_dyn", "train/kl_rep", "train/reward_loss", "train/actor_loss",
             "train/critic_loss", "train/imag_return")


def train(run_dir, *extra, steps=200, preset="dreamer_v3"):
    return main(["train", "dreamer", "--preset", preset, *SMOKE, "--steps", str(steps), "--run-dir", str(run_dir),
                 *extra])


def metrics_without_time(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


@pytest.mark.parametrize("preset", ["dreamer_v1", "dreamer_v2", "dreamer_v3"])
def test_each_preset_trains_a_few_steps_and_exports_a_policy(tmp_path, preset, capsys):
    randomization = "dmc_cartpole" if preset == "dreamer_v2" else "none"
    assert train(tmp_path / "run", "--randomization", randomization, steps=240, preset=preset) == 0
    out = capsys.readouterr().out
    assert "done: 240 env steps" in out and f"(randomization {randomization})" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # prefill 64 env steps = 32 policy steps; then 16 replayed steps per policy step / (4 x 8) per update
    assert summary["frames"] == 240 and summary["policy_steps"] == 120
    assert summary["updates"] == (120 - 32) * 16 // 32
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    for key in LOSS_KEYS:
        assert np.all(np.isfinite(metrics[key][1])), key
    assert metrics["train/kl_dyn"][1][-1] > 0
    checkpoint = load_weights_only(RunDir(tmp_path / "run", resume=True).latest_checkpoint())
    assert checkpoint["step"] == 240 and checkpoint["counters"]["updates"] == summary["updates"]
    policy = load_policy(tmp_path / "run" / "policy.pt")
    obs = {"position": np.zeros((2, 3), np.float32), "velocity": np.zeros((2, 2), np.float32)}
    action, _ = policy.act(obs, policy.initial_state(2))
    assert action.shape == (2, 1) and np.all(np.abs(action) <= 1)


def test_same_seed_gives_the_same_run(tmp_path):
    assert train(tmp_path / "a", "--seed", "3", steps=160) == 0
    assert train(tmp_path / "b", "--seed", "3", steps=160) == 0
    assert train(tmp_path / "c", "--seed", "4", steps=160) == 0
    a, b, c = (metrics_without_time(tmp_path / n / "metrics.jsonl") for n in "abc")
    assert a == b
    assert a != c
    wa = load_weights_only(RunDir(tmp_path / "a", resume=True).latest_checkpoint())["agent"]["modules"]
    wb = load_weights_only(RunDir(tmp_path / "b", resume=True).latest_checkpoint())["agent"]["modules"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_counters_replay_and_metrics(tmp_path):
    run = tmp_path / "run"
    assert train(run, "--set", "run.checkpoint_every=100", steps=200) == 0
    first = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert main(["train", "dreamer", "--run-dir", str(run), "--resume", "--steps", "300", "--quiet"]) == 0
    last = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert first["step"] == 200 and last["step"] == 300
    assert last["counters"]["updates"] > first["counters"]["updates"]
    # the replay came back: 100 policy steps + the first row before; after, the resumed run's fresh
    # episode start (an is_first row) and 50 policy steps
    assert int(first["replay"]["count"].sum()) == 101
    assert int(last["replay"]["count"].sum()) == 101 + 1 + 50
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[-1] >= 288


def test_resume_with_a_different_observation_space_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, steps=100) == 0
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("dm_control/cartpole-swingup-v0", "dm_control/reacher-easy-v0"))
    assert main(["train", "dreamer", "--run-dir", str(run), "--resume", "--steps", "200", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "observation space mismatch on resume" in err and "'to_target'" in err


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    from simreal.agents.world_models.world_model import WorldModel

    original = WorldModel.loss
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        loss, post, metrics = original(self, batch)
        return (loss * float("nan") if calls["n"] >= 20 else loss), post, metrics

    monkeypatch.setattr(WorldModel, "loss", poisoned)
    run = tmp_path / "run"
    assert train(run, "--set", "run.checkpoint_every=100", steps=400) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "Dreamer update 20 (env step " in err and "): world-model loss is nan" in err
    assert "the last finite checkpoint is" in err and err.endswith("step_000000000100.pt")
    checkpoints = RunDir(run, resume=True).checkpoints()
    assert [p.name for p in checkpoints] == ["step_000000000100.pt"]
    weights = load_weights_only(checkpoints[-1])["agent"]["modules"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_bad_presets_and_overrides_fail_in_one_line(tmp_path, capsys):
    assert train(tmp_path / "a", "--set", "model.rssm.dist=foo") == 2
    assert train(tmp_path / "b", "--preset", "huge") == 2
    assert train(tmp_path / "c", "--set", "model.keys=[nope]") == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "model.rssm.dist: expected discrete or gaussian" in errors[0]
    assert "unknown preset 'huge'" in errors[1]
    assert "observation key 'nope' not in the env's keys" in errors[2]


def test_pixels_train_and_log_open_loop_predictions(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert train(run, "--preset", "dmc_pixels", "--set", "env.pixels=[16, 16]", "--set", "run.video_every=100",
                 steps=200) == 0
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("train/open_loop_true_pred_error")
    assert images and images[-1].width == 8 * 16 and images[-1].height == 4 * 3 * 16   # 4 samples x (true, pred, error)
    metrics = read_metrics(run / "metrics.jsonl")
    assert np.all(np.isfinite(metrics["train/recon_image"][1]))


def test_hand_cube_with_dactyl_randomization_trains(tmp_path):
    run = tmp_path / "run"
    assert train(run, "--preset", "hand_cube", "--randomization", "dactyl", "--set", "env.n_envs=2",
                 steps=120) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["updates"] > 0 and summary["policy_steps"] == 120
    policy = load_policy(run / "policy.pt")
    assert "state" not in policy.observation_space.spaces   # the privileged state is not encoded by default


def test_hand_cube_from_pixels_trains_on_the_tiled_cameras_without_the_measured_pose(tmp_path):
    import simreal

    run = tmp_path / "run"
    assert train(run, "--preset", "hand_cube", "--randomization", "dactyl", "--set", "env.n_envs=2",
                 "--set", "env.pixels=[16, 16]", "--set", "env.pixels_only=true", steps=96) == 0
    policy = load_policy(run / "policy.pt")
    spaces = policy.observation_space.spaces
    assert spaces["image"].shape == (16, 16, 3) and "object_pos" not in spaces and "fingertip_pos" in spaces
    env = simreal.make(simreal.HAND_CUBE_ID, pixels=(16, 16), pixels_only=True, randomization="dactyl")
    obs, _ = env.reset(seed=0)
    action, _ = policy.act({k: np.asarray(obs[k])[None] for k in spaces}, policy.initial_state(1))
    assert env.action_space.contains(action[0].astype(np.float32))
    env.close()


@pytest.mark.parametrize("push, expected", [(1.0, 1.0), (0.3, 0.0)])
def test_evaluation_reports_how_often_the_policy_sits_at_the_action_bounds(tmp_path, monkeypatch, push, expected):
    # A policy pinned to a bound (the constant push cartpole swing-up collapses to) reads 1, one inside reads 0.
    from simreal.agents.world_models.dreamer import LatentPolicy

    def constant(self, obs, state, explore):
        n = next(iter(obs.values())).shape[0]
        return torch.full((n, 1), push), state

    monkeypatch.setattr(LatentPolicy, "act", constant)
    assert train(tmp_path / "run", "--set", "run.eval_episodes=2", steps=80) == 0
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert metrics["eval/action_saturation"][1][-1] == expected
    assert len(metrics["eval/return"][1]) == 1
