"""``simreal rig``: list, info, record; one-line errors; help for every flag."""

import pytest

from simreal import cli
from simreal.rigs import DatasetReader


def test_list_and_info(capsys):
    assert cli.main(["rig", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("hand_nominal", "hand_heavy_slippery", "hand_laggy", "cartpole_heavy_pole", "cartpole_laggy"):
        assert name in out
    assert cli.main(["rig", "info", "sim:cartpole_heavy_pole"]) == 0
    out = capsys.readouterr().out
    assert "control period:  10 ms" in out and "pole_mass" in out and "scale 2.0" in out
    assert cli.main(["rig", "info", "leap:fake"]) == 0
    out = capsys.readouterr().out
    assert "max change/step 0.2" in out and "index_mcp_side" in out


def test_record_then_inspect_the_dataset(tmp_path, capsys):
    out_dir = tmp_path / "logs"
    code = cli.main(["rig", "record", "sim:cartpole_laggy", "--policy", "random", "--episodes", "2",
                     "--max-steps", "15", "--seed", "4", "--out", str(out_dir), "--tag", "run=ci", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote 2 episodes (30 steps)" in out and "cut_off" in out
    reader = DatasetReader(out_dir)
    assert [ep.seed for ep in reader] == [4, 5] and reader[0].tags == {"policy": "random", "run": "ci"}
    assert cli.main(["rig", "info", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "replay:sim:cartpole_laggy" in out and "2 episodes, 30 steps" in out
    assert cli.main(["rig", "record", "sim:cartpole_laggy", "--policy", "zero", "--episodes", "1",
                     "--max-steps", "3", "--out", str(out_dir), "--quiet"]) == 2
    assert "--append" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["rig", "info", "sim:no_such_reality"], "no such reality file"),
    (["rig", "info", "sim:hand_laggy", "--env", "dm_control/cartpole-swingup-v0"], "is for simreal/HandCube-v0"),
    (["rig", "record", "leap:fake", "--policy", "hold", "--out", "/tmp/never"], "--policy hold needs"),
    (["rig", "record", "leap:fake", "--policy", "zero", "--out", "/tmp/never", "--max-delta", "-1"],
     "max_delta must be > 0"),
])
def test_user_errors_are_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_help_explains_every_flag(capsys):
    for sub, flags in (("serve", ["--sim", "--leap", "--host", "--port", "--token-file", "--operator-token-file",
                                  "--watchdog", "--max-delta", "--record", "--append", "--seed", "SIGUSR1"]),
                       ("record", ["--policy", "--episodes", "--out", "--append", "--seed", "--max-steps", "--env",
                                   "--stochastic", "--tag", "--token-file", "--device"]),
                       ("info", ["--env", "--token-file", "--json"])):
        with pytest.raises(SystemExit):
            cli.main(["rig", sub, "--help"])
        out = capsys.readouterr().out
        assert "examples:" in out
        for flag in flags:
            assert flag in out, (sub, flag)
