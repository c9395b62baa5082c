"""The `simreal` command: one entry point, one verb per job.

    simreal demo            the whole loop on defaults: randomization, PPO with and without it,
                            transfer to a held-out simulated rig, report (simreal.demo)
    simreal rollout         short rollout of the hand-cube env, stats + camera PNG
    simreal env info        spaces, sizes and timing constants of an env
    simreal randomization   check, sample and describe randomization YAML files

Later verbs (train, evaluate, calibrate, ...) hang off the same parser.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import sys
import textwrap
import time

os.environ.setdefault("MUJOCO_GL", "egl")


# Modules that add verbs: ``register(sub)`` adds top-level verbs, ``register_train(train_sub)``
# adds ``simreal train NAME``. They import heavy libraries (torch) inside their handlers only,
# so ``simreal --help`` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "simreal.agents.world_models.cli",
    "simreal.agents.world_models.ha.cli",
    "simreal.agents.ppo.cli",
    "simreal.rigs.cli",
    "simreal.evaluation.cli",
    "simreal.evaluation.study_cli",
    "simreal.perception.cli",
)


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _episode_end(info: dict, terminated: bool, truncated: bool, cfg) -> str:
    if info.get("dropped"):
        return "drop"
    if terminated and info.get("consecutive_successes", 0) >= cfg.max_consecutive_successes:
        return f"{cfg.max_consecutive_successes} successes"
    if truncated:
        return "timeout"
    return "cut off"


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


def cmd_rollout(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    import simreal
    from simreal.envs.policies import HoldPolicy

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = simreal.make(simreal.HAND_CUBE_ID, goal=args.goal, render_mode="rgb_array",
                       render_size=(args.height, args.width))
    sim = env.unwrapped.sim
    cfg = env.unwrapped.config
    if args.policy == "hold":
        policy = HoldPolicy(sim, noise=args.noise, seed=args.seed)
    else:
        env.action_space.seed(args.seed)
        policy = lambda obs: env.action_space.sample()  # noqa: E731

    print(f"simreal rollout: {simreal.HAND_CUBE_ID}, goal={args.goal}, policy={args.policy}"
          f" (noise {args.noise}), {args.episodes} episodes of at most {args.max_steps} steps", flush=True)
    episodes, frames = [], []
    t0 = time.perf_counter()
    total_steps = 0
    with tqdm(total=args.episodes * args.max_steps, desc="rollout", unit="step", leave=False) as bar:
        for ep in range(args.episodes):
            obs, info = env.reset(seed=args.seed + ep)
            if ep == 0:
                frames.append(env.unwrapped.render_cameras(show_goal=False))
            ret, steps = 0.0, 0
            terminated = truncated = False
            for steps in range(1, args.max_steps + 1):
                obs, reward, terminated, truncated, info = env.step(policy(obs))
                ret += reward
                bar.update(1)
                if terminated or truncated:
                    break
            bar.update(args.max_steps - steps)
            total_steps += steps
            if ep == 0:
                frames.append(env.unwrapped.render_cameras(show_goal=False))
            episodes.append({
                "episode": ep, "seed": args.seed + ep, "steps": steps, "seconds": round(steps * cfg.control_dt, 2),
                "return": round(ret, 3), "consecutive_successes": info["consecutive_successes"],
                "final_rotation_distance_rad": round(info["rotation_distance"], 3),
                "end": _episode_end(info, terminated, truncated, cfg),
            })
    elapsed = time.perf_counter() - t0

    header = f"{'ep':>3} {'steps':>6} {'return':>9} {'successes':>9} {'dist(rad)':>9}  end"
    print(header)
    for e in episodes:
        print(f"{e['episode']:>3} {e['steps']:>6} {e['return']:>9.3f} {e['consecutive_successes']:>9} "
              f"{e['final_rotation_distance_rad']:>9.3f}  {e['end']}")
    summary = {
        "env": simreal.HAND_CUBE_ID, "goal": args.goal, "policy": args.policy, "noise": args.noise,
        "mean_return": round(float(np.mean([e["return"] for e in episodes])), 3),
        "mean_steps": round(float(np.mean([e["steps"] for e in episodes])), 1),
        "drop_rate": round(float(np.mean([e["end"] == "drop" for e in episodes])), 3),
        "steps_per_s_with_rendering": round(total_steps / elapsed, 1),
        "episodes": episodes,
    }
    print(f"mean return {summary['mean_return']}, mean length {summary['mean_steps']} steps, "
          f"drop rate {summary['drop_rate']}")

    grid = np.concatenate([np.concatenate(row, axis=1) for row in frames], axis=0)
    png = out / "cameras.png"
    Image.fromarray(grid).save(png)
    (out / "episodes.json").write_text(json.dumps(summary, indent=2) + "\n")
    env.close()
    print(f"wrote {png} (rows: start and end of episode 0; columns: "
          f"{', '.join(c.name for c in cfg.scene.cameras)}) and {out / 'episodes.json'}")
    return 0


def cmd_env_info(args: argparse.Namespace) -> int:
    import simreal

    env = simreal.make(args.env_id)
    u = env.unwrapped
    print(f"{args.env_id}")
    print(f"  action space:      {env.action_space}")
    for key, space in env.observation_space.spaces.items():
        print(f"  obs[{key!r}]: {space.shape} {space.dtype}")
    if hasattr(u, "config"):
        cfg = u.config
        print(f"  control period:    {cfg.control_dt * 1e3:.0f} ms ({cfg.substeps} substeps of "
              f"{cfg.scene.timestep * 1e3:.1f} ms)")
        print(f"  goal timeout:      {cfg.goal_timeout} s ({cfg.timeout_steps} steps)")
        print("  state layout:      " + ", ".join(f"{k}[{s.start}:{s.stop}]" for k, s in u.state_layout.items()))
    env.close()
    return 0


# ------------------------------------------------------------------ randomization
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _short_paths(message: str) -> str:
    """Paths under the working directory shown relative to it (errors name resolved, absolute files)."""
    cwd = str(pathlib.Path.cwd())
    return message.replace(cwd.rstrip(os.sep) + os.sep, "") if cwd != os.sep else message


def _load(file: str):
    from simreal.randomize.spec import RandomizationError, load_spec, resolve_path

    try:
        return load_spec(file)
    except RandomizationError as exc:
        if not str(exc).endswith(": rig: unknown key"):
            raise CliError(_short_paths(str(exc))) from None
    from simreal.rigs.sim import RigError, load_reality  # a reality file: a randomization under a 'rig' header

    try:
        return load_reality(resolve_path(file)).spec
    except RigError as exc:
        raise CliError(_short_paths(str(exc))) from None


def bind_randomization(spec, env_id: str):
    """A RandomizationStack of spec on a one-copy simulation of env_id (names and fields checked)."""
    import simreal
    from simreal.randomize.spec import RandomizationError

    try:
        if env_id == simreal.HAND_CUBE_ID:
            from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim

            sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
            sim.set_randomization(spec)
            return sim.randomization
        import importlib

        try:
            wrappers = importlib.import_module("simreal.randomize.wrappers")
        except ModuleNotFoundError as exc:
            if exc.name != "simreal.randomize.wrappers":
                raise
            raise CliError(f"only {simreal.HAND_CUBE_ID} is supported until simreal.randomize.wrappers "
                           f"exists; got --env {env_id}") from None
        import gymnasium as gym

        if env_id.startswith("dm_control/") and env_id not in gym.registry:
            import shimmy  # noqa: F401  (registers the dm_control/ ids)
        try:
            env = gym.make(env_id)  # "module:ID" imports module first, for ids registered elsewhere
        except gym.error.Error as exc:
            raise CliError(f"--env {env_id}: {exc}") from None
        return wrappers.wrap(env, spec).stack
    except RandomizationError as exc:
        raise CliError(_short_paths(str(exc))) from None


def cmd_randomization_check(args: argparse.Namespace) -> int:
    from simreal.randomize.stack import FAMILY_ORDER

    spec = _load(args.file)
    enabled = spec.enabled()
    counts = {f: sum(r.family == f for r in enabled) for f in FAMILY_ORDER}
    n_disabled = len(spec.randomizers) - len(enabled)
    bound = ""
    if not args.no_env:
        stack = bind_randomization(spec, args.env)
        stack.seed(0, 0)
        stack.on_reset([0])  # one draw-and-apply, as an episode start does
        bound = f"; bound to {args.env}"
    plural = "" if len(enabled) == 1 else "s"
    print(f"ok: {args.file}: {len(enabled)} randomizer{plural} ("
          + ", ".join(f"{counts[f]} {f}" for f in FAMILY_ORDER)
          + f"), {n_disabled} disabled{bound}")
    return 0


def cmd_randomization_sample(args: argparse.Namespace) -> int:
    from simreal.randomize import sampling

    spec = _load(args.file)
    stack = bind_randomization(spec, args.env)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"simreal randomization sample: {args.file} on {args.env}, {len(stack.items)} randomizers, "
          f"{args.n} episodes from seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    samples = sampling.draw_samples(stack, args.n, args.seed, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    csv_path = sampling.write_csv(samples, out / "samples.csv", n=args.n)
    print(f"wrote {csv_path} ({args.n} rows, {len(sampling.columns(samples))} value columns; "
          f"sampled in {elapsed:.2f} s)")
    if not args.no_plot:
        png = sampling.plot_histograms(samples, stack, out / "histograms.png", n=args.n)
        print(f"wrote {png} (one histogram per randomizer, the file's density or pmf in red)")
    return 0


def cmd_randomization_schema(args: argparse.Namespace) -> int:
    from simreal.randomize.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        path = pathlib.Path(args.out)
        if path.parent != pathlib.Path("."):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=88)


def _add_randomization(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    rnd = sub.add_parser(
        "randomization", help="check, sample and describe randomization YAML files", formatter_class=fmt,
        description=_wrap(
            "Work with randomization files (randomizations/*.yaml): validate one against an env, "
            "draw samples of every randomizer, or export the file format's JSON Schema."),
        epilog="examples:\n"
               "  simreal randomization check randomizations/dactyl.yaml\n"
               "  simreal randomization sample randomizations/dactyl.yaml -n 1000 --out outputs/dactyl-samples\n"
               "  simreal randomization schema --out randomization.schema.json")
    rnd_sub = rnd.add_subparsers(dest="randomization_command", metavar="SUBCOMMAND")
    file_help = "a randomization YAML file (a path, or the bare name of a shipped file such as 'dactyl')"

    check = rnd_sub.add_parser(
        "check", help="validate a file (and bind it to an env)", formatter_class=fmt,
        description=_wrap(
            "Load and validate a randomization file (extends, remove, every key and value), then bind "
            "it to a one-copy simulation of an env so target fields, object names and observation keys "
            "are checked against the real model. Prints one summary line; on a problem prints one line "
            "naming the file and the key path, and exits with status 2."),
        epilog="examples:\n"
               "  simreal randomization check randomizations/dactyl.yaml\n"
               "  simreal randomization check my.yaml --no-env      # the file alone, no model")
    check.add_argument("file", metavar="FILE", help=file_help)
    where = check.add_mutually_exclusive_group()
    where.add_argument("--env", default="simreal/HandCube-v0",
                       help="env id to bind the file to (default simreal/HandCube-v0)")
    where.add_argument("--no-env", action="store_true", help="validate the file only; do not bind it to an env")
    check.set_defaults(func=cmd_randomization_check)

    sample = rnd_sub.add_parser(
        "sample", help="draw N episode samples of every randomizer: CSV and histograms", formatter_class=fmt,
        description=_wrap(
            "Bind a file to a one-copy simulation, seed it once and start N episodes (no physics steps), "
            "recording each enabled randomizer's draw. Writes OUT/samples.csv (one row per sample; a "
            "column per randomizer, name[k] for per-element ones) and OUT/histograms.png (one panel "
            "per randomizer, per-element ones pooled, with the file's density or pmf on top). Values are "
            "the raw draws (a scale factor, an offset, ...), before the operation is applied."),
        epilog="examples:\n"
               "  simreal randomization sample randomizations/dactyl.yaml -n 1000 --out outputs/dactyl-samples\n"
               "  simreal randomization sample my.yaml -n 200 --seed 3 --out /tmp/s --no-plot")
    sample.add_argument("file", metavar="FILE", help=file_help)
    sample.add_argument("--env", default="simreal/HandCube-v0", help="env id (default simreal/HandCube-v0)")
    sample.add_argument("-n", "--num-samples", dest="n", type=_positive_int, default=1000, metavar="N",
                        help="number of episode samples, >= 1 (default 1000)")
    sample.add_argument("--seed", type=int, default=0, help="env seed; the same seed gives the same CSV (default 0)")
    sample.add_argument("--out", default="outputs/randomization-samples",
                        help="output folder (default outputs/randomization-samples)")
    sample.add_argument("--no-plot", action="store_true", help="write the CSV only")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=cmd_randomization_sample)

    schema = rnd_sub.add_parser(
        "schema", help="print the JSON Schema of the file format", formatter_class=fmt,
        description=_wrap(
            "Print (or write) the JSON Schema of randomization files, for editor completion and "
            "checking (e.g. the YAML language server's '# yaml-language-server: $schema=FILE')."),
        epilog="examples:\n"
               "  simreal randomization schema > randomization.schema.json\n"
               "  simreal randomization schema --out randomization.schema.json")
    schema.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    schema.set_defaults(func=cmd_randomization_schema)
    rnd.set_defaults(func=lambda args: _print_help(rnd))


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simreal",
        description="simreal: sim-to-real domain randomization on MuJoCo (the Dactyl hand-cube task).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from simreal.demo import DEFAULTS as D, HAND_DEFAULTS as H

    demo = sub.add_parser(
        "demo", help="the sim-to-real loop on defaults: the shipped hand agents on a held-out rig, the report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap(
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
                           f"balance), or an env id to run the cart-pole training loop on")
    demo.add_argument("--train", action="store_true",
                      help=f"hand: train the agents with {pathlib.Path(H['study']).relative_to(pathlib.Path(H['study']).parents[1])}"
                           " instead of using the shipped ones (hours)")
    demo.add_argument("--agents", metavar="DIR", help="hand: folder of shipped agents (default assets/policies)")
    demo.add_argument("--jobs", type=_positive_int, default=1, help="processes for training and evaluation (1)")
    demo.add_argument("--randomization", help=f"randomization YAML or shipped name (default {H['randomization']}; "
                                              f"cartpole: {D['randomization']})")
    demo.add_argument("--rig", help=f"held-out rig, see `simreal rig list` (default {H['rig']}; cartpole: {D['rig']})")
    demo.add_argument("--steps", type=_positive_int, help=f"cartpole: env steps per agent (default {D['steps']})")
    demo.add_argument("--episodes", type=_positive_int,
                      help=f"evaluation episodes per agent and setting (default {H['episodes']}; cartpole: "
                           f"{D['episodes']})")
    demo.add_argument("--seed", type=int, help="cartpole: training seed (default 0)")
    demo.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    rollout = sub.add_parser("rollout", help="short rollout of the hand-cube env: episode stats and a camera PNG",
                          description="Roll out a scripted or random policy in simreal/HandCube-v0, print "
                                      "per-episode statistics, and write the three camera views as a PNG.")
    rollout.add_argument("--episodes", type=int, default=3, help="number of episodes (default 3)")
    rollout.add_argument("--max-steps", type=int, default=150, help="cap on steps per episode (80 ms each; default 150)")
    rollout.add_argument("--policy", choices=("hold", "random"), default="hold",
                      help="hold: scripted pose-holding with action noise; random: uniform actions")
    rollout.add_argument("--noise", type=float, default=0.1, help="action noise std of the hold policy (default 0.1)")
    rollout.add_argument("--goal", choices=("full", "vertical"), default="full", help="goal variant (default full)")
    rollout.add_argument("--seed", type=int, default=0, help="seed of episode 0; episode k uses seed+k")
    rollout.add_argument("--height", type=int, default=240, help="camera image height in px")
    rollout.add_argument("--width", type=int, default=320, help="camera image width in px")
    rollout.add_argument("--out", default="outputs/rollout", help="output folder (default outputs/rollout)")
    rollout.set_defaults(func=cmd_rollout)

    env = sub.add_parser("env", help="inspect environments")
    env_sub = env.add_subparsers(dest="env_command", metavar="SUBCOMMAND")
    info = env_sub.add_parser("info", help="print spaces and timing of an env")
    info.add_argument("env_id", nargs="?", default="simreal/HandCube-v0")
    info.set_defaults(func=cmd_env_info)

    _add_randomization(sub)

    train = sub.add_parser(
        "train", help="train an agent on a (randomized) env", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Train an agent. Every agent takes a config of defaults plus named presets "
                          "(--preset, repeatable) and dotted overrides (--set key.path=value), saves the "
                          "resolved config, checkpoints and TensorBoard logs in --run-dir, continues a killed "
                          "run with --resume and exports the policy for rigs."))
    train_sub = train.add_subparsers(dest="agent", metavar="AGENT")
    train.set_defaults(func=lambda args: _print_help(train))
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_train"):
            module.register_train(train_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except Exception as exc:
        # user errors: ValueError/TypeError (bad values), and every exception class simreal defines
        # (RandomizationError, ConfigError, RigError, RecordingError, ...); anything else is a bug
        # and mujoco's refusal of a MUJOCO_GL it does not know (raised when a command first imports mujoco)
        bad_gl = isinstance(exc, RuntimeError) and "MUJOCO_GL" in str(exc)
        if not (bad_gl or isinstance(exc, (ValueError, TypeError)) or type(exc).__module__.startswith("simreal.")):
            raise
        hint = " (headless: egl, or osmesa; with a display: glfw)" if bad_gl else ""
        print(f"simreal {args.command}: error: {exc}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
