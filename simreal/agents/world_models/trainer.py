"""The training loop of the RSSM agents: collect with the policy, store sequences, update at the
train ratio. The config's ``agent`` picks the learner: ``dreamer`` (DreamerV1/V2/V3), ``planet``
(CEM planning, `planet.py`) or ``dreaming`` (contrastive, `dreaming.py`); each provides
``train_step(batch)``, ``policy.act``, ``training_state`` and an export, and the loop is the same.

``train(cfg, run_dir)`` runs a resolved config (see configs.yaml) in a
`simreal.training.run.RunDir`: it writes metrics (TensorBoard and
metrics.jsonl), checkpoints every ``run.checkpoint_every`` env steps (agent,
optimizers, replay, counters and every RNG; loadable with
``weights_only=True``), exports the policy alongside, and continues from the
newest checkpoint when the run dir was opened with ``resume=True``. A
resumed run starts fresh episodes (the simulator state is not saved).

A NaN or inf observation or reward (one vectorized check of each env step's
batch), loss or gradient norm (before the bad update touches the weights), or
weight (before every checkpoint) stops the run with
`simreal.utils.finite.NonFiniteError` (``TrainingDiverged`` is its old
name): one line naming what, where (update or env step, key, env copy and the
randomizer values of its episode) and the last finite checkpoint, which is the
newest on disk; nothing is saved after it.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.config import DreamerConfig, agent_name
from simreal.agents.world_models.dreamer import Dreamer
from simreal.agents.world_models.nets import ObsLayout
from simreal.agents.world_models.replay import SequenceReplay
from simreal.agents.world_models.world_model import Batch
from simreal.training.config import ConfigError
from simreal.utils.spaces import canonical, space_to_data
from simreal.utils.finite import (NonFiniteError, PhysicsDiverged, all_finite, check_observations, check_rewards,
                                     check_state_dict, checkpoint_note)
from simreal.training.logger import Logger, MetricAverager
from simreal.training.run import (RunDir, RunDirError, capture_global_rng, generator_state, pick_device,
                                  restore_generator, restore_global_rng)

VIDEO_SAMPLES = 4
VIDEO_CONTEXT = 5


def make_env(env_cfg: Mapping[str, Any], n_envs: int, seed: int):
    """The training (or evaluation) VecEnv described by a config's ``env`` section."""
    from simreal.training.envs import env_from_config

    return env_from_config(env_cfg, n_envs, seed)


def build_agent(name: str, cfg: Mapping[str, Any], dc: DreamerConfig, layout: ObsLayout, spec: ActionSpec,
                device: torch.device) -> tuple[torch.nn.Module, Callable]:
    """(agent, its export function) for the config's ``agent`` name."""
    if name == "dreamer":
        from simreal.agents.world_models.dreamer import export_policy

        return Dreamer(layout, spec, dc.model, dc.behavior, device), export_policy
    module = importlib.import_module(f"simreal.agents.world_models.{name}")
    return module.build_agent(cfg, dc, layout, spec, device), module.export_policy


