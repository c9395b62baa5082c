"""TDM: the target and losses on hand-computed numbers, relabelling within episodes, the goal specs against the
simulators' own positions, config errors, and a tiny run that trains from the CLI, resumes, exports and reaches
Reacher-v5's targets far closer than random actions."""

import numpy as np
import pytest
import torch

from simreal.agents.tdm.goals import bind_goals, columns_to_quat, goal_spec, quat_to_columns
from simreal.agents.tdm.tdm import (SegmentReplay, TDMNetworks, actor_loss, bootstrap_target, critic_loss,
                                    distance_reward, parse_config, relabel, tdm_target)
from simreal.training.agents import get_agent
from simreal.training.config import ConfigError

torch.set_num_threads(1)


def test_the_tdm_target_takes_the_distance_at_tau_0_and_bootstraps_per_dimension_otherwise():
    reward = distance_reward(torch.tensor([[0.3, -0.1], [0.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.1, 0.2]] * 3))
    torch.testing.assert_close(reward[0], torch.tensor([-0.2, -0.3]))  # -|f(s') - g| per dimension
    q_next = torch.tensor([[-1.0, -2.0], [-3.0, -4.0], [-5.0, -6.0]])
    y = tdm_target(reward, q_next, tau=torch.tensor([0, 3, 2]), terminal=torch.tensor([False, False, True]))
    # tau == 0: the distance; tau > 0: the bootstrap; a terminal s' (absorbing) keeps its distance at any tau
    torch.testing.assert_close(y, torch.tensor([[-0.2, -0.3], [-3.0, -4.0], [-0.9, -0.8]]))


class Target:
    """A stand-in target pair: pi'(s', g, t) = 0.5 and Q'_j(s', a, g, t) = -(t + 1) - j - a: records the t it saw."""

    def act(self, x, g, tau):
        self.act_tau = tau
        return torch.full((len(x), 1), 0.5), None

    def q(self, x, a, g, tau):
        self.q_tau = tau
        return -(tau[:, None].float() + 1.0) - torch.tensor([0.0, 1.0]) - a


def test_the_bootstrap_evaluates_the_target_networks_at_tau_minus_1():
    target = Target()
    batch = {"x2": torch.zeros(3, 4), "g": torch.zeros(3, 2), "tau": torch.tensor([0, 1, 4]),
             "terminal": torch.zeros(3, dtype=torch.bool), "reward": torch.tensor([[-0.1, -0.2]] * 3)}
    y = bootstrap_target(target, batch)
    assert target.act_tau.tolist() == target.q_tau.tolist() == [0, 0, 3]
    # tau 1 -> Q'(., tau 0) = -1 - j - 0.5; tau 4 -> Q'(., tau 3) = -4 - j - 0.5
    torch.testing.assert_close(y, torch.tensor([[-0.1, -0.2], [-1.5, -2.5], [-4.5, -5.5]]))


def test_the_losses_and_the_vector_q_on_known_numbers():
    q, y = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-0.5, -1.0]])
    torch.testing.assert_close(critic_loss(q, y, 0.5), torch.tensor(2.5))  # mean of (0.5/0.5)^2 and (1/0.5)^2
    q2, pre = torch.tensor([[-1.0, -2.0], [-3.0, -4.0]]), torch.ones(2, 2)
    # -(mean scalar Q = -L1 sum: (-3 - 7) / 2) / scale 2, + 0.1 x mean sum pre^2 (2)
    torch.testing.assert_close(actor_loss(q2, pre, 2.0, 0.1), torch.tensor(2.5 + 0.2))
    nets = TDMNetworks(obs_dim=3, action_dim=1, goal_dim=2, tau_max=5, hidden=8, layers=1)
    x, a, g, tau = torch.randn(4, 3), torch.rand(4, 1), torch.randn(4, 2), torch.tensor([0, 1, 2, 5])
    value = nets.q(x, a, g, tau)
    nx, ng, t = nets._inputs(x, g, tau)
    f = nets.critic(torch.cat([nx, a, ng, t], -1))  # statistics at their defaults: f is the raw output
    torch.testing.assert_close(value, -(g - f).abs())
    action, _ = nets.act(x, g, tau)
    assert value.shape == (4, 2) and torch.all(value <= 0) and torch.all(action.abs() <= 1)


