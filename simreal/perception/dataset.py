"""Labelled renders for the pose estimator: the hand in random reachable poses, the cube in and around it.

A sample is the three camera images of one randomized scene and the cube's
pose (world position in metres, orientation as a unit quaternion w, x, y, z
with w >= 0). Sample k is a pure function of (dataset seed, k) and the
settings: its hand pose, cube pose, physics and visual randomization all come
from streams seeded by ``sample_seed(seed, k)``. So a dataset can be written
in any order, by shards, and an interrupted run resumes without duplicates or
gaps: a shard is either complete on disk (listed in the manifest, its checksum
matching) or rendered again, identically.

Pose sampling, per sample:

* hand: each joint interpolates between its nominal angle and a uniform draw
  within its limits, by one "spread" c ~ U(0, 1) per sample (c = 0 is the
  nominal open hand, c = 1 a uniformly random pose); actuators hold the pose;
* cube: uniformly random orientation, dropped from ``CUBE_HOME`` plus an offset
  uniform in +-``spread_xy`` (x, y) and [0, ``drop_height``] (z);
* physics (with the file's physics randomization) runs ``settle_time`` so the
  cube lands on the palm, rests against fingers or falls past them; cubes that
  end below ``min_height`` (out of the cameras' view) are dropped again, from
  the sample's own stream.

Layout of a dataset folder::

    DIR/manifest.json        settings, the finished shards with their sha256, and ``seconds``: the
                             render time of all passes together
    DIR/shard_00000.npz      images (n, cameras, H, W, 3) uint8, position (n, 3), quat (n, 4),
                             index (n,) sample numbers; written to a temporary name, then renamed
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import mujoco
import numpy as np

from simreal.envs import scene as scene_mod
from simreal.utils.rotations import quat_canonical, random_quat
from simreal.utils.seeding import make_rng

FORMAT = "simreal-pose-dataset"
VERSION = 1


class DatasetError(ValueError):
    """A dataset folder that cannot be used as asked (one line)."""


@dataclass(frozen=True)
class PoseSampling:
    """How hand and cube poses are drawn (see the module docstring)."""

    spread_xy: float = 0.035
    drop_height: float = 0.04
    settle_time: float = 0.12
    min_height: float = 0.1
    max_attempts: int = 8

    def __post_init__(self):
        for name in ("spread_xy", "drop_height", "settle_time"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"PoseSampling.{name} must be in [0, 1]; got {getattr(self, name)!r}")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"PoseSampling.max_attempts must be an integer >= 1; got {self.max_attempts!r}")


@dataclass(frozen=True)
class DatasetSettings:
    """Everything a dataset's pixels depend on; a resumed dataset must match it exactly."""

    randomization: str
    height: int = 64
    width: int = 64
    seed: int = 0
    shard_size: int = 500
    antialias: int = 4  # multisamples per pixel (the scene's default); 0 renders 2-3x faster on CPUs
    zoom: float = 1.0  # camera magnification (MultiCameraRenderer): the central 1/zoom of each view
    sampling: PoseSampling = field(default_factory=PoseSampling)
    cameras: tuple[str, ...] = tuple(c.name for c in scene_mod.DEFAULT_CAMERAS)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cameras"] = list(self.cameras)
        return out


