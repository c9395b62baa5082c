"""Unmodeled effects: backlash, action delay, timing jitter, marker freeze/occlusion, object forces,
rotation noise on quaternions, sampled values in the privileged state, determinism of the whole stack."""

import numpy as np
import pytest

from simreal.envs.hand_cube import HandCubeEnv
from simreal.envs.vec_env import HandCubeVecEnv
from simreal.randomize import parse_spec
from simreal.utils.rotations import quat_mul, rotation_angle


def spec(*entries):
    return parse_spec({"randomizers": list(entries)}, "test.yaml")


def effect(name, eff, param, value, op="set", **kw):
    return dict(name=name, target={"effect": eff, "param": param, **kw.pop("target", {})},
                distribution={"type": "constant", "value": value}, operation=op, **kw)


def test_backlash_is_a_play_operator_on_joint_targets():
    env = HandCubeEnv(randomization=spec(effect("bl", "backlash", "width", 0.2)))
    env.reset(seed=0)
    stack, sim = env.sim.randomization, env.sim
    lo, hi = np.full((1, 20), -10.0), np.full((1, 20), 10.0)
    out = [stack.on_ctrl(np.full((1, 20), c), lo, hi)[0, 0] for c in (0.0, 0.05, 0.3, 0.25, 0.1, 0.05)]
    # starts at the first command; inside the gap nothing moves; then trails by half the width
    np.testing.assert_allclose(out, [0.0, 0.0, 0.2, 0.2, 0.2, 0.15])
    # and the command never leaves the control range
    big = stack.on_ctrl(np.full((1, 20), 5.0), sim.ctrl_low[None], sim.ctrl_high[None])
    assert np.all(big <= sim.ctrl_high)


def test_action_delay_splits_the_step_at_substep_resolution():
    env = HandCubeEnv(randomization=spec(effect("d", "action_delay", "delay", 0.03)), control="absolute")
    env.reset(seed=0)
    stack, sim = env.sim.randomization, env.sim
    hold = sim.ctrl.copy()
    a, b = np.full((1, 20), 0.1), np.full((1, 20), 0.2)
    lo, hi = sim.ctrl_low[None], sim.ctrl_high[None]
    first = stack.segments(a, sim.ctrl, 40, 0.002, lo, hi)
    assert [n for n, _ in first] == [15, 25]  # 30 ms of the 80 ms step on the previous command
    np.testing.assert_allclose(first[0][1], np.clip(hold, lo, hi))
    np.testing.assert_allclose(first[1][1], np.clip(a, lo, hi))
    second = stack.segments(b, sim.ctrl, 40, 0.002, lo, hi)
    np.testing.assert_allclose(second[0][1], np.clip(a, lo, hi))
    np.testing.assert_allclose(second[1][1], np.clip(b, lo, hi))


def test_delays_longer_than_a_step_use_older_commands_per_actuator():
    late = effect("late", "action_delay", "delay", 0.1, target={"names": ["robot0:A_FFJ*"]})
    env = HandCubeEnv(randomization=spec(late), control="absolute")
    env.reset(seed=0)
    stack, sim = env.sim.randomization, env.sim
    lo, hi = np.full((1, 20), -9.0), np.full((1, 20), 9.0)
    ff = [i for i, n in enumerate(env.sim.randomization.effects["action_delay"].element_names) if "A_FFJ" in n]
    cmds = [np.full((1, 20), float(k)) for k in (1, 2, 3)]
    pieces = [stack.segments(c, sim.ctrl, 40, 0.002, lo, hi) for c in cmds][-1]
    assert [n for n, _ in pieces] == [10, 30]  # 100 ms = one step + 10 substeps
    assert pieces[0][1][0, ff[0]] == 1.0 and pieces[1][1][0, ff[0]] == 2.0  # two and one steps back
    others = [i for i in range(20) if i not in ff]
    assert np.all(pieces[0][1][0, others] == 3.0) and np.all(pieces[1][1][0, others] == 3.0)


