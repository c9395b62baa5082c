"""Sim-to-real studies: agents x training randomizations x seeds, trained, then evaluated on every rig.

A study file (``studies/*.yaml``) names the matrix::

    version: 1
    name: hand_transfer
    metric: consecutive_successes     # or ``return``
    success_threshold: 1.0            # a mean below this on a setting is a failure there
    steps: 3000000                    # env steps of every trained cell (same budget for all)
    seeds: [0]
    randomizations: [dactyl, none]    # training files of agents that do not name their own
    agents:
      - {name: ppo, agent: ppo, presets: [hand_cube], set: [env.nthread=1], vision: true}
      - {name: dreamer, agent: dreamer, presets: [dreamer_v3, hand_cube], randomizations: [none],
         steps: 100000}                                       # an agent's own budget, over the study's
      - {name: shipped, run_dir: assets/policies/ppo_dr}      # a finished run: evaluated, never trained
    pose_estimator: assets/policies/pose_estimator            # for the agents with ``vision: true``
    rigs: [sim:hand_laggy, sim:hand_heavy_slippery]
    evaluation: {episodes: 20, seed: 1000, max_steps: null}

Each trained cell is ``agent x randomization x seed`` in ``OUT/runs/<agent>-<randomization>/seed<k>``
(any agent of `simreal.training.agents.REGISTRY`, with its presets and ``--set`` overrides, then
``env.randomization``, ``run.seed`` and ``run.steps`` from the study). A cell that finished is
skipped, one that was stopped resumes from its checkpoint, and one whose saved config differs from
what the study asks is refused. Every row (a cell; and, for ``vision: true``, the same cell acting
on the pose the CNN estimates from the rig's camera images) runs ``episodes`` episodes on nominal
simulation and on every rig with the same episode seeds; rig episodes are recorded under
``OUT/logs``, per-episode results under ``OUT/eval`` (reused on a rerun while the policy file is
unchanged).

`simreal.evaluation.study_report.summarize_study` gives, per row and setting, the mean of the
metric, the drop rate and the rig-to-sim ratio with bootstrap 95% confidence intervals (seeds
resampled, then episodes within each seed; the ratio pairs sim and rig episodes of the same seed),
and `verdict` says in plain words what the numbers show, and never names a winner where every agent
fails.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import math
import multiprocessing
import pathlib
import shutil
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from simreal.evaluation.study_report import StudyError, summarize_study, write_json, write_report
from simreal.utils.provenance import file_sha256, git_commit

METRICS = ("consecutive_successes", "return")
_AGENT_KEYS = {"name", "agent", "presets", "set", "randomizations", "steps", "vision", "run_dir", "init_from"}
_TOP_KEYS = {"version", "name", "description", "metric", "success_threshold", "steps", "seeds", "randomizations",
             "agents", "rigs", "pose_estimator", "evaluation"}
_EVAL_KEYS = {"episodes", "seed", "max_steps"}


# ----------------------------------------------------------------------------- the study file
@dataclasses.dataclass(frozen=True)
class AgentEntry:
    name: str
    agent: str | None                  # a registered agent to train; None for a given run_dir
    presets: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    randomizations: tuple[str, ...] = ()
    vision: bool = False
    run_dir: pathlib.Path | None = None
    steps: int | None = None           # this agent's budget, over the study's
    init_from: tuple[tuple[str, pathlib.Path], ...] = ()  # (randomization, export) each cell starts from


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    source: pathlib.Path
    metric: str
    success_threshold: float
    steps: int | None
    seeds: tuple[int, ...]
    agents: tuple[AgentEntry, ...]
    rigs: tuple[str, ...]
    episodes: int
    eval_seed: int
    max_steps: int | None
    pose_estimator: pathlib.Path | None = None
    description: str = ""


def _err(source, key: str, message: str) -> StudyError:
    return StudyError(f"{source}: {key}: {message}")


def _int(value, source, key: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _err(source, key, f"expected a whole number >= {low}, got {value!r}")
    return int(value)


def _names(value, source, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _err(source, key, f"expected a list of names, got {value!r}")
    return tuple(v.strip() for v in value)


def _path(value, source: pathlib.Path, key: str) -> pathlib.Path:
    """A path from the study file: as given when it exists (relative to the working folder), else
    relative to the study file's folder."""
    if not isinstance(value, str) or not value:
        raise _err(source, key, f"expected a path, got {value!r}")
    path = pathlib.Path(value).expanduser()
    if path.exists() or path.is_absolute():
        return path
    beside = source.parent / path
    return beside if beside.exists() else path


