"""Agents that learn on (randomized) environments, and the one interface rigs use to run them.

Every agent is registered in `simreal.training.agents.REGISTRY` (the
`simreal.training.agents.Agent` protocol), exports its policy with
`simreal.training.export.save_export` (``agent`` = its registry name) and
rebuilds it with its ``policy_from_export(data)``, returning an object that
satisfies `Policy`. `load_policy` reads any export and builds the right one,
with network code only (no trainer, no env).
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """A deployable policy; recurrent state is passed explicitly (``act(obs, state) -> action, state``).

    ``obs`` is a dict of batched numpy arrays (leading dim = number of envs) with
    the keys of ``observation_space``; ``action`` is a batched numpy array in the
    env's ``action_space``. ``reset_state(state, done)`` zeroes the state of the
    copies whose episode ended (a boolean array).
    """

    observation_space: Any
    action_space: Any

    def initial_state(self, batch_size: int) -> Any: ...

    def act(self, obs: dict[str, np.ndarray], state: Any, deterministic: bool = True) -> tuple[np.ndarray, Any]: ...

    def reset_state(self, state: Any, done: np.ndarray) -> Any: ...


def load_policy(path: str | os.PathLike, device: str = "cpu") -> Policy:
    """Any agent's exported policy file, ready to ``act``."""
    from simreal.training.agents import UnknownAgentError, get_agent
    from simreal.training.export import load_export
    from simreal.training.run import RunDirError

    data = load_export(path)
    try:
        agent = get_agent(data.get("agent"))
    except UnknownAgentError as exc:
        raise RunDirError(f"{path}: exported by an {exc}") from None
    return agent.policy_from_export(data, device=device)
