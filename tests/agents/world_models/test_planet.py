"""PlaNet: the CEM planner on known objectives, the planning objective on the model, and
`simreal train planet` end to end (train, resume, export, load, act) on CPU in seconds."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal.agents import load_policy
from simreal.agents.actions import ActionSpec
from simreal.agents.world_models import CONFIG_PATH
from simreal.agents.world_models.config import DreamerConfig, PlannerConfig, section
from simreal.agents.world_models.nets import ObsLayout
from simreal.agents.world_models.planet import PlaNet, cem
from simreal.cli import main
from simreal.training.config import ConfigError, resolve_config
from simreal.training.logger import read_metrics
from simreal.training.run import RunDir, load_weights_only

VECTOR_SPACE = gym.spaces.Dict({"position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                                "velocity": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)})
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def quadratic(target: torch.Tensor, seen: list | None = None):
    """Objective -||a - target||^2 over (horizon, dim); records the largest |action| it was given."""

    def objective(actions):
        if seen is not None:
            seen.append(float(actions.abs().max()))
        return -((actions - target) ** 2).sum((-2, -1))

    return objective


def plan(target, iterations, candidates=400, top_k=40, seed=0, seen=None, batch=1):
    cfg = PlannerConfig(horizon=target.shape[0], candidates=candidates, top_k=top_k, iterations=iterations)
    generator = torch.Generator().manual_seed(seed)
    return cem(quadratic(target, seen), batch, target.shape[0], target.shape[1], cfg, generator)


def test_cem_improves_the_plan_on_a_quadratic_and_converges_to_the_optimum():
    target = torch.tensor([[0.5, -0.3], [0.1, 0.8], [-0.6, 0.0], [0.9, -0.9]])
    errors = [float((plan(target, n)[0] - target).abs().max()) for n in (1, 3, 8)]
    start = float(target.abs().max())          # the belief's initial mean is 0
    assert errors[0] < start and errors[1] < errors[0] and errors[2] < errors[1]
    assert errors[2] < 0.05
    objective = quadratic(target)
    assert objective(plan(target, 8)[:, None])[0, 0] > objective(torch.zeros(1, 1, 4, 2))[0, 0]


def test_cem_respects_action_bounds_and_lands_on_the_bound_when_the_optimum_is_outside():
    target = torch.tensor([[1.7, -0.4], [-2.5, 0.2], [3.0, -1.2]])   # several entries outside [-1, 1]
    seen = []
    result = plan(target, 8, seen=seen, batch=3)
    assert max(seen) <= 1.0                                      # every candidate scored was clipped
    assert result.shape == (3, 3, 2) and float(result.abs().max()) <= 1.0
    expected = target.clamp(-1.0, 1.0)
    assert torch.allclose(result, expected.expand_as(result), atol=0.05)


def test_cem_is_reproducible_from_its_generator():
    target = torch.tensor([[0.2, 0.4]] * 3)
    assert torch.equal(plan(target, 3, seed=5), plan(target, 3, seed=5))
    assert not torch.equal(plan(target, 3, seed=5), plan(target, 3, seed=6))


def tiny_planet(overrides=()):
    cfg = resolve_config(CONFIG_PATH, ["planet", "tiny"], list(overrides))
    dc = DreamerConfig.from_resolved(cfg)
    torch.manual_seed(0)
    layout = ObsLayout.from_space(VECTOR_SPACE, None)
    spec = ActionSpec.from_space(BOX, "one_hot")
    return PlaNet(layout, spec, dc.model, section(PlannerConfig, cfg, "planner"), seed=0)


def test_planning_objective_is_the_sum_of_predicted_rewards_along_the_imagined_states():
    agent = tiny_planet()
    policy = agent.policy
    start = {k: v.detach() for k, v in agent.wm.rssm.initial(2).items()}
    start["deter"] = torch.randn(2, start["deter"].shape[-1])
    actions = torch.rand(2, 5, 4, 2) * 2 - 1                # (envs, candidates, horizon, dim)
    with torch.no_grad():
        got = policy.rollout_return(start, actions, sample=False)
        for env in range(2):
            for j in range(5):
                state, expected = {k: v[env:env + 1] for k, v in start.items()}, 0.0
                for t in range(4):
                    state = agent.wm.rssm.img_step(state, actions[env, j, t][None], sample=False)
                    expected = expected + agent.wm.reward(agent.wm.rssm.feat(state)).mean
                assert torch.allclose(got[env, j], expected[0], atol=1e-5)


def test_planner_settings_are_checked_in_one_line():
    for overrides, match in ((["planner.top_k=2000"], "planner.top_k: expected in"),
                             (["planner.horizon=0"], "planner.horizon: expected >= 1")):
        with pytest.raises(ConfigError, match=match):
            section(PlannerConfig, resolve_config(CONFIG_PATH, ["planet"], overrides), "planner")


def test_planet_refuses_discrete_actions():
    cfg = resolve_config(CONFIG_PATH, ["planet", "tiny"])
    dc = DreamerConfig.from_resolved(cfg)
    with pytest.raises(ValueError, match="continuous actions"):
        PlaNet(ObsLayout.from_space(VECTOR_SPACE, None), ActionSpec.from_space(gym.spaces.Discrete(3), "one_hot"),
               dc.model, section(PlannerConfig, cfg, "planner"))


# ------------------------------------------------------------------ end to end
def train(run_dir, *extra, steps=240):
    return main(["train", "planet", "--preset", "tiny", "--quiet", "--steps", str(steps), "--run-dir", str(run_dir),
                 *extra])


def test_planet_trains_resumes_exports_and_the_export_plans(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--randomization", "dmc_cartpole", "--set", "run.checkpoint_every=160", steps=160) == 0
    first = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert main(["train", "planet", "--run-dir", str(run), "--resume", "--steps", "320", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "simreal train planet: dm_control/cartpole-swingup-v0 (randomization dmc_cartpole)" in out
    summary = json.loads((run / "summary.json").read_text())
    # action repeat 8: 40 policy steps; prefill 64 frames = 8 policy steps, then 16 / (4 x 8) updates per step
    assert summary["frames"] == 320 and summary["policy_steps"] == 40
    assert summary["updates"] == (40 - 8) * 16 // 32
    params = summary["params"]
    cfg = RunDir(run, resume=True).load_config()
    assert cfg["agent"] == "planet" and cfg["env"]["action_repeat"] == 8
    last = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert first["step"] == 160 and last["step"] == 320
    assert last["counters"]["updates"] > first["counters"]["updates"]
    assert not torch.equal(first["agent"]["planner_rng"], last["agent"]["planner_rng"])
    assert params == sum(v.numel() for k, v in last["agent"]["modules"].items() if k.startswith("wm."))
    metrics = read_metrics(run / "metrics.jsonl")
    assert np.all(np.isfinite(metrics["train/wm_loss"][1])) and "train/actor_loss" not in metrics

    policy = load_policy(run / "policy.pt")
    again = load_policy(run / "policy.pt")
    obs = {"position": np.array([[0.0, 1.0, 0.0], [0.3, -1.0, 0.1]], np.float32),
           "velocity": np.zeros((2, 2), np.float32)}
    state, other = policy.initial_state(2), again.initial_state(2)
    for _ in range(3):
        action, state = policy.act(obs, state)
        same, other = again.act(obs, other)
        assert action.shape == (2, 1) and np.all(np.abs(action) <= 1.0)
        assert np.array_equal(action, same)                 # the exported planner is reproducible
    explored, _ = policy.act(obs, policy.initial_state(2), deterministic=False)
    assert np.all(np.abs(explored) <= 1.0)


def test_same_seed_gives_the_same_planet_run(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert train(tmp_path / name, "--seed", str(seed), steps=160) == 0
    rows = {n: [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
                for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in "abc"}
    assert rows["a"] == rows["b"] and rows["a"] != rows["c"]


def test_verbs_check_the_agent_of_their_presets(tmp_path, capsys):
    assert main(["train", "dreamer", "--preset", "planet", "--quiet", "--steps", "10",
                 "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "simreal train planet" in err
    with pytest.raises(SystemExit):
        main(["train", "planet", "--help"])
    text = capsys.readouterr().out
    assert "cross-entropy-method planner" in text and "examples:" in text and "simreal train planet --preset" in text
