import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

import simreal
from simreal.envs.hand_cube import HandCubeEnv
from simreal.envs.policies import HoldPolicy
from simreal.envs.vec_env import HandCubeVecEnv


def test_is_an_sb3_vecenv_with_matching_spaces():
    venv = simreal.make_vec(n_envs=3, seed=0, nthread=2)
    single = HandCubeEnv()
    assert isinstance(venv, VecEnv) and venv.num_envs == 3
    assert venv.observation_space == single.observation_space
    assert venv.action_space == single.action_space
    obs = venv.reset()
    assert all(v.shape == (3, *single.observation_space[k].shape) for k, v in obs.items())
    assert len(venv.reset_infos) == 3
    assert venv.get_attr("render_mode") == [None] * 3
    assert venv.env_is_wrapped(VecMonitor) == [False] * 3


def test_each_copy_follows_the_single_env_with_the_same_seed():
    n, seed, steps = 3, 11, 12
    venv = HandCubeVecEnv(n, nthread=2)
    venv.seed(seed)
    vobs = venv.reset()
    policy = HoldPolicy(venv.sim, noise=0.3, seed=0)
    vtrace, actions = [vobs], []
    for _ in range(steps):
        actions.append(policy(vobs))
        vobs, r, done, infos = venv.step(actions[-1])
        assert not done.any()
        vtrace.append(vobs)
    for i in range(n):
        env = HandCubeEnv()
        obs, _ = env.reset(seed=seed + i)
        for key in obs:
            np.testing.assert_array_equal(obs[key], vtrace[0][key][i])
        for k, a in enumerate(actions):
            obs, *_ = env.step(a[i])
            for key in obs:
                np.testing.assert_array_equal(obs[key], vtrace[k + 1][key][i])


def test_thread_count_does_not_change_results():
    outs = []
    for nthread in (1, 2):
        venv = HandCubeVecEnv(4, nthread=nthread)
        venv.seed(5)
        obs = venv.reset()
        pol = HoldPolicy(venv.sim, noise=0.3, seed=1)
        for _ in range(5):
            obs, *_ = venv.step(pol(obs))
        outs.append(obs["state"])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_done_copies_auto_reset_with_terminal_observation():
    venv = HandCubeVecEnv(2, nthread=1)
    venv.seed(0)
    obs = venv.reset()
    sim = venv.sim
    sim.qpos[1, sim.obj_qadr : sim.obj_qadr + 3] = (1.3, 0.9, 0.05)  # copy 1 drops its cube
    obs, rewards, dones, infos = venv.step(HoldPolicy(sim)(obs))
    assert list(dones) == [False, True]
    assert infos[1]["dropped"] and not infos[1]["TimeLimit.truncated"]
    assert infos[1]["terminal_observation"]["object_pos"][2] < 0.1
    assert obs["object_pos"][1, 2] > 0.14  # already reset: back on the palm
    assert rewards[1] < -20 + np.pi
    assert "terminal_observation" not in infos[0]


def test_timeout_sets_timelimit_truncated():
    venv = HandCubeVecEnv(2, nthread=1, goal_timeout=0.16)  # 2 steps
    venv.seed(0)
    obs = venv.reset()
    pol = HoldPolicy(venv.sim)
    obs, _, dones, infos = venv.step(pol(obs))
    assert not dones.any()
    obs, _, dones, infos = venv.step(pol(obs))
    assert dones.all() and all(i["TimeLimit.truncated"] for i in infos)


def test_vec_monitor_records_episodes():
    venv = VecMonitor(HandCubeVecEnv(2, nthread=1, goal_timeout=0.16))
    venv.seed(0)
    obs = venv.reset()
    pol = HoldPolicy(venv.unwrapped.sim)
    infos = []
    for _ in range(2):
        obs, _, _, infos = venv.step(pol(obs))
    assert all("episode" in i and i["episode"]["l"] == 2 for i in infos)


def test_each_copy_has_its_own_model_parameters():
    venv = HandCubeVecEnv(2, nthread=1)
    masses = venv.sim.batch.expand("body_mass")
    obj = venv.sim.model.body("object").id
    masses[1, obj] *= 2.0
    assert masses[0, obj] * 2.0 == pytest.approx(masses[1, obj])
    assert venv.sim.batch.get_model(1).body_mass[obj] == pytest.approx(masses[1, obj])


def test_rendering_and_bad_arguments():
    venv = HandCubeVecEnv(2, nthread=1, render_mode="rgb_array", render_size=(32, 40))
    venv.reset()
    images = venv.get_images()
    assert len(images) == 2 and images[0].shape == (32, 120, 3)
    venv.close()
    with pytest.raises(ValueError, match="n_envs"):
        HandCubeVecEnv(0)
    with pytest.raises(ValueError, match="nthread"):
        HandCubeVecEnv(2, nthread=0)
    with pytest.raises(ValueError, match="goal must be one of"):
        HandCubeVecEnv(2, goal="sideways")


def test_pixels_tile_the_cameras_into_one_image_and_pixels_only_hides_the_measured_pose():
    # nominal visuals: the randomized image noise would differ between the two renders
    venv = HandCubeVecEnv(2, nthread=1, camera_obs=(16, 16), camera_antialias=0, pixels=(32, 32),
                          settle_time=0.0, goal_timeout=0.08)
    venv.seed(0)
    obs = venv.reset()
    assert obs["image"].shape == (2, 32, 32, 3) and venv.observation_space["image"].shape == (32, 32, 3)
    for k in range(3):  # cell k of the 2x2 grid is camera k; the fourth cell stays black
        row, col = divmod(k, 2)
        np.testing.assert_array_equal(obs["image"][:, 16 * row:16 * row + 16, 16 * col:16 * col + 16],
                                      obs["cameras"][:, k])
    assert obs["image"][:, 16:, 16:].max() == 0
    _, _, done, infos = venv.step(np.zeros((2, 20), np.float32))
    assert done.all() and infos[0]["terminal_observation"]["image"].shape == (32, 32, 3)
    venv.close()
    only = HandCubeVecEnv(1, nthread=1, pixels=(16, 16), pixel_cameras=["cam_front"], pixels_only=True,
                          settle_time=0.0)
    assert set(only.observation_space.spaces) == {"fingertip_pos", "goal_quat", "last_action", "state", "image"}
    assert set(only.reset()) == set(only.observation_space.spaces)
    only.close()
    with pytest.raises(ValueError, match="pixel_cameras must be 1 to 4 distinct cameras"):
        HandCubeVecEnv(1, nthread=1, pixels=(16, 16), pixel_cameras=["nope"])
    with pytest.raises(ValueError, match="pixels_only needs pixels"):
        HandCubeVecEnv(1, nthread=1, pixels_only=True)
