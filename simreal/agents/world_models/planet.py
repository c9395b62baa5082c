"""PlaNet (Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels"): the RSSM world
model with a cross-entropy-method (CEM) planner in its latent space and no learned policy.

At every env step (model-predictive control) the agent filters the observation into the posterior
state, then `cem` searches action sequences of ``planner.horizon`` steps: ``candidates`` sequences
drawn from a diagonal Gaussian belief, each rolled out through the prior and scored by the sum of
predicted rewards, the belief refit to the ``top_k`` best, ``iterations`` times. The first action of
the final belief's mean is executed (plus Gaussian noise of std ``planner.expl_noise`` while
collecting). All candidates of all env copies are one batch on the tensor library.

`PlaNet` trains the world model (`WorldModel.loss`: reconstruction, reward, KL with free nats);
`MPCPolicy` acts; the export holds the world-model parts the planner needs (encoder, RSSM, reward
and continue heads) and the planner settings, and `policy_from_export` rebuilds the planner from it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.planning import cem
from simreal.agents.world_models.config import DreamerConfig, ModelConfig, PlannerConfig, as_dict, build, section
from simreal.agents.world_models.dreamer import (ExportedPolicy, LatentPolicy, Optimizer, export_parts,
                                                exported_policy)
from simreal.agents.world_models.nets import Head, MultiEncoder, ObsLayout, ScalarHead, preprocess
from simreal.agents.world_models.prediction import decoder_weights
from simreal.agents.world_models.rssm import RSSM, State
from simreal.agents.world_models.world_model import Batch, WorldModel

AGENT_NAME = "planet"
Tensor = torch.Tensor
__all__ = ["cem", "MPCPolicy", "PlaNet", "build_agent", "export_policy", "policy_from_export"]


class MPCPolicy(LatentPolicy):
    """Encoder + RSSM filter + CEM planner over the reward (and continue) heads.

    The state passed between calls is `LatentPolicy`'s (latent and previous action). With
    ``explore`` the posterior and the planning rollouts are sampled and noise of std
    ``expl_noise`` is added to the action; without it they use the distributions' modes. The CEM
    noise (and the exploration noise) come from the policy's own generator.
    """

    def __init__(self, encoder: MultiEncoder, rssm: RSSM, reward: ScalarHead, cont: Head | None, layout: ObsLayout,
                 spec: ActionSpec, planner: PlannerConfig, seed: int = 0):
        if spec.discrete:
            raise ValueError("planet: the CEM planner searches continuous actions; this env's action space is "
                             "discrete")
        super().__init__(encoder, rssm, None, layout, spec, planner.expl_noise)
        self.reward, self.cont, self.planner = reward, cont, planner
        self.generator = torch.Generator().manual_seed(int(seed))   # CPU: the same noise on any device

    def rollout_return(self, start: State, actions: Tensor, sample: bool) -> Tensor:
        """Predicted return of action sequences (N, J, H, A) from N start states -> (N, J).

        Sum over the imagined states of the reward head's mean, each weighted by the probability
        that the episode is still running when the state is reached (1 without a continue head)."""
        n, j, horizon, dim = actions.shape
        state = {k: v.repeat_interleave(j, 0) for k, v in start.items()}
        flat = actions.reshape(n * j, horizon, dim)
        total = torch.zeros(n * j, device=actions.device)
        alive = torch.ones(n * j, device=actions.device)
        for t in range(horizon):
            state = self.rssm.img_step(state, flat[:, t], sample=sample)
            feat = self.rssm.feat(state)
            total = total + alive * self.reward(feat).mean
            if self.cont is not None:
                alive = alive * torch.sigmoid(self.cont(feat).squeeze(-1))
        return total.reshape(n, j)

    def plan(self, start: State, sample: bool) -> Tensor:
        """The CEM plan (N, horizon, dim) from posterior states ``start`` (N, ...)."""
        start = {k: start[k] for k in ("deter", "stoch")}
        n = start["deter"].shape[0]
        cfg = self.planner
        return cem(lambda actions: self.rollout_return(start, actions, sample), n, cfg.horizon, self.spec.dim, cfg,
                   self.generator, start["deter"].device)

    @torch.no_grad()
    def act(self, obs: Mapping[str, Tensor], state: State, explore: bool) -> tuple[Tensor, State]:
        embed = self.encoder(preprocess(obs, self.layout))
        latent = {k: v for k, v in state.items() if k != "action"}
        post, _ = self.rssm.obs_step(latent, state["action"], embed, sample=explore)
        action = self.plan(post, sample=explore)[:, 0]
        if explore and self.expl_noise > 0:
            action = action + self.expl_noise * torch.randn(action.shape, generator=self.generator).to(action.device)
        action = action.clamp(-1.0, 1.0)
        return action, {**post, "action": action}


class PlaNet(nn.Module):
    """The world model (trained on replay) and the `MPCPolicy` that plans with it."""

    def __init__(self, layout: ObsLayout, spec: ActionSpec, model: ModelConfig, planner: PlannerConfig,
                 device: torch.device | str = "cpu", seed: int = 0):
        super().__init__()
        self.layout, self.spec = layout, spec
        self.model_cfg, self.planner_cfg = model, planner
        self.wm = WorldModel(layout, spec.dim, model)
        # Not a registered submodule: it shares the world model's parts (see Dreamer).
        object.__setattr__(self, "policy", MPCPolicy(self.wm.encoder, self.wm.rssm, self.wm.reward, self.wm.cont,
                                                     layout, spec, planner, seed))
        self.to(device)
        self.device = torch.device(device)
        m = model.opt
        self.optimizers = {"model": Optimizer("world-model", self.wm.parameters(), m.lr, m.eps, m.clip,
                                              m.weight_decay)}

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One world-model update (PlaNet learns no policy); metrics as floats."""
        loss, _, metrics = self.wm.loss(batch)
        metrics["train/grad_norm_model"] = self.optimizers["model"].step(loss)
        return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}

    def obs_to_tensors(self, obs: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.layout.keys}

    def training_state(self) -> dict[str, Any]:
        """Weights, optimizer moments and the planner's generator, as plain tensors."""
        return {"modules": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                "optimizers": {k: o.opt.state_dict() for k, o in self.optimizers.items()},
                "planner_rng": self.policy.generator.get_state()}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for key, opt in self.optimizers.items():
            opt.opt.load_state_dict(state["optimizers"][key])
        self.policy.generator.set_state(state["planner_rng"])

    def export_config(self) -> dict:
        return {"model": as_dict(self.model_cfg), "planner": as_dict(self.planner_cfg),
                "keys": list(self.layout.keys)}


