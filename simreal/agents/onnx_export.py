"""Exported policies (``ppo``, ``i2a``, ``mbpo``) as ONNX graphs, for robot computers without PyTorch.

The graph is the deployed policy, whole. For the PPO family: the actor's observation normalizer, its core
(one LSTM step with the recurrent state as explicit inputs and outputs; I2A's imagination included), the
action head's mode (deterministic actions); for MBPO the SAC actor's ``tanh(mean)``. Then the mapping to
the env's action units (Box bounds, Discrete start)::

    inputs   obs  (batch, obs_size) float32: the actor keys' values concatenated in ``keys`` order
             h, c (batch, lstm) float32: the LSTM state (zeros at an episode's start; recurrent actors only)
    outputs  action (batch, *shape) float32 for a Box, int64 for (Multi)Discrete; h_next, c_next

Next to ``FILE.onnx`` a ``FILE.onnx.json`` (also in the model's metadata, key ``simreal``) says what
the robot side needs: the observation keys with their sizes and order, the state size, the action
space, the source export's sha256. `parity` runs the graph under onnxruntime and the PyTorch policy
on the same observations and returns the largest absolute difference of actions and states.
"""

from __future__ import annotations

import json
import logging
import pathlib
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

SUPPORTED = ("ppo", "i2a", "mbpo")


class OnnxExportError(ValueError):
    """An export that cannot become an ONNX graph (one line)."""


class ToEnv(nn.Module):
    """`simreal.agents.actions.ActionSpec.to_env` in torch (index encoding)."""

    def __init__(self, spec):
        super().__init__()
        self.discrete, self.scalar = spec.discrete, spec.scalar
        self.shape, self.start = tuple(spec.shape), int(spec.start)
        if not spec.discrete:
            self.register_buffer("low", torch.tensor(spec.low, dtype=torch.float32))
            self.register_buffer("high", torch.tensor(spec.high, dtype=torch.float32))

    def forward(self, action: torch.Tensor) -> torch.Tensor:
        if not self.discrete:
            unit = action.clamp(-1.0, 1.0)
            return (self.low + (unit + 1.0) * 0.5 * (self.high - self.low)).reshape(-1, *self.shape)
        if self.scalar:
            return action[:, 0] + self.start
        return action.reshape(-1, *self.shape)


class DeployedTanhActor(nn.Module):
    """An MBPO export's SAC actor: ``tanh(mean(obs))`` in env units (no state)."""

    recurrent = False

    def __init__(self, policy):
        super().__init__()
        self.actor, self.to_env = policy.actor, ToEnv(policy.actions)

    def forward(self, obs: torch.Tensor):
        mean, _ = self.actor(obs)
        return self.to_env(torch.tanh(mean))


class DeployedActor(nn.Module):
    """The actor of a `simreal.agents.ppo.policy.PPOPolicy` as one traceable step (see the module docstring)."""

    def __init__(self, policy):
        super().__init__()
        self.actor, self.to_env = policy.actor, ToEnv(policy.action_spec)
        self.recurrent = bool(self.actor.core.recurrent)

    def forward(self, obs: torch.Tensor, h: torch.Tensor | None = None, c: torch.Tensor | None = None):
        x = self.actor.normalizer(obs)
        state = (h[None], c[None]) if self.recurrent else ()
        params, state = self.actor.step(x, state)
        action = self.to_env(self.actor.head.mode(params))
        if not self.recurrent:
            return action
        return action, state[0][0], state[1][0]


def deployable(policy, agent: str) -> tuple[nn.Module, list[str], int]:
    """The traceable module of an agent's policy, the observation keys it reads in order, its state size."""
    if agent == "mbpo":
        return DeployedTanhActor(policy).eval(), list(policy.keys), 0
    core = policy.actor.core
    return DeployedActor(policy).eval(), list(policy.actor_keys), int(core.hidden) if core.recurrent else 0


def describe(policy, data: dict, source: pathlib.Path, names: list[str], state: int) -> dict[str, Any]:
    """The robot side's contract of the graph (the ``.onnx.json`` next to it): observation keys ``names`` in
    order, ``state`` LSTM units (0: none)."""
    from simreal.utils.provenance import file_sha256
    from simreal.utils.spaces import space_to_data

    space = policy.observation_space
    keys = [{"key": k, "size": int(np.prod(space[k].shape)), "shape": list(space[k].shape)} for k in names]
    return {"format": "simreal-onnx-policy/1", "agent": data["agent"], "source": str(source),
            "source_sha256": file_sha256(source), "obs_keys": keys, "obs_size": int(sum(k["size"] for k in keys)),
            "state_size": state,
            "inputs": ["obs", "h", "c"] if state else ["obs"],
            "outputs": ["action", "h_next", "c_next"] if state else ["action"],
            "action_space": space_to_data(policy.action_space), "deterministic": True,
            "env": _env_of(data)}


