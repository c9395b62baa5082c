"""MBPO (Janner et al. 2019, "When to Trust Your Model: Model-Based Policy Optimization"): a
probabilistic dynamics ensemble (PETS') whose short rollouts, branched from real states, feed an
off-policy soft actor-critic (Haarnoja et al. 2018) alongside the real transitions.

    simreal train mbpo --preset pendulum --run-dir runs/mbpo-pendulum
    simreal train mbpo --env dm_control/cartpole-swingup-v0 --steps 20000 --run-dir runs/mbpo-cartpole

`simreal.agents.mbpo.sac` holds SAC (its losses as pure functions), `simreal.agents.mbpo.mbpo` the
branched rollouts, the policy and the training loop; `AGENT` (agent.py) registers it.
"""

from __future__ import annotations

import pathlib

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")
