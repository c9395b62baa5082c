"""Randomization files that used to pass `check`: numbers, loading limits and physical domains."""

import time

import pytest
import yaml

from simreal.randomize import RandomizationError, load_spec, parse_spec
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
