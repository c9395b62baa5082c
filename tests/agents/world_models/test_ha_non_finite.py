"""World Models stops on a NaN loss in a stage that trains on data: one line, the newest checkpoint is the
last finite one, no policy.pt with NaN weights."""

import re

import numpy as np
import torch

from simreal.cli import main
from simreal.training.run import RunDir, load_weights_only

TINY = ["train", "worldmodels", "--preset", "tiny", "--quiet", "--set", "run.workers=0"]  # rollouts in process


def test_a_nan_mdn_rnn_loss_stops_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path, capsys,
                                                                                     monkeypatch):
    import simreal.agents.world_models.ha.trainer as trainer

    original, calls = trainer.mdn_rnn_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, metrics = original(*args, **kwargs)
        return (loss * float("nan") if calls["n"] == 4 else loss), metrics   # update 4; checkpoint at 2

    monkeypatch.setattr(trainer, "mdn_rnn_loss", poisoned)
    run = tmp_path / "run"
    assert main([*TINY, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.fullmatch(r"simreal train: error: World Models MDN-RNN update 4: loss is nan; the last finite "
                        r"checkpoint is .*step_\d+\.pt", err[0]), err[0]
    last = RunDir(run, resume=True).latest_checkpoint()
    assert err[0].endswith(str(last))
    state = load_weights_only(last)
    assert state["done"] == ["collect", "vae"] and state["counters"]["mdn_updates"] == 2
    for part in ("vae", "mdn_rnn"):
        assert all(torch.isfinite(v).all() for v in state[part].values() if v.is_floating_point()), part
    assert not (run / "policy.pt").exists()   # only the controller stage exports


def test_a_nan_in_a_collected_episode_is_refused_before_it_is_stored(tmp_path, capsys, monkeypatch):
    import simreal.agents.world_models.ha.workers as workers

    original = workers.random_episode

    def poisoned(*args):
        episode = original(*args)
        episode["reward"][3] = np.nan
        return episode

    monkeypatch.setattr(workers, "random_episode", poisoned)
    run = tmp_path / "run"
    assert main([*TINY, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["simreal train: error: World Models collect, episode 0: reward is nan at step 3; "
                   "no checkpoint was written yet"]
    assert not list(run.glob("rollouts/*"))
