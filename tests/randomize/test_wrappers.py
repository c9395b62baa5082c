import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
import pytest

from simreal.randomize import RandomizationError, load_spec, parse_spec
from simreal.randomize.wrappers import RandomizedEnv, wrap

shimmy = pytest.importorskip("shimmy")

HOPPER = "Hopper-v5"
CARTPOLE = "dm_control/cartpole-swingup-v0"
# a body to randomize, and the observation key noise can target, per env
BODY = {HOPPER: "thigh", CARTPOLE: "pole_1"}
OBS_KEY = {HOPPER: "observation", CARTPOLE: "position"}
ENVS = [HOPPER, CARTPOLE]


def spec(*entries):
    return parse_spec({"randomizers": list(entries)}, "test.yaml")


def entry(name, target, dist, op, **kw):
    return dict(name=name, target=target, distribution=dist, operation=op, **kw)


def const(value):
    return {"type": "constant", "value": value}


def mass(env_id, name="mass"):
    return entry(name, {"field": "body_mass", "names": [BODY[env_id]]}, {"type": "uniform", "low": 0.5, "high": 1.5},
                 "scale")


def model_of(env):
    return env.sim.model


def snapshot(model):
    out = {}
    for f in sorted(mujoco.batch.MODEL_FIELDS):
        if f.startswith("opt."):
            out[f] = np.array(getattr(model.opt, f[4:]), dtype=float, copy=True)
        elif isinstance(getattr(model, f, None), np.ndarray):
            out[f] = getattr(model, f).copy()
    return out


def actions(env, n, seed=0):
    rng = np.random.default_rng(seed)
    space = env.action_space
    return [rng.uniform(space.low, space.high).astype(space.dtype) for _ in range(n)]


def qpos(env):
    return env.sim.data.qpos.copy()


@pytest.mark.parametrize("env_id", ENVS)
def test_none_yaml_leaves_every_model_field_nominal(env_id):
    inner = gym.make(env_id)
    env = wrap(inner, "randomizations/none.yaml")
    before = snapshot(model_of(env))
    obs, info = env.reset(seed=0)
    assert info["randomization"] == {}
    for a in actions(env, 5):
        env.step(a)
    after = snapshot(model_of(env))
    for f, v in before.items():
        np.testing.assert_array_equal(after[f], v, err_msg=f)
    # and the wrapper is the identity: same observations as the bare env
    bare = gym.make(env_id)
    bobs, _ = bare.reset(seed=0)
    obs, _ = env.reset(seed=0)
    for a in actions(env, 5):
        obs = env.step(a)[0]
        bobs = bare.step(a)[0]
    flat = (lambda o: np.concatenate([np.ravel(v) for v in o.values()])) if isinstance(obs, dict) else np.ravel
    np.testing.assert_array_equal(flat(obs), flat(bobs))


@pytest.mark.parametrize("env_id", ENVS)
def test_mass_scale_never_compounds_and_fixed_returns_to_nominal(env_id):
    env = wrap(gym.make(env_id), spec(mass(env_id)))
    m = model_of(env)
    b = m.body(BODY[env_id]).id
    nominal_mass, nominal_inertia = m.body_mass.copy(), m.body_inertia.copy()
    others = np.arange(m.nbody) != b
    env.reset(seed=0)
    ratios = []
    for _ in range(200):
        _, info = env.reset()
        ratio = m.body_mass[b] / nominal_mass[b]
        ratios.append(ratio)
        assert info["randomization"]["mass"] == pytest.approx(ratio)
        np.testing.assert_allclose(m.body_inertia[b], nominal_inertia[b] * ratio)
        np.testing.assert_array_equal(m.body_mass[others], nominal_mass[others])
        assert m.body_subtreemass[0] == pytest.approx(m.body_mass.sum())  # mj_setConst ran on the env's model
    ratios = np.array(ratios)
    assert 0.5 <= ratios.min() and ratios.max() <= 1.5 and ratios.std() > 0.1
    env.stack.set_fixed({"mass": 1.0})
    env.reset()
    np.testing.assert_array_equal(m.body_mass, nominal_mass)
    np.testing.assert_array_equal(m.body_inertia, nominal_inertia)


