"""``simreal rig``: list realities, inspect rigs, serve a rig over the bridge, record policy episodes."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal

from simreal.utils.cli import wrap  # one help layout for every command

DEFAULT_TOKEN_FILE = "~/.config/simreal/rig_token"

RIG_HELP = ("a rig: sim:REALITY or REALITY (a shipped reality such as hand_laggy, or a reality YAML), "
            "nominal[:ENV_ID], replay:DIR or DIR (a recorded dataset), tcp://HOST:PORT (a rig server), "
            "leap:fake or leap:SERIAL_PORT")


def _cli_error(exc: Exception):
    from simreal.utils.cli import CliError

    return CliError(" ".join(str(exc).split()))


def _safety(args: argparse.Namespace):
    from simreal.rigs.base import SafetyConfig

    try:
        return SafetyConfig(max_delta=getattr(args, "max_delta", None),
                            watchdog_timeout=getattr(args, "watchdog", None))
    except ValueError as exc:
        raise _cli_error(exc) from None


def _policy_env(policy: str | None) -> dict:
    """The env section of a run directory's config.yaml (empty for a bare export or a scripted policy)."""
    if policy is None:
        return {}
    config = pathlib.Path(policy) / "config.yaml"
    if not config.is_file():
        return {}
    import yaml

    env = (yaml.safe_load(config.read_text()) or {}).get("env") or {}
    return env if isinstance(env, dict) else {}


def _open(args: argparse.Namespace, env_cfg: dict | None = None):
    from simreal.rigs import open_rig
    from simreal.rigs.base import RigError

    env_cfg = env_cfg or {}
    env_id = getattr(args, "env", None) or env_cfg.get("id")
    pixels = env_cfg.get("pixels")
    try:
        return open_rig(args.rig, env_id=env_id, env_kwargs=env_cfg.get("kwargs") or None,
                        action_repeat=int(env_cfg.get("action_repeat") or 1),
                        pixels=tuple(pixels) if pixels else None, pixels_only=bool(env_cfg.get("pixels_only")),
                        seed=getattr(args, "seed", 0), safety=_safety(args), token_file=args.token_file,
                        timeout=getattr(args, "timeout", 2.0))
    except (RigError, ValueError, TypeError) as exc:
        raise _cli_error(exc) from None


# ----------------------------------------------------------------------------- list / info
def cmd_rig_list(args: argparse.Namespace) -> int:
    from simreal.rigs.sim import REALITIES_DIR, list_realities, load_reality

    print(f"shipped realities ({REALITIES_DIR}):")
    for name in list_realities():
        reality = load_reality(name)
        print(f"  {name:<22} {reality.env_id}" + (f" (+{len(reality.envs) - 1} more)" if len(reality.envs) > 1 else ""))
        print(f"  {'':<22} {reality.description}")
    return 0


def _print_info(info) -> None:
    print(f"{info.name}  (kind {info.kind}, env {info.env_id or '-'})")
    print(f"  control period:  {info.control_dt * 1e3:g} ms")
    print(f"  action space:    {info.action_space}")
    for key, space in info.observation_space.spaces.items():
        print(f"  obs[{key!r}]: {space.shape} {space.dtype}")
    print(f"  commands:        {len(info.command_names)} channels, {info.command_units}")
    for name, low, high in list(zip(info.command_names, info.command_low, info.command_high))[:32]:
        print(f"    {name:<24} [{low:+.3f}, {high:+.3f}]")
    safety = info.safety
    print(f"  safety:          max change/step {safety.max_delta if safety.max_delta is not None else 'unlimited'}, "
          f"watchdog {str(safety.watchdog_timeout) + ' s' if safety.watchdog_timeout else 'off'}")
    reality = info.extra.get("reality")
    if reality:
        print(f"  reality:         {reality['name']}: {reality['description']}")
        for r in reality["randomizers"]:
            dist = r["distribution"]
            value = dist.get("value", ", ".join(f"{k} {v}" for k, v in dist.items() if k != "type"))
            print(f"    {r['name']:<24} {r['operation']} {value}  ({dist['type']})")


def cmd_rig_info(args: argparse.Namespace) -> int:
    rig = _open(args)
    try:
        info = rig.info()
        if args.json:
            print(json.dumps(info.to_dict(), indent=1))
            return 0
        _print_info(info)
        if info.kind == "replay":
            summary = rig.reader.summary()
            print(f"  dataset:         {summary['episodes']} episodes, {summary['steps']} steps, ends {summary['ends']}")
            print(f"  recorded on:     {summary['rig']} (kind {summary['kind']}); tags {summary['tags']}")
    finally:
        rig.close()
    return 0


