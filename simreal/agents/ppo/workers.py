"""PPO's rollout workers as Ray actors (``simreal train ppo --set run.workers=N``; ``run.ray_address`` for a
cluster).

Each worker holds a `simreal.training.envs.make_training_env` VecEnv of its slice of the copies (its own
`mujoco.batch` thread pool and randomization streams; copy ``offset + i`` of the whole layout is its local
copy ``i``, seeded as one process seeds it), a copy of the learner's actor-critic and a `Collector`. Every
update the learner sends the current weights and the rollout's sampling noise (`collect.draw_noise`,
drawn in one process's order) and gathers every worker's rollout into its buffer: the same numbers as
the single-process trainer for the same seeds and copy layout (tests/agents/ppo/test_ppo_workers.py).

Without Ray installed, ``run.workers > 0`` is a one-line error; ``run.workers = 0`` is the one-process
path. ADR ranges live in the randomization stacks, which are the workers' here: a file with ADR is refused
with workers for now. A worker that dies (its process or node) is replaced and every copy restarts its
segment: the episodes running then are discarded, never half-kept, and the rollout is collected again. A
worker's own error (a non-finite observation, a diverged simulation) stops the run with that error's one
line, as in one process; ``--resume`` continues from the last checkpoint.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np
import torch

from simreal.agents.ppo.buffer import RolloutBuffer
from simreal.agents.ppo.collect import Collector, where_text


class RolloutWorker:
    """One worker's envs, model copy and collector (made a Ray actor by `RayRollouts`)."""

    def __init__(self, env: Mapping[str, Any], seed: int, offset: int, n: int, model, keys: tuple, action_spec,
                 gamma: float, n_steps: int, run=None, threads: int = 1):
        from simreal.training.envs import make_training_env

        torch.set_num_threads(max(1, int(threads)))
        self.venv = make_training_env(env["id"], n, seed=seed + offset, randomization=env["randomization"],
                                      randomization_in_state=env["randomization_in_state"],
                                      action_repeat=env["action_repeat"], env_kwargs=dict(env["kwargs"]),
                                      nthread=env["nthread"])
        self.model = model.cpu()
        head = self.model.actor.head
        buffer = RolloutBuffer(n_steps, n, self.model.actor.obs_size, self.model.critic.obs_size, head.action_shape,
                               head.action_dtype, torch.device("cpu"))
        self.collector = Collector(self.venv, self.model, keys[0], keys[1], action_spec, gamma, buffer,
                                   torch.device("cpu"), run, offset)

    def ready(self) -> bool:
        return True

    def start_segment(self, seed: int) -> bool:
        self.collector.start_segment(seed)
        return True

    def collect(self, weights: Mapping[str, torch.Tensor], where: tuple, noise: torch.Tensor) -> dict[str, Any]:
        import time

        started = time.perf_counter()
        self.model.load_state_dict(weights)
        out = self.collector.collect(functools.partial(where_text, *where[:3], steps_per_update=where[3]), noise)
        buf = self.collector.buffer
        arrays = {k: getattr(buf, k) for k in ("actor_obs", "critic_obs", "actions", "log_probs", "values", "rewards",
                                                "dones", "starts", "raw_actor", "raw_critic")}
        return {**out, **arrays, "initial_state": buf.initial_state,
                "randomization": self.collector.pop_randomization(), "seconds": time.perf_counter() - started}

    def close(self) -> bool:
        self.venv.close()
        return True


