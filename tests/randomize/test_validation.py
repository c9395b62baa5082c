"""Randomization files that used to pass `check`: numbers, loading limits and physical domains."""

import time

import numpy as np
import pytest
import yaml

from simreal.randomize import RandomizationError, load_spec, parse_spec, physics
from simreal.randomize import spec as spec_module


def write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def entry(target="{field: body_mass, names: [object]}", dist="{type: uniform, low: 0.5, high: 1.5}",
          op="scale", extra=""):
    return (f"version: 1\nrandomizers:\n  - name: x\n    target: {target}\n    distribution: {dist}\n"
            f"    operation: {op}\n{extra}")


def one_line_error(path) -> str:
    with pytest.raises(RandomizationError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path.resolve())), message
    return message


# ------------------------------------------------------------------ numbers
NOT_NUMBERS = [
    (entry(dist="{type: uniform, low: .nan, high: 1.5}"), "distribution.low: Input should be a finite number"),
    (entry(dist="{type: normal, std: .inf}"), "distribution.std: Input should be a finite number"),
    (entry(dist="{type: uniform, low: 0.5, high: 1e400}"), "distribution.high: Input should be a finite number"),
    (entry(dist="{type: uniform, low: 0.5, high: 1.0e400}"), "distribution.high: Input should be a finite number"),
    (entry(dist="{type: constant, value: -.inf}"), "distribution.value: Input should be a finite number"),
    (entry(dist="{type: truncnormal, std: 1, low: -.inf, high: 1}"), "distribution.low: Input should be a finite"),
    (entry(dist="{type: choice, values: [1, .nan]}"), "distribution.values[1]: Input should be a finite number"),
    (entry(dist="{type: choice, values: [1, 2], weights: [1, .inf]}"), "distribution.weights[1]: Input should be"),
    (entry(dist="{type: normal, std: true}"), "distribution.std: Input should be a number, not a boolean"),
    (entry(dist="{type: uniform, low: yes, high: 2}"), "distribution.low: Input should be a number, not a boolean"),
    (entry(dist="{type: constant, value: false}"), "distribution.value: Input should be a number, not a boolean"),
    (entry(target="{field: geom_friction, columns: [true]}"), "target.columns[0]: Input should be a number, not a"),
    (entry(extra="    resample: {every_n_steps: true}\n"), "resample.every_n_steps: Input should be a number, not"),
    (entry(extra="    adr: {step: .nan, limits: [0, 2]}\n"), "adr.step: Input should be a finite number"),
    (entry(extra="    adr: {step: 0.1, limits: [-.inf, 2]}\n"), "adr.limits[0]: Input should be a finite number"),
    ("adr: {thresholds: [0, .inf]}\nrandomizers: []\n", "adr.thresholds[1]: Input should be a finite number"),
    ("adr: {thresholds: [0, 1], buffer_size: true}\nrandomizers: []\n", "adr.buffer_size: Input should be a number"),
    ("version: true\nrandomizers: []\n", "version: Input should be a number, not a boolean"),
    ("visual:\n  - name: v\n    target: {visual: light_position, center: [0, .nan, 0]}\n"
     "    distribution: {type: constant, value: 1}\n    operation: set\n", "target.center[1]: Input should be a"),
    # finite bounds whose samples are not
    (entry(dist="{type: uniform, low: -1.0e308, high: 1.0e308}"), "distribution: the width high - low overflows"),
    (entry(dist="{type: normal, std: 1.0e307}", op="add"), "distribution: samples overflow"),
    (entry(dist="{type: choice, values: [1, 2], weights: [1.0e308, 1.0e308]}"), "positive, finite sum"),
]


@pytest.mark.parametrize("text, fragment", NOT_NUMBERS)
def test_non_finite_numbers_and_booleans_are_refused(tmp_path, text, fragment):
    assert fragment in one_line_error(write(tmp_path, text))


def test_numbers_from_python_are_checked_the_same_way():
    good = {"name": "m", "target": {"field": "body_mass"}, "operation": "scale"}
    for dist in ({"type": "uniform", "low": float("nan"), "high": 1.0}, {"type": "normal", "std": True},
                 {"type": "constant", "value": 10 ** 400}, {"type": "constant", "value": "inf"}):
        with pytest.raises(RandomizationError, match=r"^f\.yaml: randomizers\[0\] \(m\)\.distribution"):
            parse_spec({"randomizers": [dict(good, distribution=dist)]}, "f.yaml")
    # YAML reads 1e-3 (no dot) as a string: it stays a valid number
    spec = parse_spec({"randomizers": [dict(good, distribution={"type": "constant", "value": "1e-3"})]})
    assert spec.randomizers[0].distribution.value == 1e-3


@pytest.mark.parametrize("target, fragment", [
    ("{field: body_mass, names: [object, 'robot0:*', object]}",
     "target.names: duplicate name 'object' (entries 0 and 2)"),
    ("{effect: backlash, param: width, names: [a, a]}", "target.names: duplicate name 'a'"),
    ("{action: [a, b, b]}", "target.action: duplicate name 'b' (entries 1 and 2)"),
])
def test_duplicate_names_in_a_target_are_refused(tmp_path, target, fragment):
    assert fragment in one_line_error(write(tmp_path, entry(target=target)))