def _label(randomization: str) -> str:
    return pathlib.Path(randomization).stem if randomization.endswith((".yaml", ".yml")) else randomization


def _init_from(value, randomizations: Sequence[str], source: pathlib.Path, key: str):
    """An agent's ``init_from``: one export for all its cells, or a mapping from each of its training
    randomizations to the export that cell continues (``run.init_from`` of the agent)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = {rand: value for rand in randomizations}
    if not isinstance(value, dict):
        raise _err(source, key, f"expected a path or a mapping of randomization to path, got {value!r}")
    extra = sorted(set(value) - set(randomizations))
    missing = [rand for rand in randomizations if rand not in value]
    if extra or missing:
        raise _err(source, key, f"expected one export for each of the agent's randomizations "
                   f"({', '.join(randomizations)}); {'not one: ' + extra[0] if extra else 'missing: ' + missing[0]}")
    pairs = []
    for rand in randomizations:
        path = _path(value[rand], source, f"{key}.{rand}")
        if not (path / "policy.pt" if path.is_dir() else path).is_file():
            raise _err(source, f"{key}.{rand}", f"{path}: no policy export there (a policy.pt or its folder)")
        pairs.append((rand, path))
    return tuple(pairs)


def parse_study(data: Any, source: str | pathlib.Path = "<memory>") -> Study:
    """Validate a loaded study file; every problem is one line naming the key."""
    from simreal.training.agents import REGISTRY

    source = pathlib.Path(source)
    if data is None:
        raise StudyError(f"{source}: the file is empty")
    if not isinstance(data, dict):
        raise StudyError(f"{source}: (top level): expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise _err(source, str(key), f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    if data.get("version", 1) != 1:
        raise _err(source, "version", f"expected 1, got {data.get('version')!r}")
    metric = data.get("metric", "consecutive_successes")
    if metric not in METRICS:
        raise _err(source, "metric", f"expected one of {', '.join(METRICS)}, got {metric!r}")
    if "success_threshold" in data:
        threshold = data["success_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise _err(source, "success_threshold", f"expected a finite number, got {threshold!r}")
    elif metric == "consecutive_successes":
        threshold = 1.0
    else:
        raise _err(source, "success_threshold", "required with metric 'return' (the return below which an agent "
                   "fails the task)")
    steps = data.get("steps")
    steps = None if steps is None else _int(steps, source, "steps", 1)
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise _err(source, "seeds", f"expected a non-empty list of whole numbers, got {seeds!r}")
    seeds = tuple(_int(s, source, f"seeds[{i}]") for i, s in enumerate(seeds))
    if len(set(seeds)) != len(seeds):
        raise _err(source, "seeds", f"a seed is listed twice: {list(seeds)}")
    default_rand = _names(data.get("randomizations", ["none"]), source, "randomizations")
    agents_data = data.get("agents")
    if not isinstance(agents_data, list) or not agents_data:
        raise _err(source, "agents", "required: a non-empty list of agents")
    agents = []
    for i, entry in enumerate(agents_data):
        key = f"agents[{i}]"
        if not isinstance(entry, dict):
            raise _err(source, key, f"expected a mapping, got {entry!r}")
        for k in entry:
            if k not in _AGENT_KEYS:
                raise _err(source, f"{key}.{k}", f"unknown key (known: {', '.join(sorted(_AGENT_KEYS))})")
        name = entry.get("name")
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise _err(source, f"{key}.name", f"expected a name of letters, digits, _ and -, got {name!r}")
        run_dir = entry.get("run_dir")
        if run_dir is not None:
            extra = sorted(set(entry) - {"name", "run_dir", "vision"})
            if extra:
                raise _err(source, f"{key}.{extra[0]}", "a given run_dir is evaluated as it is: no training keys")
            agent, run_dir = None, _path(run_dir, source, f"{key}.run_dir")
            if not (run_dir / "config.yaml").is_file() or not (run_dir / "policy.pt").is_file():
                raise _err(source, f"{key}.run_dir", f"{run_dir} is not a finished run (config.yaml and policy.pt)")
        else:
            agent = entry.get("agent")
            if agent not in REGISTRY:
                raise _err(source, f"{key}.agent", f"expected one of {', '.join(sorted(REGISTRY))}, got {agent!r}")
        overrides = entry.get("set", [])
        if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
            raise _err(source, f"{key}.set", f"expected a list of 'key.path=value' strings, got {overrides!r}")
        vision = entry.get("vision", False)
        if not isinstance(vision, bool):
            raise _err(source, f"{key}.vision", f"expected true or false, got {vision!r}")
        rands = _names(entry["randomizations"], source, f"{key}.randomizations") if "randomizations" in entry \
            else default_rand
        init_from = _init_from(entry.get("init_from"), rands, source, f"{key}.init_from")
        agents.append(AgentEntry(name=name, agent=agent, presets=_names(entry.get("presets", []), source,
                                                                          f"{key}.presets"),
                                 overrides=tuple(overrides), randomizations=() if run_dir else rands,
                                 vision=vision, run_dir=run_dir,
                                 steps=None if entry.get("steps") is None else _int(entry["steps"], source,
                                                                                   f"{key}.steps", 1),
                                 init_from=init_from))
    names = [a.name for a in agents]
    for name in names:
        if names.count(name) > 1:
            raise _err(source, "agents", f"the name {name!r} is used twice")
    rigs = _names(data.get("rigs", []), source, "rigs")
    if not rigs:
        raise _err(source, "rigs", "required: a list of rigs to evaluate on (e.g. sim:hand_laggy)")
    evaluation = data.get("evaluation", {}) or {}
    if not isinstance(evaluation, dict):
        raise _err(source, "evaluation", f"expected a mapping, got {evaluation!r}")
    for k in evaluation:
        if k not in _EVAL_KEYS:
            raise _err(source, f"evaluation.{k}", f"unknown key (known: {', '.join(sorted(_EVAL_KEYS))})")
    max_steps = evaluation.get("max_steps")
    pose = data.get("pose_estimator")
    pose = None if pose is None else _path(pose, source, "pose_estimator")
    if any(a.vision for a in agents):
        if pose is None:
            raise _err(source, "pose_estimator", "required when an agent has vision: true")
        if not estimator_file(pose).is_file():
            raise _err(source, "pose_estimator", f"{pose}: no pose estimator export there "
                       "(train one with `simreal pose train`)")
    description = data.get("description", "")
    return Study(name=str(data.get("name") or source.stem), source=source, metric=metric,
                 success_threshold=float(threshold), steps=steps, seeds=seeds, agents=tuple(agents), rigs=rigs,
                 episodes=_int(evaluation.get("episodes", 10), source, "evaluation.episodes", 1),
                 eval_seed=_int(evaluation.get("seed", 1000), source, "evaluation.seed"),
                 max_steps=None if max_steps is None else _int(max_steps, source, "evaluation.max_steps", 1),
                 pose_estimator=pose, description=str(description))


def load_study(path: str | pathlib.Path) -> Study:
    from simreal.randomize.spec import RandomizationError, read_yaml

    path = pathlib.Path(path)
    try:
        data = read_yaml(path)  # one reader for every YAML a user writes: UTF-8, empty, depth, YAML errors
    except RandomizationError as exc:
        raise StudyError(str(exc)) from None
    return parse_study(data, path)


def with_settings(study: Study, *, steps: int | None = None, seeds: Sequence[int] | None = None,
                  episodes: int | None = None, agents: Sequence[str] | None = None) -> Study:
    """The study with command-line replacements of its budget, seeds or episode count, or only some of
    its agents (by name; an unknown name is a `StudyError` listing the file's)."""
    changes: dict[str, Any] = {}
    if agents is not None:
        known = [a.name for a in study.agents]
        unknown = [a for a in agents if a not in known]
        if unknown or not agents:
            raise StudyError(f"--agents: {', '.join(unknown) or '(none)'}: not an agent of {study.source} "
                             f"(its agents: {', '.join(known)})")
        changes["agents"] = tuple(a for a in study.agents if a.name in agents)
    if steps is not None:
        changes["steps"] = int(steps)
    if seeds is not None:
        changes["seeds"] = tuple(int(s) for s in seeds)
    if episodes is not None:
        changes["episodes"] = int(episodes)
    return dataclasses.replace(study, **changes)


# ----------------------------------------------------------------------------- cells
@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the study (or a given finished run)."""

    label: str                # agent name and training randomization, e.g. ppo-dactyl
    entry: AgentEntry
    randomization: str | None
    seed: int
    run_dir: pathlib.Path

    @property
    def trained_here(self) -> bool:
        return self.entry.run_dir is None


def plan_cells(study: Study, out: str | pathlib.Path) -> list[Cell]:
    out = pathlib.Path(out)
    cells = []
    for entry in study.agents:
        if entry.run_dir is not None:
            cells.append(Cell(entry.name, entry, None, study.seeds[0], entry.run_dir))
            continue
        for rand in entry.randomizations:
            label = f"{entry.name}-{_label(rand)}"
            for seed in study.seeds:
                cells.append(Cell(label, entry, rand, seed, out / "runs" / label / f"seed{seed}"))
    labels = [c.label for c in cells if c.seed == study.seeds[0] or not c.trained_here]
    for label in labels:
        if labels.count(label) > 1:
            raise StudyError(f"{study.source}: agents: two cells are both called {label!r}; rename one agent")
    return cells


def cell_config(study: Study, cell: Cell) -> dict:
    """The resolved training config of a cell: the agent's presets and overrides, then the study's."""
    from simreal.training.agents import get_agent

    entry = cell.entry
    overrides = [*entry.overrides, f"env.randomization={cell.randomization}", f"run.seed={cell.seed}"]
    steps = entry.steps if entry.steps is not None else study.steps
    if steps is not None:
        overrides.append(f"run.steps={steps}")
    init_from = dict(entry.init_from).get(cell.randomization)
    if init_from is not None:
        overrides.append(f"run.init_from={json.dumps(str(init_from))}")
    return get_agent(entry.agent).resolve_config(entry.presets, overrides)


def _marker(run_dir: pathlib.Path) -> pathlib.Path:
    return run_dir / "study_cell.json"


def cell_status(study: Study, cell: Cell) -> str:
    """``done`` (a given run, or training finished at the budget asked for), ``resume`` or ``new``.

    A run folder whose saved config differs from what the study asks (other than the step budget)
    is a `StudyError`: it is never silently reused or overwritten.
    """
    from simreal.training.run import RunDir

    if not cell.trained_here:
        return "done"
    if not (cell.run_dir / "config.yaml").is_file():
        return "new"
    cfg = cell_config(study, cell)
    if _comparable(RunDir(cell.run_dir, resume=True).load_config()) != _comparable(cfg):
        raise StudyError(f"{cell.run_dir}: trained with other settings than {study.source} asks for; "
                         "move the folder away or use another --out")
    marker = _marker(cell.run_dir)
    if marker.is_file() and (cell.run_dir / "policy.pt").is_file() and \
            int(json.loads(marker.read_text()).get("steps", 0)) >= int(cfg["run"]["steps"]):
        return "done"
    return "resume"


def _comparable(cfg: Mapping) -> dict:
    """A config without the keys that may change between sessions of one run or that leave the numbers
    alone (the step budget, devices, CPU threads, the physics thread pool's size)."""
    cfg = json.loads(json.dumps(cfg))
    run = cfg.get("run", {})
    for key in ("steps", "device", "torch_threads", "threads"):
        run.pop(key, None)
    if isinstance(cfg.get("env"), dict):
        cfg["env"].pop("nthread", None)  # mujoco.batch steps each copy alike on any thread count
    return cfg


def train_cell(study: Study, cell: Cell, progress: bool = False) -> dict:
    """Train (or resume, or skip) one cell; returns its ``study_cell.json`` record."""
    from simreal.training.agents import get_agent
    from simreal.training.run import RunDir

    status = cell_status(study, cell)
    marker = _marker(cell.run_dir)
    if status == "done":
        return json.loads(marker.read_text())
    cfg = cell_config(study, cell)
    run = RunDir(cell.run_dir, resume=status == "resume" and run_has_checkpoint(cell.run_dir))
    run.save_config(cfg)
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    summary = get_agent(cell.entry.agent).train(cfg, run, progress=progress)
    record = {"label": cell.label, "agent": cell.entry.agent, "presets": list(cell.entry.presets),
              "overrides": list(cell.entry.overrides), "randomization": cell.randomization, "seed": cell.seed,
              "env_steps": int(summary["env_steps"]), "steps": int(cfg["run"]["steps"]),
              "minutes_last_session": round((time.perf_counter() - start) / 60, 2),
              "commit": git_commit()}
    write_json(marker, record)
    return record


def run_has_checkpoint(run_dir: pathlib.Path) -> bool:
    from simreal.training.run import RunDir

    return RunDir(run_dir, resume=True).latest_checkpoint() is not None


# ----------------------------------------------------------------------------- evaluation
@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the report: a cell acting on the measured state, or on the CNN's pose (vision)."""

    cell: Cell
    vision: bool

    @property
    def label(self) -> str:
        return self.cell.label + ("+vision" if self.vision else "")


def plan_rows(cells: Iterable[Cell]) -> list[Row]:
    rows = []
    for cell in cells:
        rows.append(Row(cell, False))
        if cell.entry.vision:
            rows.append(Row(cell, True))
    return rows


def estimator_file(path: pathlib.Path) -> pathlib.Path:
    """A pose estimator export: the file, or ``pose_estimator.pt`` in a run folder."""
    from simreal.perception.estimator import EXPORT_NAME

    return path / EXPORT_NAME if path.is_dir() else path


def _sha(path: pathlib.Path) -> str:
    return file_sha256(path)[:16]


def _eval_path(out: pathlib.Path, row: Row, setting: str) -> pathlib.Path:
    safe = setting.replace("://", "_").replace(":", "_").replace("/", "_")
    return out / "eval" / row.label / f"seed{row.cell.seed}" / f"{safe}.json"


def evaluate_row(study: Study, row: Row, setting: str, out: str | pathlib.Path, progress: bool = False) -> dict:
    """``study.episodes`` episodes of a row on one setting (``nominal`` or a rig); cached in OUT/eval."""
    from simreal.agents import load_policy
    from simreal.evaluation.transfer import AgentRun, run_setting, safety_counts

    out = pathlib.Path(out)
    run = AgentRun.load(row.cell.run_dir, name=row.label)
    key = {"policy_sha": _sha(run.policy_path), "episodes": study.episodes, "seed": study.eval_seed,
           "max_steps": study.max_steps, "setting": setting, "vision": row.vision,
           "pose_estimator": _sha(estimator_file(study.pose_estimator)) if row.vision else None}
    path = _eval_path(out, row, setting)
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    policy = load_policy(run.policy_path)
    vision = None
    if row.vision:
        from simreal.perception.wrapper import VisionPolicy

        policy = vision = VisionPolicy(policy, estimator_file(study.pose_estimator))
    logs = out / "logs" / row.label / f"seed{row.cell.seed}" / path.stem
    if setting != "nominal":
        shutil.rmtree(logs, ignore_errors=True)  # a stopped evaluation's partial recording
    env = dict(run.rig_env(**(vision.env_kwargs() if vision else {})), seed=study.eval_seed)
    _, results, metrics = run_setting(setting, env, policy, study.episodes, max_steps=study.max_steps,
                                      record_to=logs if setting != "nominal" else None,
                                      tags={"agent": row.label, "run_dir": str(row.cell.run_dir), "study": study.name},
                                      progress=progress)
    result = {"key": key, "row": row.label, "seed": row.cell.seed, "setting": setting,
              "episodes": [dataclasses.asdict(e) for e in metrics], "ends": [r.end for r in results],
              "safety": safety_counts(results)}
    if vision is not None:
        result["pose_error"] = vision.error_summary()
    write_json(path, result)
    return result


# ----------------------------------------------------------------------------- the whole study
class RayExecutor(concurrent.futures.Executor):
    """Cells and evaluations as Ray tasks, behind the executor interface the local process pool has (so a study
    runs through one code path either way).

    ``address``: a running cluster (``"auto"``, ``ray://HOST:10001``, ``HOST:6379``); None starts a local Ray
    with ``jobs`` CPUs. Each task asks for ``cpus`` CPUs, so the cluster runs as many cells at once as it has
    CPUs for. Run folders, logs and reports are written where the driver names them: on a cluster, give
    ``--out`` on a filesystem every node mounts (a cell interrupted by a lost node resumes from its last
    checkpoint on the rerun; finished cells are skipped).
    """

    def __init__(self, address: str | None, jobs: int = 1, cpus: float = 1.0):
        from simreal.utils.ray_session import join_ray

        try:
            self._ray, self._started = join_ray(address, int(jobs))
        except ImportError:
            raise StudyError("--ray-address needs Ray: pip install 'simreal[ray]'") from None
        self.cpus = float(cpus)

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        task = self._ray.remote(num_cpus=self.cpus, max_retries=1)(fn)  # a lost worker's task runs once more
        return task.remote(*args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        from simreal.utils.ray_session import leave_ray

        leave_ray(self._ray, self._started)


def _pool(jobs: int, ray_address: str | None = None):
    if ray_address is not None:
        return RayExecutor(None if ray_address == "local" else ray_address, jobs)
    return concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _evaluate_task(study, row, setting, out):  # top level: picklable for the process pool
    import torch

    torch.set_num_threads(1)
    return evaluate_row(study, row, setting, out)


def _train_task(study, cell):
    return train_cell(study, cell, progress=False)


def _last_step(run_dir: pathlib.Path) -> int:
    """The env step of a run's newest metrics line (0 before the first); cheap: reads the file's tail."""
    path = run_dir / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 65536))
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError):
            continue  # a line cut by the tail window, or being written
    return 0


