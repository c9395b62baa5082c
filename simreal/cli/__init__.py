"""The `simreal` command: one entry point, one module per verb.

    simreal demo            the hand: shipped agents on nominal sim and a held-out rig, the study
                            report (cli/demo.py; --env cartpole trains from scratch)
    simreal rollout         short rollout of the hand-cube env, stats + camera PNG (cli/rollout.py)
    simreal env info        spaces, sizes and timing constants of an env (cli/env.py)
    simreal randomization   check, sample and describe randomization YAML files (cli/randomization.py)
    simreal export          a trained policy as ONNX, checked against PyTorch (cli/export.py)
    simreal train AGENT     each agent's own module (`register_train`): agents/ppo/cli.py, ...
    simreal rig|evaluate|study|pose|calibrate   the modules of COMMAND_MODULES (`register`)

A verb module imports only `simreal.utils.cli` from here (errors, argument types, help layout) and
imports heavy libraries inside its handlers, so ``simreal --help`` stays fast. Errors of user input
(ValueError, TypeError and every simreal exception) print as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from simreal.utils.cli import CliError, print_help, short_paths, wrap  # noqa: F401 (CliError: re-exported)

os.environ.setdefault("MUJOCO_GL", "egl")

__all__ = ["CliError", "build_parser", "main"]

# Modules that add verbs: ``register(sub)`` adds top-level verbs, ``register_train(train_sub)``
# adds ``simreal train NAME``. They import heavy libraries (torch) inside their handlers only,
# so ``simreal --help`` stays fast.
VERB_MODULES: tuple[str, ...] = ("simreal.cli.demo", "simreal.cli.rollout", "simreal.cli.env",
                                 "simreal.cli.randomization", "simreal.cli.export")  # listed first in --help
COMMAND_MODULES: tuple[str, ...] = (
    "simreal.agents.world_models.cli",
    "simreal.agents.world_models.ha.cli",
    "simreal.agents.ppo.cli",
    "simreal.rigs.cli",
    "simreal.evaluation.cli",
    "simreal.evaluation.study_cli",
    "simreal.perception.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simreal",
        description="simreal: sim-to-real domain randomization on MuJoCo (the Dactyl hand-cube task).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    train = sub.add_parser(
        "train", help="train an agent on a (randomized) env", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=wrap("Train an agent. Every agent takes a config of defaults plus named presets "
                          "(--preset, repeatable) and dotted overrides (--set key.path=value), saves the "
                          "resolved config, checkpoints and TensorBoard logs in --run-dir, continues a killed "
                          "run with --resume and exports the policy for rigs."))
    train_sub = train.add_subparsers(dest="agent", metavar="AGENT")
    train.set_defaults(func=lambda args: print_help(train))
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_train"):
            module.register_train(train_sub)
    from simreal.cli.train import register_generic

    register_generic(train_sub, set(train_sub.choices))
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
        print(f"simreal {args.command}: error: {short_paths(str(exc))}{hint}", file=sys.stderr)
        return 2
