"""TDM's networks, losses, relabelling, replay, model-predictive policy and training loop.

Pong, Gu, Dalal, Levine 2018, "Temporal Difference Models: Model-Free Deep RL for Model-Based Control"
(ICLR 2018, arXiv:1802.09081). The paper's equations are written out where they are implemented.

**The TDM** is a goal- and horizon-conditioned Q-function Q(s, a, s_g, tau): how close to the goal s_g the
agent gets in tau more steps after taking a in s. The paper defines it by the recursion

    Q(s_t, a_t, s_g, tau) = E[ -D(s_{t+1}, s_g) 1[tau = 0] + max_a Q(s_{t+1}, a, s_g, tau - 1) 1[tau != 0] ],

with no discount: the horizon tau plays its part. Here it is **vector-valued** (the paper's vectorized
reward): one entry per goal dimension j with D_j = |f(s')_j - g_j| (f(s) the goal a state achieves,
`simreal.agents.tdm.goals`), and parametrized as the paper does, Q_j = -|g_j - f_j(s, a, g, tau)|: the network
f predicts the goal-space state reached after tau + 1 steps, so Q <= 0 by construction. Its scalar value is
the negative L1 distance, sum_j Q_j. The max over actions is a deterministic actor pi(s, g, tau) trained
DDPG-style (Lillicrap et al. 2015) to maximize the scalar Q, with target networks Q' and pi' (Polyak
averaging). The critic regresses, per dimension, on `tdm_target`:

    y_j = -|f(s')_j - g_j|                              if tau == 0 (or s' ends the episode)
    y_j = Q'_j(s', pi'(s', g, tau - 1), g, tau - 1)     otherwise.

**Relabelling** (the paper's training procedure): every sampled transition gets a new goal, a future state of
its own episode (``replay.future``), a random replayed state (``replay.random``) or else the goal the
episode pursued, and a new horizon tau uniform in [0, ``tdm.tau_max``]; the goal is substituted into the
observation (`goals.Goals.substitute`) and the reward recomputed from the goal spec, never read from the env.

**Acting** (the paper's policy extraction: TDMs act by optimizing Q): for reaching tasks, where the goal is the
task's goal, ``a_t = argmax_a Q(s_t, a, g, tau)``: `TDMPolicy` scores the actor's proposal, ``mpc.local`` Gaussian
perturbations of it and ``mpc.candidates`` uniform actions by the scalar Q and takes the best; tau counts
down from ``mpc.horizon`` to 0 and restarts (and restarts when the desired goal changes: a new episode, or
the hand's next goal). Training collects with the actor plus Gaussian noise (``tdm.noise``), tau counting
down from ``tdm.tau_max``.

**Training** collects ``run.prefill`` env steps of uniform random actions, freezes the networks' input
normalization on them, then does ``run.updates`` updates every ``run.train_every`` env steps. Checkpoints hold
the networks, their targets, both optimizers, the replay and every RNG; a resumed run continues from the last
one with the envs reset and reseeded (the episodes in progress at the crash are lost).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.pets.pets import flatten
from simreal.agents.tdm.goals import Goals, bind_goals
from simreal.agents.world_models.nets import mlp
from simreal.training.config import ConfigError

AGENT_NAME = "tdm"
STD_FLOOR = 1e-2  # of the input and goal normalization: a near-constant entry is not blown up
GOAL_CHANGE = 1e-3  # a desired goal that moves more than this (any entry) is a new goal: the policy's tau restarts


# ------------------------------------------------------------------ config
@dataclasses.dataclass(frozen=True)
class Field:
    """What one config value may be: its type and, for numbers, its bounds (``low`` itself allowed if ``closed``)."""

    kind: type
    low: float = -math.inf
    high: float = math.inf
    closed: bool = True

    def check(self, key: str, value: Any) -> None:
        if self.kind in (bool, str):
            if not isinstance(value, self.kind):
                raise ConfigError(f"{key}: expected {'a boolean' if self.kind is bool else 'a string'}, got {value!r}")
            return
        kinds = (int,) if self.kind is int else (int, float)
        ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
        if not (ok and (value >= self.low if self.closed else value > self.low) and value <= self.high):
            what = "an integer" if self.kind is int else "a finite number"
            span = (f" in {'[' if self.closed else '('}{self.low:g}, {self.high:g}]" if self.high < math.inf else
                    f" {'>=' if self.closed else '>'} {self.low:g}" if self.low > -math.inf else "")
            raise ConfigError(f"{key}: expected {what}{span}, got {value!r}")


COUNT, POSITIVE, SHARE = Field(int, 0), Field(float, 0.0, closed=False), Field(float, 0.0, 1.0)
SCHEMA: dict[str, dict[str, Field]] = {
    "run": {"steps": Field(int, 1), "seed": Field(int), "device": Field(str), "threads": COUNT, "prefill": COUNT,
            "train_every": Field(int, 1), "updates": Field(int, 1), "log_every": COUNT, "eval_every": COUNT,
            "eval_episodes": COUNT, "checkpoint_every": COUNT, "keep_checkpoints": Field(int, 1),
            "tensorboard": Field(bool)},
    "tdm": {"tau_max": COUNT, "hidden": Field(int, 1), "layers": Field(int, 1), "batch": Field(int, 1),
            "critic_lr": POSITIVE, "actor_lr": POSITIVE, "polyak": Field(float, 0.0, 1.0, closed=False),
            "preact_penalty": Field(float, 0.0), "noise": Field(float, 0.0)},
    "mpc": {"horizon": COUNT, "candidates": COUNT, "local": COUNT, "local_std": Field(float, 0.0)},
    "replay": {"capacity": Field(int, 2), "segment": Field(int, 1), "future": SHARE, "random": SHARE},
}
"""Every value of TDM's own sections (their defaults and meanings: configs.yaml)."""


