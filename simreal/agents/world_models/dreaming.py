"""Dreaming (Okada & Taniguchi 2021, "Dreaming: Model-based Reinforcement Learning by Latent
Imagination without Reconstruction") and DreamingV2 (Okada & Taniguchi 2022, categorical latents):
the RSSM trained without reconstructing observations, and Dreamer's actor-critic on top.

The observation term of the world-model loss is contrastive (InfoNCE) instead of a decoder's
likelihood. Each replayed sequence is seen through two random crops (pad by ``crop_pad`` pixels
with the edges replicated, crop back to the original size; one offset per sequence and view, so
the motion between frames is kept). View A is filtered by the RSSM into posterior features
``f_t = [h_t, z_t]``; view B is only encoded, ``e_t``. With projections ``q = P_s f`` and
``k = P_o e`` the score of a pair is ``q . k`` and, over the ``N = B x T`` pairs of the batch::

    I_0 = -1/N sum_i log( exp(q_i . k_i) / sum_j exp(q_i . k_j) )

(the positive is the same step of the other view, every other step of the batch a negative).
Multi-step (overshooting) terms ``I_1 .. I_K`` use the same score on states predicted ``k`` steps
ahead by linear dynamics independent of the RSSM's own transition, ``f^_{t+1} = A f^_t + B a_{t+1}``
started from ``f^_t = f_t``, against the keys of step ``t + k`` (pairs whose prediction crosses an
episode start are left out). The representation loss is ``contrastive.scale * (I_0 + ... + I_K)``;
reward, KL (with free nats) and continue terms are the RSSM's usual ones (`WorldModel.latent_loss`).

A decoder is still trained, on stopped-gradient features with its own optimizer, so open-loop
predictions can be looked at in TensorBoard; nothing flows from it into the model.
`Dreaming.train_step` then runs Dreamer's behavior update (actor and critic in imagination). The
acting part and its export are Dreamer's `LatentPolicy` (fed the uncropped observation).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models import dreamer
from simreal.agents.world_models.behavior import ActorCritic
from simreal.agents.world_models.config import (BehaviorConfig, ContrastiveConfig, DreamerConfig, ModelConfig,
                                                as_dict, section)
from simreal.agents.world_models.dreamer import Dreamer, LatentPolicy, Optimizer
from simreal.agents.world_models.nets import ObsLayout, preprocess
from simreal.agents.world_models.rssm import State
from simreal.agents.world_models.world_model import Batch, WorldModel

AGENT_NAME = "dreaming"
Tensor = torch.Tensor


def info_nce(queries: Tensor, keys: Tensor, valid: Tensor | None = None) -> Tensor:
    """InfoNCE with in-batch negatives: row ``i`` of ``queries`` (N, D) has ``keys[i]`` as its positive
    and every other key as a negative; the mean over rows (those where ``valid``) of
    ``-log softmax_j(q_i . k_j)[i]``. Zero is its infimum (the positive dominates); ``log N`` when
    all scores are equal."""
    logits = queries @ keys.T
    losses = F.cross_entropy(logits, torch.arange(len(queries), device=queries.device), reduction="none")
    if valid is None:
        return losses.mean()
    valid = valid.to(losses.dtype)
    return (losses * valid).sum() / valid.sum().clamp(min=1.0)


def random_crop(image: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Shift-crop a (B, T, H, W, C) float image batch: pad by ``pad`` pixels (edges replicated) and cut
    the original size back out at a random offset, one offset per sequence (drawn from the CPU
    ``generator``), so every frame of a sequence moves together."""
    if pad == 0:
        return image
    b, t, h, w, c = image.shape
    x = image.permute(0, 1, 4, 2, 3).reshape(b, t * c, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(image.device)
    rows = offsets[0][:, None] + torch.arange(h, device=image.device)
    cols = offsets[1][:, None] + torch.arange(w, device=image.device)
    x = x[torch.arange(b, device=image.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return x.reshape(b, h, w, t, c).permute(0, 3, 1, 2, 4)   # advanced indices came first: (B, H, W, T*C)


class ContrastiveWorldModel(WorldModel):
    """`WorldModel` whose observation term is Dreaming's InfoNCE (see the module docstring)."""

    def __init__(self, layout: ObsLayout, action_dim: int, cfg: ModelConfig, contrastive: ContrastiveConfig):
        super().__init__(layout, action_dim, cfg)
        self.contrastive = contrastive
        feat = self.rssm.feat_dim
        self.state_proj = nn.Linear(feat, contrastive.proj)
        self.obs_proj = nn.Linear(self.encoder.out_dim, contrastive.proj)
        # the independent linear dynamics of the overshooting terms; A starts as the identity
        self.dyn_state = nn.Linear(feat, feat, bias=False)
        nn.init.eye_(self.dyn_state.weight)
        self.dyn_action = nn.Linear(action_dim, feat, bias=False)
        if not contrastive.decoder:
            self.decoder = None

    def views(self, obs: Mapping[str, Tensor], generator: torch.Generator) -> tuple[dict, dict]:
        """Two augmented views of the preprocessed observations (vector keys are not augmented)."""
        inputs = preprocess(obs, self.layout)
        a, b = dict(inputs), dict(inputs)
        if "image" in inputs:
            a["image"] = random_crop(inputs["image"], self.contrastive.crop_pad, generator)
            b["image"] = random_crop(inputs["image"], self.contrastive.crop_pad, generator)
        return a, b

    def contrastive_terms(self, feat: Tensor, keys: Tensor, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """``I_0 + ... + I_K`` for posterior features (B, T, F) and observation keys (B, T, P)."""
        b, t = feat.shape[:2]
        queries = self.state_proj(feat)
        first = info_nce(queries.reshape(b * t, -1), keys.reshape(b * t, -1))
        with torch.no_grad():
            scores = queries.reshape(b * t, -1) @ keys.reshape(b * t, -1).T
            accuracy = (scores.argmax(1) == torch.arange(b * t, device=feat.device)).float().mean()
        total, ahead = first, []
        pred, valid = feat, torch.ones(b, t, dtype=torch.bool, device=feat.device)
        for k in range(1, min(self.contrastive.overshoot, t - 1) + 1):
            pred = self.dyn_state(pred[:, :-1]) + self.dyn_action(batch.action[:, k:])   # pred[:, i] -> step i + k
            valid = valid[:, :-1] & ~batch.is_first[:, k:]
            term = info_nce(self.state_proj(pred).reshape(-1, queries.shape[-1]),
                            keys[:, k:].reshape(-1, keys.shape[-1]), valid.reshape(-1))
            ahead.append(term)
            total = total + term
        metrics = {"train/nce_0": first, "train/nce_accuracy": accuracy, "train/contrastive_loss": total}
        if ahead:
            metrics["train/nce_overshoot"] = torch.stack(ahead).mean()
        return total, metrics

    def contrastive_loss(self, batch: Batch, generator: torch.Generator
                         ) -> tuple[Tensor, State, dict[str, Tensor], dict[str, Tensor]]:
        """(total loss, posteriors (B, T, ...), metrics, view A's inputs: what the posteriors saw)."""
        view_a, view_b = self.views(batch.obs, generator)
        embed = self.encoder(view_a)
        post, prior = self.rssm.observe(embed, batch.action, batch.is_first)
        feat = self.rssm.feat(post)
        nce, metrics = self.contrastive_terms(feat, self.obs_proj(self.encoder(view_b)), batch)
        total, latent_metrics = self.latent_loss(batch, post, prior, feat, self.contrastive.scale * nce)
        return total, post, {**latent_metrics, **metrics}, view_a

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, State, dict[str, Tensor]]:
        """`WorldModel.loss`'s contract with the contrastive observation term (a fresh generator when none)."""
        total, post, metrics, _ = self.contrastive_loss(batch, generator or torch.Generator())
        return total, post, metrics


class Dreaming(Dreamer):
    """A `ContrastiveWorldModel` and Dreamer's `ActorCritic`; acting and export as Dreamer's."""

    def __init__(self, layout: ObsLayout, spec: ActionSpec, model: ModelConfig, behavior: BehaviorConfig,
                 contrastive: ContrastiveConfig, device: torch.device | str = "cpu", seed: int = 0):
        nn.Module.__init__(self)
        self.layout, self.spec = layout, spec
        self.model_cfg, self.behavior_cfg, self.contrastive_cfg = model, behavior, contrastive
        self.wm = ContrastiveWorldModel(layout, spec.dim, model, contrastive)
        self.behavior = ActorCritic(self.wm.rssm.feat_dim, spec, behavior, model.act, model.norm)
        object.__setattr__(self, "policy", LatentPolicy(self.wm.encoder, self.wm.rssm, self.behavior.actor,
                                                        layout, spec, behavior.actor.expl_noise))
        self.to(device)
        self.device = torch.device(device)
        self.crop_generator = torch.Generator().manual_seed(int(seed))
        decoder = set(map(id, self.wm.decoder.parameters())) if self.wm.decoder is not None else set()
        m, a, c = model.opt, behavior.actor.opt, behavior.critic.opt
        self.optimizers = {
            "model": Optimizer("world-model", [p for p in self.wm.parameters() if id(p) not in decoder],
                               m.lr, m.eps, m.clip, m.weight_decay),
            "actor": Optimizer("actor", self.behavior.actor.parameters(), a.lr, a.eps, a.clip, a.weight_decay),
            "critic": Optimizer("critic", self.behavior.critic.parameters(), c.lr, c.eps, c.clip, c.weight_decay),
        }
        if self.wm.decoder is not None:
            d = contrastive.decoder_opt
            self.optimizers["decoder"] = Optimizer("decoder", self.wm.decoder.parameters(), d.lr, d.eps, d.clip,
                                                   d.weight_decay)

    def model_step(self, batch: Batch) -> tuple[State, dict[str, Any]]:
        """The contrastive world-model update, then the visualization decoder on detached features;
        the behavior half (`Dreamer.behavior_step`) is Dreamer's, unchanged."""
        wm_loss, post, metrics, seen = self.wm.contrastive_loss(batch, self.crop_generator)
        metrics["train/grad_norm_model"] = self.optimizers["model"].step(wm_loss)
        if self.wm.decoder is not None:
            recon = self.wm.decoder.loss(self.wm.rssm.feat(post).detach(), seen)
            metrics["train/grad_norm_decoder"] = self.optimizers["decoder"].step(sum(v.mean() for v in recon.values()))
            metrics.update({f"train/recon_{key}": value.mean() for key, value in recon.items()})
        return post, metrics

    def training_state(self) -> dict[str, Any]:
        return {**super().training_state(), "crop_rng": self.crop_generator.get_state()}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        super().load_training_state(state)
        self.crop_generator.set_state(state["crop_rng"])

    def export_config(self) -> dict:
        return {**super().export_config(), "contrastive": as_dict(self.contrastive_cfg)}


def build_agent(cfg: Mapping[str, Any], dc: DreamerConfig, layout: ObsLayout, spec: ActionSpec,
                device: torch.device) -> Dreaming:
    """The trainer's constructor: the ``model``, ``behavior`` and ``contrastive`` sections."""
    return Dreaming(layout, spec, dc.model, dc.behavior, section(ContrastiveConfig, cfg, "contrastive"), device,
                    seed=dc.run.seed)


def export_policy(path, agent: Dreaming, observation_space, action_space, extra: Mapping | None = None):
    """Write the acting part (encoder, RSSM, actor) with `save_export` (agent name ``dreaming``)."""
    import gymnasium as gym

    from simreal.training.export import save_export

    obs_space = gym.spaces.Dict({k: observation_space.spaces[k] for k in agent.layout.keys})
    return save_export(path, AGENT_NAME, agent.export_config(), obs_space, action_space, agent.policy.state_dict(),
                       extra)


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> dreamer.ExportedPolicy:
    """Rebuild the exported policy: the same network as Dreamer's (network code only)."""
    return dreamer.policy_from_export(data, device)
