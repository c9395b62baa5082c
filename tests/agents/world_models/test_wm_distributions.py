"""Golden values of the world-model math: symlog, two-hot, KL with unimix and free nats, lambda-returns."""

import math

import numpy as np
import pytest
import torch

from simreal.agents.world_models.behavior import ReturnNormalizer, lambda_return
from simreal.agents.world_models.config import RSSMConfig
from simreal.agents.world_models.distributions import (BoundedNormal, OneHotCategorical, TanhNormal, TruncNormal,
                                                       TwoHot, kl_categorical, kl_loss, symexp, symexp_bins,
                                                       symlog, twohot_encode, unimix_logits)
from simreal.agents.world_models.rssm import RSSM


def test_symlog_symexp_round_trip_on_minus_1000_to_1000():
    x = torch.linspace(-1000, 1000, 20001, dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(symlog(symexp(x / 100)), x / 100, rtol=1e-12, atol=1e-12)
    x32 = x.float()
    assert torch.allclose(symexp(symlog(x32)), x32, rtol=1e-6, atol=1e-6)
    assert symlog(torch.tensor(math.e - 1)).item() == pytest.approx(1.0)
    assert symlog(torch.tensor(-(math.e ** 2 - 1))).item() == pytest.approx(-2.0)
    assert symlog(torch.tensor(0.0)).item() == 0.0


def test_five_symexp_bins_encode_the_midpoint_of_bins_1_and_2_as_two_halves():
    bins = symexp_bins(5)  # symexp(linspace(-20, 20, 5))
    expected_bins = symexp(torch.linspace(-20, 20, 5, dtype=torch.float64)).float()
    assert torch.equal(bins, expected_bins)
    midpoint = (bins[1] + bins[2]) / 2
    assert twohot_encode(midpoint, bins).tolist() == [0.0, 0.5, 0.5, 0.0, 0.0]
    # on a bin: all weight there; beyond the ends: the end bin
    assert twohot_encode(bins[3], bins).tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert twohot_encode(torch.tensor(1e12), bins).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert twohot_encode(torch.tensor(-1e12), bins).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("num_bins", [5, 255])
def test_uniform_logits_decode_to_exactly_zero(num_bins):
    dist = TwoHot(torch.zeros(3, num_bins), symexp_bins(num_bins))
    assert dist.mean.tolist() == [0.0, 0.0, 0.0]


def test_two_hot_interpolates_in_raw_space_and_round_trips():
    bins = symexp_bins(255)
    values = torch.tensor([0.0, 0.05, 0.5, 1.7, -3.2, 37.0, -950.0])
    target = twohot_encode(values, bins)
    assert torch.allclose(target.sum(-1), torch.ones(7))
    assert ((target > 0).sum(-1) <= 2).all()
    assert torch.allclose((target * bins).sum(-1), values, rtol=1e-5, atol=1e-6)
    # the decoded mean of a two-hot "distribution" is the value; log_prob is the cross-entropy
    logits = torch.randn(7, 255)
    dist = TwoHot(logits, bins)
    assert torch.allclose(dist.log_prob(values), (target * torch.log_softmax(logits, -1)).sum(-1))
    assert torch.allclose(TwoHot(torch.log(target + 1e-30), bins).mean, values, rtol=1e-4, atol=1e-5)


# Two latents of three classes each; the V3 KL with 1 % unimix on both sides.
POST_LOGITS = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
PRIOR_LOGITS = [[0.0, 1.0, 0.0], [-1.0, 2.0, 1.0]]


def test_v3_kl_between_given_logits_with_unimix_is_pinned():
    post, prior = torch.tensor(POST_LOGITS, dtype=torch.float64), torch.tensor(PRIOR_LOGITS, dtype=torch.float64)
    kl = kl_categorical(unimix_logits(post, 0.01), unimix_logits(prior, 0.01))
    assert kl.item() == pytest.approx(1.520676051581649, abs=1e-12)
    assert kl_categorical(post, prior).item() == pytest.approx(1.5712784890220381, abs=1e-12)  # without unimix

    # independent check: mixed probabilities by hand
    def mixed(logits):
        p = np.exp(np.array(logits)) / np.exp(np.array(logits)).sum(-1, keepdims=True)
        return 0.99 * p + 0.01 / 3

    p, q = mixed(POST_LOGITS), mixed(PRIOR_LOGITS)
    assert kl.item() == pytest.approx(float((p * np.log(p / q)).sum()), abs=1e-12)
    # the same through the RSSM (which applies its unimix itself)
    rssm = RSSM(1, 4, RSSMConfig(stoch=2, classes=3, deter=4, hidden=4, unimix=0.01), "silu", True).double()
    assert rssm.kl({"logits": post}, {"logits": prior}).item() == pytest.approx(1.520676051581649, abs=1e-12)


@pytest.mark.parametrize("free_avg", [False, True])
def test_free_nats_give_exactly_the_floor_and_zero_gradient_on_identical_logits(free_avg):
    logits = torch.tensor([POST_LOGITS] * 4, requires_grad=True)
    kl = kl_categorical(unimix_logits(logits, 0.01), unimix_logits(logits, 0.01))
    loss, dyn, rep = kl_loss(kl, kl, free=1.0, dyn_scale=0.5, rep_scale=0.1, free_avg=free_avg)
    assert loss.item() == pytest.approx(0.6, abs=1e-7)   # 0.5 * 1 + 0.1 * 1
    assert dyn.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_dyn_loss_trains_only_the_prior_and_rep_loss_only_the_posterior():
    rssm = RSSM(1, 4, RSSMConfig(stoch=2, classes=3, deter=4, hidden=4, unimix=0.01), "silu", True)
    for part in ("dyn", "rep"):
        post_logits = torch.tensor(POST_LOGITS, requires_grad=True)
        prior_logits = torch.tensor(PRIOR_LOGITS, requires_grad=True)
        post, prior = {"logits": post_logits}, {"logits": prior_logits}
        kl_dyn = rssm.kl(rssm.detach(post), prior)     # as WorldModel.loss computes them
        kl_rep = rssm.kl(post, rssm.detach(prior))
        scales = (1.0, 0.0) if part == "dyn" else (0.0, 1.0)
        loss, _, _ = kl_loss(kl_dyn, kl_rep, free=0.0, dyn_scale=scales[0], rep_scale=scales[1], free_avg=False)
        loss.backward()
        trained, untouched = (prior_logits, post_logits) if part == "dyn" else (post_logits, prior_logits)
        assert trained.grad is not None and trained.grad.abs().sum() > 1e-3
        assert untouched.grad is None or torch.count_nonzero(untouched.grad) == 0


def test_lambda_return_golden_values_and_limits():
    reward = torch.tensor([1.0, 2.0, 3.0])
    next_value = torch.tensor([10.0, 20.0, 30.0])
    cont = torch.full((3,), 0.5)   # gamma (1) x continuation (0.5)
    # R_t = r_t + c_t ((1 - lam) v_{t+1} + lam R_{t+1}), R_3 = v_3 = 30
    assert lambda_return(reward, next_value, cont, 0.5).tolist() == [6.375, 11.5, 18.0]
    assert lambda_return(reward, next_value, cont, 0.0).tolist() == [6.0, 12.0, 18.0]    # one-step TD
    assert lambda_return(reward, next_value, cont, 1.0).tolist() == [6.5, 11.0, 18.0]    # discounted sum + v_3
    batched = lambda_return(reward.expand(4, 3), next_value.expand(4, 3), cont.expand(4, 3), 0.5)
    assert batched.shape == (4, 3) and torch.equal(batched[2], torch.tensor([6.375, 11.5, 18.0]))


def test_return_normalizer_uses_the_percentile_range_and_never_scales_small_returns_up():
    norm = ReturnNormalizer(decay=0.99, max_scale=1.0, low=5.0, high=95.0)
    for _ in range(2000):
        norm.update(torch.linspace(0, 1000, 1001))
    assert norm.scale().item() == pytest.approx(900.0, rel=1e-3)   # P95 - P5 of U[0, 1000]
    small = ReturnNormalizer(decay=0.99, max_scale=1.0, low=5.0, high=95.0)
    for _ in range(2000):
        small.update(torch.linspace(0, 0.5, 101))
    assert small.scale().item() == 1.0


def test_unimix_categorical_floor_and_straight_through_samples():
    torch.manual_seed(0)
    logits = torch.tensor([[10.0, -10.0, -10.0, -10.0]], requires_grad=True)
    dist = OneHotCategorical(logits, unimix=0.01)
    assert dist.probs.min().item() == pytest.approx(0.01 / 4, rel=1e-4)
    samples = dist.rsample()
    assert samples.detach().sum().item() == pytest.approx(1.0) and set(samples.detach().flatten().tolist()) <= {0.0, 1.0}
    (samples * torch.arange(4.0)).sum().backward()    # straight-through: gradient reaches the logits
    assert logits.grad.abs().sum() > 0
    counts = torch.stack([OneHotCategorical(torch.tensor([[0.0, 1.0, 2.0]])).rsample() for _ in range(20000)]).sum(0)
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), -1) * 20000
    assert torch.allclose(counts[0], expected, rtol=0.05)


