import numpy as np
import pytest

from simreal.envs.hand_cube import HandCubeEnv
from simreal.envs.policies import HoldPolicy
from simreal.envs.vec_env import HandCubeVecEnv
from simreal.randomize import RandomizationError, parse_spec


def spec(*entries):
    return parse_spec({"randomizers": list(entries)}, "test.yaml")


def entry(name, target, dist, op, **kw):
    return dict(name=name, target=target, distribution=dist, operation=op, **kw)


MASS = entry("object_mass", {"field": "body_mass", "names": ["object"]}, {"type": "uniform", "low": 0.5, "high": 1.5},
             "scale")


def test_none_yaml_keeps_nominal_values():
    env = HandCubeEnv(randomization="randomizations/none.yaml")
    nominal = env.model.body_mass.copy()
    obs, info = env.reset(seed=0)
    assert info["randomization"] == {}
    np.testing.assert_array_equal(env.sim.batch.get_model(0).body_mass, nominal)


def test_thousand_resets_never_compound():
    env = HandCubeEnv(randomization=spec(MASS), settle_time=0.0)
    obj = env.model.body("object").id
    nominal_mass, nominal_inertia = env.model.body_mass[obj], env.model.body_inertia[obj].copy()
    env.reset(seed=0)
    seen = []
    for _ in range(1000):
        env.reset()
        m = env.sim.batch.expand("body_mass")[0, obj]
        seen.append(m / nominal_mass)
        assert env.sim.randomization.info(0)["object_mass"] == pytest.approx(m / nominal_mass)
    seen = np.array(seen)
    assert seen.min() >= 0.5 and seen.max() <= 1.5 and abs(seen.mean() - 1.0) < 0.03
    env.sim.randomization.set_fixed({"object_mass": 1.0})
    env.reset()
    assert env.sim.batch.expand("body_mass")[0, obj] == nominal_mass
    np.testing.assert_array_equal(env.sim.batch.expand("body_inertia")[0, obj], nominal_inertia)


@pytest.mark.parametrize("op, value, expected", [("set", 0.2, 0.2), ("scale", 2.0, 2.0 * 0.0943346),
                                                  ("add", 0.1, 0.0943346 + 0.1)])
def test_operations_apply_to_nominal(op, value, expected):
    env = HandCubeEnv(randomization=spec(entry("m", {"field": "body_mass", "names": ["object"]},
                                               {"type": "constant", "value": value}, op)), settle_time=0.0)
    obj = env.model.body("object").id
    for _ in range(3):
        env.reset(seed=0)
        assert env.sim.batch.expand("body_mass")[0, obj] == pytest.approx(expected, rel=1e-5)


def test_derived_quantities_follow():
    s = spec(MASS, entry("size", {"field": "geom_size", "names": ["object"]}, {"type": "constant", "value": 1.2}, "scale"),
             entry("kp", {"field": "actuator_gainprm", "columns": [0]}, {"type": "constant", "value": 2.0}, "scale"))
    env = HandCubeEnv(randomization=s)
    env.reset(seed=1)
    m, b = env.model, env.sim.batch
    obj, geom = m.body("object").id, m.geom("object").id
    ratio = b.expand("body_mass")[0, obj] / m.body_mass[obj]
    np.testing.assert_allclose(b.expand("body_inertia")[0, obj], m.body_inertia[obj] * ratio)
    np.testing.assert_allclose(b.expand("geom_size")[0, geom], m.geom_size[geom] * 1.2)
    assert b.expand("geom_rbound")[0, geom] == pytest.approx(np.linalg.norm(m.geom_size[geom] * 1.2))
    np.testing.assert_allclose(b.expand("actuator_biasprm")[0, :, 1], -2.0 * m.actuator_gainprm[:, 0])
    model0 = b.get_model(0)
    assert model0.body_subtreemass[obj] == pytest.approx(b.expand("body_mass")[0, obj])  # set_const ran


def test_same_seed_same_samples_and_streams_are_independent():
    def values(s, seed):
        env = HandCubeEnv(randomization=s, settle_time=0.0)
        env.reset(seed=seed)
        return [env.sim.randomization.info(0)["object_mass"] for _ in range(1) for _ in [env.reset()]]

    a, b = values(spec(MASS), 3), values(spec(MASS), 3)
    assert a == b
    gravity = entry("gravity", {"field": "opt.gravity"}, {"type": "normal", "std": 0.4}, "add", per_element=True)
    assert values(spec(gravity, MASS), 3) == a  # another randomizer does not shift this one's stream
    assert values(spec(MASS), 4) != a