def test_substep_controls_are_the_segments_laid_out_per_substep():
    """The array the batched rollout takes holds exactly the pieces `segments` cuts, per actuator."""
    mixed = [effect("late", "action_delay", "delay", 0.1, target={"names": ["robot0:A_FFJ*"]}),
             effect("soon", "action_delay", "delay", 0.03, target={"names": ["robot0:A_TH*"]})]
    envs = [HandCubeEnv(randomization=spec(*mixed), control="absolute") for _ in range(2)]
    for env in envs:
        env.reset(seed=0)
    lo, hi = np.full((1, 20), -9.0), np.full((1, 20), 9.0)
    out = np.empty((1, 40, 20))
    for k in (1.0, 2.0, 3.0, 20.0):  # 20 is outside [lo, hi]: clipped as the pieces are
        c = np.full((1, 20), k)
        pieces = envs[0].sim.randomization.segments(c, envs[0].sim.ctrl, 40, 0.002, lo, hi)
        laid = envs[1].sim.randomization.substep_controls(c, envs[1].sim.ctrl, 40, 0.002, lo, hi, out=out)
        assert laid.shape == (1, 40, 20)
        np.testing.assert_array_equal(laid[0], np.concatenate([np.repeat(p, n, axis=0) for n, p in pieces]))
    # no delay that cuts the step: one (n, nu) control for the whole step
    whole = HandCubeEnv(randomization=spec(effect("d", "action_delay", "delay", 0.08)), control="absolute")
    whole.reset(seed=0)
    c = whole.sim.randomization.substep_controls(np.zeros((1, 20)), whole.sim.ctrl, 40, 0.002, lo, hi, out=out)
    assert c.shape == (1, 20)


def test_action_delay_end_to_end_holds_the_reset_pose_for_one_step():
    env = HandCubeEnv(randomization=spec(effect("d", "action_delay", "delay", 0.08)), control="absolute")
    env.reset(seed=0)
    hold = env.sim.ctrl.copy()
    env.step(np.full(20, 0.3, np.float32))
    np.testing.assert_allclose(env.sim.ctrl, hold)  # the whole first step ran on the old command
    env.step(np.full(20, -0.3, np.float32))
    np.testing.assert_allclose(env.sim.ctrl[0], env.sim.ctrl_mid + 0.3 * env.sim.ctrl_half)


def test_timing_jitter_resamples_the_timestep_every_step():
    jitter = dict(name="jitter", target={"field": "opt.timestep"}, operation="scale", resample="step",
                  distribution={"type": "uniform", "low": 0.9, "high": 1.1})
    env = HandCubeEnv(randomization=spec(jitter))
    obs, _ = env.reset(seed=0)
    steps = []
    for _ in range(20):
        env.step(np.zeros(20, np.float32))
        steps.append(env.sim.batch.expand("opt.timestep")[0])
    steps = np.array(steps).ravel() / 0.002
    assert steps.min() >= 0.9 and steps.max() <= 1.1 and np.std(steps) > 0.02


