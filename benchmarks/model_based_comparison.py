"""Evidence: the model-based agents and PPO side by side on one randomized proprioceptive task.

Agents (each a registered `simreal train NAME` run): PETS, MBPO, I2A, PlaNet and DreamerV3 (the
model-based families), PPO (the model-free baseline) and a uniform-random policy, on dm_control
cart-pole swing-up from its state vector under randomizations/dmc_cartpole.yaml (masses, damping,
friction, gains, noise, latency, pushes), all at action repeat 4 (a 0.04 s control period, PETS'
for this task) and the same env-step budget ``--steps`` (env steps = control steps; 250 per
episode). PPO also trains ``--ppo-factor`` (default 5) times longer, for the sample-efficiency claim
these methods make; its curve shows where it stands at the shared budget.

The agents' own configs (their ``configs.yaml``) with these settings (``AGENTS`` below; CPU-sized
where the paper's would not fit): PETS with 5 members of 3 x 100 units, horizon 25, CEM over 100
candidates (top 10, 4 iterations) and 5 particles (the paper: 400-500 candidates, 20 particles;
0.1 s per planned step here); MBPO with 5 policy updates per env step (the paper: 20) and 5-step rollouts; I2A's
defaults (3-step rollouts from 5 candidate actions); PlaNet and DreamerV3 at the micro size with
32 replayed steps per env step and PlaNet's planner cut to 300 candidates / top 30 / 5 iterations
(as benchmarks/world_model_comparison.py); PPO's cartpole preset.

TDM is a goal-conditioned method and cart-pole swing-up has no goal: it is benchmarked on its own
showcase, Reacher-v5 (benchmarks/results/tdm_reacher_<date>.json), not in this table.

Measured per agent: the deterministic policy's return on ``--eval-episodes`` episodes with the same
seeds for every agent (fresh randomizations from the file), the training-episode return curve, env
steps and wall-clock seconds (each run alone in its process, ``--threads`` torch threads; with
``--jobs 2`` two runs share the machine). Targets, checked in the same run: every agent's mean
return exceeds the random policy's by more than twice their standard errors; PETS and MBPO reach
at least PPO's return after ``--ppo-factor`` times their env steps.

Published points for orientation (other budgets, no randomization): PETS on cart-pole swing-up
about 180 of 200 within 15 episodes of 200 steps (Chua et al. 2018, Fig. 3, their own cart-pole);
MBPO on Inverted Pendulum and HalfCheetah, I2A on Sokoban: other tasks, not comparable.

Every run is a normal run folder under ``--out``; a stopped benchmark resumes its runs; finished
runs are read back. ``--agents`` picks a subset, ``--report-only`` only evaluates and reports.
``--quick`` runs the tiny presets for a few hundred steps (a pipeline check, not evidence).

Prints (with ``--save`` writes benchmarks/results/model_based_comparison_<date>.json and .png) JSON:
  table    per agent: eval return (mean, standard error), last-10 training return, env steps, seconds
  curves   training-episode returns per agent
  targets  the two claims above, each true or false
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import RESULTS, add_training_args, emit, machine, run_in_processes  # noqa: E402

ENV_ID = "dm_control/cartpole-swingup-v0"
RANDOMIZATION = "dmc_cartpole"
ACTION_REPEAT = 4
DEFAULT_STEPS = 10_000
# label -> (registered agent, presets, overrides); {threads} is filled in
AGENTS = {
    "pets": ("pets", [], ["run.threads={threads}", "run.eval_episodes=0", "run.log_every=500", "model.hidden=100",
                          "planner.candidates=100", "planner.top_k=10", "planner.iterations=4", "planner.particles=5"]),
    "mbpo": ("mbpo", [], ["run.threads={threads}", "run.updates_per_step=5", "rollout.length=5",
                          "run.eval_episodes=0", "run.log_every=500"]),
    "i2a": ("i2a", [], ["run.torch_threads={threads}", "eval.every=0"]),
    "planet": ("planet", ["micro"], ["run.threads={threads}", "run.train_ratio=128.0", "run.prefill=2000",
                                     "planner.candidates=300", "planner.top_k=30", "planner.iterations=5",
                                     "run.eval_every=1000000000"]),
    "dreamer_v3": ("dreamer", ["dreamer_v3", "micro"], ["run.threads={threads}", "run.train_ratio=128.0",
                                                        "run.prefill=2000", "run.eval_every=1000000000"]),
    "ppo": ("ppo", ["cartpole"], ["run.torch_threads={threads}", "eval.every=0", "env.n_envs=8"]),
}
QUICK = {"pets": ["tiny"], "mbpo": ["tiny"], "i2a": ["tiny"], "planet": ["tiny"], "dreamer_v3": ["dreamer_v3", "tiny"],
         "ppo": ["tiny"]}
SEED_EVAL = 50_000
FRAMES = ("planet", "dreamer_v3")  # count env frames (control steps x action repeat), as their papers do


def run_path(label: str, args) -> pathlib.Path:
    return pathlib.Path(args.out) / f"{label}_seed{args.seed}"


def budget(label: str, args) -> int:
    """Control steps the run trains for."""
    return args.steps * (args.ppo_factor if label == "ppo" else 1)


def frames_per_step(label: str) -> int:
    """What one of a run's own counted steps is in control steps' units (its run.steps and logs)."""
    return ACTION_REPEAT if label in FRAMES else 1


def train_command(label: str, args) -> list[str]:
    """``simreal train AGENT ...`` for one run (``--resume --steps N`` when its folder exists)."""
    agent, presets, overrides = AGENTS[label]
    path, steps = run_path(label, args), budget(label, args)
    argv = [sys.executable, "-m", "simreal", "train", agent, "--run-dir", str(path), "--quiet",
            "--steps", str(steps * frames_per_step(label))]
    if (path / "config.yaml").exists():
        return argv + ["--resume"]
    for preset in (QUICK[label] if args.quick else presets):
        argv += ["--preset", preset]
    settings = [f"env.id={ENV_ID}", f"env.randomization={args.randomization}", f"env.action_repeat={ACTION_REPEAT}",
                f"run.seed={args.seed}", *(o.format(threads=args.threads) for o in overrides), *args.set]
    for value in settings:
        argv += ["--set", value]
    return argv


def record_time(args):
    """The callback adding each finished training process's wall time to RUN/benchmark_time.json (runs resume)."""
    def finished(name: str, seconds: float, code: int) -> None:
        path = run_path(name, args) / "benchmark_time.json"
        if path.parent.exists():
            earlier = json.loads(path.read_text())["seconds"] if path.exists() else 0.0
            path.write_text(json.dumps({"seconds": earlier + seconds}))
    return finished


