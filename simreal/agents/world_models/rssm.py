"""The recurrent state-space model (RSSM) shared by every world-model agent.

The latent state is a dict of tensors with a leading batch shape:

- ``deter``: the deterministic GRU state ``h`` (..., deter)
- ``stoch``: the stochastic state ``z``: one-hot categoricals (..., stoch, classes)
  with straight-through gradients (V2, V3) or a Gaussian sample (..., stoch) (V1)
- the statistics ``z`` was drawn from: ``logits`` (discrete) or ``mean`` and ``std``

One step::

    prior:     h_t = GRU(h_{t-1}, MLP([z_{t-1}, a_{t-1}]));  z_t ~ p(z_t | h_t)
    posterior: z_t ~ q(z_t | h_t, embed(o_t))

``observe`` filters a sequence (posterior and prior at every step, with the
state and previous action reset where ``is_first``); ``img_step`` predicts
without observations (imagination, open-loop prediction). Actions are
scaled by ``1 / max(1, |a|)`` on the way in, so unclipped actor samples stay
in the range the model was trained on.
"""

from __future__ import annotations

import torch
from torch import nn

from simreal.agents.world_models.config import RSSMConfig
from simreal.agents.world_models.distributions import OneHotCategorical, kl_categorical, kl_gaussian, unimix_logits
from simreal.agents.world_models.nets import LayerNormGRUCell, mlp

Tensor = torch.Tensor
State = dict[str, Tensor]


