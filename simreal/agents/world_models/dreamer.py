"""Dreamer (V1, V2, V3 by config): a `WorldModel` plus an `ActorCritic` trained in imagination.

`Dreamer.train_step(batch)` is one gradient update of all three parts:

1. world model on the replay batch (reconstruction, reward, continue, KL);
2. imagination from every posterior state (world model and critic frozen),
   actor loss (dynamics backpropagation and/or REINFORCE), actor step;
3. critic on the detached imagined states and returns, critic step, slow critic update.

`LatentPolicy` is the acting part (encoder, RSSM, actor) with the recurrent
state passed explicitly; it is what gets exported for rigs, and
`policy_from_export` rebuilds it from the export without trainer or env.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.behavior import ActorCritic, freeze
from simreal.agents.world_models.config import BehaviorConfig, ModelConfig, as_dict, build
from simreal.agents.world_models.nets import MultiEncoder, ObsLayout, preprocess
from simreal.agents.world_models.prediction import decoder_weights, load_decoder, open_loop_error, split_decoder
from simreal.agents.world_models.rssm import RSSM, State, flatten_batch
from simreal.agents.world_models.world_model import Batch, WorldModel
from simreal.utils.finite import NonFiniteError, fmt

AGENT_NAME = "dreamer"
Tensor = torch.Tensor


# A loss or gradient norm became NaN or inf: the one non-finite error of every trainer (the old name).
TrainingDiverged = NonFiniteError


class Optimizer:
    """Adam (AdamW with weight decay) over a parameter list, with global-norm gradient clipping."""

    def __init__(self, name: str, params, lr: float, eps: float, clip: float, weight_decay: float):
        self.name = name
        self.params = [p for p in params if p.requires_grad]
        if weight_decay > 0:
            self.opt = torch.optim.AdamW(self.params, lr=lr, eps=eps, weight_decay=weight_decay)
        else:
            self.opt = torch.optim.Adam(self.params, lr=lr, eps=eps)
        self.clip = clip

    def step(self, loss: Tensor) -> Tensor:
        """Backpropagate ``loss`` and step; raises `NonFiniteError` before touching weights if non-finite
        (the message names the loss; the trainer adds where)."""
        if not torch.isfinite(loss):
            raise NonFiniteError(f"{self.name} loss is {fmt(loss.detach())}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.params, self.clip if self.clip > 0 else math.inf)
        if not torch.isfinite(norm):
            raise NonFiniteError(f"{self.name} gradient norm is {fmt(norm)}")
        self.opt.step()
        return norm.detach()


class LatentPolicy(nn.Module):
    """Encoder + RSSM filter + actor: ``act(obs, state) -> (action, state)`` on torch tensors.

    ``state`` holds the latent (``deter``, ``stoch`` and its statistics) and
    the previous model action ``action``.
    """

    def __init__(self, encoder: MultiEncoder, rssm: RSSM, actor: nn.Module, layout: ObsLayout, spec: ActionSpec,
                 expl_noise: float = 0.0):
        super().__init__()
        self.encoder, self.rssm, self.actor = encoder, rssm, actor
        self.layout, self.spec, self.expl_noise = layout, spec, expl_noise

    def initial_state(self, batch: int) -> State:
        state = self.rssm.initial(batch)
        device = state["deter"].device
        return {**{k: v.detach().clone() for k, v in state.items()},
                "action": torch.zeros(batch, self.spec.dim, device=device)}

    def reset_state(self, state: State, done: Tensor) -> State:
        """Rows where ``done`` go back to the initial state (the next observation starts an episode)."""
        if not bool(done.any()):
            return state
        init = self.initial_state(done.shape[0])
        keep = ~done
        return {k: torch.where(keep.reshape(-1, *([1] * (v.dim() - 1))), v, init[k]) for k, v in state.items()}

    @torch.no_grad()
    def act(self, obs: Mapping[str, Tensor], state: State, explore: bool) -> tuple[Tensor, State]:
        embed = self.encoder(preprocess(obs, self.layout))
        latent = {k: v for k, v in state.items() if k != "action"}
        post, _ = self.rssm.obs_step(latent, state["action"], embed, sample=explore)
        dist = self.actor.dist(self.actor(self.rssm.feat(post)))
        action = dist.rsample() if explore else dist.mode()
        action = action.reshape(action.shape[0], self.spec.dim)
        if not self.spec.discrete:
            if explore and self.expl_noise > 0:
                action = action + self.expl_noise * torch.randn_like(action)
            action = action.clamp(-1.0, 1.0)
        return action, {**post, "action": action}


class Dreamer(nn.Module):
    def __init__(self, layout: ObsLayout, spec: ActionSpec, model: ModelConfig, behavior: BehaviorConfig,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.layout, self.spec = layout, spec
        self.model_cfg, self.behavior_cfg = model, behavior
        self.wm = WorldModel(layout, spec.dim, model)
        self.behavior = ActorCritic(self.wm.rssm.feat_dim, spec, behavior, model.act, model.norm)
        # Not a registered submodule: it shares the encoder, RSSM and actor above, and
        # registering it would store their weights twice in state_dict().
        object.__setattr__(self, "policy", LatentPolicy(self.wm.encoder, self.wm.rssm, self.behavior.actor,
                                                        layout, spec, behavior.actor.expl_noise))
        self.to(device)
        self.device = torch.device(device)
        m, a, c = model.opt, behavior.actor.opt, behavior.critic.opt
        self.optimizers = {
            "model": Optimizer("world-model", self.wm.parameters(), m.lr, m.eps, m.clip, m.weight_decay),
            "actor": Optimizer("actor", self.behavior.actor.parameters(), a.lr, a.eps, a.clip, a.weight_decay),
            "critic": Optimizer("critic", self.behavior.critic.parameters(), c.lr, c.eps, c.clip, c.weight_decay),
        }

    # ------------------------------------------------------------ learning
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One update of world model, actor and critic; metrics as floats."""
        post, metrics = self.model_step(batch)
        metrics.update(self.behavior_step(batch, post))
        return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}

    def model_step(self, batch: Batch) -> tuple[State, dict[str, Any]]:
        """One world-model update; (posterior states of the batch, metrics). Agents on the core
        that learn their model differently (Dreaming) override this and keep the behavior half."""
        wm_loss, post, metrics = self.wm.loss(batch)
        metrics["train/grad_norm_model"] = self.optimizers["model"].step(wm_loss)
        return post, metrics

    def behavior_step(self, batch: Batch, post: State) -> dict[str, Any]:
        """One actor and critic update on trajectories imagined from the batch's posterior states."""
        metrics: dict[str, Any] = {}
        start = flatten_batch(self.wm.rssm.detach(post))
        start_cont = (~batch.is_terminal).float().reshape(-1)
        restore = freeze(self.wm, self.behavior.critic)
        try:
            traj = self.behavior.imagine(self.wm, start, self.behavior_cfg.horizon)
            targets = self.behavior.targets(self.wm, traj, start_cont)
            actor_loss, actor_metrics = self.behavior.actor_loss(traj, targets)
        finally:
            restore()
        metrics.update(actor_metrics)
        metrics["train/grad_norm_actor"] = self.optimizers["actor"].step(actor_loss)

        critic_loss, critic_metrics = self.behavior.critic_loss(traj, targets)
        metrics.update(critic_metrics)
        metrics["train/grad_norm_critic"] = self.optimizers["critic"].step(critic_loss)
        self.behavior.update_slow_critic()
        return metrics

    # ------------------------------------------------------------ acting (numpy in, numpy out)
    def obs_to_tensors(self, obs: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.layout.keys}

    # ------------------------------------------------------------ state
    def training_state(self) -> dict[str, Any]:
        """Weights, optimizer moments and counters as plain tensors (weights_only-loadable)."""
        return {"modules": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                "optimizers": {k: o.opt.state_dict() for k, o in self.optimizers.items()}}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for key, opt in self.optimizers.items():
            opt.opt.load_state_dict(state["optimizers"][key])

    def export_config(self) -> dict:
        return {"model": as_dict(self.model_cfg), "behavior": as_dict(self.behavior_cfg),
                "keys": list(self.layout.keys)}


