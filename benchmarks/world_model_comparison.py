"""Evidence: the world-model agents side by side on one randomized pixel task and one frame budget.

Agents: DreamerV3, PlaNet, Dreaming, DreamingV2 (the RSSM agents of simreal train dreamer |
planet | dreaming) and Ha & Schmidhuber's World Models (simreal train worldmodels). All learn
dm_control cartpole swing-up from 64x64 pixels only, under randomizations/dmc_cartpole.yaml
(masses, damping, friction, gains, noise, latency, pushes), for the same number of env frames
(``--steps``, default 30,000), each at its own convention's action repeat (the table's
``action_repeat``: 2 for Dreamer and Dreaming, PlaNet's 8 on cartpole, and 8 for World Models, as
its config file chooses for this task).

Same sizes where the architectures share parts: the RSSM agents use the `micro` size (128-unit
GRU and MLPs, 16-channel CNN, 16 Gaussian dims or 16x16 categoricals), World Models a 16-channel
VAE and a 128-unit LSTM. The RSSM agents also share the update budget per env frame: batches of
16 x 32 steps, 32 replayed steps per env frame (train_ratio = 32 x action repeat: one update per
16 frames, about 1,560 updates in 30k frames after 5,000 frames of random prefill), one torch
thread each. DreamerV3 uses V2's learning rates (as benchmarks/dreamer_learning.py, for the same
reason: few updates). PlaNet's planner is cut from 1000 candidates / top 100 / 10 iterations to
300 / 30 / 5 (planning otherwise costs 0.4 s per action on this CPU). World Models collects
30 random 1000-frame episodes (the whole budget), trains V and M, then 50 CMA-ES generations
of its controller inside the dream (no further real frames).

Returns are evaluation returns: ``--eval-episodes`` episodes with the deterministic policy
(PlaNet: planning without noise) every ``--eval-every`` env frames; World Models evaluates its
CMA-ES mean every 10 generations (after its frame budget is spent on random episodes).
Published points for orientation, not reached at this budget: PlaNet 821 on cartpole swing-up
after 1M env frames from pixels (Hafner et al. 2019), World Models 906 on CarRacing (Ha &
Schmidhuber 2018).

Time, measured on this machine (2 cores, ``--jobs 2``, one torch thread per run, the whole
comparison in 64 minutes of wall time): DreamerV3 29 min, PlaNet 23 min, Dreaming 31 min,
DreamingV2 35 min, World Models 5 min (per agent, while another agent shared the machine).
Every run is a normal run directory under ``--out``; a stopped benchmark picks up where it stopped
(runs resume from their last checkpoint; finished runs are read back, not retrained), and
``--agents`` chooses a subset, so agents can also train in separate processes and
``--report-only`` collects the table. ``--quick`` trains the tiny sizes for 2000 frames on
200-frame episodes, one update per 8 frames (a check that the pipeline works, not evidence).

Prints (and with ``--save`` writes benchmarks/results/world_model_comparison_<date>.json) JSON:
  table     per agent: final and best eval return, last-10 training return, env frames, action
            repeat, gradient updates, wall-clock seconds, trainable parameters
  runs      the eval curves (and training episodes) per agent
  skipped   agents that could not run here, with the reason
and a curves PNG next to it (without --save: OUT/curves.png).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import RESULTS, add_training_args, emit, machine, run_in_processes  # noqa: E402

AGENTS = ("dreamer_v3", "planet", "dreaming", "dreaming_v2", "worldmodels")
ENV_ID = "dm_control/cartpole-swingup-v0"
RANDOMIZATION = "dmc_cartpole"
DEFAULT_STEPS = 30_000
PREFILL = 5000                   # env frames of random actions before the first update (5 episodes)
REPLAY_PER_FRAME = 32            # replayed steps per env frame (train_ratio = this x action repeat)
BATCH = (16, 32)                 # sequences x steps per update
# action repeat per agent, the convention of its own paper / config file on cartpole
ACTION_REPEAT = {"dreamer_v3": 2, "planet": 8, "dreaming": 2, "dreaming_v2": 2, "worldmodels": 8}
VERSION_PRESET = {"dreamer_v3": "dreamer_v3", "planet": "planet", "dreaming": "dreaming",
                  "dreaming_v2": "dreaming_v2"}
AGENT_OVERRIDES = {
    "dreamer_v3": ["model.opt.lr=3e-4", "behavior.actor.opt.lr=1e-4", "behavior.critic.opt.lr=1e-4"],
    "planet": ["planner.candidates=300", "planner.top_k=30", "planner.iterations=5"],
}
QUICK_OVERRIDES = {"planet": ["planner.candidates=32", "planner.top_k=4", "planner.iterations=2"]}
WORLDMODELS_PRESETS = {"full": ["dmc_cartpole"], "quick": ["dmc_cartpole", "tiny"]}
GENERATIONS = 50
PUBLISHED = {"planet": {"return": 821, "task": "cartpole swing-up from pixels", "env_frames": 1_000_000,
                        "source": "Hafner et al. 2019, Learning Latent Dynamics for Planning from Pixels"},
             "worldmodels": {"return": 906, "task": "CarRacing-v0", "source": "Ha & Schmidhuber 2018, World Models"}}
QUICK_EPISODE_FRAMES = 200
QUICK_REPLAY_PER_FRAME = 4       # with the tiny 4 x 8 batch: one update per 8 frames


def worldmodels_config_path() -> pathlib.Path | None:
    """The World Models config file, or None when that agent is not in this checkout."""
    if importlib.util.find_spec("simreal.agents.world_models.ha") is None:
        return None
    from simreal.agents.world_models.ha import CONFIG_PATH

    return CONFIG_PATH if pathlib.Path(CONFIG_PATH).exists() else None


def env_section(agent: str, args) -> dict:
    env = {"id": ENV_ID, "randomization": args.randomization, "pixels": [64, 64], "pixels_only": True,
           "action_repeat": ACTION_REPEAT[agent]}
    env["kwargs"] = {"max_episode_steps": QUICK_EPISODE_FRAMES} if args.quick else None
    return env


def run_config(agent: str, args) -> dict:
    """The resolved config of one agent's run (see the module docstring for the choices)."""
    from simreal.training.config import merge, resolve_config

    if agent == "worldmodels":
        presets = WORLDMODELS_PRESETS["quick" if args.quick else "full"]
        cfg = resolve_config(worldmodels_config_path(), presets)
        episode = QUICK_EPISODE_FRAMES if args.quick else 1000
        settings = {"env": env_section(agent, args),
                    "run": {"steps": args.steps, "seed": args.seed, "threads": args.threads, "workers": 1,
                            "device": args.device},
                    "collect": {"episodes": max(1, args.steps // episode)},
                    "controller": {"eval_episodes": args.eval_episodes}}
        if not args.quick:   # the RSSM agents' micro sizes where the parts correspond
            settings.update(vae={"depth": 16}, mdn_rnn={"hidden": 128})
            settings["controller"].update(generations=GENERATIONS, eval_every=10)
        return with_overrides(merge(cfg, settings, "benchmark settings"), args.set_worldmodels)
    from simreal.agents.world_models import CONFIG_PATH

    size = "tiny" if args.quick else "micro"
    overrides = (QUICK_OVERRIDES if args.quick else AGENT_OVERRIDES).get(agent, [])
    cfg = resolve_config(CONFIG_PATH, [VERSION_PRESET[agent], size, "dmc_pixels"], overrides)
    batch = (4, 8) if args.quick else BATCH
    replay = QUICK_REPLAY_PER_FRAME if args.quick else REPLAY_PER_FRAME
    cfg = merge(cfg, {"env": env_section(agent, args),
                      "batch": {"size": batch[0], "length": batch[1]},
                      "run": {"steps": args.steps, "seed": args.seed, "threads": args.threads,
                              "prefill": min(PREFILL, args.steps // 5) if args.quick else PREFILL,
                              "train_ratio": float(replay * ACTION_REPEAT[agent]), "pretrain_updates": 0,
                              "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
                              "log_every": max(1, args.eval_every // 5), "checkpoint_every": args.checkpoint_every,
                              "video_every": args.eval_every, "device": args.device}},
                "benchmark settings")
    return with_overrides(cfg, args.set)


def with_overrides(cfg: dict, overrides: list[str]) -> dict:
    """``cfg`` with the user's ``KEY.PATH=VALUE`` overrides applied last (over the benchmark's settings)."""
    from simreal.training.config import apply_overrides

    return apply_overrides(cfg, overrides)


def run_path(agent: str, args) -> pathlib.Path:
    return pathlib.Path(args.out) / f"{agent}_seed{args.seed}"


def train_one(agent: str, args) -> dict:
    """Train (or resume, or read back) one agent's run; returns its summary."""
    from simreal.training.config import merge
    from simreal.training.run import RunDir

    path = run_path(agent, args)
    summary_path = path / "summary.json"
    if summary_path.exists() and agent != "worldmodels":
        summary = json.loads(summary_path.read_text())
        if summary["frames"] >= args.steps:
            return summary
    resume = (path / "config.yaml").exists()
    run = RunDir(path, resume=resume)
    cfg = merge(run.load_config(), {"run": {"steps": args.steps}}, "--steps") if resume else run_config(agent, args)
    run.save_config(cfg)
    if agent == "worldmodels":
        from simreal.agents.world_models.ha.trainer import train
    else:
        from simreal.agents.world_models.trainer import train
    return train(cfg, run, progress=not args.quiet)


def child_argv(agent: str, args) -> list[str]:
    """The command line that trains one agent in its own process (``--jobs``)."""
    argv = [sys.executable, os.path.abspath(__file__), "--agents", agent, "--train-only", "--quiet",
            "--steps", str(args.steps), "--seed", str(args.seed), "--eval-every", str(args.eval_every),
            "--eval-episodes", str(args.eval_episodes), "--checkpoint-every", str(args.checkpoint_every),
            "--threads", str(args.threads), "--device", args.device, "--randomization", args.randomization,
            "--out", args.out]
    argv += ["--quick"] * args.quick
    for value in args.set:
        argv += ["--set", value]
    for value in args.set_worldmodels:
        argv += ["--set-worldmodels", value]
    return argv


def train_in_processes(agents: list[str], args) -> dict[str, str]:
    """Train ``agents`` in up to ``args.jobs`` child processes; logs in OUT/<agent>.log. Returns failures."""
    return run_in_processes("world_model_comparison", {a: child_argv(a, args) for a in agents}, args.out, args.jobs)


def best(values: list[float]) -> float | None:
    return max(values) if values else None


def plot(runs: dict, path: pathlib.Path, randomization: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rssm = {agent: run for agent, run in runs.items() if agent != "worldmodels"}
    panels = ["rssm"] * bool(rssm) + ["worldmodels"] * ("worldmodels" in runs)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 1.5, 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "rssm":
            for agent, run in rssm.items():
                curve = run["curve"]
                line, = ax.plot([p["frames"] for p in curve], [p["return"] for p in curve], marker="o", ms=3,
                                label=f"{agent} (repeat {run['action_repeat']})")
                episodes = run["train_episodes"]
                ax.plot([e["frames"] for e in episodes], [e["return"] for e in episodes], color=line.get_color(),
                        alpha=0.25, lw=0.8)
            ax.set_xlabel("env frames")
            ax.set_ylabel("episode return")
            ax.set_title("RSSM agents (eval; faint: training episodes)", fontsize=10)
        else:
            curve = runs["worldmodels"]["curve"]
            ax.plot([p.get("generation", i) for i, p in enumerate(curve)], [p["return"] for p in curve], marker="o",
                    ms=3, color="k", label="worldmodels (real-env eval)")
            ax.set_xlabel("CMA-ES generation (after the frame budget is spent on random episodes)")
            ax.set_ylabel("episode return")
            ax.set_title("World Models controller", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{ENV_ID} from 64x64 pixels, randomization {randomization}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated subset of {', '.join(AGENTS)}")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"env frames per agent (default {DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=10_000, help="env frames between evaluations (RSSM agents)")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--checkpoint-every", type=int, default=5000, help="env frames between checkpoints")
    parser.add_argument("--jobs", type=int, default=1, help="agents trained at once, one process each (default 1)")
    parser.add_argument("--randomization", default=RANDOMIZATION, help=f"randomization file (default {RANDOMIZATION})")
    parser.add_argument("--set-worldmodels", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="extra override for the World Models run (repeatable)")
    parser.add_argument("--train-only", action="store_true", help="train the agents and print nothing (--jobs uses it)")
    add_training_args(parser, "world_model_comparison",
                      "tiny sizes, 2000 frames, 200-frame episodes, evaluation every 1000: a pipeline check",
                      set_help="extra override for the RSSM agents' runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = min(args.steps, 2000)
        args.eval_every, args.eval_episodes, args.checkpoint_every = 1000, 2, 1000
        if args.out == parser.get_default("out"):
            args.out = "outputs/world_model_comparison_quick"

    agents = [a for a in args.agents.split(",") if a]
    unknown = sorted(set(agents) - set(AGENTS))
    if unknown:
        parser.error(f"unknown agent(s) {', '.join(unknown)} (known: {', '.join(AGENTS)})")
    skipped = {}
    if "worldmodels" in agents and worldmodels_config_path() is None:
        skipped["worldmodels"] = ("not in this checkout (no simreal/agents/world_models/ha/configs.yaml): "
                                  "World Models was left out of the comparison")
        print(f"world_model_comparison: skipping worldmodels: {skipped['worldmodels']}", file=sys.stderr)
        agents.remove("worldmodels")

    summaries = {}
    if not args.report_only:
        if args.jobs > 1 and len(agents) > 1:
            skipped.update(train_in_processes(agents, args))
        else:
            for agent in agents:
                print(f"world_model_comparison: {agent} for {args.steps} env frames", file=sys.stderr, flush=True)
                summaries[agent] = train_one(agent, args)
    if args.train_only:
        return None
    for agent in agents:
        path = run_path(agent, args) / "summary.json"
        if agent not in summaries and path.exists():
            summaries[agent] = json.loads(path.read_text())

    runs = {}
    for agent, s in summaries.items():
        curve = s["eval"]
        cfg_path = run_path(agent, args) / "config.yaml"
        repeat = ACTION_REPEAT[agent]
        if cfg_path.exists():
            import yaml

            repeat = int(yaml.safe_load(cfg_path.read_text())["env"]["action_repeat"])
        last = [e["return"] for e in s["episode_returns"][-10:]]
        runs[agent] = {"final_eval_return": curve[-1]["return"] if curve else None,
                       "best_eval_return": best([p["return"] for p in curve]),
                       "train_return_last10": sum(last) / len(last) if last else None,
                       "env_frames": s["frames"], "action_repeat": repeat,
                       "updates": s.get("updates", s.get("vae_updates", 0) + s.get("mdn_updates", 0)),
                       "wall_seconds": s.get("seconds"), "params": s.get("params"),
                       "curve": curve, "train_episodes": s["episode_returns"]}
    result = {
        "benchmark": "world_model_comparison", "machine": machine(),
        "settings": {"env": ENV_ID, "observations": "64x64 pixels only", "randomization": args.randomization,
                     "steps": args.steps, "seed": args.seed, "quick": args.quick, "action_repeat": ACTION_REPEAT,
                     "rssm": {"size": "tiny" if args.quick else "micro", "batch": [4, 8] if args.quick else list(BATCH),
                              "replayed_steps_per_frame": QUICK_REPLAY_PER_FRAME if args.quick else REPLAY_PER_FRAME,
                              "prefill": min(PREFILL, args.steps // 5) if args.quick else PREFILL,
                              "presets": VERSION_PRESET,
                              "overrides": {**(QUICK_OVERRIDES if args.quick else AGENT_OVERRIDES),
                                            "all": list(args.set)}},
                     "worldmodels": {"presets": WORLDMODELS_PRESETS["quick" if args.quick else "full"],
                                     "overrides": list(args.set_worldmodels),
                                     "generations": None if args.quick else GENERATIONS},
                     "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
                     "threads_per_run": args.threads, "jobs": args.jobs},
        "published": PUBLISHED,
        "table": [{"agent": a, **{k: v for k, v in r.items() if k not in ("curve", "train_episodes")}}
                  for a, r in runs.items()],
        "runs": {a: {"curve": r["curve"], "train_episodes": r["train_episodes"]} for a, r in runs.items()},
        "skipped": skipped,
    }
    png = (RESULTS / f"world_model_comparison_{_dt.date.today().isoformat()}.png" if args.save
           else pathlib.Path(args.out) / "curves.png")
    if runs:
        plot(runs, png, args.randomization)
        result["plot"] = str(png)
    emit("world_model_comparison", result, args.save)
    return result


if __name__ == "__main__":
    main()
