"""Simulated rigs: shipped realities load, differ from nominal physics as claimed, and are deterministic."""

import numpy as np
import pytest

from simreal.randomize.wrappers import find_mujoco
from simreal.rigs import open_rig
from simreal.rigs.base import RigError
from simreal.rigs.sim import SimulatedRig, list_realities, load_reality

CARTPOLE = "dm_control/cartpole-swingup-v0"
HAND = "simreal/HandCube-v0"


def _model(rig: SimulatedRig):
    return rig.env.sim.model if rig.sim is not None else find_mujoco(rig.env)[0]


def _field(rig: SimulatedRig, name: str) -> np.ndarray:
    """The rig's current value of a model field (the hand keeps per-copy values in its mujoco.batch)."""
    return rig.env.sim.batch.expand(name)[0] if rig.sim is not None else getattr(_model(rig), name)


def _response(rig: SimulatedRig, pulse: np.ndarray, steps: int, key: str) -> np.ndarray:
    """Per step, the largest difference of the true state between a one-step action pulse and no action."""
    runs = []
    for first in (np.zeros_like(pulse), pulse):
        rig.reset(seed=3)
        states = []
        for t in range(steps):
            rig.step(first if t == 0 else np.zeros_like(pulse))
            states.append(rig._sim_state()[key].copy())
        runs.append(np.array(states))
    return np.abs(runs[1] - runs[0]).max(axis=1)


def test_shipped_realities():
    names = list_realities()
    for required in ("hand_nominal", "hand_heavy_slippery", "hand_laggy", "cartpole_heavy_pole", "cartpole_laggy"):
        assert required in names
    for name in names:
        reality = load_reality(name)
        assert reality.description and reality.envs
        for r in reality.spec.enabled():  # physics and effects are fixed values
            if r.family in ("physics", "effect"):
                assert r.distribution.type == "constant", (name, r.name)


def test_cartpole_heavy_pole_has_the_claimed_physics():
    nominal = SimulatedRig(None, env_id=CARTPOLE)
    heavy = SimulatedRig("cartpole_heavy_pole")
    nominal.reset(seed=0)
    heavy.reset(seed=0)
    m0, m1 = _model(nominal), _model(heavy)
    pole, cart, slider = m0.body("pole_1").id, m0.body("cart").id, m0.joint("slider").dofadr[0]
    assert m1.body_mass[pole] == pytest.approx(2.0 * m0.body_mass[pole])
    assert m1.body_mass[cart] == pytest.approx(1.5 * m0.body_mass[cart])
    assert m1.dof_frictionloss[slider] == pytest.approx(0.3)
    assert np.allclose(m1.dof_damping, 3.0 * m0.dof_damping)
    assert m1.actuator_gainprm[0, 0] == pytest.approx(0.75 * m0.actuator_gainprm[0, 0])
    # a full-force pulse: the cart's velocity change scales with gain / (cart + pole mass),
    # 0.75 * 1.1 / 1.7 = 0.485 of nominal, a little less with the rail friction
    ratio = _response(heavy, np.ones(1), 1, "qvel")[0] / _response(nominal, np.ones(1), 1, "qvel")[0]
    assert 0.44 < ratio < 0.49
    nominal.close()
    heavy.close()


def test_laggy_realities_delay_commands_as_claimed():
    pulse = np.ones(1)
    assert _response(SimulatedRig("cartpole_nominal"), pulse, 6, "qvel")[0] > 0.05
    lag = _response(SimulatedRig("cartpole_laggy"), pulse, 6, "qvel")
    assert np.all(lag[:4] == 0.0) and lag[4] > 0.05  # 40 ms = 4 control steps of 10 ms
    hand_pulse = np.zeros(20, np.float32)
    hand_pulse[5] = 1.0
    assert _response(SimulatedRig(None, env_id=HAND), hand_pulse, 2, "qpos")[0] > 0.05
    hand_lag = _response(SimulatedRig("hand_laggy"), hand_pulse, 2, "qpos")
    assert hand_lag[0] == 0.0 and hand_lag[1] > 0.05  # 120 ms: nothing moves in the first 80 ms step