def parse_section(name: str, values: Mapping[str, Any], where: str = "") -> SimpleNamespace:
    """One section of `SCHEMA` as attributes, every key present and checked (``where`` prefixes the key)."""
    fields = SCHEMA[name]
    values = values if isinstance(values, Mapping) else {}
    for problem, keys in (("unknown key", set(values) - set(fields)), ("missing key", set(fields) - set(values))):
        if keys:
            raise ConfigError(f"{where}{name}.{sorted(keys)[0]}: {problem} (known: {', '.join(fields)})")
    for key, field in fields.items():
        field.check(f"{where}{name}.{key}", values[key])
    return SimpleNamespace(**{k: (float(v) if fields[k].kind is float else v) for k, v in values.items()})


def parse_config(cfg: Mapping[str, Any]) -> SimpleNamespace:
    """The ``run``, ``tdm``, ``mpc`` and ``replay`` sections, every value checked, plus the checks across keys
    (a one-line `ConfigError` naming the key)."""
    s = SimpleNamespace(**{name: parse_section(name, cfg.get(name)) for name in SCHEMA})
    if s.replay.future + s.replay.random > 1.0:
        raise ConfigError(f"replay.random: expected at most 1 - replay.future ({1.0 - s.replay.future:g}); the "
                          f"rest are the episode's own goals, got {s.replay.random!r}")
    if s.mpc.horizon > s.tdm.tau_max:
        raise ConfigError(f"mpc.horizon: expected at most tdm.tau_max ({s.tdm.tau_max}), the horizons the TDM "
                          f"learns, got {s.mpc.horizon}")
    if s.replay.segment > s.replay.capacity:
        raise ConfigError(f"replay.segment: expected at most replay.capacity ({s.replay.capacity}), got "
                          f"{s.replay.segment}")
    env = cfg.get("env") or {}
    if env.get("pixels"):
        raise ConfigError("env.pixels: TDM reads vector observations (its goals are slices of them); pixels are "
                          "not supported")
    Field(int, 1).check("env.n_envs", env.get("n_envs", 1))
    return s


