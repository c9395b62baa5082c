"""PPO's rollout workers on a local Ray: the same numbers as the one-process trainer for the same seeds and
copy layout (a randomized dm_control env, its sampled values included), and one-line refusals.

Episodes, rewards and randomizer values are equal exactly (the same actions in the same envs); the networks'
outputs agree to float rounding only, since a worker's forward pass runs on its slice of the copies and
matrix kernels round by batch shape (losses and weights to ~1e-7 relative; the policy loss, a difference of
near-equal terms, to ~1e-8 absolute)."""

import numpy as np
import pytest
import torch

from simreal.agents.ppo import resolve_ppo_config
from simreal.agents.ppo.ppo import PPOTrainer
from simreal.training.config import ConfigError
from simreal.training.run import RunDir

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (the trainers find it running and leave it up)."""
    from simreal.utils.ray_session import join_ray, leave_ray

    session, started = join_ray(num_cpus=2)
    yield
    leave_ray(session, started)

RUN = ["env.id=dm_control/cartpole-swingup-v0", "env.randomization=dmc_cartpole", "env.action_repeat=2",
       "run.steps=256", "run.checkpoint_every=2", "eval.every=0", "run.tensorboard=false"]


def trained(tmp_path, name, *extra):
    trainer = PPOTrainer(resolve_ppo_config(["tiny"], RUN + list(extra)), RunDir(tmp_path / name))
    try:
        trainer.train()
        return trainer.history, {k: v.clone() for k, v in trainer.model.state_dict().items()}
    finally:
        trainer.close()


def test_two_workers_give_the_one_process_numbers(tmp_path):
    local, local_weights = trained(tmp_path, "local")
    remote, remote_weights = trained(tmp_path, "ray", "run.workers=2")
    assert len(local) == len(remote) == 4
    for a, b in zip(local, remote):
        keys = {k for k in a if not k.startswith("time/")}
        assert keys == {k for k in b if not k.startswith("time/")}
        for k in keys:
            if k.startswith(("rand/", "train/episode")):
                assert a[k] == b[k], k
            else:
                assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k
    assert any(k.startswith("rand/") for k in remote[0])  # the workers' sampled randomizer values came back
    for k, v in local_weights.items():
        torch.testing.assert_close(remote_weights[k], v, rtol=1e-5, atol=1e-6)
    assert np.isfinite(local[-1]["train/value_loss"])


def test_bad_worker_counts_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="^run.workers: expected an integer >= 0"):
        PPOTrainer(resolve_ppo_config(["tiny"], RUN + ["run.workers=-1"]))
    with pytest.raises(ConfigError, match=r"^run.workers: expected 1 to env.n_envs=4 workers, got 5"):
        PPOTrainer(resolve_ppo_config(["tiny"], RUN + ["run.workers=5"]))


def test_the_cli_trains_with_workers_and_resumes_without_them(tmp_path):
    from simreal.cli import main

    run = tmp_path / "run"
    args = ["train", "ppo", "--preset", "tiny", "--env", "CartPole-v1", "--run-dir", str(run), "--quiet"]
    assert main([*args, "--steps", "128", "--workers", "2", "--set", "eval.every=0"]) == 0
    assert main(["train", "ppo", "--run-dir", str(run), "--resume", "--steps", "256", "--quiet", "--workers", "0"]) == 0
    assert len(list((run / "checkpoints").glob("step_*.pt"))) >= 2


def test_a_killed_worker_is_replaced_and_training_goes_on(tmp_path):
    trainer = PPOTrainer(resolve_ppo_config(["tiny"], RUN + ["run.workers=2", "run.steps=192"]), RunDir(tmp_path / "r"))
    try:
        trainer.collect()
        trainer.update(trainer.learning_rate(0))
        ray.kill(trainer.rollouts.actors[1])
        stats = trainer.collect()  # the lost worker's slice is rebuilt, every copy restarts its segment
        assert trainer.rollouts.replaced == 1 and np.all(trainer.buffer.starts[0])
        assert np.isfinite(trainer.update(trainer.learning_rate(1))["train/value_loss"]) and isinstance(stats, dict)
    finally:
        trainer.close()