def _watch(futures: Mapping, study: Study, progress: bool, log: Callable[[str], None]) -> None:
    """Wait for the cells trained in processes, with one progress bar of their env steps together."""
    from tqdm import tqdm

    cells = list(futures.values())
    total = sum(int(cell_config(study, c)["run"]["steps"]) for c in cells)
    bar = tqdm(total=total, desc=f"training {len(cells)} cells", unit="step", disable=not progress, leave=False)
    pending = set(futures)
    try:
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=5.0)
            for future in done:
                cell, record = futures[future], future.result()
                log(f"trained {cell.label}/seed{cell.seed}: {record['env_steps']} env steps")
            bar.n = min(total, sum(_last_step(c.run_dir) for c in cells))
            bar.refresh()
    finally:
        bar.close()


def run_study(study: Study, out: str | pathlib.Path, jobs: int = 1, train: bool = True, progress: bool = True,
              log: Callable[[str], None] = print, ray_address: str | None = None) -> dict:
    """Train every unfinished cell, evaluate every row on nominal sim and every rig, write the report.

    ``jobs > 1`` runs cells and evaluations in that many local processes; ``ray_address`` as Ray tasks
    (`RayExecutor`: a cluster's address, or ``"local"`` for a Ray started here with ``jobs`` CPUs)."""
    out = pathlib.Path(out)
    cells = plan_cells(study, out)
    todo = [c for c in cells if cell_status(study, c) != "done"]
    if todo and not train:
        raise StudyError(f"{len(todo)} cell(s) not trained yet ({', '.join(f'{c.label}/seed{c.seed}' for c in todo)}); "
                         "run without --no-train")
    for cell in todo:
        cell_config(study, cell)  # every cell's config resolves before any training starts
    out.mkdir(parents=True, exist_ok=True)
    rows = plan_rows(cells)
    settings = ["nominal", *study.rigs]
    tasks = [(row, setting) for row in rows for setting in settings]
    parallel = ray_address is not None or (jobs > 1 and (len(todo) > 1 or len(tasks) > 1))
    with (_pool(jobs, ray_address) if parallel else contextlib.nullcontext()) as pool:
        if todo:
            where = "as Ray tasks" if ray_address is not None else f"{jobs} at a time"
            log(f"training {len(todo)} cell(s), {where}: {', '.join(f'{c.label}/seed{c.seed}' for c in todo)}")
        if pool is not None and todo:
            futures = {pool.submit(_train_task, study, c): c for c in todo}
            _watch(futures, study, progress, log)
        else:
            for cell in todo:
                log(f"training {cell.label}/seed{cell.seed}")
                record = train_cell(study, cell, progress=progress)
                log(f"trained {cell.label}/seed{cell.seed}: {record['env_steps']} env steps")
        results: dict[tuple[str, int, str], Mapping] = {}
        labels = list(dict.fromkeys(r.label for r in rows))
        log(f"evaluating {len(labels)} agent row(s) x {len(study.seeds)} seed(s) on {', '.join(settings)}: "
            f"{study.episodes} episodes each")
        if pool is not None:
            futures = {pool.submit(_evaluate_task, study, row, s, out): (row, s) for row, s in tasks}
            for future in concurrent.futures.as_completed(futures):
                row, setting = futures[future]
                results[(row.label, row.cell.seed, setting)] = future.result()
        else:
            for row, setting in tasks:
                results[(row.label, row.cell.seed, setting)] = evaluate_row(study, row, setting, out, progress=progress)
    ordered = {(r.label, r.cell.seed, s): results[(r.label, r.cell.seed, s)] for r, s in tasks}
    report = summarize_study(study, ordered)
    report["training"] = {f"{c.label}/seed{c.seed}": (json.loads(_marker(c.run_dir).read_text())
                                                      if _marker(c.run_dir).is_file() else {"run_dir": str(c.run_dir)})
                          for c in cells}
    report["paths"] = {k: str(v) for k, v in write_report(out, report).items()}
    return report