def _integrate(dist_fn, low, high, n=200001):
    x = torch.linspace(low, high, n, dtype=torch.float64)[1:-1, None]
    density = dist_fn().log_prob(x).exp()
    return float(torch.trapezoid(density, x[:, 0]))


def test_actor_distributions_are_normalized_and_entropies_match():
    mean, std = torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.4], dtype=torch.float64)
    assert _integrate(lambda: TruncNormal(mean, std), -1, 1) == pytest.approx(1.0, abs=1e-4)
    assert _integrate(lambda: TanhNormal(mean, std), -1, 1) == pytest.approx(1.0, abs=1e-3)
    torch.manual_seed(0)
    trunc = TruncNormal(mean.expand(200000, 1), std.expand(200000, 1))
    samples = trunc.rsample()
    assert samples.min() > -1 and samples.max() < 1
    assert trunc.entropy()[0].item() == pytest.approx(-trunc.log_prob(samples).mean().item(), abs=0.01)
    bounded = BoundedNormal(mean, std)
    reference = torch.distributions.Normal(mean, std)
    assert bounded.entropy().item() == pytest.approx(reference.entropy().item(), abs=1e-12)
    assert bounded.log_prob(torch.tensor([0.1], dtype=torch.float64)).item() == pytest.approx(
        reference.log_prob(torch.tensor([0.1], dtype=torch.float64)).item(), abs=1e-12)
