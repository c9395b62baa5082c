"""Visual randomizers: the file's `visual` list, what each randomizer changes, and that nominal values come back."""

import copy
import json

import mujoco
import numpy as np
import pytest

from simreal.envs.hand_cube import HandCubeConfig, HandCubeEnv, HandCubeSim
from simreal.randomize import RandomizationError, load_spec, parse_spec
from simreal.randomize.spec import json_schema
from simreal.render import textures as tex
from simreal.render.effects import apply_effects
from simreal.utils.rotations import quat_conj, quat_mul, rotation_angle


def vspec(*entries, randomizers=()):
    return parse_spec({"randomizers": list(randomizers), "visual": list(entries)}, "test.yaml")


def entry(name, target, dist, op="set", **kw):
    return dict(name=name, target=target, distribution=dist, operation=op, **kw)


def uniform(low, high):
    return {"type": "uniform", "low": low, "high": high}


def const(value):
    return {"type": "constant", "value": value}


def bound(spec, n=2, seed=0):
    """A stack of spec on an n-copy sim, seeded and reset once (no physics steps)."""
    sim = HandCubeSim(n, HandCubeConfig(settle_time=0.0))
    sim.set_randomization(spec)
    for i in range(n):
        sim.seed(i, seed + i)
    sim.reset(np.arange(n))
    return sim


def dressed(sim, i):
    """Copy i's render model: the sim's model with the visual stack applied (as a renderer does)."""
    model = copy.copy(sim.model)
    sim.batch.get_model(i, model)
    sim.randomization.visual.apply(i, model)
    return model


# ------------------------------------------------------------------ the file format
def test_visual_list_parses_and_misplaced_targets_fail_in_one_line():
    spec = vspec(entry("fov", {"field": "cam_fovy"}, uniform(-1, 1), "add"),
                 entry("lights", {"visual": "light_count"}, {"type": "choice", "values": [4, 5, 6]}),
                 entry("contrast", {"image": "contrast"}, uniform(0.5, 1.5)))
    assert [r.family for r in spec.visual] == ["visual"] * 3 and spec.randomizers == []
    with pytest.raises(RandomizationError, match=r"^test.yaml: randomizers\[0\] \(c\): visual and image targets go "
                                                 r"in the file's 'visual' list"):
        parse_spec({"randomizers": [entry("c", {"image": "contrast"}, uniform(0.5, 1.5))]}, "test.yaml")
    with pytest.raises(RandomizationError, match=r"visual\[0\] \(m\): 'body_mass' is not a rendering field"):
        vspec(entry("m", {"field": "body_mass"}, uniform(0.5, 1.5), "scale"))
    with pytest.raises(RandomizationError, match=r"visual\[0\] \(t\)\.target\.visual: Input should be"):
        vspec(entry("t", {"visual": "sparkle"}, uniform(0, 1)))
    with pytest.raises(RandomizationError, match="'patterns' is an option of visual: texture"):
        vspec(entry("t", {"visual": "light_count", "patterns": ["noise"]}, uniform(0, 1)))
    with pytest.raises(RandomizationError, match=r"visual\[0\]\.name: duplicate name 'x'"):
        vspec(entry("x", {"image": "noise"}, const(0.1)),
              randomizers=[entry("x", {"field": "body_mass"}, uniform(0.5, 1.5), "scale")])
    for message in ("\n",):
        with pytest.raises(RandomizationError) as exc:
            vspec(entry("b", {"image": "blur", "names": 3}, uniform(0, 1)))
        assert message not in str(exc.value)
    assert "visual" in json.dumps(json_schema())


def test_extends_merges_and_removes_visual_entries(tmp_path):
    import yaml

    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"visual": [
        entry("fov", {"field": "cam_fovy"}, uniform(-1, 1), "add"), entry("noise", {"image": "noise"}, const(0.1))]}))
    (tmp_path / "child.yaml").write_text(yaml.safe_dump({
        "extends": ["base.yaml"], "remove": ["noise"],
        "visual": [entry("fov", {"field": "cam_fovy"}, const(2.0), "add")]}))
    spec = load_spec(tmp_path / "child.yaml")
    assert [r.name for r in spec.visual] == ["fov"] and spec.visual[0].distribution.type == "constant"


