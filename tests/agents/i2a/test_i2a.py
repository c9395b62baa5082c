"""I2A: the distillation loss on known numbers, the imagination on a known model (rollouts per candidate,
the backward encoder), the config's checks, and a tiny run that trains from the CLI, resumes, exports and
acts; the learning test on CartPole-v1."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal.agents.actions import ActionSpec
from simreal.agents.i2a.imagination import I2AActor, candidate_actions, distillation_loss, model_actions
from simreal.agents.ppo.policy import CategoricalHead, GaussianHead, PolicyConfig
from simreal.training.agents import get_agent
from simreal.training.config import ConfigError

TINY = PolicyConfig(dense=8, lstm=8, critic_hidden=[8])


def test_categorical_distillation_is_the_cross_entropy_of_the_rollout_policy():
    head = CategoricalHead(4, [2])
    pi = torch.log(torch.tensor([[[0.25, 0.75]]]))
    pi_hat = torch.log(torch.tensor([[[0.5, 0.5]]]))
    expected = -(0.25 * math.log(0.5) + 0.75 * math.log(0.5))
    loss = distillation_loss(head, pi, head, pi_hat)
    assert abs(float(loss) - expected) < 1e-6


def test_gaussian_distillation_is_kl_plus_the_actor_entropy_and_moves_only_the_rollout_policy():
    actor_head, rollout_head = GaussianHead(4, 1, math.log(1.0)), GaussianHead(4, 1, math.log(2.0))
    mu = torch.tensor([[0.0]], requires_grad=True)
    mu_hat = torch.tensor([[1.0]], requires_grad=True)
    loss = distillation_loss(actor_head, mu, rollout_head, mu_hat)
    # log 2 + (1 + 1) / (2 * 4) + log(2 pi) / 2
    assert abs(float(loss.detach()) - (math.log(2.0) + 0.25 + 0.5 * math.log(2 * math.pi))) < 1e-6
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(1.0, 2.0)
    assert abs(float(loss.detach()) - float(torch.distributions.kl_divergence(p, q) + p.entropy())) < 1e-6
    loss.backward()
    assert mu.grad is None and float(mu_hat.grad) != 0.0 and rollout_head.log_std.grad is not None


def test_candidates_are_every_discrete_action_else_a_fixed_seeded_set():
    assert candidate_actions(ActionSpec.from_space(gym.spaces.Discrete(3)), 5, 0).flatten().tolist() == [0, 1, 2]
    box = ActionSpec.from_space(gym.spaces.Box(-2, 2, (2,)))
    first = candidate_actions(box, 4, 7)
    assert first.shape == (4, 2) and torch.all(first[0] == 0) and torch.all(first.abs() <= 1)
    torch.testing.assert_close(first, candidate_actions(box, 4, 7))
    multi = candidate_actions(ActionSpec.from_space(gym.spaces.MultiDiscrete([3, 3])), 4, 0)
    assert multi.shape == (4, 2) and multi.max() < 3
    one_hot = model_actions(CategoricalHead(4, [3, 3]), multi)
    assert one_hot.shape == (4, 6) and torch.all(one_hot.sum(-1) == 2)


def known_actor(depth=3):
    """Obs (1,), Discrete(2): the model moves the state by the one-hot action's (a1 - a0) and rewards the state."""
    actor = I2AActor(1, ActionSpec.from_space(gym.spaces.Discrete(2)), TINY, depth=depth, candidates=2, encoder=4,
                     model_hidden=4, model_layers=1, rollout_hidden=4, normalize=False)

    def predict(state, action, generator=None, sample=True):
        nxt = state + (action[..., 1:2] - action[..., 0:1])
        return nxt, nxt[..., 0]

    actor.model.predict = predict
    return actor


