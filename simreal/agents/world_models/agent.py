"""The RSSM agents (Dreamer V1-V3, PlaNet, Dreaming) as registered `simreal.training.agents.Agent` objects.

One config file (configs.yaml) and one training loop serve all three; each agent fixes the config's
``agent`` key: its own preset goes first unless a given preset or override sets ``agent``, and a
config that names another agent is a one-line error.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterable, Mapping

from simreal.agents.world_models import CONFIG_PATH


def with_agent_preset(agent: str, presets: Iterable[str], overrides: Iterable[str]) -> list[str]:
    """``presets`` with ``agent``'s own preset first (``dreamer`` has none: it is the default), unless a
    preset or override sets ``agent``; a config naming another agent is a one-line error."""
    from simreal.training.config import ConfigError, load_config_file, resolve_config

    presets, overrides = list(presets), list(overrides)
    _, known = load_config_file(CONFIG_PATH)
    names_agent = any(isinstance(known.get(p), dict) and "agent" in known[p] for p in presets)
    names_agent = names_agent or any(o.split("=", 1)[0].strip() == "agent" for o in overrides)
    chosen = presets if agent == "dreamer" or names_agent else [agent, *presets]
    got = resolve_config(CONFIG_PATH, chosen, overrides).get("agent", "dreamer")
    if got != agent:
        raise ConfigError(f"the presets/overrides make a {got!r} config; train it with `simreal train {got}`")
    return chosen


class RSSMAgent:
    """One of the RSSM agents; ``policy_module`` provides its ``policy_from_export``."""

    config_path = CONFIG_PATH

    def __init__(self, name: str, summary: str, policy_module: str):
        self.name, self.summary, self._policy_module = name, summary, policy_module

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        from simreal.training.config import resolve_config

        overrides = list(overrides)
        return resolve_config(CONFIG_PATH, with_agent_preset(self.name, presets, overrides), overrides)

    def train(self, cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
        from simreal.agents.world_models.config import agent_name
        from simreal.agents.world_models.trainer import train
        from simreal.training.config import ConfigError

        if agent_name(cfg) != self.name:
            raise ConfigError(f"{run.config_path} is a {agent_name(cfg)!r} run, not {self.name!r}")
        summary = train(dict(cfg), run, progress=progress)
        return {**summary, "env_steps": int(summary["frames"])}

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        return importlib.import_module(self._policy_module).policy_from_export(data, device=device)


DREAMER = RSSMAgent("dreamer", "DreamerV1/V2/V3 (by preset): an RSSM world model and an actor-critic in imagination",
                    "simreal.agents.world_models.dreamer")
PLANET = RSSMAgent("planet", "PlaNet: the RSSM world model with a CEM planner in latent space",
                   "simreal.agents.world_models.planet")
DREAMING = RSSMAgent("dreaming", "Dreaming / DreamingV2: a contrastive world model, no reconstruction",
                     "simreal.agents.world_models.dreaming")
