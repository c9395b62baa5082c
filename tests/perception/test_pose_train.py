"""Training the pose CNN (loss falls, resume repeats the run), its export, `simreal pose`, and vision wrappers."""

import json

import numpy as np
import pytest
import torch

from simreal import cli
from simreal.perception.dataset import load_dataset
from simreal.perception.estimator import PoseEstimator
from simreal.perception.train import CONFIG_PATH, PoseTrainer
from simreal.training.config import resolve_config
from simreal.training.logger import read_metrics
from simreal.training.run import RunDir, load_weights_only

def config(dataset, steps=60, **overrides):
    extra = [f"run.steps={steps}", f"data.path={dataset}", "run.tensorboard=false", "run.torch_threads=1",
             "run.log_every=5", "data.holdout=8"] + [f"{k}={v}" for k, v in overrides.items()]
    return resolve_config(CONFIG_PATH, ["tiny"], extra)


def test_a_tiny_run_lowers_the_loss(dataset, tmp_path):
    trainer = PoseTrainer(config(dataset, steps=160, **{"optim.batch_size": 16}), RunDir(tmp_path / "run"),
                          progress=False)
    last = trainer.train()
    trainer.close()
    steps, loss = read_metrics(tmp_path / "run" / "metrics.jsonl")["train/loss"]
    assert steps[-1] == 160
    assert trainer.net.config.rotation == "6d" and trainer.cfg["optim"]["loss"] == "distance"  # the defaults
    # it learns (fits 40 samples); the distance loss is linear in the errors, so this is errors down by a quarter
    assert loss[-3:].mean() < 0.75 * loss[:3].mean()
    assert {"eval/position_mm_median", "eval/rotation_deg_p90"} <= set(last)
    state = load_weights_only(next(iter(sorted((tmp_path / "run" / "checkpoints").glob("*.pt")))))
    assert {"model", "optimizer", "step", "batch_rng", "global_rng"} <= set(state)


def test_the_quaternion_head_with_a_cosine_schedule_learns_too(dataset, tmp_path):
    trainer = PoseTrainer(config(dataset, steps=80, **{"optim.batch_size": 16, "model.rotation": "quat",
                                                       "optim.schedule": "cosine"}),
                          RunDir(tmp_path / "run"), progress=False)
    assert trainer.lr_at(0) == pytest.approx(3e-3) and trainer.lr_at(40) == pytest.approx(1.5e-3)
    assert trainer.lr_at(80) == pytest.approx(0.0, abs=1e-12)
    trainer.train()
    trainer.close()
    steps, loss = read_metrics(tmp_path / "run" / "metrics.jsonl")["train/loss"]
    assert loss[-3:].mean() < 0.6 * loss[:3].mean()
    assert PoseEstimator.load(tmp_path / "run" / "pose_estimator.pt").net.config.rotation == "quat"


def test_bf16_precision_runs_the_trunk_in_bfloat16_and_the_head_in_float32(dataset, tmp_path):
    trainer = PoseTrainer(config(dataset, steps=160, **{"optim.batch_size": 16, "run.precision": "bf16"}),
                          RunDir(tmp_path / "run"), progress=False)
    assert trainer.precision == "bf16" and trainer.describe().endswith("bf16")
    first = {}

    def note(name):
        def hook(module, inputs, out):  # returns None: the output is left as it is
            first.setdefault(name, out.dtype)
        return hook

    trainer.net.trunk.register_forward_hook(note("trunk"))
    trainer.net.head.register_forward_hook(note("head"))
    trainer.train()
    trainer.close()
    assert first == {"trunk": torch.bfloat16, "head": torch.float32}  # in the first training step
    steps, loss = read_metrics(tmp_path / "run" / "metrics.jsonl")["train/loss"]
    assert loss[-3:].mean() < 0.75 * loss[:3].mean()
    assert next(trainer.net.parameters()).dtype == torch.float32  # the weights (and the export) stay float32
    estimator = PoseEstimator.load(tmp_path / "run" / "pose_estimator.pt")
    position, quat = estimator.net(torch.from_numpy(load_dataset(dataset).images[:4]))
    assert position.dtype == torch.float32 and torch.isfinite(position).all() and torch.isfinite(quat).all()