def _random_walk(env, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    obs, _ = env.reset(seed=seed)
    out.append(obs)
    for _ in range(n):
        obs, *_ = env.step(rng.uniform(-0.5, 0.5, 20).astype(np.float32))
        out.append(obs)
    return out


def test_marker_freeze_holds_markers_and_first_observation_is_fresh():
    freeze = [effect("rate", "marker_freeze", "rate", 1000.0), effect("dur", "marker_freeze", "duration", 10.0)]
    env = HandCubeEnv(randomization=spec(*freeze), goal_timeout=100)
    clean = HandCubeEnv(goal_timeout=100)
    seen, truth = _random_walk(env, 6), _random_walk(clean, 6)
    np.testing.assert_array_equal(seen[0]["fingertip_pos"], truth[0]["fingertip_pos"])  # fresh after reset
    for obs in seen[1:]:  # every marker froze at once and stays frozen
        np.testing.assert_array_equal(obs["fingertip_pos"], seen[0]["fingertip_pos"])
        np.testing.assert_array_equal(obs["object_quat"], seen[0]["object_quat"])
    assert not np.allclose(truth[-1]["fingertip_pos"], truth[0]["fingertip_pos"])
    np.testing.assert_array_equal(seen[-1]["state"], truth[-1]["state"])  # the critic's state is never frozen


def test_occlusion_freezes_fingertips_only():
    occ = effect("occ", "marker_freeze", "occlusion_distance", 1.0)  # everything is "near"
    env = HandCubeEnv(randomization=spec(occ), goal_timeout=100)
    clean = HandCubeEnv(goal_timeout=100)
    seen, truth = _random_walk(env, 4), _random_walk(clean, 4)
    for obs, ref in zip(seen[1:], truth[1:]):
        np.testing.assert_array_equal(obs["fingertip_pos"], seen[0]["fingertip_pos"])
        np.testing.assert_array_equal(obs["object_pos"], ref["object_pos"])  # the cube marker is never occluded
    frozen = env.sim.randomization.effects["marker_freeze"].frozen
    assert frozen[0, :5].all() and not frozen[0, 5]


def test_occlusion_geometry_measures_distance_to_the_cube_surface():
    env = HandCubeEnv()
    env.reset(seed=0)
    sim = env.sim
    o = sim.obj_qadr
    center, half = sim.qpos[0, o : o + 3].copy(), sim._object_half
    sim.qpos[0, o + 3 : o + 7] = [1, 0, 0, 0]
    sim.site_xpos = sim.site_xpos.copy()  # the bound array is read-only; place the markers by hand
    sim.site_xpos[0, sim.tip_sites] = center + np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0]]) * 0.5
    sim.site_xpos[0, sim.tip_sites[0]] = center + [half[0] + 0.004, 0, 0]  # 4 mm off a face
    near = sim.marker_occlusion(np.full((1, 6), 0.005))
    assert near[0].tolist() == [True, False, False, False, False, False]


def test_object_force_probability_scale_and_decay():
    force = [effect("p", "object_force", "probability", 1.0, target={"names": ["object"]}),
             effect("s", "object_force", "scale", 10.0, target={"names": ["object"]}),
             effect("t", "object_force", "decay_time", 0.5, target={"names": ["object"]})]
    env = HandCubeEnv(randomization=spec(*force))
    env.reset(seed=0)
    obj = env.model.body("object").id
    env.step(np.zeros(20, np.float32))
    f = env.sim.xfrc_applied[0, obj, :3].copy()
    assert np.linalg.norm(f) > 0.05 and np.all(env.sim.xfrc_applied[0, obj, 3:] == 0)
    others = np.delete(np.arange(env.model.nbody), obj)
    assert np.all(env.sim.xfrc_applied[0, others] == 0)
    eff = env.sim.randomization.effects["object_force"]
    eff.inputs[0].values[:] = 0.0  # no new forces: what is there decays
    eff.changed()
    eff.before_physics(0.08)
    np.testing.assert_allclose(env.sim.xfrc_applied[0, obj, :3], f * np.exp(-0.08 / 0.5))
    env.reset()
    assert np.all(env.sim.xfrc_applied[0, obj] == 0)  # a new episode starts without a push


def test_object_force_magnitude_follows_scale_and_mass():
    force = [effect("p", "object_force", "probability", 1.0, target={"names": ["object"]}),
             effect("s", "object_force", "scale", 2.0, target={"names": ["object"]})]
    env = HandCubeEnv(randomization=spec(*force), settle_time=0.0)
    env.reset(seed=1)
    eff = env.sim.randomization.effects["object_force"]
    obj = env.model.body("object").id
    draws = []
    for _ in range(400):
        eff.force[:] = 0.0
        eff.before_physics(0.08)
        draws.append(eff.force[0, obj].copy())
    assert np.std(draws) == pytest.approx(2.0 * env.model.body_mass[obj], rel=0.1)


