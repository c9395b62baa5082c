"""The probabilistic ensemble of PETS (Chua et al. 2018, Sec. 4.1): B networks, each mapping a
state and an action to a diagonal Gaussian over the next state's change and the reward.

Member b predicts ``N(mu_b(s, a), Sigma_b(s, a))`` of ``y = [s' - s, r]`` (inputs and targets
standardized with statistics of the data). Its loss is the Gaussian negative log-likelihood of the
paper's Eq. (2) up to constants, per transition

    loss_b = (mu_b - y)^T Sigma_b^{-1} (mu_b - y) + log det Sigma_b,

averaged over the member's minibatch and summed over members. Each member draws its own
minibatches (with replacement) from the replay, the online form of training each on its own
bootstrap of the data. The log-variance is kept between learned soft bounds (their Appendix A.1):

    logvar = max - softplus(max - raw),    logvar = min + softplus(logvar - min),

with ``0.01 * (sum(max) - sum(min))`` added to the loss so the bounds tighten around the data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}
BOUND_PENALTY = 0.01


class EnsembleLinear(nn.Module):
    """B independent linear layers applied to (B, N, in) as one batched matmul."""

    def __init__(self, members: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def soft_bound(raw: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``raw`` squashed smoothly into (low, high) (the paper's bounded log-variance)."""
    x = high - F.softplus(high - raw)
    return low + F.softplus(x - low)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (2) without constants, per member: (mu - y)^T Sigma^-1 (mu - y) + log det Sigma, averaged over
    the batch; inputs (B, N, D), output (B,)."""
    return (((mean - target) ** 2) * torch.exp(-logvar) + logvar).sum(-1).mean(-1)


class GaussianEnsemble(nn.Module):
    """The dynamics-and-reward ensemble. ``forward`` takes standardized inputs; `predict` raw ones."""

    def __init__(self, members: int, state_dim: int, action_dim: int, hidden: int, layers: int,
                 act: str = "silu", min_logvar: float = -10.0, max_logvar: float = 0.5):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"model.act: expected one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.members, self.state_dim, self.action_dim = members, state_dim, action_dim
        n_in, self.n_out = state_dim + action_dim, state_dim + 1
        sizes = [n_in] + [hidden] * layers
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = ACTIVATIONS[act]()
        self.head = EnsembleLinear(members, sizes[-1], 2 * self.n_out)
        self.min_logvar = nn.Parameter(torch.full((self.n_out,), float(min_logvar)))
        self.max_logvar = nn.Parameter(torch.full((self.n_out,), float(max_logvar)))
        for name, size in (("in_mean", n_in), ("in_std", n_in), ("out_mean", self.n_out), ("out_std", self.n_out)):
            self.register_buffer(name, torch.zeros(size) if name.endswith("mean") else torch.ones(size))

    def set_statistics(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Standardize with these data's mean and std (a floor of 1e-6 keeps constant columns finite)."""
        for (mean, std), x in (((self.in_mean, self.in_std), inputs), ((self.out_mean, self.out_std), targets)):
            mean.copy_(x.mean(0))
            std.copy_(x.std(0, unbiased=False).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, in) standardized -> mean, bounded logvar (B, N, out) of the standardized target."""
        for layer in self.layers:
            x = self.act(layer(x))
        mean, raw = self.head(x).chunk(2, dim=-1)
        return mean, soft_bound(raw, self.min_logvar, self.max_logvar)

    def loss(self, state: torch.Tensor, action: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Summed member NLL plus the bound penalty; inputs (B, N, .) raw (each member its own minibatch)."""
        mean, logvar = self(self._standardize_in(state, action))
        nll = gaussian_nll(mean, logvar, (target - self.out_mean) / self.out_std)
        penalty = BOUND_PENALTY * (self.max_logvar.sum() - self.min_logvar.sum())
        mse = ((mean - (target - self.out_mean) / self.out_std) ** 2).mean()
        return nll.sum() + penalty, {"model/nll": float(nll.detach().mean()), "model/mse": float(mse.detach()),
                                     "model/max_logvar": float(self.max_logvar.detach().mean()),
                                     "model/min_logvar": float(self.min_logvar.detach().mean())}

    def _standardize_in(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (torch.cat([state, action], -1) - self.in_mean) / self.in_std

    def predict(self, state: torch.Tensor, action: torch.Tensor, generator: torch.Generator | None = None,
                sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (B, N, state) and (B, N, action) -> next state and reward, each member on its own rows;
        sampled from each member's Gaussian (noise from ``generator``) or its mean."""
        mean, logvar = self(self._standardize_in(state, action))
        if sample:
            noise = torch.randn(mean.shape, generator=generator).to(mean.device)
            mean = mean + torch.exp(0.5 * logvar) * noise
        y = mean * self.out_std + self.out_mean
        return state + y[..., :self.state_dim], y[..., self.state_dim]