def default_workers() -> int:
    """Rendering processes by default: the cores this process may use, at most 8 (one renderer per core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores))


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a dataset seeded ``seed`` (a 32-bit integer)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class PoseSampler:
    """Renders labelled samples with an N-copy hand-cube simulation, N samples at a time."""

    def __init__(self, randomization, height: int, width: int, n_envs: int = 8,
                 sampling: PoseSampling | None = None, cameras: Sequence[str] | None = None, nthread: int = 1,
                 antialias: int | None = None, zoom: float = 1.0):
        from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim
        from simreal.render.multicam import MultiCameraRenderer

        self.sampling = sampling or PoseSampling()
        config = HandCubeConfig(settle_time=0.0)
        self.sim = HandCubeSim(n_envs, config, nthread=nthread)
        self.sim.set_randomization(None if randomization in (None, "", "none") else randomization)
        names = list(cameras) if cameras is not None else [c.name for c in config.scene.cameras]
        self.renderer = MultiCameraRenderer(self.sim, height, width, cameras=names,
                                            hidden_group=scene_mod.GOAL_GEOM_GROUP, antialias=antialias,
                                            zoom=zoom)
        m = self.sim.model
        hand = [m.joint(j).id for j in self.sim.hand_joint_names]
        self._low = m.jnt_range[hand, 0].copy()
        self._high = m.jnt_range[hand, 1].copy()
        self._nominal = np.clip(m.qpos0[self.sim.hand_qadr], self._low, self._high)
        self._settle = int(round(self.sampling.settle_time / config.scene.timestep))
        self._home = np.asarray(scene_mod.CUBE_HOME, float)

    @property
    def n_envs(self) -> int:
        return self.sim.n_envs

    def _place(self, ids: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Reset copies ids to a new random hand pose with the cube above it, at rest."""
        sim, s = self.sim, self.sampling
        sim.batch.reset(ids, stage=int(mujoco.mjtStage.mjSTAGE_NONE))
        if sim.randomization is not None:
            sim.randomization.on_reset(ids)
        o = sim.obj_qadr
        for i, rng in zip(ids, rngs):
            spread = rng.random()
            target = self._low + (self._high - self._low) * rng.random(len(self._low))
            q = self._nominal + spread * (target - self._nominal)
            sim.qpos[i, sim.hand_qadr] = q
            offset = np.array([rng.uniform(-s.spread_xy, s.spread_xy), rng.uniform(-s.spread_xy, s.spread_xy),
                               rng.uniform(0.0, s.drop_height)])
            sim.qpos[i, o:o + 3] = self._home + offset
            sim.qpos[i, o + 3:o + 7] = random_quat(rng, 1)[0]
        sim.qvel[ids] = 0.0
        sim.ctrl[ids] = np.clip(sim.qpos[np.ix_(ids, sim.act_qadr)], sim.ctrl_low, sim.ctrl_high)
        if self._settle:
            sim.batch.step(ids, nstep=self._settle, stage=int(mujoco.mjtStage.mjSTAGE_VEL))
        else:
            sim.batch.forward(ids, stage=int(mujoco.mjtStage.mjSTAGE_VEL))

    def render(self, seeds: Sequence[int]) -> dict[str, np.ndarray]:
        """Samples seeded ``seeds`` (at most n_envs): images, position, quat."""
        n = len(seeds)
        if not 0 < n <= self.n_envs:
            raise ValueError(f"render takes 1 to {self.n_envs} seeds; got {n}")
        sim = self.sim
        ids = np.arange(n)
        rngs = []
        for i, seed in zip(ids, seeds):
            sim.seed(int(i), int(seed))  # the copy's randomizers (physics and visual) restart from the sample's seed
            rngs.append(make_rng(int(seed), "pose-sample"))
        pending = ids
        for _ in range(self.sampling.max_attempts):
            self._place(pending, [rngs[i] for i in pending])
            height = sim.qpos[pending, sim.obj_qadr + 2]
            pending = pending[height < self.sampling.min_height]  # fell out of view: draw again
            if not len(pending):
                break
        o = sim.obj_qadr
        position = sim.qpos[ids, o:o + 3].astype(np.float32)
        quat = quat_canonical(sim.qpos[ids, o + 3:o + 7] / np.linalg.norm(sim.qpos[ids, o + 3:o + 7], axis=1,
                                                                             keepdims=True)).astype(np.float32)
        images = self.renderer.render_many(ids)
        return {"images": images, "position": position, "quat": quat}

    def close(self) -> None:
        self.renderer.close()


