"""MBPO: SAC's three losses and the tanh-Gaussian log-density on known numbers, branched rollouts on a
known model, config errors, and a Pendulum run that trains from the CLI, resumes, exports and beats
a random policy."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from simreal.agents.mbpo.mbpo import branch, mixed_batch, parse_config, predict_members, start_states
from simreal.agents.mbpo.sac import (TanhGaussianActor, critic_loss, policy_loss, soft_q_target,
                                     tanh_gaussian_log_prob, temperature_loss)
from simreal.agents.pets.ensemble import GaussianEnsemble
from simreal.agents.pets.pets import Replay
from simreal.training.agents import get_agent
from simreal.training.config import ConfigError

torch.set_num_threads(1)


def test_the_soft_q_target_and_critic_loss_on_known_numbers():
    reward, log_prob2 = torch.tensor([1.0, -1.0]), torch.tensor([0.5, -1.0])
    next_q = torch.tensor([[2.0, 0.5], [3.0, 1.0]])  # (critics, N): the minimum is [2, 0.5]
    # 1 + 0.9 (2 - 0.2 * 0.5) = 2.71;  -1 + 0.9 (0.5 + 0.2 * 1) = -0.37
    torch.testing.assert_close(soft_q_target(reward, next_q, log_prob2, 0.2, 0.9), torch.tensor([2.71, -0.37]))
    q = torch.tensor([[1.0, 0.0], [2.0, -1.0]])
    # critic 1: 0.5 * mean(1, 1) = 0.5; critic 2: 0.5 * mean(0, 4) = 1
    torch.testing.assert_close(critic_loss(q, torch.tensor([2.0, 1.0])), torch.tensor(1.5))


def test_the_policy_and_temperature_losses_on_known_numbers():
    log_prob = torch.tensor([0.5, -1.0])
    q = torch.tensor([[1.0, 3.0], [2.0, 2.0]])  # the minimum is [1, 2]
    # mean(0.2 * 0.5 - 1, 0.2 * -1 - 2) = mean(-0.9, -2.2)
    torch.testing.assert_close(policy_loss(log_prob, q, 0.2), torch.tensor(-1.55))
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-1.0)
    # -mean(0.5 * (0.5 - 1), 0.5 * (-1 - 1)) = 0.625; d/dlog(alpha) is the same number
    torch.testing.assert_close(loss, torch.tensor(0.625))
    loss.backward()
    # the entropy (0.25) is above the target (-1): descending the gradient lowers alpha
    assert abs(float(log_alpha.grad) - 0.625) < 1e-6


def test_the_tanh_gaussian_log_prob_is_the_change_of_variables_density():
    u = torch.tensor([[-2.5, 0.3], [0.0, 1.7], [4.0, -0.8]], dtype=torch.float64)
    mean = torch.tensor([[0.1, -0.4], [0.5, 1.0], [3.0, 0.0]], dtype=torch.float64)
    log_std = torch.tensor([[0.2, -0.5], [-1.0, 0.3], [0.0, 0.4]], dtype=torch.float64)
    h = 1e-6  # numeric Jacobian of the squash: log p(a) = log N(u) - log |d tanh(u) / du|
    jacobian = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)
    normal = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    expected = (normal - jacobian.log()).sum(-1)
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), expected, rtol=1e-6, atol=1e-6)
    # the density of a = tanh(u) integrates to one over (-1, 1), and stays finite where tanh(u) rounds to 1
    a = torch.linspace(-1 + 1e-7, 1 - 1e-7, 400001, dtype=torch.float64)[:, None]
    density = tanh_gaussian_log_prob(torch.atanh(a), torch.tensor([[0.3]]), torch.tensor([[-0.2]])).exp()
    assert abs(float(torch.trapezoid(density, a[:, 0])) - 1.0) < 1e-3
    assert torch.isfinite(tanh_gaussian_log_prob(torch.tensor([[30.0]]), torch.zeros(1, 1), torch.zeros(1, 1))).all()


class MemberModel(GaussianEnsemble):
    """Member b moves the state by +b in every coordinate and pays reward b."""

    def predict(self, state, action, generator=None, sample=True):
        shift = torch.arange(self.members, dtype=state.dtype)[:, None, None]
        return state + shift, shift[..., 0].expand(state.shape[:2]).clone()


def test_a_branched_rollout_starts_from_replayed_states_and_keeps_one_member():
    torch.manual_seed(0)
    replay = Replay(50, 3, 1)
    states = torch.randn(20, 3)
    replay.add(states.numpy(), np.zeros((20, 1)), states.numpy(), np.zeros(20))
    model = MemberModel(4, 3, 1, hidden=4, layers=1)
    actor = TanhGaussianActor(3, 1, hidden=8, layers=1, act="relu")
    generator = torch.Generator().manual_seed(1)
    start = start_states(replay, 32, generator)
    out = branch(model, actor, start, 5, generator)
    assert out["s"].shape == out["s2"].shape == (5, 32, 3) and out["a"].shape == (5, 32, 1)
    assert out["r"].shape == (5, 32) and bool((out["a"].abs() <= 1).all())
    assert bool((torch.cdist(out["s"][0], states).min(1).values == 0).all())  # every rollout branches off a real state
    torch.testing.assert_close(out["s"][1:], out["s2"][:-1])  # and continues from its own predictions
    member = out["r"][0]
    torch.testing.assert_close(out["r"], member.expand(5, 32))  # one member for all k steps of a rollout
    torch.testing.assert_close(out["s2"] - out["s"], member[None, :, None].expand(5, 32, 3))
    assert len(set(member.tolist())) > 1  # and different rollouts draw different members
    per_step = branch(model, actor, start, 5, generator, member_draw="step")["r"]  # the authors' code: per transition
    assert bool((per_step != per_step[:1]).any(0).any())


def test_predict_members_routes_each_row_through_its_member_of_a_real_ensemble():
    torch.manual_seed(0)
    model = GaussianEnsemble(3, 2, 1, hidden=8, layers=1).eval()
    s, a = torch.randn(7, 2), torch.rand(7, 1)
    member = torch.tensor([2, 0, 0, 1, 2, 2, 0])
    with torch.no_grad():
        nxt, r = predict_members(model, s, a, member, torch.Generator().manual_seed(0))
        every_s, every_r = model.predict(s.expand(3, 7, 2), a.expand(3, 7, 1), sample=False)
    mean_s, mean_r = every_s[member, torch.arange(7)], every_r[member, torch.arange(7)]
    # sampled around the member's own mean: far closer to it than to the other members' means
    assert bool(((nxt - mean_s).norm(dim=1) < 2.0).all()) and r.shape == (7,) and torch.isfinite(mean_r).all()
    replay_real, replay_fake = Replay(10, 2, 1), Replay(10, 2, 1)
    replay_real.add(s[:5].numpy(), a[:5].numpy(), s[:5].numpy(), np.ones(5))
    replay_fake.add(s[:5].numpy(), a[:5].numpy(), s[:5].numpy(), np.zeros(5))
    batch = mixed_batch(replay_real, replay_fake, 20, 0.25, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert batch["s"].shape == (20, 2) and float(batch["r"].sum()) == 5.0  # 5 real (reward 1), 15 model ones


def test_config_errors_name_the_key():
    agent = get_agent("mbpo")
    cfg = agent.resolve_config(["tiny"])
    with pytest.raises(ConfigError, match="^rollout.length: expected an integer >= 1, got 0"):
        parse_config({**cfg, "rollout": {**cfg["rollout"], "length": 0}})
    with pytest.raises(ConfigError, match=r"^sac.real_ratio: expected in \[0, 1\], got 1.5"):
        agent.resolve_config(["tiny"], ["sac.real_ratio=1.5"])
    with pytest.raises(ConfigError, match="^rollout.member: expected rollout or step, got 'episode'"):
        agent.resolve_config(["tiny"], ["rollout.member=episode"])
    with pytest.raises(ConfigError, match="^sac.act: expected one of"):
        agent.resolve_config(["tiny"], ["sac.act=swish"])
    with pytest.raises(ConfigError, match="^sac: unknown key 'lr'"):
        parse_config({**cfg, "sac": {**cfg["sac"], "lr": 1e-3}})


def test_mbpo_trains_from_the_cli_resumes_exports_and_beats_random(tmp_path):
    from simreal.agents import Policy, load_policy
    from simreal.agents.mbpo.mbpo import MBPOPolicy
    from simreal.agents.pets.pets import evaluate
    from simreal.cli import main

    run = tmp_path / "mbpo"
    common = ["--preset", "tiny", "--env", "Pendulum-v1", "--run-dir", str(run), "--quiet"]
    flags = ["--set", "env.action_repeat=1", "--set", "run.prefill=200", "--set", "run.model_train_every=200",
             "--set", "run.model_updates=100", "--set", "run.updates_per_step=5", "--set", "run.checkpoint_every=600",
             "--set", "model.hidden=64", "--set", "rollout.batch=400", "--set", "rollout.length=1",
             "--set", "sac.hidden=64", "--set", "sac.batch=128", "--set", "sac.real_ratio=0.25",
             "--set", "sac.gamma=0.97"]
    flags += [x for k in ("actor", "critic", "alpha") for x in ("--set", f"sac.{k}_lr=1e-3")]
    assert main(["train", "mbpo", *common, *flags, "--steps", "600"]) == 0
    assert [p.name for p in (run / "checkpoints").glob("step_*.pt")] == ["step_000000000600.pt"]
    assert main(["train", "mbpo", "--run-dir", str(run), "--resume", "--quiet", "--steps", "2000"]) == 0
    assert (run / "checkpoints" / "step_000000002000.pt").is_file()
    policy = load_policy(run / "policy.pt")
    assert isinstance(policy, MBPOPolicy) and isinstance(policy, Policy)
    obs = {"observation": np.random.default_rng(0).uniform(-8, 8, (64, 3)).astype(np.float32)}
    for deterministic in (True, False):
        action, _ = policy.act(obs, policy.initial_state(64), deterministic=deterministic)
        assert action.shape == (64, 1) and bool(np.all(np.abs(action) <= 2.0))
    env = {"id": "Pendulum-v1", "randomization": "none", "action_repeat": 1}
    rng = np.random.default_rng(0)
    uniform = SimpleNamespace(initial_state=lambda n: None,  # a uniform-random policy over the torque bounds
                              act=lambda obs, state, deterministic=True: (rng.uniform(-2, 2, (2, 1)), None))
    assert evaluate(policy, env, 2, seed=3) > evaluate(uniform, env, 2, seed=3) + 300  # PETS' margin
