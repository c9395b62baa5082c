import json
import os
import pickle
import random

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal.training.config import ConfigError, from_dict, parse_override, resolve_config
from simreal.training.envs import make_training_env, split_keys
from simreal.training.export import load_export, save_export
from simreal.utils.spaces import space_from_data, space_to_data
from simreal.training.logger import Logger, read_metrics
from simreal.training.run import (RunDir, RunDirError, capture_global_rng, generator_state, restore_generator,
                                  restore_global_rng)

CONFIG = """
defaults:
  env: {id: simreal/HandCube-v0, n_envs: 4, kwargs: null}
  algo: {lr: 0.0003, epochs: 4, clip: true, sizes: [64, 64]}
presets:
  tiny: {algo: {epochs: 1, sizes: [8]}}
  fast: {algo: {lr: 0.001}, env: {n_envs: 8}}
  broken: {algo: {nope: 1}}
"""


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "configs.yaml"
    path.write_text(CONFIG)
    return path


def test_presets_and_overrides_merge_in_order(cfg_file):
    cfg = resolve_config(cfg_file, ["tiny", "fast"], ["algo.lr=1e-2", "env.kwargs={a: 1}", "algo.epochs=3"])
    assert cfg["algo"] == {"lr": 0.01, "epochs": 3, "clip": True, "sizes": [8]}
    assert cfg["env"] == {"id": "simreal/HandCube-v0", "n_envs": 8, "kwargs": {"a": 1}}
    assert isinstance(resolve_config(cfg_file, [], ["algo.lr=1"])["algo"]["lr"], float)


@pytest.mark.parametrize("presets, overrides, match", [
    (["nope"], [], "unknown preset 'nope'"),
    (["broken"], [], "preset 'broken': unknown key 'algo.nope'"),
    ([], ["algo.lrr=1"], "unknown key 'algo.lrr'"),
    ([], ["algo.epochs=two"], "key 'algo.epochs': expected an integer"),
    ([], ["algo.clip=1"], "key 'algo.clip': expected a boolean"),
    ([], ["algo.epochs"], "expected KEY.PATH=VALUE"),
    ([], ["algo..x=1"], "empty part"),
])
def test_bad_presets_and_overrides_fail_in_one_line(cfg_file, presets, overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        resolve_config(cfg_file, presets, overrides)
    assert "\n" not in str(err.value)


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=hello") == (["a"], "hello")


def test_from_dict_names_unknown_field():
    import dataclasses

    @dataclasses.dataclass
    class C:
        a: int = 1

    assert from_dict(C, {"a": 2}, "x").a == 2
    with pytest.raises(ConfigError, match="x: unknown key 'b'"):
        from_dict(C, {"b": 2}, "x")


def test_run_dir_checkpoints_are_atomic_weights_only_and_pruned(tmp_path):
    run = RunDir(tmp_path / "run")
    run.save_config({"a": {"b": 1}})
    for step in (10, 20, 30, 40):
        run.save_checkpoint({"step": step, "w": torch.ones(3) * step}, step, keep=2)
    assert [p.name for p in run.checkpoints()] == ["step_000000000030.pt", "step_000000000040.pt"]
    assert not list(run.checkpoint_dir.glob("*.tmp"))
    assert run.load_checkpoint()["step"] == 40
    with pytest.raises(RunDirError, match="already holds checkpoints"):
        RunDir(tmp_path / "run")
    assert RunDir(tmp_path / "run", resume=True).load_config() == {"a": {"b": 1}}
    with pytest.raises(RunDirError, match="nothing to resume"):
        RunDir(tmp_path / "other", resume=True)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(RunDirError, match="not a loadable simreal checkpoint"):
        RunDir(tmp_path / "r").load_checkpoint(path)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    rng = np.random.default_rng(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    run = RunDir(tmp_path / "r")
    run.save_checkpoint({"rng": capture_global_rng(), "gen": generator_state(rng)}, 1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), rng.random())
    state = run.load_checkpoint()
    restore_global_rng(state["rng"])
    restore_generator(rng, state["gen"])
    assert (random.random(), np.random.rand(), torch.rand(1).item(), rng.random()) == expected


def test_logger_writes_jsonl_and_drops_records_after_resume_step(tmp_path):
    with Logger(tmp_path, tensorboard=False) as log:
        for step in (1, 2, 3):
            log.scalars(step, {"train/loss": step * 1.5, "eval/return": float("nan")})
    with Logger(tmp_path, resume_step=2, tensorboard=False) as log:
        log.scalars(3, {"train/loss": 9.0})
    steps, values = read_metrics(tmp_path / "metrics.jsonl")["train/loss"]
    assert steps.tolist() == [1, 2, 3] and values.tolist() == [1.5, 3.0, 9.0]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["eval/return"] is None


def test_logger_writes_tensorboard_events(tmp_path):
    with Logger(tmp_path) as log:
        log.scalars(1, {"train/loss": 1.0})
        log.image("eval/frame", 1, np.zeros((8, 8, 3), np.uint8))
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_spaces_round_trip_and_export_checks_format(tmp_path):
    space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (3,), np.float32), "b": gym.spaces.Discrete(4),
                             "c": gym.spaces.MultiDiscrete([11, 11])})
    assert space_from_data(space_to_data(space)) == space
    # an export written before the spaces had one serializer (a Dict's members under "spaces") still loads
    old = {"type": "Dict", "spaces": {"a": {"type": "Box", "low": [-1.0] * 3, "high": [1.0] * 3, "shape": [3],
                                            "dtype": "float32"}, "b": {"type": "Discrete", "n": 4, "start": 0}}}
    assert space_from_data(old) == gym.spaces.Dict({"a": space["a"], "b": space["b"]})
    with pytest.raises(ValueError, match="invalid Box space description"):
        space_from_data({"type": "Box", "low": [0.0]})
    path = save_export(tmp_path / "policy.pt", "ppo", {"hidden": 8}, space, space["c"], {"w": torch.ones(2)})
    data = load_export(path, agent="ppo")
    assert data["observation_space"] == space and data["config"] == {"hidden": 8}
    with pytest.raises(RunDirError, match="exported by agent 'ppo', expected 'dreamer'"):
        load_export(path, agent="dreamer")


