"""The world model: encoder, RSSM, decoder, reward and continue heads, and its loss.

It knows nothing about how actions are chosen: ``imagine(policy, start,
horizon)`` rolls the prior forward under any ``policy(features) -> (action,
extra)``, so Dreamer's actor-critic, a planner (PlaNet's CEM) or a fixed
action sequence all use the same model.

Data convention (what the replay stores per step ``t``): the observation
``o_t``, the action ``a_{t-1}`` that led to it (zeros at an episode start),
the reward received on arriving at ``o_t``, ``is_first`` (``o_t`` starts an
episode) and ``is_terminal`` (``o_t`` ends it with no future). The reward
and continue heads read the features of step ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from simreal.agents.world_models.config import ModelConfig
from simreal.agents.world_models.distributions import kl_loss
from simreal.agents.world_models.nets import Head, MultiDecoder, MultiEncoder, ObsLayout, ScalarHead, preprocess
from simreal.agents.world_models.rssm import RSSM, State

Tensor = torch.Tensor


@dataclass
class Batch:
    """A (batch, time) slice of replay as tensors (see the module docstring for the alignment)."""

    obs: dict[str, Tensor]
    action: Tensor
    reward: Tensor
    is_first: Tensor
    is_terminal: Tensor

    @classmethod
    def from_numpy(cls, arrays: dict, keys, device: torch.device) -> "Batch":
        def tensor(x):
            return torch.as_tensor(x, device=device)

        return cls({k: tensor(arrays[k]) for k in keys}, tensor(arrays["action"]).float(),
                   tensor(arrays["reward"]).float(), tensor(arrays["is_first"]).bool(),
                   tensor(arrays["is_terminal"]).bool())


class WorldModel(nn.Module):
    def __init__(self, layout: ObsLayout, action_dim: int, cfg: ModelConfig):
        super().__init__()
        self.layout = layout
        self.cfg = cfg
        self.encoder = MultiEncoder(layout, cfg.units, cfg.layers, cfg.cnn_depth, cfg.act, cfg.norm,
                                    cfg.symlog_inputs)
        self.rssm = RSSM(action_dim, self.encoder.out_dim, cfg.rssm, cfg.act, cfg.norm)
        feat = self.rssm.feat_dim
        self.decoder = MultiDecoder(feat, layout, cfg.units, cfg.layers, cfg.cnn_depth, cfg.act, cfg.norm,
                                    cfg.vector_decoder, cfg.image_decoder)
        self.reward = ScalarHead(feat, cfg.reward.head, cfg.reward.bins, cfg.units, cfg.layers, cfg.act, cfg.norm,
                                 cfg.reward.zero_init)
        self.cont = Head(feat, 1, cfg.units, cfg.layers, cfg.act, cfg.norm) if cfg.cont else None

    # ------------------------------------------------------------ pieces
    def embed(self, obs: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        inputs = preprocess(obs, self.layout)
        return inputs, self.encoder(inputs)

    def continuation(self, feat: Tensor) -> Tensor:
        """Probability that the episode goes on after the state (1 without a continue head)."""
        if self.cont is None:
            return torch.ones(feat.shape[:-1], device=feat.device)
        return torch.sigmoid(self.cont(feat).squeeze(-1))

    # ------------------------------------------------------------ loss
    def loss(self, batch: Batch) -> tuple[Tensor, State, dict[str, Tensor]]:
        """(total loss, posterior states (B, T, ...), metrics) for one replay batch."""
        inputs, embed = self.embed(batch.obs)
        post, prior = self.rssm.observe(embed, batch.action, batch.is_first)
        feat = self.rssm.feat(post)
        recon = self.decoder.loss(feat, inputs)
        decoder_loss = sum(v.mean() for v in recon.values())
        total, metrics = self.latent_loss(batch, post, prior, feat, self.cfg.loss_scales.decoder * decoder_loss)
        for key, value in recon.items():
            metrics[f"train/recon_{key}"] = value.mean()
        return total, post, metrics

    def latent_loss(self, batch: Batch, post: State, prior: State, feat: Tensor,
                    representation: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``representation`` (the observation term: reconstruction, or Dreaming's contrastive one)
        plus the reward, KL and continue terms every RSSM world model shares; (total, metrics)."""
        reward_loss = -self.reward(feat).log_prob(batch.reward)
        kl_dyn = self.rssm.kl(self.rssm.detach(post), prior)
        kl_rep = self.rssm.kl(post, self.rssm.detach(prior))
        kl_cfg = self.cfg.kl
        kl_total, dyn, rep = kl_loss(kl_dyn, kl_rep, kl_cfg.free, kl_cfg.dyn, kl_cfg.rep, kl_cfg.free_avg)
        scales = self.cfg.loss_scales
        total = representation + scales.reward * reward_loss.mean() + kl_total
        metrics = {"train/wm_loss": total, "train/kl_dyn": dyn, "train/kl_rep": rep, "train/kl_loss": kl_total,
                   "train/reward_loss": reward_loss.mean(),
                   "train/prior_entropy": self.rssm.entropy(prior).mean(),
                   "train/post_entropy": self.rssm.entropy(post).mean()}
        if self.cont is not None:
            target = (~batch.is_terminal).float()
            cont_loss = nn.functional.binary_cross_entropy_with_logits(self.cont(feat).squeeze(-1), target)
            total = total + scales.cont * cont_loss
            metrics["train/cont_loss"] = cont_loss
            metrics["train/wm_loss"] = total
        return total, metrics

    # ------------------------------------------------------------ imagination
    def imagine(self, policy: Callable[[Tensor], tuple[Tensor, Tensor]], start: State,
                horizon: int) -> dict[str, Tensor]:
        """Roll the prior ``horizon`` steps from ``start`` (N, ...) under ``policy``.

        ``policy(features)`` gets detached features and returns ``(action,
        extra)`` (``extra``: anything it wants kept per step, e.g. its
        distribution's parameters). Returns ``feat`` (N, H+1, F), ``action`` and
        ``extra`` (N, H+1, ...); ``action[:, t]`` is taken in state ``t``, so the
        last one is never executed. Gradients flow from the features through
        the actions into the policy (dynamics backpropagation).
        """
        state = start
        feats = [self.rssm.feat(state)]
        actions, extras = [], []
        for _ in range(horizon):
            action, extra = policy(feats[-1].detach())
            actions.append(action)
            extras.append(extra)
            state = self.rssm.img_step(state, action)
            feats.append(self.rssm.feat(state))
        action, extra = policy(feats[-1].detach())
        actions.append(action)
        extras.append(extra)
        return {"feat": torch.stack(feats, 1), "action": torch.stack(actions, 1), "extra": torch.stack(extras, 1)}

    @torch.no_grad()
    def open_loop(self, batch: Batch, context: int) -> tuple[Tensor, Tensor]:
        """Images (B, T, H, W, 3) in [0, 1]: the truth and the model's reconstruction for the first
        ``context`` steps followed by its open-loop prediction from the true actions."""
        inputs, embed = self.embed({k: v[:, :context] for k, v in batch.obs.items()})
        post, _ = self.rssm.observe(embed, batch.action[:, :context], batch.is_first[:, :context])
        last = {k: v[:, -1] for k, v in post.items()}
        prior = self.rssm.imagine_actions(last, batch.action[:, context:])
        feat = torch.cat([self.rssm.feat(post), self.rssm.feat(prior)], 1)
        pred = self.decoder(feat)["image"]
        truth = batch.obs[self.layout.image_key].float() / 255.0
        return truth, (pred + 0.5).clamp(0.0, 1.0)
