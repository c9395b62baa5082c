"""``simreal evaluate`` (transfer report) and ``simreal calibrate`` (fit the simulator to rig logs)."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from simreal.utils.cli import wrap  # one help layout for every command


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simreal.evaluation.report import write_report
    from simreal.evaluation.transfer import evaluate_transfer

    agents = [a for part in args.agent for a in part.split(",") if a]
    if not agents:
        raise ValueError("--agent: give at least one run directory")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    rig_kwargs = {}
    if args.token_file:
        rig_kwargs["token_file"] = args.token_file
    report = evaluate_transfer(agents, args.rig, args.episodes, args.out, seed=args.seed, max_steps=args.max_steps,
                               rig_kwargs=rig_kwargs, progress=not args.quiet, pose_estimator=args.pose_estimator)
    paths = write_report(args.out, report)
    sys.stdout.write(paths["markdown"].read_text())
    print(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']} and the rig logs in {pathlib.Path(args.out) / 'logs'}")
    return 0


def load_logs(path: str | pathlib.Path, min_steps: int):
    """Recorded rig episodes as calibration episodes, plus the dataset's rig metadata."""
    from simreal.calibration import Episode
    from simreal.rigs import DatasetReader

    reader = DatasetReader(path)
    episodes = [Episode({k: v for k, v in ep.observations.items() if k != "image"}, ep.actions)
                for ep in reader if ep.steps >= min_steps]
    if not episodes:
        raise ValueError(f"--logs {path}: no episode with at least {min_steps} steps "
                         f"({len(reader)} episodes in the dataset)")
    return episodes, reader.rig_info


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from simreal.calibration import Calibrator, centered_spec_yaml, make_replay
    from simreal.calibration.fit import plot_fit
    from simreal.randomize import load_spec

    spec = load_spec(args.params)
    episodes, rig = load_logs(args.logs, args.warmup + args.horizon)
    env_id = args.env or rig.env_id
    if not env_id:
        raise ValueError(f"--logs {args.logs}: the dataset names no env; pass --env")
    extra = rig.extra or {}
    sim = make_replay(env_id, spec, extra.get("env_kwargs") or {}, int(extra.get("action_repeat", 1) or 1))
    cal = Calibrator(sim, episodes, horizon=args.horizon, warmup=args.warmup, max_windows=args.max_windows,
                     seed=args.seed)
    print(f"calibrating {len(cal.params)} parameters ({', '.join(p.name for p in cal.params)}) of {env_id} on "
          f"{len(cal.windows.actions)} windows from {len(episodes)} episodes")
    bar = tqdm(total=args.max_evals, desc="simulations", unit="eval", disable=args.quiet, leave=False)

    def progress(n: int, cost: float) -> None:
        bar.n = min(n, args.max_evals)
        bar.set_postfix(cost=f"{cost:.4g}")
        bar.refresh()

    try:
        result = cal.fit(args.method, max_evals=args.max_evals, progress=progress)
    finally:
        bar.close()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(centered_spec_yaml(spec, result, spread=args.spread, note=f"logs {args.logs}"))
    report = out.with_suffix(".json")
    report.write_text(json.dumps(dict(result.to_json(), env_id=env_id, logs=str(args.logs),
                                      params_file=str(args.params)), indent=2) + "\n")
    plot = out.with_suffix(".png")
    plot_fit(cal, result, plot)
    for name, value in result.values.items():
        print(f"  {name:<24} {result.initial_values[name]:>10.4g} -> {value:.4g}")
    for group in result.rmse_final:
        print(f"  rmse {group:<19} {result.rmse_initial[group]:>10.4g} -> {result.rmse_final[group]:.4g}")
    print(f"wrote {out}, {report} and {plot} ({result.evaluations} simulations, {result.seconds:.1f} s)")
    return 0


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    ev = sub.add_parser(
        "evaluate", help="run agents on a rig and on nominal sim: the transfer report", formatter_class=fmt,
        description=wrap(
            "Run each agent (a training run directory with config.yaml and policy.pt) for N episodes on "
            "the env it was trained on at nominal physics and on a rig, with the same seeds. Every rig "
            "episode is recorded (Minari dataset in OUT/logs/AGENT; OUT/logs/AGENT.partial until every agent "
            "has run, so a failed evaluation can be run again). The run folders, the rig and whether each "
            "agent's observation keys and actions fit the rig are checked before the first episode. "
            "Writes OUT/report.json, OUT/report.md "
            "(agents side by side: return, consecutive successes, drop rate, time to goal, the sim-to-rig "
            "gap) and OUT/transfer.png."),
        epilog="rigs: sim:NAME (a shipped reality: `simreal rig list`), sim:FILE.yaml, tcp://HOST:PORT "
               "(a bridge server), leap:fake\n\n"
               "examples:\n"
               "  simreal evaluate --agent runs/ppo_dr,runs/ppo_nodr --rig sim:cartpole_heavy_pole "
               "--episodes 10 --out outputs/transfer\n"
               "  simreal evaluate --agent runs/hand_dr --rig sim:hand_laggy --pose-estimator runs/pose "
               "--episodes 10 --out outputs/vision\n"
               "  simreal evaluate --agent runs/ppo_dr --rig tcp://127.0.0.1:5555 --token-file ~/.rig_token "
               "--episodes 5 --out outputs/real")
    ev.add_argument("--agent", action="append", required=True, metavar="RUN_DIR[,RUN_DIR...]",
                    help="training run directories (comma-separated or repeated)")
    ev.add_argument("--rig", required=True, help="the rig to evaluate on (see below)")
    ev.add_argument("--episodes", type=int, default=10, help="episodes per agent and setting (default 10)")
    ev.add_argument("--out", default="outputs/transfer", help="output folder (default outputs/transfer)")
    ev.add_argument("--seed", type=int, default=1000, help="seed of episode 0; episode i uses seed+i (default 1000)")
    ev.add_argument("--max-steps", type=int, default=None, help="cap on steps per episode (default: the env's own end)")
    ev.add_argument("--pose-estimator", metavar="DIR",
                    help="a pose CNN (`simreal pose train` run folder or its pose_estimator.pt): every agent that "
                         "reads the measured cube pose runs again as AGENT+vision, on the pose the CNN estimates "
                         "from the rig's camera images; the report shows both rows and the estimate's error")
    ev.add_argument("--token-file", help="file holding the bridge token for tcp:// rigs (else $SIMREAL_RIG_TOKEN)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_evaluate)

    cal = sub.add_parser(
        "calibrate", help="fit simulator parameters to recorded rig episodes", formatter_class=fmt,
        description=wrap(
            "Fit physics parameters (masses, friction, damping, gains, delays) so that simulation "
            "reproduces recorded rig episodes: the recorded actions are replayed from recorded states in "
            "short windows, and the error of the simulated observations is minimized (scipy least squares; "
            "CMA-ES when an action delay is fitted). PARAMS is a randomization YAML: each enabled entry is "
            "one parameter and its uniform/loguniform range is the search range. Writes OUT (the same file "
            "with ranges centred on the fitted values, ready to train with), OUT.json (values, errors "
            "before and after) and OUT.png (recorded vs simulated trajectories)."),
        epilog="examples:\n"
               "  simreal rig record sim:cartpole_heavy_pole --env dm_control/cartpole-swingup-v0 --policy random "
               "--episodes 4 --out outputs/logs/heavy\n"
               "  simreal calibrate --logs outputs/logs/heavy --params my_params.yaml --out outputs/calibrated.yaml")
    cal.add_argument("--logs", required=True, help="a recorded dataset folder (simreal rig record / evaluate)")
    cal.add_argument("--params", required=True, help="randomization YAML naming the parameters and search ranges")
    cal.add_argument("--out", required=True, help="the calibrated randomization YAML to write")
    cal.add_argument("--env", help="env id (default: the one the dataset was recorded on)")
    cal.add_argument("--method", choices=("auto", "least_squares", "cma"), default="auto",
                     help="optimizer (default auto: cma when an action delay is fitted, else least squares)")
    cal.add_argument("--horizon", type=int, default=10, help="predicted steps per window (default 10)")
    cal.add_argument("--warmup", type=int, default=3,
                     help="recorded actions replayed before each window, for delays and backlash (default 3)")
    cal.add_argument("--max-windows", type=int, default=256, help="windows used at most, drawn evenly (default 256)")
    cal.add_argument("--max-evals", type=int, default=300, help="simulation budget (default 300)")
    cal.add_argument("--spread", type=float, default=0.1,
                     help="half-width of the written ranges, as a fraction of the search range (default 0.1)")
    cal.add_argument("--seed", type=int, default=0, help="seed of window selection and CMA-ES (default 0)")
    cal.add_argument("--quiet", action="store_true", help="no progress bar")
    cal.set_defaults(func=cmd_calibrate)
