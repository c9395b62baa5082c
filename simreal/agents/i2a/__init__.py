"""I2A (Racanière, Weber et al. 2017, "Imagination-Augmented Agents for Deep Reinforcement Learning"):
an actor that imagines a short rollout per candidate action with a learned environment model and a
distilled rollout policy, encodes each rollout backwards with an LSTM, and acts on those codes next
to its model-free path; trained with simreal's PPO.

    simreal train i2a --preset cartpole --run-dir runs/i2a-cartpole
    simreal train i2a --preset tiny --env CartPole-v1 --run-dir /tmp/i2a

`simreal.agents.i2a.imagination` holds the actor (the imagination core, the rollout encoder, the
aggregator) and the distillation loss, `simreal.agents.i2a.i2a` the trainer; `AGENT` (agent.py)
registers it.
"""

from __future__ import annotations

import pathlib

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")
