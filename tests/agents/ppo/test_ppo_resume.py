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
