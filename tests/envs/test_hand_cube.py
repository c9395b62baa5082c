import gymnasium as gym
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import simreal
from simreal.envs.hand_cube import POLICY_KEYS, HandCubeConfig, HandCubeEnv
from simreal.envs.policies import HoldPolicy
from simreal.utils.rotations import quat_conj, quat_mul, rotation_angle


@pytest.fixture
def env():
    e = HandCubeEnv()
    yield e
    e.close()


def hold(env):
    return HoldPolicy(env.sim)


def test_registered_and_made_by_simreal_make():
    assert simreal.HAND_CUBE_ID in gym.registry
    e = simreal.make(simreal.HAND_CUBE_ID, goal="vertical")
    assert isinstance(e.unwrapped, HandCubeEnv)
    assert e.unwrapped.config.goal == "vertical"
    e.close()


def test_mujoco_gl_defaults_to_egl():
    import os

    assert os.environ["MUJOCO_GL"] in ("egl", os.environ.get("MUJOCO_GL"))


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    e = HandCubeEnv(render_mode="rgb_array", render_size=(48, 64))
    check_env(e, skip_render_check=False)
    e.close()


@pytest.mark.parametrize("action", ["continuous", "discrete"])
def test_sb3_env_checker_passes(action):
    from stable_baselines3.common.env_checker import check_env

    e = HandCubeEnv(action=action)
    check_env(e, warn=False)
    e.close()


def test_spaces_declare_exact_shapes_and_dtypes(env):
    obs, info = env.reset(seed=0)
    expected = {"fingertip_pos": 15, "object_pos": 3, "object_quat": 4, "goal_quat": 4, "relative_quat": 4,
                "last_action": 20, "state": 65}
    assert set(env.observation_space.spaces) == set(expected)
    assert set(POLICY_KEYS) | {"state"} == set(expected)
    for key, size in expected.items():
        assert env.observation_space[key].shape == (size,)
        assert env.observation_space[key].dtype == np.float32
        assert obs[key].shape == (size,) and obs[key].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Box(-1, 1, (20,), np.float32)
    assert set(info) >= {"consecutive_successes", "is_success"}
    assert sum(s.stop - s.start for s in env.state_layout.values()) == 65


def test_discrete_actions_are_11_bins_per_actuator():
    e = HandCubeEnv(action="discrete", control="absolute")
    assert e.action_space == gym.spaces.MultiDiscrete(np.full(20, 11))
    e.reset(seed=0)
    sim = e.sim
    e.step(np.zeros(20, np.int64))
    np.testing.assert_allclose(sim.ctrl[0], sim.ctrl_low)
    e.step(np.full(20, 10))
    np.testing.assert_allclose(sim.ctrl[0], sim.ctrl_high)
    e.step(np.full(20, 5))
    np.testing.assert_allclose(sim.ctrl[0], sim.ctrl_mid, atol=1e-12)
    obs, *_ = e.step(np.full(20, 5))
    np.testing.assert_allclose(obs["last_action"], 0.0, atol=1e-7)


def test_relative_control_targets_current_joint_positions(env):
    env.reset(seed=0)
    sim = env.sim
    action = np.linspace(-1, 1, 20).astype(np.float32)
    q_before = sim.qpos[0, sim.act_qadr].copy()
    env.step(action)
    expected = np.clip(q_before + action * sim.ctrl_half, sim.ctrl_low, sim.ctrl_high)
    np.testing.assert_allclose(sim.ctrl[0], expected, atol=1e-6)
    env.step(np.full(20, 7.0, np.float32))  # out of range: clipped to +1
    assert np.all(sim.ctrl[0] <= sim.ctrl_high)


def rollout(env, seed, n=25):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs]
    for _ in range(n):
        obs, r, term, trunc, info = env.step(env.action_space.sample() * 0.3)
        trace.append({**obs, "r": np.array([r])})
        if term or trunc:
            obs, _ = env.reset()
    return trace


def test_same_seed_same_trajectory_and_different_seed_differs():
    a, b, c = HandCubeEnv(), HandCubeEnv(), HandCubeEnv()
    ta, tb, tc = rollout(a, 3), rollout(b, 3), rollout(c, 4)
    for x, y in zip(ta, tb):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert not np.array_equal(ta[0]["goal_quat"], tc[0]["goal_quat"])


def test_reward_is_decrease_in_rotation_distance(env):
    obs, info = env.reset(seed=1)
    policy = hold(env)
    for _ in range(5):
        d_before = info["rotation_distance"]
        obs, r, term, trunc, info = env.step(policy(obs))
        assert not info["is_success"]
        assert r == pytest.approx(d_before - info["rotation_distance"], abs=1e-9)
        q = env.sim.object_quat(0)
        assert info["rotation_distance"] == pytest.approx(float(rotation_angle(q, env.sim.goal[0])), abs=1e-9)


def test_success_gives_bonus_counts_and_samples_new_goal(env):
    obs, info = env.reset(seed=2)
    policy = hold(env)
    env.set_goal(env.sim.object_quat(0))  # the cube is already at its goal
    old_goal = env.sim.goal[0].copy()
    obs, r, term, trunc, info = env.step(policy(obs))
    assert info["is_success"] and info["consecutive_successes"] == 1
    assert r > 5.0 - 0.4  # +5 bonus, minus at most the threshold of distance change
    assert not np.allclose(env.sim.goal[0], old_goal)
    np.testing.assert_allclose(obs["goal_quat"], env.sim.goal[0], atol=1e-6)
    # the next reward is measured against the new goal
    assert info["rotation_distance"] == pytest.approx(float(rotation_angle(env.sim.object_quat(0), env.sim.goal[0])))
    assert not term and not trunc