# ---------------------------------------------------------------- folders
def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json_atomic(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _spec_fingerprint(randomization: str) -> str:
    """sha256 of the resolved randomization (after extends), so a changed file is noticed on resume."""
    if randomization in ("", "none"):
        return "none"
    from simreal.randomize.spec import load_spec

    spec = load_spec(randomization)
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def read_manifest(folder: str | os.PathLike) -> dict:
    path = pathlib.Path(folder) / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: not a pose dataset (no manifest.json); make one with `simreal pose "
                           "dataset`") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc})") from None
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise DatasetError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    data["settings"].setdefault("zoom", 1.0)  # manifests from before zoom are unzoomed
    return data


def _render_shard(sampler: PoseSampler, settings: DatasetSettings, folder: pathlib.Path, k: int, n: int) -> dict:
    """Render shard k of an n-sample dataset into folder (a temporary name, then renamed); its manifest entry."""
    size = settings.shard_size
    start, count = k * size, min(size, n - k * size)
    parts = []
    for first in range(start, start + count, sampler.n_envs):
        idx = range(first, min(first + sampler.n_envs, start + count))
        parts.append(sampler.render([sample_seed(settings.seed, j) for j in idx]))
    shard = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    shard["index"] = np.arange(start, start + count, dtype=np.int64)
    file = folder / f"shard_{k:05d}.npz"
    tmp = folder / f"shard_{k:05d}.tmp.npz"
    with open(tmp, "wb") as f:
        np.savez(f, **shard)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file)
    return {"shard": k, "file": file.name, "start": start, "count": count, "sha256": _sha256(file)}


def _new_sampler(settings: DatasetSettings, n_envs: int) -> PoseSampler:
    return PoseSampler(settings.randomization, settings.height, settings.width, n_envs=n_envs,
                       sampling=settings.sampling, cameras=settings.cameras, antialias=settings.antialias,
                       zoom=settings.zoom)


_worker_sampler: PoseSampler | None = None  # one per rendering process (write_dataset's workers)


def _worker_init(settings: DatasetSettings, n_envs: int) -> None:
    global _worker_sampler
    _worker_sampler = _new_sampler(settings, n_envs)


def _worker_shard(settings: DatasetSettings, folder: pathlib.Path, k: int, n: int) -> dict:
    return _render_shard(_worker_sampler, settings, folder, k, n)


