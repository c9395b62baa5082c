"""Asymmetric inputs, action heads against torch.distributions, the normalizer, and the policy export."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal.agents import Policy, load_policy
from simreal.agents.actions import ActionSpec
from simreal.agents.ppo import resolve_ppo_config
from simreal.agents.ppo.policy import CategoricalHead, GaussianHead, RunningNormalizer
from simreal.agents.ppo.ppo import PPOTrainer

CUE = "simreal.agents.ppo.testing:CueRecall-v0"


def test_critic_reads_the_privileged_key_and_the_actor_never_does():
    trainer = PPOTrainer(resolve_ppo_config(["tiny"], [f"env.id={CUE}", "eval.every=0"]))
    assert trainer.actor_keys == ["observation"] and trainer.critic_keys == ["state"]
    model = trainer.model
    assert model.actor.obs_size == 2 and model.critic.obs_size == 2
    trainer.collect()
    raw_actor, raw_critic = trainer.buffer.raw_actor, trainer.buffer.raw_critic
    # the actor's stored inputs are the `observation` key (cue only at t=0), the critic's the `state` key
    assert set(np.unique(raw_critic[:, :, 0])) == {-1.0, 1.0}  # the cue, at every step
    assert (raw_actor[~trainer.buffer.starts][:, 0] == 0).all()  # blank after the first step
    # changing the privileged state changes the value and never the action distribution
    obs = {"observation": np.array([[1.0, 0.0], [1.0, 0.0]], np.float32),
           "state": np.array([[1.0, 0.5], [-1.0, 0.1]], np.float32)}
    with torch.no_grad():
        out = model.step(torch.from_numpy(obs["observation"]), torch.from_numpy(obs["state"]),
                         model.initial_state(2), torch.ones(2), deterministic=True)
    action, log_prob, value = out[:3]
    assert action[0] == action[1] and log_prob[0] == log_prob[1]
    assert abs(float(value[0] - value[1])) > 1e-4


def test_hand_env_split_keeps_state_for_the_critic():
    trainer = PPOTrainer(resolve_ppo_config(["tiny"], ["eval.every=0", "env.n_envs=2", "ppo.minibatches=1"]))
    assert "state" not in trainer.actor_keys and trainer.critic_keys == ["state"]
    assert trainer.model.actor.obs_size == 50 and trainer.model.critic.obs_size == 65
    trainer.close()


def test_gaussian_head_matches_torch_normal():
    torch.manual_seed(0)
    head = GaussianHead(4, 3, init_log_std=-0.3)
    mean = head(torch.randn(5, 4))
    action, log_prob = head.sample_with_log_prob(mean)
    reference = torch.distributions.Normal(mean, head.log_std.exp())
    np.testing.assert_allclose(log_prob.detach(), reference.log_prob(action).sum(-1).detach(), rtol=1e-5)
    np.testing.assert_allclose(head.log_prob(mean, action).detach(), log_prob.detach(), rtol=1e-5)
    np.testing.assert_allclose(head.entropy(mean).detach(), reference.entropy().sum(-1).detach(), rtol=1e-6)


def test_categorical_head_handles_ragged_multidiscrete_like_torch():
    torch.manual_seed(0)
    head = CategoricalHead(4, [3, 5, 2])
    with torch.no_grad():
        torch.nn.init.normal_(head.logits.weight)
        logp = head(torch.randn(6, 4))
        actions = head.sample(logp)
    assert (actions < torch.tensor([3, 5, 2])).all()
    per_dim = [torch.distributions.Categorical(logits=logp[:, d, :n]) for d, n in enumerate([3, 5, 2])]
    reference_lp = sum(dist.log_prob(actions[:, d]) for d, dist in enumerate(per_dim))
    reference_ent = sum(dist.entropy() for dist in per_dim)
    np.testing.assert_allclose(head.log_prob(logp, actions), reference_lp, rtol=1e-5)
    np.testing.assert_allclose(head.entropy(logp), reference_ent, rtol=1e-5)
    # empirical frequencies follow the probabilities
    many = head.sample(logp[:1].expand(20000, 3, 5))
    freq = np.bincount(many[:, 1].numpy(), minlength=5) / 20000
    np.testing.assert_allclose(freq, logp[0, 1].exp().numpy(), atol=0.015)


@pytest.mark.parametrize("space, raw, expected", [
    (gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32)),
     np.array([[1.5, -0.5]]), np.array([[2.0, 2.5]], np.float32)),
    (gym.spaces.MultiDiscrete([11, 11]), np.array([[3, 10]]), np.array([[3, 10]])),
    (gym.spaces.Discrete(3, start=1), np.array([[2]]), np.array([3])),
])
def test_action_spec_maps_head_actions_onto_the_env(space, raw, expected):
    out = ActionSpec.from_space(space).to_env(raw)
    np.testing.assert_array_equal(out, expected)
    assert space.contains(out[0])


def test_running_normalizer_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (1000, 4)) * np.array([1, 10, 0.1, 1])
    norm = RunningNormalizer(4, clip=5.0)
    for chunk in np.array_split(data, 7):
        norm.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-3)  # the 1e-4 prior count
    out = norm(torch.from_numpy(data).float()).numpy()
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.std(0), 1.0, atol=2e-3)
    copy = RunningNormalizer(4, clip=5.0)
    copy.load_state_dict(norm.state_dict())
    assert torch.equal(copy(torch.ones(1, 4)), norm(torch.ones(1, 4)))  # the float32 cache follows a load


def test_export_loads_without_the_trainer_and_acts_like_the_actor(tmp_path):
    continuous = "simreal.agents.ppo.testing:CueRecallContinuous-v0"
    trainer = PPOTrainer(resolve_ppo_config(["tiny"], [f"env.id={continuous}", "eval.every=0",
                                                       "env.kwargs={delay: 2}"]))
    trainer.train(max_updates=2)
    path = trainer.export(tmp_path / "policy.pt")
    data = torch.load(path, weights_only=True)
    assert data["agent"] == "ppo" and data["config"]["actor_keys"] == ["observation"]
    assert "normalizer.mean" in data["weights"] and not any(k.startswith("critic") for k in data["weights"])
    policy = load_policy(path)
    assert isinstance(policy, Policy)
    assert policy.observation_space == trainer.venv.observation_space
    venv = trainer.venv
    venv.seed(5)
    obs = venv.reset()
    state = policy.initial_state(4)
    ours = trainer.model.initial_state(4)
    keep = torch.zeros(4)
    seen = []
    for _ in range(6):
        action, state = policy.act(obs, state, deterministic=True)
        with torch.no_grad():
            ref = trainer.model.step(torch.from_numpy(obs["observation"]), torch.from_numpy(obs["state"]), ours,
                                     keep, deterministic=True)
        ours = ref[3]
        np.testing.assert_array_equal(action, trainer.action_spec.to_env(ref[0].numpy()))
        seen.append(action)
        assert venv.action_space.contains(action[0])
        obs, _, done, _ = venv.step(action)
        state = policy.reset_state(state, done)
        keep = torch.from_numpy((~done).astype(np.float32))
    assert len(np.unique(np.concatenate(seen))) > 2  # real, observation-dependent outputs