def test_precision_names(dataset, tmp_path):
    from simreal.training.config import ConfigError
    from simreal.training.run import native_bf16, pick_precision

    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert pick_precision("fp32", cpu) == "fp32" and pick_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="precision: expected one of auto, fp32, bf16, got 'half'"):
        PoseTrainer(config(dataset, **{"run.precision": "half"}), RunDir(tmp_path / "run"), progress=False)


def test_shifted_images_move_by_their_offsets_and_repeat_the_edge():
    from simreal.perception.train import shift_images

    images = torch.arange(2 * 5 * 6 * 3, dtype=torch.int64).reshape(2, 5, 6, 3).to(torch.uint8)
    out = shift_images(images, torch.tensor([[0, 0], [1, -2]]))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    torch.testing.assert_close(out[0], images[0])
    torch.testing.assert_close(out[1, :4, 2:], images[1, 1:, :4])  # pixel (y, x) comes from (y + 1, x - 2)
    torch.testing.assert_close(out[1, 4, 2:], images[1, 4, :4])  # below the last row: the last row again
    torch.testing.assert_close(out[1, :4, 0], images[1, 1:, 0])  # left of the first column: the first column


def test_augmented_training_shifts_images_resumes_exactly_and_checks_the_shift(dataset, tmp_path):
    from simreal.training.config import ConfigError

    def trainer(name, steps, shift=2, resume=False):
        cfg = config(dataset, steps=steps, **{"data.augment_shift": shift})
        run = RunDir(tmp_path / name, resume=resume)
        if not resume:
            run.save_config(cfg)
        return PoseTrainer(cfg, run, progress=False)

    plain, shifted = trainer("p", 20, shift=0), trainer("s", 20)
    (a, pos_a, _), (b, pos_b, _) = plain._batch(), shifted._batch()
    torch.testing.assert_close(pos_a, pos_b)  # the same samples, but moved
    assert not torch.equal(a, b) and a.shape == b.shape
    plain.close()
    shifted.close()
    straight = trainer("a", 20)
    straight.train()
    straight.close()
    first = trainer("b", 10)
    first.train()
    first.close()
    resumed = trainer("b", 20, resume=True)
    resumed.train()
    resumed.close()
    for key, value in straight.net.state_dict().items():
        torch.testing.assert_close(value, resumed.net.state_dict()[key], rtol=0, atol=0, msg=key)
    for bad in (-1, 7):  # 24 px images: at most 6 (a float is refused by the config layer)
        with pytest.raises(ConfigError, match="data.augment_shift: expected a whole number of pixels from 0 to 6"):
            trainer("c", 20, shift=bad)


def test_the_weight_average_follows_the_weights_slowly_and_copies_counts():
    from simreal.perception.train import WeightAverage

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(net, decay=0.9)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(2.0)
        net[1].num_batches_tracked.fill_(7)
    average.update(net)  # the first decay is ramped down to min(0.9, 2 / 11)
    torch.testing.assert_close(average.net[0].weight, start + 9 / 11)
    torch.testing.assert_close(average.net[1].running_mean, torch.full((2,), 2 * 9 / 11))
    assert int(average.net[1].num_batches_tracked) == 7
    for _ in range(200):
        average.update(net)
    torch.testing.assert_close(average.net[0].weight, net[0].weight)  # converges on fixed weights
    assert not any(p.requires_grad for p in average.net.parameters())
    clone = WeightAverage(net, decay=0.9)
    clone.load_state_dict(average.state_dict())
    assert clone.updates == 201


