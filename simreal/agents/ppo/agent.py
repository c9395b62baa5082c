"""Recurrent PPO as a registered `simreal.training.agents.Agent` (``simreal train ppo``)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simreal.agents.ppo import CONFIG_PATH


class PPOAgent:
    name = "ppo"
    summary = "recurrent PPO with an asymmetric critic (Dactyl's learner)"
    config_path = CONFIG_PATH

    def resolve_config(self, presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
        from simreal.training.config import resolve_config

        return resolve_config(CONFIG_PATH, presets, overrides)

    def trainer(self, cfg: Mapping[str, Any], run, progress: bool = True):
        from simreal.agents.ppo.ppo import PPOTrainer

        return PPOTrainer(dict(cfg), run, progress=progress)

    def train(self, cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
        trainer = self.trainer(cfg, run, progress)
        try:
            done = trainer.update_index >= trainer.total_updates
            last = {} if done else trainer.train()
            return {"env_steps": int(trainer.env_steps), "updates": int(trainer.update_index),
                    "metrics": {k: float(v) for k, v in last.items()}}
        finally:
            trainer.close()

    def policy_from_export(self, data: Mapping[str, Any], device: str = "cpu"):
        from simreal.agents.ppo.policy import policy_from_export

        return policy_from_export(data, device=device)


AGENT = PPOAgent()
