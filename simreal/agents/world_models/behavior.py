"""Dreamer's behavior: an actor and a critic trained on imagined trajectories.

Imagination starts from every posterior state of a replay batch (B*T starts)
and runs ``horizon`` steps under the actor. With rewards ``r_t`` and
continuation probabilities ``c_t`` predicted for imagined state ``t``
(t = 1..H) and critic values ``v_t``, the lambda-returns are (`lambda_return`)::

    R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1}),   R_H = v_H

for t = 0..H-1. Each term is weighted by the probability of still being in
the episode, ``w_t = c_0 prod_{k=1..t} gamma c_k`` (``c_0`` from the data).

Actor loss per state (``rho`` = reinforce_mix: 0 for continuous actions,
gradients through the dynamics; 1 for discrete, REINFORCE)::

    -(1 - rho) R_t / S  -  rho log pi(a_t) sg((R_t - v_t) / S)  -  eta H[pi]

with ``S`` = 1 (V1, V2) or DreamerV3's return scale ``max(1, P95 - P5)``
(EMA of percentiles over imagined returns). The critic regresses ``R_t``
(Gaussian for V1/V2, two-hot for V3) and optionally the output of a slow
(EMA / periodically copied) critic; V2 computes the returns with the slow
critic instead.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.config import BehaviorConfig
from simreal.agents.world_models.distributions import BoundedNormal, OneHotCategorical, TanhNormal, TruncNormal
from simreal.agents.world_models.nets import Head, ScalarHead
from simreal.agents.world_models.rssm import State

Tensor = torch.Tensor


def lambda_return(reward: Tensor, next_value: Tensor, continuation: Tensor, lam: float) -> Tensor:
    """TD(lambda) returns along the last axis.

    ``reward[..., t]`` is received on the transition t -> t+1, ``next_value[..., t]``
    is the value of state t+1, ``continuation[..., t]`` is ``gamma`` times the
    probability that the episode continues into state t+1. The recursion runs
    backwards from ``R_{T} = next_value[..., T-1]``::

        R_t = reward_t + continuation_t ((1 - lam) next_value_t + lam R_{t+1})

    lam = 0 gives one-step TD targets, lam = 1 the discounted sum of rewards
    bootstrapped with the last value.
    """
    returns = []
    last = next_value[..., -1]
    for t in reversed(range(reward.shape[-1])):
        last = reward[..., t] + continuation[..., t] * ((1.0 - lam) * next_value[..., t] + lam * last)
        returns.append(last)
    return torch.stack(returns[::-1], -1)


class ReturnNormalizer(nn.Module):
    """EMA of the low and high percentiles of returns; ``scale`` = max(1 / max, high - low)."""

    def __init__(self, decay: float, max_scale: float, low: float, high: float):
        super().__init__()
        self.decay, self.max_scale = decay, max_scale
        self.quantiles = (low / 100.0, high / 100.0)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        flat = returns.detach().reshape(-1).float()
        q = torch.quantile(flat, torch.tensor(self.quantiles, device=flat.device))
        self.low.mul_(self.decay).add_((1 - self.decay) * q[0])
        self.high.mul_(self.decay).add_((1 - self.decay) * q[1])

    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=1.0 / self.max_scale)


class Actor(nn.Module):
    """Features -> action distribution; ``forward`` gives the raw head output, ``dist`` reads it."""

    def __init__(self, feat_dim: int, spec: ActionSpec, cfg, units: int, layers: int, act: str, norm: bool):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        dist = "onehot" if spec.discrete else cfg.dist
        if spec.discrete != (dist == "onehot"):
            raise ValueError(f"behavior.actor.dist: {cfg.dist!r} does not fit a continuous action space")
        self.kind = dist
        self.net = Head(feat_dim, spec.dim if spec.discrete else 2 * spec.dim, units, layers, act, norm)
        self._raw_init_std = float(torch.log(torch.expm1(torch.tensor(cfg.init_std))))

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat)

    def dist(self, raw: Tensor):
        cfg = self.cfg
        if self.kind == "onehot":
            logits = raw.reshape(*raw.shape[:-1], self.spec.groups, self.spec.classes)
            return OneHotCategorical(logits, cfg.unimix)
        mean, std = raw.chunk(2, -1)
        if self.kind == "tanh_normal":
            mean = 5.0 * torch.tanh(mean / 5.0)
            std = nn.functional.softplus(std + self._raw_init_std) + 1e-4
            return TanhNormal(mean, std)
        if self.kind == "trunc_normal":
            std = 2.0 * torch.sigmoid(std / 2.0) + cfg.min_std
            return TruncNormal(torch.tanh(mean), std)
        std = (cfg.max_std - cfg.min_std) * torch.sigmoid(std + 2.0) + cfg.min_std
        return BoundedNormal(torch.tanh(mean), std)

    def sample(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """(flattened reparameterized action, raw output): the ``policy`` of `WorldModel.imagine`."""
        raw = self(feat)
        action = self.dist(raw).rsample()
        return action.reshape(*feat.shape[:-1], self.spec.dim), raw


class ActorCritic(nn.Module):
    def __init__(self, feat_dim: int, spec: ActionSpec, cfg: BehaviorConfig, act: str, norm: bool):
        super().__init__()
        self.cfg, self.spec = cfg, spec
        self.actor = Actor(feat_dim, spec, cfg.actor, cfg.units, cfg.layers, act, norm)
        c = cfg.critic
        self.critic = ScalarHead(feat_dim, c.head, c.bins, cfg.units, cfg.layers, act, norm, c.zero_init)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        rn = cfg.return_norm
        self.return_norm = ReturnNormalizer(rn.decay, rn.max, rn.low, rn.high)
        mix = cfg.actor.reinforce_mix
        self.reinforce_mix = float(mix) if mix is not None else (1.0 if spec.discrete else 0.0)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------ imagination and targets
    def imagine(self, world_model, start: State, horizon: int) -> dict[str, Tensor]:
        return world_model.imagine(self.actor.sample, start, horizon)

    def targets(self, world_model, traj: dict[str, Tensor], start_cont: Tensor) -> dict[str, Tensor]:
        """Rewards, continuation, values, lambda-returns and weights of an imagined trajectory.

        Gradients flow through the features (for dynamics backpropagation);
        freeze the world model's and critics' parameters around this call.
        """
        feat = traj["feat"]
        gamma = self.cfg.gamma
        reward = world_model.reward(feat[:, 1:]).mean
        cont = world_model.continuation(feat[:, 1:])
        critic = self.slow_critic if self.cfg.critic.slow_target else self.critic
        value = critic(feat).mean
        ret = lambda_return(reward, value[:, 1:], gamma * cont, self.cfg.lam)
        discount = torch.cat([start_cont[:, None], gamma * cont], 1)
        weight = torch.cumprod(discount, 1)
        return {"reward": reward, "cont": cont, "value": value, "return": ret, "weight": weight.detach()}

    # ------------------------------------------------------------ losses
    def actor_loss(self, traj: dict[str, Tensor], targets: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        ret, value, weight = targets["return"], targets["value"][:, :-1], targets["weight"][:, :-1]
        if self.cfg.return_norm.enabled:
            self.return_norm.update(ret)
            scale = self.return_norm.scale()
        else:
            scale = torch.ones((), device=ret.device)
        dist = self.actor.dist(traj["extra"][:, :-1])
        action = traj["action"][:, :-1].detach()
        if self.spec.discrete:
            action = action.reshape(*action.shape[:2], self.spec.groups, self.spec.classes)
        rho = self.reinforce_mix
        loss = torch.zeros_like(ret)
        if rho < 1.0:
            loss = loss - (1.0 - rho) * ret / scale
        if rho > 0.0:
            advantage = ((ret - value) / scale).detach()
            loss = loss - rho * dist.log_prob(action) * advantage
        entropy = dist.entropy()
        if self.cfg.actor.entropy:
            loss = loss - self.cfg.actor.entropy * entropy
        loss = (loss * weight).mean()
        metrics = {"train/actor_loss": loss, "train/actor_entropy": entropy.mean(),
                   "train/imag_return": ret.mean(), "train/imag_reward": targets["reward"].mean(),
                   "train/return_scale": scale}
        return loss, metrics

    def critic_loss(self, traj: dict[str, Tensor], targets: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        feat = traj["feat"][:, :-1].detach()
        target = targets["return"].detach()
        weight = targets["weight"][:, :-1]
        dist = self.critic(feat)
        loss = -dist.log_prob(target)
        reg = self.cfg.critic.slow_regularizer
        if reg:
            with torch.no_grad():
                slow = self.slow_critic(feat).mean
            loss = loss - reg * dist.log_prob(slow)
        loss = (loss * weight).mean()
        return loss, {"train/critic_loss": loss, "train/value": dist.mean.mean()}

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """Every ``slow_every`` updates: slow <- (1 - fraction) slow + fraction critic."""
        self.updates += 1
        c = self.cfg.critic
        if int(self.updates) % c.slow_every == 0:
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, c.slow_fraction)


def freeze(*modules: nn.Module) -> Callable[[], None]:
    """Set ``requires_grad=False`` on the modules' parameters; returns a function that restores them."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)

    def restore() -> None:
        for p, flag in saved:
            p.requires_grad_(flag)

    return restore