def test_imagination_rolls_out_each_candidate_then_follows_the_rollout_policy():
    actor = known_actor()
    with torch.no_grad():  # the rollout policy always picks action 1 (bias), so every later step adds 1
        actor.rollout_policy.head.logits.weight.zero_()
        actor.rollout_policy.head.logits.bias.copy_(torch.tensor([0.0, 5.0]))
    steps = actor.imagine(torch.tensor([[0.5]]))
    assert steps.shape == (3, 2, 2)  # depth, observations x candidates, imagined obs + reward
    # candidate 0 moves to -0.5, candidate 1 to 1.5; then +1 per step (obs and reward alike: unit statistics)
    np.testing.assert_allclose(steps[:, 0, 0].numpy(), [-0.5, 0.5, 1.5])
    np.testing.assert_allclose(steps[:, 1, 0].numpy(), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(steps[:, :, 1].numpy(), steps[:, :, 0].numpy())


def test_the_code_reads_each_rollout_backwards_and_concatenates_candidates_in_order():
    actor = known_actor()
    x = torch.tensor([[0.5], [-1.0]])
    code = actor.code(x)
    assert code.shape == (2, 2 * 4)
    steps = actor.imagine(x)
    _, (h, _) = actor.encoder(steps.flip(0))
    torch.testing.assert_close(code, h[0].reshape(2, 8))
    _, (forward_h, _) = actor.encoder(steps)
    assert not torch.allclose(code, forward_h[0].reshape(2, 8))
    # gradients reach the encoder, not the environment model
    code.sum().backward()
    assert actor.encoder.weight_ih_l0.grad is not None
    params, _ = actor(x[None], actor.initial_state(2))
    assert params.shape == (1, 2, 1, 2)


def test_config_errors_name_the_key():
    agent = get_agent("i2a")
    with pytest.raises(ConfigError, match="^i2a.depth: expected an integer >= 1"):
        agent.resolve_config(["tiny"], ["i2a.depth=0"])
    with pytest.raises(ConfigError, match="^i2a.model_lr"):
        agent.resolve_config(["tiny"], ["i2a.model_lr=.nan"])
    with pytest.raises(ConfigError, match="unknown key 'i2a.horizon'"):
        agent.resolve_config(["tiny"], ["i2a.horizon=3"])
    cfg = agent.resolve_config(["tiny"])
    assert cfg["ppo"]["clip"] == 0.2 and cfg["i2a"]["depth"] == 2  # PPO's defaults under I2A's


def test_i2a_trains_from_the_cli_resumes_exports_and_acts(tmp_path):
    from simreal.agents import load_policy
    from simreal.cli import main
    from simreal.training.logger import read_metrics

    run = tmp_path / "i2a"
    common = ["--preset", "tiny", "--env", "Pendulum-v1", "--run-dir", str(run), "--quiet"]
    assert main(["train", "i2a", *common, "--set", "env.action_repeat=1", "--steps", "384"]) == 0
    assert len(list((run / "checkpoints").glob("step_*.pt"))) >= 1
    assert main(["train", "i2a", "--run-dir", str(run), "--resume", "--quiet", "--steps", "640"]) == 0
    metrics = read_metrics(run / "metrics.jsonl")
    assert metrics["train/updates"][1][-1] == 8  # (640 - 128 pretraining steps) / 64 per update
    assert np.all(np.isfinite(metrics["train/distill_loss"][1])) and "i2a/mse" in metrics
    policy = load_policy(run / "policy.pt")
    assert policy.actor.n_candidates == 3
    obs = {"observation": np.zeros((2, 3), np.float32)}
    action, _ = policy.act(obs, policy.initial_state(2))
    assert action.shape == (2, 1) and np.all(np.abs(action) <= 2.0)


def test_i2a_learns_cartpole_above_random(tmp_path):
    from simreal.training.logger import read_metrics
    from simreal.training.run import RunDir

    agent = get_agent("i2a")
    cfg = agent.resolve_config(["cartpole_discrete"], ["run.steps=10000", "run.tensorboard=false", "eval.every=0"])
    agent.train(cfg, RunDir(tmp_path / "run"), progress=False)
    returns = read_metrics(tmp_path / "run" / "metrics.jsonl")["train/episode_return"][1]
    assert returns[-3:].mean() > 60  # a random policy: about 22
