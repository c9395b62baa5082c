"""Recurrent PPO with an asymmetric critic: the trainer behind ``simreal train ppo``.

One update, top to bottom (as CleanRL's ``ppo_atari_lstm.py``, made fast):

1. **Collect** ``n_steps`` steps from ``n_envs`` envs. The actor reads its keys
   (what the robot measures), the critic its own (the privileged ``state``);
   LSTM states are zeroed where an episode starts. A truncated episode's last
   reward gets ``gamma * V(terminal observation)`` added (the critic run one
   step further on the ``terminal_observation`` the VecEnv reports), so GAE
   bootstraps through time limits but not through terminations.
2. **Advantages**: GAE over the rollout; value targets normalized by the
   returns' running statistics (the critic predicts normalized values),
   advantages normalized over the rollout.
3. **Update** ``epochs`` times over ``minibatches`` minibatches cut by env, so
   sequences stay whole; each minibatch replays the LSTM over its envs'
   segments in a few calls (`buffer.SegmentLayout`): clipped surrogate, value
   loss, entropy bonus, gradient-norm clipping, a linear learning-rate schedule.
4. **Log** ``train/``, ``rand/`` (sampled randomization values, ADR ranges),
   ``time/``; every ``eval.every`` updates ``eval/`` from deterministic
   episodes on a separate env.

**Checkpoints and resume.** Every ``run.checkpoint_every`` updates the trainer
saves the model, optimizer, observation and value normalizers, the
randomization stacks' state (ADR ranges and buffers), every RNG state and the
counters, then writes the policy export. The physics state of arbitrary envs
cannot be saved, so right after every checkpoint -- in an uninterrupted run
exactly as in a resumed one -- the envs are re-seeded from ``(seed, update)``
and reset, and the recurrent states zeroed: the episodes running at a
checkpoint are cut there (the last rollout already bootstrapped their value,
as at the end of any rollout). What follows a checkpoint is therefore a pure
function of the checkpoint, and ``--resume`` reproduces the uninterrupted run
update for update. A killed run loses at most ``checkpoint_every`` updates.

**Non-finite numbers.** A NaN or inf observation or reward (checked once per
env step on the whole batch), loss, entropy or gradient norm (checked before
the optimizer step, on the values fetched for the logs), or weight (checked
before every checkpoint) stops training with
`simreal.utils.finite.NonFiniteError`: one line naming what, where (update,
env step, key, env copy, the randomizer values of that episode) and the last
finite checkpoint, which is the newest on disk; ``policy.pt`` keeps the last
finite export.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.ppo.buffer import RolloutBuffer, SegmentLayout, compute_gae
from simreal.agents.ppo.collect import Collector, draw_noise, non_finite_observation, where_text
from simreal.agents.ppo.policy import ActorCritic, PolicyConfig, PPOPolicy, key_sizes, network_config
from simreal.registration import HAND_CUBE_ID
from simreal.training.config import ConfigError, from_dict
from simreal.utils.finite import PhysicsDiverged, all_finite, check_scalars, check_state_dict, checkpoint_note, fetch
from simreal.training.run import (RunDir, RunDirError, capture_global_rng, generator_state, pick_device,
                                  restore_generator, restore_global_rng)
from simreal.utils.seeding import make_rng

CHECKPOINT_FORMAT = "simreal-ppo-checkpoint"
CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- config
@dataclasses.dataclass
class EnvConfig:
    """The ``env`` section: what to train on."""

    id: str = HAND_CUBE_ID
    randomization: str = "none"          # a YAML path or shipped name; "none" for nominal physics
    randomization_in_state: bool = True  # hand env: sampled values appended to the critic's `state`
    n_envs: int = 16
    action_repeat: int = 1
    kwargs: dict = dataclasses.field(default_factory=dict)  # env constructor arguments
    actor_keys: list[str] | None = None   # default: every key but `state` and `image`
    critic_keys: list[str] | None = None  # default: `state` when present, else the actor's keys
    nthread: int | None = None            # hand env: physics threads (default: all cores)


@dataclasses.dataclass
class RunConfig:
    """The ``run`` section: budget, seed, device, checkpoints."""

    steps: int = 1_000_000
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 10  # updates
    keep_checkpoints: int = 3
    torch_threads: int = 1      # torch intra-op threads (small networks: 1 is fastest); 0 = torch's default
    tensorboard: bool = True
    init_from: str | None = None  # a PPO export (policy.pt, or the folder holding it) whose actor starts the run
    workers: int = 0              # Ray rollout workers holding the env copies (agents/ppo/workers.py); 0: this process
    ray_address: str | None = None  # with workers: a Ray cluster (auto, HOST:6379); None starts a local Ray


@dataclasses.dataclass
class PPOConfig:
    """The ``ppo`` section: the learning algorithm."""

    n_steps: int = 128           # rollout length per env
    epochs: int = 4
    minibatches: int = 4         # cut by env: n_envs must be >= minibatches
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    lr: float = 3e-4
    lr_schedule: str = "linear"  # linear (to 0 at the last update) | constant
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    normalize_values: bool = True
    normalize_observations: bool = True
    obs_clip: float = 10.0
    target_kl: float | None = None  # stop an update's epochs early above this approximate KL
    critic_warmup: int = 0       # first updates of a run that train only the critic (the actor stays as loaded)


@dataclasses.dataclass
class EvalConfig:
    """The ``eval`` section: periodic deterministic evaluation on a separate env."""

    every: int = 10              # updates; 0 turns evaluation off
    episodes: int = 8            # one episode per eval env copy
    max_steps: int = 1000        # cap on an evaluation episode's length
    randomization: str | None = None  # None: the training file (at the current ADR ranges)
    deterministic: bool = True


@dataclasses.dataclass
class TrainConfig:
    env: EnvConfig
    run: RunConfig
    ppo: PPOConfig
    policy: PolicyConfig
    eval: EvalConfig

    # section name -> dataclass; a learner built on this trainer adds its own (simreal.agents.i2a)
    SECTIONS: ClassVar[dict[str, type]] = {"env": EnvConfig, "run": RunConfig, "ppo": PPOConfig,
                                           "policy": PolicyConfig, "eval": EvalConfig}

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "TrainConfig":
        sections = cls.SECTIONS
        unknown = set(cfg) - set(sections)
        if unknown:
            raise ConfigError(f"config: unknown section '{sorted(unknown)[0]}' (known: {', '.join(sections)})")
        try:
            built = {name: from_dict(kind, dict(cfg.get(name) or {}), name) for name, kind in sections.items()}
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        out = cls(**built)
        out.check()
        return out

    def check(self) -> None:
        """Every value in its range (one-line `ConfigError` naming the key); ``simreal train ppo`` runs
        this on the resolved config before it writes anything."""
        p, e, r = self.ppo, self.env, self.run
        for where, value, low in (("env.n_envs", e.n_envs, 1), ("env.action_repeat", e.action_repeat, 1),
                                  ("ppo.n_steps", p.n_steps, 1),
                                  ("ppo.epochs", p.epochs, 1), ("ppo.minibatches", p.minibatches, 1),
                                  ("ppo.critic_warmup", p.critic_warmup, 0),
                                  ("run.checkpoint_every", r.checkpoint_every, 1), ("run.steps", r.steps, 1),
                                  ("run.keep_checkpoints", r.keep_checkpoints, 0),
                                  ("run.torch_threads", r.torch_threads, 0), ("run.workers", r.workers, 0),
                                  ("eval.every", self.eval.every, 0),
                                  ("eval.episodes", self.eval.episodes, 1), ("eval.max_steps", self.eval.max_steps, 1)):
            if value < low:
                raise ConfigError(f"{where}: expected an integer >= {low}, got {value}")
        if e.nthread is not None and e.nthread < 1:
            raise ConfigError(f"env.nthread: expected null (all cores) or an integer >= 1, got {e.nthread}")
        if p.minibatches > e.n_envs:
            raise ConfigError(f"ppo.minibatches: minibatches are cut by env, so at most env.n_envs={e.n_envs}; "
                              f"got {p.minibatches}")
        if p.lr_schedule not in ("linear", "constant"):
            raise ConfigError(f"ppo.lr_schedule: expected linear or constant, got {p.lr_schedule!r}")
        for where, value, ok, expected in (
                ("ppo.lr", p.lr, p.lr > 0, "a positive number"),
                ("ppo.gamma", p.gamma, 0 < p.gamma <= 1, "a number in (0, 1]"),
                ("ppo.gae_lambda", p.gae_lambda, 0 < p.gae_lambda <= 1, "a number in (0, 1]"),
                ("ppo.clip", p.clip, p.clip > 0, "a positive number"),
                ("ppo.max_grad_norm", p.max_grad_norm, p.max_grad_norm > 0, "a positive number"),
                ("ppo.obs_clip", p.obs_clip, p.obs_clip > 0, "a positive number"),
                ("ppo.vf_coef", p.vf_coef, p.vf_coef >= 0, "a number >= 0"),
                ("ppo.ent_coef", p.ent_coef, p.ent_coef >= 0, "a number >= 0"),
                ("ppo.target_kl", p.target_kl, p.target_kl is None or p.target_kl > 0, "null or a positive number")):
            if not ok or (value is not None and not math.isfinite(value)):
                raise ConfigError(f"{where}: expected {expected}, got {value}")


# --------------------------------------------------------------------------- helpers
def randomization_stacks(venv) -> list:
    """The randomization stacks behind a training VecEnv: one for the hand env, one per wrapped copy."""
    sim = getattr(venv, "sim", None)
    if sim is not None:
        stack = getattr(sim, "randomization", None)
        return [stack] if stack is not None else []
    from simreal.randomize.wrappers import RandomizedEnv

    stacks = []
    for env in getattr(venv, "envs", []):
        layer = env
        while layer is not None:
            if isinstance(layer, RandomizedEnv):
                stacks.append(layer.stack)
                break
            layer = getattr(layer, "env", None)
    return stacks


def segment_seed(seed: int, update: int, n_envs: int) -> int:
    """The env seed used after the checkpoint at ``update`` (copies get ``+ i``)."""
    return int(make_rng(seed, "ppo-env-segment", str(update)).integers(0, 2**31 - 1 - n_envs))


def _stack_stats(stacks: list) -> dict[str, float]:
    """``rand/adr/...`` from the stacks' ADR (averaged over stacks, one per wrapped copy)."""
    stats = [s.adr.stats() for s in stacks if s.adr is not None]
    if not stats:
        return {}
    return {f"rand/{k}": float(np.mean([s[k] for s in stats])) for k in stats[0]}