def test_sensor_noise_has_the_claimed_size():
    for name, std in (("cartpole_nominal", 0.005), ("cartpole_laggy", 0.01)):
        rig = SimulatedRig(name)
        obs, _ = rig.reset(seed=1)
        errors = []
        for _ in range(300):
            obs, *_ = rig.step(np.zeros(1))
            qpos = rig._sim_state()["qpos"]
            truth = np.array([qpos[0], np.cos(qpos[1]), np.sin(qpos[1])])
            errors.append(obs["position"] - truth)
        assert np.std(errors) == pytest.approx(std, rel=0.12), name
        rig.close()
    rig = SimulatedRig("hand_laggy")
    obs, _ = rig.reset(seed=1)
    layout = rig.env.state_layout["object_pos"]
    errors = []
    for _ in range(60):
        obs, _, terminated, truncated, _ = rig.step(np.zeros(20))
        errors.append(obs["object_pos"] - obs["state"][layout])  # the privileged state stays clean
        if terminated or truncated:
            obs, _ = rig.reset()
    assert np.std(errors) == pytest.approx(0.002, rel=0.2)


def test_hand_heavy_slippery_has_the_claimed_physics():
    nominal = SimulatedRig(None, env_id=HAND)
    rig = SimulatedRig("hand_heavy_slippery")
    nominal.reset(seed=0)
    rig.reset(seed=0)
    m0 = _model(nominal)
    obj = m0.body("object").id
    geom = m0.geom("object").id
    pads = [i for i in range(m0.ngeom) if m0.geom(i).name.startswith("robot0:C_")]
    hand_dofs = [m0.joint(j).dofadr[0] for j in range(m0.njnt) if m0.joint(j).name.startswith("robot0:")]

    def ratio(field):
        return _field(rig, field) / np.where(_field(nominal, field) == 0, 1.0, _field(nominal, field))

    assert ratio("body_mass")[obj] == pytest.approx(1.6)
    assert ratio("geom_size")[geom] == pytest.approx(1.05)
    assert ratio("geom_friction")[geom, 0] == pytest.approx(0.6)
    assert np.allclose(ratio("geom_friction")[pads, 0], 0.7)
    assert np.allclose(ratio("dof_damping")[hand_dofs], 3.0)
    assert np.allclose(ratio("actuator_gainprm")[:, 0], 0.75)
    assert ratio("body_mass")[m0.body("robot0:palm").id] == 1.0  # the hand's masses stay nominal
    reality = rig.info().extra["reality"]
    assert {r["name"] for r in reality["randomizers"]} >= {"object_mass", "object_friction", "action_delay"}


def test_same_seed_same_episode():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (40, 20)).astype(np.float32)
    runs = []
    for _ in range(2):
        rig = SimulatedRig("hand_laggy", seed=7)
        obs, _ = rig.reset()
        assert rig.episode_seed == 7
        trajectory = [obs["object_quat"]]
        for a in actions:
            obs, _, terminated, truncated, _ = rig.step(a * 0.2)
            trajectory.append(obs["object_quat"])
            assert rig.info().name == "sim:hand_laggy"  # info mid-episode: no side effects
            if terminated or truncated:
                break
        runs.append(np.array(trajectory))
        rig.close()
    assert np.array_equal(runs[0], runs[1])
    other = SimulatedRig("hand_laggy", seed=8)
    obs, _ = other.reset()
    assert not np.array_equal(obs["object_quat"], runs[0][0])