class RayRollouts:
    """The learner's side: ``workers`` Ray actors over ``n_envs`` copies cut in contiguous slices."""

    def __init__(self, workers: int, address: str | None, env: Mapping[str, Any], seed: int, n_envs: int, model,
                 keys: tuple, action_spec, gamma: float, n_steps: int, run=None, threads: int = 1):
        from simreal.training.config import ConfigError
        from simreal.utils.ray_session import join_ray

        if not 1 <= workers <= n_envs:
            raise ConfigError(f"run.workers: expected 1 to env.n_envs={n_envs} workers, got {workers}")
        try:
            self.ray, self._started = join_ray(address, workers)
        except ImportError:
            raise ConfigError("run.workers: rollout workers need Ray: pip install 'simreal[ray]'") from None
        cuts = np.array_split(np.arange(n_envs), workers)
        self.slices = [(int(c[0]), int(c[-1]) + 1) for c in cuts]
        self._actor = self.ray.remote(num_cpus=1)(RolloutWorker)
        self._spawn = lambda a, b: self._actor.remote(dict(env), seed, a, b - a, _cpu_copy(model), keys, action_spec,
                                                      gamma, n_steps, run, threads)
        self.actors = [self._spawn(a, b) for a, b in self.slices]
        self._get([w.ready.remote() for w in self.actors])  # built (a worker's construction error surfaces here)
        self.segment_seed: int | None = None
        self.replaced = 0  # workers lost and replaced so far

    def _get(self, refs):
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:  # the worker's own one-line error, not Ray's wrapper
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            raise cause from None

    def start_segment(self, seed: int) -> None:
        self.segment_seed = int(seed)
        self._get([w.start_segment.remote(seed) for w in self.actors])

    def _replace_dead(self) -> int:
        """Replace every worker that no longer answers; all workers restart the segment (the episodes that
        were running are discarded, none is half-kept). Returns how many were replaced."""
        dead = []
        for k, worker in enumerate(self.actors):
            try:
                self.ray.get(worker.ready.remote(), timeout=30)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
                dead.append(k)
        for k in dead:
            self.actors[k] = self._spawn(*self.slices[k])
        self.replaced += len(dead)
        if dead and self.segment_seed is not None:
            self.start_segment(self.segment_seed)
        return len(dead)

    def collect(self, model, buffer: RolloutBuffer, where: tuple, noise: torch.Tensor) -> dict[str, Any]:
        """One rollout of every worker into ``buffer`` (their slices side by side); the merged statistics. A
        worker lost on the way (its node or process died) is replaced and the rollout collected again, once."""
        weights = self.ray.put({k: v.detach().cpu() for k, v in model.state_dict().items()})
        try:
            parts = self._get([w.collect.remote(weights, where, noise[:, a:b])
                               for w, (a, b) in zip(self.actors, self.slices)])
        except self.ray.exceptions.RayActorError:
            if not self._replace_dead():
                raise
            parts = self._get([w.collect.remote(weights, where, noise[:, a:b])
                               for w, (a, b) in zip(self.actors, self.slices)])
        dev = buffer.device
        for (a, b), part in zip(self.slices, parts):
            for key in ("actor_obs", "critic_obs", "actions", "log_probs", "values", "rewards", "dones"):
                getattr(buffer, key)[:, a:b] = part[key].to(dev)
            for key in ("starts", "raw_actor", "raw_critic"):
                getattr(buffer, key)[:, a:b] = part[key]
        states = [p["initial_state"] for p in parts]
        buffer.initial_state = tuple(tuple(torch.cat([s[i][j] for s in states], dim=1).to(dev)
                                           for j in range(len(states[0][i]))) for i in range(2))
        merged: dict[str, Any] = {"ends": [], "returns": [], "lengths": [], "successes": [], "randomization": {}}
        for part in parts:
            for key in ("ends", "returns", "lengths", "successes"):
                merged[key] += part[key]
            for name, values in part["randomization"].items():
                merged["randomization"].setdefault(name, []).extend(values)
        merged["last_value"] = torch.cat([p["last_value"] for p in parts]).to(dev)
        self.worker_seconds = [float(p["seconds"]) for p in parts]  # each worker's own collection time
        return merged

    def close(self) -> None:
        try:
            self._get([w.close.remote() for w in self.actors])
        finally:
            from simreal.utils.ray_session import leave_ray

            for worker in self.actors:  # free their CPUs now, not when the handles are collected
                self.ray.kill(worker)
            leave_ray(self.ray, self._started)


def _cpu_copy(model):
    import copy

    return copy.deepcopy(model).cpu()
