"""One serialization of Gymnasium spaces as plain JSON data, for exports, checkpoints, rig info and logs.

The form is Minari's (``minari.serialization.serialize_space``): ``{"type": "Box", "dtype", "shape",
"low", "high"}``, ``{"type": "Discrete", "n", "start"}``, ``{"type": "MultiDiscrete", "nvec",
"start", "dtype"}``, ``{"type": "Dict", "subspaces": {...}}``, so a recorded dataset's spaces read
in Minari unchanged. `space_from_data` also reads simreal's earlier export form (``"spaces"`` for a
Dict's members), so exports and checkpoints written before this module still load.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import gymnasium as gym
import numpy as np


class SpaceFormatError(ValueError):
    """A space that has no plain-data form, or data that describes no space."""


def space_to_data(space: gym.Space) -> dict:
    """A Box, Discrete, MultiDiscrete or Dict space as plain data."""
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape),
                "low": np.asarray(space.low).tolist(), "high": np.asarray(space.high).tolist()}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "dtype": str(space.dtype), "nvec": np.asarray(space.nvec).tolist(),
                "start": np.asarray(space.start).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "subspaces": {k: space_to_data(s) for k, s in space.spaces.items()}}
    raise SpaceFormatError(f"cannot describe a {type(space).__name__} space (Box, Discrete, MultiDiscrete, Dict)")


def space_from_data(data: Mapping | str) -> gym.Space:
    """The space `space_to_data` (or Minari, or an earlier simreal export) described; a JSON string too."""
    try:
        data = json.loads(data) if isinstance(data, str) else data
    except json.JSONDecodeError as exc:
        raise SpaceFormatError(f"space description is not JSON ({exc})") from None
    kind = data.get("type") if isinstance(data, Mapping) else None
    try:
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            return gym.spaces.Box(np.asarray(data["low"], dtype), np.asarray(data["high"], dtype),
                                  tuple(data["shape"]), dtype)
        if kind == "Discrete":
            return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "MultiDiscrete":
            nvec = np.asarray(data["nvec"], np.int64)
            return gym.spaces.MultiDiscrete(nvec, dtype=data.get("dtype", "int64"),
                                            start=np.asarray(data.get("start", np.zeros_like(nvec)), np.int64))
        if kind == "Dict":
            members = data["subspaces"] if "subspaces" in data else data["spaces"]
            return gym.spaces.Dict({k: space_from_data(v) for k, v in members.items()})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SpaceFormatError):
            raise
        raise SpaceFormatError(f"invalid {kind} space description ({type(exc).__name__}: {exc})") from None
    raise SpaceFormatError(f"unknown space description {kind!r}")


def canonical(data: Mapping | str) -> dict[str, Any]:
    """Space data in today's form, for comparing a stored description with a live space's."""
    return space_to_data(space_from_data(data))
