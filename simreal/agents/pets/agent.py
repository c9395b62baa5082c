"""PETS as a registered `simreal.training.agents.Agent` (``simreal train pets``, through the registry's
generic verb)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simreal.agents.pets import CONFIG_PATH


class PETSAgent:
    name = "pets"
    summary = "PETS: a probabilistic dynamics ensemble and CEM model-predictive control (Chua et al. 2018)"
    config_path = CONFIG_PATH

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        from simreal.agents.pets.pets import parse_config
        from simreal.training.config import resolve_config

        cfg = resolve_config(CONFIG_PATH, presets, overrides)
        parse_config(cfg)  # every value checked before a run folder is written
        return cfg

    def train(self, cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
        from simreal.agents.pets.pets import train

        return train(dict(cfg), run, progress=progress)

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        from simreal.agents.pets.pets import policy_from_export

        return policy_from_export(data, device=device)


AGENT = PETSAgent()
