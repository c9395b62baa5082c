"""``simreal train dreamer|planet|dreaming|worldmodels``: a bad value is one line naming the key, before anything
is written (no run folder, no config.yaml left behind)."""

import pytest

from simreal.cli import main


@pytest.mark.parametrize("agent, override, message", [
    ("dreamer", "model.opt.lr=-1", "model.opt.lr: expected a positive learning rate (> 0), got -1.0"),
    ("dreamer", "behavior.actor.opt.lr=0", "behavior.actor.opt.lr: expected a positive learning rate (> 0), got 0.0"),
    ("dreamer", "behavior.gamma=0", "behavior.gamma: expected in (0, 1], got 0.0"),
    ("dreamer", "behavior.lam=0", "behavior.lam: expected in (0, 1], got 0.0"),
    ("dreamer", "batch.size=0", "batch: expected size >= 1 and length >= 2, got '0x"),
    ("dreamer", "run.steps=0", "run.steps must be >= 1, got 0"),
    ("dreamer", "env.n_envs=0", "env.n_envs: expected an integer >= 1, got 0"),
    ("planet", "planner.candidates=1", "planner.candidates: expected >= 2, got 1"),
    ("dreaming", "contrastive.decoder_opt.lr=-1",
     "contrastive.decoder_opt.lr: expected a positive learning rate (> 0), got -1.0"),
    ("worldmodels", "vae.lr=0", "vae.lr: expected a positive learning rate (> 0), got 0.0"),
    ("worldmodels", "mdn_rnn.batch_size=0", "mdn_rnn.batch_size: expected >= 1, got 0"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, agent, override, message):
    run = tmp_path / "r"
    assert main(["train", agent, "--preset", "tiny", "--set", override, "--run-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simreal train: error: ") and message in err[0], err
    assert not run.exists()