def write_dataset(folder: str | os.PathLike, settings: DatasetSettings, n: int, n_envs: int = 8,
                  progress: bool = True, on_shard: Callable[[int], None] | None = None, workers: int = 1) -> dict:
    """Render ``n`` samples into ``folder`` in shards, resuming whatever an earlier run finished.

    Returns the manifest. ``on_shard(k)`` is called after shard k is safely on
    disk (tests use it to interrupt a run). ``workers`` > 1 renders shards in
    that many processes at once (the renderer is single-threaded: one per core);
    a sample's pixels do not depend on which process rendered it.
    """
    from tqdm import tqdm

    if n < 1:
        raise DatasetError(f"n must be >= 1; got {n}")
    if workers < 1:
        raise DatasetError(f"workers must be >= 1; got {workers}")
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint = _spec_fingerprint(settings.randomization)
    wanted = dict(settings.to_dict(), randomization_sha256=fingerprint)
    path = folder / "manifest.json"
    if path.exists():
        manifest = read_manifest(folder)
        if manifest["settings"] != wanted:
            diff = sorted(k for k in wanted if manifest["settings"].get(k) != wanted[k])
            raise DatasetError(f"{folder}: holds a dataset made with other settings ({', '.join(diff)}); "
                               "resume with the same ones or choose another --out")
        n = manifest["n"] = max(int(manifest["n"]), n)  # a larger n extends a dataset; a smaller one never shrinks it
    else:
        manifest = {"format": FORMAT, "version": VERSION, "settings": wanted, "n": n, "shards": []}
    for stale in folder.glob("*.tmp*"):
        stale.unlink()
    size = settings.shard_size
    n_shards = -(-n // size)
    done = {}
    for entry in manifest["shards"]:
        file = folder / entry["file"]
        if file.is_file() and _sha256(file) == entry["sha256"]:
            done[int(entry["shard"])] = entry
    todo = [k for k in range(n_shards) if k not in done or done[k]["count"] != min(size, n - k * size)]
    total = sum(min(size, n - k * size) for k in todo)
    t0 = time.perf_counter()
    rendered_before = float(manifest.get("seconds", 0.0))  # render time of earlier passes

    def finished(entry: dict, bar) -> None:
        done[entry["shard"]] = entry
        manifest["shards"] = [done[j] for j in sorted(done)]
        manifest["seconds"] = round(rendered_before + time.perf_counter() - t0, 2)
        _write_json_atomic(path, manifest)
        bar.update(entry["count"])
        if on_shard is not None:
            on_shard(entry["shard"])

    workers = min(workers, len(todo))
    with tqdm(total=total, desc=f"rendering {folder.name}", unit="sample", disable=not progress) as bar:
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn, not fork: each process opens its own GL context from a clean start
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init, initargs=(settings, n_envs)) as pool:
                futures = [pool.submit(_worker_shard, settings, folder, k, n) for k in todo]
                try:
                    for future in as_completed(futures):
                        finished(future.result(), bar)
                except BaseException as exc:  # an interrupt or a failed shard: stop handing out shards
                    pool.shutdown(wait=False, cancel_futures=True)
                    if isinstance(exc, Exception) and not isinstance(exc, DatasetError):
                        raise DatasetError(
                            f"{folder}: a rendering process failed ({type(exc).__name__}: {exc}); the "
                            f"{len(done)} finished shards are kept and a rerun resumes from them "
                            "(one worker, `--workers 1`, renders in this process and shows the full error)") from exc
                    raise
        elif todo:
            sampler = _new_sampler(settings, n_envs)
            try:
                for k in todo:
                    finished(_render_shard(sampler, settings, folder, k, n), bar)
            finally:
                sampler.close()
    return manifest  # finished() wrote it after each shard; with nothing to render it is as it was on disk


@dataclass
class PoseData:
    """A dataset in memory: images (n, cameras, H, W, 3) uint8, position (n, 3), quat (n, 4), index (n,)."""

    images: np.ndarray
    position: np.ndarray
    quat: np.ndarray
    index: np.ndarray
    settings: dict

    def __len__(self) -> int:
        return len(self.index)


def load_dataset(folder: str | os.PathLike, limit: int | None = None) -> PoseData:
    """Every finished shard of a dataset, in sample order (checks that no sample is missing)."""
    folder = pathlib.Path(folder)
    manifest = read_manifest(folder)
    shards = sorted(manifest["shards"], key=lambda e: e["start"])
    expected = 0
    for entry in shards:
        if entry["start"] != expected:
            raise DatasetError(f"{folder}: samples {expected}-{entry['start'] - 1} are missing; resume "
                               "`simreal pose dataset` with the same --out to finish it")
        expected += entry["count"]
        if limit is not None and expected >= limit:
            break
    if expected == 0:
        raise DatasetError(f"{folder}: no finished shard yet")
    wanted = int(manifest["n"]) if limit is None else min(int(limit), int(manifest["n"]))
    if expected < wanted:
        raise DatasetError(f"{folder}: samples {expected}-{wanted - 1} are missing (an interrupted run?); resume "
                           "`simreal pose dataset` with the same --out to finish it")
    parts = []
    for entry in shards:
        with np.load(folder / entry["file"]) as z:
            parts.append({k: z[k] for k in ("images", "position", "quat", "index")})
        if limit is not None and sum(len(p["index"]) for p in parts) >= limit:
            break
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if limit is not None:
        data = {k: v[:limit] for k, v in data.items()}
    if not np.array_equal(data["index"], np.arange(len(data["index"]))):
        raise DatasetError(f"{folder}: shard contents do not follow sample order (a damaged dataset?)")
    return PoseData(settings=manifest["settings"], **data)
