"""What the model-based agents' training loops share (PETS, MBPO), so that each keeps only its own
acting and learning.

- `open_env` builds the env of a config's ``env`` section (vector observations, Box actions) and
  returns a `RealEnv`, whose `RealEnv.step` takes unit actions in [-1, 1], stores each copy's
  transition with its *true* next state (the terminal observation where an episode ended: the
  VecEnv has already reset that copy) and refuses non-finite observations or rewards.
- `fit_ensemble` is the model training of PETS (Chua et al. 2018): statistics of the whole replay,
  then minibatch updates of every member on its own draw (`GaussianEnsemble.loss`).
- `EpisodeReturns` (returns of finished episodes), `RunLog` (metrics.jsonl, TensorBoard, the tqdm
  bar), `crossed` (whether the last collection step passed a multiple of an interval) and
  `log_evaluate_checkpoint` (the periodic work after a step); `summary` is what ``train`` returns.
- `rng_state` / `restore_run`: the RNG and counter part of a checkpoint, and resuming from it.
- `ModelBasedRunConfig`: the ``run`` keys they share (steps, seed, prefill, logging, evaluation,
  checkpoints).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch

from simreal.agents.actions import ActionSpec
from simreal.agents.pets.ensemble import GaussianEnsemble
from simreal.training.config import ConfigError

if TYPE_CHECKING:
    from simreal.agents.pets.pets import Replay


@dataclasses.dataclass
class ModelBasedRunConfig:
    """The ``run`` keys every model-based agent has (each agent's ``RunConfig`` adds its own)."""

    steps: int = 20000
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    prefill: int = 1000
    log_every: int = 1000
    eval_every: int = 5000
    eval_episodes: int = 1
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2
    tensorboard: bool = True


def flatten(obs: Mapping[str, np.ndarray], keys: list[str]) -> np.ndarray:
    """`simreal.agents.pets.pets.flatten`, imported on use (pets.pets imports this module)."""
    from simreal.agents.pets.pets import flatten

    return flatten(obs, keys)


def crossed(every: int, before: int, now: int) -> bool:
    """Whether a step from ``before`` to ``now`` env steps passed a multiple of ``every`` (never for 0)."""
    return every > 0 and now // every > before // every


class RealEnv:
    """The training env as flat state vectors: ``x`` is the current (n_envs, state) observation."""

    def __init__(self, venv, keys: list[str], env_id: str):
        self.venv, self.keys, self.env_id = venv, keys, env_id
        self.actions = ActionSpec.from_space(venv.action_space)
        self.n_envs = venv.num_envs
        self.x = flatten(venv.reset(), keys)

    def reseed(self, seed: int) -> None:
        """Reseed and reset every copy (a resumed run: the episode in progress at the crash is lost)."""
        self.venv.seed(seed)
        self.x = flatten(self.venv.reset(), self.keys)

    def step(self, unit: np.ndarray, replay: Replay, env_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Act with unit actions ``unit`` (n_envs, action), store the transitions; returns reward, done."""
        obs, reward, done, infos = self.venv.step(self.actions.to_env(unit))
        x2 = flatten(obs, self.keys)
        true_next = x2.copy()
        for i in np.flatnonzero(done):
            true_next[i] = flatten({k: v[None] for k, v in infos[i]["terminal_observation"].items()}, self.keys)[0]
        if not np.all(np.isfinite(true_next)) or not np.all(np.isfinite(reward)):
            raise FloatingPointError(f"env {self.env_id}: non-finite observation or reward at env step "
                                     f"{env_steps}; the last checkpoint is kept")
        replay.add(self.x, unit, true_next, reward)
        self.x = x2
        return reward, done

    def close(self) -> None:
        self.venv.close()


def open_env(env_cfg: Mapping[str, Any], run_cfg, model_keys: list[str] | None, agent: str,
             uses: str) -> tuple[RealEnv, torch.device]:
    """Threads, device and torch's seed from ``run_cfg``, then the env; one-line `ConfigError` for pixels
    or a non-Box action space (``"{agent} {uses} continuous (Box) actions"``)."""
    from simreal.agents.pets.pets import vector_keys
    from simreal.training.envs import env_from_config
    from simreal.training.run import pick_device

    if env_cfg.get("pixels"):
        raise ConfigError(f"env.pixels: {agent} models vector observations; pixels are not supported")
    if run_cfg.threads > 0:
        torch.set_num_threads(run_cfg.threads)
    device = pick_device(run_cfg.device)
    torch.manual_seed(run_cfg.seed)
    venv = env_from_config(env_cfg, int(env_cfg.get("n_envs", 1)), run_cfg.seed)
    try:
        keys = vector_keys(venv.observation_space, model_keys)
    except ConfigError:
        venv.close()
        raise
    if not hasattr(venv.action_space, "low"):
        venv.close()
        raise ConfigError(f"env {env_cfg['id']}: {agent} {uses} continuous (Box) actions; "
                          f"got {type(venv.action_space).__name__}")
    return RealEnv(venv, keys, env_cfg["id"]), device


class EpisodeReturns:
    """Running returns of each env copy and the returns of finished episodes."""

    def __init__(self, n_envs: int, episodes: int = 0):
        self.running, self.returns, self.episodes = np.zeros(n_envs), [], int(episodes)

    def add(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Add one step; returns the copies whose episode just ended."""
        self.running += reward
        ended = np.flatnonzero(done)
        for i in ended:
            self.returns.append(float(self.running[i]))
            self.running[i] = 0.0
            self.episodes += 1
        return ended

    def recent(self) -> float:
        """Mean return of the last 10 finished episodes (NaN before the first)."""
        return float(np.mean(self.returns[-10:])) if self.returns else float("nan")


class RunLog:
    """The logger (metrics.jsonl and TensorBoard), a metric averager and the tqdm bar of one run."""

    def __init__(self, run, run_cfg, env_steps: int, desc: str, progress: bool):
        from tqdm import tqdm

        from simreal.training.logger import Logger, MetricAverager

        self.logger = Logger(run.path, resume_step=env_steps if run.resume else None,
                             tensorboard=run_cfg.tensorboard)
        self.averager = MetricAverager()
        self.bar = tqdm(total=run_cfg.steps, initial=env_steps, unit="step", desc=desc, disable=not progress)
        self.start, self.logged_at = time.perf_counter(), env_steps

    def log(self, env_steps: int, episodes: EpisodeReturns, extra: Mapping[str, float] | None = None) -> None:
        """The averaged metrics, the recent episode return and the env steps per second since the last log."""
        metrics = {**self.averager.pop(), **(extra or {})}
        if episodes.returns:
            metrics["train/episode_return"] = episodes.recent()
        metrics["time/fps"] = (env_steps - self.logged_at) / max(time.perf_counter() - self.start, 1e-9)
        self.start, self.logged_at = time.perf_counter(), env_steps
        self.logger.scalars(env_steps, metrics)
        if episodes.returns:
            self.bar.set_postfix(ret=f"{metrics['train/episode_return']:.1f}")

    def close(self) -> None:
        self.bar.close()
        self.logger.close()


def rng_state(rng: np.random.Generator, **generators: torch.Generator) -> dict:
    """The checkpoint entries of a run's RNGs: ``rng``, each named torch generator and ``global_rng``."""
    from simreal.training.run import capture_global_rng, generator_state

    return {"rng": generator_state(rng), **{k: g.get_state() for k, g in generators.items()},
            "global_rng": capture_global_rng()}


def restore_run(state: Mapping, real: RealEnv, run_cfg: ModelBasedRunConfig, rng: np.random.Generator,
                **generators: torch.Generator) -> tuple[int, int, float]:
    """Undo `rng_state` (the same names, restored in place) and reseed the env for the checkpoint's step;
    returns its env steps, episodes and last evaluation return."""
    from simreal.training.run import restore_generator, restore_global_rng

    restore_generator(rng, state["rng"])
    for name, generator in generators.items():
        generator.set_state(state[name])
    restore_global_rng(state["global_rng"])
    env_steps = int(state["env_steps"])
    real.reseed(run_cfg.seed + env_steps)
    return env_steps, int(state["episodes"]), float(state.get("eval_return", float("nan")))


def log_evaluate_checkpoint(run_cfg: ModelBasedRunConfig, log: RunLog, returns: EpisodeReturns, before: int,
                            env_steps: int, last_eval: float, evaluate: Callable[[], float] | None,
                            checkpoint: Callable[[], None], extra: Mapping[str, float] | None = None) -> float:
    """The periodic work after a collection step from ``before`` to ``env_steps``: a log record, an evaluation
    (``evaluate()``, when given: the agent is ready to act) and a checkpoint, each when its interval was
    crossed; returns the latest evaluation return."""
    if crossed(run_cfg.log_every, before, env_steps):
        log.log(env_steps, returns, extra)
    if evaluate is not None and run_cfg.eval_episodes > 0 and crossed(run_cfg.eval_every, before, env_steps):
        last_eval = evaluate()
        log.logger.scalars(env_steps, {"eval/return": last_eval})
    if crossed(run_cfg.checkpoint_every, before, env_steps):
        checkpoint()
    return last_eval


def summary(env_steps: int, returns: EpisodeReturns, last_eval: float) -> dict:
    """What a model-based agent's ``train`` returns."""
    return {"env_steps": env_steps, "episodes": returns.episodes, "eval_return": last_eval,
            "train_return": returns.recent()}


def fit_ensemble(model: GaussianEnsemble, optim: torch.optim.Optimizer, replay: Replay, updates: int, batch: int,
                 generator: torch.Generator, device: torch.device, averager, agent: str, env_steps: int) -> None:
    """One model training (PETS'): standardize with the whole replay, then ``updates`` steps, each member
    on its own ``batch`` drawn with replacement; a non-finite loss is a `FloatingPointError`."""
    model.train()
    inputs, targets = replay.all()
    model.set_statistics(inputs, targets)
    for _ in range(updates):
        s, a, y = (t.to(device) for t in replay.sample(model.members, batch, generator))
        loss, stats = model.loss(s, a, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{agent}: the model loss is {float(loss)} at env step {env_steps}; "
                                     "the last checkpoint is kept")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        averager.add(stats)