def test_dactyl_file_has_table_9_with_sources():
    spec = load_spec("dactyl")
    names = {r.name: r for r in spec.visual}
    for name in ("camera_position", "camera_rotation", "camera_fov", "robot_color", "object_hue", "light_count",
                 "light_position", "light_relative_intensity", "light_total_intensity", "image_contrast",
                 "image_noise"):
        assert name in names and "Table 9" in names[name].source, name
    assert all(r.source for r in spec.visual)
    assert names["camera_position"].distribution.high == 0.0015  # +-1.5 mm
    assert names["light_count"].distribution.values == [4, 5, 6]
    assert (names["image_contrast"].distribution.low, names["image_contrast"].distribution.high) == (0.5, 1.5)
    assert len([r for r in spec.randomizers if r.enabled]) == 25  # the physics side is unchanged


def test_binding_errors_name_the_key():
    with pytest.raises(RandomizationError, match=r"visual\[0\] \(r\)\.target\.names: no camera matches \['nope'\]"):
        bound(vspec(entry("r", {"visual": "camera_rotation", "names": ["nope"]}, uniform(0, 3))))
    with pytest.raises(RandomizationError, match=r"visual\[0\] \(c\)\.target\.columns: 'mat_rgba' has 4 columns"):
        bound(vspec(entry("c", {"field": "mat_rgba", "columns": [7]}, uniform(0, 1))))


# ------------------------------------------------------------------ model fields
def test_fields_follow_the_operation_from_nominal_and_never_compound():
    sim = bound(vspec(entry("fov", {"field": "cam_fovy", "names": ["cam_front"]}, const(-2.0), "add"),
                      entry("pos", {"field": "cam_pos"}, uniform(-0.01, 0.01), "add", per_element=True),
                      entry("robot", {"field": "mat_rgba", "names": ["robot0:MatViz"], "columns": [0, 1, 2]},
                            uniform(0, 1), per_element=True)))
    nominal = sim.model
    cam = nominal.camera("cam_front").id
    mat = nominal.material("robot0:MatViz").id
    stack = sim.randomization
    for i in range(2):
        model = dressed(sim, i)
        for _ in range(3):  # applying again changes nothing: every pass starts from nominal values
            stack.visual.apply(i, model)
        assert model.cam_fovy[cam] == pytest.approx(nominal.cam_fovy[cam] - 2.0)
        np.testing.assert_allclose(model.cam_pos - nominal.cam_pos, stack["pos"].values[i].reshape(3, 3))
        np.testing.assert_allclose(model.mat_rgba[mat, :3], stack["robot"].values[i], rtol=1e-6)
        assert model.mat_rgba[mat, 3] == nominal.mat_rgba[mat, 3]
    assert not np.allclose(stack["pos"].values[0], stack["pos"].values[1])  # each copy its own sample
    # the simulation never sees visual values: the batch's per-copy models stay nominal
    np.testing.assert_array_equal(sim.batch.get_model(0).cam_pos, nominal.cam_pos)
    # removing a randomizer restores its fields on the next pass
    stack.remove("fov")
    model = dressed(sim, 0)
    assert model.cam_fovy[cam] == nominal.cam_fovy[cam]


def test_camera_rotation_turns_each_camera_by_the_sampled_angle_about_random_axes():
    sim = bound(vspec(entry("rot", {"visual": "camera_rotation"}, uniform(0, 3), per_element=True)), n=1)
    stack = sim.randomization
    angles, axes = [], []
    for k in range(200):
        sim.seed(0, k)
        stack.on_reset(np.array([0]))
        model = dressed(sim, 0)
        got = np.degrees(rotation_angle(sim.model.cam_quat, model.cam_quat))
        np.testing.assert_allclose(got, stack["rot"].values[0], atol=1e-6)
        delta = quat_mul(quat_conj(sim.model.cam_quat), model.cam_quat)
        axes.append(delta[:, 1:] / np.linalg.norm(delta[:, 1:], axis=1, keepdims=True))
        angles.append(got)
    angles, axes = np.concatenate(angles), np.concatenate(axes)
    assert angles.min() >= 0 and angles.max() <= 3 and abs(angles.mean() - 1.5) < 0.15
    assert np.abs(axes.mean(axis=0)).max() < 0.1  # no preferred axis
    assert np.abs(np.abs(axes).mean(axis=0) - 0.5).max() < 0.08  # |component| of a uniform unit vector: mean 1/2