def test_the_export_and_eval_use_the_average_and_eval_raw_the_trained_weights(dataset, tmp_path):
    from simreal.training.config import ConfigError

    trainer = PoseTrainer(config(dataset, steps=20, **{"optim.ema": 0.99}), RunDir(tmp_path / "run"), progress=False)
    last = trainer.train()
    trainer.close()
    assert trainer.exported_net is trainer.average.net and trainer.average.updates == 20
    exported = PoseEstimator.load(tmp_path / "run").net.state_dict()
    for key, value in trainer.average.net.state_dict().items():
        torch.testing.assert_close(exported[key], value.cpu(), rtol=0, atol=0, msg=key)
    assert not torch.equal(exported["head.0.weight"], trainer.net.state_dict()["head.0.weight"])
    assert last["eval/position_mm_median"] == trainer.evaluate_holdout()["position_mm"]["median"]
    assert last["eval_raw/position_mm_median"] == trainer.evaluate_holdout(net=trainer.net)["position_mm"]["median"]
    off = PoseTrainer(config(dataset, **{"optim.ema": 0}), RunDir(tmp_path / "off"), progress=False)
    assert off.average is None and off.exported_net is off.net
    off.close()
    for bad in (1, -0.5):  # (a word or true is refused by the config layer)
        with pytest.raises(ConfigError, match="optim.ema: expected a decay from 0"):
            PoseTrainer(config(dataset, **{"optim.ema": bad}), RunDir(tmp_path / "bad"), progress=False)


def test_an_unknown_schedule_is_a_config_error(dataset, tmp_path):
    from simreal.training.config import ConfigError

    with pytest.raises(ConfigError, match="optim.schedule"):
        PoseTrainer(config(dataset, **{"optim.schedule": "step"}), RunDir(tmp_path / "run"), progress=False)