# ------------------------------------------------------------------ networks and losses
class TDMNetworks(nn.Module):
    """The critic f(s, a, g, tau) (Q_j = -|g_j - f_j|) and the actor pi(s, g, tau), with the input normalization
    they share (set once from the prefill, then frozen: `set_statistics`)."""

    def __init__(self, obs_dim: int, action_dim: int, goal_dim: int, tau_max: int, hidden: int, layers: int):
        super().__init__()
        self.obs_dim, self.action_dim, self.goal_dim, self.tau_max = obs_dim, action_dim, goal_dim, tau_max
        self.critic = nn.Sequential(mlp(obs_dim + action_dim + goal_dim + 1, hidden, layers, "relu", False),
                                    nn.Linear(hidden, goal_dim))
        self.actor = nn.Sequential(mlp(obs_dim + goal_dim + 1, hidden, layers, "relu", False),
                                   nn.Linear(hidden, action_dim))
        for name, size, fill in (("x_mean", obs_dim, 0.0), ("x_std", obs_dim, 1.0), ("g_mean", goal_dim, 0.0),
                                 ("g_std", goal_dim, 1.0)):
            self.register_buffer(name, torch.full((size,), fill))

    @torch.no_grad()
    def set_statistics(self, x: torch.Tensor, goals: torch.Tensor) -> None:
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(STD_FLOOR))
        self.g_mean.copy_(goals.mean(0))
        self.g_std.copy_(goals.std(0).clamp_min(STD_FLOOR))

    @property
    def scale(self) -> torch.Tensor:
        """The goals' typical spread: distances are divided by it in the losses (task-independent step sizes)."""
        return self.g_std.mean()

    def _inputs(self, x: torch.Tensor, g: torch.Tensor, tau: torch.Tensor) -> list[torch.Tensor]:
        t = tau.to(x.dtype)[:, None] * (2.0 / max(self.tau_max, 1)) - 1.0
        return [(x - self.x_mean) / self.x_std, (g - self.g_mean) / self.g_std, t]

    def q(self, x: torch.Tensor, a: torch.Tensor, g: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """(n, goal_dim): the vector TDM, -|g - f(s, a, g, tau)| per goal dimension."""
        nx, ng, t = self._inputs(x, g, tau)
        f = self.g_mean + self.g_std * self.critic(torch.cat([nx, a, ng, t], -1))
        return -(g - f).abs()

    def act(self, x: torch.Tensor, g: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pi(s, g, tau) in [-1, 1] (tanh) and its pre-activation."""
        pre = self.actor(torch.cat(self._inputs(x, g, tau), -1))
        return torch.tanh(pre), pre


def scalar_value(q: torch.Tensor) -> torch.Tensor:
    """The TDM's scalar value: the negative L1 distance, sum_j Q_j (the vector's last axis)."""
    return q.sum(-1)


def distance_reward(achieved_next, goal):
    """The vectorized reward -|f(s')_j - g_j| (numpy or torch; per goal dimension)."""
    return -abs(achieved_next - goal)


def tdm_target(reward: torch.Tensor, q_next: torch.Tensor, tau: torch.Tensor, terminal: torch.Tensor) -> torch.Tensor:
    """The per-dimension TDM target: ``reward`` (-|f(s') - g|) where tau == 0 or s' ended the episode (an
    absorbing state stays where it is), else ``q_next`` = Q'(s', pi'(s', g, tau - 1), g, tau - 1)."""
    stop = (tau == 0) | terminal.bool()
    return torch.where(stop[:, None], reward, q_next)


def critic_loss(q: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean squared TD error over the batch and the goal dimensions, distances in units of ``scale``."""
    return ((q - target) / scale).pow(2).mean()


def actor_loss(q: torch.Tensor, pre: torch.Tensor, scale: torch.Tensor | float = 1.0,
               penalty: float = 0.0) -> torch.Tensor:
    """-scalar Q of the actor's actions (in units of ``scale``), plus ``penalty`` x the squared pre-activation
    summed over the action and averaged over the batch (keeps the tanh out of saturation)."""
    return -(scalar_value(q) / scale).mean() + penalty * pre.pow(2).sum(-1).mean()


def soft_update(target: nn.Module, source: nn.Module, polyak: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, polyak)
        for t, s in zip(target.buffers(), source.buffers()):
            t.copy_(s)


@torch.no_grad()
def bootstrap_target(target: TDMNetworks, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """`tdm_target` of a relabelled batch: the target networks evaluated at (s', pi'(s', g, tau - 1), g, tau - 1)."""
    x2, g, tau = batch["x2"], batch["g"], batch["tau"]
    before = (tau - 1).clamp_min(0)  # tau == 0 rows take the reward; their bootstrap is discarded
    return tdm_target(batch["reward"], target.q(x2, target.act(x2, g, before)[0], g, before), tau, batch["terminal"])


def tdm_update(nets: TDMNetworks, target: TDMNetworks, critic_opt, actor_opt, batch: Mapping[str, torch.Tensor],
               cfg: SimpleNamespace) -> dict[str, float]:
    """One critic step on `tdm_target`, one actor step on `actor_loss`, one Polyak step of the targets."""
    x, a, g, tau = batch["x"], batch["a"], batch["g"], batch["tau"]
    y = bootstrap_target(target, batch)
    scale = nets.scale
    q = nets.q(x, a, g, tau)
    c_loss = critic_loss(q, y, scale)
    if not torch.isfinite(c_loss):
        raise FloatingPointError(f"tdm: the critic loss is {float(c_loss)}")
    critic_opt.zero_grad(set_to_none=True)
    c_loss.backward()
    critic_opt.step()
    nets.critic.requires_grad_(False)  # the actor's step moves the actor only
    try:
        pi, pre = nets.act(x, g, tau)
        a_loss = actor_loss(nets.q(x, pi, g, tau), pre, scale, cfg.preact_penalty)
        if not torch.isfinite(a_loss):
            raise FloatingPointError(f"tdm: the actor loss is {float(a_loss)}")
        actor_opt.zero_grad(set_to_none=True)
        a_loss.backward()
        actor_opt.step()
    finally:
        nets.critic.requires_grad_(True)
    soft_update(target, nets, cfg.polyak)
    return {"train/critic_loss": c_loss.item(), "train/actor_loss": a_loss.item(),
            "train/q_value": scalar_value(q.detach()).mean().item(),
            "train/target_value": scalar_value(y).mean().item()}


# ------------------------------------------------------------------ replay and relabelling
class SegmentReplay:
    """Transitions (x, unit action, x', terminal) in a ring, written a segment at a time: a whole episode, or
    ``replay.segment`` steps of a longer one. Each slot keeps its absolute index and the absolute index of its
    segment's last transition, so the states after it in the same episode are known (`future`)."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int):
        self.capacity, self.written = capacity, 0
        self.data = {"x": np.zeros((capacity, obs_dim), np.float32), "a": np.zeros((capacity, action_dim), np.float32),
                     "x2": np.zeros((capacity, obs_dim), np.float32), "terminal": np.zeros(capacity, bool),
                     "index": np.zeros(capacity, np.int64), "end": np.zeros(capacity, np.int64)}

    @property
    def size(self) -> int:
        return min(self.written, self.capacity)

    def add_segment(self, x: np.ndarray, a: np.ndarray, x2: np.ndarray, terminal: np.ndarray) -> None:
        """Consecutive transitions of one episode (rows in time order), overwriting the oldest when full."""
        n = len(x)
        index = self.written + np.arange(n)
        slots = index % self.capacity
        for key, value in (("x", x), ("a", a), ("x2", x2), ("terminal", terminal), ("index", index)):
            self.data[key][slots] = value
        self.data["end"][slots] = self.written + n - 1
        self.written += n

    def future(self, slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each slot, a uniformly drawn slot of the same segment at or after it (whose x' is a future state)."""
        first, last = self.data["index"][slots], self.data["end"][slots]
        return (first + (rng.random(len(slots)) * (last - first + 1)).astype(np.int64)) % self.capacity

    def state_dict(self) -> dict:
        return {"written": self.written, **{k: torch.from_numpy(v[:self.size].copy()) for k, v in self.data.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        self.written = int(state["written"])
        for key, value in self.data.items():
            value[:self.size] = state[key].numpy()


def relabel(replay: SegmentReplay, goals: Goals, batch: int, tau_max: int, future: float, random: float,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A minibatch with relabelled goals and horizons (see the module docstring); ``future`` and ``random`` are
    the shares of future-state and random-state goals, the rest keep the episode's goal."""
    slots = rng.integers(replay.size, size=batch)
    d = replay.data
    x, x2 = d["x"][slots], d["x2"][slots]
    goal = goals.desired(x)
    u = rng.random(batch)
    from_future, from_random = u < future, (u >= future) & (u < future + random)
    goal[from_future] = goals.achieved(d["x2"][replay.future(slots[from_future], rng)])
    goal[from_random] = goals.achieved(d["x2"][rng.integers(replay.size, size=int(from_random.sum()))])
    return {"x": goals.substitute(x, goal), "a": d["a"][slots], "x2": goals.substitute(x2, goal), "g": goal,
            "tau": rng.integers(0, tau_max + 1, size=batch), "terminal": d["terminal"][slots],
            "reward": distance_reward(goals.achieved(x2), goal).astype(np.float32)}


# ------------------------------------------------------------------ acting
class TDMPolicy:
    """Acting by optimizing Q (the `simreal.agents.Policy` protocol): state = each copy's tau and last goal.

    Each step scores the actor's proposal pi(s, g, tau), ``mpc.local`` Gaussian perturbations of it (std
    ``mpc.local_std``) and ``mpc.candidates`` uniform actions by the scalar Q(s, a, g, tau) and takes the best;
    tau then counts down to 0 and restarts at ``mpc.horizon``, and restarts whenever the desired goal changes.
    ``deterministic=False`` adds Gaussian noise of std ``noise`` to the chosen action (training's exploration).
    """

    def __init__(self, nets: TDMNetworks, goals: Goals, mpc: SimpleNamespace, observation_space, action_space,
                 seed: int = 0, device: str | torch.device = "cpu", noise: float = 0.0):
        self.nets, self.goals, self.mpc, self.noise = nets, goals, mpc, noise
        self.observation_space, self.action_space = observation_space, action_space
        self.actions = ActionSpec.from_space(action_space)
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(int(seed))

    def initial_state(self, batch_size: int) -> dict[str, np.ndarray]:
        return {"tau": np.full(batch_size, self.mpc.horizon, np.int64),
                "goal": np.full((batch_size, self.goals.dim), np.nan, np.float32)}

    def reset_state(self, state: Mapping[str, np.ndarray], done: np.ndarray) -> dict[str, np.ndarray]:
        done = np.asarray(done, bool)
        return {"tau": np.where(done, self.mpc.horizon, state["tau"]),
                "goal": np.where(done[:, None], np.nan, state["goal"]).astype(np.float32)}

    @torch.no_grad()
    def choose(self, x: np.ndarray, goal: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """(n, action) in [-1, 1]: the best of the candidates by the scalar Q."""
        nets, mpc, device = self.nets, self.mpc, self.device
        x_t, g_t = torch.as_tensor(x, device=device), torch.as_tensor(goal, device=device)
        tau_t = torch.as_tensor(tau, device=device)
        proposal = nets.act(x_t, g_t, tau_t)[0].cpu()
        n, dim = proposal.shape
        options = [proposal[:, None]]
        if mpc.local:
            noise = torch.randn(n, mpc.local, dim, generator=self.generator) * mpc.local_std
            options.append((proposal[:, None] + noise).clamp(-1.0, 1.0))
        if mpc.candidates:
            options.append(torch.rand(n, mpc.candidates, dim, generator=self.generator) * 2.0 - 1.0)
        cands = torch.cat(options, 1)
        k = cands.shape[1]
        if k > 1:
            rows = torch.arange(n, device=device).repeat_interleave(k)
            value = scalar_value(nets.q(x_t[rows], cands.reshape(n * k, dim).to(device), g_t[rows], tau_t[rows]))
            cands = cands[torch.arange(n), value.reshape(n, k).argmax(1).cpu()][:, None]
        return cands[:, 0].numpy().astype(np.float64)

    def unit_act(self, obs: Mapping[str, np.ndarray], state, deterministic: bool = True):
        """Actions in [-1, 1] and the next state."""
        x = flatten(obs, self.goals.keys)
        goal = self.goals.desired(x)
        moved = ~np.all(np.abs(goal - state["goal"]) <= GOAL_CHANGE, axis=1)  # NaN (no goal yet) counts as moved
        tau = np.where(moved, self.mpc.horizon, state["tau"])
        unit = self.choose(x, goal, tau)
        if not deterministic and self.noise > 0:
            unit = np.clip(unit + self.noise * torch.randn(unit.shape, generator=self.generator).numpy(), -1.0, 1.0)
        return unit, {"tau": np.where(tau > 0, tau - 1, self.mpc.horizon), "goal": goal}

    def act(self, obs, state, deterministic: bool = True):
        unit, state = self.unit_act(obs, state, deterministic)
        return self.actions.to_env(unit), state


class UniformPolicy:
    """Uniformly random actions (the `simreal.agents.Policy` protocol): the baseline a goal task is measured by."""

    def __init__(self, observation_space, action_space, seed: int = 0):
        self.observation_space, self.action_space = observation_space, action_space
        self.actions, self.rng = ActionSpec.from_space(action_space), np.random.default_rng(seed)

    def initial_state(self, batch_size: int) -> None:
        return None

    def reset_state(self, state, done):
        return state

    def act(self, obs, state, deterministic: bool = True):
        n = len(next(iter(obs.values())))
        return self.actions.to_env(self.actions.random(n, self.rng)), state


def last_observation(info: Mapping[str, Any], keys: list[str]) -> np.ndarray:
    """(1, obs_dim): an ended episode's last observation (the vec env's ``terminal_observation``), flattened."""
    return flatten({k: v[None] for k, v in info["terminal_observation"].items()}, keys)


def goal_distance(goals: Goals, x: np.ndarray) -> np.ndarray:
    """(n,): the L2 distance between the achieved and the desired goal of each row of x."""
    return np.linalg.norm(goals.achieved(x) - goals.desired(x), axis=1)


def evaluate(policy, env_cfg: Mapping, episodes: int, seed: int) -> dict[str, float]:
    """``{"return", "final_distance"}`` over ``episodes`` episodes (one env copy each): the mean return and the
    mean L2 distance between the achieved and the desired goal in each episode's last observation."""
    from simreal.training.envs import policy_returns

    goals = bind_goals(env_cfg["id"], policy.observation_space)
    final = np.zeros(episodes)

    def ended(i: int, info: dict) -> None:
        final[i] = goal_distance(goals, last_observation(info, goals.keys))[0]

    returns = policy_returns(policy, env_cfg, episodes, seed, on_end=ended)
    return {"return": float(returns.mean()), "final_distance": float(final.mean())}


# ------------------------------------------------------------------ export
def build_networks(tdm: SimpleNamespace, obs_dim: int, action_dim: int, goal_dim: int) -> TDMNetworks:
    return TDMNetworks(obs_dim, action_dim, goal_dim, tdm.tau_max, tdm.hidden, tdm.layers)


def export_policy(path, nets: TDMNetworks, cfg: Mapping, observation_space, action_space):
    from simreal.training.export import save_export

    s = parse_config(cfg)
    return save_export(path, AGENT_NAME, cfg, observation_space, action_space, nets.state_dict(),
                       extra={"env_id": cfg["env"]["id"], "tdm": vars(s.tdm),
                              "mpc": vars(s.mpc), "obs_dim": nets.obs_dim,
                              "action_dim": nets.action_dim, "goal_dim": nets.goal_dim, "seed": s.run.seed})


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> TDMPolicy:
    extra = data["extra"]
    tdm = parse_section("tdm", extra["tdm"], "export ")
    nets = build_networks(tdm, int(extra["obs_dim"]), int(extra["action_dim"]), int(extra["goal_dim"]))
    nets.load_state_dict(data["weights"])
    goals = bind_goals(extra["env_id"], data["observation_space"])
    return TDMPolicy(nets.to(device).eval(), goals, parse_section("mpc", extra["mpc"], "export "),
                     data["observation_space"], data["action_space"], seed=int(extra.get("seed", 0)), device=device)


# ------------------------------------------------------------------ training
class _Episodes:
    """Each env copy's transitions since its last written segment; whole segments go to the replay."""

    def __init__(self, n_envs: int, segment: int, replay: SegmentReplay):
        self.rows: list[list[tuple]] = [[] for _ in range(n_envs)]
        self.segment, self.replay = segment, replay

    def add(self, x, unit, x2, terminal, done) -> None:
        for i, rows in enumerate(self.rows):
            rows.append((x[i], unit[i], x2[i], terminal[i]))
            if done[i] or len(rows) >= self.segment:
                self.replay.add_segment(*(np.stack(column) for column in zip(*rows)))
                rows.clear()


def train(cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
    """Train (or resume) TDM in the `RunDir` ``run``; returns ``{"env_steps", "episodes", "eval_return",
    "eval_final_distance", ...}``."""
    from tqdm import tqdm

    from simreal.training.envs import env_from_config
    from simreal.training.logger import Logger, MetricAverager
    from simreal.training.run import (capture_global_rng, generator_state, pick_device, restore_generator,
                                      restore_global_rng)

    s = parse_config(cfg)
    env_cfg = cfg["env"]
    if s.run.threads > 0:
        torch.set_num_threads(s.run.threads)
    device = pick_device(s.run.device)
    torch.manual_seed(s.run.seed)
    n_envs = int(env_cfg.get("n_envs", 1))
    venv = env_from_config(env_cfg, n_envs, s.run.seed)
    try:
        goals = bind_goals(env_cfg["id"], venv.observation_space)
        space = venv.action_space
        if not hasattr(space, "low"):
            raise ConfigError(f"env.id: TDM's actor emits continuous (Box) actions; {env_cfg['id']} has "
                              f"{type(space).__name__}")
    except BaseException:
        venv.close()
        raise
    action_spec = ActionSpec.from_space(space)
    nets = build_networks(s.tdm, goals.obs_dim, space.shape[0], goals.dim).to(device)
    target = copy.deepcopy(nets).requires_grad_(False)
    critic_opt = torch.optim.Adam(nets.critic.parameters(), lr=s.tdm.critic_lr)
    actor_opt = torch.optim.Adam(nets.actor.parameters(), lr=s.tdm.actor_lr)
    replay = SegmentReplay(s.replay.capacity, goals.obs_dim, space.shape[0])
    explorer = TDMPolicy(nets, goals, SimpleNamespace(horizon=s.tdm.tau_max, candidates=0, local=0),
                         venv.observation_space, space, seed=s.run.seed + 3, device=device, noise=s.tdm.noise)
    rng = np.random.default_rng(s.run.seed)
    progress_state = {"env_steps": 0, "episodes": 0, "trained": False, "eval_return": math.nan,
                      "eval_final_distance": math.nan}
    if run.resume and run.latest_checkpoint() is not None:
        saved, _ = run.load_latest_good_checkpoint()
        for module, key in ((nets, "nets"), (target, "target"), (critic_opt, "critic_opt"), (actor_opt, "actor_opt"),
                            (replay, "replay")):
            module.load_state_dict(saved[key])
        restore_generator(rng, saved["rng"])
        explorer.generator.set_state(saved["explore_gen"])
        restore_global_rng(saved["global_rng"])
        progress_state.update(saved["progress"])
        venv.seed(s.run.seed + progress_state["env_steps"])
    env_steps = progress_state["env_steps"]
    if env_steps >= s.run.steps:
        venv.close()
        return dict(progress_state)

    def checkpoint() -> None:
        progress_state["env_steps"] = env_steps
        run.save_checkpoint({"nets": nets.state_dict(), "target": target.state_dict(),
                             "critic_opt": critic_opt.state_dict(), "actor_opt": actor_opt.state_dict(),
                             "replay": replay.state_dict(), "rng": generator_state(rng),
                             "explore_gen": explorer.generator.get_state(), "global_rng": capture_global_rng(),
                             "progress": dict(progress_state)}, env_steps, keep=s.run.keep_checkpoints)
        export_policy(run.export_path, nets, cfg, venv.observation_space, space)

    def every(period: int, previous: int) -> bool:  # the last step passed a multiple of ``period``
        return period > 0 and env_steps // period > previous // period

    def to_device(batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}

    logger = Logger(run.path, resume_step=env_steps if run.resume else None, tensorboard=s.run.tensorboard)
    averager, pending = MetricAverager(), _Episodes(n_envs, s.replay.segment, replay)
    returns, distances, ep_return = [], [], np.zeros(n_envs)
    obs = venv.reset()
    x, state = flatten(obs, goals.keys), explorer.initial_state(n_envs)
    bar = tqdm(total=s.run.steps, initial=env_steps, unit="step", desc="tdm", disable=not progress)
    clock, clock_steps = time.perf_counter(), env_steps
    try:
        while env_steps < s.run.steps:
            if progress_state["trained"]:
                nets.eval()
                unit, state = explorer.unit_act(obs, state, deterministic=False)
            else:
                unit = action_spec.random(n_envs, rng).astype(np.float64)
            obs, reward, done, infos = venv.step(action_spec.to_env(unit))
            x_next = flatten(obs, goals.keys)
            terminal = np.zeros(n_envs, bool)
            for i in np.flatnonzero(done):
                x_next[i] = last_observation(infos[i], goals.keys)[0]
                terminal[i] = not infos[i].get("TimeLimit.truncated", False)
            if not (np.all(np.isfinite(x_next)) and np.all(np.isfinite(reward))):
                raise FloatingPointError(f"env {env_cfg['id']}: non-finite observation or reward at env step "
                                         f"{env_steps}; the last checkpoint is kept")
            pending.add(x, unit.astype(np.float32), x_next, terminal, done)
            ep_return += reward
            for i in np.flatnonzero(done):
                returns.append(float(ep_return[i]))
                distances.append(float(goal_distance(goals, x_next[i:i + 1])[0]))
                ep_return[i] = 0.0
                progress_state["episodes"] += 1
            state = explorer.reset_state(state, done)
            x = flatten(obs, goals.keys)
            previous, env_steps = env_steps, env_steps + n_envs
            bar.update(n_envs)
            ready = env_steps >= s.run.prefill and replay.size >= 2
            if ready and (every(s.run.train_every, previous) or not progress_state["trained"]):
                if not progress_state["trained"]:
                    d = replay.data
                    seen = np.concatenate([goals.achieved(d["x2"][:replay.size]), goals.desired(d["x"][:replay.size])])
                    nets.set_statistics(torch.as_tensor(d["x"][:replay.size], device=device),
                                        torch.as_tensor(seen, device=device))
                    target.load_state_dict(nets.state_dict())
                    progress_state["trained"] = True
                nets.train()
                for _ in range(s.run.updates):
                    batch = relabel(replay, goals, s.tdm.batch, s.tdm.tau_max, s.replay.future, s.replay.random,
                                    rng)
                    try:
                        averager.add(tdm_update(nets, target, critic_opt, actor_opt, to_device(batch), s.tdm))
                    except FloatingPointError as exc:
                        raise FloatingPointError(f"{exc} at env step {env_steps}; the last checkpoint is "
                                                 "kept") from None
            if every(s.run.log_every, previous):
                metrics = averager.pop()
                if returns:
                    metrics["train/episode_return"] = float(np.mean(returns[-10:]))
                    metrics["train/final_distance"] = float(np.mean(distances[-10:]))
                    bar.set_postfix(dist=f"{metrics['train/final_distance']:.3f}")
                metrics["time/fps"] = (env_steps - clock_steps) / max(time.perf_counter() - clock, 1e-9)
                clock, clock_steps = time.perf_counter(), env_steps
                logger.scalars(env_steps, metrics)
            if s.run.eval_episodes > 0 and every(s.run.eval_every, previous) and progress_state["trained"]:
                nets.eval()
                policy = TDMPolicy(nets, goals, s.mpc, venv.observation_space, space, seed=s.run.seed + 7,
                                   device=device)
                scores = evaluate(policy, env_cfg, s.run.eval_episodes, s.run.seed + 10_000)
                progress_state["eval_return"] = scores["return"]
                progress_state["eval_final_distance"] = scores["final_distance"]
                logger.scalars(env_steps, {"eval/return": scores["return"],
                                           "eval/final_distance": scores["final_distance"]})
            if every(s.run.checkpoint_every, previous):
                checkpoint()
        checkpoint()
    finally:
        bar.close()
        logger.close()
        venv.close()
    return {**progress_state, "env_steps": env_steps,
            "train_return": float(np.mean(returns[-10:])) if returns else math.nan,
            "train_final_distance": float(np.mean(distances[-10:])) if distances else math.nan}
