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

from simreal.evaluation.metrics import Summary, episode_metrics, gap, summarize


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

    @classmethod
    def load(cls, run_dir: str | pathlib.Path, name: str | None = None) -> "AgentRun":
        from simreal.training.config import ConfigError
        from simreal.training.export import load_export
        from simreal.training.run import RunDir

        run_dir = pathlib.Path(run_dir)
        if not run_dir.is_dir():
            raise ConfigError(f"--agent {run_dir}: no such run directory")
        cfg = RunDir(run_dir, resume=True).load_config()
        policy = run_dir / "policy.pt"
        if not policy.is_file():
            raise ConfigError(f"--agent {run_dir}: no exported policy.pt (train to the end, or export the run)")
        env = cfg.get("env") or {}
        if "id" not in env:
            raise ConfigError(f"{run_dir / 'config.yaml'}: no env.id")
        randomization = env.get("randomization")
        randomization = None if randomization in (None, "", "none") else str(randomization)
        return cls(name=name or run_dir.name, run_dir=run_dir, policy_path=policy, env_id=env["id"],
                   env_kwargs=dict(env.get("kwargs") or env.get("env_kwargs") or {}),
                   action_repeat=int(env.get("action_repeat", 1) or 1), randomization=randomization,
                   agent=str(load_export(policy).get("agent")))


def _summaries(results, control_dt: float) -> tuple[Summary, list[dict]]:
    episodes = [episode_metrics(r.rewards, r.infos, control_dt) for r in results]
    return summarize(episodes), [dataclasses.asdict(e) for e in episodes]


def evaluate_transfer(agent_dirs: list[str | pathlib.Path], rig_spec: str, episodes: int, out_dir: str | pathlib.Path,
                      seed: int = 1000, max_steps: int | None = None, rig_kwargs: dict[str, Any] | None = None,
                      progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Run every agent on nominal sim and on ``rig_spec``; returns the report dict."""
    from simreal.agents import load_policy
    from simreal.rigs import open_rig, record, run_episodes

    out_dir = pathlib.Path(out_dir)
    runs = [AgentRun.load(d) for d in agent_dirs]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):  # two run dirs with one name: tell them apart
        if names.count(run.name) > 1:
            run.name = f"{run.name}-{i}"
    report: dict[str, Any] = {"episodes": episodes, "seed": seed, "agents": []}
    for run in runs:
        policy = load_policy(run.policy_path)
        common = dict(env_id=run.env_id, env_kwargs=run.env_kwargs, action_repeat=run.action_repeat, seed=seed)
        entry: dict[str, Any] = {"name": run.name, "run_dir": str(run.run_dir), "agent": run.agent,
                                 "env_id": run.env_id, "randomization": run.randomization, "episodes": {}}
        summaries: dict[str, Summary] = {}
        for where, spec in (("sim", "nominal"), ("rig", rig_spec)):
            rig = open_rig(spec, **common, **(rig_kwargs or {}))
            try:
                if where == "rig":
                    report["rig"] = rig.info().to_dict()
                    extra = report["rig"].get("extra", {})
                    description = extra.get("description") or (extra.get("reality") or {}).get("description")
                    report["rig"]["description"] = f"{spec}: {description}" if description else spec
                    writer = record(rig, out_dir / "logs" / run.name)
                    writer.set_tags(agent=run.name, run_dir=str(run.run_dir))
                log(f"{run.name}: {episodes} episodes on {'nominal simulation' if where == 'sim' else spec}")
                results = run_episodes(rig, policy, episodes, seed=seed, max_steps=max_steps, progress=progress)
                summaries[where], entry["episodes"][where] = _summaries(results, rig.info().control_dt)
                entry[where] = summaries[where].to_json()
                if where == "rig":
                    entry["rig_safety"] = {k: int(sum(r.safety[k] for r in results)) for k in results[0].safety}
                    entry["rig_ends"] = [r.end for r in results]
            finally:
                rig.close()
        entry["gap"] = gap(summaries["sim"], summaries["rig"])
        error = prediction_error(policy, out_dir / "logs" / run.name)
        if error is not None:
            entry["prediction_error"] = error
        report["agents"].append(entry)
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
