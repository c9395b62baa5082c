"""PETS (Chua et al. 2018, "Deep Reinforcement Learning in a Handful of Trials using Probabilistic
Dynamics Models"): a bootstrapped ensemble of probabilistic networks for the dynamics (and the
reward), and model-predictive control by the cross-entropy method over trajectory samples.

    simreal train pets --preset pendulum --run-dir runs/pets-pendulum
    simreal train pets --env dm_control/cartpole-swingup-v0 --steps 20000 --run-dir runs/pets-cartpole

`simreal.agents.pets.ensemble` holds the model and its loss, `simreal.agents.pets.pets` the
planner, the policy and the training loop; `AGENT` (agent.py) registers it.
"""

from __future__ import annotations

import pathlib

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")
