"""`simreal randomization check | sample | schema`, run in-process."""

import csv
import json
import pathlib
import time

import numpy as np
import pytest
from scipy import stats

from simreal import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
DACTYL = str(ROOT / "randomizations" / "dactyl.yaml")
NONE = str(ROOT / "randomizations" / "none.yaml")


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def _one_line_error(capsys, argv):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert "Traceback" not in captured.err
    return err[0]


# ------------------------------------------------------------------ check
def test_check_shipped_files(capsys):
    assert cli.main(["randomization", "check", DACTYL]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("ok: ") and "dactyl.yaml" in out
    assert "25 randomizers (8 physics, 8 effect, 3 action, 6 observation), 1 disabled" in out
    assert "bound to simreal/HandCube-v0" in out

    assert cli.main(["randomization", "check", NONE]) == 0
    out = capsys.readouterr().out.strip()
    assert "0 randomizers (0 physics, 0 effect, 0 action, 0 observation), 0 disabled" in out

    assert cli.main(["randomization", "check", "dactyl", "--no-env"]) == 0  # a shipped file by bare name
    out = capsys.readouterr().out.strip()
    assert "25 randomizers" in out and "bound" not in out


def _write(tmp_path, name, randomizer_yaml):
    path = tmp_path / name
    path.write_text("version: 1\nrandomizers:\n  - name: ok\n    target: {field: body_mass, names: [object]}\n"
                    "    distribution: {type: uniform, low: 0.5, high: 1.5}\n    operation: scale\n"
                    + randomizer_yaml)
    return str(path)


BAD_FILES = {
    "unknown_key.yaml": (
        "  - name: size\n    target: {field: geom_size, names: [object]}\n"
        "    distribution: {type: uniform, low: 0.9, high: 1.1}\n    operation: scale\n    resmaple: step\n",
        "randomizers[1] (size).resmaple: unknown key"),
    "bad_param.yaml": (
        "  - name: size\n    target: {field: geom_size, names: [object]}\n"
        "    distribution: {type: uniform, low: abc, high: 1.1}\n    operation: scale\n",
        "randomizers[1] (size).distribution.low: Input should be a valid number"),
    "bad_yaml.yaml": ("  - name: [unclosed\n", "invalid YAML"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_check_bad_file_is_one_line_naming_the_key(tmp_path, capsys, name):
    body, expected = BAD_FILES[name]
    path = _write(tmp_path, name, body)
    line = _one_line_error(capsys, ["randomization", "check", path, "--no-env"])
    assert name in line and expected in line, line


def _entry(name, target, dist, op):
    return f"  - name: {name}\n    target: {target}\n    distribution: {dist}\n    operation: {op}\n"


# (file body after the ok randomizer, or the whole file as bytes; binds to the hand unless --no-env; expected)
REFUSED = {
    "nan_low.yaml": (_entry("size", "{field: geom_size, names: [object]}", "{type: uniform, low: .nan, high: 1.1}",
                            "scale"), True, "randomizers[1] (size).distribution.low: Input should be a finite number"),
    "inf_std.yaml": (_entry("noise", "{observation: object_pos}", "{type: normal, std: .inf}", "add"), True,
                     "randomizers[1] (noise).distribution.std: Input should be a finite number"),
    "bool_std.yaml": (_entry("noise", "{observation: object_pos}", "{type: normal, std: true}", "add"), True,
                      "randomizers[1] (noise).distribution.std: Input should be a number, not a boolean"),
    "overflow.yaml": (_entry("size", "{field: geom_size, names: [object]}", "{type: uniform, low: 1, high: 1e400}",
                             "scale"), True, "randomizers[1] (size).distribution.high: Input should be a finite"),
    "negative_mass.yaml": (_entry("hand_mass", "{field: body_mass, names: ['robot0:*']}",
                                  "{type: uniform, low: -0.5, high: 1.5}", "scale"), False,
                           "randomizers[1] (hand_mass).distribution: scale -0.5..1.5 on body_mass gives"),
    "mirrored_joints.yaml": (_entry("limits", "{field: jnt_range, names: ['robot0:*']}",
                                    "{type: constant, value: -100}", "scale"), False,
                             "randomizers[1] (limits).distribution: scale -100 on jnt_range"),
    "huge_timestep.yaml": (_entry("dt", "{field: opt.timestep}", "{type: constant, value: 1e9}", "scale"), False,
                           "randomizers[1] (dt).distribution: scale 1e+09 on opt.timestep gives a timestep of 2e+06"),
    "tiny_mass.yaml": (_entry("light", "{field: body_mass, names: [object]}", "{type: constant, value: 1.0e-9}",
                              "scale"), False,
                       "randomizers[1] (light).distribution: scale 1e-09 on body_mass gives 'object' a mass of"),
    "duplicate_columns.yaml": (_entry("friction", "{field: geom_friction, columns: [" + ", ".join(["0"] * 200_000)
                                      + "]}", "{type: uniform, low: 0.7, high: 1.3}", "scale"), True,
                               "randomizers[1] (friction).target.columns: duplicate column 0 (entries 0 and 1)"),
    "empty.yaml": (b"", True, "empty.yaml: the file is empty"),
    "latin1.yaml": ("# caf\xe9\nrandomizers: []\n".encode("latin-1"), True, "latin1.yaml:1: not UTF-8 text"),
    "nested.yaml": (("randomizers: " + "[" * 20000 + "]" * 20000).encode(), True, "nested.yaml:1:"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_check_refuses_values_outside_their_domain(tmp_path, capsys, name):
    body, no_env, expected = REFUSED[name]
    if isinstance(body, bytes):
        path = tmp_path / name
        path.write_bytes(body)
        path = str(path)
    else:
        path = _write(tmp_path, name, body)
    t0 = time.perf_counter()
    line = _one_line_error(capsys, ["randomization", "check", path] + (["--no-env"] if no_env else []))
    assert name in line and expected in line, line
    if name == "duplicate_columns.yaml":
        assert time.perf_counter() - t0 < 1.0  # the 200,000-entry list fails at its second entry


def test_check_reads_realities(capsys):
    """A reality file (rigs/realities/*.yaml) holds a randomization under a 'rig' header: check reads it."""
    reality = ROOT / "rigs" / "realities" / "hand_heavy_slippery.yaml"
    assert cli.main(["randomization", "check", str(reality)]) == 0
    assert "bound to simreal/HandCube-v0" in capsys.readouterr().out


def test_check_unknown_model_field_is_caught_when_binding(tmp_path, capsys):
    path = _write(tmp_path, "field.yaml", "  - name: damping\n    target: {field: dof_dampng}\n"
                                          "    distribution: {type: uniform, low: 0.5, high: 2}\n"
                                          "    operation: scale\n")
    line = _one_line_error(capsys, ["randomization", "check", path])
    assert "field.yaml" in line and "randomizers[1] (damping).target.field" in line and "dof_dampng" in line
    assert "dof_damping" in line  # the suggestion
    assert cli.main(["randomization", "check", path, "--no-env"]) == 0  # the file alone is valid
    assert "2 randomizers (2 physics" in capsys.readouterr().out


def test_check_missing_file_and_unsupported_env(tmp_path, capsys):
    line = _one_line_error(capsys, ["randomization", "check", str(tmp_path / "nope.yaml")])
    assert "nope.yaml" in line and "not found" in line
    line = _one_line_error(capsys, ["randomization", "check", DACTYL, "--env", "NoSuchEnv-v9"])
    assert "NoSuchEnv-v9" in line


# ------------------------------------------------------------------ sample
@pytest.fixture(scope="module")
def dactyl_samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    assert cli.main(["randomization", "sample", DACTYL, "-n", "200", "--seed", "7", "--out", str(out)]) == 0
    return out


def test_sample_writes_csv_and_png(dactyl_samples):
    from PIL import Image

    from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim

    header, table = _read_csv(dactyl_samples / "samples.csv")
    assert table.shape[0] == 200 and np.array_equal(table[:, 0], np.arange(200))
    sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
    sim.set_randomization(DACTYL)
    expected = ["sample"]
    for b in sim.randomization.items:
        expected += [b.name] if b.size == 1 else [f"{b.name}[{k}]" for k in range(b.size)]
    assert header == expected
    assert "action_latency" not in "".join(header)  # disabled in the file
    assert "masses[26]" in header and "gravity[2]" in header and "object_size" in header

    img = Image.open(dactyl_samples / "histograms.png")
    assert img.size[0] > 500 and img.size[1] > 500


def test_sample_values_follow_the_file(dactyl_samples):
    header, table = _read_csv(dactyl_samples / "samples.csv")
    col = {name: table[:, j] for j, name in enumerate(header)}
    size = col["object_size"]
    assert size.min() >= 0.95 and size.max() <= 1.05
    assert stats.kstest(size, stats.uniform(0.95, 0.1).cdf).pvalue > 1e-3
    gravity = np.concatenate([col[f"gravity[{k}]"] for k in range(3)])
    assert abs(gravity.mean()) < 0.1 and 0.3 < gravity.std() < 0.5
    masses = np.concatenate([v for k, v in col.items() if k.startswith("masses[")])
    assert masses.min() >= 0.5 and masses.max() <= 1.5
    damping = np.concatenate([v for k, v in col.items() if k.startswith("joint_damping[")])
    assert stats.kstest(damping, stats.loguniform(0.3, 3.0).cdf).pvalue > 1e-3
    assert np.all(col["marker_freeze_rate"] == 0.2)
    jitter = col["timing_jitter"]
    assert jitter.min() >= 0.9 and jitter.max() <= 1.1


def test_sample_is_deterministic_and_matches_env_episodes(dactyl_samples, tmp_path, capsys):
    assert cli.main(["randomization", "sample", DACTYL, "-n", "200", "--seed", "7", "--out", str(tmp_path / "a"),
                     "--no-plot", "--quiet"]) == 0
    assert (tmp_path / "a" / "samples.csv").read_text() == (dactyl_samples / "samples.csv").read_text()
    assert not (tmp_path / "a" / "histograms.png").exists()
    assert cli.main(["randomization", "sample", DACTYL, "-n", "200", "--seed", "8", "--out", str(tmp_path / "b"),
                     "--no-plot", "--quiet"]) == 0
    assert (tmp_path / "b" / "samples.csv").read_text() != (dactyl_samples / "samples.csv").read_text()

    # row k is what the k-th episode of an env seeded with 7 gets
    import simreal

    header, table = _read_csv(dactyl_samples / "samples.csv")
    env = simreal.make(simreal.HAND_CUBE_ID, randomization=DACTYL)
    for k in range(2):
        _, info = env.reset(seed=7) if k == 0 else env.reset()
        row = dict(zip(header, table[k]))
        for name, value in info["randomization"].items():
            got = [row[name]] if not isinstance(value, list) else [row[f"{name}[{i}]"] for i in range(len(value))]
            assert np.allclose(got, np.atleast_1d(value), rtol=0, atol=0), name
    env.close()


def test_sample_empty_file(tmp_path, capsys):
    assert cli.main(["randomization", "sample", NONE, "-n", "3", "--out", str(tmp_path), "--quiet"]) == 0
    header, table = _read_csv(tmp_path / "samples.csv")
    assert header == ["sample"] and table.shape == (3, 1)
    assert (tmp_path / "histograms.png").is_file()


def test_sample_needs_positive_n(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["randomization", "sample", DACTYL, "-n", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------ schema
def test_schema_prints_and_writes_json(tmp_path, capsys):
    assert cli.main(["randomization", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "randomizers" in schema["properties"]
    out = tmp_path / "schema.json"
    assert cli.main(["randomization", "schema", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == schema


def test_other_envs_go_through_wrappers(tmp_path, capsys, monkeypatch):
    """Env ids other than the hand cube bind through simreal.randomize.wrappers.wrap(env, spec).stack."""
    import sys
    import types

    from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim

    calls = []

    def wrap(env, spec):
        calls.append((env.spec.id, spec.source))
        sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
        sim.set_randomization(spec)
        return types.SimpleNamespace(stack=sim.randomization)

    monkeypatch.setitem(sys.modules, "simreal.randomize.wrappers", types.SimpleNamespace(wrap=wrap))
    assert cli.main(["randomization", "sample", DACTYL, "--env", "CartPole-v1", "-n", "5", "--out", str(tmp_path),
                     "--no-plot", "--quiet"]) == 0
    assert calls and calls[0][0] == "CartPole-v1" and calls[0][1].endswith("dactyl.yaml")
    assert _read_csv(tmp_path / "samples.csv")[1].shape[0] == 5
    line = _one_line_error(capsys, ["randomization", "check", DACTYL, "--env", "NoSuchEnv-v9"])
    assert "NoSuchEnv-v9" in line


def test_help_shows_subcommands_and_examples(capsys):
    for argv, expected in ((["randomization", "--help"], ("check", "sample", "schema", "examples:")),
                           (["randomization", "sample", "--help"], ("--seed", "-n N", "histograms.png"))):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert all(text in out for text in expected), out


def test_dm_control_cartpole_with_its_file(tmp_path, capsys):
    pytest.importorskip("simreal.randomize.wrappers")
    cartpole = ROOT / "randomizations" / "dmc_cartpole.yaml"
    if not cartpole.is_file():
        pytest.skip("randomizations/dmc_cartpole.yaml is not there")
    env = "dm_control/cartpole-swingup-v0"
    assert cli.main(["randomization", "check", str(cartpole), "--env", env]) == 0
    assert f"bound to {env}" in capsys.readouterr().out
    assert cli.main(["randomization", "sample", str(cartpole), "--env", env, "-n", "20", "--out", str(tmp_path),
                     "--no-plot", "--quiet"]) == 0
    assert _read_csv(tmp_path / "samples.csv")[1].shape[0] == 20
    line = _one_line_error(capsys, ["randomization", "check", DACTYL, "--env", env])
    assert "object_size" in line and "target.names" in line  # the hand's names are not in the cart-pole
