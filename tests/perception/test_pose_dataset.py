"""Pose datasets: labels, determinism, and resuming after an interruption without duplicates or gaps."""

import json

import numpy as np
import pytest

from simreal.envs.scene import CUBE_HOME
from simreal.perception.dataset import (
    DatasetError,
    DatasetSettings,
    PoseSampler,
    load_dataset,
    sample_seed,
    write_dataset,
)

SETTINGS = DatasetSettings(randomization="dactyl", height=24, width=24, seed=3, shard_size=4, antialias=0)
N = 10


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The dataset written in one go."""
    folder = tmp_path_factory.mktemp("straight")
    write_dataset(folder, SETTINGS, N, n_envs=4, progress=False)
    return load_dataset(folder)


def test_labels_are_cube_poses_in_view(straight):
    assert straight.images.shape == (N, 3, 24, 24, 3) and straight.images.dtype == np.uint8
    np.testing.assert_array_equal(straight.index, np.arange(N))
    np.testing.assert_allclose(np.linalg.norm(straight.quat, axis=1), 1.0, atol=1e-5)
    assert (straight.quat[:, 0] >= 0).all()
    offset = straight.position - np.asarray(CUBE_HOME)
    assert (np.abs(offset[:, :2]) < 0.1).all() and (straight.position[:, 2] > 0.1).all()
    assert len({tuple(np.round(q, 3)) for q in straight.quat}) == N  # orientations differ
    assert straight.images.std() > 10  # not blank


def test_interrupted_run_resumes_without_duplicates_or_gaps(tmp_path, straight):
    def stop_after_first(k):
        if k == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        write_dataset(tmp_path, SETTINGS, N, n_envs=4, progress=False, on_shard=stop_after_first)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["shard"] for e in manifest["shards"]] == [0, 1]
    with pytest.raises(DatasetError, match="missing"):
        load_dataset(tmp_path, limit=N).images  # noqa: B018  (two shards of three: sample 8 onwards is missing)
    (tmp_path / "shard_00002.tmp.npz").write_bytes(b"half a shard")  # what a crash mid-write leaves
    rendered = []
    write_dataset(tmp_path, SETTINGS, N, n_envs=4, progress=False, on_shard=rendered.append)
    assert rendered == [2]  # only the missing shard was rendered again
    assert not list(tmp_path.glob("*.tmp*"))
    resumed = load_dataset(tmp_path)
    np.testing.assert_array_equal(resumed.index, np.arange(N))
    for key in ("images", "position", "quat"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(straight, key))


def test_rendering_processes_write_the_same_samples(tmp_path, straight):
    write_dataset(tmp_path, SETTINGS, 4, n_envs=4, progress=False)  # shard 0 serially, then a parallel resume
    first = json.loads((tmp_path / "manifest.json").read_text())["seconds"]
    rendered = []
    manifest = write_dataset(tmp_path, SETTINGS, N, n_envs=4, progress=False, on_shard=rendered.append, workers=2)
    assert sorted(rendered) == [1, 2]  # each missing shard once, in whichever order the processes finish
    assert [e["shard"] for e in manifest["shards"]] == [0, 1, 2]
    assert manifest["seconds"] > first  # the render time of both passes
    data = load_dataset(tmp_path)
    for key in ("images", "position", "quat", "index"):
        np.testing.assert_array_equal(getattr(data, key), getattr(straight, key))
    with pytest.raises(DatasetError, match="workers must be >= 1"):
        write_dataset(tmp_path, SETTINGS, N, progress=False, workers=0)


def test_a_failed_rendering_process_is_a_dataset_error_that_keeps_finished_shards(tmp_path, monkeypatch):
    write_dataset(tmp_path, SETTINGS, 4, n_envs=4, progress=False)  # shard 0
    monkeypatch.setenv("MUJOCO_GL", "bogus")  # only the spawned processes import mujoco again, and fail
    with pytest.raises(DatasetError, match=r"a rendering process failed .*the 1 finished shards are kept"):
        write_dataset(tmp_path, SETTINGS, N, n_envs=4, progress=False, workers=2)
    assert [e["shard"] for e in json.loads((tmp_path / "manifest.json").read_text())["shards"]] == [0]


def test_damaged_shard_is_rendered_again_and_other_settings_refused(tmp_path, straight):
    write_dataset(tmp_path, SETTINGS, 8, n_envs=4, progress=False)
    (tmp_path / "shard_00001.npz").write_bytes(b"garbage")
    rendered = []
    write_dataset(tmp_path, SETTINGS, N, n_envs=4, progress=False, on_shard=rendered.append)
    assert rendered == [1, 2]  # the damaged shard and the one the larger n adds
    np.testing.assert_array_equal(load_dataset(tmp_path).images, straight.images)
    other = DatasetSettings(randomization="dactyl", height=24, width=24, seed=4, shard_size=4, antialias=0)
    with pytest.raises(DatasetError, match=r"other settings \(seed\)"):
        write_dataset(tmp_path, other, N, progress=False)
    with pytest.raises(DatasetError, match="no manifest.json"):
        load_dataset(tmp_path / "nothing")
    zoomed = DatasetSettings(randomization="dactyl", height=24, width=24, seed=3, shard_size=4, antialias=0, zoom=2.0)
    with pytest.raises(DatasetError, match=r"other settings \(zoom\)"):
        write_dataset(tmp_path, zoomed, N, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["settings"]["zoom"]  # a dataset from before zoom existed: unzoomed, and still resumes
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    rendered = []
    write_dataset(tmp_path, SETTINGS, N, n_envs=4, progress=False, on_shard=rendered.append)
    assert rendered == []


def test_a_sample_depends_only_on_its_seed():
    sampler = PoseSampler("dactyl", 16, 16, n_envs=2, antialias=0)
    try:
        a = sampler.render([sample_seed(0, 5), sample_seed(0, 6)])
        b = sampler.render([sample_seed(0, 6)])  # other copy, other batch, same sample
        np.testing.assert_array_equal(a["images"][1], b["images"][0])
        np.testing.assert_array_equal(a["position"][1], b["position"][0])
    finally:
        sampler.close()
    assert sample_seed(0, 1) != sample_seed(1, 0)