def _reacher_like(ep: int, length: int) -> tuple[np.ndarray, ...]:
    """Observations whose fingertip (obs[8:10] + obs[4:6]) is (episode, t) and whose target is (-1, -1)."""
    x = np.zeros((length + 1, 10), np.float32)
    x[:, 4:6] = -1.0
    x[:, 8] = ep + 1.0
    x[:, 9] = np.arange(length + 1) + 1.0
    a = np.stack([np.full(length, ep), np.arange(length)], 1).astype(np.float32)  # (episode, t) of the transition
    return x[:-1], a, x[1:], np.zeros(length, bool)


def test_relabelling_draws_future_states_of_the_same_episode_and_horizons_in_range():
    import gymnasium as gym

    space = gym.spaces.Dict({"observation": gym.spaces.Box(-np.inf, np.inf, (10,), np.float32)})
    goals = bind_goals("Reacher-v5", space)
    replay = SegmentReplay(capacity=64, obs_dim=10, action_dim=2)
    for ep, length in enumerate([20, 20, 25, 27]):  # 92 transitions in a ring of 64: the oldest 28 overwritten
        replay.add_segment(*_reacher_like(ep, length))
    rng = np.random.default_rng(0)
    batch = relabel(replay, goals, batch=512, tau_max=7, future=1.0, random=0.0, rng=rng)
    ep, t = batch["a"][:, 0], batch["a"][:, 1]
    assert set(ep.tolist()) == {1.0, 2.0, 3.0} and t[ep == 1].min() == 8  # episode 0 gone, episode 1 from t = 8
    np.testing.assert_array_equal(batch["g"][:, 0], ep)  # the goal is a state of the same episode ...
    assert np.all(batch["g"][:, 1] >= t + 1)  # ... at or after the transition's next state
    assert batch["g"][:, 1].max() > t.min() + 5  # and not only the next one
    assert set(batch["tau"].tolist()) == set(range(8))
    tip = np.stack([ep, t + 1], 1)  # the fingertip of each transition's next state
    np.testing.assert_array_equal(batch["x"][:, 4:6], batch["g"])  # the goal is substituted into s and s' ...
    np.testing.assert_allclose(batch["x2"][:, 8:10] + batch["x2"][:, 4:6], tip, atol=1e-6)  # ... keeping the arm
    np.testing.assert_allclose(batch["reward"], -np.abs(tip - batch["g"]), atol=1e-6)
    own = relabel(replay, goals, batch=64, tau_max=7, future=0.0, random=0.0, rng=rng)
    np.testing.assert_array_equal(own["g"], -np.ones((64, 2)))  # no relabelling: the episode's own goal
    state = replay.state_dict()
    copy = SegmentReplay(64, 10, 2)
    copy.load_state_dict(state)
    assert copy.written == 92 and np.array_equal(copy.data["end"], replay.data["end"])


def test_the_reacher_goal_spec_reads_the_fingertip_and_the_target():
    from simreal.training.envs import make_training_env

    venv = make_training_env("Reacher-v5", 1, seed=3)
    try:
        goals, obs = bind_goals("Reacher-v5", venv.observation_space), venv.reset()
        for _ in range(5):
            obs, *_ = venv.step(np.array([[0.7, -0.4]], np.float32))
        data = venv.envs[0].unwrapped.data
        x = obs["observation"]
        np.testing.assert_allclose(goals.achieved(x)[0], data.body("fingertip").xpos[:2], atol=1e-5)
        np.testing.assert_allclose(goals.desired(x)[0], data.body("target").xpos[:2], atol=1e-5)
        moved = goals.substitute(x, np.array([[0.05, -0.1]], np.float32))
        np.testing.assert_allclose(goals.desired(moved), [[0.05, -0.1]])
        np.testing.assert_allclose(goals.achieved(moved), goals.achieved(x), atol=1e-6)  # the arm stays put
    finally:
        venv.close()


