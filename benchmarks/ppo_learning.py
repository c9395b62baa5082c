"""Recurrent PPO learning evidence: randomized cartpole swing-up (3 seeds) and the hand-cube vertical task.

Prints JSON with:
  cartpole.final_return_mean   mean over seeds of each trained policy's mean return on 64 fresh
                               episodes (deterministic actions, 1000 physics steps each, randomized
                               with dmc_cartpole.yaml: pole and cart mass, joint damping, gains,
                               gravity, rail friction, timing jitter, sensor and action noise, 0-20 ms
                               latency, pushes). Target >= 700 with every seed's training under an
                               hour (the final evaluation is not counted in the hour).
  cartpole.runs[]              per seed: that final evaluation, the last and best in-training
                               evaluations (16 episodes on fixed seeds: a noisier estimate, since a
                               failed swing-up scores ~300 and a good one ~800), wall-clock minutes
  hand_cube.successes          consecutive successes of simreal/HandCube-v0 with goals about the
                               vertical axis (train episodes, and deterministic evaluations) at the
                               start and the end of a two-hour budget, and whether they rose
and writes a PNG of the curves (evaluation return per seed against env steps; consecutive
successes against env steps).

Each run is an ordinary training run directory under --out (config, checkpoints, metrics.jsonl,
TensorBoard, policy.pt): a killed benchmark continues with --resume. The cartpole runs use the
``cartpole`` preset of simreal/agents/ppo/configs.yaml, the hand run the ``hand_cube`` preset with a
wall-clock budget. --jobs runs seeds side by side (one process each; every run uses one torch thread).
--quick checks the script end to end in about a minute (tiny budgets; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import RESULTS, emit, machine  # noqa: E402

CARTPOLE_TARGET = 700.0
QUICK = {
    "cartpole": ["env.n_envs=4", "ppo.n_steps=32", "ppo.epochs=2", "ppo.minibatches=2", "run.steps=512",
                 "run.checkpoint_every=2", "eval.every=2", "eval.episodes=2", "eval.max_steps=50",
                 "policy.dense=16", "policy.lstm=16", "policy.critic_hidden=[16]"],
    "hand_cube": ["env.n_envs=2", "ppo.n_steps=16", "ppo.epochs=1", "ppo.minibatches=1", "run.steps=128",
                  "run.checkpoint_every=2", "eval.every=2", "eval.episodes=2", "eval.max_steps=20",
                  "policy.dense=16", "policy.lstm=16", "policy.critic_hidden=[16]"],
}


def run_one(task: str, seed: int, out: str, resume: bool, overrides: list[str], max_seconds: float | None,
            final_episodes: int) -> dict:
    """Train one run (in a worker process) and summarize its metrics."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from simreal.agents.ppo import resolve_ppo_config
    from simreal.agents.ppo.ppo import PPOTrainer
    from simreal.training.logger import read_metrics
    from simreal.training.run import RunDir

    path = pathlib.Path(out) / f"{task}-seed{seed}"
    resuming = resume and (path / "config.yaml").exists()
    run = RunDir(path, resume=resuming)
    cfg = run.load_config() if resuming else resolve_ppo_config([task], [f"run.seed={seed}", *overrides])
    trainer = PPOTrainer(cfg, run)
    spent_before = _spent_seconds(path)
    t0 = time.perf_counter()
    budget = None if max_seconds is None else max(max_seconds - spent_before, 1.0)
    if trainer.update_index < trainer.total_updates:
        trainer.train(max_seconds=budget)
    elapsed = time.perf_counter() - t0 + spent_before
    (path / "wall_seconds.txt").write_text(f"{elapsed:.1f}\n")
    trainer.close()
    metrics = read_metrics(path / "metrics.jsonl")
    curves = {name: [values[0].tolist(), [round(v, 4) for v in values[1].tolist()]]
              for name, values in metrics.items()
              if name in ("eval/return", "train/episode_return", "eval/consecutive_successes",
                          "train/consecutive_successes")}
    final = final_evaluation(path, cfg, final_episodes, seed=10_000 + 1000 * seed)
    return {"task": task, "seed": seed, "run_dir": str(path), "steps": trainer.env_steps,
            "minutes": round(elapsed / 60, 2), "final_eval": final, "curves": curves}


