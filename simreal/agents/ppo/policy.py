"""Networks of recurrent PPO: an LSTM actor on what the robot measures, a critic on the privileged state.

Both networks read one flat vector each: the actor the concatenated actor keys
(``fingertip_pos``, ``object_quat``, ... never ``state``), the critic its keys
(``state`` when the env has it). Each network normalizes its own input with
running statistics that are part of its ``state_dict`` (so checkpoints and
exports carry them).

::

    actor:  obs -> normalize -> dense (ReLU) -> LSTM (or dense, feed-forward) -> action head
    critic: state -> normalize -> MLP -> value          (or dense -> LSTM -> value)

Dactyl's policy has the same shape (OpenAI et al. 2018, "Learning Dexterous
In-Hand Manipulation": a fully connected ReLU layer, then an LSTM). During
collection the LSTM runs one step at a time as an ``lstm_cell`` with the same
weights; updates replay whole sequences with ``nn.LSTM`` (see buffer.py).
Sequences are time-major: ``(L, B, ...)``. Recurrent
state is passed explicitly: ``(h, c)`` for an LSTM, ``()`` for a feed-forward
core.

Action heads: a Gaussian with a state-independent log-std for ``Box`` spaces
(samples are clipped to [-1, 1] and mapped onto the bounds only when sent to
the env, the log-probability is the unclipped sample's), one categorical per
dimension for ``MultiDiscrete`` (Dactyl's 11 bins per actuator) and
``Discrete`` spaces.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec

State = tuple[torch.Tensor, ...]  # (h, c) of an LSTM, () for a feed-forward core

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


@dataclasses.dataclass
class PolicyConfig:
    """Network sizes (the ``policy`` section of the config)."""

    recurrent: bool = True          # LSTM actor; False: the feed-forward variant (a second dense layer)
    dense: int = 256                # the dense layer before the LSTM
    lstm: int = 256                 # LSTM hidden size (the feed-forward variant's second layer)
    activation: str = "relu"        # relu | tanh | elu
    init_log_std: float = -0.5      # Gaussian heads: initial log standard deviation
    critic_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    critic_recurrent: bool = False  # True: the critic is dense -> LSTM(lstm) as well

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"policy.activation: expected one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        for name in ("dense", "lstm"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"policy.{name}: expected a size >= 1, got {getattr(self, name)}")
        if not self.critic_recurrent and (not self.critic_hidden or min(self.critic_hidden) < 1):
            raise ValueError(f"policy.critic_hidden: expected a list of sizes >= 1, got {self.critic_hidden}")


# --------------------------------------------------------------------------- normalizer
class RunningNormalizer(nn.Module):
    """Running mean and variance of a vector (Chan et al.'s parallel update, float64); normalizes and clips.

    ``enabled=False`` makes it the identity (statistics are still kept).
    """

    def __init__(self, size: int, clip: float = 10.0, enabled: bool = True, eps: float = 1e-8):
        super().__init__()
        self.size, self.clip, self.enabled, self.eps = int(size), float(clip), bool(enabled), float(eps)
        self.register_buffer("mean", torch.zeros(self.size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.size, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        # float32 copies used by forward, recomputed after every update or load
        self.register_buffer("_shift", torch.zeros(self.size), persistent=False)
        self.register_buffer("_scale", torch.ones(self.size), persistent=False)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``(..., size)`` into the statistics."""
        x = x.reshape(-1, self.size).to(self.mean.device, torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * (n / total)
        self.var.copy_((self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)) / total)
        self.count.copy_(total)
        self._refresh()

    def _refresh(self) -> None:
        self._shift.copy_(self.mean.float())
        self._scale.copy_(torch.rsqrt(self.var + self.eps).float())

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    @property
    def std(self) -> torch.Tensor:
        return 1.0 / self._scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return ((x - self._shift) * self._scale).clamp_(-self.clip, self.clip)

    def normalize_unclipped(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._shift) * self._scale if self.enabled else x

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x / self._scale + self._shift if self.enabled else x


# --------------------------------------------------------------------------- action heads
class GaussianHead(nn.Module):
    """Diagonal Gaussian, state-independent log-std. Parameters: the mean ``(..., A)``."""

    kind = "gaussian"
    action_dtype = torch.float32

    def __init__(self, in_size: int, action_size: int, init_log_std: float):
        super().__init__()
        self.action_size = int(action_size)
        self.mean = nn.Linear(in_size, action_size)
        nn.init.orthogonal_(self.mean.weight, 0.01)
        nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.full((action_size,), float(init_log_std)))

    @property
    def action_shape(self) -> tuple[int, ...]:
        return (self.action_size,)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mean(h)

    def sample(self, mean: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(mean, self.log_std.exp(), torch.randn_like(mean))

    def sample_with_log_prob(self, mean: torch.Tensor, noise: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sample and its log-probability (from the standard-normal noise directly; ``noise``: given draws)."""
        noise = torch.randn_like(mean) if noise is None else noise
        action = torch.addcmul(mean, self.log_std.exp(), noise)
        return action, -0.5 * noise.square().sum(-1) - (self.log_std.sum() + self._log_norm)

    @property
    def _log_norm(self) -> float:
        return 0.5 * math.log(2 * math.pi) * self.action_size

    def mode(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z = (action - mean) * torch.exp(-self.log_std)
        return -0.5 * z.square().sum(-1) - (self.log_std.sum() + self._log_norm)

    def entropy(self, mean: torch.Tensor) -> torch.Tensor:
        value = self.log_std.sum() + 0.5 * (1.0 + math.log(2 * math.pi)) * self.action_size
        return value.expand(mean.shape[:-1])


class CategoricalHead(nn.Module):
    """One categorical per action dimension. Parameters: normalized log-probabilities ``(..., D, K)``."""

    kind = "categorical"
    action_dtype = torch.int64

    def __init__(self, in_size: int, nvec: Sequence[int]):
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.dims, self.bins = len(self.nvec), max(self.nvec)
        self.logits = nn.Linear(in_size, self.dims * self.bins)
        nn.init.orthogonal_(self.logits.weight, 0.01)
        nn.init.zeros_(self.logits.bias)
        invalid = torch.arange(self.bins)[None, :] >= torch.tensor(self.nvec)[:, None]
        self.ragged = bool(invalid.any())
        self.register_buffer("_invalid", invalid, persistent=False)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return (self.dims,)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.logits(h).unflatten(-1, (self.dims, self.bins))
        if self.ragged:  # finite, so 0 * log p stays 0 in the entropy
            logits = logits.masked_fill(self._invalid, -1e9)
        return logits.log_softmax(-1)

    def sample(self, logp: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        # Gumbel-max: argmax(log p - log E), E ~ Exp(1) (``noise``: given draws of E)
        noise = torch.empty_like(logp).exponential_() if noise is None else noise
        return (logp - noise.log()).argmax(-1)

    def sample_with_log_prob(self, logp: torch.Tensor, noise: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        action = self.sample(logp, noise)
        return action, self.log_prob(logp, action)

    def mode(self, logp: torch.Tensor) -> torch.Tensor:
        return logp.argmax(-1)

    def log_prob(self, logp: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return logp.gather(-1, action.unsqueeze(-1)).squeeze(-1).sum(-1)

    def entropy(self, logp: torch.Tensor) -> torch.Tensor:
        return -(logp.exp() * logp).sum((-1, -2))


def make_head(spec: ActionSpec, in_size: int, init_log_std: float) -> nn.Module:
    """The policy head for an action space: Gaussian over unit values, or one categorical per dimension."""
    if spec.discrete:
        return CategoricalHead(in_size, spec.nvec)
    return GaussianHead(in_size, spec.dim, init_log_std)


# --------------------------------------------------------------------------- cores
class Core(nn.Module):
    """A dense layer, then an LSTM (or, for the feed-forward variant, a second dense layer)."""

    def __init__(self, in_size: int, dense: int, hidden: int, recurrent: bool, activation: str):
        super().__init__()
        self.recurrent, self.hidden = bool(recurrent), int(hidden)
        self.dense = nn.Linear(in_size, dense)
        self.act = ACTIVATIONS[activation]()
        if self.recurrent:
            self.lstm = nn.LSTM(dense, hidden)
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias"):
                    nn.init.zeros_(p)
                else:
                    nn.init.orthogonal_(p, 1.0)
        else:
            self.ff = nn.Sequential(nn.Linear(dense, hidden), ACTIVATIONS[activation]())

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        if not self.recurrent:
            return ()
        zeros = torch.zeros(1, batch, self.hidden, device=device)
        return (zeros, zeros.clone())

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """``x`` (L, B, in) -> (L, B, hidden); the state is the one before ``x[0]``."""
        y = self.act(self.dense(x))
        if not self.recurrent:
            return self.ff(y), state
        out, (h, c) = self.lstm(y, state)
        return out, (h, c)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step, ``x`` (B, in) -> (B, hidden): an LSTM cell with the LSTM's weights
        (a third cheaper than a length-1 ``nn.LSTM`` call; equal up to float rounding)."""
        y = self.act(self.dense(x))
        if not self.recurrent:
            return self.ff(y), state
        lstm = self.lstm
        h, c = torch.lstm_cell(y, (state[0][0], state[1][0]), lstm.weight_ih_l0, lstm.weight_hh_l0,
                               lstm.bias_ih_l0, lstm.bias_hh_l0)
        return h, (h.unsqueeze(0), c.unsqueeze(0))


def reset_state(state: State, keep: torch.Tensor) -> State:
    """State with the columns where ``keep`` (B,) is 0 zeroed (their episode starts now)."""
    if not state:
        return state
    k = keep.view(1, -1, 1)
    return tuple(s * k for s in state)


def select_state(state: State, columns: torch.Tensor, keep: torch.Tensor) -> State:
    """The state of ``columns`` (S,), zeroed where ``keep`` (S,) is 0."""
    if not state:
        return state
    k = keep.view(1, -1, 1)
    return tuple(s[:, columns] * k for s in state)


class Actor(nn.Module):
    """Normalizer, core, action head: (L, B, obs) -> distribution parameters (L, B, ...).

    ``core_in`` is the core's input size when a subclass feeds it more than the observation (I2A's
    imagination code); default the observation size."""

    def __init__(self, obs_size: int, action: ActionSpec, cfg: PolicyConfig, obs_clip: float = 10.0,
                 normalize: bool = True, core_in: int | None = None):
        super().__init__()
        self.obs_size = int(obs_size)
        self.normalizer = RunningNormalizer(obs_size, obs_clip, normalize)
        self.core = Core(core_in or obs_size, cfg.dense, cfg.lstm, cfg.recurrent, cfg.activation)
        self.head = make_head(action, cfg.lstm, cfg.init_log_std)
        nn.init.orthogonal_(self.core.dense.weight, math.sqrt(2))
        nn.init.zeros_(self.core.dense.bias)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return self.core.initial_state(batch, device)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """``x`` normalized observations (L, B, obs)."""
        h, state = self.core(x, state)
        return self.head(h), state

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step: ``x`` (B, obs) -> parameters (B, ...)."""
        h, state = self.core.step(x, state)
        return self.head(h), state


class Critic(nn.Module):
    """Normalizer and an MLP (or dense -> LSTM): (L, B, obs) -> value in normalized units (L, B)."""

    def __init__(self, obs_size: int, cfg: PolicyConfig, obs_clip: float = 10.0, normalize: bool = True):
        super().__init__()
        self.obs_size = int(obs_size)
        self.normalizer = RunningNormalizer(obs_size, obs_clip, normalize)
        self.recurrent = bool(cfg.critic_recurrent)
        if self.recurrent:
            self.core = Core(obs_size, cfg.dense, cfg.lstm, True, cfg.activation)
            last = cfg.lstm
        else:
            layers: list[nn.Module] = []
            last = obs_size
            for size in cfg.critic_hidden:
                linear = nn.Linear(last, size)
                nn.init.orthogonal_(linear.weight, math.sqrt(2))
                nn.init.zeros_(linear.bias)
                layers += [linear, ACTIVATIONS[cfg.activation]()]
                last = size
            self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(last, 1)
        nn.init.orthogonal_(self.out.weight, 1.0)
        nn.init.zeros_(self.out.bias)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return self.core.initial_state(batch, device) if self.recurrent else ()

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """``x`` normalized observations (L, B, obs) -> values (L, B)."""
        if self.recurrent:
            h, state = self.core(x, state)
        else:
            h = self.mlp(x)
        return self.out(h).squeeze(-1), state

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step: ``x`` (B, obs) -> values (B,)."""
        if self.recurrent:
            h, state = self.core.step(x, state)
        else:
            h = self.mlp(x)
        return self.out(h).squeeze(-1), state


class ActorCritic(nn.Module):
    """The actor, the critic and the value normalizer (returns' running mean and std); ``actor``: an `Actor`
    (subclass) built by the caller, else the standard one."""

    def __init__(self, actor_size: int, critic_size: int, action: ActionSpec, cfg: PolicyConfig,
                 obs_clip: float = 10.0, normalize_observations: bool = True, normalize_values: bool = True,
                 actor: Actor | None = None):
        super().__init__()
        self.actor = actor if actor is not None else Actor(actor_size, action, cfg, obs_clip, normalize_observations)
        self.critic = Critic(critic_size, cfg, obs_clip, normalize_observations)
        self.value_normalizer = RunningNormalizer(1, clip=math.inf, enabled=normalize_values)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> tuple[State, State]:
        return self.actor.initial_state(batch, device), self.critic.initial_state(batch, device)

    def value(self, normalized: torch.Tensor) -> torch.Tensor:
        """Critic output -> value in reward units."""
        return self.value_normalizer.denormalize(normalized.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def step(self, actor_obs: torch.Tensor, critic_obs: torch.Tensor, state: tuple[State, State],
             keep: torch.Tensor, deterministic: bool = False, noise: torch.Tensor | None = None):
        """One collection step for B envs: raw observations (B, ...) -> action, log-prob, value, new state.

        ``keep`` (B,) is 0 where an episode starts at this step (the state is reset first); ``noise``: the
        action head's sampling draws, when given (`simreal.agents.ppo.collect.draw_noise`).
        Also returns the normalized observations (what the buffer stores).
        """
        xa = self.actor.normalizer(actor_obs)
        xc = self.critic.normalizer(critic_obs)
        actor_state, critic_state = reset_state(state[0], keep), reset_state(state[1], keep)
        params, actor_state = self.actor.step(xa, actor_state)
        head = self.actor.head
        if deterministic:
            action = head.mode(params)
            log_prob = head.log_prob(params, action)
        else:
            action, log_prob = head.sample_with_log_prob(params, noise)
        value, critic_state = self.critic.step(xc, critic_state)
        return action, log_prob, self.value(value), (actor_state, critic_state), xa, xc


# --------------------------------------------------------------------------- deployment
class PPOPolicy:
    """An exported PPO actor as a `simreal.agents.Policy`: numpy observations in, env actions out.

    ``state`` is the LSTM's ``(h, c)`` (each ``(1, B, lstm)``) or ``()`` for
    the feed-forward variant; treat it as opaque.
    """

    def __init__(self, actor: Actor, actor_keys: Sequence[str], observation_space: gym.spaces.Dict,
                 action_space: gym.Space, device: torch.device | str = "cpu"):
        self.actor = actor.to(device)
        self.actor_keys = list(actor_keys)
        self.observation_space = observation_space
        self.action_space = action_space
        self.action_spec = ActionSpec.from_space(action_space)
        self.device = torch.device(device)

    def initial_state(self, batch_size: int) -> State:
        return self.actor.initial_state(batch_size, self.device)

    def reset_state(self, state: State, done: np.ndarray) -> State:
        keep = torch.as_tensor(~np.asarray(done, dtype=bool), dtype=torch.float32, device=self.device)
        return reset_state(state, keep)

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], state: State, deterministic: bool = True) -> tuple[np.ndarray, State]:
        flat = flatten_obs(obs, self.actor_keys)
        x = self.actor.normalizer(torch.as_tensor(flat, device=self.device))
        params, state = self.actor.step(x, state)
        head = self.actor.head
        action = head.mode(params) if deterministic else head.sample(params)
        return self.action_spec.to_env(action.cpu().numpy()), state


def flatten_obs(obs: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """The batched float32 vectors of ``keys``, concatenated: (B, total size)."""
    parts = [np.asarray(obs[k], dtype=np.float32) for k in keys]
    parts = [p.reshape(p.shape[0], -1) for p in parts]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def key_sizes(space: gym.spaces.Dict, keys: Sequence[str]) -> int:
    return int(sum(int(np.prod(space[k].shape)) for k in keys))


def network_config(policy: PolicyConfig, actor_keys: Sequence[str], critic_keys: Sequence[str],
                   obs_clip: float, normalize_observations: bool) -> dict[str, Any]:
    """What an export needs to rebuild the actor (plain data)."""
    return {"policy": dataclasses.asdict(policy), "actor_keys": list(actor_keys), "critic_keys": list(critic_keys),
            "obs_clip": float(obs_clip), "normalize_observations": bool(normalize_observations)}


def policy_from_export(data: dict, device: str | torch.device = "cpu") -> PPOPolicy:
    """A `PPOPolicy` from a loaded export (``simreal.training.export.load_export``)."""
    cfg = data["config"]
    policy_cfg = PolicyConfig(**cfg["policy"])
    obs_space, act_space = data["observation_space"], data["action_space"]
    actor = Actor(key_sizes(obs_space, cfg["actor_keys"]), ActionSpec.from_space(act_space), policy_cfg,
                  cfg["obs_clip"], cfg["normalize_observations"])
    actor.load_state_dict(data["weights"])
    return PPOPolicy(actor.eval(), cfg["actor_keys"], obs_space, act_space, device)
