"""World Models training in four stages, each resumable: collect -> vae -> mdn_rnn -> controller.

1. ``collect``: random-policy episodes on the pixel env, in parallel worker
   processes, stored under ``RUN_DIR/rollouts/`` (see `rollouts`).
2. ``vae``: V trained on every collected frame (epochs of shuffled minibatches).
3. ``mdn_rnn``: the frames encoded once by V (``RUN_DIR/encoded.npz``: mu and
   logvar per frame); M trained on windows of (z, action) sequences, z sampled
   from the stored mu and logvar at every update (as the authors do).
4. ``controller``: C evolved with CMA-ES; each candidate's fitness is its mean
   return over ``controller.rollouts`` episodes in the real env (``mode: real``,
   the paper's CarRacing) or inside the dream (``mode: dream``, its Doom
   experiment), all candidates evaluated on the worker pool, on the same
   episode seeds within a generation (common random numbers). Every
   ``eval_every`` generations the distribution mean plays ``eval_episodes``
   episodes in the real env; the best of those is exported.

``run.stages`` picks the stages of one invocation (in the order above); a stage
already finished is skipped, an interrupted one continues from its last
checkpoint, a stage whose predecessor has not finished is an error. Stage
progress is counted in its own unit (episodes, updates, generations); the run
checkpoints (``RUN_DIR/checkpoints/step_N.pt``, N counting saves) hold every
stage's weights, the optimizer of the stage in progress, the counters, the
collection log and the CMA-ES fitness history (the strategy is rebuilt by
replaying it). All randomness is derived from ``run.seed`` and the position in
the run (episode, update, generation), so a resumed run repeats the
uninterrupted one exactly, whatever the number of workers.

``frames`` counts env frames (policy steps x action repeat) used for training:
collected episodes and, with ``mode: real``, candidate episodes; ``run.steps``
caps it (collection stops there; real-mode evolution stops at the generation
that reaches it, and goes on when a resume raises ``--steps``). Evaluation
episodes are counted apart (``eval_frames``), as Dreamer's evaluations are. Metrics go to
``RUN_DIR/<stage>/metrics.jsonl`` and
``RUN_DIR/<stage>/tb`` (x axis: frames for collect, updates for vae and
mdn_rnn, generations for controller).

A NaN or inf reward in a collected episode, V's latents, a loss or gradient
norm (checked before the optimizer step), a candidate's fitness, or a weight
(checked before every checkpoint and export) stops the run with
`simreal.utils.finite.NonFiniteError`: one line naming what, where and the
last finite checkpoint, which is the newest on disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.ha.config import STAGES, WorldModelsConfig
from simreal.agents.world_models.ha.controller import CMAES
from simreal.agents.world_models.ha.mdn_rnn import MDNRNN, mdn_rnn_loss
from simreal.agents.world_models.ha.policy import IMAGE_KEY, WorldModelsActor, export_policy
from simreal.agents.world_models.ha.rollouts import (CMA, DREAM, EVAL, MDN_BATCH, REAL, VAE_BATCH, VAE_NOISE,
                                                     RolloutStore, derive_seed, env_seed, sequence_batch)
from simreal.agents.world_models.ha.vae import ConvVAE, check_image_shape, to_float_image, vae_loss
from simreal.agents.world_models.ha.workers import WorkerPool, WorkerSpec, make_env
from simreal.training.config import ConfigError
from simreal.utils.spaces import canonical, space_to_data
from simreal.utils.finite import (NonFiniteError, all_finite, check_scalars, check_state_dict, checkpoint_note,
                                     first_non_finite, fmt)
from simreal.training.logger import Logger, MetricAverager
from simreal.training.run import RunDir, RunDirError, pick_device

TrainingDiverged = NonFiniteError  # the old name, still exported by the package
ENCODE_BATCH = 256
INIT = 100          # seed stream of the network initialization (apart from the rollouts' streams)


@dataclass
class Counters:
    frames: int = 0          # env frames used for training (collection + real-mode candidate episodes)
    eval_frames: int = 0     # env frames of evaluation episodes
    episodes: int = 0        # collected episodes
    vae_updates: int = 0
    mdn_updates: int = 0
    generations: int = 0
    saves: int = 0           # checkpoints written (the N of step_N.pt)
    seconds: float = 0.0     # wall time over all sessions, up to the last checkpoint


class Trainer:
    """One World Models run in a `RunDir` (see the module docstring); `run` does the requested stages."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: RunDir, progress: bool = True):
        self.cfg = dict(cfg)
        self.run_dir = run_dir
        self.progress = progress
        self.wc = WorldModelsConfig.from_resolved(cfg)
        self.env_cfg = dict(cfg["env"])
        r, v, m = self.wc.run, self.wc.vae, self.wc.mdn_rnn
        if r.threads > 0:
            torch.set_num_threads(r.threads)
        self.device = pick_device(r.device)
        self.repeat = int(self.env_cfg.get("action_repeat", 1))
        probe = make_env(self.env_cfg, 1, r.seed)
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        check_image_shape(self.observation_space.spaces[IMAGE_KEY].shape)
        self.spec = ActionSpec.from_space(self.action_space, "one_hot")
        if self.spec.discrete:
            raise ConfigError(f"env {self.env_cfg['id']}: World Models' controller needs a continuous (Box) "
                              f"action space, got {self.action_space}")
        with torch.random.fork_rng(devices=[]):        # seeds the initialization without touching the caller's RNG
            torch.manual_seed(derive_seed(r.seed, INIT))
            self.vae = ConvVAE(v.z_size, v.depth).to(self.device)
            self.mdn = MDNRNN(v.z_size, self.spec.dim, m.hidden, m.mixtures, m.predict_reward,
                              m.predict_done).to(self.device)
        self.controller_dim = (v.z_size + m.hidden) * self.spec.dim + self.spec.dim
        self.store = RolloutStore(run_dir.path / "rollouts")
        self.encoded_path = run_dir.path / "encoded.npz"
        self.counters = Counters()
        self.done: list[str] = []                                 # finished stages among collect, vae, mdn_rnn
        self.episode_log: list[tuple[int, float, int]] = []       # collected: (frames, return, length in frames)
        self.fitness: list[np.ndarray] = []                       # CMA-ES: mean return per candidate, per generation
        self.eval_log: list[tuple[int, int, float]] = []          # (frames, generation, mean return)
        self.best: tuple[float, np.ndarray] | None = None         # best evaluated return and its parameters
        self.session: dict[str, list[str]] = {"ran": [], "skipped": []}
        self._optimizer: tuple[str, torch.optim.Optimizer] | None = None
        self._saved_optimizer: dict = {}
        if run_dir.resume and run_dir.latest_checkpoint() is not None:
            self._restore(*run_dir.load_latest_good_checkpoint())
        else:   # a fresh run: files of a run killed before its first checkpoint are stale
            for stale in ("rollouts", *STAGES):
                shutil.rmtree(run_dir.path / stale, ignore_errors=True)
            self.encoded_path.unlink(missing_ok=True)
        self._seconds_base = self.counters.seconds
        self._t_start = time.perf_counter()

    # ------------------------------------------------------------ checkpoints
    def _spaces(self) -> dict:
        return {"observation": space_to_data(self.observation_space), "action": space_to_data(self.action_space)}

    def _seconds(self) -> float:
        return self._seconds_base + time.perf_counter() - self._t_start

    def checkpoint(self) -> None:
        c = self.counters
        c.seconds = self._seconds()
        c.saves += 1
        optimizer = {}
        if self._optimizer is not None:
            optimizer = {"stage": self._optimizer[0], "state": self._optimizer[1].state_dict()}
        best = {} if self.best is None else {"return": self.best[0], "params": torch.from_numpy(self.best[1])}
        weights = {"vae": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()},
                   "mdn_rnn": {k: v.detach().cpu() for k, v in self.mdn.state_dict().items()},
                   "optimizer": optimizer, "best": best}
        check_state_dict(weights, f"World Models checkpoint {c.saves}", self.run_dir)
        state = {"step": c.saves, "counters": dataclasses.asdict(c), "done": list(self.done),
                 "spaces": self._spaces(), "optimizer": optimizer, "vae": weights["vae"], "mdn_rnn": weights["mdn_rnn"],
                 "fitness": torch.tensor(np.array(self.fitness, np.float64).reshape(-1, self.wc.controller.popsize)),
                 "evals": torch.tensor(self.eval_log, dtype=torch.float64).reshape(-1, 3),
                 "best": best,
                 "episodes": torch.tensor(self.episode_log, dtype=torch.float64).reshape(-1, 3)}
        self.run_dir.save_checkpoint(state, c.saves, keep=self.wc.run.keep_checkpoints)

    def _restore(self, state: Mapping[str, Any], where: str) -> None:
        if {k: canonical(v) for k, v in state["spaces"].items()} != self._spaces():
            raise RunDirError(f"{where}: the env's spaces differ from the checkpoint's (observation "
                              f"{state['spaces']['observation']}, action {state['spaces']['action']} saved)")
        self.counters = Counters(**state["counters"])
        self.done = list(state["done"])
        self.vae.load_state_dict(state["vae"])
        self.mdn.load_state_dict(state["mdn_rnn"])
        self._saved_optimizer = dict(state["optimizer"])
        self.fitness = [row.numpy() for row in state["fitness"]]
        self.eval_log = [(int(f), int(g), float(r)) for f, g, r in state["evals"].tolist()]
        if state["best"]:
            self.best = (float(state["best"]["return"]), state["best"]["params"].numpy())
        self.episode_log = [(int(f), float(r), int(n)) for f, r, n in state["episodes"].tolist()]

    def _optimizer_for(self, stage: str, params, lr: float) -> torch.optim.Optimizer:
        """Adam for ``stage``, with its moments restored when the checkpoint was taken mid-stage."""
        opt = torch.optim.Adam(params, lr=lr)
        if self._saved_optimizer.get("stage") == stage:
            opt.load_state_dict(self._saved_optimizer["state"])
        self._optimizer = (stage, opt)
        return opt

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, module: torch.nn.Module, clip: float,
              stage: str, update: int) -> float:
        """Backpropagate and step; `NonFiniteError` before the step when the loss or gradient norm is NaN or inf."""
        where = f"World Models {stage} update {update}"
        if not torch.isfinite(loss):
            check_scalars({"loss": float(loss.detach())}, where, self.run_dir)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(module.parameters(), clip if clip > 0 else float("inf")))
        check_scalars({"gradient norm": norm}, where, self.run_dir)
        opt.step()
        return norm

    def _logger(self, stage: str, counter: int) -> Logger:
        """The stage's logger; records after ``counter`` (the checkpointed progress) are dropped."""
        path = self.run_dir.path / stage
        if counter == 0:
            shutil.rmtree(path / "tb", ignore_errors=True)
        return Logger(path, resume_step=counter if counter > 0 else None)

    # ------------------------------------------------------------ stages
    def _finished(self, stage: str) -> bool:
        if stage != "controller":
            return stage in self.done
        c, cc = self.counters, self.wc.controller
        return c.generations >= cc.generations or (cc.mode == "real" and c.frames >= self.wc.run.steps)

    def run(self) -> dict:
        requested = [s for s in STAGES if s in self.wc.run.stages]
        for stage in requested:
            if self._finished(stage):
                self.session["skipped"].append(stage)
                continue
            before = STAGES[STAGES.index(stage) - 1] if stage != STAGES[0] else None
            if before is not None and not self._finished(before):
                raise ConfigError(f"run.stages: stage {stage!r} needs stage {before!r} finished first "
                                  f"(finished: {', '.join(self.done) or 'none'})")
            getattr(self, f"_run_{stage}")()
            self.session["ran"].append(stage)
        summary = self.summary()
        (self.run_dir.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _run_collect(self) -> None:
        c, cc, r = self.counters, self.wc.collect, self.wc.run
        logger = self._logger("collect", c.frames if c.episodes > 0 else 0)
        bar = tqdm(total=cc.episodes, initial=c.episodes, desc="collect", unit="ep", disable=not self.progress)
        indices = range(c.episodes, cc.episodes)
        try:
            with WorkerPool(WorkerSpec(self.env_cfg, r.seed, self.spec), r.workers) as pool:
                for index, episode in zip(indices, pool.imap(("collect", (i,)) for i in indices)):
                    if c.frames >= r.steps:
                        break
                    self._check_episode(index, episode)
                    self.store.write(index, episode)
                    length = len(episode["reward"]) * self.repeat
                    ret = float(episode["reward"].sum())
                    c.episodes, c.frames = index + 1, c.frames + length
                    self.episode_log.append((c.frames, ret, length))
                    logger.scalars(c.frames, {"collect/episode_return": ret, "collect/episode_length": length,
                                              "collect/episodes": c.episodes})
                    bar.update(1)
                    bar.set_postfix(frames=c.frames)
                    if c.episodes % cc.checkpoint_every == 0:
                        self.checkpoint()
        finally:
            bar.close()
            logger.close()
        self.done.append("collect")
        self.checkpoint()

    def _check_episode(self, index: int, episode: Mapping[str, np.ndarray]) -> None:
        """`NonFiniteError` for a collected episode with a NaN or inf (reward, action; frames are uint8)."""
        for key, values in episode.items():
            found = first_non_finite(values)
            if found is not None:
                raise NonFiniteError(f"World Models collect, episode {index}: {key} is {fmt(found[1])} at step "
                                     f"{found[0][0] if found[0] else 0}{checkpoint_note(self.run_dir)}")

    def _run_vae(self) -> None:
        c, v, seed = self.counters, self.wc.vae, self.wc.run.seed
        frames = np.concatenate([e["image"] for e in self.store.read_all(c.episodes, ("image",))])
        per_epoch = max(1, len(frames) // v.batch_size)
        total = v.epochs * per_epoch
        opt = self._optimizer_for("vae", self.vae.parameters(), v.lr)
        logger = self._logger("vae", c.vae_updates)
        bar = tqdm(total=total, initial=c.vae_updates, desc="vae", unit="upd", disable=not self.progress)
        averager = MetricAverager()
        order_epoch, order = -1, np.arange(0)
        self.vae.train()
        try:
            for update in range(c.vae_updates, total):
                epoch, i = divmod(update, per_epoch)
                if epoch != order_epoch:
                    order_epoch = epoch
                    order = np.random.default_rng(derive_seed(seed, VAE_BATCH, epoch)).permutation(len(frames))
                image = torch.from_numpy(frames[order[i * v.batch_size:(i + 1) * v.batch_size]]).to(self.device)
                noise = torch.Generator().manual_seed(derive_seed(seed, VAE_NOISE, update))
                recon, mu, logvar = self.vae(image, noise)
                loss, metrics = vae_loss(recon, image, mu, logvar, v.kl_tolerance)
                self._step(opt, loss, self.vae, 0.0, "VAE", update + 1)
                c.vae_updates = update + 1
                averager.add({"loss": loss.detach(), **metrics})
                bar.update(1)
                if c.vae_updates % self.wc.run.log_every == 0 or c.vae_updates == total:
                    means = averager.pop("vae/")
                    logger.scalars(c.vae_updates, {**means, "vae/epoch": epoch + 1})
                    bar.set_postfix(loss=f"{means['vae/loss']:.1f}")
                if c.vae_updates % v.checkpoint_every == 0 and c.vae_updates < total:
                    self.checkpoint()
            logger.image("vae/reconstruction", c.vae_updates, self._reconstructions(frames))
        finally:
            bar.close()
            logger.close()
        self._optimizer = None
        self.done.append("vae")
        self.checkpoint()

    @torch.no_grad()
    def _reconstructions(self, frames: np.ndarray, count: int = 8) -> np.ndarray:
        """uint8 image: ``count`` frames (top row) over their reconstructions from the posterior mean."""
        picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).astype(int)
        image = torch.from_numpy(frames[picks]).to(self.device)
        mu, _ = self.vae.encoder(image)
        rows = [to_float_image(image), self.vae.decoder(mu)]
        grid = torch.cat([torch.cat(list(row.permute(0, 2, 3, 1)), 1) for row in rows], 0)
        return (grid.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()

    @torch.no_grad()
    def _encoded(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per collected episode, V's mu and logvar of every frame (computed once, kept in encoded.npz)."""
        if self.encoded_path.exists():
            with np.load(self.encoded_path, allow_pickle=False) as data:
                mu, logvar, offsets = data["mu"], data["logvar"], data["offsets"]
        else:
            self.vae.eval()
            mus, logvars, offsets = [], [], [0]
            for i in tqdm(range(self.counters.episodes), desc="encode", unit="ep", disable=not self.progress):
                image = self.store.read(i, ("image",))["image"]
                for start in range(0, len(image), ENCODE_BATCH):
                    m, lv = self.vae.encoder(torch.from_numpy(image[start:start + ENCODE_BATCH]).to(self.device))
                    mus.append(m.cpu().numpy())
                    logvars.append(lv.cpu().numpy())
                offsets.append(offsets[-1] + len(image))
            mu, logvar, offsets = np.concatenate(mus), np.concatenate(logvars), np.asarray(offsets, np.int64)
            for name, values in (("mu", mu), ("logvar", logvar)):
                found = first_non_finite(values)
                if found is not None:
                    raise NonFiniteError(f"World Models encoding: V's {name} of frame {found[0][0]} is "
                                         f"{fmt(found[1])}{checkpoint_note(self.run_dir)}")
            tmp = self.encoded_path.with_name(self.encoded_path.name + ".tmp")
            with open(tmp, "wb") as f:
                np.savez(f, mu=mu, logvar=logvar, offsets=offsets)
            os.replace(tmp, self.encoded_path)
        bounds = list(zip(offsets[:-1], offsets[1:]))
        return [mu[a:b] for a, b in bounds], [logvar[a:b] for a, b in bounds]

    def _run_mdn_rnn(self) -> None:
        c, m, seed = self.counters, self.wc.mdn_rnn, self.wc.run.seed
        episodes = self.store.read_all(c.episodes, ("action", "reward", "terminal"))
        mu, logvar = self._encoded()
        lengths = np.array([len(e["action"]) for e in episodes])
        length = int(m.seq_len or lengths.max())
        opt = self._optimizer_for("mdn_rnn", self.mdn.parameters(), m.lr)
        logger = self._logger("mdn_rnn", c.mdn_updates)
        bar = tqdm(total=m.updates, initial=c.mdn_updates, desc="mdn_rnn", unit="upd", disable=not self.progress)
        averager = MetricAverager()
        self.mdn.train()
        try:
            for update in range(c.mdn_updates, m.updates):
                rng = np.random.default_rng(derive_seed(seed, MDN_BATCH, update))
                picks = rng.integers(0, len(episodes), m.batch_size)
                starts = rng.integers(0, np.maximum(lengths[picks] - length, 0) + 1)
                noise = torch.Generator().manual_seed(derive_seed(seed, MDN_BATCH, update, 1))
                batch = sequence_batch(mu, logvar, episodes, picks, starts, length, noise, self.device)
                pred, _, _ = self.mdn(batch["z"], batch["action"])
                loss, metrics = mdn_rnn_loss(pred, batch["z_next"], batch["reward"], batch["done"], batch["mask"],
                                             m.reward_scale, m.done_scale)
                grad_norm = self._step(opt, loss, self.mdn, m.grad_clip, "MDN-RNN", update + 1)
                c.mdn_updates = update + 1
                averager.add({"loss": loss.detach(), "grad_norm": grad_norm, **metrics})
                bar.update(1)
                if c.mdn_updates % self.wc.run.log_every == 0 or c.mdn_updates == m.updates:
                    means = averager.pop("mdn_rnn/")
                    logger.scalars(c.mdn_updates, means)
                    bar.set_postfix(loss=f"{means['mdn_rnn/loss']:.3f}")
                if c.mdn_updates % m.checkpoint_every == 0 and c.mdn_updates < m.updates:
                    self.checkpoint()
        finally:
            bar.close()
            logger.close()
        self._optimizer = None
        self.done.append("mdn_rnn")
        self.checkpoint()

    def _model_dims(self) -> dict:
        v, m = self.wc.vae, self.wc.mdn_rnn
        return {"z_size": v.z_size, "depth": v.depth, "hidden": m.hidden, "mixtures": m.mixtures,
                "predict_reward": m.predict_reward, "predict_done": m.predict_done, "action_dim": self.spec.dim}

    def actor(self, params: np.ndarray) -> WorldModelsActor:
        """The acting agent (on the CPU) with V's encoder, M's LSTM and controller ``params``."""
        d = self._model_dims()
        actor = WorldModelsActor(d["z_size"], d["depth"], d["hidden"], d["action_dim"])
        actor.encoder.load_state_dict(self.vae.encoder.state_dict())
        actor.lstm.load_state_dict(self.mdn.lstm.state_dict())
        actor.controller.set_flat(params)
        return actor.eval()

    def _run_controller(self) -> None:
        c, cc, r = self.counters, self.wc.controller, self.wc.run
        strategy = CMAES(self.controller_dim, cc.popsize, cc.sigma0, derive_seed(r.seed, CMA))
        strategy.replay(self.fitness)
        mu, logvar = self._encoded()
        dream_steps = cc.dream_steps or max(len(x) - 1 for x in mu)
        spec = WorkerSpec(self.env_cfg, r.seed, self.spec, models=self._model_dims(),
                          weights={"actor": self.actor(strategy.mean).state_dict(),
                                   "mdn_rnn": {k: v.detach().cpu() for k, v in self.mdn.state_dict().items()}},
                          start={"mu": torch.from_numpy(np.stack([x[0] for x in mu])),
                                 "logvar": torch.from_numpy(np.stack([x[0] for x in logvar]))})
        logger = self._logger("controller", c.generations)
        bar = tqdm(total=cc.generations, initial=c.generations, desc=f"controller ({cc.mode})", unit="gen",
                   disable=not self.progress)
        try:
            with WorkerPool(spec, r.workers) as pool:
                while not self._finished("controller"):
                    generation = c.generations
                    population = strategy.ask()
                    if cc.mode == "real":
                        seeds = [env_seed(r.seed, REAL, generation, k) for k in range(cc.rollouts)]
                        results = pool.map(("real", (x, s)) for x in population for s in seeds)
                        returns = np.array([ret for ret, _ in results]).reshape(cc.popsize, cc.rollouts)
                        c.frames += sum(frames for _, frames in results)
                    else:
                        dream_seed = derive_seed(r.seed, DREAM, generation)
                        returns = np.stack(pool.map(("dream", (x, dream_seed, cc.rollouts, dream_steps,
                                                               cc.temperature)) for x in population))
                    fitness = returns.mean(1)
                    if not all_finite(fitness):
                        k = first_non_finite(fitness)[0][0]
                        raise NonFiniteError(f"World Models controller generation {generation + 1} ({cc.mode}): "
                                             f"candidate {k}'s fitness is {fmt(fitness[k])}"
                                             f"{checkpoint_note(self.run_dir)}")
                    strategy.tell(population, fitness)
                    self.fitness.append(fitness)
                    c.generations = generation + 1
                    logger.scalars(c.generations, {
                        "train/fitness_mean": fitness.mean(), "train/fitness_max": fitness.max(),
                        "train/fitness_min": fitness.min(), "train/sigma": strategy.sigma, "train/frames": c.frames})
                    bar.update(1)
                    bar.set_postfix(best=f"{fitness.max():.1f}", mean=f"{fitness.mean():.1f}")
                    last = self._finished("controller")
                    if cc.eval_episodes > 0 and (c.generations % cc.eval_every == 0 or last):
                        self._evaluate(pool, strategy.mean, logger)
                        bar.set_postfix(best=f"{fitness.max():.1f}", eval=f"{self.eval_log[-1][2]:.1f}")
                    if c.generations % cc.checkpoint_every == 0 or last:
                        self.checkpoint()
                        self.export(strategy.mean)
        finally:
            bar.close()
            logger.close()

    def _evaluate(self, pool: WorkerPool, params: np.ndarray, logger: Logger) -> None:
        """Mean return of ``params`` over the fixed evaluation episodes in the real env."""
        c, cc = self.counters, self.wc.controller
        seeds = [env_seed(self.wc.run.seed, EVAL, k) for k in range(cc.eval_episodes)]
        results = pool.map(("real", (params, s)) for s in seeds)
        value = float(np.mean([ret for ret, _ in results]))
        c.eval_frames += sum(frames for _, frames in results)
        self.eval_log.append((c.frames, c.generations, value))
        if self.best is None or value >= self.best[0]:
            self.best = (value, np.asarray(params, np.float64).copy())
        logger.scalars(c.generations, {"eval/return": value, "eval/best_return": self.best[0]})

    def export(self, mean: np.ndarray):
        """Write RUN_DIR/policy.pt: the best evaluated controller (the CMA-ES mean before any evaluation)."""
        params = self.best[1] if self.best is not None else mean
        d = self._model_dims()
        return export_policy(self.run_dir.export_path, self.actor(params),
                             {"z_size": d["z_size"], "depth": d["depth"], "hidden": d["hidden"]},
                             self.observation_space.spaces[IMAGE_KEY], self.action_space,
                             extra={"env_id": self.env_cfg["id"], "frames": self.counters.frames,
                                    "generations": self.counters.generations,
                                    "eval_return": None if self.best is None else self.best[0]})

    # ------------------------------------------------------------ results
    def params(self) -> int:
        """Trainable parameters of everything trained: V, M and C."""
        count = sum(p.numel() for p in self.vae.parameters()) + sum(p.numel() for p in self.mdn.parameters())
        return int(count + self.controller_dim)

    def summary(self) -> dict:
        c = self.counters
        return {"env": self.env_cfg["id"], "frames": c.frames, "eval_frames": c.eval_frames,
                "seconds": round(self._seconds(), 1), "params": self.params(),
                "controller_params": self.controller_dim, "episodes": c.episodes, "vae_updates": c.vae_updates,
                "mdn_updates": c.mdn_updates, "generations": c.generations,
                "stages_done": [s for s in STAGES if self._finished(s)], "session": self.session,
                "best_eval_return": None if self.best is None else self.best[0],
                "eval": [{"frames": f, "generation": g, "return": r} for f, g, r in self.eval_log],
                "episode_returns": [{"frames": f, "return": r, "length": n} for f, r, n in self.episode_log]}


def train(cfg: Mapping[str, Any], run_dir: RunDir, progress: bool = True) -> dict:
    """Run (or resume) the requested stages of a World Models run; returns the summary (also in summary.json).

    Rollout workers are spawned processes: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard around its top-level code.
    """
    return Trainer(cfg, run_dir, progress=progress).run()
