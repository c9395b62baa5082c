"""MBPO as a registered `simreal.training.agents.Agent` (``simreal train mbpo``, through the registry's
generic verb); the trainer module is imported only when a config is resolved, trained or exported."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simreal.agents.mbpo import CONFIG_PATH


def _trainer():
    from simreal.agents.mbpo import mbpo

    return mbpo


class MBPOAgent:
    name = "mbpo"
    summary = ("MBPO: short branched rollouts of a probabilistic dynamics ensemble train soft actor-critic "
               "(Janner et al. 2019)")
    config_path = CONFIG_PATH

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        from simreal.training.config import resolve_config

        cfg = resolve_config(CONFIG_PATH, presets, overrides)
        _trainer().parse_config(cfg)  # every value checked before a run folder is written
        return cfg

    def train(self, cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
        return _trainer().train(dict(cfg), run, progress=progress)

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        return _trainer().policy_from_export(data, device=device)


AGENT = MBPOAgent()
