"""Exported policies: one file with the weights, the network config and the spaces.

An export is a ``torch.save`` dict that loads with ``weights_only=True``::

    {"format": "simreal-policy", "version": 1,
     "agent": "ppo",                       # which network builder reads it
     "config": {...},                      # the network's config (plain data)
     "observation_space": {...}, "action_space": {...},   # simreal.utils.spaces
     "weights": {name: tensor}, "extra": {...}}          # e.g. normalizer statistics

A rig loads it with `load_export` and the agent's own ``policy_from_export``
(network code only: no trainer, no env).

Neither side accepts NaN or inf weights: `save_export` refuses to write them and
`load_export` refuses to load them (`simreal.utils.finite.NonFiniteError`,
one line naming the file and the tensor).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import gymnasium as gym
import torch

from simreal.utils.finite import NonFiniteError, non_finite_tensor
from simreal.training.run import RunDirError, load_weights_only
from simreal.utils.spaces import space_from_data, space_to_data

FORMAT = "simreal-policy"
VERSION = 1


def save_export(path: str | os.PathLike, agent: str, config: Mapping, observation_space: gym.Space,
                action_space: gym.Space, weights: Mapping[str, torch.Tensor],
                extra: Mapping[str, Any] | None = None) -> pathlib.Path:
    path = pathlib.Path(path)
    bad = non_finite_tensor(weights)
    if bad is not None:
        raise NonFiniteError(f"export {path}: weight {bad[0]!r} holds {bad[1]}; refusing to write non-finite "
                             "weights (the file was left as it was)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT, "version": VERSION, "agent": agent, "config": dict(config),
        "observation_space": space_to_data(observation_space), "action_space": space_to_data(action_space),
        "weights": {k: v.detach().cpu().clone() for k, v in weights.items()}, "extra": dict(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_export(path: str | os.PathLike, agent: str | None = None) -> dict:
    """The export's dict with spaces rebuilt; checks the format (and the agent, when given) and that
    every weight is finite."""
    data = load_weights_only(path)
    if data.get("format") != FORMAT:
        raise RunDirError(f"{path}: not a simreal policy export (format {data.get('format')!r})")
    if data.get("version") != VERSION:
        raise RunDirError(f"{path}: export version {data.get('version')} not supported (expected {VERSION})")
    if agent is not None and data.get("agent") != agent:
        raise RunDirError(f"{path}: exported by agent {data.get('agent')!r}, expected {agent!r}")
    bad = non_finite_tensor(data.get("weights") or {})
    if bad is not None:
        raise NonFiniteError(f"{path}: weight {bad[0]!r} holds {bad[1]}; refusing a policy with non-finite "
                             "weights (its training diverged)")
    data["observation_space"] = space_from_data(data["observation_space"])
    data["action_space"] = space_from_data(data["action_space"])
    return data