# ------------------------------------------------------------------ export
def export_policy(path, agent: Dreamer, observation_space, action_space, extra: Mapping | None = None):
    """Write the acting part of ``agent`` with `simreal.training.export.save_export` (agent name ``dreamer``)."""
    import gymnasium as gym

    from simreal.training.export import save_export

    obs_space = gym.spaces.Dict({k: observation_space.spaces[k] for k in agent.layout.keys})
    # the decoder rides along (not used to act) so that rigs can measure the model's prediction error
    weights = {**agent.policy.state_dict(), **decoder_weights(agent.wm.decoder)}
    return save_export(path, AGENT_NAME, agent.export_config(), obs_space, action_space, weights, extra)


class ExportedPolicy:
    """A `simreal.agents.Policy` over numpy arrays, around a `LatentPolicy`."""

    def __init__(self, policy: LatentPolicy, observation_space, action_space, device: torch.device,
                 decoder: nn.Module | None = None):
        self.policy, self.device, self.decoder = policy, device, decoder
        self.observation_space, self.action_space = observation_space, action_space

    def prediction_error(self, episodes, context: int = 5, horizon: int = 45) -> float | None:
        """Open-loop prediction error on recorded episodes (see `prediction.open_loop_error`);
        None for an export without its decoder or episodes shorter than context + horizon."""
        if self.decoder is None:
            return None
        p = self.policy
        return open_loop_error(p.encoder, p.rssm, self.decoder, p.layout, p.spec, episodes, context, horizon,
                               self.device)

    def initial_state(self, batch_size: int) -> State:
        return self.policy.initial_state(batch_size)

    def act(self, obs: dict[str, np.ndarray], state: State, deterministic: bool = True) -> tuple[np.ndarray, State]:
        tensors = {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.policy.layout.keys}
        action, state = self.policy.act(tensors, state, explore=not deterministic)
        return self.policy.spec.to_env(action.cpu().numpy()), state

    def reset_state(self, state: State, done: np.ndarray) -> State:
        return self.policy.reset_state(state, torch.as_tensor(np.asarray(done, bool), device=self.device))


