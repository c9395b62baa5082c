"""PETS' planner, its deployable policy and its training loop.

**Planning** (Chua et al. 2018, Sec. 5, TS-inf). At every control step each env copy plans a
``planner.horizon``-step action sequence with `simreal.agents.planning.cem`: every candidate sequence
is rolled out by ``planner.particles`` particles from the measured state, particle p always
through ensemble member ``p mod B`` (trajectory sampling with fixed bootstraps, TS-inf), each step
sampled from that member's Gaussian; a candidate's score is its predicted reward summed over the
horizon and averaged over particles. The first action of the final belief's mean is executed, and
the rest, shifted by one step, starts the next step's search (a warm start).

**Reward** is learned with the dynamics (the ensemble's last output): the envs simreal wraps do not
expose their reward as a function of the state. Termination is not modelled; tasks whose failure
ends the episode (a dropped cube) are planned on the reward alone.

**Training** alternates collecting with the planner (uniform random actions for the first
``run.prefill`` env steps) and ``run.updates`` minibatch updates of every member every
``run.train_every`` env steps, on the whole replay (`ensemble.GaussianEnsemble.loss`; the loop's
pieces that MBPO shares live in `simreal.agents.model_based`).
Checkpoints hold the model, the optimizer, the replay and every RNG; a resumed run continues from
the last one with the envs reset and reseeded (the episode in progress at the crash is lost).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
import torch

from simreal.agents.actions import ActionSpec
from simreal.agents.model_based import (EpisodeReturns, ModelBasedRunConfig, RunLog, crossed, fit_ensemble,
                                        log_evaluate_checkpoint, open_env, restore_run, rng_state, summary)
from simreal.agents.pets.ensemble import GaussianEnsemble
from simreal.agents.planning import cem
from simreal.training.config import ConfigError, from_dict

AGENT_NAME = "pets"
PRIVILEGED_KEYS = ("state", "image")


@dataclasses.dataclass
class ModelConfig:
    keys: list[str] | None = None
    members: int = 5
    hidden: int = 200
    layers: int = 3
    act: str = "silu"
    lr: float = 1e-3
    weight_decay: float = 5e-5
    batch: int = 256
    min_logvar: float = -10.0
    max_logvar: float = 0.5


@dataclasses.dataclass
class PlannerConfig:
    horizon: int = 25
    candidates: int = 200
    top_k: int = 20
    iterations: int = 5
    init_std: float = 0.5
    alpha: float = 0.1
    particles: int = 10


@dataclasses.dataclass
class RunConfig(ModelBasedRunConfig):
    train_every: int = 250
    updates: int = 100


def _check(cond: bool, key: str, expected: str, got: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")


def parse_config(cfg: Mapping[str, Any]) -> tuple[RunConfig, ModelConfig, PlannerConfig, int]:
    """The run, model and planner sections as dataclasses and the replay capacity; every value checked
    (one-line `ConfigError` naming the key)."""
    run = from_dict(RunConfig, cfg.get("run", {}), "run")
    model = from_dict(ModelConfig, cfg.get("model", {}), "model")
    planner = from_dict(PlannerConfig, cfg.get("planner", {}), "planner")
    capacity = cfg.get("replay", {}).get("capacity", 200000)
    for key, value, low in (("run.steps", run.steps, 1), ("run.prefill", run.prefill, 0),
                            ("run.train_every", run.train_every, 1), ("run.updates", run.updates, 1),
                            ("model.members", model.members, 1), ("model.hidden", model.hidden, 1),
                            ("model.layers", model.layers, 1), ("model.batch", model.batch, 1),
                            ("planner.horizon", planner.horizon, 1), ("planner.candidates", planner.candidates, 2),
                            ("planner.iterations", planner.iterations, 1), ("replay.capacity", capacity, 2)):
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= low, key, f"an integer >= {low}",
               value)
    _check(1 <= planner.top_k <= planner.candidates, "planner.top_k", f"in [1, {planner.candidates}]", planner.top_k)
    _check(planner.particles >= model.members and planner.particles % model.members == 0, "planner.particles",
           f"a multiple of model.members ({model.members})", planner.particles)
    _check(0.0 <= planner.alpha < 1.0, "planner.alpha", "in [0, 1)", planner.alpha)
    for key, value in (("model.lr", model.lr), ("planner.init_std", planner.init_std)):
        _check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, key, "a finite number > 0",
               value)
    _check(model.min_logvar < model.max_logvar, "model.min_logvar", f"< model.max_logvar ({model.max_logvar})",
           model.min_logvar)
    return run, model, planner, int(capacity)


def vector_keys(space, keys: list[str] | None) -> list[str]:
    """The observation keys the dynamics model reads: ``keys``, or every vector key but the privileged ones."""
    spaces = space.spaces
    if keys is None:
        keys = [k for k in spaces if k not in PRIVILEGED_KEYS and len(spaces[k].shape) <= 1]
    missing = [k for k in keys if k not in spaces]
    if missing or not keys:
        raise ConfigError(f"model.keys: {missing[0] if missing else 'none'} is not a vector observation key "
                          f"(keys: {', '.join(spaces)})")
    return list(keys)


def flatten(obs: Mapping[str, np.ndarray], keys: list[str]) -> np.ndarray:
    """(n, state_dim) float32: the keys of a batched observation, in order."""
    return np.concatenate([np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in keys], axis=1)


class Planner:
    """CEM over TS-inf trajectory samples of the ensemble (see the module docstring)."""

    def __init__(self, model: GaussianEnsemble, cfg: PlannerConfig, seed: int = 0):
        self.model, self.cfg = model, cfg
        self.generator = torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def plan(self, state: torch.Tensor, warm: torch.Tensor | None = None) -> torch.Tensor:
        """(n, state) -> the plan (n, horizon, action) in [-1, 1]."""
        n, cfg, model = state.shape[0], self.cfg, self.model
        members, per_member = model.members, cfg.particles // model.members

        def objective(actions: torch.Tensor) -> torch.Tensor:  # (n, C, H, A) -> (n, C)
            c = actions.shape[1]
            # rows: (n, C, particles of this member); member b gets its own block of particles
            s = state[None, :, None, None, :].expand(members, n, c, per_member, -1).reshape(members, -1, state.shape[1])
            total = torch.zeros(s.shape[:2], device=s.device)
            for t in range(cfg.horizon):
                a = actions[None, :, :, None, t].expand(members, n, c, per_member, -1).reshape(members, -1,
                                                                                              actions.shape[-1])
                s, r = model.predict(s, a, self.generator)
                total += r
            total = torch.nan_to_num(total, nan=-1e9, posinf=-1e9, neginf=-1e9)  # a diverged rollout scores last
            return total.reshape(members, n, c, per_member).mean(dim=(0, 3))

        return cem(objective, n, cfg.horizon, model.action_dim, cfg, self.generator, state.device, mean=warm,
                   alpha=cfg.alpha)


def shift(plan: torch.Tensor) -> torch.Tensor:
    """The plan one step on: its tail, then zeros (the next search's starting mean)."""
    return torch.cat([plan[:, 1:], torch.zeros_like(plan[:, :1])], dim=1)


class PETSPolicy:
    """The deployable planner (the `simreal.agents.Policy` protocol): state = each copy's shifted plan."""

    def __init__(self, model: GaussianEnsemble, planner: PlannerConfig, keys: list[str], observation_space,
                 action_space, seed: int = 0, device: str | torch.device = "cpu"):
        self.model, self.keys = model.eval(), keys
        self.planner = Planner(model, planner, seed)
        self.observation_space, self.action_space = observation_space, action_space
        self.actions = ActionSpec.from_space(action_space)
        self.device = torch.device(device)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.planner.cfg.horizon, self.model.action_dim)

    def reset_state(self, state: torch.Tensor, done: np.ndarray) -> torch.Tensor:
        state = state.clone()
        state[torch.as_tensor(np.asarray(done, bool))] = 0.0
        return state

    def unit_act(self, obs: Mapping[str, np.ndarray], state: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """Actions in [-1, 1] and the next state."""
        x = torch.as_tensor(flatten(obs, self.keys), device=self.device)
        plan = self.planner.plan(x, state.to(self.device)).cpu()
        return plan[:, 0].numpy().astype(np.float64), shift(plan)

    def act(self, obs, state, deterministic: bool = True):
        unit, state = self.unit_act(obs, state)
        return self.actions.to_env(unit), state


def build_model(model_cfg: ModelConfig, state_dim: int, action_dim: int) -> GaussianEnsemble:
    return GaussianEnsemble(model_cfg.members, state_dim, action_dim, model_cfg.hidden, model_cfg.layers,
                            model_cfg.act, model_cfg.min_logvar, model_cfg.max_logvar)


def export_policy(path, model: GaussianEnsemble, cfg: Mapping, keys: list[str], observation_space, action_space):
    from simreal.training.export import save_export

    _, model_cfg, planner, _ = parse_config(cfg)
    return save_export(path, AGENT_NAME, cfg, observation_space, action_space, model.state_dict(),
                       extra={"keys": keys, "model": dataclasses.asdict(model_cfg),
                              "planner": dataclasses.asdict(planner), "state_dim": model.state_dim,
                              "action_dim": model.action_dim, "seed": int(cfg["run"]["seed"])})


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> PETSPolicy:
    extra = data["extra"]
    model_cfg = from_dict(ModelConfig, extra["model"], "export model")
    model = build_model(model_cfg, int(extra["state_dim"]), int(extra["action_dim"]))
    model.load_state_dict(data["weights"])
    planner = from_dict(PlannerConfig, extra["planner"], "export planner")
    return PETSPolicy(model.to(device), planner, list(extra["keys"]), data["observation_space"],
                      data["action_space"], seed=int(extra.get("seed", 0)), device=device)


class Replay:
    """Transitions (state, unit action, next state, reward) in a ring of torch tensors (checkpointable)."""

    def __init__(self, capacity: int, state_dim: int, action_dim: int):
        self.capacity, self.size, self.next = capacity, 0, 0
        self.data = {"s": torch.zeros(capacity, state_dim), "a": torch.zeros(capacity, action_dim),
                     "s2": torch.zeros(capacity, state_dim), "r": torch.zeros(capacity)}

    def add(self, s: np.ndarray, a: np.ndarray, s2: np.ndarray, r: np.ndarray) -> None:
        """One transition per env copy (rows of each array), overwriting the oldest when full."""
        rows = (self.next + np.arange(len(s))) % self.capacity
        for key, value in (("s", s), ("a", a), ("s2", s2), ("r", r)):
            self.data[key][rows] = torch.as_tensor(np.asarray(value), dtype=torch.float32)
        self.next = int(rows[-1] + 1) % self.capacity
        self.size = min(self.size + len(s), self.capacity)

    def sample(self, members: int, batch: int, generator: torch.Generator):
        """(members, batch, .) tensors: each member its own draw with replacement (online bootstrap)."""
        idx = torch.randint(self.size, (members, batch), generator=generator)
        d = self.data
        target = torch.cat([d["s2"][idx] - d["s"][idx], d["r"][idx][..., None]], -1)
        return d["s"][idx], d["a"][idx], target

    def all(self):
        d, n = self.data, self.size
        return torch.cat([d["s"][:n], d["a"][:n]], -1), torch.cat([d["s2"][:n] - d["s"][:n], d["r"][:n, None]], -1)

    def state_dict(self) -> dict:
        return {"size": self.size, "next": self.next, **{k: v[:self.size].clone() for k, v in self.data.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        self.size, self.next = int(state["size"]), int(state["next"])
        for k in self.data:
            self.data[k][:self.size] = state[k]


def train(cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
    """Train (or resume) PETS in the `RunDir` ``run``; returns ``{"env_steps", "episodes", "eval_return"}``."""
    run_cfg, model_cfg, planner_cfg, capacity = parse_config(cfg)
    env_cfg = cfg["env"]
    real, device = open_env(env_cfg, run_cfg, model_cfg.keys, "PETS", "plans")
    keys, space, n_envs = real.keys, real.venv.action_space, real.n_envs
    model = build_model(model_cfg, real.x.shape[1], space.shape[0]).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=model_cfg.lr, weight_decay=model_cfg.weight_decay)
    replay = Replay(capacity, real.x.shape[1], space.shape[0])
    planner = Planner(model, planner_cfg, run_cfg.seed)
    rng = np.random.default_rng(run_cfg.seed)
    sample_gen = torch.Generator().manual_seed(run_cfg.seed + 1)
    env_steps, episodes, last_eval, before = 0, 0, float("nan"), 0
    if run.resume and run.latest_checkpoint() is not None:
        state, _ = run.load_latest_good_checkpoint()
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        replay.load_state_dict(state["replay"])
        env_steps, episodes, last_eval = restore_run(state, real, run_cfg, rng, planner_gen=planner.generator,
                                                     sample_gen=sample_gen)
    if env_steps >= run_cfg.steps:
        real.close()
        return {"env_steps": env_steps, "episodes": episodes, "eval_return": last_eval}
    log = RunLog(run, run_cfg, env_steps, "pets", progress)
    returns = EpisodeReturns(n_envs, episodes)
    warm = torch.zeros(n_envs, planner_cfg.horizon, space.shape[0])
    trained = replay.size >= run_cfg.prefill and replay.size > 0

    def checkpoint() -> None:
        run.save_checkpoint({"model": model.state_dict(), "optim": optim.state_dict(),
                             "replay": replay.state_dict(),
                             **rng_state(rng, planner_gen=planner.generator, sample_gen=sample_gen),
                             "env_steps": env_steps, "episodes": returns.episodes, "eval_return": last_eval},
                            env_steps, keep=run_cfg.keep_checkpoints)
        export_policy(run.export_path, model, cfg, keys, real.venv.observation_space, space)

    def evaluate_now() -> float:
        return evaluate(PETSPolicy(model, planner_cfg, keys, real.venv.observation_space, space,
                                   seed=run_cfg.seed + 7, device=device), env_cfg, run_cfg.eval_episodes,
                        run_cfg.seed + 10_000)

    try:
        while env_steps < run_cfg.steps:
            if env_steps < run_cfg.prefill or not trained:
                unit = rng.uniform(-1.0, 1.0, size=(n_envs, space.shape[0]))
            else:
                model.eval()
                plan = planner.plan(torch.as_tensor(real.x, device=device), warm.to(device)).cpu()
                unit, warm = plan[:, 0].numpy().astype(np.float64), shift(plan)
            reward, done = real.step(unit, replay, env_steps)
            warm[returns.add(reward, done)] = 0.0
            before, env_steps = env_steps, env_steps + n_envs
            log.bar.update(n_envs)
            if env_steps >= run_cfg.prefill and (crossed(run_cfg.train_every, before, env_steps) or not trained):
                fit_ensemble(model, optim, replay, run_cfg.updates, model_cfg.batch, sample_gen, device, log.averager,
                             "pets", env_steps)
                trained = True
            last_eval = log_evaluate_checkpoint(run_cfg, log, returns, before, env_steps, last_eval,
                                                evaluate_now if trained else None, checkpoint)
        checkpoint()
    finally:
        log.close()
        real.close()
    return summary(env_steps, returns, last_eval)


def evaluate(policy: PETSPolicy, env_cfg: Mapping, episodes: int, seed: int) -> float:
    """Mean return of ``episodes`` episodes, one env copy each, planned from the current model."""
    from simreal.training.envs import policy_returns

    return float(policy_returns(policy, env_cfg, episodes, seed).mean())
