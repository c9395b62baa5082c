"""`simreal demo` on the hand: shipped agents (trained.json records) evaluated by a generated study."""

import json

import pytest

from simreal import cli
from simreal.demo import describe_shipped, run_hand_demo
from simreal.evaluation.shipped import ShipError, read_record, ship_run, shipped_agents


@pytest.fixture(scope="module")
def agents_dir(tmp_path_factory, tiny_hand_ppo):
    """A tiny hand PPO and a tiny pose estimator, shipped as `assets/policies` holds them."""
    from simreal.perception.dataset import DatasetSettings, write_dataset
    from simreal.perception.train import CONFIG_PATH, PoseTrainer
    from simreal.training.config import resolve_config
    from simreal.training.run import RunDir

    root = tmp_path_factory.mktemp("shipped")
    data = root / "pose_data"
    write_dataset(data, DatasetSettings(randomization="dactyl", height=24, width=24, seed=0, shard_size=16,
                                        antialias=0), 16, n_envs=8, progress=False)
    pose_cfg = resolve_config(CONFIG_PATH, ["tiny"], ["run.steps=4", f"data.path={data}", "run.tensorboard=false",
                                                      "run.torch_threads=1", "data.holdout=4"])
    pose_run = RunDir(root / "runs_pose")
    pose_run.save_config(pose_cfg)
    trainer = PoseTrainer(pose_cfg, pose_run, progress=False)
    trainer.train()
    trainer.close()
    shipped = root / "agents"
    ship_run(tiny_hand_ppo, shipped / "ppo_tiny", description="tiny", extra={"vision": True})
    ship_run(root / "runs_pose", shipped / "pose_estimator")
    return shipped


def test_a_shipped_agent_records_how_it_was_trained(agents_dir):
    records = shipped_agents(agents_dir)
    assert list(records) == ["pose_estimator", "ppo_tiny"]
    ppo = records["ppo_tiny"]
    assert ppo["kind"] == "policy" and ppo["agent"] == "ppo" and ppo["steps"] == 64 and ppo["minutes"] >= 0
    assert ppo["config"]["run"]["steps"] == 64 and len(ppo["weights"]["sha256"]) == 64 and ppo["vision"] is True
    assert records["pose_estimator"]["kind"] == "pose_estimator" and records["pose_estimator"]["steps"] == 4
    assert sorted(p.name for p in (agents_dir / "ppo_tiny").iterdir()) == ["config.yaml", "policy.pt", "trained.json"]


def test_a_run_continued_from_a_shipped_agent_ships_with_its_history(agents_dir, tmp_path):
    from simreal.training.agents import get_agent
    from simreal.training.run import RunDir

    agent = get_agent("ppo")
    cfg = agent.resolve_config(["tiny"], ["run.steps=64", "eval.every=0", "run.tensorboard=false", "env.nthread=1",
                                          "env.kwargs={goal: vertical, settle_time: 0.0}",
                                          f"run.init_from={agents_dir / 'ppo_tiny'}"])
    run = RunDir(tmp_path / "run")
    run.save_config(cfg)
    agent.train(cfg, run, progress=False)
    record = ship_run(tmp_path / "run", tmp_path / "ppo_more", description="continued")
    earlier = read_record(agents_dir / "ppo_tiny")
    chain = record["continued_from"]
    assert chain["name"] == "ppo_tiny" and chain["sha256"] == earlier["weights"]["sha256"]
    assert chain["total_env_steps"] == 64 and record["steps"] == 64 and record["steps_total"] == 128
    assert record["minutes_total"] == round(record["minutes"] + earlier["minutes"], 1)
    line = describe_shipped("ppo_more", record)  # what `simreal demo` lists
    assert line.startswith("ppo_more: ppo, randomization none, 64 steps") and "continued from ppo_tiny: 128 steps" in line


def test_a_changed_weights_file_is_refused(agents_dir, tmp_path):
    import shutil

    copy = tmp_path / "ppo"
    shutil.copytree(agents_dir / "ppo_tiny", copy)
    with open(copy / "policy.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(ShipError, match="sha256 differs"):
        read_record(copy)
    empty = tmp_path / "run"
    empty.mkdir()
    (empty / "config.yaml").write_text("{}\n")
    with pytest.raises(ShipError, match="no policy.pt or pose_estimator.pt"):
        ship_run(empty, tmp_path / "dest")


def test_the_hand_demo_evaluates_the_shipped_agents_and_writes_the_report(agents_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    result = run_hand_demo(out, agents_dir=agents_dir, episodes=1, max_steps=4, samples=20, progress=False,
                           log=lambda line: None)
    report = json.loads((out / "study" / "report.json").read_text())
    assert [r["row"] for r in report["rows"]] == ["ppo_tiny", "ppo_tiny+vision"]
    assert set(report["rows"][0]["settings"]) == {"nominal", "sim:hand_laggy"}
    assert (out / "randomization" / "histograms.png").stat().st_size > 0
    assert json.loads((out / "demo.json").read_text()) == json.loads(json.dumps(result))
    assert result["agents"]["ppo_tiny"]["steps"] == 64 and result["verdict"]
    # the generated study file reruns with `simreal study`, reading the cached evaluations back
    assert cli.main(["study", str(out / "study.yaml"), "--out", str(out / "study"), "--no-train", "--quiet"]) == 0
    assert "| ppo_tiny+vision |" in capsys.readouterr().out


def test_hand_demo_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["demo", "--agents", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no shipped policies" in err[0]
    assert cli.main(["demo", "--steps", "100", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--env cartpole" in err[0]


def test_training_minutes_from_durations_or_sample_rates(tmp_path):
    from simreal.evaluation.shipped import training_minutes
    from simreal.training.logger import read_metrics

    def series(rows):
        path = tmp_path / "metrics.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return read_metrics(path)

    ppo = series([{"step": 10, "time/collect_s": 30.0, "time/update_s": 30.0, "time/fps": 5.0},
                  {"step": 20, "time/collect_s": 60.0}])
    assert training_minutes(ppo) == 2.0  # rates (fps) are not durations
    pose = series([{"step": 50, "time/samples_per_s": 100.0}, {"step": 60, "eval/x": 1.0},
                   {"step": 100, "time/samples_per_s": 50.0}])
    assert training_minutes(pose, batch_size=60) == round((50 * 60 / 100 + 50 * 60 / 50) / 60, 1)
    assert training_minutes(pose) is None and training_minutes({}) is None
