"""``simreal study FILE.yaml``: train a matrix of agents, evaluate them on nominal sim and every rig, report."""

from __future__ import annotations

import argparse
import pathlib
import sys

from simreal.utils.cli import wrap  # one help layout for every command

DESCRIPTION = (
    "Run a sim-to-real study: every agent of the study file (any `simreal train` agent with its presets and "
    "--set overrides, or a finished run folder) is trained once per training randomization file and seed, "
    "with the same env-step budget, then every trained policy runs the same seeded episodes on nominal "
    "simulation and on every rig. Agents marked `vision: true` are run a second time on the cube pose the "
    "pose estimator infers from the rig's camera images. The report gives, per agent and setting, the mean "
    "success metric (consecutive successes on the hand, else return), the drop rate and the fraction of the "
    "simulated metric kept on each rig, each with a bootstrap 95% interval over seeds and episodes, a figure, "
    "and a plain verdict (no winner is named when every agent fails). Rerunning with the same --out skips "
    "finished cells and cached evaluations and resumes a stopped training run from its checkpoint."
)

EPILOG = """\
the study file (every key is checked; a problem is one line naming it):
  metric: consecutive_successes | return      success_threshold: N (required with return)
  steps: N       seeds: [0, 1]      randomizations: [dactyl, none]      rigs: [sim:hand_laggy, ...]
  agents: [{name, agent, presets, set, randomizations, steps, vision} | {name, run_dir, vision}]
  pose_estimator: DIR (for vision: true)      evaluation: {episodes, seed, max_steps}

outputs (in --out, default outputs/study/<name>):
  runs/<agent>-<randomization>/seed<k>/   each cell's run folder (config, checkpoints, policy.pt)
  eval/ , logs/                           per-episode results and the recorded rig episodes
  report.md, report.json, report.png      the table, everything behind it, the figure

examples:
  simreal study studies/cartpole_transfer.yaml --jobs 2
  simreal study studies/hand_transfer.yaml --out outputs/hand --jobs 2
  simreal study studies/hand_transfer.yaml --steps 20000000 --seeds 0,1,2   # a longer budget, unchanged file
  simreal study studies/hand_transfer.yaml --no-train --episodes 50         # evaluate what is trained
  simreal study studies/hand_transfer.yaml --agents ppo --jobs 2             # only the PPO cells
  ray start --head && simreal study studies/hand_transfer.yaml --ray-address auto --out /shared/hand
"""


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 0, got {text!r}")
    return seeds


def cmd_study(args: argparse.Namespace) -> int:
    from simreal.evaluation.study import load_study, run_study, with_settings

    study = with_settings(load_study(args.file), steps=args.steps, seeds=args.seeds, episodes=args.episodes,
                          agents=args.agents)
    out = pathlib.Path(args.out or pathlib.Path("outputs") / "study" / study.name)
    print(f"simreal study {study.name}: {len(study.agents)} agent(s), seeds {', '.join(map(str, study.seeds))}, "
          f"rigs {', '.join(study.rigs)}, {study.episodes} episodes per setting, output {out}", flush=True)
    report = run_study(study, out, jobs=args.jobs, train=not args.no_train, progress=not args.quiet,
                       ray_address=args.ray_address)
    sys.stdout.write(pathlib.Path(report["paths"]["markdown"]).read_text())
    print(f"wrote {report['paths']['markdown']}, {report['paths']['json']} and {report['paths']['plot']}")
    return 0


def register(sub) -> None:
    from simreal.utils.cli import positive_int

    parser = sub.add_parser("study", help="train agents x randomizations x seeds, evaluate on every rig, report",
                            description=wrap(DESCRIPTION), epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="the study YAML (shipped: studies/hand_transfer.yaml, "
                                     "studies/cartpole_transfer.yaml)")
    parser.add_argument("--out", help="output folder (default outputs/study/<the study's name>)")
    parser.add_argument("--ray-address", metavar="ADDR", default=None,
                        help="run cells and evaluations as Ray tasks on a cluster (auto, HOST:6379, ray://HOST:10001) "
                             "or 'local' (a Ray started here with --jobs CPUs); --out must be on a filesystem every "
                             "node mounts. Needs pip install 'simreal[ray]'")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="cells trained (and rows evaluated) in parallel processes (default 1)")
    parser.add_argument("--steps", type=positive_int,
                        help="env steps per trained cell (replaces the file's top-level steps; an agent with its own "
                             "steps keeps them)")
    parser.add_argument("--seeds", type=_seeds, help="comma-separated training seeds (replaces the file's seeds)")
    parser.add_argument("--episodes", type=positive_int, help="episodes per row and setting (replaces the file's)")
    parser.add_argument("--agents", type=lambda text: [a.strip() for a in text.split(",") if a.strip()],
                        help="comma-separated agent names: run only these agents of the file (e.g. ppo)")
    parser.add_argument("--no-train", action="store_true", help="only evaluate; refuse if a cell is not trained")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=cmd_study)