# ------------------------------------------------------------------ loading
@pytest.mark.parametrize("text", ["", "\n  \n", "# only a comment\n", "---\n", "---\n...\n"])
def test_empty_file_says_it_is_empty(tmp_path, text):
    path = write(tmp_path, text)
    assert one_line_error(path) == f"{path.resolve()}: the file is empty"


def test_non_utf8_file_names_the_file(tmp_path):
    path = write(tmp_path, entry().replace("name: x", "name: caf\xe9").encode("latin-1"))
    message = one_line_error(path)
    assert ":3: not UTF-8 text (byte 0xe9" in message


def test_control_characters_are_one_line(tmp_path):
    assert "invalid YAML" in one_line_error(write(tmp_path, "randomizers: [\x00]\n"))


@pytest.mark.parametrize("loader", ["default", "pure-python"])
def test_deep_nesting_is_one_line(tmp_path, monkeypatch, loader):
    if loader == "pure-python":  # the bound of our own scan, not only libyaml's
        monkeypatch.setattr(spec_module, "_YAML_LOADER", yaml.SafeLoader)
    for text in ("randomizers: " + "[" * 20000 + "]" * 20000 + "\n",
                 "randomizers:\n" + "".join("  " * i + "-\n" for i in range(1, 200))):
        message = one_line_error(write(tmp_path, text))
        assert "nest" in message, message
    assert spec_module.MAX_DEPTH >= 8  # room for the format's own 6 levels
    assert load_spec(write(tmp_path, entry(), "ok.yaml")).randomizers[0].name == "x"


def test_duplicate_columns_are_refused_fast(tmp_path):
    columns = ", ".join(["0"] * 200_000)
    path = write(tmp_path, entry(target=f"{{field: geom_friction, names: [object], columns: [{columns}]}}"))
    t0 = time.perf_counter()
    message = one_line_error(path)
    assert time.perf_counter() - t0 < 0.5
    assert message.endswith("randomizers[0] (x).target.columns: duplicate column 0 (entries 0 and 1)")
    # the same from Python data, and in block style
    good = {"name": "m", "target": {"field": "geom_friction", "columns": [0, 2, 0]},
            "distribution": {"type": "constant", "value": 1}, "operation": "scale"}
    with pytest.raises(RandomizationError, match=r"target\.columns: duplicate column 0 \(entries 0 and 2\)"):
        parse_spec({"randomizers": [good]})
    block = write(tmp_path, entry(target="\n      field: geom_friction\n      columns:\n        - 1\n        - 1"))
    assert "target.columns: duplicate column 1 (entries 0 and 1)" in one_line_error(block)


# ------------------------------------------------------------------ physical domains at bind time
@pytest.fixture(scope="module")
def hand():
    from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim

    return HandCubeSim(1, HandCubeConfig(settle_time=0.0))


def bind(hand, target, dist, op, **more):
    from simreal.randomize.stack import RandomizationStack

    data = {"randomizers": [dict({"name": "x", "target": target, "distribution": dist, "operation": op}, **more)]}
    if "adr" in more:
        data["adr"] = {"thresholds": [0, 1]}
    return RandomizationStack(parse_spec(data, "f.yaml"), hand, hand.observation_space())


def const(v):
    return {"type": "constant", "value": v}


OBJECT = {"field": "body_mass", "names": ["object"]}
OUT_OF_DOMAIN = [
    (OBJECT, const(-1.0), "scale", "scale -1 on body_mass gives 'object' a mass of -0.0943346, nominal 0.0943346; "
                                   "expected above MuJoCo's mjMINVAL (1e-15)"),
    (OBJECT, const(1e-9), "scale", "expected at least 1/1000 of nominal (a mass stays within a factor 1000"),
    (OBJECT, const(1e-20), "set", "expected above MuJoCo's mjMINVAL"),
    (OBJECT, {"type": "uniform", "low": 1.0, "high": 2000.0}, "scale", "scale 1..2000 on body_mass gives 'object' a "
                                                                      "mass of 188.669"),
    (OBJECT, {"type": "normal", "mean": 1.0, "std": 0.1}, "scale", "a normal with std 0.1 has no bounds"),
    ({"field": "opt.timestep"}, const(1e9), "scale", "scale 1e+09 on opt.timestep gives a timestep of 2e+06, nominal "
                                                     "0.002; expected at most 1000x nominal"),
    ({"field": "opt.timestep"}, {"type": "uniform", "low": -0.1, "high": 1.0}, "scale", "mjMINVAL"),
    ({"field": "jnt_range", "names": ["robot0:*"]}, const(-100.0), "scale",
     "scale -100 on jnt_range scales joint limits by -100; expected factors > 0"),
    ({"field": "jnt_range", "names": ["robot0:*"], "columns": [0]}, const(10.0), "add",
     "add 10 on jnt_range moves the lower limit of 'robot0:WRJ1' to 9.511, above its upper limit 0.14; "
     "expected lower <= upper"),
    ({"field": "jnt_range", "names": ["robot0:*"], "columns": [1]}, {"type": "normal", "std": 0.01}, "add",
     "a normal with std 0.01 has no bounds"),
    ({"field": "dof_damping"}, {"type": "uniform", "low": -1.0, "high": 1.0}, "scale", "expected >= 0"),
    ({"field": "dof_frictionloss"}, const(-0.1), "set", "a friction loss of -0.1"),
    ({"field": "geom_friction", "columns": [0]}, const(-2.0), "add", "a friction of -1 (column 0)"),
    ({"field": "actuator_gainprm", "columns": [0]}, const(-1.0), "scale", "> 0 (the sign of its nominal value)"),
    ({"field": "geom_size", "names": ["object"]}, const(0.0), "scale", "a size of 0"),
    ({"field": "body_inertia", "names": ["object"], "columns": [0]}, const(10.0), "scale", "expected A + B >= C"),
    ({"field": "geom_solimp", "columns": [0]}, const(2.0), "set", "within [0, 1]"),
]