def test_fifty_consecutive_successes_end_the_episode(env):
    obs, _ = env.reset(seed=3)
    policy = hold(env)
    for k in range(1, 51):
        env.set_goal(env.sim.object_quat(0))
        obs, r, term, trunc, info = env.step(policy(obs))
        assert info["consecutive_successes"] == k
        assert term == (k == 50)
        assert not trunc


def test_drop_is_penalized_and_terminates(env):
    obs, info = env.reset(seed=4)
    sim = env.sim
    sim.qpos[0, sim.obj_qadr : sim.obj_qadr + 3] = (1.3, 0.9, 0.05)  # beside the hand, near the floor
    obs, r, term, trunc, info = env.step(hold(env)(obs))
    assert term and not trunc and info["dropped"]
    assert r < -20 + np.pi + 1e-9


def test_timeout_truncates_after_goal_timeout_without_success():
    e = HandCubeEnv(goal_timeout=0.8)  # 10 steps of 80 ms
    obs, _ = e.reset(seed=5)
    policy = hold(e)
    flags = []
    for _ in range(10):
        obs, r, term, trunc, info = e.step(policy(obs))
        flags.append((term, trunc))
    assert flags[:9] == [(False, False)] * 9 and flags[9] == (False, True)


def test_default_timeout_is_8_seconds():
    cfg = HandCubeConfig()
    assert cfg.timeout_steps * cfg.control_dt == pytest.approx(8.0)
    assert cfg.substeps * cfg.scene.timestep == pytest.approx(0.08)


def test_vertical_goals_rotate_about_the_vertical_axis():
    e = HandCubeEnv(goal="vertical")
    for seed in range(5):
        e.reset(seed=seed)
        rel = quat_mul(e.sim.goal[0], quat_conj(e.sim.object_quat(0)))
        axis_angle = Rotation.from_quat(rel, scalar_first=True).as_rotvec()
        assert np.allclose(axis_angle[:2], 0.0, atol=1e-9)


def test_full_goals_are_not_confined_to_an_axis():
    e = HandCubeEnv(goal="full")
    tilts = []
    for seed in range(10):
        e.reset(seed=seed)
        rel = quat_mul(e.sim.goal[0], quat_conj(e.sim.object_quat(0)))
        tilts.append(np.abs(Rotation.from_quat(rel, scalar_first=True).as_rotvec()[:2]).max())
    assert max(tilts) > 0.3


def test_relative_quat_takes_object_to_goal(env):
    obs, _ = env.reset(seed=6)
    recomposed = quat_mul(obs["relative_quat"].astype(float), obs["object_quat"].astype(float))
    assert rotation_angle(recomposed, obs["goal_quat"].astype(float)) < 1e-3


def test_cube_rests_on_the_palm_after_reset(env):
    obs, _ = env.reset(seed=7)
    assert 0.14 < obs["object_pos"][2] < 0.2
    np.testing.assert_allclose(np.linalg.norm(obs["object_quat"]), 1.0, atol=1e-5)
    assert env.model.body("object").mass[0] == pytest.approx(0.055**3 * 567, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(goal="xyz"), "goal must be one of"),
        (dict(action="bins"), "action must be one of"),
        (dict(n_bins=1), "n_bins must be an integer"),
        (dict(control_dt=0.081), "whole multiple"),
        (dict(success_threshold=-1), "success_threshold"),
        (dict(goal_timeout="8"), "goal_timeout must be a number"),
        (dict(scene="hand.xml"), "scene must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        HandCubeEnv(**kwargs)


def test_unknown_argument_is_named():
    with pytest.raises(TypeError, match="goal_mode"):
        HandCubeEnv(goal_mode="full")
    with pytest.raises(ValueError, match="render_mode"):
        HandCubeEnv(render_mode="human")


def test_three_cameras_render_distinct_views():
    e = HandCubeEnv(render_mode="rgb_array", render_size=(48, 64))
    e.reset(seed=0)
    views = e.render_cameras()
    assert len(views) == 3 and all(v.shape == (48, 64, 3) and v.dtype == np.uint8 for v in views)
    assert all(v.std() > 5 for v in views)
    assert not np.array_equal(views[0], views[1])
    frame = e.render()
    assert frame.shape == (48, 192, 3)
    e.close()


def test_camera_zoom_magnifies_the_camera_observation_and_is_checked():
    images = {}
    for zoom in (1.0, 2.0):
        env = simreal.make(simreal.HAND_CUBE_ID, camera_obs=(16, 16), camera_antialias=0, camera_zoom=zoom,
                           settle_time=0.0)
        images[zoom] = env.reset(seed=0)[0]["cameras"]
        assert env.unwrapped.camera_zoom == zoom
        env.close()
    assert images[1.0].shape == images[2.0].shape == (3, 16, 16, 3)
    assert np.abs(images[1.0].astype(int) - images[2.0]).mean() > 5  # another view, not the same pixels
    with pytest.raises(ValueError, match="camera_zoom must be a number from 1 to 16"):
        simreal.make(simreal.HAND_CUBE_ID, camera_obs=(16, 16), camera_zoom=0.5)
