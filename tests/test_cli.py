import json
import os
import subprocess
import sys

from simreal import cli


def test_rollout_writes_camera_png_and_stats(tmp_path, capsys):
    code = cli.main(["rollout", "--episodes", "2", "--max-steps", "6", "--height", "32", "--width", "40",
                     "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "mean return" in out
    from PIL import Image

    img = Image.open(tmp_path / "cameras.png")
    assert img.size == (3 * 40, 2 * 32)
    stats = json.loads((tmp_path / "episodes.json").read_text())
    assert len(stats["episodes"]) == 2 and all(e["steps"] == 6 for e in stats["episodes"])
    assert all(e["end"] == "cut off" for e in stats["episodes"])


def test_bad_option_is_one_line_error(capsys):
    assert cli.main(["rollout", "--episodes", "1", "--max-steps", "1", "--height", "2", "--out", "/tmp/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "render_size" in err[0]


def test_an_unknown_mujoco_gl_is_one_line_error(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "bogus"}  # mujoco refuses it when the command imports it
    result = subprocess.run([sys.executable, "-m", "simreal.cli", "pose", "dataset", "--n", "2", "--height", "24",
                             "--width", "24", "--out", str(tmp_path / "d"), "--quiet"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "MUJOCO_GL: bogus" in err[0] and "egl" in err[0]


def test_help_explains_commands():
    result = subprocess.run([sys.executable, "-m", "simreal.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout and "rollout" in result.stdout
    result = subprocess.run([sys.executable, "-m", "simreal.cli", "rollout", "--help"], capture_output=True, text=True)
    assert "--episodes" in result.stdout and "--policy" in result.stdout
    result = subprocess.run([sys.executable, "-m", "simreal.cli", "demo", "--help"], capture_output=True, text=True)
    assert "--rig" in result.stdout and "demo.json" in result.stdout


def test_env_info(capsys):
    assert cli.main(["env", "info"]) == 0
    out = capsys.readouterr().out
    assert "80 ms" in out and "state layout" in out
