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

from simreal.utils.lazy import lazy_exports

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")


def resolve_ppo_config(presets: Iterable[str] = (), overrides: Iterable[str] = ()) -> dict:
    """The PPO defaults with ``presets`` and dotted ``overrides`` applied (see configs.yaml)."""
    from simreal.training.config import resolve_config

    return resolve_config(CONFIG_PATH, presets, overrides)


_LAZY = {"PPOTrainer": "ppo", "TrainConfig": "ppo",  # the trainer pulls in the env stack
         "PolicyConfig": "policy", "PPOPolicy": "policy", "policy_from_export": "policy"}  # torch


# imported on first use, so `simreal --help` (which imports this package's cli) never loads torch
__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["CONFIG_PATH", "PPOPolicy", "PPOTrainer", "PolicyConfig", "TrainConfig", "policy_from_export",
           "resolve_ppo_config"]
