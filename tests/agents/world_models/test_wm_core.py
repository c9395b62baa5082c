"""The RSSM core, imagination, replay, configs and export, on tiny networks without envs."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal.agents import load_policy
from simreal.agents.actions import ActionSpec
from simreal.agents.world_models import CONFIG_PATH
from simreal.agents.world_models.config import DreamerConfig
from simreal.agents.world_models.dreamer import Dreamer, export_policy
from simreal.agents.world_models.nets import ObsLayout
from simreal.agents.world_models.replay import ReplayError, SequenceReplay
from simreal.agents.world_models.rssm import flatten_batch
from simreal.agents.world_models.world_model import Batch
from simreal.training.config import ConfigError, load_config_file, resolve_config

VECTOR_SPACE = gym.spaces.Dict({"position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                                "velocity": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)})
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def tiny_agent(version="dreamer_v3", space=VECTOR_SPACE, action_space=BOX, overrides=()):
    cfg = DreamerConfig.from_resolved(resolve_config(CONFIG_PATH, [version, "tiny"], overrides))
    torch.manual_seed(0)
    layout = ObsLayout.from_space(space, None)
    return Dreamer(layout, ActionSpec.from_space(action_space, "one_hot"), cfg.model, cfg.behavior), cfg


def random_batch(agent, batch=3, length=6, seed=0, image=None):
    rng = np.random.default_rng(seed)
    arrays = {"position": rng.normal(size=(batch, length, 3)).astype(np.float32),
              "velocity": rng.normal(size=(batch, length, 2)).astype(np.float32),
              "action": rng.uniform(-1, 1, (batch, length, agent.spec.dim)).astype(np.float32),
              "reward": rng.uniform(0, 1, (batch, length)).astype(np.float32),
              "is_first": np.zeros((batch, length), bool), "is_terminal": np.zeros((batch, length), bool)}
    if image is not None:
        arrays["image"] = rng.integers(0, 255, (batch, length, *image), dtype=np.uint8)
    arrays["is_first"][:, 0] = True
    return Batch.from_numpy(arrays, agent.layout.keys, torch.device("cpu"))


@pytest.mark.parametrize("version", ["dreamer_v1", "dreamer_v2", "dreamer_v3"])
def test_imagined_trajectories_have_shape_batch_times_length_by_horizon_plus_one(version):
    agent, cfg = tiny_agent(version)
    batch = random_batch(agent, batch=3, length=6)
    _, post, _ = agent.wm.loss(batch)
    start = flatten_batch(agent.wm.rssm.detach(post))
    horizon = cfg.behavior.horizon
    traj = agent.behavior.imagine(agent.wm, start, horizon)
    feat_dim = agent.wm.rssm.feat_dim
    assert traj["feat"].shape == (3 * 6, horizon + 1, feat_dim)
    assert traj["action"].shape == (3 * 6, horizon + 1, 2)
    targets = agent.behavior.targets(agent.wm, traj, torch.ones(18))
    assert targets["return"].shape == (18, horizon) and targets["weight"].shape == (18, horizon + 1)
    assert torch.equal(traj["feat"][:, 0], agent.wm.rssm.feat(start))   # the trajectories start at the posteriors


def test_actor_gradient_reaches_the_actor_through_the_dynamics_but_not_the_frozen_model():
    from simreal.agents.world_models.behavior import freeze

    agent, _ = tiny_agent("dreamer_v1")   # pure dynamics backpropagation, no entropy term
    _, post, _ = agent.wm.loss(random_batch(agent))
    start = flatten_batch(agent.wm.rssm.detach(post))
    restore = freeze(agent.wm, agent.behavior.critic)
    traj = agent.behavior.imagine(agent.wm, start, 5)
    loss, _ = agent.behavior.actor_loss(traj, agent.behavior.targets(agent.wm, traj, torch.ones(len(start["deter"]))))
    loss.backward()
    restore()
    assert all(p.grad is None for p in agent.wm.parameters())
    assert all(p.grad is None for p in agent.behavior.critic.parameters())
    assert sum(p.grad.abs().sum() for p in agent.behavior.actor.parameters()) > 0


def test_is_first_resets_the_state_mid_sequence():
    agent, _ = tiny_agent()
    batch = random_batch(agent, batch=2, length=6)
    batch.is_first[:, 3] = True
    _, embed = agent.wm.embed(batch.obs)
    torch.manual_seed(1)
    post, _ = agent.wm.rssm.observe(embed, batch.action, batch.is_first)
    torch.manual_seed(1)
    agent.wm.rssm.observe(embed[:, :3], batch.action[:, :3], batch.is_first[:, :3])   # same random draws
    tail, _ = agent.wm.rssm.observe(embed[:, 3:], batch.action[:, 3:], batch.is_first[:, 3:])
    assert torch.allclose(post["deter"][:, 3:], tail["deter"], atol=1e-6)
    assert torch.allclose(post["logits"][:, 3:], tail["logits"], atol=1e-5)


@pytest.mark.parametrize("version", ["dreamer_v1", "dreamer_v2", "dreamer_v3"])
def test_world_model_fits_a_fixed_batch(version):
    agent, _ = tiny_agent(version, overrides=["model.opt.lr=3e-3"])
    batch = random_batch(agent, batch=4, length=8, seed=3)
    recon = []
    for _ in range(60):
        metrics = agent.train_step(batch)
        recon.append(metrics["train/recon_vector"])
    assert all(np.isfinite(list(metrics.values())))
    assert np.mean(recon[-5:]) < 0.5 * np.mean(recon[:5])


def test_pixel_world_model_open_loop_prediction_shapes():
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)})
    agent, _ = tiny_agent(space=space)
    rng = np.random.default_rng(0)
    arrays = {"image": rng.integers(0, 255, (2, 8, 16, 16, 3), dtype=np.uint8),
              "action": rng.uniform(-1, 1, (2, 8, 2)).astype(np.float32), "reward": np.zeros((2, 8), np.float32),
              "is_first": np.zeros((2, 8), bool), "is_terminal": np.zeros((2, 8), bool)}
    batch = Batch.from_numpy(arrays, agent.layout.keys, torch.device("cpu"))
    metrics = agent.train_step(batch)
    assert metrics["train/recon_image"] > 0
    truth, pred = agent.wm.open_loop(batch, context=5)
    assert truth.shape == pred.shape == (2, 8, 16, 16, 3)
    assert 0.0 <= float(pred.min()) and float(pred.max()) <= 1.0


def test_discrete_actions_use_reinforce_and_map_to_env_indices():
    agent, _ = tiny_agent(action_space=gym.spaces.Discrete(3))
    assert agent.behavior.reinforce_mix == 1.0
    metrics = agent.train_step(random_batch(agent))
    assert np.isfinite(metrics["train/actor_loss"])
    spec = ActionSpec.from_space(gym.spaces.MultiDiscrete([11, 11]), "one_hot")
    onehot = spec.random(5, np.random.default_rng(0))
    assert onehot.shape == (5, 22) and np.all(onehot.reshape(5, 2, 11).sum(-1) == 1)
    assert spec.to_env(onehot).shape == (5, 2)
    assert ActionSpec.from_space(gym.spaces.Discrete(3), "one_hot").to_env(np.eye(3)[[2, 0]]).tolist() == [2, 0]
    box = ActionSpec.from_space(gym.spaces.Box(np.array([0.0, -2.0]), np.array([1.0, 2.0])))
    assert box.to_env(np.array([[-1.0, 0.5]])).tolist() == [[0.0, 1.0]]


# ------------------------------------------------------------------ replay
def counting_replay(capacity=40, streams=2, **kwargs):
    fields = {"t": ((), np.int64), "is_first": ((), bool)}
    return SequenceReplay(fields, capacity, streams, seed=0, **kwargs)


def fill(replay, steps, episode=7):
    for t in range(steps):
        replay.add({"t": np.array([t, 1000 + t]), "is_first": np.array([t % episode == 0] * 2)})


def test_replay_capacity_is_in_steps_and_sequences_are_consecutive():
    replay = counting_replay(capacity=40, streams=2)
    fill(replay, 50)                      # 20 steps per ring: the oldest 30 were overwritten
    assert len(replay) == 40
    sample = replay.sample(256, 5)
    t = sample["t"] % 1000
    assert np.all(np.diff(t, axis=1) == 1)                 # consecutive, never across the ring seam
    assert t.min() == 30 and t.max() == 49                 # only the newest 20 steps of each ring
    assert set(np.unique(sample["t"] // 1000)) == {0, 1}   # both streams sampled
    with pytest.raises(ReplayError, match="no sequence of 30 steps"):
        replay.sample(1, 30)


def test_replay_can_keep_sequences_inside_one_episode():
    replay = counting_replay(capacity=200, streams=2, cross_episodes=False)
    fill(replay, 100, episode=7)
    sample = replay.sample(500, 5)
    assert not sample["is_first"][:, 1:].any()
    crossing = counting_replay(capacity=200, streams=2)
    fill(crossing, 100, episode=7)
    assert crossing.sample(500, 5)["is_first"][:, 1:].any()
    short = counting_replay(capacity=200, streams=2, cross_episodes=False)
    fill(short, 100, episode=3)
    with pytest.raises(ReplayError, match="inside one episode"):
        short.sample(4, 5)


@pytest.mark.parametrize("spill", [False, True])
def test_replay_round_trips_through_a_weights_only_checkpoint(tmp_path, spill):
    spill_dir = tmp_path / "replay" if spill else None
    replay = counting_replay(capacity=40, streams=2, spill_dir=spill_dir)
    fill(replay, 33)
    torch.save(replay.state_dict(), tmp_path / "r.pt")
    expected = replay.sample(16, 4)
    restored = counting_replay(capacity=40, streams=2, spill_dir=spill_dir)
    restored.load_state_dict(torch.load(tmp_path / "r.pt", weights_only=True))
    assert len(restored) == len(replay) and restored.added == 66
    got = restored.sample(16, 4)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    if spill:
        assert (tmp_path / "replay" / "t.npy").exists()
        assert "data" not in replay.state_dict()


# ------------------------------------------------------------------ configs and export
def test_every_preset_resolves_and_bad_values_fail_in_one_line():
    _, presets = load_config_file(CONFIG_PATH)
    for version in ("dreamer_v1", "dreamer_v2", "dreamer_v3"):
        for size in ("tiny", "micro", "xs", "small"):
            DreamerConfig.from_resolved(resolve_config(CONFIG_PATH, [version, size]))
    assert {"dreamer_v1", "dreamer_v2", "dreamer_v3", "tiny", "small"} <= set(presets)
    for overrides, match in ((["model.rssm.dist=foo"], "model.rssm.dist: expected discrete or gaussian"),
                             (["behavior.lam=2"], "behavior.lam: expected in"),
                             (["model.rssm.deterr=3"], "unknown key 'model.rssm.deterr'")):
        with pytest.raises(ConfigError, match=match) as err:
            DreamerConfig.from_resolved(resolve_config(CONFIG_PATH, [], overrides))
        assert "\n" not in str(err.value)


def test_exported_policy_loads_weights_only_and_acts_like_the_agent(tmp_path):
    agent, _ = tiny_agent()
    agent.train_step(random_batch(agent))
    path = export_policy(tmp_path / "policy.pt", agent, VECTOR_SPACE, BOX)
    policy = load_policy(path)
    obs = {"position": np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32),
           "velocity": np.zeros((3, 2), np.float32)}
    state = policy.initial_state(3)
    ours = agent.policy.initial_state(3)
    for _ in range(4):
        action, state = policy.act(obs, state, deterministic=True)
        expected, ours = agent.policy.act(agent.obs_to_tensors(obs), ours, explore=False)
        assert np.allclose(action, expected.numpy(), atol=1e-6)
    assert action.shape == (3, 2) and np.all(np.abs(action) <= 1)
    state = policy.reset_state(state, np.array([True, False, False]))
    assert torch.equal(state["deter"][0], policy.initial_state(1)["deter"][0])
    assert not torch.equal(state["deter"][1], policy.initial_state(1)["deter"][0])
