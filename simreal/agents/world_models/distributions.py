"""Distributions and transforms the world-model agents share.

- `symlog` / `symexp`: DreamerV3's squashing of inputs and targets.
- `TwoHot`: a categorical over fixed bins that decodes to its expected bin value;
  targets are encoded as two-hot vectors, interpolated in raw (not symlog) space.
  Default bins are ``symexp(linspace(-20, 20, 255))``, DreamerV3's current scheme.
- `unimix_logits`, `OneHotCategorical`: categoricals mixed with 1 % uniform
  (DreamerV2/V3) and straight-through one-hot samples.
- `Gaussian` latents (DreamerV1), and actor distributions: `TanhNormal` (V1),
  `TruncNormal` (V2), `BoundedNormal` (V3), `OneHotCategorical` (discrete).
- `kl_categorical`, `kl_gaussian` and `kl_loss`: the dynamics and
  representation KL terms with free nats, in one formulation that covers V1,
  V2 (balancing) and V3 (separate dyn / rep scales).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


# ------------------------------------------------------------------ symlog
def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)``: compresses large magnitudes, identity-like near zero."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of `symlog`: ``sign(x) * (exp(|x|) - 1)``."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


# ------------------------------------------------------------------ two-hot
def symexp_bins(num_bins: int = 255, limit: float = 20.0) -> Tensor:
    """Bin centres ``symexp(linspace(-limit, limit, num_bins))`` (DreamerV3's reward and critic bins).

    Built from the positive half and mirrored, so the bins are exactly symmetric
    (and an odd count has an exact 0 in the middle).
    """
    if num_bins % 2 == 1:
        half = symexp(torch.linspace(0.0, limit, (num_bins + 1) // 2, dtype=torch.float64))
        return torch.cat([-half[1:].flip(0), half]).to(torch.float32)
    return symexp(torch.linspace(-limit, limit, num_bins, dtype=torch.float64)).to(torch.float32)


def twohot_encode(x: Tensor, bins: Tensor) -> Tensor:
    """Two-hot vectors (``x.shape + (K,)``) for values ``x`` over ascending ``bins``.

    The weight is split between the two neighbouring bins by linear distance in
    raw space, so the expected bin value equals ``x`` (values beyond the ends
    go entirely to the end bin).
    """
    x = x.to(bins.dtype).contiguous()
    num = bins.shape[0]
    above = torch.searchsorted(bins, x, right=True)      # number of bins <= x
    below = (above - 1).clamp(0, num - 1)
    # the first bin >= x: equal to `below` when x sits on a bin
    above = torch.where((above > 0) & (bins[below] == x), below, above.clamp(0, num - 1))
    equal = below == above
    dist_below = torch.where(equal, torch.ones_like(x), torch.abs(bins[below] - x))
    dist_above = torch.where(equal, torch.ones_like(x), torch.abs(bins[above] - x))
    total = dist_below + dist_above
    weight_below = dist_above / total
    weight_above = dist_below / total
    return (F.one_hot(below, num) * weight_below[..., None]
            + F.one_hot(above, num) * weight_above[..., None])


class TwoHot:
    """A categorical over ``bins`` read as a real number: ``mean`` is the expected bin value.

    ``log_prob(x)`` is the cross-entropy of the two-hot encoding of ``x``
    (negated), the V3 reward and critic loss.
    """

    def __init__(self, logits: Tensor, bins: Tensor, symmetric: bool | None = None):
        self.logits = logits
        self.bins = bins
        if symmetric is None:
            symmetric = bins.shape[0] % 2 == 1 and bool(torch.equal(bins, -bins.flip(0)))
        self.symmetric = symmetric

    @property
    def probs(self) -> Tensor:
        return torch.softmax(self.logits, -1)

    @property
    def mean(self) -> Tensor:
        probs = self.probs
        num = self.bins.shape[0]
        if self.symmetric:
            # Symmetric bins: add the mirrored halves pairwise from the middle out, so
            # huge opposite bins cancel exactly (uniform logits decode to exactly 0).
            mid = num // 2
            left = (probs[..., :mid] * self.bins[:mid]).flip(-1)
            right = probs[..., mid + 1:] * self.bins[mid + 1:]
            return (left + right).sum(-1) + probs[..., mid] * self.bins[mid]
        return (probs * self.bins).sum(-1)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, x: Tensor) -> Tensor:
        target = twohot_encode(x, self.bins)
        return (target * F.log_softmax(self.logits, -1)).sum(-1)


# ------------------------------------------------------------------ categoricals
def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Logits of ``(1 - unimix) * softmax(logits) + unimix / K`` over the last axis."""
    if unimix <= 0.0:
        return logits
    probs = torch.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


class OneHotCategorical:
    """Independent categoricals over the last axis with one-hot, straight-through samples.

    ``logits`` has shape ``(..., groups, classes)``; ``log_prob`` and
    ``entropy`` sum over the groups. Samples carry the gradient of the
    probabilities (``onehot + probs - sg(probs)``).
    """

    def __init__(self, logits: Tensor, unimix: float = 0.0):
        probs = torch.softmax(logits, -1)
        if unimix > 0.0:
            probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
            logits = torch.log(probs)
        self.logits, self.probs = logits, probs

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        probs = self.probs.detach()
        # inverse-CDF draw: the first class whose cumulative probability exceeds u
        uniform = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
        index = (probs.cumsum(-1) <= uniform).sum(-1).clamp_max(probs.shape[-1] - 1)
        sample = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
        return sample + self.probs - probs

    sample = rsample

    def mode(self) -> Tensor:
        index = self.logits.argmax(-1)
        sample = F.one_hot(index, self.logits.shape[-1]).to(self.probs.dtype)
        return sample + self.probs - self.probs.detach()

    def log_prob(self, onehot: Tensor) -> Tensor:
        return (onehot * F.log_softmax(self.logits, -1)).sum((-2, -1))

    def entropy(self) -> Tensor:
        logp = F.log_softmax(self.logits, -1)
        return -(self.probs * logp).sum((-2, -1))


def kl_categorical(lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
    """KL(lhs || rhs) between independent categoricals (``(..., groups, classes)``), summed over groups."""
    lhs_logp = F.log_softmax(lhs_logits, -1)
    rhs_logp = F.log_softmax(rhs_logits, -1)
    return (lhs_logp.exp() * (lhs_logp - rhs_logp)).sum((-2, -1))


# ------------------------------------------------------------------ Gaussians
def kl_gaussian(lhs_mean: Tensor, lhs_std: Tensor, rhs_mean: Tensor, rhs_std: Tensor) -> Tensor:
    """KL(lhs || rhs) between diagonal Gaussians, summed over the last axis."""
    var_ratio = (lhs_std / rhs_std) ** 2
    mean_term = ((lhs_mean - rhs_mean) / rhs_std) ** 2
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(-1)


def kl_loss(kl_dyn: Tensor, kl_rep: Tensor, free: float, dyn_scale: float, rep_scale: float,
            free_avg: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``dyn_scale * max(free, dyn) + rep_scale * max(free, rep)``; returns (loss, dyn, rep).

    ``kl_dyn`` is KL(sg(posterior) || prior): it trains the prior only.
    ``kl_rep`` is KL(posterior || sg(prior)): it trains the posterior (the encoder) only.
    Both have the same value. ``free_avg`` applies the free-nats floor to the
    batch mean (V1, V2) instead of to each element (V3). The clip is a hard
    ``max``: below the floor the gradient is exactly zero.

    - V1 (KL scale 1, free nats 3): ``dyn_scale = rep_scale = 1`` gives the
      gradient of KL(post || prior) (each parameter set gets its own part).
    - V2 (balancing 0.8, scale 1): ``dyn_scale = 0.8``, ``rep_scale = 0.2``.
    - V3: ``dyn_scale = 0.5``, ``rep_scale = 0.1``, free 1 per element.
    """
    if free_avg:
        dyn, rep = kl_dyn.mean(), kl_rep.mean()
        loss = dyn_scale * torch.clamp(dyn, min=free) + rep_scale * torch.clamp(rep, min=free)
    else:
        dyn = torch.clamp(kl_dyn, min=free)
        rep = torch.clamp(kl_rep, min=free)
        loss = (dyn_scale * dyn + rep_scale * rep).mean()
    return loss, kl_dyn.mean(), kl_rep.mean()


# ------------------------------------------------------------------ actor distributions
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class TanhNormal:
    """``tanh(Normal(mean, std))`` (DreamerV1's actor); ``mode`` is ``tanh(mean)``."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean, std

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return torch.tanh(self.mean + self.std * noise)

    def mode(self) -> Tensor:
        return torch.tanh(self.mean)

    def log_prob(self, action: Tensor) -> Tensor:
        action = action.clamp(-1 + 1e-6, 1 - 1e-6)
        pre = torch.atanh(action)
        logp = -0.5 * ((pre - self.mean) / self.std) ** 2 - torch.log(self.std) - _LOG_SQRT_2PI
        return (logp - torch.log1p(-action ** 2)).sum(-1)

    def entropy(self) -> Tensor:
        """One-sample estimate (no closed form): ``-log p(a)`` at a reparameterized sample."""
        return -self.log_prob(self.rsample())


class TruncNormal:
    """A normal truncated to [-1, 1] (DreamerV2's continuous actor), reparameterized by the inverse CDF."""

    def __init__(self, mean: Tensor, std: Tensor, low: float = -1.0, high: float = 1.0):
        self.mean, self.std, self.low, self.high = mean, std, low, high
        self._alpha = (low - mean) / std
        self._beta = (high - mean) / std
        self._cdf_alpha = torch.special.ndtr(self._alpha)
        self._cdf_beta = torch.special.ndtr(self._beta)
        self._z = (self._cdf_beta - self._cdf_alpha).clamp_min(1e-6)

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        uniform = torch.rand(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        cdf = (self._cdf_alpha + uniform * self._z).clamp(1e-6, 1 - 1e-6)
        x = self.mean + self.std * torch.special.ndtri(cdf)
        return x.clamp(self.low + 1e-6, self.high - 1e-6)

    def mode(self) -> Tensor:
        return self.mean.clamp(self.low, self.high)

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) / self.std
        return (-0.5 * z ** 2 - _LOG_SQRT_2PI - torch.log(self.std) - torch.log(self._z)).sum(-1)

    def entropy(self) -> Tensor:
        pdf_alpha = torch.exp(-0.5 * self._alpha ** 2) / math.sqrt(2 * math.pi)
        pdf_beta = torch.exp(-0.5 * self._beta ** 2) / math.sqrt(2 * math.pi)
        value = (math.log(math.sqrt(2 * math.pi * math.e)) + torch.log(self.std * self._z)
                 + (self._alpha * pdf_alpha - self._beta * pdf_beta) / (2 * self._z))
        return value.sum(-1)


class BoundedNormal:
    """Normal with a tanh-squashed mean and a bounded std (DreamerV3's continuous actor).

    Samples are not squashed; the env clips them to [-1, 1] (so does the RSSM's
    action input, see `rssm.RSSM`).
    """

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean, std

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) / self.std
        return (-0.5 * z ** 2 - _LOG_SQRT_2PI - torch.log(self.std)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + _LOG_SQRT_2PI + torch.log(self.std)).sum(-1)


class UnitGaussian:
    """A unit-variance Gaussian over scalars (V1/V2 reward and value heads); ``log_prob`` drops the constant."""

    def __init__(self, mean: Tensor):
        self.mean = mean

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, x: Tensor) -> Tensor:
        return -0.5 * (x - self.mean) ** 2
