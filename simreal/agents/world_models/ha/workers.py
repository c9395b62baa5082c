"""Rollouts on every core: a pool of worker processes, each with its own env and model copies.

`WorkerPool(spec, workers)` starts ``workers`` processes (``spawn``: each
imports torch and builds its env from scratch, which is safe with EGL and
CUDA, unlike ``fork``); ``workers=0`` runs the same `Worker` in this process.
Tasks are ``(method, args)`` pairs run by `Worker` methods; ``imap`` returns
results in task order. Every task carries its own seed, so results do not
depend on which worker ran it or how many there are (each worker uses one
torch thread).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.ha.controller import LinearController, dream_returns
from simreal.agents.world_models.ha.mdn_rnn import MDNRNN
from simreal.agents.world_models.ha.policy import IMAGE_KEY, WorldModelsActor
from simreal.agents.world_models.ha.rollouts import random_episode, run_episode
from simreal.training.config import ConfigError


def make_env(env_cfg: Mapping[str, Any], n_envs: int, seed: int):
    """The pixel VecEnv of a config's ``env`` section (`simreal.training.envs.env_from_config`)."""
    from simreal.training.envs import env_from_config

    if env_cfg.get("pixels") is None:
        raise ConfigError("env.pixels: World Models reads frames; expected [64, 64], got null")
    env = env_from_config(env_cfg, n_envs, seed, pixels_only_default=True)
    if IMAGE_KEY not in env.observation_space.spaces:
        env.close()
        raise ConfigError(f"env {env_cfg['id']}: no {IMAGE_KEY!r} observation")
    return env


@dataclass
class WorkerSpec:
    """What a worker builds at start (plain data: sent to spawned processes).

    ``models``: ``{"z_size", "depth", "hidden", "mixtures", "predict_reward",
    "predict_done", "action_dim"}``, ``weights``: ``{"actor": state_dict,
    "mdn_rnn": state_dict}`` and ``start``: ``{"mu", "logvar"}`` (encoded first
    frames, where dreams start) are only needed by the controller stage.
    """

    env_cfg: dict
    seed: int
    action_spec: ActionSpec
    models: dict | None = None
    weights: dict = field(default_factory=dict)
    start: dict = field(default_factory=dict)


class Worker:
    """Runs tasks: ``collect`` (random episodes), ``real`` (a controller in the env), ``dream`` (in M)."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.repeat = int(spec.env_cfg.get("action_repeat", 1))
        self._env = None
        self.actor = self.mdn = self.controller = None
        m = spec.models
        if m is not None:
            self.actor = WorldModelsActor(m["z_size"], m["depth"], m["hidden"], m["action_dim"]).eval()
            self.actor.load_state_dict(spec.weights["actor"])
            self.mdn = MDNRNN(m["z_size"], m["action_dim"], m["hidden"], m["mixtures"], m["predict_reward"],
                              m["predict_done"]).eval()
            self.mdn.load_state_dict(spec.weights["mdn_rnn"])
            self.controller = LinearController(m["z_size"], m["hidden"], m["action_dim"]).eval()

    @property
    def env(self):
        if self._env is None:
            self._env = make_env(self.spec.env_cfg, 1, self.spec.seed)
        return self._env

    def collect(self, index: int) -> dict[str, np.ndarray]:
        return random_episode(self.env, self.spec.action_spec, self.spec.seed, index)

    def real(self, params: np.ndarray, seed: int) -> tuple[float, int]:
        """(return, env frames) of one episode of the controller ``params`` from env seed ``seed``."""
        self.actor.controller.set_flat(params)
        state = [self.actor.initial_state(1)]

        def act(obs):
            action, state[0] = self.actor.step(torch.as_tensor(obs[IMAGE_KEY]), state[0])
            return action.numpy()

        episode = run_episode(self.env, self.spec.action_spec, seed, act)
        return float(episode["reward"].sum()), len(episode["reward"]) * self.repeat

    def dream(self, params: np.ndarray, seed: int, episodes: int, max_steps: int, temperature: float) -> np.ndarray:
        """Returns of ``episodes`` dreamed episodes of the controller ``params``."""
        self.controller.set_flat(params)
        generator = torch.Generator().manual_seed(seed)
        return dream_returns(self.mdn, self.controller, self.spec.start["mu"], self.spec.start["logvar"],
                             episodes, max_steps, temperature, generator)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


_WORKER: Worker | None = None


def _init_worker(spec: WorkerSpec) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = Worker(spec)


def _run_task(task: tuple[str, tuple]) -> Any:
    method, args = task
    return getattr(_WORKER, method)(*args)


class WorkerPool:
    """``workers`` spawned processes running `Worker` tasks (``0``: in this process)."""

    def __init__(self, spec: WorkerSpec, workers: int):
        if workers < 0:
            raise ConfigError(f"run.workers: expected >= 0, got {workers}")
        self._local = Worker(spec) if workers == 0 else None
        self._pool = None
        if workers > 0:
            self._pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (spec,))

    def imap(self, tasks: Iterable[tuple[str, tuple]]) -> Iterator[Any]:
        """Results of ``tasks`` in order (computed ahead in the workers)."""
        if self._pool is None:
            return (getattr(self._local, method)(*args) for method, args in tasks)
        return self._pool.imap(_run_task, tasks)

    def map(self, tasks: Iterable[tuple[str, tuple]]) -> list[Any]:
        return list(self.imap(tasks))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._local is not None:
            self._local.close()
            self._local = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