def trainable_parameters(module: torch.nn.Module) -> int:
    """Parameters the optimizers update (slow critics and other frozen copies left out)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def replay_fields(layout: ObsLayout, observation_space, spec: ActionSpec) -> dict:
    fields = {k: (observation_space.spaces[k].shape, observation_space.spaces[k].dtype) for k in layout.keys}
    fields.update({"action": ((spec.dim,), np.float32), "reward": ((), np.float32),
                   "is_first": ((), bool), "is_terminal": ((), bool)})
    return fields


def check_spaces(saved: Mapping[str, Any], observation_space, action_space, where: str) -> None:
    """One-line error when a checkpoint's spaces differ from the env's."""
    current = {"observation": space_to_data(observation_space), "action": space_to_data(action_space)}
    saved = {k: canonical(saved[k]) for k in ("observation", "action")}  # a checkpoint of any earlier form
    if saved["observation"] != current["observation"]:
        old, new = saved["observation"]["subspaces"], current["observation"]["subspaces"]
        diff = sorted(set(old) ^ set(new))
        if diff:
            detail = f"keys {sorted(old)} in the checkpoint, {sorted(new)} from the env"
        else:
            key = next(k for k in old if old[k] != new[k])
            detail = (f"key {key!r} is {old[key]['shape']} {old[key].get('dtype')} in the checkpoint, "
                      f"{new[key]['shape']} {new[key].get('dtype')} from the env")
        raise RunDirError(f"{where}: observation space mismatch on resume: {detail}")
    if saved["action"] != current["action"]:
        raise RunDirError(f"{where}: action space mismatch on resume: {saved['action']} in the checkpoint, "
                          f"{current['action']} from the env")


@dataclass
class Counters:
    frames: int = 0              # env steps (policy steps x action repeat, all copies)
    policy_steps: int = 0        # replay steps added by acting (all copies)
    updates: int = 0
    episodes: int = 0
    train_start: int = -1        # policy_steps when training started (-1: not yet)
    ratio_updates: int = 0       # updates done on the train-ratio schedule
    seconds: float = 0.0         # wall time spent in run() over all sessions, up to the last checkpoint

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Trainer:
    """One training run (see the module docstring); `run` drives it to ``run.steps`` env steps."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: RunDir, progress: bool = True):
        self.cfg = dict(cfg)
        self.run_dir = run_dir
        self.progress = progress
        self.agent_name = agent_name(cfg)
        self.dc = DreamerConfig.from_resolved(cfg)
        self.env_cfg = dict(cfg["env"])
        r = self.dc.run
        if r.threads > 0:
            torch.set_num_threads(r.threads)
        torch.manual_seed(r.seed)
        self.device = pick_device(r.device)
        self.n_envs = int(self.env_cfg.get("n_envs", 1))
        if self.n_envs < 1:
            raise ConfigError(f"env.n_envs: expected >= 1, got {self.n_envs}")
        self.repeat = int(self.env_cfg.get("action_repeat", 1))
        self.env = make_env(self.env_cfg, self.n_envs, r.seed)
        self.layout = ObsLayout.from_space(self.env.observation_space, self.dc.model.keys)
        self.spec = ActionSpec.from_space(self.env.action_space, "one_hot")
        spaces = self.env.observation_space.spaces
        self._float_keys = [k for k in self.layout.keys if np.dtype(spaces[k].dtype).kind == "f"]  # NaN-checked
        self.agent, self._export = build_agent(self.agent_name, self.cfg, self.dc, self.layout, self.spec,
                                               self.device)
        if r.compile:
            compile_agent(self.agent)
        spill = run_dir.path / "replay" if self.dc.replay.spill else None
        self.replay = SequenceReplay(replay_fields(self.layout, self.env.observation_space, self.spec),
                                     self.dc.replay.capacity, self.n_envs, seed=r.seed, spill_dir=spill,
                                     cross_episodes=self.dc.replay.cross_episodes)
        self.explore_rng = np.random.default_rng(r.seed + 1)
        self.counters = Counters()
        self.episode_log: list[tuple[int, float, int]] = []   # (frame, return, length in env steps)
        self.eval_log: list[tuple[int, float]] = []
        self._eval_env = None
        resumed = False
        if run_dir.resume and run_dir.latest_checkpoint() is not None:
            self._restore(*run_dir.load_latest_good_checkpoint())
            resumed = True
        self.logger = Logger(run_dir.path, resume_step=self.counters.frames if resumed else None)
        self._seconds_base = self.counters.seconds
        self._t_start = time.perf_counter()

    # ------------------------------------------------------------ checkpoints
    def _spaces(self) -> dict:
        return {"observation": space_to_data(self.env.observation_space),
                "action": space_to_data(self.env.action_space)}

    def checkpoint(self) -> None:
        agent = self.agent.training_state()
        check_state_dict(agent, f"{self._name} checkpoint at env step {self.counters.frames}", self.run_dir)
        self.counters.seconds = self._seconds_base + time.perf_counter() - self._t_start
        state = {"step": self.counters.frames, "counters": self.counters.as_dict(),
                 "agent": agent, "replay": self.replay.state_dict(),
                 "rng": capture_global_rng(), "explore_rng": generator_state(self.explore_rng),
                 "spaces": self._spaces(),
                 "episodes": torch.tensor(self.episode_log, dtype=torch.float64).reshape(-1, 3),
                 "evals": torch.tensor(self.eval_log, dtype=torch.float64).reshape(-1, 2)}
        self.run_dir.save_checkpoint(state, self.counters.frames, keep=self.dc.run.keep_checkpoints)
        self.export()

    def export(self):
        return self._export(self.run_dir.export_path, self.agent, self.env.observation_space,
                            self.env.action_space, extra={"env_id": self.env_cfg["id"],
                                                          "frames": self.counters.frames})

    def _restore(self, state: Mapping[str, Any], where: str) -> None:
        check_spaces(state["spaces"], self.env.observation_space, self.env.action_space, where)
        self.agent.load_training_state(state["agent"])
        self.replay.load_state_dict(state["replay"])
        restore_global_rng(state["rng"])
        restore_generator(self.explore_rng, state["explore_rng"])
        self.counters = Counters(**state["counters"])
        self.episode_log = [(int(f), float(r), int(n)) for f, r, n in state["episodes"].tolist()]
        self.eval_log = [(int(f), float(r)) for f, r in state["evals"].tolist()]

    # ------------------------------------------------------------ acting
    def _first_rows(self, obs: Mapping[str, np.ndarray], rows: np.ndarray) -> dict:
        n = len(rows)
        step = {k: np.asarray(obs[k])[rows] for k in self.layout.keys}
        step.update(action=np.zeros((n, self.spec.dim), np.float32), reward=np.zeros(n, np.float32),
                    is_first=np.ones(n, bool), is_terminal=np.zeros(n, bool))
        return step

    def evaluate(self, episodes: int) -> dict[str, float]:
        """``episodes`` episodes (one per eval env copy) with the deterministic policy: mean
        ``return`` and, for continuous actions, ``action_saturation``: the fraction of action
        components at the bounds (|a| > 0.99). Near 1 the policy has collapsed to bang-bang or
        constant pushes (a local optimum on cartpole swing-up) rather than learned control."""
        if self._eval_env is None:
            self._eval_env = make_env(self.env_cfg, episodes, self.dc.run.seed + 10_000)
        env = self._eval_env
        obs = env.reset()
        state = self.agent.policy.initial_state(episodes)
        returns = np.zeros(episodes)
        finished = np.zeros(episodes, bool)
        saturated = counted = 0
        where = f"{self._name} evaluation at env step {self.counters.frames}"
        for _ in range(100_000):
            self._check_step(env, obs, where, what="evaluation observation")
            action, state = self.agent.policy.act(self.agent.obs_to_tensors(obs), state, explore=False)
            action = action.cpu().numpy()
            if not self.spec.discrete:
                live = action[~finished]
                saturated += int((np.abs(live) > 0.99).sum())
                counted += live.size
            obs, reward, done, _ = self._env_step(env, self.spec.to_env(action), where)
            returns += np.where(finished, 0.0, reward)
            finished |= done
            state = self.agent.policy.reset_state(state, torch.as_tensor(done, device=self.device))
            if finished.all():
                break
        out = {"return": float(returns.mean())}
        if counted:
            out["action_saturation"] = saturated / counted
        return out

    # ------------------------------------------------------------ learning
    def _update(self) -> dict[str, float]:
        b = self.dc.batch
        batch = Batch.from_numpy(self.replay.sample(b.size, b.length), self.layout.keys, self.device)
        try:
            metrics = self.agent.train_step(batch)
        except NonFiniteError as exc:
            raise NonFiniteError(f"{self._name} update {self.counters.updates + 1} (env step {self.counters.frames}): "
                                 f"{exc}{checkpoint_note(self.run_dir)}") from None
        self.counters.updates += 1
        return metrics

    # ------------------------------------------------------------ non-finite
    @property
    def _name(self) -> str:
        return {"dreamer": "Dreamer", "planet": "PlaNet", "dreaming": "Dreaming"}.get(self.agent_name,
                                                                                       self.agent_name)

    def _check_step(self, env, obs: Mapping[str, np.ndarray], where: str, rows: np.ndarray | None = None,
                    what: str = "observation", randomization: bool = True) -> None:
        """Raise `NonFiniteError` when the float keys of ``obs`` (copies ``rows``, else all) hold a NaN or inf:
        one vectorized check per key; names key, copy, element and that copy's randomizer values."""
        keys = self._float_keys
        arrays = {k: np.asarray(obs[k]) if rows is None else np.asarray(obs[k])[rows] for k in keys}
        if all_finite(*arrays.values()):
            return
        from simreal.training.envs import episode_randomization

        check_observations(arrays, where, what, (lambda i: episode_randomization(env, i)) if randomization else None,
                           self.run_dir, None if rows is None else [int(r) for r in rows])

    def _env_step(self, env, action: np.ndarray, where: str):
        try:
            return env.step(action)
        except PhysicsDiverged as exc:
            raise PhysicsDiverged(f"{where}: {exc}{checkpoint_note(self.run_dir)}") from None

    def _updates_due(self) -> int:
        c, r, b = self.counters, self.dc.run, self.dc.batch
        if c.frames < r.prefill or not self.replay.can_sample(b.length):
            return 0
        due = 0
        if c.train_start < 0:
            c.train_start = c.policy_steps
            due += r.pretrain_updates
        target = int((c.policy_steps - c.train_start) * r.train_ratio / (b.size * b.length))
        due += max(0, target - c.ratio_updates)
        c.ratio_updates = max(c.ratio_updates, target)
        return due

    def _video(self) -> None:
        b = self.dc.batch
        if (self.layout.image_key is None or self.agent.wm.decoder is None or b.length <= VIDEO_CONTEXT
                or not self.replay.can_sample(b.length)):
            return
        arrays = self.replay.sample(VIDEO_SAMPLES, b.length)
        batch = Batch.from_numpy(arrays, self.layout.keys, self.device)
        truth, pred = self.agent.wm.open_loop(batch, VIDEO_CONTEXT)
        self.logger.image("train/open_loop_true_pred_error", self.counters.frames, video_grid(truth, pred))

    # ------------------------------------------------------------ the loop
    def run(self) -> dict:
        from tqdm import tqdm

        r, c = self.dc.run, self.counters
        total = int(r.steps)
        env = self.env
        obs = env.reset()
        self._check_step(env, obs, f"{self._name} at env step {c.frames} (reset)")
        state = self.agent.policy.initial_state(self.n_envs)
        self.replay.add(self._first_rows(obs, np.arange(self.n_envs)))
        ep_return = np.zeros(self.n_envs)
        ep_length = np.zeros(self.n_envs, np.int64)
        averager = MetricAverager()
        recent_returns: list[float] = []
        marks = {name: c.frames // every for name, every in
                 (("log", r.log_every), ("eval", r.eval_every), ("ckpt", r.checkpoint_every),
                  ("video", r.video_every))}
        self._t_start = t_last = time.perf_counter()
        frames_last, update_time, updates_last = c.frames, 0.0, c.updates
        bar = tqdm(total=total, initial=min(c.frames, total), unit="step", desc=self.agent_name,
                   disable=not self.progress, dynamic_ncols=True, leave=False)
        try:
            while c.frames < total:
                if c.frames < r.prefill:
                    action = self.spec.random(self.n_envs, self.explore_rng)
                else:
                    act, state = self.agent.policy.act(self.agent.obs_to_tensors(obs), state, explore=True)
                    action = act.cpu().numpy()
                where = f"{self._name} at env step {c.frames + self.n_envs * self.repeat}"
                next_obs, reward, done, infos = self._env_step(env, self.spec.to_env(action), where)
                self._check_step(env, next_obs, where)  # (done copies: their next episode's first observation)
                if not all_finite(reward):
                    check_rewards(reward, where, self.run_dir)
                step = {k: np.array(next_obs[k]) for k in self.layout.keys}
                terminal = np.zeros(self.n_envs, bool)
                for i in np.flatnonzero(done):
                    final = infos[i]["terminal_observation"]
                    for k in self.layout.keys:
                        step[k][i] = final[k]
                    terminal[i] = not infos[i].get("TimeLimit.truncated", False)
                if done.any():  # the ended episodes' last observations (their randomization is gone by now)
                    self._check_step(env, step, where, np.flatnonzero(done), "terminal observation", False)
                step.update(action=action.astype(np.float32), reward=reward.astype(np.float32),
                            is_first=np.zeros(self.n_envs, bool), is_terminal=terminal)
                self.replay.add(step)
                ep_return += reward
                ep_length += self.repeat
                c.frames += self.n_envs * self.repeat
                c.policy_steps += self.n_envs
                if done.any():
                    rows = np.flatnonzero(done)
                    self.replay.add(self._first_rows(next_obs, rows), rows)
                    state = self.agent.policy.reset_state(state, torch.as_tensor(done, device=self.device))
                    for i in rows:
                        self.episode_log.append((c.frames, float(ep_return[i]), int(ep_length[i])))
                        recent_returns.append(float(ep_return[i]))
                        c.episodes += 1
                    ep_return[rows], ep_length[rows] = 0.0, 0
                obs = next_obs

                due = self._updates_due()
                if due:
                    t0 = time.perf_counter()
                    for _ in range(due):
                        averager.add(self._update())
                    update_time += time.perf_counter() - t0
                bar.update(min(c.frames, total) - bar.n)

                if c.frames // r.log_every > marks["log"]:
                    marks["log"] = c.frames // r.log_every
                    now = time.perf_counter()
                    metrics = averager.pop()
                    if recent_returns:
                        metrics["train/episode_return"] = float(np.mean(recent_returns))
                        bar.set_postfix(ret=f"{np.mean(recent_returns):.1f}", upd=c.updates)
                        recent_returns = []
                    metrics["time/fps"] = (c.frames - frames_last) / max(now - t_last, 1e-9)
                    if c.updates > updates_last and update_time > 0:
                        metrics["time/updates_per_s"] = (c.updates - updates_last) / update_time
                    metrics["train/replay_steps"] = len(self.replay)
                    metrics["train/updates"] = c.updates
                    self.logger.scalars(c.frames, metrics)
                    t_last, frames_last, update_time, updates_last = now, c.frames, 0.0, c.updates
                if r.eval_episodes > 0 and c.frames // r.eval_every > marks["eval"]:
                    marks["eval"] = c.frames // r.eval_every
                    self._record_eval()
                if c.frames // r.video_every > marks["video"]:
                    marks["video"] = c.frames // r.video_every
                    self._video()
                if c.frames // r.checkpoint_every > marks["ckpt"]:
                    marks["ckpt"] = c.frames // r.checkpoint_every
                    self.checkpoint()
        finally:
            bar.close()
        if r.eval_episodes > 0 and (not self.eval_log or self.eval_log[-1][0] != c.frames):
            self._record_eval()
        self.checkpoint()
        self.logger.close()
        summary = self.summary()
        (self.run_dir.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _record_eval(self) -> None:
        result = self.evaluate(self.dc.run.eval_episodes)
        self.eval_log.append((self.counters.frames, result["return"]))
        self.logger.scalars(self.counters.frames, {f"eval/{k}": v for k, v in result.items()})

    def summary(self) -> dict:
        c = self.counters
        last = [r for _, r, _ in self.episode_log[-10:]]
        return {"env": self.env_cfg["id"], "frames": c.frames, "policy_steps": c.policy_steps,
                "updates": c.updates, "episodes": c.episodes, "seconds": round(c.seconds, 1),
                "params": trainable_parameters(self.agent),
                "train_return_last10": float(np.mean(last)) if last else None,
                "eval": [{"frames": f, "return": r} for f, r in self.eval_log],
                "episode_returns": [{"frames": f, "return": r, "length": n} for f, r, n in self.episode_log]}

    def close(self) -> None:
        self.env.close()
        if self._eval_env is not None:
            self._eval_env.close()
        self.logger.close()


def video_grid(truth: torch.Tensor, pred: torch.Tensor, max_frames: int = 16) -> np.ndarray:
    """uint8 HxWx3 grid: for each sample three rows (true, predicted, |error|), columns over time."""
    truth, pred = truth[:, :max_frames].cpu(), pred[:, :max_frames].cpu()
    error = (truth - pred).abs()
    rows = []
    for i in range(truth.shape[0]):
        for frames in (truth[i], pred[i], error[i]):
            rows.append(torch.cat(list(frames), dim=1))     # (H, T*W, 3)
    grid = torch.cat(rows, dim=0)
    return (grid.clamp(0, 1) * 255).to(torch.uint8).numpy()


def compile_agent(agent: torch.nn.Module) -> None:
    """torch.compile the RSSM steps and the MLP heads (the hot, fixed-shape pieces)."""
    rssm = agent.wm.rssm
    rssm.img_step = torch.compile(rssm.img_step, dynamic=False)
    rssm.obs_step = torch.compile(rssm.obs_step, dynamic=False)


def train(cfg: Mapping[str, Any], run_dir: RunDir, progress: bool = True) -> dict:
    """Run (or resume) a training run of the config's agent; returns the summary also written to summary.json."""
    trainer = Trainer(cfg, run_dir, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
