"""The pose trainer stops on NaN and inf (labels, loss, gradient norm, weights); its export refuses NaN both ways."""

import numpy as np
import pytest
import torch

import simreal.perception.train as train_module
from simreal.perception.dataset import load_dataset
from simreal.perception.estimator import PoseEstimator, save_estimator
from simreal.perception.train import CONFIG_PATH, PoseTrainer
from simreal.training.config import resolve_config
from simreal.utils.finite import NonFiniteError
from simreal.training.run import RunDir, load_weights_only

def config(dataset, steps=40):
    return resolve_config(CONFIG_PATH, ["tiny"], [f"run.steps={steps}", f"data.path={dataset}", "data.holdout=4",
                                                   "run.tensorboard=false", "run.torch_threads=1", "run.log_every=5",
                                                   "run.checkpoint_every=10", "run.eval_every=10",
                                                   "optim.batch_size=8"])


def test_a_nan_loss_stops_before_the_step_and_the_last_checkpoint_and_export_are_finite(dataset, tmp_path,
                                                                                        monkeypatch):
    original, calls = train_module.pose_loss, {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        loss, parts = original(*args)
        return (loss * float("nan") if calls["n"] == 26 else loss), parts

    monkeypatch.setattr(train_module, "pose_loss", poisoned)
    run = RunDir(tmp_path / "run")
    trainer = PoseTrainer(config(dataset), run, progress=False)
    with pytest.raises(NonFiniteError) as err:
        trainer.train()
    trainer.close()
    assert str(err.value) == (f"pose training step 26: loss is nan; the last finite checkpoint is "
                              f"{run.checkpoint_dir / 'step_000000000020.pt'}")
    assert trainer.step == 25  # the NaN step never reached the optimizer
    state = load_weights_only(run.latest_checkpoint())
    assert state["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    estimator = PoseEstimator.load(tmp_path / "run")  # refuses non-finite weights: these are step 20's
    assert estimator.info["step"] == 20


def test_a_nan_label_is_refused_before_training(dataset, tmp_path):
    data = load_dataset(dataset)
    data.position[5, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"pose dataset .*: sample 5's position is nan; re-render it"):
        PoseTrainer(config(dataset), RunDir(tmp_path / "run"), progress=False, data=data)


def test_the_estimator_export_refuses_nan_weights_both_ways(dataset, tmp_path):
    trainer = PoseTrainer(config(dataset, steps=2), RunDir(tmp_path / "run"), progress=False)
    trainer.train()
    trainer.close()
    path = tmp_path / "run" / "pose_estimator.pt"
    before = path.read_bytes()
    with torch.no_grad():
        next(trainer.net.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"refusing to write non-finite weights"):
        save_estimator(path, trainer.net, trainer.render)
    assert path.read_bytes() == before
    data = torch.load(path, weights_only=True)
    name = next(iter(data["weights"]))
    data["weights"][name].view(-1)[0] = float("inf")
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(NonFiniteError) as err:
        PoseEstimator.load(tmp_path / "bad.pt")
    assert str(tmp_path / "bad.pt") in str(err.value) and f"{name!r} holds inf" in str(err.value)