def test_training_env_gives_float32_dicts_for_dm_control_with_randomization():
    venv = make_training_env("dm_control/cartpole-swingup-v0", 2, seed=3, randomization="dmc_cartpole",
                             action_repeat=2)
    assert set(venv.observation_space.spaces) == {"position", "velocity"}
    obs = venv.reset()
    assert obs["position"].dtype == np.float32 and obs["position"].shape == (2, 3)
    obs2, reward, done, info = venv.step(np.zeros((2, 1), np.float32))
    assert reward.shape == (2,)
    again = make_training_env("dm_control/cartpole-swingup-v0", 2, seed=3, randomization="dmc_cartpole",
                              action_repeat=2).reset()
    np.testing.assert_array_equal(again["position"], obs["position"])
    assert split_keys(venv.observation_space) == (["position", "velocity"], ["position", "velocity"])


def test_training_env_hand_cube_and_key_split():
    venv = make_training_env("simreal/HandCube-v0", 2, seed=0, randomization="none")
    actor, critic = split_keys(venv.observation_space)
    assert "state" not in actor and critic == ["state"]
    with pytest.raises(ValueError, match="observation key 'nope'"):
        split_keys(venv.observation_space, actor_keys=["nope"])


def test_pixel_observations_for_gymnasium_envs():
    venv = make_training_env("dm_control/cartpole-swingup-v0", 1, seed=0, pixels=(32, 32), pixels_only=True)
    obs = venv.reset()
    assert set(obs) == {"image"} and obs["image"].shape == (1, 32, 32, 3) and obs["image"].dtype == np.uint8


def _train_args(run_dir, *extra):
    import argparse

    from simreal.training.cli_args import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(["--run-dir", str(run_dir), *extra])


RUN_CONFIG = """
defaults:
  env: {id: simreal/HandCube-v0, randomization: none}
  run: {steps: 100, seed: 0, device: auto}
  algo: {lr: 0.1}
presets:
  long: {run: {steps: 1000}}
"""


def test_prepare_run_applies_flags_saves_config_and_resumes(tmp_path):
    from simreal.training.cli_args import prepare_run

    path = tmp_path / "c.yaml"
    path.write_text(RUN_CONFIG)
    run, cfg = prepare_run(_train_args(tmp_path / "r", "--preset", "long", "--set", "algo.lr=0.5",
                                       "--env", "Hopper-v5", "--seed", "4"), path)
    assert cfg == {"env": {"id": "Hopper-v5", "randomization": "none"},
                   "run": {"steps": 1000, "seed": 4, "device": "auto"}, "algo": {"lr": 0.5}}
    assert run.load_config() == cfg
    _, resumed = prepare_run(_train_args(tmp_path / "r", "--resume", "--steps", "2000"), path)
    assert resumed["run"]["steps"] == 2000 and resumed["algo"]["lr"] == 0.5
    with pytest.raises(ConfigError, match="drop --seed, --set"):
        prepare_run(_train_args(tmp_path / "r", "--resume", "--seed", "1", "--set", "algo.lr=1"), path)


