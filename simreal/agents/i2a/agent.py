"""I2A as a registered `simreal.training.agents.Agent` (``simreal train i2a``, through the registry's generic
verb). Its config is PPO's (`simreal/agents/ppo/configs.yaml`: defaults of every PPO section) with the
``i2a`` section and the presets of `simreal/agents/i2a/configs.yaml` over it."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simreal.agents.i2a import CONFIG_PATH
from simreal.agents.ppo.agent import PPOAgent


def defaults_and_presets() -> tuple[dict, dict]:
    """PPO's defaults with I2A's file merged over them (its ``i2a`` section added), and I2A's presets."""
    from simreal.agents.ppo import CONFIG_PATH as PPO_CONFIG
    from simreal.training.config import load_config_file, merge

    ppo, _ = load_config_file(PPO_CONFIG)
    mine, presets = load_config_file(CONFIG_PATH)
    base = {**ppo, "i2a": mine.get("i2a", {})}
    return merge(base, {k: v for k, v in mine.items() if k != "i2a"}, str(CONFIG_PATH)), presets


class I2AAgent(PPOAgent):
    """PPO's agent with I2A's trainer, config and export."""

    name = "i2a"
    summary = "I2A: imagination-augmented PPO (a learned env model, a distilled rollout policy, Racaniere et al. 2017)"
    config_path = CONFIG_PATH

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        from simreal.agents.i2a.i2a import I2ATrainConfig
        from simreal.training.config import apply_overrides, apply_presets

        defaults, known = defaults_and_presets()
        cfg = apply_overrides(apply_presets(defaults, known, presets, str(CONFIG_PATH)), overrides)
        I2ATrainConfig.from_dict(cfg)  # every value checked before a run folder is written
        return cfg

    def trainer(self, cfg: Mapping[str, Any], run, progress: bool = True):
        from simreal.agents.i2a.i2a import I2ATrainer

        return I2ATrainer(dict(cfg), run, progress=progress)

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        from simreal.agents.i2a.i2a import policy_from_export

        return policy_from_export(data, device=device)


AGENT = I2AAgent()
