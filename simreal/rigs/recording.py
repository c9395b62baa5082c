"""Recorded rig episodes, as Minari datasets (HDF5).

Why Minari and not a LeRobot layout: rig episodes are Gymnasium-style
trajectories (dict observations, continuous actions, rewards, terminations),
which is exactly Minari's data model, and Minari's HDF5 layout keeps every
episode in one self-describing group with room for extra groups (commands,
ground-truth state, camera frames) that readers ignore. h5py is the only
dependency; LeRobot's layout needs pyarrow plus video encoding, and is built
around camera-first imitation data. The files open with
``minari.MinariDataset("DIR/data")`` (Minari 0.5; checked with 0.5.4) and with plain h5py.

Layout (one folder per dataset; episodes are appended and flushed to disk
one by one as they end, so a crash loses at most the running episode)::

    DIR/data/metadata.json       Minari's dataset metadata (dataset_id, total_episodes, total_steps,
                                 data_format "hdf5", observation_space, action_space as Minari's
                                 JSON strings, minari_version, env_spec where `minari_env_spec`
                                 finds one) + "simreal": {"format": 1, "rig": RigInfo.to_dict(),
                                 "created": ISO time, "env_spec": why there is none, if none}
    DIR/data/main_data.hdf5
      episode_<i>/               attrs: id, seed, total_steps, and simreal/end (terminated | truncated |
                                 cut_off | interrupted | estop | watchdog | error | closed | detached),
                                 simreal/return, simreal/tags (JSON), simreal/reset_info (JSON, e.g. the
                                 reality's values), simreal/started (ISO time)
        observations/<key>       (N+1, ...) as the policy saw them (noise and all); image keys uint8
        actions                  (N, A) the post-safety actions, exactly what the env/hardware received
        rewards                  (N,) float64
        terminations             (N,) bool
        truncations              (N,) bool   (the last is True for an episode cut short)
        infos/<key>              (N+1,) scalar infos (row 0 from the reset info, zero when it lacks the key)
        commands                 (N, C) post-safety commands in the rig's command units (joint targets, rad)
        policy_actions           (N, A) float64, the policy's raw output (NaN, 1e9, ... as given)
        safety/<flag>            (N,) bool: non_finite, clipped, rate_limited
        timestamps               (N+1,) seconds since the reset (wall clock, monotonic)
        sim_state/qpos, qvel     (N+1, ...) ground truth, simulated rigs only
        frames/<camera>          (N+1, H, W, 3) uint8 camera images, when the rig has cameras

Observation i is the one the action i was chosen from; observation i+1 came back
from it (Minari's convention).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import pathlib
import re
from typing import Any, Iterator, Mapping

import numpy as np

from simreal.rigs.base import RigError, RigInfo, jsonable, space_from_data, space_to_data

FORMAT_VERSION = 1
MINARI_VERSION = "0.5.0"  # the layout Minari 0.5 introduced (metadata.json + HDF5); 0.5.x reads it
DATA_DIR = "data"
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
SAFETY_FLAGS = ("non_finite", "clipped", "rate_limited")


class RecordingError(RigError):
    """A dataset folder that cannot be written or read as asked (one line)."""


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - a declared dependency
        raise RecordingError("recording needs h5py (pip install h5py)") from None
    return h5py


DATASET_ID = re.compile(r"^([A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+-v\d+$")  # Minari's [namespace/]name-vN


def minari_dataset_path(dataset_id: str) -> pathlib.Path:
    """Where Minari looks for ``dataset_id`` (``$MINARI_DATASETS_PATH/<id>``, else ``~/.minari/datasets/<id>``),
    so ``minari.load_dataset(dataset_id)`` finds a recording made there; a one-line error for a bad id."""
    if not isinstance(dataset_id, str) or not DATASET_ID.match(dataset_id):
        raise RecordingError(f"dataset id {dataset_id!r}: expected Minari's form [namespace/]name-vN, e.g. "
                             "'simreal/cartpole-laggy-v0'")
    root = os.environ.get("MINARI_DATASETS_PATH") or os.path.join(os.path.expanduser("~"), ".minari", "datasets")
    return pathlib.Path(root) / dataset_id


def minari_env_spec(info: RigInfo) -> tuple[str | None, str]:
    """The Gymnasium ``EnvSpec`` (JSON) that Minari's ``recover_environment`` makes for a recording of this
    rig, and a note: a simulated rig's registered env with its constructor kwargs, through
    `simreal.registration.recorded_env` (at nominal physics: a reality's randomization is not part of an
    env spec; simreal must be installed where it is recovered). None, with the reason, for real rigs and replays,
    an action repeat above 1 or pixel observations (the recovered env would not step or see as the rig did),
    an unregistered id, or kwargs that are not plain data."""
    import gymnasium as gym

    extra = info.extra or {}
    if info.kind != "sim" or not info.env_id:
        return None, f"a {info.kind} rig without an env id: no Gymnasium env recreates it"
    if int(extra.get("action_repeat") or 1) != 1 or extra.get("pixels"):
        return None, "recorded with an action repeat or pixel observations the registered env does not have"
    try:
        gym.spec(info.env_id)
    except gym.error.Error as exc:
        return None, f"env {info.env_id!r} is not registered ({exc})"
    spec = gym.envs.registration.EnvSpec(info.env_id, entry_point="simreal.registration:recorded_env",
                                         kwargs={"env_id": info.env_id, "float32": _float32(info.observation_space),
                                                 "env_kwargs": dict(extra.get("env_kwargs") or {})},
                                         disable_env_checker=True)
    try:
        text = spec.to_json()
    except (TypeError, ValueError, gym.error.Error) as exc:
        return None, f"env kwargs are not plain data ({exc})"
    return text, f"{info.env_id} at nominal physics (the rig's randomization is not part of the spec)"


def _float32(space) -> bool:
    """Whether every float array of an observation space is float32 (how rigs record what the env gives)."""
    import gymnasium as gym

    boxes = [s for s in getattr(space, "spaces", {"": space}).values() if isinstance(s, gym.spaces.Box)]
    floats = [s for s in boxes if np.issubdtype(s.dtype, np.floating)]
    return bool(floats) and all(s.dtype == np.float32 for s in floats)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "rig"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _atomic_json(path: pathlib.Path, data: Mapping) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_file(path: pathlib.Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _data_dir(path: str | os.PathLike) -> pathlib.Path:
    """DIR or DIR/data -> DIR/data."""
    path = pathlib.Path(path)
    return path if (path / METADATA_FILE).is_file() and path.name == DATA_DIR else path / DATA_DIR


def _info_scalar(value: Any) -> np.ndarray | None:
    """A recordable info value (bool, int, float or a small numeric array) as an array, else None."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return np.asarray(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 64:
        return value
    return None


