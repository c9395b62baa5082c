"""Typed views of the sections of ``configs.yaml`` (the YAML documents every key; these classes
check and carry them): ``model``, ``behavior``, ``batch``, ``replay`` and ``run`` (every agent),
``planner`` (PlaNet) and ``contrastive`` (Dreaming), and the top-level ``agent`` name."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from simreal.training.config import ConfigError, from_dict


@dataclass
class RSSMConfig:
    dist: str = "discrete"        # discrete (V2, V3) | gaussian (V1)
    deter: int = 512
    stoch: int = 32               # number of categorical latents, or Gaussian dimensions
    classes: int = 32             # classes per categorical latent (discrete only)
    hidden: int = 512
    gru: str = "layernorm"        # layernorm (V2, V3) | standard (V1, torch's GRUCell)
    unimix: float = 0.01
    min_std: float = 0.1          # Gaussian latents: std = softplus(x) + min_std
    initial: str = "learned"      # learned (V3) | zeros


@dataclass
class KLConfig:
    free: float = 1.0
    dyn: float = 0.5
    rep: float = 0.1
    free_avg: bool = False


@dataclass
class OptConfig:
    lr: float = 1e-4
    eps: float = 1e-8
    clip: float = 1000.0
    weight_decay: float = 0.0


@dataclass
class ScalarHeadConfig:
    head: str = "twohot"          # twohot | gaussian
    bins: int = 255
    zero_init: bool = True


@dataclass
class LossScales:
    decoder: float = 1.0
    reward: float = 1.0
    cont: float = 1.0


@dataclass
class ModelConfig:
    keys: list | None = None
    units: int = 512
    layers: int = 2
    cnn_depth: int = 32
    act: str = "silu"
    norm: bool = True
    symlog_inputs: bool = True
    vector_decoder: str = "symlog_mse"
    image_decoder: str = "mse"
    cont: bool = True
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    reward: ScalarHeadConfig = field(default_factory=ScalarHeadConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    loss_scales: LossScales = field(default_factory=LossScales)
    opt: OptConfig = field(default_factory=OptConfig)


@dataclass
class ActorConfig:
    dist: str = "bounded_normal"  # bounded_normal (V3) | trunc_normal (V2) | tanh_normal (V1); discrete envs: onehot
    min_std: float = 0.1
    max_std: float = 1.0
    init_std: float = 5.0         # tanh_normal only
    entropy: float = 3e-4
    reinforce_mix: float | None = None   # null: 0 (dynamics) for continuous, 1 (REINFORCE) for discrete
    expl_noise: float = 0.0
    unimix: float = 0.01
    opt: OptConfig = field(default_factory=lambda: OptConfig(3e-5, 1e-5, 100.0, 0.0))


@dataclass
class CriticConfig:
    head: str = "twohot"
    bins: int = 255
    zero_init: bool = True
    slow_target: bool = False     # compute lambda-returns with the slow critic (V2)
    slow_regularizer: float = 1.0 # pull the critic toward the slow critic's output (V3)
    slow_every: int = 1
    slow_fraction: float = 0.02
    opt: OptConfig = field(default_factory=lambda: OptConfig(3e-5, 1e-5, 100.0, 0.0))


@dataclass
class ReturnNormConfig:
    enabled: bool = True
    decay: float = 0.99
    max: float = 1.0              # scale = max(1 / max, P_high - P_low): small returns are never scaled up
    low: float = 5.0
    high: float = 95.0


@dataclass
class BehaviorConfig:
    horizon: int = 15
    gamma: float = 0.997
    lam: float = 0.95
    units: int = 512
    layers: int = 2
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    return_norm: ReturnNormConfig = field(default_factory=ReturnNormConfig)


@dataclass
class BatchConfig:
    size: int = 16
    length: int = 64


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000
    spill: bool = False
    cross_episodes: bool = True


@dataclass
class RunConfig:
    steps: int = 100_000
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    prefill: int = 5000
    train_ratio: float = 512.0
    pretrain_updates: int = 0
    log_every: int = 1000
    eval_every: int = 10_000
    eval_episodes: int = 5
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    video_every: int = 10_000
    compile: bool = False


@dataclass
class PlannerConfig:
    """PlaNet's cross-entropy-method planner (its defaults are the paper's)."""

    horizon: int = 12
    candidates: int = 1000
    top_k: int = 100
    iterations: int = 10
    init_std: float = 1.0
    expl_noise: float = 0.3

    def validate(self) -> None:
        checks = [(self.horizon >= 1, "horizon", ">= 1", self.horizon),
                  (self.candidates >= 2, "candidates", ">= 2", self.candidates),
                  (1 <= self.top_k <= self.candidates, "top_k", f"in [1, candidates ({self.candidates})]",
                   self.top_k),
                  (self.iterations >= 1, "iterations", ">= 1", self.iterations),
                  (self.init_std > 0, "init_std", "> 0", self.init_std),
                  (self.expl_noise >= 0, "expl_noise", ">= 0", self.expl_noise)]
        raise_first(checks, "planner")


@dataclass
class ContrastiveConfig:
    """Dreaming's reconstruction-free representation objective."""

    scale: float = 1.0            # weight of the summed InfoNCE terms in the world-model loss
    proj: int = 128               # width of the state and observation projections the score compares
    overshoot: int = 3            # K: InfoNCE also at distances 1..K through the linear dynamics
    crop_pad: int = 4             # random crop: pad by this many pixels (edge replicated), crop back
    decoder: bool = True          # train the visualization decoder (on stopped-gradient features)
    decoder_opt: OptConfig = field(default_factory=lambda: OptConfig(3e-4, 1e-5, 100.0, 0.0))

    def validate(self) -> None:
        checks = [(self.scale > 0, "scale", "> 0", self.scale),
                  (self.proj >= 1, "proj", ">= 1", self.proj),
                  (self.overshoot >= 0, "overshoot", ">= 0", self.overshoot),
                  (self.crop_pad >= 0, "crop_pad", ">= 0", self.crop_pad)]
        checks += opt_checks(self.decoder_opt, "decoder_opt")
        raise_first(checks, "contrastive")


