"""I2A's training: simreal's PPO trainer with an imagination-augmented actor, an environment model that
is pretrained and then fine-tuned, and the distillation loss of the rollout policy.

The paper (Racanière, Weber et al. 2017) trains with A3C; here the actor-critic is simreal's PPO
(`simreal.agents.ppo.ppo.PPOTrainer`: clipped surrogate, GAE, the asymmetric critic, recurrent
core), the natural on-policy equivalent. What I2A adds, per update:

1. **Environment model** (Sec. 3.2): a network from (o_t, a_t) to (o_{t+1} - o_t, r_t) (simreal's
   Gaussian ensemble with one member, `simreal.agents.pets.ensemble`, whose mean is the prediction),
   **pretrained** before the first PPO update on ``i2a.pretrain_steps`` env steps of uniform random
   actions for ``i2a.pretrain_updates`` minibatches, then **fine-tuned** after every PPO update on a
   replay of every real transition seen (``i2a.model_updates`` minibatches; its own Adam, so PPO's
   loss never moves it). The pretraining steps count in the run's env steps.
2. **Distillation** (Sec. 3.1): the rollout policy pi^ imitates the actor, by
   `imagination.distillation_loss` scaled by ``i2a.distill_coef``, added to PPO's loss on every
   minibatch (PPO's optimizer trains pi^; the actor's distribution is a fixed target).

Vector observations only: the environment model is a multilayer perceptron on the actor's keys, and
PPO's networks read flat vectors; an image key is refused with one line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from simreal.agents.i2a.imagination import I2AActor, distillation_loss, model_action_size, model_actions
from simreal.agents.pets.pets import Replay
from simreal.agents.ppo.policy import ActorCritic, PolicyConfig, PPOPolicy, flatten_obs, key_sizes
from simreal.agents.ppo.ppo import PPOTrainer, TrainConfig
from simreal.training.config import ConfigError
from simreal.utils.finite import check_rewards
from simreal.utils.seeding import make_rng

AGENT_NAME = "i2a"


@dataclasses.dataclass
class I2AConfig:
    """The ``i2a`` section (I2A's additions to PPO's config)."""

    depth: int = 3                  # imagined steps per rollout (the paper: 5 on Sokoban; simreal setting)
    candidates: int = 5             # rollouts per step for Box / MultiDiscrete actions (Discrete: one per action)
    encoder: int = 32               # rollout encoder LSTM size per rollout
    rollout_hidden: int = 32        # the rollout policy's hidden layer
    model_hidden: int = 128         # environment model: units per layer
    model_layers: int = 2
    model_lr: float = 1e-3
    model_batch: int = 256
    pretrain_steps: int = 2000      # env steps of uniform random actions before PPO starts
    pretrain_updates: int = 500     # minibatch updates of the model on them
    model_updates: int = 20         # fine-tuning minibatches after every PPO update
    replay: int = 100_000           # real transitions kept for the model
    distill_coef: float = 1.0       # weight of the distillation loss in PPO's loss

    def check(self) -> None:
        for key in ("depth", "candidates", "encoder", "rollout_hidden", "model_hidden", "model_layers",
                    "model_batch", "replay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"i2a.{key}: expected an integer >= 1, got {value!r}")
        for key in ("pretrain_steps", "pretrain_updates", "model_updates"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"i2a.{key}: expected an integer >= 0, got {value!r}")
        for key, low_ok in (("model_lr", False), ("distill_coef", True)):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (
                    value == 0 and not low_ok):
                raise ConfigError(f"i2a.{key}: expected a finite number {'>= 0' if low_ok else '> 0'}, got {value!r}")


@dataclasses.dataclass
class I2ATrainConfig(TrainConfig):
    i2a: I2AConfig = dataclasses.field(default_factory=I2AConfig)

    SECTIONS: ClassVar[dict[str, type]] = {**TrainConfig.SECTIONS, "i2a": I2AConfig}

    def check(self) -> None:
        super().check()
        self.i2a.check()


def build_actor(obs_size: int, spec, policy: PolicyConfig, i2a: I2AConfig, seed: int, obs_clip: float,
                normalize: bool) -> I2AActor:
    return I2AActor(obs_size, spec, policy, i2a.depth, i2a.candidates, i2a.encoder, i2a.model_hidden,
                    i2a.model_layers, i2a.rollout_hidden, seed, obs_clip, normalize)


class I2ATrainer(PPOTrainer):
    """PPO with I2A's actor, model training and distillation (see the module docstring)."""

    config_class = I2ATrainConfig
    agent_name = AGENT_NAME

    def __init__(self, config: Mapping[str, Any], run=None, progress: bool = False):
        if (config.get("run") or {}).get("workers"):
            raise ConfigError("run.workers: I2A pretrains its model on the learner's envs; rollout workers are PPO's "
                              "only so far (run.workers=0)")
        self.model_rng = torch.Generator().manual_seed(0)
        self._resumed: Mapping[str, Any] | None = None  # a resumed checkpoint's I2A part (`load_state_dict`)
        super().__init__(config, run, progress)
        actor: I2AActor = self.model.actor
        c = self.cfg.i2a
        self.model_rng.manual_seed(int(make_rng(self.cfg.run.seed, "i2a-model").integers(2**62)))
        self.model_optimizer = torch.optim.Adam(actor.model.parameters(), lr=c.model_lr)
        self.replay = Replay(c.replay, actor.obs_size, model_action_size(actor.head))
        self.pretrained = False
        if self._resumed is not None:
            self._load_i2a(self._resumed)

    # ---------------------------------------------------------------- networks
    def build_model(self, space) -> ActorCritic:
        for key in self.actor_keys:
            if len(space[key].shape) > 1:
                raise ConfigError(f"env.actor_keys: I2A's environment model reads vectors; {key!r} has shape "
                                  f"{space[key].shape} (name vector keys with env.actor_keys)")
        p, size = self.cfg.ppo, key_sizes(space, self.actor_keys)
        actor = build_actor(size, self.action_spec, self.cfg.policy, self.cfg.i2a, self.cfg.run.seed, p.obs_clip,
                            p.normalize_observations)
        return ActorCritic(size, key_sizes(space, self.critic_keys), self.action_spec, self.cfg.policy, p.obs_clip,
                           p.normalize_observations, p.normalize_values, actor=actor)

    def policy_parameters(self) -> list[torch.nn.Parameter]:
        model = set(map(id, self.model.actor.model.parameters()))
        return [q for q in self.model.parameters() if id(q) not in model]

    def network_config(self) -> dict[str, Any]:
        return {**super().network_config(), "i2a": dataclasses.asdict(self.cfg.i2a), "seed": self.cfg.run.seed}

    @property
    def total_updates(self) -> int:
        """PPO updates that fit in ``run.steps`` after the pretraining steps."""
        left = self.cfg.run.steps - self.cfg.i2a.pretrain_steps
        return max(1, math.ceil(left / self.steps_per_update))

    # ---------------------------------------------------------------- the model
    def fit_model(self, updates: int) -> dict[str, float]:
        """``updates`` minibatches of the environment model on the replay (statistics of the whole replay)."""
        from simreal.agents.model_based import fit_ensemble
        from simreal.training.logger import MetricAverager

        if updates == 0 or self.replay.size == 0:
            return {}
        averager = MetricAverager()
        fit_ensemble(self.model.actor.model, self.model_optimizer, self.replay, updates, self.cfg.i2a.model_batch,
                     self.model_rng, self.device, averager, "i2a", self.env_steps)
        return {f"i2a/{k.split('/', 1)[1]}": v for k, v in averager.pop().items()}

    def pretrain(self) -> dict[str, float]:
        """Uniform random actions for ``i2a.pretrain_steps`` env steps into the replay, then the model's
        pretraining; the envs are reset afterwards (PPO's first segment starts fresh)."""
        c, venv, head = self.cfg.i2a, self.venv, self.model.actor.head
        rng = make_rng(self.cfg.run.seed, "i2a-pretrain")
        n = venv.num_envs
        obs = venv.reset()
        x = self._flat(obs)
        for _ in range(math.ceil(c.pretrain_steps / n)):
            action = self.action_spec.random(n, rng)
            obs, reward, done, infos = venv.step(self.action_spec.to_env(action))
            x2, where = self._flat(obs), f"I2A pretraining (env step {self.env_steps + n})"
            if not np.all(np.isfinite(x2)):
                self._non_finite_observation(venv, obs, where)
            if not np.all(np.isfinite(reward)):
                check_rewards(np.asarray(reward, np.float64), where, self.run)
            keep = ~np.asarray(done, bool)  # an episode's last transition has no next observation here
            if keep.any():
                a = model_actions(head, torch.as_tensor(action)).numpy()
                self.replay.add(x[keep], a[keep], x2[keep], np.asarray(reward)[keep])
            x = x2
            self.env_steps += n
        self.pretrained = True
        self._needs_reset = True
        return self.fit_model(c.pretrain_updates)

    def _flat(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return flatten_obs(obs, self.actor_keys)

    def _add_rollout(self) -> None:
        """The last rollout's real transitions (those whose next observation is in the buffer) into the replay."""
        buf, head = self.buffer, self.model.actor.head
        x = buf.raw_actor
        dones = buf.dones.cpu().numpy().astype(bool)
        keep = ~dones[:-1]
        a = model_actions(head, buf.actions[:-1].cpu()).numpy()
        r = buf.rewards[:-1].cpu().numpy()
        self.replay.add(x[:-1][keep], a[keep], x[1:][keep], r[keep])

    # ------------------------------------------------------------------ update
    def collect(self) -> dict[str, float]:
        if not self.pretrained:
            stats = self.pretrain()
            out = super().collect()
            return {**stats, **out}
        return super().collect()

    def auxiliary_losses(self, params: torch.Tensor, actor_obs: torch.Tensor) -> dict[str, torch.Tensor]:
        actor = self.model.actor
        rollout = actor.rollout_policy(actor_obs)
        loss = distillation_loss(actor.head, params, actor.rollout_policy.head, rollout)
        return {"distill_loss": self.cfg.i2a.distill_coef * loss}

    def update(self, lr: float) -> dict[str, float]:
        stats = super().update(lr)
        self._add_rollout()
        stats.update(self.fit_model(self.cfg.i2a.model_updates))
        return stats

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "i2a": {"model_optimizer": self.model_optimizer.state_dict(),
                                                "replay": self.replay.state_dict(), "pretrained": self.pretrained,
                                                "model_rng": self.model_rng.get_state()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """PPO's part now; I2A's once its optimizer and replay exist (PPO's constructor loads before they do)."""
        if state.get("i2a") is None:
            from simreal.training.run import RunDirError

            raise RunDirError("checkpoint is a PPO checkpoint without I2A's model state; start the run anew")
        super().load_state_dict(state)
        self._resumed = state["i2a"]

    def _load_i2a(self, extra: Mapping[str, Any]) -> None:
        self.model_optimizer.load_state_dict(extra["model_optimizer"])
        self.replay.load_state_dict(extra["replay"])
        self.pretrained = bool(extra["pretrained"])
        self.model_rng.set_state(extra["model_rng"])


def policy_from_export(data: Mapping[str, Any], device: str = "cpu") -> PPOPolicy:
    """The exported I2A actor as a `simreal.agents.Policy` (it imagines at every step)."""
    from simreal.agents.actions import ActionSpec
    from simreal.training.config import from_dict

    cfg = data["config"]
    obs_space, act_space = data["observation_space"], data["action_space"]
    actor = build_actor(key_sizes(obs_space, cfg["actor_keys"]), ActionSpec.from_space(act_space),
                        PolicyConfig(**cfg["policy"]), from_dict(I2AConfig, cfg["i2a"], "export i2a"),
                        int(cfg["seed"]), cfg["obs_clip"], cfg["normalize_observations"])
    actor.load_state_dict(data["weights"])
    return PPOPolicy(actor.eval(), cfg["actor_keys"], obs_space, act_space, device)


__all__ = ["I2AConfig", "I2ATrainConfig", "I2ATrainer", "policy_from_export"]