# ----------------------------------------------------------------------------- writing
@dataclasses.dataclass
class _EpisodeBuffer:
    seed: int | None
    started: str
    reset_info: dict
    observations: dict[str, list]
    frames: dict[str, list]
    sim_state: dict[str, list]
    info_rows: list[dict[str, np.ndarray]]
    actions: list = dataclasses.field(default_factory=list)
    rewards: list = dataclasses.field(default_factory=list)
    terminations: list = dataclasses.field(default_factory=list)
    truncations: list = dataclasses.field(default_factory=list)
    commands: list = dataclasses.field(default_factory=list)
    policy_actions: list = dataclasses.field(default_factory=list)
    safety: dict[str, list] = dataclasses.field(default_factory=lambda: {k: [] for k in SAFETY_FLAGS})
    timestamps: list = dataclasses.field(default_factory=lambda: [0.0])


class DatasetWriter:
    """Writes a rig's episodes to a Minari dataset folder, one flushed episode at a time.

    Usually attached to a rig: ``rig.attach_recorder(DatasetWriter(out, rig.info()))``
    or ``record(rig, out)``; the rig then calls ``begin_episode`` / ``add_step`` /
    ``end_episode``. ``append=True`` continues a dataset that already exists
    (its spaces must match). ``tags`` (plain data, e.g. ``{"agent": "ppo_dr"}``)
    are stored with every following episode; change them with ``set_tags``.
    """

    def __init__(self, path: str | os.PathLike, rig_info: RigInfo, *, dataset_id: str | None = None,
                 tags: Mapping[str, Any] | None = None, append: bool = False, author: str | None = None):
        h5py = _h5py()
        self.root = pathlib.Path(path)
        self.data_dir = self.root / DATA_DIR
        self.h5_path = self.data_dir / MAIN_FILE
        self.meta_path = self.data_dir / METADATA_FILE
        self.rig_info = rig_info
        self.tags: dict[str, Any] = dict(jsonable(dict(tags or {})))
        self._episode: _EpisodeBuffer | None = None
        obs_json = json.dumps(space_to_data(rig_info.observation_space))
        act_json = json.dumps(space_to_data(rig_info.action_space))
        if self.meta_path.exists():
            if not append:
                raise RecordingError(f"{self.root}: already holds a recorded dataset; pass append=True "
                                     "(--append) to add episodes, or choose another folder")
            meta = self._read_meta()
            if meta.get("observation_space") != obs_json or meta.get("action_space") != act_json:
                raise RecordingError(f"{self.root}: the dataset's observation/action spaces differ from rig "
                                     f"{rig_info.name}'s; record into another folder")
            with h5py.File(self.h5_path, "a") as f:
                ids = sorted(int(k.split("_", 1)[1]) for k in f.keys() if k.startswith("episode_"))
                self.total_steps = int(sum(int(f[f"episode_{i}"].attrs["total_steps"]) for i in ids))
            self.next_id = ids[-1] + 1 if ids else 0
            self._meta = meta
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with h5py.File(self.h5_path, "w", track_order=True):
                pass
            self.next_id, self.total_steps = 0, 0
            env_spec, note = minari_env_spec(rig_info)
            self._meta = {
                "dataset_id": dataset_id or f"simreal-{_slug(rig_info.name)}-v0",
                "total_episodes": 0, "total_steps": 0, "data_format": "hdf5",
                "observation_space": obs_json, "action_space": act_json,
                "minari_version": MINARI_VERSION,
                "algorithm_name": "simreal rig recording", "author": author or "simreal",
                "code_permalink": "", "author_email": "",
                "simreal": {"format": FORMAT_VERSION, "rig": rig_info.to_dict(), "created": _now(),
                            "env_spec": note},
            }
            if env_spec is not None:
                self._meta["env_spec"] = env_spec
            self._write_meta()

    # ------------------------------------------------------------------ API
    @property
    def episode_open(self) -> bool:
        return self._episode is not None

    @property
    def total_episodes(self) -> int:
        return self.next_id

    def set_tags(self, **tags: Any) -> None:
        """Replace the tags stored with the following episodes."""
        self.tags = dict(jsonable(tags))

    def begin_episode(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any], seed: int | None = None,
                      frames: Mapping[str, np.ndarray] | None = None,
                      sim_state: Mapping[str, np.ndarray] | None = None) -> None:
        if self._episode is not None:
            self.end_episode("interrupted")
        reset_row = {k: a for k, v in info.items() if k != "safety" and (a := _info_scalar(v)) is not None}
        extra = {k: v for k, v in info.items() if k not in reset_row}
        self._episode = _EpisodeBuffer(
            seed=None if seed is None else int(seed), started=_now(), reset_info=jsonable(extra),
            observations={k: [np.array(v, copy=True)] for k, v in obs.items()},
            frames={k: [np.asarray(v, np.uint8)] for k, v in (frames or {}).items()},
            sim_state={k: [np.array(v, copy=True)] for k, v in (sim_state or {}).items()},
            info_rows=[reset_row])

    def add_step(self, *, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: float, terminated: bool,
                 truncated: bool, info: Mapping[str, Any], command: np.ndarray, policy_action: np.ndarray,
                 safety: Mapping[str, bool], time: float, frames: Mapping[str, np.ndarray] | None = None,
                 sim_state: Mapping[str, np.ndarray] | None = None) -> None:
        ep = self._episode
        if ep is None:
            raise RecordingError("add_step before begin_episode")
        for k, v in obs.items():
            ep.observations.setdefault(k, []).append(np.array(v, copy=True))
        for k, v in (frames or {}).items():
            if k in ep.frames:
                ep.frames[k].append(np.asarray(v, np.uint8))
        for k, v in (sim_state or {}).items():
            if k in ep.sim_state:
                ep.sim_state[k].append(np.array(v, copy=True))
        ep.info_rows.append({k: a for k, v in info.items() if k != "safety" and (a := _info_scalar(v)) is not None})
        ep.actions.append(np.array(action, copy=True))
        ep.rewards.append(float(reward))
        ep.terminations.append(bool(terminated))
        ep.truncations.append(bool(truncated))
        ep.commands.append(np.asarray(command, np.float64).copy())
        ep.policy_actions.append(np.asarray(policy_action, np.float64).copy())
        for flag in SAFETY_FLAGS:
            ep.safety[flag].append(bool(safety.get(flag, False)))
        ep.timestamps.append(float(time))

    def end_episode(self, end: str) -> int:
        """Write the episode (its last truncation is set when it ended without a terminal step); its id."""
        ep, self._episode = self._episode, None
        if ep is None:
            raise RecordingError("end_episode without an open episode")
        n = len(ep.rewards)
        truncations = list(ep.truncations)
        if n and not (ep.terminations[-1] or truncations[-1]):
            truncations[-1] = True  # cut short: Minari's episodes end on a terminal or truncated step
        episode_id = self.next_id
        h5py = _h5py()
        with h5py.File(self.h5_path, "a", track_order=True) as f:
            g = f.create_group(f"episode_{episode_id}")
            g.attrs["id"] = episode_id
            g.attrs["total_steps"] = n
            if ep.seed is not None:
                g.attrs["seed"] = ep.seed
            g.attrs["simreal/end"] = end
            g.attrs["simreal/return"] = float(np.sum(ep.rewards))
            g.attrs["simreal/tags"] = json.dumps(self.tags)
            g.attrs["simreal/reset_info"] = json.dumps(ep.reset_info)
            g.attrs["simreal/started"] = ep.started
            obs_space = self.rig_info.observation_space
            for k, rows in ep.observations.items():
                self._array(g, f"observations/{k}", rows, obs_space[k].shape if k in obs_space.spaces else None)
            self._array(g, "actions", ep.actions, self.rig_info.action_space.shape)
            g.create_dataset("rewards", data=np.asarray(ep.rewards, np.float64).reshape(n))
            g.create_dataset("terminations", data=np.asarray(ep.terminations, bool).reshape(n))
            g.create_dataset("truncations", data=np.asarray(truncations, bool).reshape(n))
            for k, col in self._info_columns(ep.info_rows).items():
                g.create_dataset(f"infos/{k}", data=col)
            self._array(g, "commands", ep.commands, (len(self.rig_info.command_names),))
            self._array(g, "policy_actions", ep.policy_actions, self.rig_info.action_space.shape)
            for flag, values in ep.safety.items():
                g.create_dataset(f"safety/{flag}", data=np.asarray(values, bool).reshape(n))
            g.create_dataset("timestamps", data=np.asarray(ep.timestamps, np.float64))
            for k, rows in ep.sim_state.items():
                self._array(g, f"sim_state/{k}", rows, None)
            for k, rows in ep.frames.items():
                self._array(g, f"frames/{k}", rows, None)
        _fsync_file(self.h5_path)
        self.next_id += 1
        self.total_steps += n
        self._meta.update(total_episodes=self.next_id, total_steps=self.total_steps,
                          dataset_size=round(self.h5_path.stat().st_size / 1e6, 1))
        self._write_meta()
        return episode_id

    def close(self) -> None:
        """Flush an open episode (recorded as ``closed``)."""
        if self._episode is not None:
            self.end_episode("closed")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _array(group, name: str, rows: list, shape: tuple | None) -> None:
        if rows:
            data = np.stack(rows)
        else:
            data = np.zeros((0, *(shape or ())), np.float64)
        if data.dtype == np.uint8 and data.ndim >= 3:
            group.create_dataset(name, data=data, compression="gzip", compression_opts=4,
                                 chunks=(1, *data.shape[1:]) if len(data) else None)
        else:
            group.create_dataset(name, data=data)

    @staticmethod
    def _info_columns(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """One (N+1, ...) column per info key every step had with one shape; row 0 filled from reset."""
        steps = rows[1:]
        if not steps:
            return {}
        keys = [k for k in steps[0] if all(k in r and np.shape(r[k]) == np.shape(steps[0][k]) for r in steps)]
        out = {}
        for k in keys:
            column = np.stack([r[k] for r in steps])
            first = rows[0].get(k)
            if first is None or np.shape(first) != np.shape(steps[0][k]):
                first = np.zeros_like(column[0])
            out[k] = np.concatenate([np.asarray(first, column.dtype)[None], column])
        return out

    def _read_meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RecordingError(f"{self.meta_path}: unreadable dataset metadata ({exc})") from None

    def _write_meta(self) -> None:
        _atomic_json(self.meta_path, self._meta)


def record(rig, path: str | os.PathLike, **kwargs: Any) -> DatasetWriter:
    """Attach a new `DatasetWriter` at ``path`` to ``rig`` (keyword arguments go to the writer)."""
    writer = DatasetWriter(path, rig.info(), **kwargs)
    rig.attach_recorder(writer)
    return writer


# ----------------------------------------------------------------------------- reading
@dataclasses.dataclass
class RecordedEpisode:
    """One recorded episode (arrays as documented in the module docstring)."""

    id: int
    seed: int | None
    end: str
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray]
    commands: np.ndarray
    policy_actions: np.ndarray
    safety: dict[str, np.ndarray]
    timestamps: np.ndarray
    sim_state: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]
    tags: dict[str, Any]
    reset_info: dict[str, Any]

    @property
    def steps(self) -> int:
        return int(len(self.rewards))

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))

    def observation(self, t: int) -> dict[str, np.ndarray]:
        """Observation t (0: after the reset) as a dict of arrays."""
        return {k: v[t] for k, v in self.observations.items()}


