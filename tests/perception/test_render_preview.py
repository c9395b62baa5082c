"""`simreal render preview`, the multi-camera renderer's options, and the two benchmark scripts (tiny settings)."""

import importlib.util
import pathlib

import numpy as np
import pytest
from PIL import Image

from simreal import cli
from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim
from simreal.render.multicam import MultiCameraRenderer
from simreal.envs.preview import preview_grid

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_preview_writes_a_grid_of_randomized_views(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["render", "preview", "--randomization", "dactyl", "--n", "3", "--columns", "2", "--height", "20",
                     "--width", "24", "--out", str(out), "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * 22, 2 * (3 * 24 + 2), 3)  # 2 rows, 2 columns of 3 cameras, 2 px gutters
    cells = [grid[0:20, 0:72], grid[0:20, 74:146], grid[22:42, 0:72]]
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() > 5 for a, b in ((cells[0], cells[1]), (cells[1], cells[2])))
    assert (grid[22:, 74:] == 255).all()  # the empty fourth cell


def test_preview_is_seeded_and_none_is_the_nominal_scene():
    a = preview_grid("dactyl", n=2, height=16, width=16, seed=4)
    b = preview_grid("dactyl", n=2, height=16, width=16, seed=4)
    np.testing.assert_array_equal(a, b)
    nominal = preview_grid("none", n=2, height=16, width=16, seed=4)
    assert not np.array_equal(a, nominal)
    assert not np.array_equal(a, preview_grid("dactyl", n=2, height=16, width=16, seed=4, zoom=1.5))


def test_preview_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["render", "preview", "--randomization", "nope.yaml", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml: file not found" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["render", "preview", "--out", str(tmp_path / "g.txt")]) == 2
    assert "expected a .png or .jpg" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["render", "preview", "--n", "0"])
    with pytest.raises(SystemExit):
        cli.main(["render", "preview", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_renderer_options_and_errors():
    sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
    sim.reset(np.array([0]))
    with pytest.raises(ValueError, match="no camera 'cam_top'"):
        MultiCameraRenderer(sim, 16, 16, cameras=["cam_top"])
    with MultiCameraRenderer(sim, 16, 24, cameras=["cam_front"], antialias=0) as one:
        image = one.render(0)
        assert image.shape == (1, 16, 24, 3) and one.antialias == 0
        assert one.model.vis.global_.offwidth == 24  # the buffer is sized to the images
    with MultiCameraRenderer(sim, 16, 24, hidden_group=2) as all_cams:
        goal = all_cams.render(0, show_hidden=True)
        plain = all_cams.render(0)
        assert all_cams.camera_names == ["cam_left", "cam_front", "cam_right"]
        assert not np.array_equal(goal, plain)  # the translucent goal cube is drawn only when asked
    with pytest.raises(RuntimeError, match="after close"):
        all_cams.render(0)


def test_zoom_shows_the_centre_of_the_view_and_restores_the_field_of_view():
    sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
    sim.reset(np.array([0]))
    fovy = sim.model.cam_fovy.copy()
    with MultiCameraRenderer(sim, 64, 64, cameras=["cam_front"], antialias=0) as wide, \
            MultiCameraRenderer(sim, 32, 32, cameras=["cam_front"], antialias=0, zoom=2.0) as zoomed, \
            MultiCameraRenderer(sim, 32, 32, cameras=["cam_front"], antialias=0) as plain:
        centre = wide.render(0)[0, 16:48, 16:48].astype(int)
        near = zoomed.render(0)[0].astype(int)
        again = zoomed.render(0)[0].astype(int)
        far = plain.render(0)[0].astype(int)
        np.testing.assert_array_equal(near, again)  # the narrowed field of view never compounds
        np.testing.assert_array_equal(zoomed.model.cam_fovy, fovy)  # and is put back after each render
        assert np.abs(near - centre).mean() < 0.3 * np.abs(far - centre).mean()  # the centre crop, magnified
    with pytest.raises(ValueError, match="zoom must be 1 to 16"):
        MultiCameraRenderer(sim, 16, 16, zoom=0.5)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_throughput_reports_its_keys(capsys):
    result = _load("render_throughput").main(["--height", "16", "--width", "16", "--frames", "4",
                                              "--episode-frames", "2", "--repeats", "1"])
    for key in ("raw_fps", "randomized_fps", "raw_fps_same_lights", "raw_fps_model_buffer"):
        assert result[key] > 0
    assert result["ratio"] == pytest.approx(result["randomized_fps"] / result["raw_fps"], rel=0.01)
    assert 4 <= result["lights_on_mean"] <= 6  # Dactyl's 4-6 lights


def test_pose_accuracy_runs_end_to_end(tmp_path, capsys):
    module = _load("pose_accuracy")
    saved = []
    module.emit = lambda name, result, save: saved.append((name, save))  # not into benchmarks/results/
    result = module.main(["--quick", "--train-n", "24", "--eval-n", "6", "--steps", "4", "--height", "16",
                          "--width", "16", "--preset", "tiny", "--quiet", "--torch-threads", "1", "--zoom", "1.5",
                          "--out", str(tmp_path), "--save", "--tag", "variant"])
    assert saved == [("pose_accuracy_quick_variant", True)]  # the tagged file name, whatever the loops call things
    assert result["settings"]["zoom"] == 1.5
    for name in ("randomized", "unrandomized"):
        assert result[name]["n"] == 6 and result[name]["position_mm"]["median"] > 0
        assert result[name]["mean_pose_baseline"]["rotation_deg"]["median"] > 0
    assert result["settings"]["steps_done"] == 4 and result["meets_target"] in (True, False)
    assert result["settings"]["presets"] == ["tiny"] and result["settings"]["torch_threads"] == 1
    assert result["settings"]["model"]["rotation"] in ("quat", "6d")  # the effective config is recorded
    assert (tmp_path / "quick" / "result.json").is_file()


def test_pose_accuracy_refuses_a_tag_that_cannot_name_a_file(capsys):
    with pytest.raises(SystemExit):
        _load("pose_accuracy").main(["--quick", "--tag", "a/b"])
    assert "--tag 'a/b'" in capsys.readouterr().err