def test_lights_count_position_and_total_intensity():
    spec = vspec(entry("count", {"visual": "light_count"}, {"type": "choice", "values": [4, 5, 6]}),
                 entry("where", {"visual": "light_position"}, uniform(0.5, 1.0), per_element=True),
                 entry("relative", {"visual": "light_intensity"}, uniform(1.0, 5.0), per_element=True),
                 entry("total", {"visual": "light_total_intensity"}, uniform(0.2, 2.0)))
    sim = bound(spec, n=1)
    stack = sim.randomization
    center = stack["where"].center
    np.testing.assert_allclose(center, [1.0, 0.88, 0.17], atol=0.01)  # where the three cameras look
    subsets = set()
    for k in range(100):
        sim.seed(0, k)
        stack.on_reset(np.array([0]))
        model = dressed(sim, 0)
        on = model.light_active.astype(bool)
        assert on.sum() == stack["count"].values[0, 0] and sim.model.nlight == 6
        subsets.add(tuple(np.flatnonzero(on)))
        offset = model.light_pos - center
        np.testing.assert_allclose(np.linalg.norm(offset, axis=1), stack["where"].values[0], rtol=1e-9)
        assert (offset[:, 2] >= 0).all()  # upper half-sphere
        np.testing.assert_allclose(model.light_dir, -offset / np.linalg.norm(offset, axis=1, keepdims=True))
        total = model.light_diffuse[on].mean(axis=1).sum()
        assert total == pytest.approx(stack["total"].values[0, 0], rel=1e-6)
        ratio = model.light_diffuse[on, 0] / sim.model.light_diffuse[on, 0]
        rel = stack["relative"].values[0][on]
        np.testing.assert_allclose(ratio / ratio[0], rel / rel[0], rtol=1e-6)  # relative intensities kept
    assert len(subsets) > 10  # which lights are on changes, not only how many


def test_hsv_randomizers_shift_material_color_and_texture():
    spec = vspec(entry("hue", {"visual": "material_hue", "names": ["cube"]}, const(0.25), "add"),
                 entry("value", {"visual": "material_value", "names": ["cube"]}, const(0.5), "scale"))
    sim = bound(spec, n=1)
    visual = sim.randomization.visual
    texid = sim.model.texture("cube_faces").id
    assert visual.texture_ids == [texid]
    adr, w, h = sim.model.tex_adr[texid], sim.model.tex_width[texid], sim.model.tex_height[texid]
    nominal = sim.model.tex_data[adr:adr + w * h * 3].reshape(-1, 3) / 255.0
    new = visual.texture_data(0, texid).reshape(-1, 3) / 255.0
    before, after = tex.rgb_to_hsv(nominal), tex.rgb_to_hsv(new)
    chromatic = (before[:, 1] > 0.5) & (before[:, 2] > 0.5)
    assert chromatic.sum() > 1000
    shift = (after[chromatic, 0] - before[chromatic, 0]) % 1.0
    np.testing.assert_allclose(shift, 0.25, atol=0.01)
    np.testing.assert_allclose(after[chromatic, 2], 0.5 * before[chromatic, 2], atol=0.01)
    assert visual.texture_data(0, texid) is visual.texture_data(0, texid)  # cached until copy 0 draws again


