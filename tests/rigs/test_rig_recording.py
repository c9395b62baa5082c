"""Recording rig episodes as Minari datasets: round trip, layout, flushing, append, crashes."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from simreal.rigs import DatasetReader, DatasetWriter, FunctionPolicy, RecordingError, record, run_episodes
from simreal.rigs.base import space_from_data
from simreal.rigs.leap import FakeMotorBus, LeapHandRig
from simreal.rigs.sim import SimulatedRig


def _nan_every_7th(rig, seed=0):
    rng = np.random.default_rng(seed)
    calls = [0]

    def act(obs):
        calls[0] += 1
        a = rng.uniform(-1.5, 1.5, (1, *rig.action_space.shape))
        return np.full_like(a, np.nan) if calls[0] % 7 == 0 else a

    return FunctionPolicy(act, rig.observation_space, rig.action_space)


def test_round_trip_of_a_simulated_rig(tmp_path):
    rig = SimulatedRig("cartpole_laggy")
    writer = record(rig, tmp_path / "ds", tags={"agent": "scripted"})
    seen = []
    results = run_episodes(rig, _nan_every_7th(rig), 2, seed=11, max_steps=30,
                           on_step=lambda t, obs, r, info: seen.append((obs["position"].copy(), r)))
    writer.set_tags(agent="zero")
    obs, _ = rig.reset(seed=50)
    for _ in range(5):
        rig.step(np.zeros(1))
    rig.close()  # the running episode is flushed as "closed"

    reader = DatasetReader(tmp_path / "ds")
    assert len(reader) == 3 and [r.end for r in results] == ["cut_off", "cut_off"]
    ep = reader[0]
    assert (ep.id, ep.seed, ep.steps, ep.end, ep.tags) == (0, 11, 30, "cut_off", {"agent": "scripted"})
    assert ep.observations["position"].shape == (31, 3) and ep.actions.shape == (30, 1)
    assert ep.frames == {}
    assert ep.sim_state["qpos"].shape == (31, 2) and ep.timestamps.shape == (31,)
    # what the policy saw and got, bit for bit
    assert np.array_equal(ep.observations["position"][1:], np.array([o for o, _ in seen[:30]]))
    assert np.array_equal(ep.rewards, np.array([r for _, r in seen[:30]]))
    # raw outputs kept (NaN, out of bounds); applied actions are the safe ones
    nan_steps = np.flatnonzero(np.isnan(ep.policy_actions[:, 0]))
    assert list(nan_steps) == [6, 13, 20, 27] and ep.safety["non_finite"][nan_steps].all()
    assert np.all(np.abs(ep.actions) <= 1.0) and np.array_equal(ep.actions[nan_steps], ep.actions[nan_steps - 1])
    assert np.array_equal(ep.commands, ep.actions.astype(np.float64))
    assert ep.safety["clipped"].sum() == np.sum(np.abs(ep.policy_actions[:, 0]) > 1.0)
    assert ep.truncations[-1] and not ep.truncations[:-1].any() and not ep.terminations.any()
    assert reader[1].seed == 12 and reader[2].end == "closed" and reader[2].tags == {"agent": "zero"}
    assert reader.summary()["ends"] == {"cut_off": 2, "closed": 1}
    reality = reader.rig_info.extra["reality"]
    assert reality["name"] == "cartpole_laggy"
    assert ep.reset_info["randomization"]["action_delay"] == pytest.approx(0.04)


def test_camera_frames_are_recorded(tmp_path):
    rig = SimulatedRig("cartpole_nominal", cameras=(24, 32))
    record(rig, tmp_path / "ds")
    rig.reset(seed=0)
    for _ in range(3):
        rig.step(np.ones(1))
    rig.close()
    ep = DatasetReader(tmp_path / "ds")[0]
    frames = ep.frames["camera0"]
    assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
    assert frames.std() > 5 and not np.array_equal(frames[0], frames[3])  # a picture, and the cart moved
    with h5py.File(tmp_path / "ds" / "data" / "main_data.hdf5") as f:
        assert f["episode_0/frames/camera0"].compression == "gzip"


def test_minari_layout(tmp_path):
    rig = SimulatedRig("cartpole_nominal")
    record(rig, tmp_path / "ds")
    run_episodes(rig, _nan_every_7th(rig), 1, seed=0, max_steps=12)
    rig.close()
    meta = json.loads((tmp_path / "ds" / "data" / "metadata.json").read_text())
    for key in ("dataset_id", "total_episodes", "total_steps", "data_format", "observation_space",
                "action_space", "minari_version"):
        assert key in meta
    assert (meta["total_episodes"], meta["total_steps"], meta["data_format"]) == (1, 12, "hdf5")
    assert meta["dataset_id"] == "simreal-sim_cartpole_nominal-v0"
    obs_space = space_from_data(meta["observation_space"])  # a JSON string, as Minari stores it
    assert obs_space == rig.observation_space and space_from_data(meta["action_space"]) == rig.action_space
    with h5py.File(tmp_path / "ds" / "data" / "main_data.hdf5") as f:
        g = f["episode_0"]
        assert set(g) >= {"observations", "actions", "rewards", "terminations", "truncations", "infos"}
        assert set(g["observations"]) == {"position", "velocity"}
        assert (g.attrs["id"], g.attrs["total_steps"], g.attrs["seed"]) == (0, 12, 0)
        assert g["infos"]["timestep.discount"].shape == (13,)  # N + 1 rows, row 0 from the reset


def test_append_and_refusal(tmp_path):
    rig = LeapHandRig(FakeMotorBus(), max_episode_steps=3)
    writer = record(rig, tmp_path / "ds")
    for seed in range(2):
        rig.reset(seed=seed)
        for _ in range(3):
            rig.step(np.zeros(16))
    rig.detach_recorder()
    with pytest.raises(RecordingError, match="already holds a recorded dataset; pass append=True"):
        DatasetWriter(tmp_path / "ds", rig.info())
    again = record(rig, tmp_path / "ds", append=True)
    assert again.total_episodes == 2 and again.total_steps == 6
    rig.reset(seed=9)
    rig.step(np.zeros(16))
    rig.end_episode("cut_off")
    reader = DatasetReader(tmp_path / "ds")
    assert [reader[i].seed for i in range(3)] == [0, 1, 9]
    assert [reader[i].end for i in range(3)] == ["truncated", "truncated", "cut_off"]
    assert writer.total_episodes == 2
    other = SimulatedRig("cartpole_nominal")
    with pytest.raises(RecordingError, match="spaces differ"):
        DatasetWriter(tmp_path / "ds", other.info(), append=True)
    with pytest.raises(RecordingError, match="not a recorded dataset"):
        DatasetReader(tmp_path / "nothing")


def test_episodes_are_on_disk_as_soon_as_they_end(tmp_path):
    """A recording process killed mid-episode loses only that episode."""
    script = textwrap.dedent("""
        import sys, time
        import numpy as np
        from simreal.rigs import record
        from simreal.rigs.leap import FakeMotorBus, LeapHandRig
        rig = LeapHandRig(FakeMotorBus(), max_episode_steps=4)
        record(rig, sys.argv[1])
        for seed in range(2):
            rig.reset(seed=seed)
            for _ in range(4):
                rig.step(np.full(16, 0.1 * seed))
        rig.reset(seed=2)
        rig.step(np.zeros(16))
        print("mid-episode", flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "ds")], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "mid-episode"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    reader = DatasetReader(tmp_path / "ds")
    assert len(reader) == 2 and [ep.steps for ep in reader] == [4, 4]
    assert np.allclose(reader[1].policy_actions, 0.1)
    assert json.loads((tmp_path / "ds" / "data" / "metadata.json").read_text())["total_episodes"] == 2


