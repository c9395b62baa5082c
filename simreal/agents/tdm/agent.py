"""TDM as a registered `simreal.training.agents.Agent` (``simreal train tdm``, through the registry's generic
verb). The training module is imported when a run starts, not when the registry lists agents."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simreal.agents.tdm import CONFIG_PATH


def _trainer():
    from simreal.agents.tdm import tdm

    return tdm


class TDMAgent:
    name = "tdm"
    summary = "TDM: a goal- and horizon-conditioned vector Q-function, acting by optimizing it (Pong et al. 2018)"
    config_path = CONFIG_PATH

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        """Defaults, presets, overrides; every value checked, and the env must have a goal spec, before a run
        folder is written."""
        from simreal.agents.tdm.goals import goal_spec
        from simreal.training.config import resolve_config

        cfg = resolve_config(CONFIG_PATH, presets, overrides)
        _trainer().parse_config(cfg)
        goal_spec(cfg["env"]["id"])
        return cfg

    def train(self, cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
        return _trainer().train(dict(cfg), run, progress=progress)

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        return _trainer().policy_from_export(data, device=device)


AGENT = TDMAgent()
