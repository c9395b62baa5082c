"""M, the memory model of World Models: an LSTM with a mixture-density head over the next z.

The LSTM reads ``[z_t, a_t]`` and its output ``h_{t+1}`` parameterizes
``P(z_{t+1} | a_t, z_t, h_t)`` as, for each dimension of z on its own, a mixture
of ``mixtures`` Gaussians (Ha & Schmidhuber 2018: 256 units and 5 mixtures for
CarRacing). Optional heads predict the reward of the step (a unit-variance
Gaussian, i.e. squared error) and whether the episode ended (a logistic, as the
paper's Doom model does), which is what lets the model stand in for the
environment when the controller is trained inside the dream.

Sampling takes a temperature tau (the paper's Doom experiments use 1.15): the
mixture logits are divided by tau and each Gaussian's standard deviation is
multiplied by sqrt(tau), so tau > 1 makes the dream noisier (harder to exploit)
and tau -> 0 makes it deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
LSTMState = tuple[Tensor, Tensor]
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class Prediction:
    """Mixture parameters (..., z_size, mixtures) per step, and the optional reward and done heads (...)."""

    logits: Tensor
    mean: Tensor
    log_std: Tensor
    reward: Tensor | None
    done_logit: Tensor | None


def mdn_nll(logits: Tensor, mean: Tensor, log_std: Tensor, target: Tensor) -> Tensor:
    """Negative log-likelihood of ``target`` (...) under mixtures with parameters (..., K); shape (...)."""
    x = target.unsqueeze(-1)
    log_normal = -0.5 * ((x - mean) * torch.exp(-log_std)).pow(2) - log_std - _LOG_SQRT_2PI
    return -torch.logsumexp(F.log_softmax(logits, -1) + log_normal, -1)


def sample_mixture(logits: Tensor, mean: Tensor, log_std: Tensor, temperature: float,
                   generator: torch.Generator | None = None) -> Tensor:
    """One draw per mixture (shape ``logits.shape[:-1]``), at temperature ``temperature``.

    Draws come from a CPU ``generator`` and are moved to the parameters' device,
    so a seed gives the same dream on any device.
    """
    if temperature <= 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")
    probs = F.softmax(logits.detach().cpu().double() / temperature, -1)
    flat = probs.reshape(-1, probs.shape[-1])
    index = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1]).to(mean.device)
    chosen_mean = mean.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    chosen_std = log_std.gather(-1, index.unsqueeze(-1)).squeeze(-1).exp()
    noise = torch.randn(chosen_mean.shape, generator=generator).to(mean.device)
    return chosen_mean + chosen_std * math.sqrt(temperature) * noise


class MDNRNN(nn.Module):
    """LSTM over ``[z, action]`` with a mixture-density head; optional reward and done heads."""

    def __init__(self, z_size: int, action_dim: int, hidden: int = 256, mixtures: int = 5,
                 predict_reward: bool = True, predict_done: bool = True):
        super().__init__()
        self.z_size, self.action_dim, self.hidden, self.mixtures = z_size, action_dim, hidden, mixtures
        self.predict_reward, self.predict_done = predict_reward, predict_done
        self.lstm = nn.LSTM(z_size + action_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 3 * z_size * mixtures + int(predict_reward) + int(predict_done))

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> LSTMState:
        zeros = torch.zeros(1, batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def forward(self, z: Tensor, action: Tensor, state: LSTMState | None = None) -> tuple[Prediction, Tensor,
                                                                                            LSTMState]:
        """``z`` (B, T, z_size), ``action`` (B, T, action_dim) -> predictions for step t+1, outputs h, state."""
        out, state = self.lstm(torch.cat([z, action], -1), state)
        return self.predict(out), out, state

    def predict(self, h: Tensor) -> Prediction:
        """Prediction heads on LSTM outputs ``h`` (..., hidden)."""
        params = self.head(h)
        size = self.z_size * self.mixtures
        shape = (*h.shape[:-1], self.z_size, self.mixtures)
        logits, mean, log_std = (params[..., i * size:(i + 1) * size].reshape(shape) for i in range(3))
        rest = params[..., 3 * size:]
        reward = rest[..., 0] if self.predict_reward else None
        done_logit = rest[..., -1] if self.predict_done else None
        return Prediction(logits, mean, log_std, reward, done_logit)


def mdn_rnn_loss(pred: Prediction, z_next: Tensor, reward: Tensor, done: Tensor, mask: Tensor,
                 reward_scale: float = 1.0, done_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Masked mean losses over (batch, time): mixture NLL (averaged over z's dimensions), reward squared
    error and done cross-entropy, with their scales. ``mask`` (B, T) is 1 on real steps, 0 on padding."""
    weight = mask / mask.sum().clamp(min=1.0)
    z_loss = (mdn_nll(pred.logits, pred.mean, pred.log_std, z_next).mean(-1) * weight).sum()
    loss = z_loss
    metrics = {"z_nll": z_loss.detach()}
    if pred.reward is not None:
        reward_loss = ((pred.reward - reward).pow(2) * weight).sum()
        loss = loss + reward_scale * reward_loss
        metrics["reward_loss"] = reward_loss.detach()
    if pred.done_logit is not None:
        done_loss = (F.binary_cross_entropy_with_logits(pred.done_logit, done, reduction="none") * weight).sum()
        loss = loss + done_scale * done_loss
        metrics["done_loss"] = done_loss.detach()
    return loss, metrics