class RSSM(nn.Module):
    def __init__(self, action_dim: int, embed_dim: int, cfg: RSSMConfig, act: str, norm: bool):
        super().__init__()
        self.cfg = cfg
        self.discrete = cfg.dist == "discrete"
        self.stoch_dim = cfg.stoch * cfg.classes if self.discrete else cfg.stoch
        stats_dim = self.stoch_dim if self.discrete else 2 * cfg.stoch
        self.img_in = mlp(self.stoch_dim + action_dim, cfg.hidden, 1, act, norm)
        if cfg.gru == "layernorm":
            self.gru = LayerNormGRUCell(cfg.hidden, cfg.deter)
        else:
            self.gru = nn.GRUCell(cfg.hidden, cfg.deter)
        self.img_out = mlp(cfg.deter, cfg.hidden, 1, act, norm)
        self.prior_stats = nn.Linear(cfg.hidden, stats_dim)
        self.obs_out = mlp(cfg.deter + embed_dim, cfg.hidden, 1, act, norm)
        self.post_stats = nn.Linear(cfg.hidden, stats_dim)
        if cfg.initial == "learned":
            self.initial_deter = nn.Parameter(torch.zeros(cfg.deter))

    # ------------------------------------------------------------ shapes
    @property
    def feat_dim(self) -> int:
        return self.cfg.deter + self.stoch_dim

    def feat(self, state: State) -> Tensor:
        """Model features ``[h, flatten(z)]`` (what heads, decoder and actor read)."""
        stoch = state["stoch"]
        if self.discrete:
            stoch = stoch.reshape(*stoch.shape[:-2], self.stoch_dim)
        return torch.cat([state["deter"], stoch], -1)

    # ------------------------------------------------------------ distributions
    def _stats(self, raw: Tensor) -> State:
        if self.discrete:
            logits = raw.reshape(*raw.shape[:-1], self.cfg.stoch, self.cfg.classes)
            return {"logits": logits}
        mean, std = raw.chunk(2, -1)
        return {"mean": mean, "std": nn.functional.softplus(std) + self.cfg.min_std}

    def _draw(self, stats: State, sample: bool) -> Tensor:
        if self.discrete:
            dist = OneHotCategorical(stats["logits"], self.cfg.unimix)
            return dist.rsample() if sample else dist.mode()
        if not sample:
            return stats["mean"]
        return stats["mean"] + stats["std"] * torch.randn_like(stats["std"])

    def kl(self, lhs: State, rhs: State) -> Tensor:
        """KL(lhs || rhs) of the latent distributions, summed over latents (unimix applied)."""
        if self.discrete:
            return kl_categorical(unimix_logits(lhs["logits"], self.cfg.unimix),
                                  unimix_logits(rhs["logits"], self.cfg.unimix))
        return kl_gaussian(lhs["mean"], lhs["std"], rhs["mean"], rhs["std"])

    def detach(self, state: State) -> State:
        return {k: v.detach() for k, v in state.items()}

    def entropy(self, state: State) -> Tensor:
        if self.discrete:
            return OneHotCategorical(state["logits"], self.cfg.unimix).entropy()
        return (0.5 + 0.5 * torch.log(2 * torch.pi * state["std"] ** 2)).sum(-1)

    # ------------------------------------------------------------ steps
    def initial(self, batch: int, device: torch.device | None = None) -> State:
        """The state before the first observation of an episode (zeros, or V3's learned ``h_0``)."""
        device = device or self.prior_stats.weight.device
        if self.cfg.initial == "learned":
            deter = torch.tanh(self.initial_deter)[None]
            stats = self._stats(self.prior_stats(self.img_out(deter)))
            state = {"deter": deter, "stoch": self._draw(stats, sample=False), **stats}
            return {k: v.expand(batch, *v.shape[1:]) for k, v in state.items()}
        deter = torch.zeros(batch, self.cfg.deter, device=device)
        if self.discrete:
            zeros = torch.zeros(batch, self.cfg.stoch, self.cfg.classes, device=device)
            return {"deter": deter, "stoch": zeros, "logits": zeros}
        zeros = torch.zeros(batch, self.cfg.stoch, device=device)
        return {"deter": deter, "stoch": zeros, "mean": zeros, "std": torch.ones_like(zeros)}

    def reset(self, state: State, action: Tensor, is_first: Tensor) -> tuple[State, Tensor]:
        """State and previous action with the rows where ``is_first`` replaced by the initial ones.

        Branch-free (a mask, applied to every row) so it compiles into one graph."""
        keep = (~is_first).to(action.dtype)
        init = self.initial(action.shape[0], action.device)
        out = {}
        for key, value in state.items():
            mask = keep.reshape(-1, *([1] * (value.dim() - 1)))
            out[key] = value * mask + init[key] * (1 - mask)
        return out, action * keep[:, None]

    def img_step(self, prev: State, prev_action: Tensor, sample: bool = True, draw: bool = True) -> State:
        """Prior of the next state given the previous state and action (``draw=False``: statistics only,
        ``stoch`` left out)."""
        prev_action = prev_action / torch.clamp(prev_action.abs(), min=1.0).detach()
        stoch = prev["stoch"]
        if self.discrete:
            stoch = stoch.reshape(*stoch.shape[:-2], self.stoch_dim)
        x = self.img_in(torch.cat([stoch, prev_action], -1))
        deter = self.gru(x, prev["deter"])
        stats = self._stats(self.prior_stats(self.img_out(deter)))
        if not draw:
            return {"deter": deter, **stats}
        return {"deter": deter, "stoch": self._draw(stats, sample), **stats}

    def obs_step(self, prev: State, prev_action: Tensor, embed: Tensor, is_first: Tensor | None = None,
                 sample: bool = True) -> tuple[State, State]:
        """(posterior, prior) after observing ``embed``; rows where ``is_first`` start from the initial state.

        The prior holds ``deter`` and its statistics (no sample: nothing reads it)."""
        if is_first is not None:
            prev, prev_action = self.reset(prev, prev_action, is_first)
        prior = self.img_step(prev, prev_action, sample, draw=False)
        stats = self._stats(self.post_stats(self.obs_out(torch.cat([prior["deter"], embed], -1))))
        post = {"deter": prior["deter"], "stoch": self._draw(stats, sample), **stats}
        return post, prior

    def observe(self, embed: Tensor, action: Tensor, is_first: Tensor,
                state: State | None = None) -> tuple[State, State]:
        """Filter a (batch, time) sequence; ``action[:, t]`` is the action that led to observation t.

        Returns (posterior, prior) dicts of (batch, time, ...) tensors.
        """
        batch, length = embed.shape[:2]
        if state is None:
            state = self.initial(batch, embed.device)
        posts, priors = [], []
        for t in range(length):
            state, prior = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
            posts.append(state)
            priors.append(prior)
        return _stack(posts), _stack(priors)

    def imagine_actions(self, state: State, actions: Tensor) -> State:
        """Open-loop priors for a (batch, time) sequence of actions from ``state`` (time-stacked)."""
        priors = []
        for t in range(actions.shape[1]):
            state = self.img_step(state, actions[:, t])
            priors.append(state)
        return _stack(priors)


def _stack(states: list[State]) -> State:
    return {key: torch.stack([s[key] for s in states], 1) for key in states[0]}


def flatten_batch(state: State) -> State:
    """(batch, time, ...) -> (batch * time, ...) for every entry."""
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in state.items()}
