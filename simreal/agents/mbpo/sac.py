"""Soft actor-critic with automatic entropy tuning: MBPO's model-free learner.

Equation numbers are those of Haarnoja et al. 2018b ("Soft Actor-Critic Algorithms and
Applications", arXiv:1812.05905); the action-bound correction is Appendix C of Haarnoja et al. 2018a
("Soft Actor-Critic: Off-Policy Maximum Entropy Deep Reinforcement Learning with a Stochastic Actor").

- **Actor**: a diagonal Gaussian over pre-squash actions ``u ~ N(mu(s), sigma(s))`` squashed to
  ``a = tanh(u)`` in [-1, 1]; sampled by reparameterization ``u = mu + sigma * eps`` (Eq. 10), so the
  policy loss is differentiated through the sample. Its log-density is the Gaussian's minus the
  log-Jacobian of the squash (2018a, Eq. 21): ``log pi(a|s) = log N(u) - sum_i log(1 - tanh(u_i)^2)``.
- **Critics**: two Q networks (clipped double Q) and their Polyak-averaged targets
  ``Q' <- (1 - tau) Q' + tau Q``. Soft Bellman residual (Eq. 7, with the soft value of Eq. 3)::

      y = r + gamma * (min_j Q'_j(s', a') - alpha * log pi(a'|s')),   a' ~ pi(.|s')
      J_Q = sum_j E[1/2 (Q_j(s, a) - y)^2]

- **Policy** (Eq. 11): ``J_pi = E[alpha * log pi(a|s) - min_j Q_j(s, a)]``, ``a ~ pi(.|s)``.
- **Temperature** (Eq. 18): ``J(alpha) = E[-alpha * (log pi(a|s) + target_entropy)]`` with the
  target entropy ``-|A|`` (the paper's heuristic, minus the action dimension); optimized through
  ``log alpha`` so alpha stays positive.

There is no ``done`` mask in the target: MBPO learns no termination model here (see
`simreal.agents.mbpo.mbpo`), and the tasks it is configured for never terminate; time-limit ends
are bootstrapped through, as they should be. The losses are pure functions of tensors so that they
can be checked on known numbers; `SAC` wires them to the networks and optimizers.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from simreal.agents.pets.ensemble import ACTIVATIONS, EnsembleLinear

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the clamp of the reference implementations (softlearning, MBPO)
LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass
class SACConfig:
    hidden: int = 256
    layers: int = 2
    act: str = "relu"
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 5e-3
    batch: int = 256
    init_alpha: float = 1.0
    real_ratio: float = 0.05


# ------------------------------------------------------------------ pure functions
def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)|s) of pre-squash samples ``u`` (N, A) -> (N,): the Gaussian log-density minus
    ``sum_i log(1 - tanh(u_i)^2)`` (2018a, Eq. 21), the latter as ``2 (log 2 - u - softplus(-2u))``,
    which stays finite where tanh(u) rounds to +-1."""
    gaussian = -0.5 * ((u - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI
    log_jacobian = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return (gaussian - log_jacobian).sum(-1)


def soft_q_target(reward: torch.Tensor, next_q: torch.Tensor, next_log_prob: torch.Tensor, alpha: torch.Tensor | float,
                  gamma: float) -> torch.Tensor:
    """``y = r + gamma * (min_j Q'_j(s', a') - alpha * log pi(a'|s'))`` (Eq. 7 with Eq. 3); ``next_q`` is
    (critics, N), the rest (N,)."""
    return reward + gamma * (next_q.min(0).values - alpha * next_log_prob)


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_j E[1/2 (Q_j(s, a) - y)^2]`` (Eq. 7): ``q`` (critics, N), ``target`` (N,) held fixed."""
    return 0.5 * ((q - target.detach()) ** 2).mean(-1).sum()


def policy_loss(log_prob: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """``E[alpha * log pi(a|s) - min_j Q_j(s, a)]`` (Eq. 11), ``a`` the actor's reparameterized sample."""
    return (alpha * log_prob - q.min(0).values).mean()


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """``E[-alpha * (log pi(a|s) + target_entropy)]`` (Eq. 18), differentiated with respect to ``log_alpha``
    only: alpha rises while the policy's entropy ``-E[log pi]`` is below the target, and falls above it."""
    return -(torch.exp(log_alpha) * (log_prob.detach() + target_entropy)).mean()


def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source``, parameter by parameter."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)


# ------------------------------------------------------------------ networks
class EnsembleMLP(nn.Module):
    """``members`` independent MLPs applied to (members, N, in) as batched matmuls."""

    def __init__(self, members: int, n_in: int, hidden: int, layers: int, n_out: int, act: str):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"sac.act: expected one of {', '.join(ACTIVATIONS)}, got {act!r}")
        sizes = [n_in] + [hidden] * layers + [n_out]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``frozen``: through detached weights (gradients reach ``x`` but not the parameters)."""
        for i, layer in enumerate(self.layers):
            x = torch.baddbmm(layer.bias.detach(), x, layer.weight.detach()) if frozen else layer(x)
            x = self.act(x) if i < len(self.layers) - 1 else x
        return x


class TanhGaussianActor(nn.Module):
    """pi(a|s): tanh of a diagonal Gaussian whose mean and log-std (clamped) an MLP predicts."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, layers: int, act: str):
        super().__init__()
        self.net = EnsembleMLP(1, state_dim, hidden, layers, 2 * action_dim, act)

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, state) -> mean, log-std (N, action) of the pre-squash Gaussian."""
        mean, log_std = self.net(state[None])[0].chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, state: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized ``a = tanh(mu + sigma * noise)`` (N, action) and its log pi (N,)."""
        mean, log_std = self(state)
        u = mean + torch.exp(log_std) * noise
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)

    @torch.no_grad()
    def act(self, state: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Unit actions: ``tanh(mean)`` (deterministic, ``noise`` None) or a sample."""
        mean, log_std = self(state)
        return torch.tanh(mean if noise is None else mean + torch.exp(log_std) * noise)


class TwinQ(nn.Module):
    """Two Q(s, a) networks evaluated together: (N, state), (N, action) -> (2, N)."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, layers: int, act: str, critics: int = 2):
        super().__init__()
        self.critics = critics
        self.net = EnsembleMLP(critics, state_dim + action_dim, hidden, layers, 1, act)

    def forward(self, state: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        x = torch.cat([state, action], -1)
        return self.net(x[None].expand(self.critics, *x.shape), frozen).squeeze(-1)


def randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from ``generator`` (reproducible on any device)."""
    return torch.randn(shape, generator=generator).to(device)


class SAC:
    """The actor, the twin critics and their targets, the temperature, and one Adam over all three
    (a learning rate each)."""

    def __init__(self, state_dim: int, action_dim: int, cfg: SACConfig, device: torch.device | str = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.state_dim, self.action_dim = state_dim, action_dim
        self.actor = TanhGaussianActor(state_dim, action_dim, cfg.hidden, cfg.layers, cfg.act).to(self.device)
        self.critic = TwinQ(state_dim, action_dim, cfg.hidden, cfg.layers, cfg.act).to(self.device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=True)
        self.target_entropy = -float(action_dim)
        self.optim = torch.optim.Adam([{"params": self.actor.parameters(), "lr": cfg.actor_lr},
                                       {"params": self.critic.parameters(), "lr": cfg.critic_lr},
                                       {"params": [self.log_alpha], "lr": cfg.alpha_lr}])

    def update(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, float]:
        """One gradient step of the critics, the actor and the temperature on ``batch`` (``s``, ``a``,
        ``r``, ``s2``), then the targets' Polyak step; returns the losses and diagnostics.

        The three losses are summed and differentiated once: the policy loss reads the critics through
        detached weights and the temperature loss a detached log pi, so each parameter gets its own
        loss's gradient only (the actor's through the critics as they were before this step)."""
        s, a, r, s2 = batch["s"], batch["a"], batch["r"], batch["s2"]
        n, cfg = s.shape[0], self.cfg
        alpha = torch.exp(self.log_alpha.detach())
        with torch.no_grad():
            a2, log_prob2 = self.actor.sample(s2, randn((n, self.action_dim), generator, self.device))
            y = soft_q_target(r, self.target(s2, a2), log_prob2, alpha, cfg.gamma)
        q = self.critic(s, a)
        new_a, log_prob = self.actor.sample(s, randn((n, self.action_dim), generator, self.device))
        loss_q = critic_loss(q, y)
        loss_pi = policy_loss(log_prob, self.critic(s, new_a, frozen=True), alpha)
        loss_alpha = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        self.optim.zero_grad(set_to_none=True)
        (loss_q + loss_pi + loss_alpha).backward()
        self.optim.step()
        polyak(self.target, self.critic, cfg.tau)
        values = torch.stack([loss_q, loss_pi, loss_alpha, alpha, q.mean(), -log_prob.mean()]).detach().tolist()
        return dict(zip(("sac/critic_loss", "sac/policy_loss", "sac/alpha_loss", "sac/alpha", "sac/q", "sac/entropy"),
                        values))

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "target": self.target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "optim": self.optim.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.optim.load_state_dict(state["optim"])