# --------------------------------------------------------------------------- trainer
class PPOTrainer:
    """Builds the envs and networks from a resolved config and trains; see the module docstring.

    ``run=None`` trains without a run directory (no checkpoints, logs or
    export; for tests and benchmarks). A new run directory gets the config
    saved; with ``run.resume`` set the newest checkpoint is loaded instead.

    A learner that is PPO with more (I2A) subclasses it: ``config_class`` (its sections),
    ``agent_name`` (its exports), `build_model` (its networks), `policy_parameters` (what PPO's
    optimizer moves), `network_config` (what its export needs) and `update`/`state_dict`.
    """

    config_class: ClassVar[type] = TrainConfig
    agent_name: ClassVar[str] = "ppo"

    def __init__(self, config: Mapping[str, Any], run: RunDir | None = None, progress: bool = False):
        self.config = dict(config)
        self.cfg = cfg = self.config_class.from_dict(config)
        self.run = run
        self.progress = progress
        if cfg.run.torch_threads > 0:
            torch.set_num_threads(cfg.run.torch_threads)
        self.device = pick_device(cfg.run.device)
        seed = cfg.run.seed
        torch.manual_seed(seed)

        from simreal.training.envs import make_training_env, split_keys

        e = cfg.env
        self._make_env = lambda n, randomization: make_training_env(
            e.id, n, seed=seed, randomization=randomization, randomization_in_state=e.randomization_in_state,
            action_repeat=e.action_repeat, env_kwargs=dict(e.kwargs), nthread=e.nthread)
        # with rollout workers the copies live in the workers; the learner's one copy gives spaces and exports
        self.venv = self._make_env(1 if cfg.run.workers else e.n_envs, e.randomization)
        space = self.venv.observation_space
        self.actor_keys, self.critic_keys = split_keys(space, e.actor_keys, e.critic_keys)
        self.action_spec = ActionSpec.from_space(self.venv.action_space)
        p = cfg.ppo
        self.model = self.build_model(space).to(self.device)
        # fused: one kernel per step for all parameters (CPU and CUDA), not a Python loop over tensors
        self._trained = self.policy_parameters()
        self.optimizer = torch.optim.Adam(self._trained, lr=p.lr, eps=1e-5, fused=True)
        head = self.model.actor.head
        self.buffer = RolloutBuffer(p.n_steps, e.n_envs, self.model.actor.obs_size, self.model.critic.obs_size,
                                    head.action_shape, head.action_dtype, self.device)
        self.rng = make_rng(seed, "ppo-minibatches")
        self.stacks = randomization_stacks(self.venv)
        self.eval_env = None
        if cfg.eval.every > 0:
            self.eval_env = self._make_env(cfg.eval.episodes, cfg.eval.randomization or e.randomization)
            self.eval_stacks = randomization_stacks(self.eval_env)
            self.eval_policy = PPOPolicy(self.model.actor, self.actor_keys, space, self.venv.action_space, self.device)

        self.steps_per_update = p.n_steps * e.n_envs
        self.update_index = 0
        self.env_steps = 0
        self.episodes = 0
        self._needs_reset = True
        self.rollouts = None
        if cfg.run.workers:
            self._start_workers(e, seed, run)
        else:
            self.collector = Collector(self.venv, self.model, self.actor_keys, self.critic_keys, self.action_spec,
                                       p.gamma, self.buffer, self.device, run)
        self._last_value: torch.Tensor | None = None
        self.history: list[dict[str, float]] = []  # every update's logged scalars
        self.init_source: dict[str, Any] | None = None  # what run.init_from loaded (recorded in the export)
        if run is not None and run.resume:
            self.load_state_dict(run.load_latest_good_checkpoint()[0])
        elif cfg.run.init_from:
            self.init_source = self.load_actor_from_export(cfg.run.init_from)
        if run is not None and not run.resume:
            run.save_config(self.config)

    # ---------------------------------------------------------------- networks
    def build_model(self, space) -> ActorCritic:
        """The actor-critic for the observation space ``space`` (its actor and critic keys)."""
        p = self.cfg.ppo
        return ActorCritic(key_sizes(space, self.actor_keys), key_sizes(space, self.critic_keys), self.action_spec,
                           self.cfg.policy, p.obs_clip, p.normalize_observations, p.normalize_values)

    def auxiliary_losses(self, params: torch.Tensor, actor_obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses added to PPO's for a minibatch (name -> scalar, logged as ``train/NAME``), from the actor's
        distribution parameters and normalized observations at its steps; PPO has none."""
        return {}

    def policy_parameters(self) -> list[nn.Parameter]:
        """The parameters PPO's loss trains (every parameter of the model)."""
        return list(self.model.parameters())

    def network_config(self) -> dict[str, Any]:
        """The export's ``config``: what `policy_from_export` needs to rebuild the actor."""
        p = self.cfg.ppo
        return network_config(self.cfg.policy, self.actor_keys, self.critic_keys, p.obs_clip, p.normalize_observations)

    # ----------------------------------------------------------------- budget
    @property
    def total_updates(self) -> int:
        return max(1, math.ceil(self.cfg.run.steps / self.steps_per_update))

    def learning_rate(self, update: int) -> float:
        lr = self.cfg.ppo.lr
        if self.cfg.ppo.lr_schedule == "linear":
            lr *= 1.0 - update / self.total_updates
        return lr

    # -------------------------------------------------------------- collection
    def _start_workers(self, e: EnvConfig, seed: int, run) -> None:
        """The Ray rollout workers (`workers.RayRollouts`); ADR is refused with them (its stacks would be theirs)."""
        from simreal.agents.ppo.workers import RayRollouts

        if any(stack.adr is not None for stack in self.stacks):
            raise ConfigError("run.workers: the randomization file has ADR, whose ranges live in the env's stacks; "
                              "train ADR without rollout workers (run.workers=0)")
        self.stacks = []
        env = {"id": e.id, "randomization": e.randomization, "randomization_in_state": e.randomization_in_state,
               "action_repeat": e.action_repeat, "kwargs": dict(e.kwargs), "nthread": e.nthread}
        self.rollouts = RayRollouts(self.cfg.run.workers, self.cfg.run.ray_address, env, seed, e.n_envs, self.model,
                                    (self.actor_keys, self.critic_keys), self.action_spec, self.cfg.ppo.gamma,
                                    self.cfg.ppo.n_steps, run, max(1, self.cfg.run.torch_threads))
        self._worker_randomization: dict[str, list] = {}

    def _start_segment(self) -> None:
        """Re-seed and reset every env, zero the recurrent states (after each checkpoint; see module docs)."""
        seed = segment_seed(self.cfg.run.seed, self.update_index, self.cfg.env.n_envs)
        (self.rollouts or self.collector).start_segment(seed)
        self._needs_reset = False

    def collect(self) -> dict[str, float]:
        """Fill the buffer with one rollout (`collect.Collector`, here or in the rollout workers); returns
        statistics of the episodes that ended."""
        if self._needs_reset:
            self._start_segment()
        if self.rollouts is None:
            out = self.collector.collect(self._where)
        else:
            n = self.cfg.env.n_envs
            noise = draw_noise(self.model.actor.head, self.cfg.ppo.n_steps, n)
            out = self.rollouts.collect(self.model, self.buffer, (self.update_index, self.env_steps, n,
                                                                  self.steps_per_update), noise)
            for name, pairs in out["randomization"].items():
                self._worker_randomization.setdefault(name, []).extend(pairs)
        self._last_value = out["last_value"]
        return self._episode_stats(out)

    def _episode_stats(self, out: Mapping[str, list]) -> dict[str, float]:
        """Means over the ended episodes, in (rollout step, copy) order whichever process collected them."""
        order = sorted(range(len(out["ends"])), key=lambda k: tuple(out["ends"][k]))
        returns, lengths = [out["returns"][k] for k in order], [out["lengths"][k] for k in order]
        successes = [out["successes"][k] for k in order if not math.isnan(out["successes"][k])]
        self.episodes += len(returns)
        stats: dict[str, float] = {}
        if returns:
            stats["train/episode_return"] = float(np.mean(returns))
            stats["train/episode_length"] = float(np.mean(lengths))
            stats["train/episodes"] = float(len(returns))
        if successes:
            stats["train/consecutive_successes"] = float(np.mean(successes))
        return stats

    def _randomization_values(self) -> dict[str, list[float]]:
        """The randomizer values of the episodes begun since the last call (for ``rand/`` logs), in
        (rollout step, copy) order."""
        if self.rollouts is None:
            pending = self.collector.pop_randomization()
        else:
            pending, self._worker_randomization = self._worker_randomization, {}
        return {name: [v for _, v in sorted(pairs, key=lambda p: tuple(p[0]))] for name, pairs in pending.items()}

    # ---------------------------------------------------------- non-finite
    @property
    def _keys(self) -> list[str]:
        """The observation keys the networks read (actor's, then the critic's others)."""
        return self.actor_keys + [k for k in self.critic_keys if k not in self.actor_keys]

    def _non_finite_observation(self, venv, obs: Mapping[str, np.ndarray], where: str,
                                what: str = "observation") -> None:
        non_finite_observation(venv, self._keys, obs, where, self.run, what)

    def _where(self, t: int | None = None) -> str:
        """``PPO update U (env step S)``: at rollout step ``t`` of the coming update, or at its end."""
        return where_text(self.update_index, self.env_steps, self.cfg.env.n_envs, t, self.steps_per_update)

    # ------------------------------------------------------------------ update
    def update(self, lr: float) -> dict[str, float]:
        """PPO epochs over the buffer (see the module docstring); returns learner statistics."""
        buf, model, p, dev = self.buffer, self.model, self.cfg.ppo, self.device
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.no_grad():
            advantages, returns = compute_gae(buf.rewards, buf.values, buf.dones, self._last_value, p.gamma,
                                              p.gae_lambda)
        # a critic warm-up update leaves the actor exactly as it is, its observation statistics included
        warmup = self.update_index < p.critic_warmup
        # statistics for the next rollout (this one's stored observations stay as collected)
        if not warmup:
            model.actor.normalizer.update(torch.from_numpy(buf.raw_actor))
        model.critic.normalizer.update(torch.from_numpy(buf.raw_critic))
        model.value_normalizer.update(returns.reshape(-1, 1))
        targets = model.value_normalizer.normalize_unclipped(returns.unsqueeze(-1)).squeeze(-1)
        if p.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        layout = SegmentLayout(buf.starts)
        flat = buf.flat
        actor_obs, critic_obs, actions = flat(buf.actor_obs), flat(buf.critic_obs), flat(buf.actions)
        old_log_probs, flat_adv, flat_targets = flat(buf.log_probs), flat(advantages), flat(targets)
        actor_state0, critic_state0 = buf.initial_state
        head = model.actor.head
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0,
                "grad_norm": 0.0}
        n_minibatches = 0
        stop = False
        for epoch in range(p.epochs):
            order = self.rng.permutation(self.cfg.env.n_envs)
            epoch_kl = []
            for k, envs in enumerate(np.array_split(order, p.minibatches)):
                mb = layout.minibatch(envs, dev)
                idx = mb.index
                params = mb.gather(model.actor, actor_obs, actor_state0)
                new_log_prob = head.log_prob(params, actions[idx])
                entropy = head.entropy(params).mean()
                values = mb.gather(model.critic, critic_obs, critic_state0)
                log_ratio = new_log_prob - old_log_probs[idx]
                ratio = log_ratio.exp()
                adv = flat_adv[idx]
                surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - p.clip, 1.0 + p.clip))
                policy_loss = surrogate.mean()
                value_loss = 0.5 * (values - flat_targets[idx]).square().mean()
                aux = {} if warmup else self.auxiliary_losses(params, actor_obs[idx])
                if warmup:  # no gradient reaches the actor, so Adam leaves its weights alone
                    loss = p.vf_coef * value_loss
                else:
                    loss = policy_loss + p.vf_coef * value_loss - p.ent_coef * entropy + sum(aux.values())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(self._trained, p.max_grad_norm)  # the total norm
                with torch.no_grad():
                    kl = ((ratio - 1.0) - log_ratio).mean()
                    clipped = ((ratio - 1.0).abs() > p.clip).float().mean()
                # the logged values, fetched in one sync and checked before the step can touch the weights
                values = fetch({"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                                "approx_kl": kl, "clip_fraction": clipped, "grad_norm": grad_norm, **aux})
                if not all(map(math.isfinite, values.values())):
                    check_scalars({"policy loss": values["policy_loss"], "value loss": values["value_loss"],
                                   "entropy": values["entropy"], "gradient norm": values["grad_norm"],
                                   "approximate KL": values["approx_kl"],
                                   **{name.replace("_", " "): values[name] for name in aux}},
                                  f"{self._where()}, epoch {epoch + 1}, minibatch {k + 1}", self.run)
                self.optimizer.step()
                epoch_kl.append(values["approx_kl"])
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                n_minibatches += 1
            if p.target_kl is not None and np.mean(epoch_kl) > p.target_kl:
                stop = True
                break
        stats = {f"train/{k}": v / n_minibatches for k, v in sums.items()}
        with torch.no_grad():
            var = returns.var()
            stats["train/explained_variance"] = float(1.0 - (returns - buf.values).var() / var) if var > 0 else 0.0
        stats["train/lr"] = lr
        stats["train/value_mean"] = float(buf.values.mean())
        stats["train/early_stop"] = float(stop)
        stats["train/critic_warmup"] = float(warmup)
        if head.kind == "gaussian":
            stats["train/action_std"] = float(head.log_std.detach().exp().mean())
        return stats

    # -------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, float]:
        """``eval.episodes`` deterministic episodes (one per eval env copy), the same seeds every time."""
        env, cfg = self.eval_env, self.cfg.eval
        if env is None:
            return {}
        same_file = cfg.randomization in (None, self.cfg.env.randomization)
        if same_file and self.stacks and self.eval_stacks:
            for i, stack in enumerate(self.eval_stacks):  # evaluate at the current ADR ranges
                stack.load_state_dict(self.stacks[i % len(self.stacks)].state_dict())
        n = cfg.episodes
        env.seed(int(make_rng(self.cfg.run.seed, "ppo-eval").integers(0, 2**31 - 1 - n)))
        obs = env.reset()
        policy = self.eval_policy
        state = policy.initial_state(n)
        active = np.ones(n, dtype=bool)
        returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        successes = np.full(n, np.nan)
        where = f"PPO evaluation after update {self.update_index} (env step {self.env_steps})"
        for _ in range(cfg.max_steps):
            if not all_finite(*(obs[k] for k in self.actor_keys)):
                self._non_finite_observation(env, obs, where, "evaluation observation")
            action, state = policy.act(obs, state, deterministic=cfg.deterministic)
            try:
                obs, reward, done, infos = env.step(action)
            except PhysicsDiverged as exc:
                raise PhysicsDiverged(f"{where}: {exc}{checkpoint_note(self.run)}") from None
            returns += np.where(active, reward, 0.0)
            lengths += active
            for i in range(n):
                if active[i] and "consecutive_successes" in infos[i]:
                    successes[i] = float(infos[i]["consecutive_successes"])
            state = policy.reset_state(state, done)
            active &= ~np.asarray(done, dtype=bool)
            if not active.any():
                break
        out = {"eval/return": float(returns.mean()), "eval/return_std": float(returns.std()),
               "eval/length": float(lengths.mean()), "eval/finished": float((~active).mean())}
        if not np.all(np.isnan(successes)):
            out["eval/consecutive_successes"] = float(np.nanmean(successes))
        return out

    # --------------------------------------------------------------- training
    def train(self, max_updates: int | None = None, max_seconds: float | None = None) -> dict[str, float]:
        """Train until ``run.steps``; returns the last logged scalars.

        ``max_updates`` stops after that many more updates (as if killed: nothing
        beyond the last periodic checkpoint is saved). ``max_seconds`` stops after
        the update that crosses that wall-clock budget and saves a checkpoint
        there, so ``--resume`` can continue the run.
        """
        from tqdm import tqdm

        logger = None
        if self.run is not None:
            from simreal.training.logger import Logger

            logger = Logger(self.run.path, resume_step=self.env_steps if self.run.resume else None,
                            tensorboard=self.cfg.run.tensorboard)
        last: dict[str, float] = {}
        done_here = 0
        started = time.perf_counter()
        bar = tqdm(total=self.total_updates * self.steps_per_update, initial=self.env_steps, unit="step",
                   desc="ppo", disable=not self.progress, dynamic_ncols=True)
        try:
            while self.update_index < self.total_updates and (max_updates is None or done_here < max_updates):
                t0 = time.perf_counter()
                episode_stats = self.collect()
                t1 = time.perf_counter()
                learn_stats = self.update(self.learning_rate(self.update_index))
                t2 = time.perf_counter()
                self.update_index += 1
                self.env_steps += self.steps_per_update
                done_here += 1
                scalars = {**episode_stats, **learn_stats}
                scalars.update({f"rand/{k}": float(np.mean(v)) for k, v in self._randomization_values().items()})
                scalars.update(_stack_stats(self.stacks))
                scalars["time/fps"] = self.steps_per_update / (t2 - t0)
                scalars["time/collect_s"] = t1 - t0
                scalars["time/update_s"] = t2 - t1
                scalars["train/updates"] = float(self.update_index)
                if self.eval_env is not None and self.update_index % self.cfg.eval.every == 0:
                    scalars.update(self.evaluate())
                if logger is not None:
                    logger.scalars(self.env_steps, scalars)
                self.history.append({"step": float(self.env_steps), **scalars})
                last = scalars
                bar.update(self.steps_per_update)
                if "train/episode_return" in scalars:
                    bar.set_postfix(ret=f"{scalars['train/episode_return']:.3g}", refresh=False)
                at_end = self.update_index >= self.total_updates
                out_of_time = max_seconds is not None and time.perf_counter() - started >= max_seconds
                if self.update_index % self.cfg.run.checkpoint_every == 0 or at_end or out_of_time:
                    self.checkpoint()
                    if logger is not None:
                        logger.flush()
                if out_of_time:
                    break
        finally:
            bar.close()
            if logger is not None:
                logger.close()
        return last

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> None:
        """Save the checkpoint and the export (with a run dir), then start a new env segment.

        Refuses (`NonFiniteError`) before writing anything when a weight, normalizer statistic or
        optimizer moment is NaN or inf."""
        if self.run is not None:
            state = self.state_dict()
            check_state_dict({"model": state["model"], "optimizer": state["optimizer"]["state"]},
                             f"PPO checkpoint after update {self.update_index} (env step {self.env_steps})",
                             self.run)
            self.run.save_checkpoint(state, self.env_steps, keep=self.cfg.run.keep_checkpoints)
            self.export()
        self._needs_reset = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "update": self.update_index, "env_steps": self.env_steps, "episodes": self.episodes,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "randomization": [stack.state_dict() for stack in self.stacks],
            "minibatch_rng": generator_state(self.rng), "global_rng": capture_global_rng(),
            "init_from": self.init_source,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise RunDirError(f"not a PPO checkpoint of version {CHECKPOINT_VERSION} "
                              f"(format {state.get('format')!r}, version {state.get('version')!r})")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise RunDirError(f"checkpoint does not fit this config's networks ({first})") from None
        self.optimizer.load_state_dict(state["optimizer"])
        saved = state["randomization"]
        if not saved and not any(stack.adr is not None for stack in self.stacks):
            saved = [stack.state_dict() for stack in self.stacks]  # a run with rollout workers: nothing to restore
        if len(saved) != len(self.stacks):
            raise RunDirError(f"checkpoint has {len(saved)} randomization stacks, this env {len(self.stacks)}")
        for stack, s in zip(self.stacks, saved):
            stack.load_state_dict(s)
        restore_generator(self.rng, state["minibatch_rng"])
        restore_global_rng(state["global_rng"])
        self.update_index = int(state["update"])
        self.env_steps = int(state["env_steps"])
        self.episodes = int(state["episodes"])
        self.init_source = state.get("init_from")  # checkpoints before run.init_from have none
        self._needs_reset = True

    def load_actor_from_export(self, path) -> dict[str, Any]:
        """Start from an exported policy: its actor weights and observation statistics (the critic, the
        value statistics and the optimizer start fresh; ``run.steps`` counts the steps trained here).

        An export of another agent, other actor keys, another policy config or observation sizes that do
        not fit is a one-line `RunDirError` naming the file."""
        import pathlib

        from simreal.training.export import load_export
        from simreal.utils.provenance import file_sha256

        path = pathlib.Path(path).expanduser()
        if path.is_dir():
            path = path / "policy.pt"
        if not path.is_file():
            raise RunDirError(f"run.init_from: {path}: no such export (a policy.pt or the folder holding one)")
        data = load_export(path, agent="ppo")
        cfg = data["config"]
        mine = network_config(self.cfg.policy, self.actor_keys, self.critic_keys, self.cfg.ppo.obs_clip,
                              self.cfg.ppo.normalize_observations)
        critic_only = ("critic_hidden", "critic_recurrent", "init_log_std")  # the critic starts fresh anyway
        for key in ("policy", "actor_keys", "obs_clip", "normalize_observations"):
            theirs, ours = cfg.get(key), mine[key]
            if key == "policy" and isinstance(theirs, dict):
                theirs = {k: v for k, v in theirs.items() if k not in critic_only}
                ours = {k: v for k, v in ours.items() if k not in critic_only}
            if theirs != ours:
                raise RunDirError(f"run.init_from: {path}: its {key} is {theirs!r}, this run's {ours!r}")
        try:
            self.model.actor.load_state_dict(data["weights"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise RunDirError(f"run.init_from: {path}: its actor does not fit this env's observations ({first})") \
                from None
        extra = data.get("extra") or {}
        earlier = extra.get("init_from") or {}
        steps = int(extra.get("env_steps", 0))
        return {"path": str(path), "sha256": file_sha256(path), "env_steps": steps,
                "total_env_steps": steps + int(earlier.get("total_env_steps", 0))}

    def export(self, path=None):
        """Write the policy export (weights, network config, spaces) to ``path`` or the run's ``policy.pt``."""
        from simreal.training.export import save_export

        if path is None:
            if self.run is None:
                raise RunDirError("export: no run directory; pass a path")
            path = self.run.export_path
        cfg = self.network_config()
        extra = {"env_id": self.cfg.env.id, "env_kwargs": dict(self.cfg.env.kwargs),
                 "action_repeat": self.cfg.env.action_repeat, "env_steps": self.env_steps,
                 "update": self.update_index}
        if self.init_source is not None:
            extra["init_from"] = dict(self.init_source)
        return save_export(path, self.agent_name, cfg, self.venv.observation_space, self.venv.action_space,
                           self.model.actor.state_dict(), extra)

    def close(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
        self.venv.close()
        if self.eval_env is not None:
            self.eval_env.close()