def test_the_hand_goal_spec_reads_the_cube_orientation_as_rotation_columns():
    import mujoco

    from simreal.training.envs import make_training_env
    from simreal.utils.rotations import quat_canonical, random_quat

    venv = make_training_env("simreal/HandCube-v0", 1, seed=0, env_kwargs={"goal": "vertical", "settle_time": 0.0},
                             nthread=1)
    try:
        goals, obs = bind_goals("simreal/HandCube-v0", venv.observation_space), venv.reset()
        x = np.concatenate([obs[k].reshape(1, -1) for k in goals.keys], 1)
        matrix = np.zeros(9)
        mujoco.mju_quat2Mat(matrix, venv.sim.object_quat(0).astype(np.float64))
        np.testing.assert_allclose(goals.achieved(x)[0], matrix.reshape(3, 3)[:, :2].T.ravel(), atol=1e-5)
        np.testing.assert_allclose(goals.desired(x), quat_to_columns(obs["goal_quat"]), atol=1e-6)
        np.testing.assert_allclose(goals.substitute(x, goals.desired(x)), x, atol=1e-5)  # its own goal: unchanged
        reached = goals.substitute(x, goals.achieved(x))  # goal = the cube's pose: relative rotation = identity
        np.testing.assert_allclose(reached[0, goals.layout["relative_quat"]], [1, 0, 0, 0], atol=1e-5)
    finally:
        venv.close()
    q = random_quat(np.random.default_rng(1), 200)
    np.testing.assert_allclose(columns_to_quat(quat_to_columns(q)), quat_canonical(q), atol=1e-9)


def test_config_errors_name_the_key():
    agent = get_agent("tdm")
    cfg = agent.resolve_config(["tiny"])
    with pytest.raises(ConfigError, match=r"^mpc.horizon: expected at most tdm.tau_max \(10\)"):
        parse_config({**cfg, "mpc": {**cfg["mpc"], "horizon": 11}})
    with pytest.raises(ConfigError, match="^replay.random: expected at most 1 - replay.future"):
        agent.resolve_config(["tiny"], ["replay.future=0.8", "replay.random=0.5"])
    for override, key in (("tdm.polyak=0", "tdm.polyak"), ("run.updates=0", "run.updates"),
                          ("replay.segment=10000", "replay.segment"), ("mpc.local_std=-1", "mpc.local_std")):
        with pytest.raises(ConfigError, match=f"^{key}: ") as error:
            agent.resolve_config(["tiny"], [override])
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="^env.pixels: "):
        parse_config({**cfg, "env": {**cfg["env"], "pixels": [64, 64]}})
    with pytest.raises(ConfigError, match="^env.id: 'Pendulum-v1' has no TDM goal spec"):
        agent.resolve_config([], ["env.id=Pendulum-v1"])
    with pytest.raises(ConfigError, match="^env.id: "):
        goal_spec("dm_control/cartpole-swingup-v0")


def test_tdm_trains_from_the_cli_resumes_exports_and_reaches_better_than_random(tmp_path):
    from simreal.agents import load_policy
    from simreal.agents.tdm.tdm import TDMPolicy, UniformPolicy, evaluate
    from simreal.cli import main

    run = tmp_path / "tdm"
    assert main(["train", "tdm", "--preset", "tiny", "--run-dir", str(run), "--quiet", "--steps", "1200"]) == 0
    assert [p.name for p in (run / "checkpoints").glob("step_*.pt")] != []
    assert main(["train", "tdm", "--run-dir", str(run), "--resume", "--quiet", "--steps", "2500"]) == 0
    assert (run / "checkpoints" / "step_000000002500.pt").is_file()
    policy = load_policy(run / "policy.pt")
    assert isinstance(policy, TDMPolicy)
    obs = {k: np.full((3, *sp.shape), 0.1, sp.dtype) for k, sp in policy.observation_space.spaces.items()}
    state = policy.initial_state(3)
    for following in [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10, 9]:  # tau counts down from 10 to 0, then restarts
        action, state = policy.act(obs, state)
        assert action.shape == (3, 2) and np.all(np.abs(action) <= 1.0)
        assert state["tau"].tolist() == [following] * 3
    env = {"id": "Reacher-v5", "randomization": "none"}
    reached = evaluate(policy, env, 10, seed=1)
    random = evaluate(UniformPolicy(policy.observation_space, policy.action_space), env, 10, seed=1)
    assert reached["final_distance"] < 0.5 * random["final_distance"], (reached, random)
