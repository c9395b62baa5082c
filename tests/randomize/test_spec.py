import json
import pathlib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from simreal.randomize import RandomizationError, json_schema, load_spec, parse_spec
from simreal.randomize.spec import SHIPPED_DIR

GOOD = {"name": "m", "target": {"field": "body_mass", "names": ["object"]},
        "distribution": {"type": "uniform", "low": 0.5, "high": 1.5}, "operation": "scale"}


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


BAD_FILES = [
    ("randomizers: [ {name: m, target: {field: body_mass}", "invalid YAML"),
    ("- 1\n- 2\n", "(top level)"),
    ({"randomizers": [dict(GOOD, distribution={"type": "uniform", "low": "abc", "high": 1})]},
     "randomizers[0] (m).distribution.low"),
    ({"randomizers": [dict(GOOD, target={"fild": "body_mass"})]}, "randomizers[0] (m).target"),
    ({"randomizers": [dict(GOOD, operation="multiply")]}, "randomizers[0] (m).operation"),
    ({"randomizers": [dict(GOOD, resample="often")]}, "randomizers[0] (m).resample"),
    ({"randomizers": [dict(GOOD, extra_key=1)]}, "randomizers[0] (m).extra_key: unknown key"),
    ({"randomizers": [GOOD, GOOD]}, "randomizers[1].name: duplicate name"),
    ({"randomizer": []}, "randomizer: unknown key"),
    ({"randomizers": [{k: v for k, v in GOOD.items() if k != "operation"}]}, "operation: required key is missing"),
    ({"extends": ["missing.yaml"], "randomizers": []}, "extends[0]: file 'missing.yaml' not found"),
    ({"remove": ["ghost"], "randomizers": []}, "remove[0]: no inherited randomizer named 'ghost'"),
    ({"randomizers": [dict(GOOD, target={"effect": "backlash", "param": "gap"})]},
     "randomizers[0] (m).target: effect 'backlash' has parameters width; got 'gap'"),
    ({"randomizers": [dict(GOOD, target={"effect": "wobble", "param": "x"})]}, "randomizers[0] (m).target.effect"),
    ({"randomizers": [dict(GOOD, adr={"step": 0.1, "limits": [0.5, 1.5]})]}, "needs the file-level 'adr' settings"),
    ({"adr": {"thresholds": [5, 1]}, "randomizers": []}, "adr: thresholds must be [low, high]"),
    ({"adr": {"thresholds": [1, 5]}, "randomizers": [dict(GOOD, adr={"step": 0.1, "limits": [0.9, 1.1]})]},
     "randomizers[0] (m): the initial range [0.5, 1.5] must lie inside adr.limits [0.9, 1.1]"),
    ({"adr": {"thresholds": [1, 5]}, "randomizers": [
        dict(GOOD, distribution={"type": "normal", "std": 1.0}, adr={"step": 0.1, "limits": [0.0, 2.0]})]},
     "adr needs a uniform distribution"),
]


@pytest.mark.parametrize("content, fragment", BAD_FILES)
def test_bad_files_fail_with_one_line_naming_file_and_key(tmp_path, content, fragment):
    path = write(tmp_path, "bad.yaml", content)
    with pytest.raises(RandomizationError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path.resolve()))
    assert fragment in message


def test_extends_overrides_by_name_and_removes(tmp_path):
    write(tmp_path, "base.yaml", {"randomizers": [GOOD, dict(GOOD, name="g", target={"field": "opt.gravity"},
                                                             operation="add")]})
    child = write(tmp_path, "child.yaml", {
        "extends": ["base.yaml"], "remove": ["g"],
        "randomizers": [dict(GOOD, distribution={"type": "constant", "value": 2.0}),
                        dict(GOOD, name="n", target={"observation": "object_pos"}, operation="add")]})
    spec = load_spec(child)
    assert [r.name for r in spec.randomizers] == ["m", "n"]
    assert spec.randomizers[0].distribution.type == "constant"
    assert spec.randomizers[1].family == "observation"


def test_circular_extends_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", {"extends": ["b.yaml"]})
    write(tmp_path, "b.yaml", {"extends": ["a.yaml"]})
    with pytest.raises(RandomizationError, match="circular include"):
        load_spec(tmp_path / "a.yaml")


def test_shipped_files_validate_and_resolve_by_bare_name():
    for path in SHIPPED_DIR.glob("*.yaml"):
        load_spec(path)
    assert load_spec("none").randomizers == []
    dactyl = load_spec("dactyl.yaml")
    families = [r.family for r in dactyl.enabled()]
    assert families.count("physics") == 8 and families.count("effect") == 8  # Table 1 + timing jitter
    assert families.count("action") == 3 and families.count("observation") == 6
    assert all(r.source for r in dactyl.randomizers)  # every value says where it comes from
    adr = {r.name: r for r in load_spec("dactyl_adr").adr_randomizers()}
    assert len(adr) == 22 and all(r.distribution.low == r.distribution.high for r in adr.values())  # from nominal
    # everything a state policy meets starts at nominal; only visuals and the force shape are inherited
    inherited = {r.name for r in dactyl.enabled()} - set(adr)
    assert inherited == {"marker_freeze_duration", "object_force_scale", "object_force_decay"}
    for r in dactyl.enabled():  # ADR grows a range Dactyl draws uniformly up to Dactyl's range, no further
        if r.name in adr and r.distribution.type == "uniform":
            assert list(adr[r.name].adr.limits) == [r.distribution.low, r.distribution.high]


def test_json_schema_describes_the_format():
    schema = json_schema()
    json.dumps(schema)
    assert "randomizers" in schema["properties"]
    assert schema["additionalProperties"] is False


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                    max_leaves=10))
def test_any_yaml_data_either_validates_or_fails_cleanly(data):
    try:
        parse_spec({"randomizers": [data]}, "fuzz.yaml")
    except RandomizationError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml: ")


@settings(max_examples=100, deadline=None)
@given(low=st.floats(-1e3, 1e3), width=st.floats(0, 1e3), op=st.sampled_from(["set", "scale", "add"]),
       per_element=st.booleans(), period=st.sampled_from(["episode", "step", {"every_n_steps": 3}]))
def test_valid_entries_round_trip(low, width, op, per_element, period):
    entry = dict(GOOD, distribution={"type": "uniform", "low": low, "high": low + width}, operation=op,
                 per_element=per_element, resample=period)
    spec = parse_spec({"randomizers": [entry]})
    again = parse_spec(json.loads(spec.model_dump_json()))
    assert again == spec
