"""Typed views of the ``run``, ``collect``, ``vae``, ``mdn_rnn`` and ``controller`` sections of
``configs.yaml`` (the YAML documents every key and its source; these classes check and carry them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from simreal.agents.world_models.config import build, raise_first
from simreal.training.config import ConfigError

STAGES = ("collect", "vae", "mdn_rnn", "controller")
MODES = ("dream", "real")


@dataclass
class RunConfig:
    steps: int = 1_000_000
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    workers: int = 2
    stages: list = field(default_factory=lambda: list(STAGES))
    log_every: int = 10
    keep_checkpoints: int = 2


@dataclass
class CollectConfig:
    episodes: int = 10_000
    checkpoint_every: int = 100


@dataclass
class VAEConfig:
    z_size: int = 32
    depth: int = 32
    kl_tolerance: float = 0.5
    lr: float = 1e-4
    batch_size: int = 100
    epochs: int = 10
    checkpoint_every: int = 500


@dataclass
class MDNRNNConfig:
    hidden: int = 256
    mixtures: int = 5
    predict_reward: bool = True
    predict_done: bool = True
    reward_scale: float = 1.0
    done_scale: float = 1.0
    lr: float = 1e-3
    grad_clip: float = 1.0
    batch_size: int = 100
    seq_len: int | None = None
    updates: int = 4000
    checkpoint_every: int = 500


@dataclass
class ControllerConfig:
    mode: str = "dream"
    popsize: int = 64
    sigma0: float = 0.1
    rollouts: int = 16
    generations: int = 300
    temperature: float = 1.15
    dream_steps: int | None = None
    eval_every: int = 25
    eval_episodes: int = 16
    checkpoint_every: int = 1


@dataclass
class WorldModelsConfig:
    """The agent's own sections of a resolved config (``env`` stays a plain mapping)."""

    run: RunConfig
    collect: CollectConfig
    vae: VAEConfig
    mdn_rnn: MDNRNNConfig
    controller: ControllerConfig

    @classmethod
    def from_resolved(cls, cfg: Mapping[str, Any]) -> "WorldModelsConfig":
        parts = {name: build(kind, cfg.get(name), name) for name, kind in
                 (("run", RunConfig), ("collect", CollectConfig), ("vae", VAEConfig), ("mdn_rnn", MDNRNNConfig),
                  ("controller", ControllerConfig))}
        out = cls(**parts)
        out.validate()
        return out

    def validate(self) -> None:
        r, c = self.run, self.controller
        unknown = [s for s in r.stages if s not in STAGES]
        if unknown or not r.stages:
            raise ConfigError(f"run.stages: expected a non-empty list of {', '.join(STAGES)}, got {r.stages!r}")
        if c.mode not in MODES:
            raise ConfigError(f"controller.mode: expected dream or real, got {c.mode!r}")
        positive = {"run.steps": r.steps, "run.log_every": r.log_every, "collect.episodes": self.collect.episodes,
                    "collect.checkpoint_every": self.collect.checkpoint_every, "vae.z_size": self.vae.z_size,
                    "vae.depth": self.vae.depth, "vae.batch_size": self.vae.batch_size, "vae.epochs": self.vae.epochs,
                    "vae.checkpoint_every": self.vae.checkpoint_every, "mdn_rnn.hidden": self.mdn_rnn.hidden,
                    "mdn_rnn.mixtures": self.mdn_rnn.mixtures, "mdn_rnn.batch_size": self.mdn_rnn.batch_size,
                    "mdn_rnn.updates": self.mdn_rnn.updates, "mdn_rnn.checkpoint_every": self.mdn_rnn.checkpoint_every,
                    "controller.rollouts": c.rollouts, "controller.generations": c.generations,
                    "controller.eval_every": c.eval_every, "controller.checkpoint_every": c.checkpoint_every,
                    "run.keep_checkpoints": r.keep_checkpoints}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key}: expected >= 1, got {value}")
        checks = [
            (c.popsize >= 2, "controller.popsize", ">= 2", c.popsize),
            (c.sigma0 > 0, "controller.sigma0", "> 0", c.sigma0),
            (c.temperature > 0, "controller.temperature", "> 0", c.temperature),
            (c.eval_episodes >= 0, "controller.eval_episodes", ">= 0", c.eval_episodes),
            (c.dream_steps is None or c.dream_steps >= 1, "controller.dream_steps", "null or >= 1", c.dream_steps),
            (self.mdn_rnn.seq_len is None or self.mdn_rnn.seq_len >= 1, "mdn_rnn.seq_len", "null or >= 1",
             self.mdn_rnn.seq_len),
            (r.workers >= 0, "run.workers", ">= 0", r.workers),
            (r.threads >= 0, "run.threads", ">= 0", r.threads),
            (self.vae.kl_tolerance >= 0, "vae.kl_tolerance", ">= 0", self.vae.kl_tolerance),
            (self.vae.lr > 0, "vae.lr", "a positive learning rate (> 0)", self.vae.lr),
            (self.mdn_rnn.lr > 0, "mdn_rnn.lr", "a positive learning rate (> 0)", self.mdn_rnn.lr),
            (self.mdn_rnn.reward_scale >= 0, "mdn_rnn.reward_scale", ">= 0", self.mdn_rnn.reward_scale),
            (self.mdn_rnn.done_scale >= 0, "mdn_rnn.done_scale", ">= 0", self.mdn_rnn.done_scale),
        ]
        raise_first(checks)