def test_run_dir_naming_a_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a run")
    for resume in (False, True):
        with pytest.raises(RunDirError, match="exists and is not a folder") as err:
            RunDir(path, resume=resume)
        assert "\n" not in str(err.value)
    assert path.read_text() == "not a run"


def test_a_corrupt_saved_config_names_the_file_line_and_column(tmp_path):
    run = RunDir(tmp_path / "r")
    run.save_config({"env": {"id": "Hopper-v5"}, "run": {"steps": 1}})
    with open(run.config_path, "a") as f:
        f.write("ppo: {lr: [1,\n")
    with pytest.raises(ConfigError) as err:
        RunDir(tmp_path / "r", resume=True).load_config()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{run.config_path}:6:1: not valid YAML (")
    assert "damaged" in message


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, caplog):
    run = RunDir(tmp_path / "r")
    run.save_config({"run": {"steps": 30}})
    for step in (10, 20, 30):
        run.save_checkpoint({"step": step, "w": torch.ones(2) * step}, step)
    newest = run.latest_checkpoint()
    newest.write_bytes(newest.read_bytes()[:200])  # cut short (a full disk, a copy interrupted)
    with caplog.at_level("WARNING", logger="simreal.training.run"):
        state, path = RunDir(tmp_path / "r", resume=True).load_latest_good_checkpoint()
    assert state["step"] == 20 and path.name == "step_000000000020.pt"
    [record] = caplog.records
    assert "\n" not in record.getMessage() and "step_000000000030.pt" in record.getMessage()
    assert "resuming from the older step_000000000020.pt" in record.getMessage()
    # the damaged file is kept aside, so the good one is the latest for everything that asks
    assert run.latest_checkpoint() == path and (run.checkpoint_dir / "step_000000000030.pt.damaged").exists()
    for p in run.checkpoints():
        p.write_bytes(b"garbage")
    with pytest.raises(RunDirError, match="no checkpoint of .* loads"):
        run.load_latest_good_checkpoint()


def test_prepare_run_validates_before_writing_and_takes_entry_points_from_the_command_line_only(tmp_path):
    import sys

    from simreal.training.cli_args import prepare_run

    path = tmp_path / "c.yaml"
    path.write_text(RUN_CONFIG)

    def positive_lr(cfg):
        if cfg["algo"]["lr"] <= 0:
            raise ConfigError(f"algo.lr: expected a positive number, got {cfg['algo']['lr']}")

    with pytest.raises(ConfigError, match="algo.lr: expected a positive number, got -1"):
        prepare_run(_train_args(tmp_path / "bad", "--set", "algo.lr=-1"), path, validate=positive_lr)
    assert not (tmp_path / "bad").exists()  # nothing written: no folder, no config.yaml
    with pytest.raises(ConfigError, match=r"'this:Foo-v0' is a module:name entry point.*pass it with --env"):
        prepare_run(_train_args(tmp_path / "ep", "--set", "env.id=this:Foo-v0"), path)
    assert not (tmp_path / "ep").exists() and "this" not in sys.modules
    run, cfg = prepare_run(_train_args(tmp_path / "ep", "--env", "this:Foo-v0"), path)  # typed: taken
    assert cfg["env"]["id"] == "this:Foo-v0"
    with pytest.raises(ConfigError, match=r"config.yaml: env.id: 'this:Foo-v0' is a module:name entry point.*"
                                          r"confirm it with --env this:Foo-v0"):
        prepare_run(_train_args(tmp_path / "ep", "--resume"), path)
    assert "this" not in sys.modules  # refused before anything imported it
    _, resumed = prepare_run(_train_args(tmp_path / "ep", "--resume", "--env", "this:Foo-v0"), path)
    assert resumed == cfg
    with pytest.raises(ConfigError, match="drop --env"):
        prepare_run(_train_args(tmp_path / "ep", "--resume", "--env", "Hopper-v5"), path)
