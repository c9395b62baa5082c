"""Planning over action sequences, shared by the model-based agents (PlaNet in latent space, PETS over
a dynamics ensemble): the cross-entropy method (Rubinstein 1999) as model-predictive control uses it.

`cem` keeps a diagonal Gaussian belief over a ``horizon``-step action sequence per batch row, draws
``candidates`` sequences from it, scores them with the caller's objective, and refits the belief
to the ``top_k`` best (the elites), ``iterations`` times. PETS (Chua et al. 2018, Sec. 5) smooths
the refit, ``mean <- alpha * mean + (1 - alpha) * elite mean`` (the same for the std), and starts
each step's search from the previous plan shifted by one step (``mean``); PlaNet (Hafner et al.
2019) uses neither (``alpha = 0``, a fresh belief).
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

Tensor = torch.Tensor
Objective = Callable[[Tensor], Tensor]


class CEMSettings(Protocol):
    candidates: int
    top_k: int
    iterations: int
    init_std: float


def cem(objective: Objective, batch: int, horizon: int, action_dim: int, cfg: CEMSettings,
        generator: torch.Generator, device: torch.device | str = "cpu", low: float = -1.0,
        high: float = 1.0, mean: Tensor | None = None, alpha: float = 0.0) -> Tensor:
    """Cross-entropy method over action sequences; returns the final belief's mean (batch, horizon, dim).

    ``objective(actions)`` scores candidates ``(batch, candidates, horizon, dim)`` -> ``(batch,
    candidates)`` (higher is better). The belief starts at ``mean`` (default 0) and std
    ``cfg.init_std``; samples are clipped to ``[low, high]`` before scoring, so every elite, and
    hence the returned mean, respects the bounds. ``alpha`` in [0, 1) keeps that share of the old
    belief at each refit. Noise comes from ``generator`` only (a CPU generator; the samples are
    moved to ``device``, so a plan does not depend on where it is computed).
    """
    shape = (batch, horizon, action_dim)
    mean = torch.zeros(shape, device=device) if mean is None else mean.to(device).clone()
    std = torch.full(shape, float(cfg.init_std), device=device)
    for _ in range(cfg.iterations):
        noise = torch.randn((batch, cfg.candidates, *shape[1:]), generator=generator).to(device)
        actions = (mean[:, None] + std[:, None] * noise).clamp(low, high)
        scores = objective(actions)
        top = scores.topk(cfg.top_k, dim=1).indices
        elite = torch.gather(actions, 1, top[:, :, None, None].expand(-1, -1, horizon, action_dim))
        mean = alpha * mean + (1.0 - alpha) * elite.mean(1)
        std = alpha * std + (1.0 - alpha) * elite.std(1, unbiased=False)
    return mean