def test_textures_are_procedural_and_drawn_per_copy():
    sim = bound(vspec(entry("floor", {"visual": "texture", "names": ["floor"], "patterns": ["checker"]}, const(1.0))))
    visual = sim.randomization.visual
    texid = sim.model.texture("floor").id
    a = visual.texture_data(0, texid).reshape(256, 256, 3)
    b = visual.texture_data(1, texid).reshape(256, 256, 3)
    assert not np.array_equal(a, b)
    colors = np.unique(a.reshape(-1, 3), axis=0)
    assert len(colors) == 2  # a checker board of two colors
    p = sim.randomization["floor"].params(0, 0)
    assert p["pattern"] == "checker" and 2 <= p["frequency"] <= 16
    for pattern in tex.PATTERNS:
        img = tex.procedural(pattern, 6 * 16, 16, (0, 0, 0), (1, 1, 1), frequency=4, angle=0.3, seed=1, faces=6)
        assert img.shape == (96, 16, 3) and img.min() >= 0 and img.max() <= 1 and img.std() > 0.1, pattern


def test_hsv_round_trip():
    rgb = np.random.default_rng(0).random((1000, 3)).astype(np.float32)
    np.testing.assert_allclose(tex.hsv_to_rgb(tex.rgb_to_hsv(rgb)), rgb, atol=1e-5)
    np.testing.assert_allclose(tex.rgb_to_hsv(np.array([1.0, 0.0, 0.0])), [0.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(tex.rgb_to_hsv(np.array([0.0, 0.5, 0.0])), [1 / 3, 1.0, 0.5], atol=1e-6)


# ------------------------------------------------------------------ image effects
def test_image_effects_do_what_they_say():
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(120, 25, (4, 32, 32, 3)), 0, 255).astype(np.uint8)  # no clipping at x1.5
    x = images.astype(float)
    none = np.zeros(4)
    out = images.copy()
    apply_effects(out, none, none, np.array([1.0, 0.5, 1.5, 1.0]), [])
    ratio = (out.astype(float).std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3)))
    np.testing.assert_allclose(ratio[:3], [1.0, 0.5, 1.5], atol=0.03)
    np.testing.assert_array_equal(out[3], images[3])
    out = images.copy()
    apply_effects(out, none, np.array([0.1, -0.1, 0.0, 0.0]), np.ones(4), [])
    np.testing.assert_allclose(out.astype(float).mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3)),
                               [25.5, -25.5, 0, 0], atol=1.0)
    out = images.copy()
    apply_effects(out, none, none, np.ones(4), [(np.array([0.1, 0.0, 0.3, 0.0]), np.random.default_rng(1))])
    noise = (out.astype(float) - x).std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
    np.testing.assert_allclose(noise, [0.1, 0.0, 0.3, 0.0], atol=0.02)
    out = images.copy()
    apply_effects(out, np.array([1.5, 0, 0, 0]), none, np.ones(4), [])
    assert out[0].astype(float).std() < 0.5 * x[0].std()  # blurring white noise removes most of it
    np.testing.assert_array_equal(out[1:], images[1:])


# ------------------------------------------------------------------ rendering
@pytest.fixture(scope="module")
def env_pair():
    """A nominal env and one with a visual list (same physics), rendering at 32x32."""
    visual = vspec(entry("robot", {"field": "mat_rgba", "names": ["robot0:MatViz"], "columns": [0, 1, 2]},
                         uniform(0, 1), per_element=True),
                   entry("floor", {"visual": "texture", "names": ["floor"]}, uniform(0.5, 1.0)),
                   entry("noise", {"image": "noise"}, const(0.1)))
    plain = HandCubeEnv(camera_obs=(32, 32), settle_time=0.0)
    fancy = HandCubeEnv(camera_obs=(32, 32), settle_time=0.0, randomization=visual)
    yield plain, fancy
    plain.close()
    fancy.close()


