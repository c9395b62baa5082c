"""Shipped agents: small, self-describing copies of finished runs under ``assets/policies/``.

A shipped agent is a folder that evaluation reads like any run directory: ``config.yaml`` and
``policy.pt`` for a policy (`simreal evaluate --agent assets/policies/ppo_dr`, a study's
``run_dir:``), or ``config.yaml`` and ``pose_estimator.pt`` for a pose estimator. Next to them,
``trained.json`` says how it was trained: the commit, the resolved config, the env (or optimizer)
steps, the training minutes summed from the run's own timings, the last evaluation the trainer
logged, and the sha256 of the weights file. `ship_run` writes one from a run; `shipped_agents`
lists a folder's. Checkpoints, TensorBoard logs and replay buffers stay behind: what ships is what
evaluation loads (``weights_only=True``), a few MB at most.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shutil
from typing import Any, Mapping

import numpy as np

from simreal.training.logger import read_metrics
from simreal.utils.provenance import file_sha256, git_commit

ASSETS_DIR = pathlib.Path(__file__).resolve().parents[2] / "assets" / "policies"
RECORD = "trained.json"
POLICY = "policy.pt"


class ShipError(ValueError):
    """A run that cannot be shipped, or a shipped folder that does not describe itself."""


def _weights_file(run_dir: pathlib.Path) -> tuple[str, pathlib.Path]:
    from simreal.perception.estimator import EXPORT_NAME

    for kind, name in (("policy", POLICY), ("pose_estimator", EXPORT_NAME)):
        if (run_dir / name).is_file():
            return kind, run_dir / name
    raise ShipError(f"{run_dir}: no {POLICY} or {EXPORT_NAME} to ship (train the run to its end first)")


Series = Mapping[str, tuple[np.ndarray, np.ndarray]]  # `simreal.training.logger.read_metrics`: name -> (steps, values)


def training_minutes(series: Series, batch_size: int | None = None) -> float | None:
    """Training wall time from the run's own timings, summed: per-update durations (``time/*_s``, as
    PPO and the world models log them), else optimizer steps over ``time/samples_per_s`` times
    ``batch_size`` (the pose trainer); None when the run logged neither."""
    durations = [values for name, (_, values) in series.items()
                 if name.startswith("time/") and name.endswith("_s") and not name.endswith("per_s")]
    if durations:
        return round(sum(float(np.nansum(v)) for v in durations) / 60, 1)
    if batch_size and "time/samples_per_s" in series:
        steps, rates = series["time/samples_per_s"]
        steps_between = np.diff(steps, prepend=0)
        return round(float(np.sum(steps_between * batch_size / rates)) / 60, 1)
    return None


def last_eval(series: Series) -> dict:
    """The last logged ``eval/*`` values and the step they were logged at."""
    evals = {name: sv for name, sv in series.items() if name.startswith("eval/") and len(sv[0])}
    if not evals:
        return {}
    step = max(int(steps[-1]) for steps, _ in evals.values())
    return {"step": step, **{name: float(values[-1]) for name, (steps, values) in evals.items()
                             if int(steps[-1]) == step}}


def ship_run(run_dir: str | os.PathLike, dest: str | os.PathLike, *, description: str = "",
             extra: Mapping[str, Any] | None = None) -> dict:
    """Copy a finished run's config and weights to ``dest`` with its ``trained.json``; returns the record."""
    from simreal.training.run import RunDir

    run_dir, dest = pathlib.Path(run_dir), pathlib.Path(dest)
    if not (run_dir / "config.yaml").is_file():
        raise ShipError(f"{run_dir}: not a run directory (no config.yaml)")
    kind, weights = _weights_file(run_dir)
    cfg = RunDir(run_dir, resume=True).load_config()
    metrics = run_dir / "metrics.jsonl"
    series = read_metrics(metrics) if metrics.is_file() else {}
    marker = run_dir / "study_cell.json"
    cell = json.loads(marker.read_text()) if marker.is_file() else {}
    if kind == "policy":
        from simreal.training.export import load_export

        export = load_export(weights)  # also refuses a damaged or non-finite export
        agent = export.get("agent")
        continued = continued_from((export.get("extra") or {}).get("init_from"))
    else:
        from simreal.perception.estimator import PoseEstimator

        PoseEstimator.load(weights)
        agent, continued = "pose", None
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "config.yaml", dest / "config.yaml")
    shutil.copyfile(weights, dest / weights.name)
    record = {
        "name": dest.name, "kind": kind, "description": description,
        "agent": agent,
        "randomization": (cfg.get("env") or {}).get("randomization"),
        "steps": max((int(steps[-1]) for steps, _ in series.values() if len(steps)), default=None),
        "steps_budget": (cfg.get("run") or {}).get("steps"),
        "minutes": training_minutes(series, (cfg.get("optim") or {}).get("batch_size")),
        "last_eval": last_eval(series),
        "commit": cell.get("commit") or git_commit(),
        "shipped": datetime.date.today().isoformat(),
        "source": str(run_dir),
        "weights": {"file": weights.name, "bytes": weights.stat().st_size, "sha256": file_sha256(weights)},
        "config": cfg, **dict(extra or {}),
    }
    if continued is not None:
        record["continued_from"] = continued
        if record["steps"] is not None:
            record["steps_total"] = record["steps"] + int(continued.get("total_env_steps") or 0)
        if record["minutes"] is not None and continued.get("minutes_total") is not None:
            record["minutes_total"] = round(record["minutes"] + continued["minutes_total"], 1)
    (dest / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def continued_from(init: Mapping[str, Any] | None) -> dict | None:
    """What a run started from (its export's ``extra.init_from``), with the training history of that
    export when it is a shipped agent whose weights still match (read before shipping over it)."""
    if not isinstance(init, Mapping) or not init.get("path"):
        return None
    out = {k: init.get(k) for k in ("path", "sha256", "env_steps", "total_env_steps")}
    folder = pathlib.Path(init["path"]).parent
    try:
        earlier = read_record(folder)
    except ShipError:
        return out
    if earlier.get("weights", {}).get("sha256") != init.get("sha256"):
        return out  # the folder holds another agent now: its record is not this one's history
    out.update(name=earlier.get("name"), commit=earlier.get("commit"), shipped=earlier.get("shipped"),
               minutes=earlier.get("minutes"), last_eval=earlier.get("last_eval"))
    out["minutes_total"] = earlier.get("minutes_total", earlier.get("minutes"))
    if earlier.get("continued_from"):
        out["continued_from"] = earlier["continued_from"]
    return out


def read_record(folder: str | os.PathLike) -> dict:
    """A shipped folder's ``trained.json``, checked against its weights file."""
    folder = pathlib.Path(folder)
    path = folder / RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ShipError(f"{folder}: not a shipped agent (no {RECORD})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShipError(f"{path}: not valid JSON ({exc})") from None
    weights = record.get("weights") if isinstance(record, dict) else None
    if not isinstance(weights, dict) or not isinstance(weights.get("file"), str):
        raise ShipError(f"{path}: weights.file: missing")
    file = folder / pathlib.Path(weights["file"]).name
    if not file.is_file():
        raise ShipError(f"{path}: weights.file: {file} is missing")
    if weights.get("sha256") and file_sha256(file) != weights["sha256"]:
        raise ShipError(f"{file}: sha256 differs from {path} (the file was changed or cut short)")
    return record


def shipped_agents(root: str | os.PathLike = ASSETS_DIR) -> dict[str, dict]:
    """``{folder name: record}`` of every shipped agent under ``root``, in name order."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return {}
    return {p.name: read_record(p) for p in sorted(root.iterdir()) if (p / RECORD).is_file()}
