"""I2A's imagination-augmented actor (Racanière, Weber et al. 2017, "Imagination-Augmented Agents for
Deep Reinforcement Learning", Sec. 3 and Fig. 1), on the networks of simreal's PPO.

For an observation o_t the actor imagines one rollout per candidate first action (the paper: one per
action of the discrete action space), each ``depth`` steps long:

    o^_{t+1}, r^_{t+1} = M(o_t, a_k),      o^_{t+i+1}, r^_{t+i+1} = M(o^_{t+i}, mode pi^(o^_{t+i}))

with M the environment model and pi^ the small rollout policy, distilled from the actor (Sec. 3.1).
Each rollout's imagined steps f_i = [normalize(o^_{t+i}), standardize(r^_{t+i})] are encoded by an
LSTM run *backwards*, from the last imagined step to the first (the rollout encoder, Fig. 1b), and
its final output is the rollout's code e_k. The aggregator concatenates the codes in the fixed order
of the candidates, c_I = [e_1, ..., e_K] (Sec. 3.1), and the policy reads [o_t, c_I]: the
model-free path (PPO's dense layer and LSTM on the observation) and the imagination path feed one
core, whose action head and PPO's critic are trained by PPO's loss.

Gradients: PPO's loss trains the rollout encoder and the core; the imagined trajectories are
computed without gradient (the model and the rollout policy have losses of their own: the model's
in `simreal.agents.i2a.i2a`, the distillation loss `distillation_loss` below), as in the paper,
where the environment model is pretrained and the rollout policy learns only by distillation.

Candidate first actions: every action for a ``Discrete`` space; for a ``Box`` space ``candidates``
fixed unit actions (the zero action and seeded uniform draws in [-1, 1]^A), and for
``MultiDiscrete`` seeded random index vectors; they are a buffer of the actor, so exports carry them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.pets.ensemble import GaussianEnsemble
from simreal.agents.ppo.policy import ACTIVATIONS, Actor, PolicyConfig, make_head


def model_actions(head: nn.Module, actions: torch.Tensor) -> torch.Tensor:
    """Actions as the environment model reads them: unit values clipped to [-1, 1] (what the env is sent)
    for a Gaussian head, one one-hot block per dimension for a categorical one."""
    if head.kind == "gaussian":
        return actions.clamp(-1.0, 1.0)
    return F.one_hot(actions, head.bins).flatten(-2).float()


def model_action_size(head: nn.Module) -> int:
    return head.action_size if head.kind == "gaussian" else head.dims * head.bins


def candidate_actions(spec: ActionSpec, count: int, seed: int) -> torch.Tensor:
    """(K, action) first actions of the imagined rollouts, in the actor head's action format."""
    if spec.discrete and len(spec.nvec) == 1:
        return torch.arange(int(spec.nvec[0]))[:, None]
    generator = torch.Generator().manual_seed(int(seed))
    if spec.discrete:
        return torch.stack([torch.randint(int(k), (count,), generator=generator) for k in spec.nvec], 1)
    draws = torch.rand(count, spec.dim, generator=generator) * 2.0 - 1.0
    draws[0] = 0.0
    return draws


class RolloutPolicy(nn.Module):
    """pi^: a small MLP on normalized observations with an action head of the actor's kind."""

    def __init__(self, obs_size: int, spec: ActionSpec, hidden: int, activation: str, init_log_std: float):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_size, hidden), ACTIVATIONS[activation]())
        self.head = make_head(spec, hidden, init_log_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def distillation_loss(head: nn.Module, actor_params: torch.Tensor, rollout_head: nn.Module,
                      rollout_params: torch.Tensor) -> torch.Tensor:
    """The cross-entropy of the rollout policy under the actor's distribution, averaged over steps (I2A
    Sec. 3.1: "a cross entropy auxiliary loss between pi and pi^"); no gradient reaches the actor.

    Categorical heads: -sum_a pi(a) log pi^(a), summed over action dimensions. Gaussian heads (mean mu,
    std s; rollout mu^, s^): the closed form sum_j log s^_j + (s_j^2 + (mu_j - mu^_j)^2) / (2 s^_j^2)
    + log(2 pi) / 2, which is KL(pi || pi^) plus pi's entropy.
    """
    actor_params = actor_params.detach()
    if head.kind == "categorical":
        return -(actor_params.exp() * rollout_params).sum((-1, -2)).mean()
    std, rollout_log_std = head.log_std.detach().exp(), rollout_head.log_std
    terms = rollout_log_std + (std.square() + (actor_params - rollout_params).square()) / (
        2.0 * torch.exp(2.0 * rollout_log_std)) + 0.5 * math.log(2.0 * math.pi)
    return terms.sum(-1).mean()


class I2AActor(Actor):
    """PPO's actor with the imagination path in front of its core (see the module docstring)."""

    def __init__(self, obs_size: int, spec: ActionSpec, cfg: PolicyConfig, depth: int, candidates: int,
                 encoder: int, model_hidden: int, model_layers: int, rollout_hidden: int, seed: int = 0,
                 obs_clip: float = 10.0, normalize: bool = True):
        first = candidate_actions(spec, candidates, seed)
        code = first.shape[0] * encoder
        super().__init__(obs_size, spec, cfg, obs_clip, normalize, core_in=obs_size + code)
        self.depth = int(depth)
        self.register_buffer("candidates", first)
        self.model = GaussianEnsemble(1, obs_size, model_action_size(self.head), model_hidden, model_layers)
        self.rollout_policy = RolloutPolicy(obs_size, spec, rollout_hidden, cfg.activation, cfg.init_log_std)
        self.encoder = nn.LSTM(obs_size + 1, encoder)

    @property
    def n_candidates(self) -> int:
        return int(self.candidates.shape[0])

    @torch.no_grad()
    def imagine(self, x: torch.Tensor) -> torch.Tensor:
        """(N, obs) normalized observations -> the imagined steps (depth, N * K, obs + 1), candidate-major
        within each observation; rolled out with the model's mean predictions."""
        n, k = x.shape[0], self.n_candidates
        state = self.normalizer.denormalize(x).repeat_interleave(k, 0)
        action = model_actions(self.head, self.candidates.repeat(n, 1))
        r_mean, r_std = self.model.out_mean[-1], self.model.out_std[-1]
        steps = []
        for i in range(self.depth):
            state, reward = self.model.predict(state[None], action[None], sample=False)
            state, reward = state[0], reward[0]
            seen = self.normalizer(state)
            steps.append(torch.cat([seen, ((reward - r_mean) / r_std)[:, None]], -1))
            if i + 1 < self.depth:
                rollout_head = self.rollout_policy.head
                action = model_actions(rollout_head, rollout_head.mode(self.rollout_policy(seen)))
        return torch.stack(steps)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """(..., obs) -> (..., K * encoder): every candidate's rollout encoded backwards, concatenated."""
        flat = x.reshape(-1, x.shape[-1])
        steps = self.imagine(flat)
        _, (h, _) = self.encoder(steps.flip(0))  # the last imagined step first: the paper's reverse order
        return h[0].reshape(*x.shape[:-1], -1)

    def forward(self, x: torch.Tensor, state):
        return super().forward(torch.cat([x, self.code(x)], -1), state)

    def step(self, x: torch.Tensor, state):
        return super().step(torch.cat([x, self.code(x)], -1), state)
