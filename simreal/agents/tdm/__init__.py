"""TDM (Pong, Gu, Dalal, Levine 2018, "Temporal Difference Models: Model-Free Deep RL for Model-Based
Control"): a goal- and horizon-conditioned, vector-valued Q(s, a, s_g, tau) learned off-policy (DDPG-style,
with relabelled goals and horizons), acting by optimizing Q toward the task's goal.

    simreal train tdm --preset reacher --run-dir runs/tdm-reacher
    simreal train tdm --preset hand_cube --run-dir runs/tdm-hand

`simreal.agents.tdm.goals` says where each env's goals sit in its observations (a spec per env id),
`simreal.agents.tdm.tdm` holds the networks, losses, relabelling, replay, policy and training loop;
`AGENT` (agent.py) registers it.
"""

from __future__ import annotations

import pathlib

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")