def trained_steps(label: str, args) -> int:
    from simreal.training.logger import read_metrics

    path = run_path(label, args) / "metrics.jsonl"
    if not (run_path(label, args) / "policy.pt").exists() or not path.exists():
        return 0
    series = read_metrics(path)
    return int(max((int(s[-1]) for s, _ in series.values() if len(s)), default=0)) // frames_per_step(label)


def curve(label: str, args) -> list[dict]:
    from simreal.training.logger import read_metrics

    series = read_metrics(run_path(label, args) / "metrics.jsonl").get("train/episode_return")
    if series is None:
        return []
    return [{"step": int(s) // frames_per_step(label), "return": round(float(v), 2)} for s, v in zip(*series)]


def env_section(args) -> dict:
    return {"id": ENV_ID, "randomization": args.randomization, "action_repeat": ACTION_REPEAT, "kwargs": None}


def evaluate(policy, args) -> dict:
    import numpy as np

    from simreal.training.envs import policy_returns

    returns = policy_returns(policy, env_section(args), args.eval_episodes, SEED_EVAL + args.seed)
    return {"mean": round(float(returns.mean()), 2),
            "stderr": round(float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0, 2),
            "returns": [round(float(r), 2) for r in returns]}


def plot(rows: dict, random_mean: float, args, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for label, row in rows.items():
        points = row["curve"]
        left.plot([p["step"] for p in points], [p["return"] for p in points], label=label, lw=1.2)
    left.axhline(random_mean, color="k", ls=":", lw=1, label="random")
    left.axvline(args.steps, color="grey", ls="--", lw=0.8)
    left.set_xscale("log")
    left.set_xlabel("env steps (action repeat 4; dashed: the shared budget)")
    left.set_ylabel("training episode return")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    labels = list(rows)
    means = [rows[k]["eval"]["mean"] for k in labels]
    errors = [rows[k]["eval"]["stderr"] for k in labels]
    right.barh(labels, means, xerr=errors, color="tab:blue", alpha=0.8)
    right.axvline(random_mean, color="k", ls=":", lw=1)
    for y, label in enumerate(labels):
        right.text(0, y, f" {rows[label]['env_steps']} steps, {rows[label]['seconds'] / 60:.0f} min", va="center",
                   fontsize=7, color="white")
    right.set_xlabel(f"eval return ({args.eval_episodes} episodes, same seeds)")
    fig.suptitle(f"{ENV_ID} (state), randomization {args.randomization}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def targets(rows: dict, random: dict) -> dict:
    out = {"above_random": {}, "sample_efficient_vs_ppo": {}}
    for label, row in rows.items():
        e = row["eval"]
        out["above_random"][label] = bool(e["mean"] - random["mean"] > 2 * (e["stderr"] + random["stderr"]))
    if "ppo" in rows:
        for label in ("pets", "mbpo"):
            if label in rows:
                out["sample_efficient_vs_ppo"][label] = bool(rows[label]["eval"]["mean"] >= rows["ppo"]["eval"]["mean"])
    flat = [*out["above_random"].values(), *out["sample_efficient_vs_ppo"].values()]
    out["all_met"] = bool(flat) and all(flat)
    return out


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated subset of {', '.join(AGENTS)}")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"env steps per agent ({DEFAULT_STEPS})")
    parser.add_argument("--ppo-factor", type=int, default=5, help="PPO trains this many times --steps (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes per agent (default 10)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, one process each (default 1)")
    parser.add_argument("--randomization", default=RANDOMIZATION, help=f"randomization file ({RANDOMIZATION})")
    parser.add_argument("--train-only", action="store_true", help="train the runs and stop (report later)")
    add_training_args(parser, "model_based_comparison", "the tiny presets for 300 env steps: a pipeline check",
                      set_help="extra override for every agent's run")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_episodes, args.ppo_factor = min(args.steps, 300), min(args.eval_episodes, 2), 1
        if args.out == parser.get_default("out"):
            args.out = "outputs/model_based_comparison_quick"
    labels = [a for a in args.agents.split(",") if a]
    unknown = [a for a in labels if a not in AGENTS]
    if unknown:
        parser.error(f"unknown agent(s) {', '.join(unknown)} (known: {', '.join(AGENTS)})")

    failed: dict[str, str] = {}
    if not args.report_only:
        todo = {label: train_command(label, args) for label in labels
                if trained_steps(label, args) < budget(label, args)}
        failed = run_in_processes("model_based_comparison", todo, args.out, args.jobs, record_time(args))
    if args.train_only:
        print(json.dumps({"trained": labels, "failed": failed}))
        return None

    from simreal.agents import load_policy

    rows = {}
    for label in labels:
        if label in failed or not (run_path(label, args) / "policy.pt").exists():
            failed.setdefault(label, "no policy.pt: not trained")
            continue
        timing = run_path(label, args) / "benchmark_time.json"
        points = curve(label, args)
        last = [p["return"] for p in points[-10:]]
        rows[label] = {"agent": AGENTS[label][0], "env_steps": trained_steps(label, args),
                       "seconds": round(json.loads(timing.read_text())["seconds"], 1) if timing.exists() else None,
                       "train_return_last10": round(sum(last) / len(last), 2) if last else None,
                       "eval": evaluate(load_policy(run_path(label, args) / "policy.pt"), args), "curve": points}
    from simreal.rigs.rollout import random_policy
    from simreal.training.envs import env_from_config

    venv = env_from_config(env_section(args), 1, 0)
    random = evaluate(random_policy(venv, args.seed), args)  # uniform over the action space (it reads its spaces)
    venv.close()
    if "ppo" in rows and rows["ppo"]["curve"]:  # where PPO stood at the shared budget
        at_budget = [p for p in rows["ppo"]["curve"] if p["step"] <= args.steps]
        rows["ppo"]["train_return_at_shared_budget"] = at_budget[-1]["return"] if at_budget else None
    result = {
        "benchmark": "model_based_comparison", "machine": machine(),
        "settings": {"env": ENV_ID, "observations": "state vector", "randomization": args.randomization,
                     "action_repeat": ACTION_REPEAT, "steps": args.steps, "ppo_steps": budget("ppo", args),
                     "seed": args.seed, "eval_episodes": args.eval_episodes, "eval_seed": SEED_EVAL + args.seed,
                     "threads_per_run": args.threads, "jobs": args.jobs, "quick": args.quick,
                     "agents": {k: {"agent": a, "presets": QUICK[k] if args.quick else p, "overrides": o}
                                for k, (a, p, o) in AGENTS.items() if k in labels},
                     "extra_overrides": list(args.set)},
        "random": random,
        "table": [{"label": k, **{f: v for f, v in r.items() if f != "curve"}} for k, r in rows.items()],
        "curves": {k: r["curve"] for k, r in rows.items()},
        "targets": targets(rows, random),
        "failed": failed,
    }
    png = (RESULTS / f"model_based_comparison_{_dt.date.today().isoformat()}.png" if args.save
           else pathlib.Path(args.out) / "comparison.png")
    if rows:
        plot(rows, random["mean"], args, png)
        result["plot"] = str(png)
    emit("model_based_comparison", result, args.save)
    return result


if __name__ == "__main__":
    main()