AGENTS = ("dreamer", "planet", "dreaming")


def agent_name(cfg: Mapping[str, Any]) -> str:
    """The resolved config's ``agent`` (``dreamer`` when the key is absent, as in runs made before it)."""
    name = cfg.get("agent", "dreamer")
    if name not in AGENTS:
        raise ConfigError(f"agent: expected one of {', '.join(AGENTS)}, got {name!r}")
    return name


def section(cls, cfg: Mapping[str, Any], name: str):
    """The validated dataclass of one optional section (its defaults when the config lacks it)."""
    out = build(cls, cfg.get(name), name)
    out.validate()
    return out


def raise_first(checks, where: str = "") -> None:
    """Raise a `ConfigError` for the first failed ``(ok, key, expected, got)`` check; ``where`` prefixes the key."""
    prefix = f"{where}." if where else ""
    for ok, key, expected, got in checks:
        if not ok:
            raise ConfigError(f"{prefix}{key}: expected {expected}, got {got!r}")


def build(cls, values: Mapping[str, Any] | None, where: str):
    """Dataclass ``cls`` from a (nested) mapping; unknown keys are a `ConfigError` naming ``where``."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and f.name in values:
            sub = values[f.name]
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{where}.{f.name}: expected a mapping, got {sub!r}")
            values[f.name] = build(kind, sub, f"{where}.{f.name}")
    return from_dict(cls, values, where)


def as_dict(obj) -> dict:
    return dataclasses.asdict(obj)


@dataclass
class DreamerConfig:
    """The agent's own sections of a resolved config."""

    model: ModelConfig
    behavior: BehaviorConfig
    batch: BatchConfig
    replay: ReplayConfig
    run: RunConfig

    @classmethod
    def from_resolved(cls, cfg: Mapping[str, Any]) -> "DreamerConfig":
        parts = {name: build(kind, cfg.get(name), name) for name, kind in
                 (("model", ModelConfig), ("behavior", BehaviorConfig), ("batch", BatchConfig),
                  ("replay", ReplayConfig), ("run", RunConfig))}
        out = cls(**parts)
        out.validate()
        return out

    def validate(self) -> None:
        checks = [
            (self.model.rssm.dist in ("discrete", "gaussian"), "model.rssm.dist", "discrete or gaussian",
             self.model.rssm.dist),
            (self.model.rssm.gru in ("layernorm", "standard"), "model.rssm.gru", "layernorm or standard",
             self.model.rssm.gru),
            (self.model.rssm.initial in ("learned", "zeros"), "model.rssm.initial", "learned or zeros",
             self.model.rssm.initial),
            (self.model.reward.head in ("twohot", "gaussian"), "model.reward.head", "twohot or gaussian",
             self.model.reward.head),
            (self.behavior.critic.head in ("twohot", "gaussian"), "behavior.critic.head", "twohot or gaussian",
             self.behavior.critic.head),
            (self.behavior.actor.dist in ("bounded_normal", "trunc_normal", "tanh_normal", "onehot"),
             "behavior.actor.dist", "bounded_normal, trunc_normal, tanh_normal or onehot", self.behavior.actor.dist),
            (self.behavior.horizon >= 1, "behavior.horizon", ">= 1", self.behavior.horizon),
            (0.0 < self.behavior.lam <= 1.0, "behavior.lam", "in (0, 1]", self.behavior.lam),
            (0.0 < self.behavior.gamma <= 1.0, "behavior.gamma", "in (0, 1]", self.behavior.gamma),
            (self.batch.size >= 1 and self.batch.length >= 2, "batch", "size >= 1 and length >= 2",
             f"{self.batch.size}x{self.batch.length}"),
            (self.run.train_ratio > 0, "run.train_ratio", "> 0", self.run.train_ratio),
            (self.run.prefill >= 0, "run.prefill", ">= 0", self.run.prefill),
            (self.replay.capacity >= self.batch.length, "replay.capacity", f">= batch.length ({self.batch.length})",
             self.replay.capacity),
            (self.behavior.actor.reinforce_mix is None or 0.0 <= self.behavior.actor.reinforce_mix <= 1.0,
             "behavior.actor.reinforce_mix", "null or in [0, 1]", self.behavior.actor.reinforce_mix),
        ]
        raise_first(checks)
        for key in ("steps", "log_every", "eval_every", "checkpoint_every", "video_every"):
            if getattr(self.run, key) < 1:
                raise ConfigError(f"run.{key}: expected >= 1 env steps, got {getattr(self.run, key)}")
        m, b = self.model, self.behavior
        sizes = {"model.units": m.units, "model.layers": m.layers, "model.cnn_depth": m.cnn_depth,
                 "model.rssm.deter": m.rssm.deter, "model.rssm.stoch": m.rssm.stoch,
                 "model.rssm.classes": m.rssm.classes, "model.rssm.hidden": m.rssm.hidden,
                 "behavior.units": b.units, "behavior.layers": b.layers, "behavior.critic.slow_every": b.critic.slow_every}
        counts = {"run.eval_episodes": self.run.eval_episodes, "run.keep_checkpoints": self.run.keep_checkpoints,
                  "run.threads": self.run.threads, "run.pretrain_updates": self.run.pretrain_updates}
        checks = [(v >= 1, k, ">= 1", v) for k, v in sizes.items()] + [(v >= 0, k, ">= 0", v) for k, v in counts.items()]
        for where, opt in (("model.opt", m.opt), ("behavior.actor.opt", b.actor.opt),
                           ("behavior.critic.opt", b.critic.opt)):
            checks += opt_checks(opt, where)
        checks += [(b.actor.min_std > 0, "behavior.actor.min_std", "> 0", b.actor.min_std),
                   (b.actor.max_std >= b.actor.min_std, "behavior.actor.max_std",
                    f">= behavior.actor.min_std ({b.actor.min_std})", b.actor.max_std),
                   (0.0 < b.critic.slow_fraction <= 1.0, "behavior.critic.slow_fraction", "in (0, 1]",
                    b.critic.slow_fraction)]
        raise_first(checks)


def opt_checks(opt: OptConfig, where: str) -> list:
    """`raise_first` checks of an optimizer section: learning rate and eps positive, decay >= 0
    (``clip`` <= 0 means no gradient clipping)."""
    return [(opt.lr > 0, f"{where}.lr", "a positive learning rate (> 0)", opt.lr),
            (opt.eps > 0, f"{where}.eps", "> 0", opt.eps),
            (opt.weight_decay >= 0, f"{where}.weight_decay", ">= 0", opt.weight_decay)]


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check a resolved dreamer / planet / dreaming config, every section the agent reads (one-line
    `ConfigError` naming the key): what ``simreal train`` runs before it writes anything."""
    name = agent_name(cfg)
    DreamerConfig.from_resolved(cfg)
    if name == "planet":
        section(PlannerConfig, cfg, "planner")
    elif name == "dreaming":
        section(ContrastiveConfig, cfg, "contrastive")
    env = cfg.get("env") or {}
    for key in ("n_envs", "action_repeat"):
        value = env.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"env.{key}: expected an integer >= 1, got {value!r}")