# ----------------------------------------------------------------------------- serve
def cmd_rig_serve(args: argparse.Namespace) -> int:
    from simreal.rigs.base import RigError
    from simreal.rigs.bridge import LOOPBACK, RigServer, create_token_file, load_token

    def _token(path: pathlib.Path) -> tuple[str, bool]:  # (token, whether the file was created)
        try:
            if path.exists():
                return load_token(token_file=path), False
            return create_token_file(path), True
        except RigError as exc:
            raise _cli_error(exc) from None

    token_path = pathlib.Path(args.token_file).expanduser()
    token, made = _token(token_path)
    operator_token = operator_path = None
    operator_made = False
    if args.operator_token_file is not None:
        operator_path = pathlib.Path(args.operator_token_file).expanduser()
        if operator_path.resolve() == token_path.resolve():
            raise _cli_error(ValueError("--operator-token-file must not be the --token-file: every client holds "
                                        "the shared token"))
        operator_token, operator_made = _token(operator_path)
    if args.sim is not None:
        args.rig = args.sim if args.sim.startswith(("sim:", "nominal")) else f"sim:{args.sim}"
    else:
        args.rig = f"leap:{args.leap}"
    if args.watchdog is None and args.sim is not None:
        args.watchdog = 1.0
    handlers: dict = {}
    rig = _open(args)
    try:
        if args.record:
            from simreal.rigs.recording import record

            record(rig, args.record, append=args.append)
        try:
            server = RigServer(rig, token, host=args.host, port=args.port, operator_token=operator_token)
        except RigError as exc:
            raise _cli_error(exc) from None
        if args.host not in LOOPBACK:
            print(f"warning: listening on {args.host}: the token travels in clear text; use a private "
                  "network or an ssh tunnel", flush=True)
        print(f"serving {rig.name} ({rig.kind}, {rig.env_id or 'no env'}) at {server.address}; token "
              f"{'written to' if made else 'from'} {token_path}"
              + (f"; recording to {args.record}" if args.record else ""), flush=True)
        clear_how = f"kill -USR1 {os.getpid()}" if hasattr(signal, "SIGUSR1") else "RigServer.clear_estop()"
        print(f"emergency stop: any client may latch it; clear it here with {clear_how}"
              + (f", or remotely with the operator token {'written to' if operator_made else 'from'} {operator_path}"
                 if operator_path is not None else " (remote clearing is off: see --operator-token-file)"),
              flush=True)

        def _terminate(signum, frame):  # a service manager's stop: leave the rig safe, as on Ctrl-C
            raise KeyboardInterrupt

        def _clear(signum, frame):  # the operator at the cell; the serving loop clears between two requests
            server.request_clear_estop()

        signals = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
        handlers.update({sig: signal.getsignal(sig) for sig in signals})
        signal.signal(signal.SIGTERM, _terminate)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, _clear)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            for sig in handlers:  # one stop is enough: a second signal must not cut the shutdown short
                signal.signal(sig, signal.SIG_IGN)
            stats = dict(server.stats, **rig.safety_stats.to_dict())
            server.stop()
        print("stopped: " + ", ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
    finally:
        rig.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0


# ----------------------------------------------------------------------------- record
def _load_policy(args: argparse.Namespace, rig):
    from simreal.rigs.rollout import random_policy, zero_policy

    if args.policy == "zero":
        return zero_policy(rig)
    if args.policy == "random":
        return random_policy(rig, args.seed)
    if args.policy == "excite":
        from simreal.rigs.rollout import ExcitationPolicy

        try:
            return ExcitationPolicy(rig, args.seed, args.excite_amplitude)
        except ValueError as exc:
            raise _cli_error(exc) from None
    if args.policy == "hold":
        from simreal.rigs.base import RigError
        from simreal.rigs.rollout import FunctionPolicy

        backend = getattr(rig, "backend", None)
        if backend is None:
            raise _cli_error(ValueError("--policy hold needs a simulated hand-cube rig (sim:hand_*)"))
        try:
            hold = backend.hold_policy()
        except RigError as exc:
            raise _cli_error(exc) from None
        return FunctionPolicy(hold, rig.observation_space, rig.action_space)
    from simreal.agents import load_policy
    from simreal.training.run import RunDirError, pick_device

    path = pathlib.Path(args.policy)
    export = path / "policy.pt" if path.is_dir() else path
    try:
        return load_policy(export, device=str(pick_device(args.device)))
    except (RunDirError, ValueError) as exc:
        raise _cli_error(exc) from None


def cmd_rig_record(args: argparse.Namespace) -> int:
    import torch

    from simreal.rigs.base import RigError
    from simreal.rigs.recording import record
    from simreal.rigs.rollout import run_episodes

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    env_cfg = _policy_env(args.policy)
    estimator = None
    if args.pose_estimator:
        from simreal.perception.estimator import PoseEstimator
        from simreal.perception.wrapper import camera_kwargs
        from simreal.training.run import RunDirError

        try:
            estimator = PoseEstimator.load(args.pose_estimator)
        except RunDirError as exc:
            raise _cli_error(exc) from None
        env_cfg = dict(env_cfg, kwargs={**(env_cfg.get("kwargs") or {}), **camera_kwargs(estimator)})
    rig = _open(args, env_cfg)
    try:
        policy = _load_policy(args, rig)
        if estimator is not None:
            from simreal.perception.wrapper import VisionPolicy

            try:
                policy = VisionPolicy(policy, estimator)
            except ValueError as exc:
                raise _cli_error(exc) from None
        tags = {"policy": args.policy}
        for item in args.tag:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise _cli_error(ValueError(f"--tag: expected KEY=VALUE, got {item!r}"))
            tags[key] = value
        try:
            if args.minari_dataset_id:
                from simreal.rigs.recording import minari_dataset_path

                args.out = args.out or str(minari_dataset_path(args.minari_dataset_id))
            if not args.out:
                raise RigError("--out: name the dataset folder (or --minari-dataset-id to record into Minari's)")
            writer = record(rig, args.out, append=args.append, tags=tags, dataset_id=args.minari_dataset_id)
        except RigError as exc:
            raise _cli_error(exc) from None
        print(f"simreal rig record: {args.policy} on {rig.name} ({rig.env_id or 'no env'}), {args.episodes} "
              f"episodes from seed {args.seed}" + (f", at most {args.max_steps} steps" if args.max_steps else "")
              + f" -> {args.out}", flush=True)
        try:
            results = run_episodes(rig, policy, args.episodes, seed=args.seed, deterministic=not args.stochastic,
                                   max_steps=args.max_steps, progress=not args.quiet)
        except RigError as exc:
            raise _cli_error(exc) from None
        print(f"{'ep':>3} {'seed':>6} {'steps':>6} {'return':>10}  end")
        for r in results:
            print(f"{r.index:>3} {r.seed if r.seed is not None else '-':>6} {r.steps:>6} {r.episode_return:>10.3f}  {r.end}")
        if estimator is not None:
            e = policy.error_summary()
            print(f"pose estimate against the measured pose over {e['steps']} steps: median "
                  f"{e['position_mm_median']:.1f} mm / {e['angle_deg_median']:.1f} deg")
        stats = rig.safety_stats.to_dict()
        print(f"safety: {stats['non_finite']} non-finite actions held, {stats['clipped']} clipped, "
              f"{stats['rate_limited']} rate-limited steps of {stats['steps']}")
        print(f"wrote {writer.total_episodes} episodes ({writer.total_steps} steps) to {args.out} "
              f"(Minari layout: {args.out}/data/main_data.hdf5, metadata.json)")
    finally:
        rig.close()
    return 0


# ----------------------------------------------------------------------------- parser
def register(sub) -> None:
    """Add the ``rig`` verb to the top-level parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    rig = sub.add_parser(
        "rig", help="rigs: held-out simulated robots, recorded logs and real hardware behind one interface",
        formatter_class=fmt,
        description=wrap(
            "Rigs have the observation and action spaces of the env a policy was trained on, a control "
            "period and a safety layer (joint limits, a maximum change per step, a watchdog, an emergency "
            "stop). List the shipped held-out realities, inspect a rig, serve one over the network bridge "
            "(next to the robot), or record a policy's episodes on a rig as a Minari dataset."),
        epilog="examples:\n"
               "  simreal rig list\n"
               "  simreal rig info sim:hand_laggy\n"
               "  simreal rig serve --sim cartpole_heavy_pole --port 5555\n"
               "  simreal rig record sim:cartpole_laggy --policy runs/ppo-cartpole --episodes 5 --out outputs/logs/laggy\n"
               "  simreal rig info outputs/logs/laggy")
    rig_sub = rig.add_subparsers(dest="rig_command", metavar="SUBCOMMAND")

    lst = rig_sub.add_parser("list", help="the shipped realities (held-out simulated rigs)", formatter_class=fmt,
                             description=wrap("Print every reality in rigs/realities/: its default env and what "
                                               "it changes. Use one as RIG with sim:NAME."),
                             epilog="example:\n  simreal rig list")
    lst.set_defaults(func=cmd_rig_list)

    info = rig_sub.add_parser(
        "info", help="a rig's spaces, timing, command limits, safety and (sim) reality values", formatter_class=fmt,
        description=wrap("Open a rig and print what it is: kind, env, control period, observation and action "
                          "spaces, command channels with their limits, safety settings; a simulated rig lists its "
                          "reality's values, a recorded dataset its episodes."),
        epilog="examples:\n"
               "  simreal rig info sim:hand_heavy_slippery\n"
               "  simreal rig info sim:cartpole_laggy --env dm_control/cartpole-balance-v0\n"
               "  simreal rig info outputs/logs/laggy          # a recorded dataset\n"
               "  simreal rig info tcp://127.0.0.1:5555 --json")
    info.add_argument("rig", metavar="RIG", help=RIG_HELP)
    info.add_argument("--env", help="env id for a simulated rig (default: the reality's first env)")
    info.add_argument("--token-file", default=None, help="token file for tcp:// rigs (default $SIMREAL_RIG_TOKEN)")
    info.add_argument("--json", action="store_true", help="print RigInfo as JSON")
    info.set_defaults(func=cmd_rig_info)

    serve = rig_sub.add_parser(
        "serve", help="serve a rig over the network bridge (ZeroMQ, token-checked)", formatter_class=fmt,
        description=wrap(
            "Run a bridge server in front of a rig, for clients that open tcp://HOST:PORT (RemoteRig). "
            "Binds 127.0.0.1 unless --host says otherwise. Every message must carry the shared token read "
            "from --token-file (a new random token is written there, readable by you only, if the file does "
            "not exist). The served rig's own safety layer applies: its watchdog puts the rig in its safe "
            "state when a client stops sending commands mid-episode. Any client may latch the emergency "
            "stop; clearing it is the operator's action at the cell: send SIGUSR1 to this process "
            "(kill -USR1 PID; the PID is printed at start). Clients may clear it only with "
            "--operator-token-file's separate token (without it, remote clearing is refused). Runs until "
            "Ctrl-C. The message protocol is documented in simreal/rigs/bridge.py."),
        epilog="examples:\n"
               "  simreal rig serve --sim hand_laggy\n"
               "  simreal rig serve --sim cartpole_heavy_pole --env dm_control/cartpole-balance-v0 --port 6000\n"
               "  simreal rig serve --leap fake --record outputs/logs/leap-dry-run\n"
               "  simreal rig serve --leap /dev/ttyUSB0 --max-delta 0.1 --watchdog 0.3\n"
               "  simreal rig serve --sim hand_nominal --host 0.0.0.0 --token-file /etc/simreal/token\n"
               "  simreal rig serve --leap /dev/ttyUSB0 --operator-token-file ~/.config/simreal/rig_operator_token\n"
               "  kill -USR1 PID                  # clear an emergency stop of the server with that PID")
    what = serve.add_mutually_exclusive_group(required=True)
    what.add_argument("--sim", metavar="REALITY", help="serve a simulated rig: a shipped reality name or a reality YAML")
    what.add_argument("--leap", metavar="PORT", help="serve the LEAP hand on a serial port, or 'fake' (a simulated motor bus)")
    serve.add_argument("--env", help="env id of the simulated rig (default: the reality's first env)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=5555, help="TCP port (default 5555; 0 picks a free one)")
    serve.add_argument("--token-file", default=DEFAULT_TOKEN_FILE,
                       help=f"shared token file, created if missing (default {DEFAULT_TOKEN_FILE})")
    serve.add_argument("--operator-token-file", default=None, metavar="FILE",
                       help="a second token file (created if missing) whose token lets a client clear an "
                            "emergency stop (RemoteRig operator_token_file=); default: no remote clearing, "
                            "only SIGUSR1 to this process")
    serve.add_argument("--watchdog", type=float, default=None, metavar="SECONDS",
                       help="safe state after this long without a command mid-episode "
                            "(default: 1.0 for simulated rigs, 0.5 for the LEAP hand)")
    serve.add_argument("--max-delta", type=float, default=None, metavar="X",
                       help="largest command change per step, in the rig's command units (default: the rig's)")
    serve.add_argument("--record", metavar="DIR", help="also record every served episode here (Minari dataset)")
    serve.add_argument("--append", action="store_true", help="add to an existing --record dataset")
    serve.add_argument("--seed", type=int, default=0, help="simulated rigs: episode k without a seed uses seed+k")
    serve.set_defaults(func=cmd_rig_serve)

    rec = rig_sub.add_parser(
        "record", help="run a policy on a rig for N episodes and record them (Minari dataset)", formatter_class=fmt,
        description=wrap(
            "Run a policy on a rig and record every episode (observations, the post-safety actions and "
            "commands, the raw policy outputs, rewards, infos, safety flags, ground-truth state of simulated "
            "rigs) into a Minari dataset folder, flushed episode by episode. --policy is a training run "
            "directory (its policy.pt and env settings are used), an exported policy file, or a scripted "
            "policy: zero, random, hold (the hand's pose-holding policy), excite (a bounded multisine per "
            "action, rigs.rollout.ExcitationPolicy: the data `simreal calibrate` identifies parameters from)."),
        epilog="examples:\n"
               "  simreal rig record sim:cartpole_heavy_pole --policy runs/ppo-cartpole --episodes 10 --out logs/heavy\n"
               "  simreal rig record sim:hand_laggy --policy hold --episodes 3 --max-steps 100 --out logs/hand-hold\n"
               "  simreal rig record tcp://127.0.0.1:5555 --policy random --episodes 2 --out logs/remote "
               "--token-file ~/.config/simreal/rig_token")
    rec.add_argument("rig", metavar="RIG", help=RIG_HELP)
    rec.add_argument("--policy", required=True,
                     help="a run directory, a policy export (.pt), or zero | random | hold | excite (a bounded "
                          "multisine on every action, for `simreal calibrate`)")
    rec.add_argument("--excite-amplitude", type=float, default=0.5, metavar="A",
                     help="with --policy excite: the fraction of each action's half range it sweeps (default 0.5)")
    rec.add_argument("--episodes", type=int, default=5, help="number of episodes (default 5)")
    rec.add_argument("--out", help="dataset folder to write (Minari layout)")
    rec.add_argument("--minari-dataset-id", metavar="ID", default=None,
                     help="the dataset's Minari id ([namespace/]name-vN); without --out it is written under Minari's "
                          "data path ($MINARI_DATASETS_PATH or ~/.minari/datasets), so minari.load_dataset(ID) finds it")
    rec.add_argument("--append", action="store_true", help="add episodes to an existing dataset in --out")
    rec.add_argument("--seed", type=int, default=0, help="episode k uses seed+k (default 0)")
    rec.add_argument("--max-steps", type=int, default=None, help="cut episodes after this many steps (recorded as cut_off)")
    rec.add_argument("--env", help="env id for a simulated rig (default: the run's env, else the reality's first)")
    rec.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mode")
    rec.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                     help="stored with every episode (repeatable); the policy is always tagged")
    rec.add_argument("--max-delta", type=float, default=None, metavar="X",
                     help="largest command change per step, in the rig's command units (default: the rig's)")
    rec.add_argument("--watchdog", type=float, default=None, metavar="SECONDS",
                     help="watchdog timeout of the rig (default: the rig's)")
    rec.add_argument("--pose-estimator", metavar="DIR", default=None,
                     help="act on the cube pose this pose CNN (`simreal pose train` folder or export) estimates "
                          "from the rig's camera images instead of the measured one; prints the estimate's error")
    rec.add_argument("--token-file", default=None, help="token file for tcp:// rigs (default $SIMREAL_RIG_TOKEN)")
    rec.add_argument("--device", default="auto", help="device of a learned policy: auto, cpu or cuda[:N]")
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.set_defaults(func=cmd_rig_record)

    def _rig_help(args: argparse.Namespace) -> int:
        rig.print_help()
        return 2

    rig.set_defaults(func=_rig_help)
