"""The flags every ``simreal train AGENT`` command shares, and turning them into a run.

Each agent's config file must have an ``env`` section with ``id`` and
``randomization`` and a ``run`` section with ``steps``, ``seed`` and ``device``;
the flags ``--env``, ``--randomization``, ``--steps``, ``--seed`` and
``--device`` are shorthands for overriding those keys.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any, Callable, Mapping

from simreal.training.config import ConfigError, merge, resolve_config


def add_train_arguments(parser: argparse.ArgumentParser, presets_help: str = "") -> None:
    parser.add_argument("--env", help="env id (simreal/HandCube-v0, dm_control/cartpole-swingup-v0, Hopper-v5, ...)")
    parser.add_argument("--randomization", metavar="FILE",
                        help="randomization YAML (a path or a shipped name such as 'dactyl'; 'none' for nominal)")
    parser.add_argument("--steps", type=int, help="total env steps to train for")
    parser.add_argument("--run-dir", required=True, help="folder for config, checkpoints, logs and the export")
    parser.add_argument("--preset", action="append", default=[], metavar="NAME",
                        help="named preset from the agent's config file; repeat to stack, applied in order"
                             + (f" ({presets_help})" if presets_help else ""))
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", dest="overrides",
                        help="override one config value (YAML syntax), e.g. --set ppo.lr=1e-4; repeatable")
    parser.add_argument("--seed", type=int, help="seed of everything (envs, networks, sampling)")
    parser.add_argument("--device", help="auto (CUDA when present), cpu or cuda[:N]")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last checkpoint (--steps may raise the total)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def shorthand_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if args.env is not None:
        out.setdefault("env", {})["id"] = args.env
    if args.randomization is not None:
        out.setdefault("env", {})["randomization"] = args.randomization
    for flag, key in (("steps", "steps"), ("seed", "seed"), ("device", "device")):
        if getattr(args, flag) is not None:
            out.setdefault("run", {})[key] = getattr(args, flag)
    return out


def prepare_run(args: argparse.Namespace, config_path: str | pathlib.Path,
                validate: Callable[[Mapping[str, Any]], Any] | None = None,
                resolve: Callable[[list[str], list[str]], dict] | None = None) -> tuple["RunDir", dict]:
    """The run directory and the resolved config (saved there), new or resumed.

    On ``--resume`` the saved config is used as is; only ``--steps`` may
    change it (to train longer). Presets, overrides or other flags are an error
    (``--env`` repeating the saved env id is allowed: it confirms an entry point).
    ``validate(cfg)`` (the agent's config check, raising a one-line `ConfigError`)
    runs on the resolved config before anything is written: a bad value leaves no
    run folder and no config.yaml behind. An env id of the ``module:name`` form
    (which imports ``module``) is only taken from ``--env``, never from a config
    file, a preset or ``--set``. ``resolve(presets, overrides)`` (an `Agent`'s ``resolve_config``)
    replaces reading ``config_path`` when given.
    """
    from simreal.training.config import check_config_env_id
    from simreal.training.run import RunDir  # torch: imported when a run starts, not for --help

    if args.resume:
        run = RunDir(args.run_dir, resume=True)  # an existing run: opening it writes nothing
        cfg = run.load_config()
        saved_env = cfg["env"].get("id") if isinstance(cfg.get("env"), dict) else None
        changed = [f"--{k}" for k in ("randomization", "seed", "device") if getattr(args, k) is not None]
        changed += ["--env"] * (args.env is not None and args.env != saved_env)
        changed += ["--preset"] * bool(args.preset) + ["--set"] * bool(args.overrides)
        if changed:
            raise ConfigError(f"--resume uses the saved {run.config_path}; drop {', '.join(sorted(set(changed)))} "
                              "(only --steps may change)")
        if args.env is None:
            check_config_env_id(saved_env, f"{run.config_path}: env.id",
                                hint=f"to resume it anyway, confirm it with --env {saved_env}")
        if args.steps is not None:
            cfg = merge(cfg, {"run": {"steps": args.steps}}, "--steps")
    else:
        RunDir.check(args.run_dir)
        cfg = (resolve or (lambda p, o: resolve_config(config_path, p, o)))(args.preset, args.overrides)
        cfg = merge(cfg, shorthand_overrides(args), "command-line flags")
        if args.env is None:
            check_config_env_id(cfg.get("env", {}).get("id"), "env.id (from the config file, a preset or --set)",
                                hint="pass it with --env")
    if int(cfg["run"]["steps"]) < 1:
        raise ConfigError(f"run.steps must be >= 1, got {cfg['run']['steps']}")
    if validate is not None:
        validate(cfg)
    if not args.resume:
        run = RunDir(args.run_dir)
    run.save_config(cfg)
    return run, cfg