@pytest.mark.parametrize("target, dist, op, fragment", OUT_OF_DOMAIN)
def test_out_of_domain_physics_fails_at_bind_time(hand, target, dist, op, fragment):
    with pytest.raises(RandomizationError) as err:
        bind(hand, target, dist, op)
    message = str(err.value)
    assert message.startswith("f.yaml: randomizers[0] (x).distribution: ") and "\n" not in message
    assert fragment in message, message


def test_mass_scale_checks_the_inertia_that_follows(hand):
    MJMINVAL = physics.MJMINVAL
    body = hand.model.body("object").id
    factor = 0.5 * MJMINVAL / hand.model.body_inertia[body].min()  # mass above mjMINVAL, inertia below
    assert factor * hand.model.body_mass[body] > MJMINVAL
    expected = r"principal inertia of 5e-16 \(the inertia follows the mass\); expected above MuJoCo's mjMINVAL"
    with pytest.raises(RandomizationError, match=expected):
        bind(hand, {"field": "body_mass", "names": ["object"]}, const(factor * hand.model.body_mass[body]), "set")


def test_adr_limits_are_the_range_checked(hand):
    with pytest.raises(RandomizationError, match=r"\(x\)\.adr\.limits: scale 0\.\.1\.5 on body_mass"):
        bind(hand, OBJECT, {"type": "uniform", "low": 1.0, "high": 1.0}, "scale",
             adr={"step": 0.1, "limits": [0.0, 1.5]})


@pytest.mark.parametrize("target, dist, op, per_element", [
    (OBJECT, {"type": "truncnormal", "mean": 1, "std": 0.1, "low": 0.5, "high": 1.5}, "scale", False),
    ({"field": "body_mass"}, {"type": "uniform", "low": 1e-3, "high": 1e3}, "scale", True),  # PLAUSIBLE_FACTOR
    ({"field": "jnt_range", "names": ["robot0:*"]}, {"type": "normal", "std": 0.15}, "add", True),  # sorted per joint
    ({"field": "dof_damping"}, const(0.0), "scale", False),   # no damping is allowed, negative is not
    ({"field": "opt.gravity"}, {"type": "normal", "std": 0.4}, "add", True),  # no domain
    ({"field": "body_inertia", "names": ["object"]}, {"type": "uniform", "low": 0.5, "high": 2}, "scale", False),
])
def test_in_domain_physics_binds(hand, target, dist, op, per_element):
    stack = bind(hand, target, dist, op, per_element=per_element)
    stack.seed(0, 0)
    stack.on_reset(np.array([0]))
    stack.remove("x")


def test_jnt_range_listed_upper_first_stays_ordered(hand):
    stack = bind(hand, {"field": "jnt_range", "names": ["robot0:*"], "columns": [1, 0]},
                 {"type": "uniform", "low": -1.0, "high": 1.0}, "add", per_element=True)
    bound = stack["x"]
    for seed in range(5):
        stack.seed(0, seed)
        stack.on_reset(np.array([0]))
        upper, lower = bound.current(0).T
        assert np.all(lower <= upper)
    stack.remove("x")


def test_domain_table_names_model_fields(hand):
    import mujoco.batch

    assert physics.PLAUSIBLE_FACTOR == 1e3
    for field, domain in physics.FIELD_DOMAINS.items():
        assert domain.rule in ("positive", "nonnegative", "sign", "unit", "ordered"), field
        if hasattr(hand.model, field) or field.startswith("opt."):
            assert field in mujoco.batch.MODEL_FIELDS, field


def test_hand_realities_bind():
    from simreal.registration import bind_to_env
    from simreal.rigs.sim import list_realities, load_reality

    names = [n for n in list_realities() if n.startswith("hand")]
    assert names
    for name in names:
        stack = bind_to_env(load_reality(name).spec, "simreal/HandCube-v0")
        stack.seed(0, 0)
        stack.on_reset(np.array([0]))
