"""``simreal train NAME`` for every registered agent that brings no verb of its own.

An agent listed in `simreal.training.agents.REGISTRY` is trainable from the command line with the
shared flags (``--preset``, ``--set``, ``--env``, ``--steps``, ``--run-dir``, ``--resume``, ...)
and no CLI code: this verb resolves its config through the agent's ``resolve_config``, saves it in
the run folder and calls its ``train``. Agents with their own module (PPO, the RSSM agents, World
Models) keep their richer verbs; both end in the same run folder layout and ``policy.pt``.
"""

from __future__ import annotations

import argparse

from simreal.training.agents import REGISTRY
from simreal.training.cli_args import add_train_arguments
from simreal.utils.cli import wrap


def register_generic(train_sub, taken: set[str]) -> None:
    """Add ``simreal train NAME`` for each registered agent not in ``taken`` (the verbs already added)."""
    from simreal.training.agents import get_agent

    for name in sorted(set(REGISTRY) - taken):
        agent = get_agent(name)  # the agent objects import their heavy modules only when they train
        presets = _presets(agent)
        parser = train_sub.add_parser(
            name, help=agent.summary, formatter_class=argparse.RawDescriptionHelpFormatter,
            description=wrap(f"{agent.summary}. Registered as {name!r} in simreal.training.agents.REGISTRY "
                             f"({REGISTRY[name]}); config {agent.config_path}: its defaults, then each --preset, "
                             "then each --set; the resolved config, checkpoints and the policy export (policy.pt) "
                             "go to --run-dir, and --resume continues a stopped run."),
            epilog=f"presets: {', '.join(presets)}" if presets else None)
        add_train_arguments(parser)
        parser.set_defaults(func=cmd_train_registered, agent_name=name)


def _presets(agent) -> list[str]:
    """The preset names of an agent's YAML config (none for a config that is not a YAML file)."""
    if agent.config_path.suffix not in (".yaml", ".yml"):
        return []
    from simreal.training.config import load_config_file

    return sorted(load_config_file(agent.config_path)[1])


def cmd_train_registered(args: argparse.Namespace) -> int:
    from simreal.training.agents import get_agent
    from simreal.training.cli_args import prepare_run

    agent = get_agent(args.agent_name)
    run, cfg = prepare_run(args, agent.config_path, resolve=agent.resolve_config)
    print(f"simreal train {agent.name}: {cfg['env']['id']} (randomization {cfg['env'].get('randomization')}), "
          f"{cfg['run']['steps']} env steps, run dir {run.path}", flush=True)
    summary = agent.train(cfg, run, progress=not args.quiet)
    print(f"done: {summary['env_steps']} env steps; policy {run.export_path}")
    return 0