class DatasetReader:
    """A recorded dataset: ``len(reader)``, ``reader[i]`` (a `RecordedEpisode`), iteration, metadata.

    ``path`` is the dataset folder (or its ``data`` subfolder).
    """

    def __init__(self, path: str | os.PathLike):
        self.data_dir = _data_dir(path)
        self.meta_path = self.data_dir / METADATA_FILE
        self.h5_path = self.data_dir / MAIN_FILE
        if not self.meta_path.is_file() or not self.h5_path.is_file():
            raise RecordingError(f"{path}: not a recorded dataset (no data/{METADATA_FILE} and data/{MAIN_FILE})")
        try:
            self.metadata: dict[str, Any] = json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RecordingError(f"{self.meta_path}: unreadable dataset metadata ({exc})") from None
        simreal_meta = self.metadata.get("simreal") or {}
        if "rig" not in simreal_meta:
            raise RecordingError(f"{self.meta_path}: no 'simreal.rig' entry; not recorded by simreal")
        self.rig_info = RigInfo.from_dict(simreal_meta["rig"])
        self.observation_space = space_from_data(self.metadata["observation_space"])
        self.action_space = space_from_data(self.metadata["action_space"])
        with _h5py().File(self.h5_path, "r") as f:
            self.episode_ids = sorted(int(k.split("_", 1)[1]) for k in f.keys() if k.startswith("episode_"))

    def __len__(self) -> int:
        return len(self.episode_ids)

    def __iter__(self) -> Iterator[RecordedEpisode]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> RecordedEpisode:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.data_dir}: episode index {index} out of range ({len(self)} episodes)")
        episode_id = self.episode_ids[index]
        with _h5py().File(self.h5_path, "r") as f:
            g = f[f"episode_{episode_id}"]

            def group(name: str) -> dict[str, np.ndarray]:
                return {k: g[name][k][()] for k in g[name].keys()} if name in g else {}

            attrs = g.attrs
            return RecordedEpisode(
                id=int(attrs["id"]), seed=int(attrs["seed"]) if "seed" in attrs else None,
                end=str(attrs.get("simreal/end", "")), observations=group("observations"),
                actions=g["actions"][()], rewards=g["rewards"][()], terminations=g["terminations"][()],
                truncations=g["truncations"][()], infos=group("infos"), commands=g["commands"][()],
                policy_actions=g["policy_actions"][()], safety=group("safety"), timestamps=g["timestamps"][()],
                sim_state=group("sim_state"), frames=group("frames"),
                tags=json.loads(attrs.get("simreal/tags", "{}")),
                reset_info=json.loads(attrs.get("simreal/reset_info", "{}")))

    def summary(self) -> dict[str, Any]:
        """Episodes, steps, how they ended, the rig and the tags seen (plain data)."""
        ends: dict[str, int] = {}
        steps = 0
        tags: list[dict] = []
        with _h5py().File(self.h5_path, "r") as f:
            for i in self.episode_ids:
                attrs = f[f"episode_{i}"].attrs
                end = str(attrs.get("simreal/end", ""))
                ends[end] = ends.get(end, 0) + 1
                steps += int(attrs["total_steps"])
                tag = json.loads(attrs.get("simreal/tags", "{}"))
                if tag not in tags:
                    tags.append(tag)
        return {"dataset_id": self.metadata.get("dataset_id"), "episodes": len(self), "steps": steps,
                "ends": ends, "rig": self.rig_info.name, "kind": self.rig_info.kind,
                "control_dt": self.rig_info.control_dt, "tags": tags}
