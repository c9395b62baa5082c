"""MBPO's training loop, its branched model rollouts and its deployable policy.

**The loop** (Janner et al. 2019, Algorithm 2). Real env steps are collected with the SAC policy's
samples (uniform random unit actions for the first ``run.prefill`` env steps) into the real replay.
Every ``run.model_train_every`` env steps (and once as soon as the prefill is in) the dynamics-and-
reward ensemble is trained exactly as PETS trains it (`simreal.agents.model_based.fit_ensemble`:
``run.model_updates`` minibatch updates, each member on its own draw of the whole replay; no
hold-out set and no elite members, unlike the paper's 7-member ensemble with 5 elites), and then
``rollout.batch`` *branched* rollouts of ``rollout.length`` steps are generated: each starts from a
state drawn uniformly from the real replay, acts with the current policy's samples and steps
through one ensemble member drawn uniformly at random for that rollout (sampling that member's
Gaussian at every step). The authors' code (``FakeEnv.step``) draws a member per transition, so
that one rollout mixes members; ``rollout.member: step`` does that, the default ``rollout`` keeps a
rollout's member for its k steps (PETS' TS-inf trajectory sampling, applied to branches). The model
replay holds the rollouts of the last ``rollout.retain`` model trainings (its capacity is
``batch * length * retain`` transitions, oldest overwritten first). After every env step,
``run.updates_per_step`` SAC updates (`simreal.agents.mbpo.sac`) are made on minibatches of which
``sac.real_ratio`` are drawn from the real replay and the rest from the model replay.

**Why SAC.** The model transitions are branched from real states that older policies visited, and
they are mixed with real data collected by older policies in a replay that keeps them for many
updates: the learner must be off-policy. PPO's clipped surrogate is an on-policy objective (its
ratio pi / pi_old is taken against the policy that collected the batch, and clipped near 1 on the
assumption that this is the current one), so it cannot learn from such a replay. SAC (Haarnoja et
al. 2018), which MBPO uses, backs its critics up with actions of the current policy at the next
state and so learns from transitions of any behaviour policy.

**No termination model.** The rollouts never end early and the soft Q target bootstraps every step:
the tasks MBPO is configured for (the cart-pole and pendulum swing-ups) never terminate, they are
only cut by a time limit. The fixed ``rollout.length`` is the paper's k without its schedule.

Checkpoints hold the ensemble and its optimizer, the SAC networks and their optimizer, both
replays and every RNG; a resumed run continues from the last one with the envs reset and reseeded
(the episode in progress at the crash is lost). A non-finite observation, reward, loss or model
rollout is a `FloatingPointError` that keeps the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
import torch

from simreal.agents.actions import ActionSpec
from simreal.agents.mbpo.sac import SAC, SACConfig, TanhGaussianActor, randn
from simreal.agents.model_based import (EpisodeReturns, ModelBasedRunConfig, RunLog, crossed, fit_ensemble,
                                        log_evaluate_checkpoint, open_env, restore_run, rng_state, summary)
from simreal.agents.pets.ensemble import ACTIVATIONS, GaussianEnsemble
from simreal.agents.pets.pets import ModelConfig, Replay, build_model, evaluate, flatten
from simreal.training.config import ConfigError, from_dict

AGENT_NAME = "mbpo"
MEMBER_DRAWS = ("rollout", "step")  # rollout.member: one ensemble member per rollout, or a new one per step


@dataclasses.dataclass
class RolloutConfig:
    batch: int = 10000
    length: int = 1
    retain: int = 4
    member: str = "rollout"


@dataclasses.dataclass
class RunConfig(ModelBasedRunConfig):
    model_train_every: int = 250
    model_updates: int = 200
    updates_per_step: int = 20


def _require(cond: bool, key: str, expected: str, got: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_config(cfg: Mapping[str, Any]) -> tuple[RunConfig, ModelConfig, RolloutConfig, SACConfig, int]:
    """The run, model, rollout and sac sections as dataclasses and the real replay's capacity; every value
    checked (one-line `ConfigError` naming the key)."""
    run = from_dict(RunConfig, cfg.get("run", {}), "run")
    model = from_dict(ModelConfig, cfg.get("model", {}), "model")
    rollout = from_dict(RolloutConfig, cfg.get("rollout", {}), "rollout")
    sac = from_dict(SACConfig, cfg.get("sac", {}), "sac")
    env, capacity = cfg.get("env", {}), cfg.get("replay", {}).get("capacity", 200000)
    for key, value, low in (("env.n_envs", env.get("n_envs", 1), 1),
                            ("env.action_repeat", env.get("action_repeat", 1), 1),
                            ("run.steps", run.steps, 1), ("run.seed", run.seed, 0), ("run.threads", run.threads, 0),
                            ("run.prefill", run.prefill, 0), ("run.model_train_every", run.model_train_every, 1),
                            ("run.model_updates", run.model_updates, 1),
                            ("run.updates_per_step", run.updates_per_step, 0),
                            ("run.log_every", run.log_every, 1), ("run.eval_every", run.eval_every, 1),
                            ("run.eval_episodes", run.eval_episodes, 0),
                            ("run.checkpoint_every", run.checkpoint_every, 1),
                            ("run.keep_checkpoints", run.keep_checkpoints, 1), ("replay.capacity", capacity, 2),
                            ("model.members", model.members, 1), ("model.hidden", model.hidden, 1),
                            ("model.layers", model.layers, 1), ("model.batch", model.batch, 1),
                            ("rollout.batch", rollout.batch, 1), ("rollout.length", rollout.length, 1),
                            ("rollout.retain", rollout.retain, 1), ("sac.hidden", sac.hidden, 1),
                            ("sac.layers", sac.layers, 1), ("sac.batch", sac.batch, 1)):
        _require(_is_int(value) and value >= low, key, f"an integer >= {low}", value)
    _require(isinstance(run.device, str), "run.device", "auto, cpu or cuda[:N]", run.device)
    _require(isinstance(run.tensorboard, bool), "run.tensorboard", "true or false", run.tensorboard)
    _require(model.keys is None or (isinstance(model.keys, list) and all(isinstance(k, str) for k in model.keys)),
             "model.keys", "null or a list of observation keys", model.keys)
    for key, act in (("model.act", model.act), ("sac.act", sac.act)):
        _require(act in ACTIVATIONS, key, f"one of {', '.join(ACTIVATIONS)}", act)
    for key, value in (("model.lr", model.lr), ("sac.actor_lr", sac.actor_lr), ("sac.critic_lr", sac.critic_lr),
                       ("sac.alpha_lr", sac.alpha_lr), ("sac.init_alpha", sac.init_alpha)):
        _require(_is_number(value) and value > 0, key, "a finite number > 0", value)
    _require(_is_number(model.weight_decay) and model.weight_decay >= 0, "model.weight_decay", "a finite number >= 0",
             model.weight_decay)
    for key, value in (("model.min_logvar", model.min_logvar), ("model.max_logvar", model.max_logvar)):
        _require(_is_number(value), key, "a finite number", value)
    _require(model.min_logvar < model.max_logvar, "model.min_logvar", f"< model.max_logvar ({model.max_logvar})",
             model.min_logvar)
    _require(rollout.member in MEMBER_DRAWS, "rollout.member", " or ".join(MEMBER_DRAWS), rollout.member)
    _require(_is_number(sac.gamma) and 0 <= sac.gamma < 1, "sac.gamma", "in [0, 1)", sac.gamma)
    _require(_is_number(sac.tau) and 0 < sac.tau <= 1, "sac.tau", "in (0, 1]", sac.tau)
    _require(_is_number(sac.real_ratio) and 0 <= sac.real_ratio <= 1, "sac.real_ratio", "in [0, 1]", sac.real_ratio)
    return run, model, rollout, sac, int(capacity)


# ------------------------------------------------------------------ branched rollouts
def start_states(replay: Replay, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` states drawn uniformly (with replacement) from the replay: where the rollouts branch off."""
    return replay.data["s"][torch.randint(replay.size, (n,), generator=generator)]


