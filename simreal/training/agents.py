"""The Agent protocol and the one registry of agents that training, exports and studies read.

An agent is a learner with a config file of defaults and presets, a way to
train a resolved config in a run directory (checkpointing and exporting
``policy.pt`` as it goes, resuming when the run dir was opened with
``resume=True``), and a way to rebuild its exported policy without the
trainer::

    from simreal.training.agents import get_agent
    from simreal.training.run import RunDir

    agent = get_agent("ppo")
    cfg = agent.resolve_config(["tiny"], ["run.seed=1"])
    summary = agent.train(cfg, RunDir("runs/tiny"), progress=False)   # {"env_steps": ..., ...}
    policy = agent.policy_from_export(load_export("runs/tiny/policy.pt"))

``REGISTRY`` maps each name (the ``simreal train NAME`` verb and the
``agent`` field of its exports) to ``module:attribute`` of the object that
implements `Agent`; nothing is imported until an agent is asked for, so
listing agents stays cheap. Adding an agent is a new package with such an
object plus one line here.
"""

from __future__ import annotations

import importlib
import pathlib
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

REGISTRY: dict[str, str] = {
    "ppo": "simreal.agents.ppo.agent:AGENT",
    "dreamer": "simreal.agents.world_models.agent:DREAMER",
    "planet": "simreal.agents.world_models.agent:PLANET",
    "dreaming": "simreal.agents.world_models.agent:DREAMING",
    "worldmodels": "simreal.agents.world_models.ha.agent:AGENT",
    "pets": "simreal.agents.pets.agent:AGENT",
    "i2a": "simreal.agents.i2a.agent:AGENT",
    "tdm": "simreal.agents.tdm.agent:AGENT",
    "mbpo": "simreal.agents.mbpo.agent:AGENT",
}


class UnknownAgentError(ValueError):
    """An agent name the registry does not know (one line, listing the known ones)."""


@runtime_checkable
class Agent(Protocol):
    """What every agent provides (see the module docstring)."""

    name: str
    summary: str
    config_path: pathlib.Path

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        """Defaults, then each preset, then each ``key.path=value`` override."""
        ...

    def train(self, cfg: Mapping[str, Any], run: Any, progress: bool = True) -> dict:
        """Train (or continue) ``cfg`` in the `RunDir` ``run``; returns a summary with ``env_steps``.

        A run already trained to ``run.steps`` returns at once. The export lands in ``run.export_path``.
        """
        ...

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu") -> Any:
        """The exported policy (`simreal.agents.Policy`), from `load_export`'s dict."""
        ...


def agent_names() -> list[str]:
    return sorted(REGISTRY)


def get_agent(name: str) -> Agent:
    """The registered agent called ``name``."""
    target = REGISTRY.get(str(name))
    if target is None:
        raise UnknownAgentError(f"unknown agent {name!r} (known: {', '.join(agent_names())})")
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
