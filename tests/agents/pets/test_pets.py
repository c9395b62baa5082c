"""PETS: the ensemble's loss and bounds on known numbers, the planner on a known model, and a tiny run
that trains from the CLI, resumes, exports and plans better than random on Pendulum."""

import math

import numpy as np
import pytest
import torch

from simreal.agents.pets.ensemble import BOUND_PENALTY, GaussianEnsemble, gaussian_nll, soft_bound
from simreal.agents.pets.pets import Planner, PlannerConfig, parse_config, shift
from simreal.training.agents import get_agent
from simreal.training.config import ConfigError


def test_gaussian_nll_is_eq_2_without_constants():
    mean = torch.tensor([[[1.0, 0.0]]])
    logvar = torch.tensor([[[math.log(4.0), 0.0]]])
    target = torch.tensor([[[3.0, 1.0]]])
    # (1-3)^2 / 4 + log 4 + (0-1)^2 / 1 + 0
    np.testing.assert_allclose(gaussian_nll(mean, logvar, target).numpy(), [1.0 + math.log(4.0) + 1.0], rtol=1e-6)


def test_soft_bound_keeps_logvar_inside_its_bounds_and_passes_the_middle():
    low, high = torch.tensor(-2.0), torch.tensor(1.0)
    raw = torch.tensor([-100.0, -0.5, 100.0])
    out = soft_bound(raw, low, high)
    # soft: the floor is exact far below; far above, the ceiling overshoots by softplus(3) - 3 = 0.0486
    assert abs(float(out[0]) + 2.0) < 1e-3 and abs(float(out[2]) - (1.0 + math.log1p(math.exp(-3.0)))) < 1e-3
    assert abs(float(out[1]) + 0.5) < 0.3


def test_the_loss_sums_members_and_adds_the_bound_penalty():
    torch.manual_seed(0)
    model = GaussianEnsemble(2, 3, 1, hidden=8, layers=1, min_logvar=-5.0, max_logvar=0.5)
    s, a, y = torch.randn(2, 4, 3), torch.randn(2, 4, 1), torch.randn(2, 4, 4)
    loss, stats = model.loss(s, a, y)
    mean, logvar = model(model._standardize_in(s, a))
    expected = gaussian_nll(mean, logvar, y).sum() + BOUND_PENALTY * 4 * (0.5 + 5.0)
    torch.testing.assert_close(loss, expected)
    assert set(stats) >= {"model/nll", "model/mse"}


class KnownModel(GaussianEnsemble):
    """s' = s + a, reward -(s')^2: the best first action from s = 0.7 is -0.7 (clipped to [-1, 1])."""

    def predict(self, state, action, generator=None, sample=True):
        nxt = state + action
        return nxt, -(nxt ** 2).sum(-1)


def test_the_planner_finds_the_known_best_action_and_warm_starts():
    model = KnownModel(2, 1, 1, hidden=4, layers=1)
    planner = Planner(model, PlannerConfig(horizon=3, candidates=200, top_k=20, iterations=5, init_std=0.5,
                                           alpha=0.1, particles=2), seed=0)
    plan = planner.plan(torch.tensor([[0.7], [-0.4]]))
    assert plan.shape == (2, 3, 1)
    np.testing.assert_allclose(plan[:, 0, 0].numpy(), [-0.7, 0.4], atol=0.1)
    nxt = shift(plan)
    torch.testing.assert_close(nxt[:, :2], plan[:, 1:])
    assert torch.all(nxt[:, 2] == 0)


def test_config_errors_name_the_key():
    cfg = get_agent("pets").resolve_config(["tiny"])
    with pytest.raises(ConfigError, match="^planner.particles: expected a multiple of model.members"):
        parse_config({**cfg, "planner": {**cfg["planner"], "particles": 3}})
    with pytest.raises(ConfigError, match="^planner.top_k"):
        get_agent("pets").resolve_config(["tiny"], ["planner.top_k=1000"])


def test_pets_trains_from_the_cli_resumes_and_plans_better_than_random(tmp_path):
    from simreal.agents import load_policy
    from simreal.agents.pets.pets import evaluate
    from simreal.cli import main

    run = tmp_path / "pets"
    common = ["--preset", "tiny", "--env", "Pendulum-v1", "--run-dir", str(run), "--quiet"]
    flags = ["--set", "env.action_repeat=1", "--set", "planner.horizon=10", "--set", "planner.candidates=64",
             "--set", "planner.top_k=8", "--set", "planner.iterations=3", "--set", "run.updates=60",
             "--set", "model.hidden=64"]
    assert main(["train", "pets", *common, *flags, "--steps", "600"]) == 0
    assert len(list((run / "checkpoints").glob("step_*.pt"))) >= 1
    assert main(["train", "pets", "--run-dir", str(run), "--resume", "--quiet", "--steps", "1200"]) == 0
    policy = load_policy(run / "policy.pt")
    env = {"id": "Pendulum-v1", "randomization": "none", "action_repeat": 1}
    planned = evaluate(policy, env, 2, seed=3)

    class Random:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def initial_state(self, n):
            return None

        def act(self, obs, state, deterministic=True):
            return self.rng.uniform(-2, 2, (2, 1)).astype(np.float32), None

    assert planned > evaluate(Random(), env, 2, seed=3) + 300