def stacked(env_id):
    body = BODY[env_id]
    items = [
        entry("masses", {"field": "body_mass"}, {"type": "uniform", "low": 0.5, "high": 1.5}, "scale", per_element=True),
        entry("damping", {"field": "dof_damping"}, {"type": "loguniform", "low": 0.3, "high": 3.0}, "scale",
              per_element=True),
        entry("gravity", {"field": "opt.gravity"}, {"type": "normal", "std": 0.4}, "add", per_element=True),
        entry("jitter", {"field": "opt.timestep"}, {"type": "truncnormal", "mean": 1.0, "std": 0.05, "low": 0.9,
                                                     "high": 1.1}, "scale", resample="step"),
        entry("obs_noise", {"observation": OBS_KEY[env_id]}, {"type": "normal", "std": 0.01}, "add", per_element=True,
              resample="step"),
        entry("act_noise", {"action": "all"}, {"type": "normal", "std": 0.1}, "add", per_element=True, resample="step"),
        entry("delay", {"effect": "action_delay", "param": "delay"}, {"type": "uniform", "low": 0.0, "high": 0.03},
              "set", per_element=True),
        entry("backlash", {"effect": "backlash", "param": "width"}, {"type": "uniform", "low": 0.0, "high": 0.1}, "set"),
        entry("push_p", {"effect": "object_force", "param": "probability", "names": [body]}, const(0.3), "set"),
        entry("push_scale", {"effect": "object_force", "param": "scale", "names": [body]}, const(2.0), "set"),
    ]
    if env_id == HOPPER:
        items.append(entry("friction", {"field": "geom_friction", "columns": [0]},
                           {"type": "uniform", "low": 0.7, "high": 1.3}, "scale", per_element=True))
    return spec(*items)


def rollout(env_id, seed, n=20):
    env = wrap(gym.make(env_id), stacked(env_id))
    obs, info = env.reset(seed=seed)
    out = [obs]
    for a in actions(env, n):
        obs, *_ = env.step(a)
        out.append(obs)
    flat = [np.concatenate([np.ravel(v) for v in o.values()]) if isinstance(o, dict) else o for o in out]
    return np.array(flat), qpos(env), info["randomization"]


@pytest.mark.parametrize("env_id", ENVS)
def test_same_seed_same_trajectory(env_id):
    obs_a, q_a, info_a = rollout(env_id, 7)
    obs_b, q_b, info_b = rollout(env_id, 7)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(q_a, q_b)
    assert info_a == info_b
    obs_c, _, info_c = rollout(env_id, 8)
    assert info_c != info_a
    assert not np.array_equal(obs_a, obs_c)


def test_observation_noise_leaves_true_state_untouched():
    noise = entry("obs_noise", {"observation": "observation"}, {"type": "normal", "std": 0.05}, "add",
                  per_element=True, resample="step")
    env = wrap(gym.make(HOPPER), spec(noise))
    clean = wrap(gym.make(HOPPER), "none")
    obs, _ = env.reset(seed=3)
    cobs, _ = clean.reset(seed=3)
    diffs = []
    for a in actions(env, 5):
        diffs.append(obs - cobs)
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(a)
        cobs, *_ = clean.step(a)
        np.testing.assert_array_equal(env.sim.data.qpos, clean.sim.data.qpos)
        np.testing.assert_array_equal(env.sim.data.qvel, clean.sim.data.qvel)
    diffs = np.array(diffs)
    assert 0.02 < diffs.std() < 0.1
    assert not np.allclose(diffs[0], diffs[1])  # resampled every step


def test_dict_observation_noise_targets_one_key():
    noise = entry("pos_bias", {"observation": "position"}, {"type": "normal", "std": 0.01}, "add", per_element=True)
    env = wrap(gym.make(CARTPOLE), spec(noise))
    clean = gym.make(CARTPOLE)
    obs, info = env.reset(seed=1)
    cobs, _ = clean.reset(seed=1)
    bias = obs["position"] - cobs["position"]
    np.testing.assert_allclose(bias, info["randomization"]["pos_bias"])
    np.testing.assert_array_equal(obs["velocity"], cobs["velocity"])
    for a in actions(env, 3):
        obs, *_ = env.step(a)
        cobs, *_ = clean.step(a)
        assert env.observation_space.contains(obs)
        np.testing.assert_allclose(obs["position"] - cobs["position"], bias)  # correlated: held for the episode
        assert obs["position"].dtype == cobs["position"].dtype and obs["position"].shape == cobs["position"].shape


def test_finite_observation_bounds_are_kept():
    space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    x = RandomizedEnv._restore(np.array([[2.0, -3.0, 0.5]]), np.zeros(3, np.float32), space)
    assert space.contains(x) and x[2] == 0.5


@pytest.mark.parametrize("env_id", ENVS)
def test_action_noise_keeps_actions_in_the_action_space(env_id):
    noise = entry("act", {"action": "all"}, {"type": "normal", "std": 3.0}, "add", per_element=True, resample="step")
    env = wrap(gym.make(env_id), spec(noise))
    env.reset(seed=0)
    space = env.action_space
    changed = False
    for a in actions(env, 10):
        env.step(a)
        ctrl = env.sim.data.ctrl
        assert space.contains(ctrl.astype(space.dtype))
        changed |= not np.allclose(ctrl, a)
    assert changed


