"""`simreal demo`: the command line of `simreal.demo` (the hand on shipped agents; cart-pole from scratch)."""

from __future__ import annotations

import argparse
import pathlib
import sys

from simreal.utils.cli import CliError, positive_int, wrap


def cmd_demo(args: argparse.Namespace) -> int:
    from simreal import demo as D

    if args.env == "hand":
        for flag, value in (("--steps", args.steps), ("--seed", args.seed)):
            if value is not None:
                raise CliError(f"{flag}: only for the training demo (--env cartpole); the hand demo evaluates the "
                               "shipped agents, and --train trains them with the study file's budget")
        rig = args.rig or D.HAND_DEFAULTS["rig"]
        what = "training with " + str(D.HAND_DEFAULTS["study"]) if args.train else "shipped agents"
        print(f"simreal demo: the Shadow hand, {what}, rig {rig}, output {args.out}", flush=True)
        result = D.run_hand_demo(args.out, agents_dir=args.agents, rig=rig,
                                 episodes=args.episodes or D.HAND_DEFAULTS["episodes"],
                                 randomization=args.randomization or D.HAND_DEFAULTS["randomization"],
                                 train=args.train, jobs=args.jobs, progress=not args.quiet)
        sys.stdout.write(pathlib.Path(result["report"]["markdown"]).read_text())
        print(f"{result['total_seconds'] / 60:.1f} min; wrote {args.out}/demo.json, {result['report']['markdown']}, "
              f"{result['report']['plot']} and {args.out}/randomization/histograms.png")
        return 0
    if args.train or args.agents:
        raise CliError("--train and --agents are for the hand demo (the default --env hand)")
    env = D.DEFAULTS["env"] if args.env == "cartpole" else args.env
    steps = D.DEFAULTS["steps"] if args.steps is None else args.steps
    rig = args.rig or D.DEFAULTS["rig"]
    randomization = args.randomization or D.DEFAULTS["randomization"]
    print(f"simreal demo: {env}, randomization {randomization}, rig {rig}, "
          f"{steps} PPO steps per agent, output {args.out}", flush=True)
    result = D.run_demo(args.out, env=env, randomization=randomization, rig=rig, steps=steps,
                        episodes=args.episodes or D.DEFAULTS["episodes"],
                        seed=D.DEFAULTS["seed"] if args.seed is None else args.seed, progress=not args.quiet)
    print("\n".join(D.summary_lines(result)))
    print(f"wrote {args.out}/demo.json, {result['report']['markdown']}, {result['report']['plot']}, "
          f"{args.out}/randomization/histograms.png and the runs in {args.out}/runs")
    return 0


def register(sub) -> None:
    from simreal.demo import DEFAULTS as D, HAND_DEFAULTS as H

    demo = sub.add_parser(
        "demo", help="the sim-to-real loop on defaults: the shipped hand agents on a held-out rig, the report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=wrap(
            "Run simreal's loop end to end on the Shadow hand: check randomizations/dactyl.yaml and plot its "
            "samples, take the agents shipped in assets/policies/ (PPO trained with Dactyl's randomizations "
            "and without them, the same PPO acting on the pose the shipped CNN estimates from the cameras, "
            "and any other shipped agent), run them on nominal simulation and on a held-out hand rig with the "
            "same episode seeds, and write the study report: consecutive successes, drop rate and the "
            "fraction kept on the rig, with bootstrap 95% intervals, and a plain verdict. Minutes on two CPU "
            "cores. --train trains the agents instead with studies/hand_transfer.yaml (hours; run it again "
            "with the same --out to continue). --env cartpole runs the loop that trains from scratch in about "
            "four minutes: PPO with and without randomizations/dmc_cartpole.yaml on dm_control cart-pole, "
            "then the transfer report on sim:cartpole_laggy."),
        epilog="writes (hand) OUT/randomization.yaml, OUT/randomization/{samples.csv,histograms.png},\n"
               "OUT/study.yaml (the generated study file), OUT/study/{report.md,report.json,report.png,logs/,eval/}\n"
               "and OUT/demo.json; (cartpole) OUT/runs/{ppo_dr,ppo_nominal}/ and OUT/transfer/ instead of study/\n\n"
               "examples:\n"
               "  simreal demo\n"
               "  simreal demo --rig sim:hand_heavy_slippery --episodes 20 --out outputs/demo-heavy\n"
               "  simreal demo --train --jobs 2 --out outputs/demo-trained      # hours: retrain with the study file\n"
               "  simreal demo --env cartpole\n"
               "  simreal demo --env dm_control/cartpole-swingup-v0 --steps 2500000 --out outputs/demo-swingup")
    demo.add_argument("--env", default="hand",
                      help="hand (default: the shipped hand agents), cartpole (train PPO on dm_control cart-pole "
                           "balance), or an env id to run the cart-pole training loop on")
    demo.add_argument("--train", action="store_true",
                      help=f"hand: train the agents with {pathlib.Path(H['study']).relative_to(pathlib.Path(H['study']).parents[1])}"
                           " instead of using the shipped ones (hours)")
    demo.add_argument("--agents", metavar="DIR", help="hand: folder of shipped agents (default assets/policies)")
    demo.add_argument("--jobs", type=positive_int, default=1, help="processes for training and evaluation (1)")
    demo.add_argument("--randomization", help=f"randomization YAML or shipped name (default {H['randomization']}; "
                                              f"cartpole: {D['randomization']})")
    demo.add_argument("--rig", help=f"held-out rig, see `simreal rig list` (default {H['rig']}; cartpole: {D['rig']})")
    demo.add_argument("--steps", type=positive_int, help=f"cartpole: env steps per agent (default {D['steps']})")
    demo.add_argument("--episodes", type=positive_int,
                      help=f"evaluation episodes per agent and setting (default {H['episodes']}; cartpole: "
                           f"{D['episodes']})")
    demo.add_argument("--seed", type=int, help="cartpole: training seed (default 0)")
    demo.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)