def test_quaternion_noise_is_a_rotation_and_relative_goal_follows_it():
    noise = dict(name="qn", target={"observation": "object_quat"}, operation="add",
                 distribution={"type": "normal", "std": 0.1})
    env = HandCubeEnv(randomization=spec(noise))
    clean = HandCubeEnv()
    obs, _ = env.reset(seed=3)
    ref, _ = clean.reset(seed=3)
    assert np.linalg.norm(obs["object_quat"]) == pytest.approx(1.0, abs=1e-6)
    angle = rotation_angle(obs["object_quat"].astype(float), ref["object_quat"].astype(float))
    rotvec = env.sim.randomization["qn"].values[0]
    assert angle == pytest.approx(np.linalg.norm(rotvec), abs=1e-5)
    # the relative goal is computed from what the policy sees
    recovered = quat_mul(obs["relative_quat"].astype(float), obs["object_quat"].astype(float))
    assert rotation_angle(recovered, obs["goal_quat"].astype(float)) < 1e-5
    with pytest.raises(Exception, match="additive rotation noise"):
        HandCubeEnv(randomization=spec(dict(noise, operation="scale")))


def test_sampled_values_can_join_the_privileged_state():
    env = HandCubeEnv(randomization="randomizations/dactyl.yaml", randomization_in_state=True)
    plain = HandCubeEnv(randomization="randomizations/dactyl.yaml")
    obs, info = env.reset(seed=0)
    layout = env.state_layout
    stack = env.sim.randomization
    assert layout["randomization"].stop - layout["randomization"].start == stack.privileged_size
    np.testing.assert_allclose(obs["state"][layout["randomization"]], stack.privileged()[0].astype(np.float32))
    assert env.observation_space["state"].shape[0] == plain.observation_space["state"].shape[0] + stack.privileged_size
    assert env.observation_space.contains(obs)
    assert stack.privileged()[0][0] == pytest.approx(info["randomization"]["object_size"])


def test_full_dactyl_stack_vec_copies_match_single_envs_bit_for_bit():
    n, steps = 3, 12  # with seed 7, copy 1 drops the cube at step 5: auto-reset is covered too
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, (steps, n, 20)).astype(np.float32)
    venv = HandCubeVecEnv(n, nthread=2, randomization="randomizations/dactyl.yaml")
    venv.seed(7)
    vobs = [venv.reset()]
    for t in range(steps):
        vobs.append(venv.step(actions[t])[0])
    for i in range(n):
        env = HandCubeEnv(randomization="randomizations/dactyl.yaml")
        obs, _ = env.reset(seed=7 + i)
        for t in range(steps + 1):
            for key in obs:
                np.testing.assert_array_equal(vobs[t][key][i], obs[key], err_msg=f"copy {i} step {t} key {key}")
            if t < steps:
                obs, _, terminated, truncated, _ = env.step(actions[t, i])
                if terminated or truncated:  # the vector env resets on its own, continuing the copy's streams
                    obs, _ = env.reset()


def test_effect_binding_errors_name_the_key():
    from simreal.randomize import RandomizationError

    bad = effect("f", "object_force", "probability", 1.0, target={"names": ["no_such_body"]})
    with pytest.raises(RandomizationError, match=r"randomizers\[0\] \(f\)\.target\.names: no element of effect"):
        HandCubeEnv(randomization=spec(bad))


def test_removing_an_effects_last_randomizer_takes_the_effect_out():
    force = [effect("p", "object_force", "probability", 1.0, target={"names": ["object"]}),
             effect("s", "object_force", "scale", 10.0, target={"names": ["object"]})]
    env = HandCubeEnv(randomization=spec(*force))
    env.reset(seed=0)
    env.step(np.zeros(20, np.float32))
    obj = env.model.body("object").id
    assert np.linalg.norm(env.sim.xfrc_applied[0, obj]) > 0
    stack = env.sim.randomization
    stack.remove("s")
    assert np.all(env.sim.xfrc_applied[0, obj] == 0)  # the push in flight is gone with its randomizer
    stack.remove("p")
    assert "object_force" not in stack.effects and not stack.acts_on_action