def test_dactyl_stack_is_deterministic_by_seed():
    def run(seed):
        env = HandCubeEnv(randomization="randomizations/dactyl.yaml")
        obs, info = env.reset(seed=seed)
        policy = HoldPolicy(env.sim, noise=0.2, seed=0)
        for _ in range(10):
            obs, *_ = env.step(policy(obs))
        return info["randomization"], obs["state"]

    (ia, sa), (ib, sb) = run(5), run(5)
    assert ia == ib
    np.testing.assert_array_equal(sa, sb)


def test_vec_env_copies_sample_their_own_parameters():
    venv = HandCubeVecEnv(3, nthread=2, randomization=spec(MASS))
    venv.seed(0)
    venv.reset()
    masses = [info["randomization"]["object_mass"] for info in venv.reset_infos]
    assert len(set(masses)) == 3
    obj = venv.sim.model.body("object").id
    np.testing.assert_allclose(venv.sim.batch.expand("body_mass")[:, obj] / venv.sim.model.body_mass[obj], masses)


def test_observation_noise_correlated_and_uncorrelated():
    corr = entry("pos_bias", {"observation": "object_pos"}, {"type": "normal", "std": 0.01}, "add", per_element=True)
    unc = entry("pos_jitter", {"observation": "fingertip_pos"}, {"type": "normal", "std": 0.002}, "add",
                per_element=True, resample="step")
    env = HandCubeEnv(randomization=spec(corr, unc))
    clean = HandCubeEnv()
    obs, _ = env.reset(seed=2)
    cobs, _ = clean.reset(seed=2)
    policy = HoldPolicy(env.sim)
    biases, jitters = [], []
    for _ in range(5):
        biases.append(obs["object_pos"] - cobs["object_pos"])
        jitters.append(obs["fingertip_pos"] - cobs["fingertip_pos"])
        np.testing.assert_array_equal(obs["state"], cobs["state"])  # the critic's state stays clean
        a = policy(cobs)
        obs, *_ = env.step(a)
        cobs, *_ = clean.step(a)
    np.testing.assert_allclose(biases, np.repeat(biases[:1], 5, axis=0), atol=1e-6)
    assert np.abs(biases[0]).max() > 1e-4
    assert np.std(np.array(jitters)[:, 0]) > 1e-4


def test_action_noise_keeps_commands_in_range():
    noise = entry("act", {"action": "all"}, {"type": "normal", "std": 2.0}, "add", per_element=True, resample="step")
    env = HandCubeEnv(randomization=spec(noise))
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(np.ones(20, np.float32))
        assert np.all(env.sim.ctrl[0] >= env.sim.ctrl_low) and np.all(env.sim.ctrl[0] <= env.sim.ctrl_high)
        np.testing.assert_array_equal(obs["last_action"], 1.0)


@pytest.mark.parametrize("target, fragment", [
    ({"field": "body_mas"}, "did you mean 'body_mass'"),
    ({"field": "body_mass", "names": ["nothing*"]}, "no object of 'body_mass' matches"),
    ({"field": "geom_friction", "columns": [5]}, "has 3 columns"),
    ({"observation": "state"}, "privileged state"),
    ({"observation": "joint_pos"}, "no observation key 'joint_pos'"),
    ({"action": ["robot0:A_XX*"]}, "no actuator matches"),
])
def test_binding_errors_name_the_key(target, fragment):
    with pytest.raises(RandomizationError) as err:
        HandCubeEnv(randomization=spec(entry("r", target, {"type": "constant", "value": 1.0}, "scale")))
    assert fragment in str(err.value) and "randomizers[0] (r).target" in str(err.value)


def test_overlapping_randomizers_are_rejected_and_stack_is_editable():
    env = HandCubeEnv(randomization=spec(MASS))
    stack = env.sim.randomization
    with pytest.raises(RandomizationError, match="overlaps"):
        stack.insert(1, spec(dict(MASS, name="again")).randomizers[0])
    gravity = spec(entry("gravity", {"field": "opt.gravity"}, {"type": "constant", "value": 1.0}, "add")).randomizers[0]
    stack.insert(0, gravity)
    assert stack.names == ["gravity", "object_mass"]
    env.reset(seed=0)
    assert env.sim.batch.expand("opt.gravity")[0, 2] == pytest.approx(-9.81 + 1.0)
    stack.remove("gravity")
    assert env.sim.batch.expand("opt.gravity")[0, 2] == pytest.approx(-9.81)
    assert "object_mass" in stack.describe()