def test_action_delay_in_whole_control_steps():
    env = wrap(gym.make(HOPPER), spec(entry("delay", {"effect": "action_delay", "param": "delay"},
                                               const(2 * 0.008), "set")))
    env.reset(seed=0)
    sent = actions(env, 6)
    applied = []
    for a in sent:
        env.step(a)
        applied.append(env.sim.data.ctrl.copy())
    np.testing.assert_array_equal(applied[0], 0.0)  # the reset control fills the history
    np.testing.assert_array_equal(applied[1], 0.0)
    for k in range(2, 6):
        np.testing.assert_allclose(applied[k], sent[k - 2], rtol=1e-6)


@pytest.mark.parametrize("env_id", ENVS)
def test_object_force_pushes_then_decays(env_id):
    body = BODY[env_id]
    s = spec(entry("p", {"effect": "object_force", "param": "probability", "names": [body]}, const(1.0), "set",
                   resample="step"),
             entry("scale", {"effect": "object_force", "param": "scale", "names": [body]}, const(5.0), "set"),
             entry("decay", {"effect": "object_force", "param": "decay_time", "names": [body]}, const(0.05), "set"))
    env = wrap(gym.make(env_id), s)
    clean = wrap(gym.make(env_id), "none")
    env.reset(seed=0)
    clean.reset(seed=0)
    env.stack.set_fixed({"p": 0.0})  # this episode: one push on the first step, none after
    b = env.sim.model.body(body).id
    a = actions(env, 2)
    env.step(a[0])
    clean.step(a[0])
    xfrc = env.sim.data.xfrc_applied
    f1 = xfrc[b, :3].copy()
    assert np.abs(f1).max() > 0
    np.testing.assert_array_equal(np.delete(xfrc, b, axis=0), 0.0)
    np.testing.assert_array_equal(xfrc[b, 3:], 0.0)
    assert not np.array_equal(env.sim.data.qvel, clean.sim.data.qvel)  # the push moved the system
    env.step(a[1])
    f2 = env.sim.data.xfrc_applied[b, :3]
    np.testing.assert_allclose(f2, f1 * np.exp(-env.sim.control_dt / 0.05))
    env.reset()
    np.testing.assert_array_equal(env.stack.effects["object_force"].force, 0.0)


@pytest.mark.parametrize("env_id", ENVS)
def test_info_has_yaml_names(env_id):
    s = stacked(env_id)
    env = wrap(gym.make(env_id), s)
    _, info = env.reset(seed=0)
    assert list(info["randomization"]) == [r.name for r in s.randomizers]
    assert isinstance(info["randomization"]["damping"], list)
    for name in info["randomization"]:
        assert name in env.describe()


def test_opt_scalar_fields_write_through_and_remove_restores():
    s = spec(entry("jitter", {"field": "opt.timestep"}, const(1.25), "scale"),
             entry("g", {"field": "opt.gravity", "columns": [2]}, const(1.0), "add"))
    env = wrap(gym.make(HOPPER), s)
    m = env.sim.model
    env.reset(seed=0)
    assert m.opt.timestep == pytest.approx(0.002 * 1.25)
    assert env.unwrapped.dt == pytest.approx(0.008 * 1.25)
    assert m.opt.gravity[2] == pytest.approx(-9.81 + 1.0)
    env.stack.remove("jitter")
    env.stack.remove("g")
    assert m.opt.timestep == 0.002 and m.opt.gravity[2] == pytest.approx(-9.81)


def test_dmc_cartpole_yaml_loads_binds_and_runs():
    s = load_spec("randomizations/dmc_cartpole.yaml")
    assert all(r.source for r in s.randomizers)
    env = wrap(gym.make(CARTPOLE), "dmc_cartpole", seed=0)
    obs, info = env.reset(seed=0)
    assert list(info["randomization"]) == [r.name for r in s.enabled()]
    assert env.observation_space.contains(obs)
    for a in actions(env, 50):
        obs, reward, terminated, truncated, info = env.step(a)
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward)
    assert env.sim.model.opt.timestep != 0.01  # jitter is live


class FakeADR:
    def __init__(self, metric):
        self.metric = metric
        self.ended = []

    def before_reset(self, ids):
        pass

    def seed(self, i, seed):
        pass

    def stats(self):
        return {}

    def on_episode_end(self, ids, metrics):
        self.ended.append((ids.tolist(), metrics.tolist()))


@pytest.mark.parametrize("metric", ["return", "x_position", "nope"])
def test_episode_end_reports_the_adr_metric(metric):
    env = wrap(gym.make(HOPPER, max_episode_steps=3), "none")
    env.stack.adr = FakeADR(metric)
    env.reset(seed=0)
    total = 0.0
    for a in actions(env, 3)[:2]:
        total += env.step(a)[1]
    assert env.stack.adr.ended == []
    if metric == "nope":
        with pytest.raises(RandomizationError, match="no key 'nope'"):
            env.step(actions(env, 1)[0])
        return
    _, r, _, truncated, info = env.step(actions(env, 1)[0])
    assert truncated
    expected = total + r if metric == "return" else info[metric]
    assert env.stack.adr.ended == [([0], [pytest.approx(expected)])]


