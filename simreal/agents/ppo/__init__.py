"""Recurrent PPO with an asymmetric critic (Dactyl's learner): LSTM actor on measured keys, critic on `state`.

    simreal train ppo --preset cartpole --run-dir runs/cartpole      # the command (simreal.agents.ppo.cli)

    from simreal.agents.ppo import PPOTrainer, resolve_ppo_config
    trainer = PPOTrainer(resolve_ppo_config(["cartpole"], ["run.steps=100000"]))
    trainer.train()

`policy_from_export` rebuilds the exported actor as a `simreal.agents.Policy`
(network code only; used by `simreal.agents.load_policy`).
"""

from __future__ import annotations

import pathlib
from typing import Iterable

from simreal.agents.ppo.policy import PolicyConfig, PPOPolicy, policy_from_export

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")


def resolve_ppo_config(presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
    """The PPO defaults with ``presets`` and dotted ``overrides`` applied (see configs.yaml)."""
    from simreal.training.config import resolve_config

    return resolve_config(CONFIG_PATH, presets, overrides)


def __getattr__(name: str):
    # the trainer pulls in the env stack; import it only when asked for
    if name in ("PPOTrainer", "TrainConfig"):
        from simreal.agents.ppo import ppo

        return getattr(ppo, name)
    raise AttributeError(name)


__all__ = ["CONFIG_PATH", "PPOPolicy", "PPOTrainer", "PolicyConfig", "TrainConfig", "policy_from_export",
           "resolve_ppo_config"]
