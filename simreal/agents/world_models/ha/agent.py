"""Ha and Schmidhuber's World Models as a registered `simreal.training.agents.Agent` (``simreal train worldmodels``)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simreal.agents.world_models.ha import CONFIG_PATH


class WorldModelsAgent:
    name = "worldmodels"
    summary = "Ha & Schmidhuber's World Models: VAE, MDN-RNN, CMA-ES controller (staged)"
    config_path = CONFIG_PATH

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        from simreal.training.config import resolve_config

        return resolve_config(CONFIG_PATH, presets, overrides)

    def train(self, cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
        from simreal.agents.world_models.ha.trainer import train

        summary = train(dict(cfg), run, progress=progress)
        return {**summary, "env_steps": int(summary["frames"])}

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        from simreal.agents.world_models.ha.policy import policy_from_export

        return policy_from_export(data, device=device)


AGENT = WorldModelsAgent()