def export_parts(data: Mapping[str, Any]) -> tuple[ModelConfig, ObsLayout, ActionSpec, MultiEncoder, RSSM]:
    """What every RSSM agent's export rebuilds first: its model config, layout, action spec, encoder and RSSM."""
    cfg = data["config"]
    model = build(ModelConfig, cfg["model"], "export config model")
    layout = ObsLayout.from_space(data["observation_space"], cfg["keys"])
    spec = ActionSpec.from_space(data["action_space"], "one_hot")
    encoder = MultiEncoder(layout, model.units, model.layers, model.cnn_depth, model.act, model.norm,
                           model.symlog_inputs)
    return model, layout, spec, encoder, RSSM(spec.dim, encoder.out_dim, model.rssm, model.act, model.norm)


def exported_policy(policy: LatentPolicy, data: Mapping[str, Any], model: ModelConfig,
                    device: str) -> ExportedPolicy:
    """``policy`` loaded with the export's weights, on ``device``, with the decoder when the export has one
    (exports from before the decoder rode along act the same, without prediction error)."""
    weights, decoder_state = split_decoder(data["weights"])
    policy.load_state_dict(weights)
    device = torch.device(device)
    policy.to(device).eval()
    decoder = load_decoder(decoder_state, policy.rssm.feat_dim, policy.layout, model, device)
    return ExportedPolicy(policy, data["observation_space"], data["action_space"], device, decoder)


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> ExportedPolicy:
    """Rebuild the exported Dreamer policy (network code only: no trainer, no env)."""
    from simreal.agents.world_models.behavior import Actor

    model, layout, spec, encoder, rssm = export_parts(data)
    behavior = build(BehaviorConfig, data["config"]["behavior"], "export config behavior")
    actor = Actor(rssm.feat_dim, spec, behavior.actor, behavior.units, behavior.layers, model.act, model.norm)
    return exported_policy(LatentPolicy(encoder, rssm, actor, layout, spec), data, model, device)