def test_resume_repeats_the_uninterrupted_run(dataset, tmp_path):
    straight = PoseTrainer(config(dataset, steps=20), RunDir(tmp_path / "a"), progress=False)
    straight.train()
    straight.close()
    run = RunDir(tmp_path / "b")
    run.save_config(config(dataset, steps=10))
    first = PoseTrainer(config(dataset, steps=10), run, progress=False)
    first.train()  # the run is killed here, after its checkpoint at step 10
    first.close()
    resumed = PoseTrainer(config(dataset, steps=20), RunDir(tmp_path / "b", resume=True), progress=False)
    assert resumed.step == 10
    resumed.train()
    resumed.close()
    assert resumed.average is not None  # optim.ema is on by default: the average resumes too
    for a, b in ((straight.net, resumed.net), (straight.average.net, resumed.average.net)):
        a, b = a.state_dict(), b.state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_cli_train_then_eval_reports_json(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["pose", "train", "--data", str(dataset), "--preset", "tiny", "--run-dir", str(run), "--quiet",
                     "--set", "run.torch_threads=1", "--set", "data.holdout=8"]) == 0
    assert "20 steps" in capsys.readouterr().out
    estimator = PoseEstimator.load(run)
    assert estimator.image_shape == (3, 24, 24, 3) and estimator.render["antialias"] == 0
    out = tmp_path / "eval.json"
    assert cli.main(["pose", "eval", "--estimator", str(run), "--n", "6", "--out", str(out), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    for name, randomization in (("randomized", "dactyl"), ("unrandomized", "none")):
        part = report[name]
        assert part["n"] == 6 and part["randomization"] == randomization and part["seed"] == 1_000_000
        for key in ("position_mm", "rotation_deg"):
            assert 0 <= part[key]["median"] <= part[key]["p90"]
    assert report["resolution"] == [24, 24]
    # evaluating a given dataset reproduces the estimator's own numbers
    assert cli.main(["pose", "eval", "--estimator", str(run / "pose_estimator.pt"), "--data", str(dataset),
                     "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    data = load_dataset(dataset)
    position, quat = estimator.predict(data.images)
    from simreal.perception.evaluate import pose_errors

    mm, _ = pose_errors(position, quat, data.position, data.quat)
    assert report[dataset.name]["position_mm"]["median"] == pytest.approx(float(np.median(mm)), abs=1e-3)


def test_a_zoomed_dataset_trains_an_estimator_that_renders_and_evaluates_zoomed(dataset, tmp_path, capsys):
    zoomed = tmp_path / "zoomed"
    assert cli.main(["pose", "dataset", "--n", "24", "--height", "24", "--width", "24", "--antialias", "0",
                     "--zoom", "1.5", "--out", str(zoomed), "--quiet"]) == 0
    assert "zoom 1.5" in capsys.readouterr().out
    run = tmp_path / "run"
    assert cli.main(["pose", "train", "--data", str(zoomed), "--preset", "tiny", "--run-dir", str(run), "--quiet",
                     "--set", "run.torch_threads=1", "--set", "data.holdout=4", "--set", "optim.loss=distance"]) == 0
    capsys.readouterr()
    estimator = PoseEstimator.load(run)
    assert estimator.render["zoom"] == 1.5
    assert cli.main(["pose", "eval", "--estimator", str(run), "--n", "4", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["zoom"] == 1.5 and load_dataset(run / "eval_data" / "randomized").settings["zoom"] == 1.5
    assert cli.main(["pose", "eval", "--estimator", str(run), "--data", str(dataset), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "rendered at zoom 1" in err and "--zoom 1.5" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli.main(["pose", "dataset", "--n", "2", "--zoom", "0.5", "--out", str(tmp_path / "z")])
    assert "--zoom: must be 1-16" in capsys.readouterr().err
    from simreal.envs.vec_env import HandCubeVecEnv
    from simreal.perception.wrapper import VisionVecEnv

    venv = HandCubeVecEnv(1, nthread=1, camera_obs=(24, 24), camera_antialias=0, settle_time=0.0)
    vision = VisionVecEnv(venv, estimator)  # the env's unzoomed images do not fit: it renders zoomed ones itself
    assert vision._renderer is not None and vision._renderer.zoom == 1.5
    venv.seed(0)
    assert vision.reset()["object_pos"].shape == (1, 3)
    vision.close()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["pose", "train", "--run-dir", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    assert "data.path: no dataset given" in capsys.readouterr().err
    assert cli.main(["pose", "eval", "--estimator", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["pose", "dataset", "--randomization", "nope.yaml", "--n", "2", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml: file not found" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def estimator_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("est")
    trainer = PoseTrainer(config(dataset, steps=10), RunDir(run), progress=False)
    trainer.train()
    trainer.close()
    return run


@pytest.fixture(scope="module")
def estimator(estimator_run):
    return PoseEstimator.load(estimator_run)


def test_vision_wrapper_puts_the_estimate_in_the_policy_keys(estimator):
    import simreal
    from simreal.perception.wrapper import VisionObservation
    from simreal.utils.rotations import quat_canonical, quat_conj, quat_mul

    env = simreal.make(simreal.HAND_CUBE_ID, randomization="dactyl", settle_time=0.0)
    vision = VisionObservation(env, estimator, keep_images=True)
    obs, _ = vision.reset(seed=0)
    truth = env.unwrapped.sim.observe()
    position, quat = estimator.predict(obs.pop("cameras")[None])  # the images the estimate came from
    np.testing.assert_allclose(obs["object_pos"], position[0], atol=1e-6)
    np.testing.assert_allclose(obs["object_quat"], quat[0], atol=1e-6)
    expected = quat_canonical(quat_mul(obs["goal_quat"].astype(float), quat_conj(quat[0])))
    np.testing.assert_allclose(obs["relative_quat"], expected, atol=1e-6)
    np.testing.assert_array_equal(obs["fingertip_pos"], truth["fingertip_pos"][0])
    assert np.abs(obs["object_pos"] - truth["object_pos"][0]).max() > 0  # an estimate, not the measurement
    vision.close()
    vision = VisionObservation(simreal.make(simreal.HAND_CUBE_ID, settle_time=0.0), estimator)
    obs, _ = vision.reset(seed=0)
    assert "cameras" not in obs and vision.observation_space.contains(obs)
    obs, *_ = vision.step(np.zeros(20, np.float32))
    assert vision.observation_space.contains(obs)
    vision.close()


def test_vision_vec_env_estimates_every_copy_and_terminal_observations(estimator):
    from simreal.envs.vec_env import HandCubeVecEnv
    from simreal.perception.wrapper import VisionVecEnv

    venv = HandCubeVecEnv(2, nthread=1, camera_obs=(24, 24), camera_antialias=0, settle_time=0.0, goal_timeout=0.08)
    vision = VisionVecEnv(venv, estimator)
    assert vision._renderer is None  # the env's own camera images fit the estimator
    venv.seed(0)
    obs = vision.reset()
    assert "cameras" not in obs and obs["object_pos"].shape == (2, 3)
    obs, _, done, infos = vision.step(np.zeros((2, 20), np.float32))
    assert done.all()  # one-step goal timeout: every copy ends and resets
    for info in infos:
        terminal = info["terminal_observation"]
        assert "cameras" not in terminal and terminal["object_pos"].shape == (3,)
    vision.close()


def test_vision_policy_acts_on_the_estimate_from_the_rigs_cameras_and_keeps_its_error(estimator):
    from simreal.perception.wrapper import VisionPolicy
    from simreal.rigs import FunctionPolicy, open_rig, run_episode

    seen = []
    plain = open_rig("sim:hand_laggy", env_kwargs={"settle_time": 0.0})
    inner = FunctionPolicy(lambda obs: seen.append(obs) or np.zeros((1, 20), np.float32), plain.observation_space,
                           plain.action_space)
    plain.close()
    vision = VisionPolicy(inner, estimator)
    kwargs = vision.env_kwargs()
    assert kwargs == {"camera_obs": (24, 24), "camera_zoom": 1.0, "camera_antialias": 0}
    rig = open_rig("sim:hand_laggy", env_kwargs={"settle_time": 0.0, **kwargs})
    measured = []
    result = run_episode(rig, vision, seed=3, max_steps=3, on_step=lambda t, obs, r, info: measured.append(obs))
    rig.close()
    assert result.steps == 3 and len(seen) == 3 and "cameras" not in seen[0]
    summary = vision.error_summary()
    assert summary["steps"] == 3 and summary["position_mm_median"] > 0 and 0 <= summary["angle_deg_median"] <= 180
    # what the policy saw at step 2 is the estimate from that step's images, not the measured pose
    assert np.abs(seen[1]["object_pos"][0] - measured[0]["object_pos"]).max() > 0
    with pytest.raises(ValueError, match="no 'cameras' key"):
        vision.act({k: v[None] for k, v in measured[0].items() if k != "cameras"}, None)


def test_evaluate_and_rig_record_run_a_state_policy_from_vision_through_the_cli(estimator_run, tiny_hand_ppo, tmp_path,
                                                                               capsys):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", "--agent", str(tiny_hand_ppo), "--rig", "sim:hand_laggy", "--episodes", "1",
                     "--max-steps", "3", "--pose-estimator", str(estimator_run), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "| hand_ppo |" in text and "| hand_ppo+vision |" in text and "Pose estimator error" in text
    report = json.loads((out / "report.json").read_text())
    vision = next(a for a in report["agents"] if a["vision"])
    assert vision["pose_error"]["rig"]["steps"] == 3 and vision["pose_error"]["rig"]["position_mm_median"] > 0
    assert (out / "logs" / "hand_ppo+vision" / "data" / "metadata.json").is_file()
    assert cli.main(["rig", "record", "sim:hand_laggy", "--policy", str(tiny_hand_ppo), "--pose-estimator",
                     str(estimator_run), "--episodes", "1", "--max-steps", "2", "--out", str(tmp_path / "rec"),
                     "--quiet"]) == 0
    assert "pose estimate against the measured pose over 2 steps" in capsys.readouterr().out
    # an estimator with no agent that reads the cube pose: one line
    assert cli.main(["evaluate", "--agent", str(tiny_hand_ppo), "--rig", "sim:hand_laggy", "--pose-estimator",
                     str(tmp_path / "nope"), "--out", str(tmp_path / "e2"), "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