def _env_of(data: dict) -> dict[str, Any]:
    """The env an export was trained on: its ``extra`` (PPO) or its config's ``env`` section (the others)."""
    extra = data.get("extra") or {}
    if extra.get("env_id"):
        return {k: extra.get(k) for k in ("env_id", "env_kwargs", "action_repeat")}
    env = (data.get("config") or {}).get("env") or {}
    return {"env_id": env.get("id"), "env_kwargs": env.get("kwargs"), "action_repeat": env.get("action_repeat")}


def export_onnx(export: str | pathlib.Path, out: str | pathlib.Path | None = None) -> tuple[pathlib.Path, dict]:
    """Write ``export`` (a policy.pt, or the run folder holding it) as ONNX; returns (path, description)."""
    import onnx

    from simreal.agents import load_policy
    from simreal.training.export import load_export

    source = pathlib.Path(export).expanduser()
    if source.is_dir():
        source = source / "policy.pt"
    if not source.is_file():
        raise OnnxExportError(f"{source}: no such export (a policy.pt or the run folder holding one)")
    data = load_export(source)
    if data.get("agent") not in SUPPORTED:
        raise OnnxExportError(f"{source}: a {data.get('agent')!r} policy; ONNX export covers {', '.join(SUPPORTED)} "
                              "(the feed-forward and recurrent actors) so far")
    policy = load_policy(source)
    module, names, state = deployable(policy, data["agent"])
    meta = describe(policy, data, source, names, state)
    out = pathlib.Path(out) if out is not None else source.with_suffix(".onnx")
    batch = torch.export.Dim("batch", min=1, max=4096)
    obs = torch.zeros(2, meta["obs_size"])
    args: tuple = (obs,)
    shapes: tuple = ({0: batch},)
    if meta["state_size"]:
        state = torch.zeros(2, meta["state_size"])
        args, shapes = (obs, state, state.clone()), ({0: batch}, {0: batch}, {0: batch})
    out.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter's notes on optional torchvision ops
    try:
        with torch.no_grad(), warnings.catch_warnings():  # and its deprecation and tracing chatter
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(out), dynamo=True, input_names=meta["inputs"],
                              output_names=meta["outputs"], dynamic_shapes=shapes, optimize=True, verbose=False)
    finally:
        quiet.setLevel(level)
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = "simreal", json.dumps(meta)
    onnx.save(model, str(out))
    out.with_name(out.name + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out, meta


def parity(onnx_path: str | pathlib.Path, policy, observations: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Run the graph (onnxruntime) and ``policy`` (PyTorch) through the same observation sequence (batched
    dicts, one per step, each carrying its own state forward); the largest absolute differences."""
    import onnxruntime as ort

    from simreal.agents.ppo.policy import flatten_obs

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = json.loads(pathlib.Path(str(onnx_path) + ".json").read_text())
    recurrent, keys = bool(meta["state_size"]), [k["key"] for k in meta["obs_keys"]]
    n = len(next(iter(observations[0].values())))
    state_t = policy.initial_state(n)
    h = c = np.zeros((n, meta["state_size"]), np.float32)
    worst_action = worst_state = 0.0
    for obs in observations:
        action_t, state_t = policy.act(obs, state_t)
        feed = {"obs": flatten_obs(obs, keys)}
        if recurrent:
            feed.update(h=h, c=c)
        out = session.run(None, feed)
        worst_action = max(worst_action, float(np.abs(out[0].astype(np.float64) - action_t).max()))
        if recurrent:
            h, c = out[1], out[2]
            worst_state = max(worst_state, float(np.abs(h - state_t[0][0].cpu().numpy()).max()),
                              float(np.abs(c - state_t[1][0].cpu().numpy()).max()))
    return {"steps": len(observations), "batch": n, "max_abs_action_diff": worst_action,
            "max_abs_state_diff": worst_state}


def record_observations(policy, meta: dict, steps: int, seed: int = 0, n_envs: int = 1) -> list[dict]:
    """``steps`` batched observations of the policy's own env (the export's env id and settings), acting with
    the PyTorch policy (an episode end starts the next; its state is zeroed as in deployment)."""
    from simreal.training.envs import make_training_env

    env = meta["env"]
    if not env.get("env_id"):
        raise OnnxExportError("the export names no env (extra.env_id); pass the observations to parity() yourself")
    venv = make_training_env(env["env_id"], n_envs, seed=seed, action_repeat=int(env.get("action_repeat") or 1),
                             env_kwargs=dict(env.get("env_kwargs") or {}) or None)
    try:
        obs, state, seen = venv.reset(), policy.initial_state(n_envs), []
        for _ in range(steps):
            seen.append({k: np.asarray(v).copy() for k, v in obs.items()})
            action, state = policy.act(obs, state)
            obs, _, done, _ = venv.step(action)
            state = policy.reset_state(state, done)
        return seen
    finally:
        venv.close()