def test_minari_reads_the_dataset_when_installed(tmp_path):
    minari = pytest.importorskip("minari")
    rig = SimulatedRig("cartpole_nominal")
    record(rig, tmp_path / "ds")
    run_episodes(rig, _nan_every_7th(rig), 2, seed=0, max_steps=8)
    rig.close()
    dataset = minari.MinariDataset(str(tmp_path / "ds" / "data"))
    assert dataset.total_episodes == 2 and dataset.total_steps == 16
    episode = dataset[1]
    assert episode.observations["position"].shape == (9, 3) and episode.actions.shape == (8, 1)


def test_minari_recovers_the_env_and_finds_a_dataset_recorded_under_its_id(tmp_path, monkeypatch, capsys):
    minari = pytest.importorskip("minari")
    from simreal.cli import main
    from simreal.rigs.recording import RecordingError, minari_dataset_path

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert main(["rig", "record", "sim:cartpole_nominal", "--policy", "random", "--episodes", "2", "--max-steps", "5",
                 "--minari-dataset-id", "simreal/cartpole-random-v0", "--quiet"]) == 0
    dataset = minari.load_dataset("simreal/cartpole-random-v0")
    assert dataset.total_episodes == 2 and dataset.total_steps == 10
    env = dataset.recover_environment()
    assert env.observation_space == dataset.observation_space and env.action_space == dataset.action_space
    env.close()
    with pytest.raises(RecordingError, match="expected Minari's form"):
        minari_dataset_path("no version")
    capsys.readouterr()
    # a rig whose env steps differently (an action repeat) gets no env spec, and says why
    rig = SimulatedRig("cartpole_nominal", action_repeat=2)
    record(rig, tmp_path / "repeat")
    run_episodes(rig, _nan_every_7th(rig), 1, seed=0, max_steps=3)
    rig.close()
    meta = json.loads((tmp_path / "repeat" / "data" / "metadata.json").read_text())
    assert "env_spec" not in meta and "action repeat" in meta["simreal"]["env_spec"]


def test_the_excitation_policy_is_bounded_repeats_per_episode_and_records_from_the_cli(tmp_path, capsys):
    from simreal.cli import main
    from simreal.rigs.rollout import ExcitationPolicy

    rig = SimulatedRig("cartpole_nominal")
    policy = ExcitationPolicy(rig, seed=3, amplitude=0.8)
    state, actions = policy.initial_state(2), []
    obs = {k: np.zeros((2, *s.shape), s.dtype) for k, s in rig.observation_space.spaces.items()}
    for _ in range(70):
        action, state = policy.act(obs, state)
        actions.append(action)
    actions = np.stack(actions)
    assert np.all(np.abs(actions) <= 0.8 + 1e-6) and actions.std() > 0.1  # cart-pole's bounds are [-1, 1]
    np.testing.assert_array_equal(actions[:, 0], actions[:, 1])
    state = policy.reset_state(state, np.array([True, False]))
    first, _ = policy.act(obs, state)
    assert first[0] == actions[0, 0] and first[1] != actions[0, 1]
    with pytest.raises(ValueError, match="amplitude"):
        ExcitationPolicy(rig, amplitude=2.0)
    rig.close()
    assert main(["rig", "record", "sim:cartpole_nominal", "--policy", "excite", "--episodes", "1", "--max-steps",
                 "6", "--out", str(tmp_path / "excite"), "--quiet"]) == 0
    assert DatasetReader(tmp_path / "excite")[0].steps == 6
