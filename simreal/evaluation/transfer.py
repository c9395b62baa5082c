"""Transfer evaluation: each agent on nominal simulation and on a rig, recorded, summarized.

For every agent (a run directory with ``config.yaml`` and an exported
``policy.pt``) `evaluate_transfer` builds the env the agent was trained on at
nominal physics (``nominal`` rig) and the rig under test, runs the same number
of episodes with the same seeds on both, records every rig episode (Minari
dataset under ``OUT/logs/<agent>``), and returns the report dict that
`simreal.evaluation.report.write_report` writes.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable

from simreal.evaluation.metrics import EpisodeMetrics, Summary, episode_metrics, gap, summarize


@dataclasses.dataclass
class AgentRun:
    """What evaluation needs from a training run directory."""

    name: str
    run_dir: pathlib.Path
    policy_path: pathlib.Path
    env_id: str
    env_kwargs: dict[str, Any]
    action_repeat: int
    randomization: str | None
    agent: str
    pixels: tuple[int, int] | None = None
    pixels_only: bool = False

    def rig_env(self, **env_kwargs: Any) -> dict[str, Any]:
        """`simreal.rigs.open_rig` arguments that describe the env this agent was trained on
        (``env_kwargs`` added to the run's own, e.g. the cameras a vision policy needs)."""
        return dict(env_id=self.env_id, env_kwargs={**self.env_kwargs, **env_kwargs}, action_repeat=self.action_repeat,
                    pixels=self.pixels, pixels_only=self.pixels_only)

    @classmethod
    def load(cls, run_dir: str | pathlib.Path, name: str | None = None) -> "AgentRun":
        from simreal.training.config import check_config_env_id
        from simreal.training.config import ConfigError
        from simreal.training.export import load_export
        from simreal.training.run import RunDir

        run_dir = pathlib.Path(run_dir)
        if not run_dir.is_dir():
            raise ConfigError(f"--agent {run_dir}: no such run directory")
        policy = run_dir / "policy.pt"
        if not (run_dir / "config.yaml").is_file():
            lacks = "config.yaml" + ("" if policy.is_file() else " and no policy.pt")
            raise ConfigError(f"--agent {run_dir}: not a training run (no {lacks}); give a run directory that "
                              "`simreal train` wrote")
        cfg = RunDir(run_dir, resume=True).load_config()
        if not policy.is_file():
            raise ConfigError(f"--agent {run_dir}: no exported policy.pt (train to the end, or export the run)")
        env = cfg.get("env") if isinstance(cfg.get("env"), dict) else {}
        if "id" not in env:
            raise ConfigError(f"{run_dir / 'config.yaml'}: no env.id")
        check_config_env_id(env["id"], f"{run_dir / 'config.yaml'}: env.id",
                            hint="evaluate reads the env id from the run, so it runs registered ids only")
        randomization = env.get("randomization")
        randomization = None if randomization in (None, "", "none") else str(randomization)
        pixels = env.get("pixels")
        return cls(name=name or run_dir.name, run_dir=run_dir, policy_path=policy, env_id=env["id"],
                   env_kwargs=dict(env.get("kwargs") or env.get("env_kwargs") or {}),
                   action_repeat=int(env.get("action_repeat", 1) or 1), randomization=randomization,
                   agent=str(load_export(policy).get("agent")),
                   pixels=None if pixels is None else (int(pixels[0]), int(pixels[1])),
                   pixels_only=bool(env.get("pixels_only", False)))


def _space_text(space) -> str:
    import gymnasium as gym

    if isinstance(space, gym.spaces.MultiDiscrete):
        return f"MultiDiscrete{list(map(int, space.nvec.ravel()))}"
    return f"{type(space).__name__}{tuple(space.shape) if space.shape is not None else ''}"


def spaces_mismatch(policy, rig_info) -> str | None:
    """Why ``policy`` cannot run on the rig ``rig_info`` describes (observation keys or shapes the
    policy reads, the action space), or None when it can."""
    import gymnasium as gym
    import numpy as np

    wanted = policy.observation_space.spaces
    keys = list(getattr(policy, "actor_keys", None) or wanted)
    given = rig_info.observation_space.spaces
    missing = [k for k in keys if k not in given]
    if missing:
        return (f"the rig's observations have no {', '.join(missing)} (the agent reads {', '.join(keys)}; "
                f"the rig gives {', '.join(given) or 'nothing'})")
    for k in keys:
        if tuple(given[k].shape) != tuple(wanted[k].shape):
            return f"observation {k!r} is {tuple(given[k].shape)} on the rig, {tuple(wanted[k].shape)} for the agent"
    mine, theirs = policy.action_space, rig_info.action_space
    same = type(mine) is type(theirs) and tuple(mine.shape) == tuple(theirs.shape)
    if same and isinstance(mine, gym.spaces.MultiDiscrete):
        same = np.array_equal(mine.nvec, theirs.nvec)
    if not same:
        return f"its actions are {_space_text(theirs)}, the agent's {_space_text(mine)}"
    return None


@dataclasses.dataclass
class _Row:
    """One line of the report: an agent acting on what the rig measures, or on the CNN's pose."""

    name: str
    run: AgentRun
    policy: Any
    vision: Any = None
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _rows(runs: list[AgentRun], policies: dict[str, Any], pose_estimator) -> list[_Row]:
    rows = [_Row(run.name, run, policies[run.name]) for run in runs]
    if pose_estimator is None:
        return rows
    from simreal.perception.wrapper import POSE_KEYS, VisionPolicy
    from simreal.training.config import ConfigError

    readers = [run for run in runs if all(k in policies[run.name].observation_space.spaces for k in POSE_KEYS)]
    if not readers:
        raise ConfigError(f"--pose-estimator {pose_estimator}: no agent reads the measured cube pose "
                          f"({', '.join(POSE_KEYS)}), so none can act on the estimated one")
    for run in readers:
        vision = VisionPolicy(policies[run.name], pose_estimator)
        rows.append(_Row(f"{run.name}+vision", run, vision, vision, vision.env_kwargs()))
    return rows


def run_setting(spec: str, env: dict[str, Any], policy, episodes: int, *, max_steps: int | None = None,
                record_to: str | pathlib.Path | None = None, tags: dict[str, Any] | None = None,
                rig_kwargs: dict[str, Any] | None = None,
                progress: bool = False) -> tuple[Any, list, list[EpisodeMetrics]]:
    """Open the rig ``spec`` for an agent's env (``AgentRun.rig_env`` plus ``seed``: episode i is seeded
    seed + i), run ``episodes`` episodes (recorded to ``record_to`` when given) and close it.

    Returns the rig's `RigInfo`, the rollout results and each episode's metrics; `evaluate_transfer`
    and `simreal study` both run their settings through it.
    """
    from simreal.rigs import open_rig, record, run_episodes

    rig = open_rig(spec, **env, **(rig_kwargs or {}))
    try:
        info = rig.info()
        if record_to is not None:
            record(rig, record_to).set_tags(**(tags or {}))
        results = run_episodes(rig, policy, episodes, seed=env.get("seed"), max_steps=max_steps, progress=progress)
    finally:
        rig.close()
    return info, results, [episode_metrics(r.rewards, r.infos, info.control_dt) for r in results]


def safety_counts(results) -> dict[str, int]:
    """How often the safety layer stepped in over a setting's episodes, per kind."""
    return {k: int(sum(r.safety[k] for r in results)) for k in results[0].safety}


def evaluate_transfer(agent_dirs: list[str | pathlib.Path], rig_spec: str, episodes: int, out_dir: str | pathlib.Path,
                      seed: int = 1000, max_steps: int | None = None, rig_kwargs: dict[str, Any] | None = None,
                      progress: bool = True, log: Callable[[str], None] = print,
                      pose_estimator: str | pathlib.Path | None = None) -> dict:
    """Run every agent on nominal sim and on ``rig_spec``; returns the report dict.

    With ``pose_estimator`` (an export of `simreal pose train`), every agent that reads the hand's
    measured cube pose runs a second time as ``<agent>+vision``: on the pose the CNN estimates from
    the rig's camera images (`simreal.perception.wrapper.VisionPolicy`), with the estimate's error
    against the measured pose in the entry's ``pose_error``.

    Everything that can be checked is checked before the first episode: the run directories, the
    rig (opened once per distinct agent env, then closed), that each policy's observation keys and
    action space fit the rig's, and that no earlier evaluation's rig logs are in the way. Rig logs
    are written to ``OUT/logs/<agent>.partial`` and renamed to ``OUT/logs/<agent>`` once every agent
    has run, so a failed evaluation leaves nothing that blocks running it again.
    """
    import json
    import os
    import shutil

    from simreal.agents import load_policy
    from simreal.rigs import RigError, open_rig

    out_dir = pathlib.Path(out_dir)
    runs = [AgentRun.load(d) for d in agent_dirs]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):  # two run dirs with one name: tell them apart
        if names.count(run.name) > 1:
            run.name = f"{run.name}-{i}"
    logs = out_dir / "logs"
    names = [r.name for r in runs] + ([f"{r.name}+vision" for r in runs] if pose_estimator is not None else [])
    for name in names:
        final = logs / name
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            raise RigError(f"{final}: already holds the rig logs of an earlier evaluation; choose another --out "
                           "or remove that folder")
    rows = _rows(runs, {run.name: load_policy(run.policy_path) for run in runs}, pose_estimator)
    checked: dict[str, Any] = {}
    for row in rows:
        env = row.run.rig_env(**row.env_kwargs)
        key = json.dumps(env, sort_keys=True, default=str)
        if key not in checked:
            rig = open_rig(rig_spec, seed=seed, **env, **(rig_kwargs or {}))
            try:
                checked[key] = rig.info()
            finally:
                rig.close()
        problem = spaces_mismatch(row.policy, checked[key])
        if problem is not None:
            raise RigError(f"rig {rig_spec!r} does not fit agent {row.name} (trained on {row.run.env_id}): {problem}")
    report: dict[str, Any] = {"episodes": episodes, "seed": seed, "agents": []}
    for row in rows:
        run, policy = row.run, row.policy
        partial = logs / f"{row.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)  # an earlier evaluation that failed
        common = dict(run.rig_env(**row.env_kwargs), seed=seed)
        entry: dict[str, Any] = {"name": row.name, "run_dir": str(run.run_dir), "agent": run.agent,
                                 "env_id": run.env_id, "randomization": run.randomization, "episodes": {},
                                 "vision": row.vision is not None}
        summaries: dict[str, Summary] = {}
        for where, spec in (("sim", "nominal"), ("rig", rig_spec)):
            log(f"{row.name}: {episodes} episodes on {'nominal simulation' if where == 'sim' else spec}")
            if row.vision is not None:
                row.vision.reset_errors()
            info, results, metrics = run_setting(spec, common, policy, episodes, max_steps=max_steps,
                                                 record_to=partial if where == "rig" else None,
                                                 tags={"agent": row.name, "run_dir": str(run.run_dir)},
                                                 rig_kwargs=rig_kwargs, progress=progress)
            summaries[where] = summarize(metrics)
            entry["episodes"][where] = [dataclasses.asdict(e) for e in metrics]
            entry[where] = summaries[where].to_json()
            if row.vision is not None:
                entry.setdefault("pose_error", {})[where] = row.vision.error_summary()
            if where == "rig":
                report["rig"] = info.to_dict()
                extra = report["rig"].get("extra", {})
                description = extra.get("description") or (extra.get("reality") or {}).get("description")
                report["rig"]["description"] = f"{spec}: {description}" if description else spec
                entry["rig_safety"] = safety_counts(results)
                entry["rig_ends"] = [r.end for r in results]
        entry["gap"] = gap(summaries["sim"], summaries["rig"])
        error = prediction_error(policy, partial)
        if error is not None:
            entry["prediction_error"] = error
        report["agents"].append(entry)
    for row in rows:  # every agent ran: the logs take their names
        final = logs / row.name
        if final.is_dir():
            final.rmdir()  # empty (checked above)
        os.replace(logs / f"{row.name}.partial", final)
    report["rig"]["name"] = report["rig"].get("name") or rig_spec
    return report


def prediction_error(policy, dataset_dir: pathlib.Path) -> float | None:
    """Open-loop prediction error of a world-model policy on recorded episodes (None for model-free agents).

    A world-model policy provides ``prediction_error(episodes) -> float | None``
    (mean squared error of predicted observations along the recorded actions; None when it
    cannot tell, e.g. episodes shorter than its prediction window).
    """
    fn = getattr(policy, "prediction_error", None)
    if fn is None:
        return None
    from simreal.rigs import DatasetReader

    error = fn(list(DatasetReader(dataset_dir)))
    return None if error is None else float(error)