def final_evaluation(path: pathlib.Path, cfg: dict, episodes: int, seed: int) -> dict:
    """The exported policy on ``episodes`` fresh randomized episodes (deterministic actions, 16 at a time).

    The in-training evaluations reuse the same few seeds; returns here are bimodal (a swing-up
    that fails scores ~300, one that works ~800), so the claim is read off many episodes.
    """
    import numpy as np

    from simreal.agents import load_policy
    from simreal.training.envs import make_training_env

    policy = load_policy(path / "policy.pt")
    env_cfg = cfg["env"]
    returns, successes = [], []
    for start in range(0, episodes, 16):
        n = min(16, episodes - start)
        venv = make_training_env(env_cfg["id"], n, seed=seed + start, randomization=env_cfg["randomization"],
                                 randomization_in_state=env_cfg["randomization_in_state"],
                                 action_repeat=env_cfg["action_repeat"], env_kwargs=dict(env_cfg["kwargs"]))
        obs, state = venv.reset(), policy.initial_state(n)
        total, active, success = np.zeros(n), np.ones(n, bool), np.full(n, np.nan)
        for _ in range(cfg["eval"]["max_steps"]):
            action, state = policy.act(obs, state, deterministic=True)
            obs, reward, done, infos = venv.step(action)
            total += np.where(active, reward, 0.0)
            for i in np.flatnonzero(active):
                if "consecutive_successes" in infos[i]:
                    success[i] = infos[i]["consecutive_successes"]
            state = policy.reset_state(state, done)
            active &= ~done
            if not active.any():
                break
        venv.close()
        returns += total.tolist()
        successes += success.tolist()
    out = {"episodes": episodes, "return_mean": round(float(np.mean(returns)), 1),
           "return_std": round(float(np.std(returns)), 1), "return_min": round(float(np.min(returns)), 1)}
    if not np.all(np.isnan(successes)):
        out["consecutive_successes_mean"] = round(float(np.nanmean(successes)), 3)
    return out


def _spent_seconds(path: pathlib.Path) -> float:
    try:
        return float((path / "wall_seconds.txt").read_text())
    except (OSError, ValueError):
        return 0.0


def summarize_cartpole(runs: list[dict]) -> dict:
    per_seed = []
    for r in runs:
        steps, values = r["curves"].get("eval/return", [[], []])
        reached = next((s for s, v in zip(steps, values) if v >= CARTPOLE_TARGET), None)
        per_seed.append({"seed": r["seed"], "final_return": r["final_eval"]["return_mean"],
                         "final_eval": r["final_eval"], "last_training_eval": values[-1] if values else None,
                         "best_training_eval": max(values) if values else None,
                         "first_step_a_training_eval_reached_700": reached,
                         "steps": r["steps"], "minutes": r["minutes"], "run_dir": r["run_dir"]})
    finals = [p["final_return"] for p in per_seed if p["final_return"] is not None]
    mean = sum(finals) / len(finals) if finals else float("nan")
    return {"final_return_mean": round(mean, 1), "target": CARTPOLE_TARGET,
            "every_run_under_an_hour": all(p["minutes"] < 60 for p in per_seed),
            "meets_target": bool(finals and mean >= CARTPOLE_TARGET and all(p["minutes"] < 60 for p in per_seed)),
            "runs": per_seed}