def build_agent(cfg: Mapping[str, Any], dc: DreamerConfig, layout: ObsLayout, spec: ActionSpec,
                device: torch.device) -> PlaNet:
    """The trainer's constructor: the ``model`` and ``planner`` sections of a resolved config."""
    return PlaNet(layout, spec, dc.model, section(PlannerConfig, cfg, "planner"), device, seed=dc.run.seed)


def export_policy(path, agent: PlaNet, observation_space, action_space, extra: Mapping | None = None):
    """Write the planner's world-model parts and settings with `save_export` (agent name ``planet``)."""
    import gymnasium as gym

    from simreal.training.export import save_export

    obs_space = gym.spaces.Dict({k: observation_space.spaces[k] for k in agent.layout.keys})
    # the decoder rides along (the planner does not use it) so that rigs can measure prediction error
    weights = {**agent.policy.state_dict(), **decoder_weights(agent.wm.decoder)}
    return save_export(path, AGENT_NAME, agent.export_config(), obs_space, action_space, weights, extra)


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> ExportedPolicy:
    """Rebuild the exported planner (network code only: no trainer, no env)."""
    model, layout, spec, encoder, rssm = export_parts(data)
    planner = build(PlannerConfig, data["config"]["planner"], "export config planner")
    feat = rssm.feat_dim
    reward = ScalarHead(feat, model.reward.head, model.reward.bins, model.units, model.layers, model.act, model.norm,
                        model.reward.zero_init)
    cont = Head(feat, 1, model.units, model.layers, model.act, model.norm) if model.cont else None
    return exported_policy(MPCPolicy(encoder, rssm, reward, cont, layout, spec, planner), data, model, device)
