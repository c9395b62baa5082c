"""Same seed, same run; resume reproduces the uninterrupted run; checkpoints carry ADR and load weights-only."""

import json

import numpy as np
import pytest
import torch

from simreal.agents.ppo import resolve_ppo_config
from simreal.agents.ppo.ppo import PPOTrainer
from simreal.training.run import RunDir

CUE = "simreal.agents.ppo.testing:CueRecall-v0"
CUE_RUN = ["tiny"], [f"env.id={CUE}", "env.kwargs={delay: 2, random_length: 3}", "run.steps=384",
                     "run.checkpoint_every=2", "eval.every=3"]


def params(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_gives_the_same_run_and_another_seed_does_not():
    runs = []
    for seed in (0, 0, 1):
        trainer = PPOTrainer(resolve_ppo_config(*CUE_RUN[:1], CUE_RUN[1] + [f"run.seed={seed}"]))
        trainer.train(max_updates=3)
        runs.append((params(trainer), trainer.history))
    assert_same(runs[0][0], runs[1][0])
    assert _without_time(runs[0][1]) == _without_time(runs[1][1])
    assert not torch.equal(runs[0][0]["actor.core.dense.weight"], runs[2][0]["actor.core.dense.weight"])


def _without_time(history):
    return [{k: v for k, v in h.items() if not k.startswith("time/")} for h in history]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = resolve_ppo_config(*CUE_RUN)
    whole = PPOTrainer(cfg, RunDir(tmp_path / "whole"))
    whole.train()
    assert whole.update_index == 6

    crashed = PPOTrainer(cfg, RunDir(tmp_path / "crashed"))
    crashed.train(max_updates=3)  # "killed" after update 3: the last checkpoint is update 2's
    assert [p.name for p in crashed.run.checkpoints()] == ["step_000000000128.pt"]
    resumed = PPOTrainer(cfg, RunDir(tmp_path / "crashed", resume=True))
    assert resumed.update_index == 2 and resumed.env_steps == 128
    resumed.train()
    assert_same(params(whole), params(resumed))
    assert _without_time(resumed.history) == _without_time(whole.history[2:])  # updates 3..6, eval included
    # the logs hold each step once, in order, although update 3 ran twice
    steps = [json.loads(line)["step"] for line in (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [64 * k for k in range(1, 7)]
    for name in ("whole", "crashed"):
        assert (tmp_path / name / "policy.pt").exists() and (tmp_path / name / "tb").is_dir()


ADR_YAML = """
version: 1
adr: {metric: return, thresholds: [-1000.0, -100.0], buffer_size: 2, boundary_probability: 1.0}
randomizers:
  - name: cube_mass
    target: {field: body_mass, names: [object]}
    distribution: {type: uniform, low: 1.0, high: 1.0}
    operation: scale
    adr: {step: 0.05, limits: [0.5, 1.5]}
"""


def test_checkpoint_carries_adr_state_and_loads_weights_only(tmp_path):
    path = tmp_path / "adr.yaml"
    path.write_text(ADR_YAML)
    cfg = resolve_ppo_config(["tiny"], [f"env.randomization={path}", "env.kwargs={goal_timeout: 0.4}",
                                        "run.steps=128", "env.n_envs=2", "ppo.minibatches=1", "eval.every=0"])
    trainer = PPOTrainer(cfg, RunDir(tmp_path / "run"))
    trainer.train()
    adr = trainer.stacks[0].adr
    assert adr.params[0].high > 1.0 and adr.params[0].low < 1.0  # every episode scored above the high threshold
    ckpt = torch.load(trainer.run.latest_checkpoint(), weights_only=True)
    assert ckpt["randomization"][0]["adr"]["params"]["cube_mass"]["high"] == pytest.approx(adr.params[0].high)
    resumed = PPOTrainer(cfg, RunDir(tmp_path / "run", resume=True))
    assert resumed.stacks[0].state_dict() == trainer.stacks[0].state_dict()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["rand/adr/cube_mass/high"] == pytest.approx(adr.params[0].high)
    assert "rand/cube_mass" in metrics[-1] and "train/episode_return" in metrics[-1]
    assert np.isfinite(metrics[-1]["train/policy_loss"])
    trainer.close(), resumed.close()


def test_init_from_starts_from_an_exports_actor_and_records_it_through_a_resume(tmp_path):
    from simreal.training.export import load_export

    first = PPOTrainer(resolve_ppo_config(*CUE_RUN), RunDir(tmp_path / "first"))
    first.train(max_updates=2)
    source = load_export(tmp_path / "first" / "policy.pt")
    cfg = resolve_ppo_config(CUE_RUN[0], CUE_RUN[1] + [f"run.init_from={tmp_path / 'first'}", "run.seed=5"])
    fine = PPOTrainer(cfg, RunDir(tmp_path / "fine"))
    assert fine.env_steps == 0  # run.steps counts the steps trained here
    assert_same({k: v for k, v in fine.model.actor.state_dict().items()}, source["weights"])
    fine.train(max_updates=2)
    resumed = PPOTrainer(cfg, RunDir(tmp_path / "fine", resume=True))  # the checkpoint, not the export, wins
    assert_same(resumed.model.state_dict(), fine.model.state_dict())
    resumed.train(max_updates=3)
    init = load_export(tmp_path / "fine" / "policy.pt")["extra"]["init_from"]
    assert init["path"] == str(tmp_path / "first" / "policy.pt") and init["env_steps"] == 128
    assert init["total_env_steps"] == 128 and len(init["sha256"]) == 64


@pytest.mark.parametrize("override, expected", [
    ("policy.lstm=8", "its policy is"), ("env.actor_keys=[observation, state]", "its actor_keys"),
])
def test_init_from_refuses_an_export_that_does_not_fit(tmp_path, override, expected):
    from simreal.training.run import RunDirError

    PPOTrainer(resolve_ppo_config(*CUE_RUN), RunDir(tmp_path / "a")).train(max_updates=2)
    with pytest.raises(RunDirError, match=expected):
        PPOTrainer(resolve_ppo_config(CUE_RUN[0], CUE_RUN[1] + [f"run.init_from={tmp_path / 'a'}", override]))
    with pytest.raises(RunDirError, match="no such export"):
        PPOTrainer(resolve_ppo_config(CUE_RUN[0], CUE_RUN[1] + [f"run.init_from={tmp_path / 'nothing'}"]))


def test_critic_warmup_trains_only_the_critic_then_both():
    trainer = PPOTrainer(resolve_ppo_config(CUE_RUN[0], CUE_RUN[1] + ["ppo.critic_warmup=2", "eval.every=0"]))
    start = params(trainer)
    actor_keys = [k for k in start if k.startswith("actor.")]
    critic_keys = [k for k in start if k.startswith("critic.")]
    assert actor_keys and critic_keys
    trainer.train(max_updates=2)
    warm = params(trainer)
    assert all(torch.equal(warm[k], start[k]) for k in actor_keys)  # weights, log_std and observation statistics
    assert not all(torch.equal(warm[k], start[k]) for k in critic_keys)
    assert [h["train/critic_warmup"] for h in trainer.history] == [1.0, 1.0]
    trainer.train(max_updates=1)
    assert not all(torch.equal(params(trainer)[k], start[k]) for k in actor_keys)
    assert trainer.history[-1]["train/critic_warmup"] == 0.0