def test_visual_randomization_changes_pixels_not_physics(env_pair):
    plain, fancy = env_pair
    a, _ = plain.reset(seed=3)
    b, info = fancy.reset(seed=3)
    for key in a:
        if key != "cameras":
            np.testing.assert_array_equal(a[key], b[key])  # same state, same measured observations
    assert np.abs(a["cameras"].astype(int) - b["cameras"].astype(int)).mean() > 10
    assert set(info["randomization"]) == {"robot", "floor", "noise"}
    assert fancy.state_layout == plain.state_layout  # visual values stay out of the privileged state
    action = np.zeros(20, np.float32)
    for _ in range(2):
        a, *_ = plain.step(action)
        b, *_ = fancy.step(action)
    np.testing.assert_array_equal(a["object_pos"], b["object_pos"])


def test_same_seed_same_images_and_textures_upload_in_place(env_pair):
    _, fancy = env_pair
    renderer = fancy.images.cameras
    model_before = renderer.model
    first, _ = fancy.reset(seed=5)
    other, _ = fancy.reset(seed=6)
    again, _ = fancy.reset(seed=5)
    np.testing.assert_array_equal(first["cameras"], again["cameras"])  # noise included: its stream is seeded
    assert not np.array_equal(first["cameras"], other["cameras"])
    assert renderer.model is model_before  # textures change in place: no new model, no recompiling
    texid = fancy.model.texture("floor").id
    adr, size = fancy.model.tex_adr[texid], 256 * 256 * 3
    assert not np.array_equal(renderer.model.tex_data[adr:adr + size], fancy.model.tex_data[adr:adr + size])
    # the randomizers leave: the next render is the nominal scene, pixel for pixel
    stack = fancy.sim.randomization
    for name in ("robot", "floor", "noise"):
        stack.remove(name)
    nominal = renderer.render(0)
    np.testing.assert_array_equal(renderer.model.tex_data[adr:adr + size], fancy.model.tex_data[adr:adr + size])
    plain = HandCubeEnv(camera_obs=(32, 32), settle_time=0.0)
    plain.reset(seed=5)
    np.testing.assert_array_equal(nominal, plain.images.cameras.render(0))
    plain.close()


def test_nominal_render_matches_a_plain_mujoco_renderer():
    env = HandCubeEnv(camera_obs=(40, 48), settle_time=0.0)
    obs, _ = env.reset(seed=0)
    model = copy.copy(env.model)
    model.vis.global_.offwidth, model.vis.global_.offheight = 48, 40
    data = mujoco.MjData(model)
    env.sim.batch.get_data(0, data)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 40, 48) as plain:
        for k, name in enumerate(("cam_left", "cam_front", "cam_right")):
            plain.update_scene(data, camera=name)
            np.testing.assert_array_equal(obs["cameras"][k], plain.render())
    env.close()


def test_vector_env_cameras_match_single_envs_and_follow_resets():
    from simreal.envs.vec_env import HandCubeVecEnv

    n = 2
    venv = HandCubeVecEnv(n, nthread=1, camera_obs=(16, 16), randomization="dactyl", settle_time=0.0,
                          goal_timeout=0.16)
    venv.seed(11)
    frames = [venv.reset()["cameras"].copy()]
    for _ in range(2):  # the second step ends every episode (goal timeout): copies reset on their own
        obs, _, done, infos = venv.step(np.zeros((n, 20), np.float32))
        frames.append(obs["cameras"].copy())
    assert done.all() and infos[0]["terminal_observation"]["cameras"].shape == (3, 16, 16, 3)
    assert venv.observation_space["cameras"].shape == (3, 16, 16, 3)
    for i in range(n):
        env = HandCubeEnv(camera_obs=(16, 16), randomization="dactyl", settle_time=0.0, goal_timeout=0.16)
        obs, _ = env.reset(seed=11 + i)
        np.testing.assert_array_equal(frames[0][i], obs["cameras"])
        obs, *_ = env.step(np.zeros(20, np.float32))
        np.testing.assert_array_equal(frames[1][i], obs["cameras"])
        obs, *_, info = env.step(np.zeros(20, np.float32))
        np.testing.assert_array_equal(infos[i]["terminal_observation"]["cameras"], obs["cameras"])
        obs, _ = env.reset()  # the episode the vector env started by itself
        np.testing.assert_array_equal(frames[2][i], obs["cameras"])
        env.close()
    venv.close()