def summarize_hand(run: dict) -> dict:
    def ends(name):
        steps, values = run["curves"].get(name, [[], []])
        if not values:
            return None
        k = max(1, len(values) // 10)  # average the first and last tenth of the curve
        first, last = sum(values[:k]) / k, sum(values[-k:]) / k
        return {"first": round(first, 3), "last": round(last, 3), "max": round(max(values), 3), "points": len(values)}

    train, evals = ends("train/consecutive_successes"), ends("eval/consecutive_successes")
    rising = bool(train and train["last"] > train["first"])
    return {"successes": {"train": train, "eval": evals}, "rising": rising, "final_eval": run["final_eval"],
            "steps": run["steps"],
            "minutes": run["minutes"], "run_dir": run["run_dir"]}


def plot(runs: list[dict], path: pathlib.Path) -> pathlib.Path:
    """One panel per task present: evaluation return per cartpole seed, consecutive successes of the hand."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in ("cartpole", "hand_cube") if any(r["task"] == t for r in runs)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        if task == "cartpole":
            for r in (r for r in runs if r["task"] == "cartpole"):
                steps, values = r["curves"].get("eval/return", [[], []])
                ax.plot(steps, values, marker=".", label=f"seed {r['seed']} (eval)")
                steps, values = r["curves"].get("train/episode_return", [[], []])
                ax.plot(steps, values, alpha=0.25, color=ax.lines[-1].get_color())
            ax.axhline(CARTPOLE_TARGET, color="k", ls="--", lw=1, label="target 700")
            ax.set(title="cartpole swing-up, randomized (dmc_cartpole.yaml)", xlabel="env steps (action repeat 2)",
                   ylabel="episode return")
        else:
            for r in (r for r in runs if r["task"] == "hand_cube"):
                for name, style in (("train/consecutive_successes", "-"), ("eval/consecutive_successes", ".-")):
                    steps, values = r["curves"].get(name, [[], []])
                    ax.plot(steps, values, style, label=name.replace("/consecutive_successes", ""))
            ax.set(title="hand cube, vertical-axis goals", xlabel="env steps", ylabel="consecutive successes")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def runs_from_result(result: dict) -> list[dict]:
    """The per-run curves of a saved result JSON, in the shape `plot` takes (to redraw a committed run)."""
    runs = []
    for name, curves in result.get("curves", {}).items():
        task, _, seed = name.rpartition("-seed")
        runs.append({"task": task, "seed": int(seed), "curves": curves})
    return runs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="cartpole,hand_cube", help="comma-separated: cartpole, hand_cube")
    parser.add_argument("--seeds", type=int, default=3, help="cartpole seeds (the hand runs seed 0)")
    parser.add_argument("--cartpole-steps", type=int, default=None, help="override the preset's run.steps")
    parser.add_argument("--hand-minutes", type=float, default=120.0, help="wall-clock budget of the hand run")
    parser.add_argument("--hand-randomization", default="none", help="randomization file for the hand run")
    parser.add_argument("--final-episodes", type=int, default=64,
                        help="fresh randomized episodes for each run's final evaluation (default 64)")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (processes)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable), e.g. env.nthread=1 to keep a hand run "
                             "on one core while a cartpole seed uses the other")
    parser.add_argument("--out", default="outputs/ppo_learning", help="folder for the run directories")
    parser.add_argument("--resume", action="store_true", help="continue the runs found in --out")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not the claim")
    parser.add_argument("--replot", metavar="JSON", help="redraw the PNG of a saved result (next to it) and exit")
    parser.add_argument("--save", action="store_true",
                        help="also write benchmarks/results/ppo_learning[_TASK]_<date>.json and .png "
                             "(_TASK when --tasks names one task)")
    args = parser.parse_args(argv)
    if args.replot:
        source = pathlib.Path(args.replot)
        try:
            result = json.loads(source.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--replot {source}: cannot read a result JSON ({exc})")
        print(plot(runs_from_result(result), source.with_suffix(".png")))
        return result
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(tasks) - {"cartpole", "hand_cube"}
    if unknown:
        parser.error(f"--tasks: unknown {sorted(unknown)} (known: cartpole, hand_cube)")

    jobs = []
    if "hand_cube" in tasks:  # the longest run first, so side-by-side runs finish together
        extra = (QUICK["hand_cube"] if args.quick else []) + [f"env.randomization={args.hand_randomization}", *args.set]
        jobs.append(("hand_cube", 0, extra, None if args.quick else args.hand_minutes * 60))
    if "cartpole" in tasks:
        extra = (QUICK["cartpole"] if args.quick else []) + list(args.set)
        if args.cartpole_steps:
            extra = extra + [f"run.steps={args.cartpole_steps}"]
        jobs += [("cartpole", seed, extra, None) for seed in range(args.seeds)]

    final_episodes = 2 if args.quick else args.final_episodes
    t0 = time.perf_counter()
    if args.jobs <= 1:
        runs = [run_one(task, seed, args.out, args.resume, extra, budget, final_episodes)
                for task, seed, extra, budget in jobs]
    else:
        with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, task, seed, args.out, args.resume, extra, budget, final_episodes)
                       for task, seed, extra, budget in jobs]
            runs = [f.result() for f in futures]
    result: dict = {"benchmark": "ppo_learning", "quick": args.quick}
    if "cartpole" in tasks:
        result["cartpole"] = summarize_cartpole([r for r in runs if r["task"] == "cartpole"])
    if "hand_cube" in tasks:
        result["hand_cube"] = summarize_hand(next(r for r in runs if r["task"] == "hand_cube"))
    png = plot(runs, pathlib.Path(args.out) / "ppo_learning.png")
    result["plot"] = str(png)
    result["total_minutes"] = round((time.perf_counter() - t0) / 60, 2)
    result["curves"] = {f"{r['task']}-seed{r['seed']}": r["curves"] for r in runs}
    result["settings"] = {k: v for k, v in vars(args).items() if k != "save"}
    result["machine"] = machine()
    name = "ppo_learning" if len(tasks) == 2 else f"ppo_learning_{tasks[0]}"
    if args.save:
        import datetime
        import shutil

        saved = RESULTS / f"{name}_{datetime.date.today().isoformat()}.png"
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, saved)
        result["plot"] = str(saved.relative_to(RESULTS.parent.parent))
    emit(name, result, args.save)
    return result


if __name__ == "__main__":
    main()