def test_binding_errors():
    with pytest.raises(TypeError, match="not a MuJoCo env"):
        wrap(gym.make("CartPole-v1"), "none")
    with pytest.raises(RandomizationError, match="no observation key 'joints' \\(keys: position, velocity\\)"):
        wrap(gym.make(CARTPOLE), spec(entry("n", {"observation": "joints"}, const(0.0), "add")))
    with pytest.raises(RandomizationError, match="no object of 'body_mass' matches"):
        wrap(gym.make(HOPPER), spec(entry("m", {"field": "body_mass", "names": ["pole*"]}, const(1.0), "scale")))


def test_wrapped_env_passes_gymnasium_checker_and_can_be_remade():
    from gymnasium.utils.env_checker import check_env

    env = wrap(gym.make(CARTPOLE), "dmc_cartpole")
    with pytest.warns(UserWarning):  # "different from the unwrapped version", infinite bounds: expected
        check_env(env, skip_render_check=True)
    remade = env.spec.make()
    assert isinstance(remade, RandomizedEnv) and remade.stack.names == env.stack.names


def test_close_puts_the_model_back():
    import simreal.randomize

    assert simreal.randomize.wrap is wrap
    env = wrap(gym.make(HOPPER), stacked(HOPPER))
    before = snapshot(env.sim.model)
    env.reset(seed=0)
    env.step(actions(env, 1)[0])
    assert not np.array_equal(env.sim.model.body_mass, before["body_mass"])
    env.close()
    after = snapshot(env.sim.model)
    for f, v in before.items():
        np.testing.assert_array_equal(after[f], v, err_msg=f)
    np.testing.assert_array_equal(env.sim.data.xfrc_applied, 0.0)


def test_adr_widens_on_a_gymnasium_env():
    s = parse_spec({
        "adr": {"metric": "return", "thresholds": [-1e9, -1e9], "buffer_size": 1, "boundary_probability": 1.0},
        "randomizers": [dict(mass(HOPPER), distribution={"type": "uniform", "low": 1.0, "high": 1.0},
                             adr={"step": 0.1, "limits": [0.5, 1.5]})]}, "adr.yaml")
    env = wrap(gym.make(HOPPER, max_episode_steps=2), s)
    _, info = env.reset(seed=0)
    assert info["adr"]["adr/mass/high"] == 1.0
    for _ in range(12):
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
        _, info = env.reset()
    lo, hi = info["adr"]["adr/mass/low"], info["adr"]["adr/mass/high"]
    assert 0.5 <= lo < 1.0 < hi <= 1.5
    assert info["adr"]["adr/updates"] == round((1.0 - lo) / 0.1) + round((hi - 1.0) / 0.1)


def test_visual_randomization_changes_a_wrapped_env_render_and_leaves_the_model_nominal():
    from simreal.training.envs import gym_make

    def make(visual):
        env = gym_make(CARTPOLE, (32, 32), {})
        return wrap(env, parse_spec({"randomizers": [], "visual": visual}, "vis.yaml"), seed=0)

    nominal = make([])
    nominal.reset(seed=3)
    base = nominal.render()
    colors = [entry("colors", {"field": "geom_rgba", "columns": [0, 1, 2]}, {"type": "uniform", "low": 0.0,
                                                                              "high": 1.0}, "set", per_element=True),
              entry("lights", {"visual": "light_intensity"}, {"type": "uniform", "low": 2.0, "high": 3.0}, "set"),
              entry("bright", {"image": "brightness"}, const(0.1), "set")]
    env = make(colors)
    env.reset(seed=3)
    rgba, cam = env.sim.model.geom_rgba.copy(), env.sim.data.cam_xpos.copy()
    frame = env.render()
    assert frame.shape == base.shape and np.abs(frame.astype(int) - base.astype(int)).mean() > 5
    np.testing.assert_array_equal(env.sim.model.geom_rgba, rgba)  # the model is nominal again after the render
    np.testing.assert_array_equal(env.sim.data.cam_xpos, cam)
    np.testing.assert_array_equal(env.render(), frame)  # the same episode draws the same values
    env.reset(seed=4)
    assert np.abs(env.render().astype(int) - frame.astype(int)).mean() > 0  # a new episode, new colors
    texture = entry("tex", {"visual": "texture", "names": ["grid"]}, {"type": "uniform", "low": 0.5, "high": 1.0}, "set")
    with pytest.raises(RandomizationError, match=r"visual\[0\] \(tex\)\.target: textures cannot be randomized on a wrapped"):
        make([texture])
