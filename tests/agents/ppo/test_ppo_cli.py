"""``simreal train ppo``: trains, is killed, resumes, exports; bad input is one line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from simreal import cli
from simreal.agents import load_policy
from simreal.training.logger import read_metrics

CUE = "simreal.agents.ppo.testing:CueRecall-v0"


def test_help_explains_flags_and_presets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "ppo", "--help"])
    out = capsys.readouterr().out
    for text in ("--env", "--randomization", "--steps", "--run-dir", "--preset", "--set", "--resume", "--quiet",
                 "cartpole", "hand_cube", "feedforward", "examples:"):
        assert text in out


def test_trains_the_hand_env_with_dactyl_randomization_and_exports(tmp_path, capsys):
    run = tmp_path / "hand"
    code = cli.main(["train", "ppo", "--preset", "tiny", "--randomization", "dactyl", "--steps", "128",
                     "--set", "env.n_envs=2", "--set", "ppo.minibatches=1", "--run-dir", str(run), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "critic on state" in out and "done: 128 steps, 4 updates" in out
    metrics = read_metrics(run / "metrics.jsonl")
    assert metrics["train/updates"][1].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert sum(k.startswith("rand/") for k in metrics) >= 5  # the sampled values of the episodes
    assert "eval/return" in metrics and "time/fps" in metrics
    policy = load_policy(run / "policy.pt")
    obs = {k: np.zeros((3, *s.shape), np.float32) for k, s in policy.observation_space.spaces.items()}
    action, state = policy.act(obs, policy.initial_state(3))
    assert action.shape == (3, 20) and np.all(np.abs(action) <= 1.0)
    cfg = (run / "config.yaml").read_text()
    assert "randomization: dactyl" in cfg and "n_envs: 2" in cfg


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "simreal.cli", "train", "ppo", "--preset", "tiny", "--env", CUE,
           "--set", "run.checkpoint_every=1", "--run-dir", str(run), "--quiet"]
    proc = subprocess.Popen(cmd + ["--steps", "1000000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, MUJOCO_GL="egl"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((run / "checkpoints").glob("step_*.pt"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-update, maybe mid-write
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    latest = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt"))
    target = latest + 128
    # the env is an entry point (module:name): a resume takes it from the command line only, not from config.yaml
    resume = [sys.executable, "-m", "simreal.cli", "train", "ppo", "--run-dir", str(run), "--resume",
              "--env", CUE, "--steps", str(target), "--quiet"]
    done = subprocess.run(resume, capture_output=True, text=True,
                          env=dict(os.environ, MUJOCO_GL="egl"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming at step {latest}" in done.stdout and f"done: {target} steps" in done.stdout
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(64, target + 1, 64))  # nothing lost up to the checkpoint, nothing repeated
    export = torch.load(run / "policy.pt", weights_only=True)
    assert export["extra"]["env_steps"] == target


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--set", "ppo.lrr=1"], "unknown key 'ppo.lrr'"),
    (["--set", "ppo.minibatches=8"], "ppo.minibatches: minibatches are cut by env"),
    (["--set", "policy.activation=swish"], "policy.activation: expected one of"),
    (["--env", "simreal/HandCube-v0", "--randomization", "no_such_file"], "no_such_file"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    code = cli.main(["train", "ppo", "--preset", "tiny", "--env", CUE, "--run-dir", str(tmp_path / "r"), *argv])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("override, message", [
    ("ppo.lr=-1", "ppo.lr: expected a positive number, got -1.0"),
    ("ppo.gamma=0", "ppo.gamma: expected a number in (0, 1], got 0.0"),
    ("ppo.gae_lambda=1.5", "ppo.gae_lambda: expected a number in (0, 1], got 1.5"),
    ("ppo.clip=0", "ppo.clip: expected a positive number, got 0.0"),
    ("ppo.epochs=0", "ppo.epochs: expected an integer >= 1, got 0"),
    ("env.n_envs=0", "env.n_envs: expected an integer >= 1, got 0"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, override, message):
    run = tmp_path / "r"
    assert cli.main(["train", "ppo", "--preset", "tiny", "--set", override, "--run-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"simreal train: error: {message}"]
    assert not run.exists()  # no folder, no config.yaml to trip over on the next try


def test_run_dir_naming_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    for extra in ([], ["--resume"]):
        assert cli.main(["train", "ppo", "--preset", "tiny", "--run-dir", str(path), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"simreal train: error: {path}: exists and is not a folder; --run-dir names the run's folder "
                   "(choose another path)"] * 2


def test_resume_refuses_what_the_saved_folder_cannot_be_trusted_with(tmp_path, capsys, caplog):
    """A resume: a truncated newest checkpoint falls back to the older one (one warning); a corrupt
    config.yaml and an entry point in it are one-line errors that import nothing."""
    run = tmp_path / "hand"
    base = ["train", "ppo", "--run-dir", str(run), "--quiet"]
    assert cli.main(base + ["--preset", "tiny", "--steps", "128", "--set", "run.checkpoint_every=1"]) == 0
    newest = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
    assert newest.name == "step_000000000128.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        assert cli.main(base + ["--resume", "--steps", "192"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 64" in out and "done: 192 steps" in out
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "step_000000000128.pt: not a loadable simreal checkpoint" in warning
    assert "resuming from the older step_000000000064.pt" in warning and "\n" not in warning

    config = run / "config.yaml"
    saved = config.read_text()
    config.write_text(saved.replace("simreal/HandCube-v0", "this:Foo-v0"))
    assert cli.main(base + ["--resume", "--steps", "256"]) == 2
    captured = capsys.readouterr()
    assert "Beautiful is better than ugly" not in captured.out  # `import this` never ran
    assert captured.err.splitlines() == [
        f"simreal train: error: {config}: env.id: 'this:Foo-v0' is a module:name entry point, which would import "
        "module 'this'; a config may only name registered gymnasium ids, entry points are taken from the "
        "command line only (to resume it anyway, confirm it with --env this:Foo-v0)"]

    config.write_text(saved + "ppo: {lr: [\n")
    assert cli.main(base + ["--resume", "--steps", "256"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"simreal train: error: {config}:")
    line = len(saved.splitlines()) + 2
    assert f"config.yaml:{line}:1: not valid YAML (" in err[0]


def test_an_entry_point_that_does_not_import_is_one_line(tmp_path, capsys):
    from simreal.cli import main

    assert main(["train", "ppo", "--env", "nosuch_module_xyz:Foo", "--preset", "tiny", "--quiet",
                 "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load it (ModuleNotFoundError" in err[0]