def test_reality_files_are_validated(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rig: {envs: [dm_control/cartpole-swingup-v0]}\nversion: 1\nrandomizers:\n"
                   "  - name: pole_mass\n    target: {field: body_mass, names: [pole_1]}\n"
                   "    distribution: {type: uniform, low: 1.5, high: 2.0}\n    operation: scale\n")
    with pytest.raises(RigError, match=r"bad.yaml: randomizers\[0\] \(pole_mass\).distribution: a reality fixes"):
        load_reality(bad)
    bad.write_text("rig: {envs: [x], speed: 3}\nrandomizers: []\n")
    with pytest.raises(RigError, match=r"rig.speed: unknown key"):
        load_reality(bad)
    bad.write_text("version: 1\nrandomizers: []\n")
    with pytest.raises(RigError, match=r"rig: required mapping"):
        load_reality(bad)
    bad.write_text("rig: {envs: [x]}\nextends: [dactyl]\nrandomizers: []\n")
    with pytest.raises(RigError, match="extends: not allowed"):
        load_reality(bad)
    bad.write_text("rig: {envs: [x]}\nrandomizers:\n  - {name: a, target: {field: body_mass}, operation: scale}\n")
    with pytest.raises(RigError, match=r"randomizers\[0\] \(a\).distribution: required key is missing"):
        load_reality(bad)
    with pytest.raises(RigError, match="shipped realities: cartpole_heavy_pole"):
        load_reality("no_such_reality")
    with pytest.raises(RigError, match="is for simreal/HandCube-v0; got env"):
        SimulatedRig("hand_laggy", env_id=CARTPOLE)


def test_open_rig_specs():
    rig = open_rig("sim:cartpole_laggy", env_id="dm_control/cartpole-balance-v0", action_repeat=2)
    assert rig.env_id == "dm_control/cartpole-balance-v0" and rig.control_dt == pytest.approx(0.02)
    assert rig.info().kind == "sim" and rig.name == "sim:cartpole_laggy"
    rig.close()
    rig = open_rig("nominal", env_id=CARTPOLE)
    assert rig.name == "sim:nominal" and rig.reality is None
    rig.close()
    with pytest.raises(RigError, match="needs an env"):
        open_rig("nominal")


def test_discrete_hand_actions_keep_the_limits(tmp_path):
    """Dactyl's 11 bins per actuator: the safe target goes out as a neighbouring bin within the limits."""
    from simreal.rigs import DatasetReader, record
    from simreal.rigs.base import SafetyConfig

    rig = SimulatedRig("hand_nominal", env_kwargs={"action": "discrete"}, safety=SafetyConfig(max_delta=0.3))
    record(rig, tmp_path / "ds")
    rig.reset(seed=0)
    for k in range(24):
        action = [np.full(20, np.nan), np.full(20, 10), np.full(20, -7), np.full(20, 1e9)][k % 4]
        _, _, terminated, truncated, _ = rig.step(action)
        if terminated or truncated:
            break
    rig.close()
    ep = DatasetReader(tmp_path / "ds")[0]
    low, high = rig.info().command_low, rig.info().command_high
    assert ep.actions.dtype == np.int64 and ep.actions.min() >= 0 and ep.actions.max() <= 10
    assert np.all(ep.commands >= np.array(low) - 1e-9) and np.all(ep.commands <= np.array(high) + 1e-9)
    reference = np.vstack([ep.sim_state["qpos"][0][rig.env.sim.act_qadr].clip(low, high), ep.commands])
    assert np.max(np.abs(np.diff(reference, axis=0))) <= 0.3 + 1e-9
    assert ep.safety["non_finite"][::4].all() and ep.safety["rate_limited"].sum() >= 6


@pytest.mark.parametrize("action,control", [("continuous", "relative"), ("discrete", "relative"),
                                            ("discrete", "absolute")])