def predict_members(model: GaussianEnsemble, state: torch.Tensor, action: torch.Tensor, member: torch.Tensor,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, state), (N, action) -> a sample of next state (N, state) and reward (N,), row i through ensemble
    member ``member[i]``: the rows are grouped into a (members, widest group, .) grid, padded with zeros."""
    order = torch.argsort(member, stable=True)
    counts = torch.bincount(member, minlength=model.members)
    first = torch.cumsum(counts, 0) - counts
    group = member[order]
    slot = torch.arange(len(member), device=member.device) - first[group]
    grid_s = state.new_zeros(model.members, int(counts.max()), state.shape[1])
    grid_a = action.new_zeros(model.members, grid_s.shape[1], action.shape[1])
    grid_s[group, slot], grid_a[group, slot] = state[order], action[order]
    next_grid, reward_grid = model.predict(grid_s, grid_a, generator)
    next_state, reward = torch.empty_like(state), state.new_empty(len(member))
    next_state[order], reward[order] = next_grid[group, slot], reward_grid[group, slot]
    return next_state, reward


@torch.no_grad()
def branch(model: GaussianEnsemble, actor: TanhGaussianActor, start: torch.Tensor, length: int,
           generator: torch.Generator, member_draw: str = "rollout") -> dict[str, torch.Tensor]:
    """``length``-step rollouts of the model under the actor's samples from each row of ``start``, each
    through one member drawn uniformly for it (``member_draw="step"``: drawn again at every step);
    ``s``, ``a``, ``s2`` (length, N, .) and ``r`` (length, N)."""
    n, device = start.shape[0], start.device
    member = torch.randint(model.members, (n,), generator=generator).to(device)
    out: dict[str, list[torch.Tensor]] = {"s": [], "a": [], "s2": [], "r": []}
    state = start
    for t in range(length):
        if t > 0 and member_draw == "step":
            member = torch.randint(model.members, (n,), generator=generator).to(device)
        action = actor.act(state, randn((n, model.action_dim), generator, device))
        next_state, reward = predict_members(model, state, action, member, generator)
        for key, value in (("s", state), ("a", action), ("s2", next_state), ("r", reward)):
            out[key].append(value)
        state = next_state
    return {k: torch.stack(v) for k, v in out.items()}


def mixed_batch(real: Replay, fake: Replay, batch: int, real_ratio: float, generator: torch.Generator,
                device: torch.device) -> dict[str, torch.Tensor]:
    """A SAC minibatch: ``round(batch * real_ratio)`` real transitions and the rest model ones (all real
    while the model replay is empty), each drawn uniformly with replacement."""
    n_real = batch if fake.size == 0 else int(round(batch * real_ratio))
    picks = [(replay, torch.randint(replay.size, (n,), generator=generator))
             for replay, n in ((real, n_real), (fake, batch - n_real)) if n > 0]
    return {k: torch.cat([replay.data[k][idx] for replay, idx in picks]).to(device) for k in ("s", "a", "r", "s2")}


# ------------------------------------------------------------------ the policy
class MBPOPolicy:
    """The SAC actor as a deployable policy (the `simreal.agents.Policy` protocol, no state):
    ``tanh(mean)`` when deterministic, else a sample, mapped onto the action space by `ActionSpec.to_env`."""

    def __init__(self, actor: TanhGaussianActor, keys: list[str], observation_space, action_space, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.actor, self.keys = actor, keys
        self.observation_space, self.action_space = observation_space, action_space
        self.actions = ActionSpec.from_space(action_space)
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(int(seed))

    def initial_state(self, batch_size: int) -> None:
        return None

    def reset_state(self, state: None, done: np.ndarray) -> None:
        return state

    def unit_act(self, obs: Mapping[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        """Actions in [-1, 1] (n, action)."""
        x = torch.as_tensor(flatten(obs, self.keys), device=self.device)
        noise = None if deterministic else randn((x.shape[0], self.actions.dim), self.generator, self.device)
        return self.actor.act(x, noise).cpu().numpy().astype(np.float64)

    def act(self, obs, state, deterministic: bool = True):
        return self.actions.to_env(self.unit_act(obs, deterministic)), state


def export_policy(path, sac: SAC, cfg: Mapping, keys: list[str], observation_space, action_space):
    from simreal.training.export import save_export

    sac_cfg = parse_config(cfg)[3]
    return save_export(path, AGENT_NAME, cfg, observation_space, action_space, sac.actor.state_dict(),
                       extra={"keys": keys, "sac": dataclasses.asdict(sac_cfg), "state_dim": sac.state_dim,
                              "action_dim": sac.action_dim, "seed": int(cfg["run"]["seed"])})


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> MBPOPolicy:
    extra = data["extra"]
    sac_cfg = from_dict(SACConfig, extra["sac"], "export sac")
    actor = TanhGaussianActor(int(extra["state_dim"]), int(extra["action_dim"]), sac_cfg.hidden, sac_cfg.layers,
                              sac_cfg.act)
    actor.load_state_dict(data["weights"])
    return MBPOPolicy(actor.to(device), list(extra["keys"]), data["observation_space"], data["action_space"],
                      seed=int(extra.get("seed", 0)), device=device)


# ------------------------------------------------------------------ training
def train(cfg: Mapping[str, Any], run, progress: bool = True) -> dict:
    """Train (or resume) MBPO in the `RunDir` ``run``; returns ``{"env_steps", "episodes", "eval_return",
    "train_return"}``."""
    run_cfg, model_cfg, rollout_cfg, sac_cfg, capacity = parse_config(cfg)
    env_cfg = cfg["env"]
    real_env, device = open_env(env_cfg, run_cfg, model_cfg.keys, "MBPO", "acts with")
    keys, space, n_envs = real_env.keys, real_env.venv.action_space, real_env.n_envs
    state_dim, action_dim = real_env.x.shape[1], space.shape[0]
    model = build_model(model_cfg, state_dim, action_dim).to(device)
    model_optim = torch.optim.AdamW(model.parameters(), lr=model_cfg.lr, weight_decay=model_cfg.weight_decay)
    real = Replay(capacity, state_dim, action_dim)
    fake = Replay(rollout_cfg.batch * rollout_cfg.length * rollout_cfg.retain, state_dim, action_dim)
    sac = SAC(state_dim, action_dim, sac_cfg, device)
    rng = np.random.default_rng(run_cfg.seed)
    gens = {name: torch.Generator().manual_seed(run_cfg.seed + i)
            for i, name in enumerate(("sample_gen", "rollout_gen", "sac_gen"), start=1)}
    env_steps, episodes, trainings, last_eval = 0, 0, 0, float("nan")
    if run.resume and run.latest_checkpoint() is not None:
        state, _ = run.load_latest_good_checkpoint()
        model.load_state_dict(state["model"])
        model_optim.load_state_dict(state["model_optim"])
        sac.load_state_dict(state["sac"])
        real.load_state_dict(state["replay"])
        fake.load_state_dict(state["model_replay"])
        env_steps, episodes, last_eval = restore_run(state, real_env, run_cfg, rng, **gens)
        trainings = int(state["trainings"])
    if env_steps >= run_cfg.steps:
        real_env.close()
        return {"env_steps": env_steps, "episodes": episodes, "eval_return": last_eval}
    log = RunLog(run, run_cfg, env_steps, "mbpo", progress)
    returns = EpisodeReturns(n_envs, episodes)

    def evaluate_now() -> float:
        policy = MBPOPolicy(sac.actor, keys, real_env.venv.observation_space, space, device=device)
        return evaluate(policy, env_cfg, run_cfg.eval_episodes, run_cfg.seed + 10_000)

    def checkpoint() -> None:
        run.save_checkpoint({"model": model.state_dict(), "model_optim": model_optim.state_dict(),
                             "sac": sac.state_dict(), "replay": real.state_dict(), "model_replay": fake.state_dict(),
                             **rng_state(rng, **gens), "env_steps": env_steps, "episodes": returns.episodes,
                             "trainings": trainings, "eval_return": last_eval}, env_steps,
                            keep=run_cfg.keep_checkpoints)
        export_policy(run.export_path, sac, cfg, keys, real_env.venv.observation_space, space)

    def diverged(what: str) -> FloatingPointError:
        return FloatingPointError(f"mbpo: {what} at env step {env_steps}; the last checkpoint is kept")

    try:
        while env_steps < run_cfg.steps:
            if env_steps < run_cfg.prefill or trainings == 0:
                unit = rng.uniform(-1.0, 1.0, size=(n_envs, action_dim))
            else:
                noise = randn((n_envs, action_dim), gens["sac_gen"], device)
                unit = sac.actor.act(torch.as_tensor(real_env.x, device=device), noise).cpu().numpy().astype(np.float64)
            reward, done = real_env.step(unit, real, env_steps)
            returns.add(reward, done)
            before, env_steps = env_steps, env_steps + n_envs
            log.bar.update(n_envs)
            due = crossed(run_cfg.model_train_every, before, env_steps) or not trainings
            if env_steps >= run_cfg.prefill and due:
                fit_ensemble(model, model_optim, real, run_cfg.model_updates, model_cfg.batch, gens["sample_gen"],
                             device, log.averager, "mbpo", env_steps)
                model.eval()
                start = start_states(real, rollout_cfg.batch, gens["rollout_gen"]).to(device)
                rollouts = branch(model, sac.actor, start, rollout_cfg.length, gens["rollout_gen"], rollout_cfg.member)
                if not all(bool(torch.isfinite(v).all()) for v in rollouts.values()):
                    raise diverged("a model rollout is not finite")
                fake.add(*(rollouts[k].reshape(-1, *rollouts[k].shape[2:]).cpu() for k in ("s", "a", "s2", "r")))
                log.averager.add({"model/rollout_reward": float(rollouts["r"].mean())})
                trainings += 1
            for _ in range(run_cfg.updates_per_step * n_envs if trainings else 0):
                stats = sac.update(mixed_batch(real, fake, sac_cfg.batch, sac_cfg.real_ratio, gens["sac_gen"], device),
                                   gens["sac_gen"])
                if not all(math.isfinite(v) for v in stats.values()):
                    raise diverged(f"a SAC loss is not finite ({stats})")
                log.averager.add(stats)
            last_eval = log_evaluate_checkpoint(run_cfg, log, returns, before, env_steps, last_eval,
                                                evaluate_now if trainings else None, checkpoint,
                                                {"model/trainings": trainings})
        checkpoint()
    finally:
        log.close()
        real_env.close()
    return summary(env_steps, returns, last_eval)
