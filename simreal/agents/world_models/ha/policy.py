"""The acting part of World Models (V's encoder, M's LSTM, C) and its export for rigs.

At each step the frame is encoded to z (the posterior mean, or a sample when
not deterministic), the controller acts on ``[z, h]``, and the LSTM advances
on ``[z, a]``: the recurrent state passed between calls is the LSTM's
``(h, c)``. The MDN head and the VAE decoder are not needed to act, so they
are not exported.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.ha.controller import LinearController
from simreal.agents.world_models.ha.vae import VAEEncoder, check_image_shape
from simreal.utils.keys import IMAGE_KEY

AGENT_NAME = "worldmodels"
Tensor = torch.Tensor
LSTMState = tuple[Tensor, Tensor]


class WorldModelsActor(nn.Module):
    """Encoder + LSTM + linear controller; ``step`` maps uint8 frames and the LSTM state to actions in [-1, 1]."""

    def __init__(self, z_size: int, depth: int, hidden: int, action_dim: int):
        super().__init__()
        self.hidden = hidden
        self.encoder = VAEEncoder(z_size, depth)
        self.lstm = nn.LSTM(z_size + action_dim, hidden, batch_first=True)
        self.controller = LinearController(z_size, hidden, action_dim)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> LSTMState:
        zeros = torch.zeros(1, batch, self.hidden, device=device)
        return zeros, zeros.clone()

    @torch.no_grad()
    def step(self, image: Tensor, state: LSTMState,
             generator: torch.Generator | None = None) -> tuple[Tensor, LSTMState]:
        """``image`` uint8 (n, 64, 64, 3) -> actions (n, action_dim), next state; ``generator``: sample z."""
        mu, logvar = self.encoder(image)
        z = mu
        if generator is not None:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator).to(mu.device)
        action = self.controller(z, state[0][0])
        _, state = self.lstm(torch.cat([z, action], -1)[:, None], state)
        return action, state


def reset_lstm_state(state: LSTMState, done: Tensor) -> LSTMState:
    """Zero the rows (envs) whose episode ended."""
    keep = (~done.bool()).to(state[0].dtype)[None, :, None]
    return state[0] * keep, state[1] * keep


class ExportedPolicy:
    """A `simreal.agents.Policy` over numpy arrays: obs ``{"image": uint8 (n, 64, 64, 3)}`` -> env actions."""

    def __init__(self, actor: WorldModelsActor, observation_space: gym.spaces.Dict, action_space: gym.Space,
                 device: torch.device, seed: int = 0):
        self.actor, self.device = actor, device
        self.observation_space, self.action_space = observation_space, action_space
        self.spec = ActionSpec.from_space(action_space, "one_hot")
        self.generator = torch.Generator().manual_seed(seed)   # z samples when acting non-deterministically

    def initial_state(self, batch_size: int) -> LSTMState:
        return self.actor.initial_state(batch_size, self.device)

    def act(self, obs: dict[str, np.ndarray], state: LSTMState,
            deterministic: bool = True) -> tuple[np.ndarray, LSTMState]:
        image = torch.as_tensor(np.asarray(obs[IMAGE_KEY]), device=self.device)
        action, state = self.actor.step(image, state, None if deterministic else self.generator)
        return self.spec.to_env(action.cpu().numpy()), state

    def reset_state(self, state: LSTMState, done: np.ndarray) -> LSTMState:
        return reset_lstm_state(state, torch.as_tensor(np.asarray(done, bool), device=self.device))


def export_policy(path, actor: WorldModelsActor, config: Mapping[str, Any], image_space: gym.spaces.Box,
                  action_space: gym.Space, extra: Mapping[str, Any] | None = None):
    """Write ``actor`` with `simreal.training.export.save_export` under agent name ``worldmodels``.

    ``config``: ``z_size``, ``depth`` and ``hidden`` (what `policy_from_export` needs to rebuild it).
    """
    from simreal.training.export import save_export

    obs_space = gym.spaces.Dict({IMAGE_KEY: image_space})
    return save_export(path, AGENT_NAME, dict(config), obs_space, action_space, actor.state_dict(), extra)


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> ExportedPolicy:
    """Rebuild the exported World Models policy (network code only: no trainer, no env)."""
    cfg = data["config"]
    obs_space, action_space = data["observation_space"], data["action_space"]
    check_image_shape(obs_space.spaces[IMAGE_KEY].shape)
    spec = ActionSpec.from_space(action_space, "one_hot")
    actor = WorldModelsActor(int(cfg["z_size"]), int(cfg["depth"]), int(cfg["hidden"]), spec.dim)
    actor.load_state_dict(data["weights"])
    torch_device = torch.device(device)
    actor.to(torch_device).eval()
    return ExportedPolicy(actor, obs_space, action_space, torch_device)