def test_random_hand_actions_keep_the_rate_limit_and_the_joint_limits(tmp_path, action, control):
    """Whatever the policy outputs, the joint targets sent change by at most max_delta and stay in the limits;
    discrete targets are always a bin's own target (what the env really gets for the bin sent)."""
    from simreal.rigs import DatasetReader, record
    from simreal.rigs.base import SafetyConfig

    kwargs = {"action": action, "control": control}
    max_delta = 0.02
    if action == "discrete":  # each joint's bin spacing: the least allowed
        probe = SimulatedRig("hand_nominal", env_kwargs=kwargs)
        max_delta = tuple(probe._command_spacing())
        probe.close()
    rig = SimulatedRig("hand_nominal", env_kwargs=kwargs, safety=SafetyConfig(max_delta=max_delta))
    record(rig, tmp_path / "ds")
    rng = np.random.default_rng(7)
    steps = 0
    while steps < 120:
        rig.reset(seed=steps)
        while rig.episode_active and steps < 120:
            if action == "discrete":
                a = rng.integers(0, 11, 20) if steps % 9 else rng.choice([0, 10, -5, 99, np.nan], 20)
            else:
                a = rng.uniform(-1, 1, 20) if steps % 9 else rng.choice([-1e9, 1e9, 3.0, np.nan], 20)
            rig.step(a)
            steps += 1
        rig.end_episode()
    rig.close()
    low, high = np.array(rig.info().command_low), np.array(rig.info().command_high)
    limit = np.broadcast_to(np.asarray(max_delta), (20,))
    qadr, sim, n = rig.env.sim.act_qadr, rig.env.sim, 0
    reader = DatasetReader(tmp_path / "ds")
    for k in range(len(reader)):
        ep = reader[k]
        n += len(ep.commands)
        qpos = ep.sim_state["qpos"][:, qadr]
        assert np.all(ep.commands >= low - 1e-9) and np.all(ep.commands <= high + 1e-9)
        reference = np.vstack([qpos[0].clip(low, high), ep.commands])
        assert np.all(np.abs(np.diff(reference, axis=0)) <= limit + 1e-9)
        if action == "discrete":
            assert ep.actions.dtype == np.int64 and ep.actions.min() >= 0 and ep.actions.max() <= 10
            center = qpos[:-1] if control == "relative" else sim.ctrl_mid
            bins = np.clip(center + (ep.actions * 0.2 - 1.0) * sim.ctrl_half, sim.ctrl_low, sim.ctrl_high)
            assert np.allclose(ep.commands, bins, atol=1e-9)
    assert n == 120 and rig.safety_stats.rate_limited > 50


def test_discrete_hand_refuses_a_rate_limit_below_the_bin_spacing():
    from simreal.rigs.base import SafetyConfig

    # 11 bins over each joint's control range: 0.042 to 0.209 rad apart; 0.02 rad per step could never be kept
    with pytest.raises(ValueError, match=r"max_delta 0.02 is below the bin spacing .* at least 0.2094"):
        SimulatedRig("hand_nominal", env_kwargs={"action": "discrete"}, safety=SafetyConfig(max_delta=0.02))
    SimulatedRig("hand_nominal", env_kwargs={"action": "continuous"}, safety=SafetyConfig(max_delta=0.02)).close()


def test_a_hand_rig_serves_the_tiled_camera_image_of_pixel_agents():
    from simreal.rigs import open_rig

    rig = open_rig("sim:hand_laggy", pixels=(16, 16), pixels_only=True, env_kwargs={"settle_time": 0.0})
    obs, _ = rig.reset(seed=0)
    assert obs["image"].shape == (16, 16, 3) and "object_pos" not in obs
    obs, *_ = rig.step(np.zeros(20, np.float32))
    assert rig.observation_space.contains(obs)
    rig.close()


@pytest.mark.parametrize("content, expected", [(b"", "the file is empty"), (b"rig: \xff\n", "not UTF-8"),
                                               (b"rig: " + b"[" * 20000, "nesting depth")])
def test_a_reality_file_is_read_like_a_randomization_file(tmp_path, content, expected):
    from simreal.rigs import RigError
    from simreal.rigs.sim import load_reality

    path = tmp_path / "reality.yaml"
    path.write_bytes(content)
    with pytest.raises(RigError, match=expected) as info:
        load_reality(path)
    assert "\n" not in str(info.value)
