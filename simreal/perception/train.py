"""Training the pose CNN on a rendered dataset: minibatches, checkpoints, resume, logs, export.

``PoseTrainer(cfg, run).train()`` trains ``run.steps`` minibatches of
``optim.batch_size`` samples drawn (with replacement) from the dataset minus
its last ``data.holdout`` samples, with AdamW at ``optim.lr``, either halved every
``optim.lr_halving_steps`` (``optim.schedule: halving``, Dactyl's recipe, Table 11,
shortened) or decayed to zero over ``run.steps`` along a half cosine
(``optim.schedule: cosine``). Every
``run.checkpoint_every`` steps it writes a checkpoint (weights, optimizer, RNG
states: ``torch.load(weights_only=True)``) and the estimator export
``RUN_DIR/pose_estimator.pt``. ``run.precision`` (``auto``: bfloat16 where the
device has it natively) trains the conv trunk under a bfloat16 autocast; held-out
evaluation and the export run in float32. ``data.augment_shift`` moves each
training image by a few pixels. ``optim.ema`` (a decay, 0: off) keeps an exponential
moving average of the weights (and BatchNorm statistics), which held-out
evaluation and the export use: it averages away the last steps' noise.
``--resume`` continues from the last checkpoint and repeats the uninterrupted
run's minibatches exactly. Metrics: ``train/`` (loss, its position and
orientation parts, batch median errors, lr),
``eval/`` (held-out median and 90th percentile errors of the exported weights; with
``optim.ema`` also ``eval_raw/``, those of the weights being trained) and ``time/``.

A NaN or inf label in the dataset (checked once), loss or gradient norm
(checked before the optimizer step) or weight (checked before every checkpoint
and export) stops training with `simreal.utils.finite.NonFiniteError`, one
line naming what, the step and the last finite checkpoint (the newest on disk).
"""

from __future__ import annotations

import copy
import math
import pathlib
import time
from typing import Any

import numpy as np
import torch

from simreal.perception.dataset import PoseData, load_dataset
from simreal.perception.estimator import EXPORT_NAME, save_estimator
from simreal.perception.evaluate import pose_errors, summarize
from simreal.perception.model import LOSSES, PoseNet, PoseNetConfig, count_parameters, pose_loss
from simreal.training.config import ConfigError
from simreal.utils.finite import (NonFiniteError, check_scalars, check_state_dict, checkpoint_note, fetch,
                                     first_non_finite, fmt)
from simreal.training.logger import Logger
from simreal.training.run import (
    RunDir,
    capture_global_rng,
    generator_state,
    pick_device,
    pick_precision,
    restore_generator,
    restore_global_rng,
)
from simreal.utils.seeding import make_rng

CONFIG_PATH = pathlib.Path(__file__).resolve().with_name("configs.yaml")
SCHEDULES = ("halving", "cosine")  # optim.schedule


def _positive(cfg: dict, section: str, key: str, kind=int) -> Any:
    value = cfg[section][key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (kind is int and value != int(value)):
        raise ConfigError(f"{section}.{key}: expected a positive {'integer' if kind is int else 'number'}, got {value!r}")
    return kind(value)


def shift_images(images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) images, each moved by its (dy, dx) pixels in ``offsets`` (N, 2); edge pixels fill in.

    Output pixel (y, x) is input pixel (y + dy, x + dx), clamped to the image: the view of a camera
    turned by about dy, dx pixels' worth of angle (at 64 px and zoom 1.5, about 0.5 degrees a pixel).
    """
    n, h, w = images.shape[:3]
    ys = (torch.arange(h)[None, :] + offsets[:, :1]).clamp(0, h - 1)  # (N, H)
    xs = (torch.arange(w)[None, :] + offsets[:, 1:]).clamp(0, w - 1)  # (N, W)
    return images[torch.arange(n)[:, None, None], ys[:, :, None], xs[:, None, :]]


class WeightAverage:
    """An exponential moving average of a module's parameters and floating-point buffers.

    ``update()`` after each optimizer step moves the average towards the module by ``1 - decay``, with the
    decay ramped up as ``min(decay, (1 + n) / (10 + n))`` after n updates so the average does not remember
    the random initial weights for long. Integer buffers (BatchNorm's batch count) are copied.
    """

    def __init__(self, net: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, cur in zip(self.net.parameters(), net.parameters()):
            avg.lerp_(cur.detach(), 1.0 - decay)
        for avg, cur in zip(self.net.buffers(), net.buffers()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur, 1.0 - decay)
            else:
                avg.copy_(cur)

    def state_dict(self) -> dict:
        return {"weights": self.net.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["weights"])
        self.updates = int(state["updates"])


class PoseTrainer:
    """One training run of the pose CNN (see the module docstring)."""

    def __init__(self, cfg: dict, run: RunDir, progress: bool = True, data: PoseData | None = None):
        self.cfg = cfg
        self.run = run
        self.progress = progress
        threads = int(cfg["run"]["torch_threads"])
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = pick_device(str(cfg["run"]["device"]))
        self.precision = pick_precision(str(cfg["run"].get("precision", "fp32")), self.device)  # older configs: fp32
        self.total_steps = _positive(cfg, "run", "steps")
        self.batch_size = _positive(cfg, "optim", "batch_size")
        for key in ("checkpoint_every", "eval_every", "log_every"):
            _positive(cfg, "run", key)
        if data is None:
            path = cfg["data"]["path"]
            if not path:
                raise ConfigError("data.path: no dataset given; pass --data DIR (made by `simreal pose dataset`)")
            data = load_dataset(path, limit=cfg["data"]["limit"])
        holdout = int(cfg["data"]["holdout"])
        if not 0 <= holdout < len(data) - 1:
            raise ConfigError(f"data.holdout: must leave training samples; got {holdout} of {len(data)} samples")
        for name, labels in (("position", data.position), ("quat", data.quat)):
            found = first_non_finite(labels)
            if found is not None:
                raise NonFiniteError(f"pose dataset {cfg['data']['path']}: sample {found[0][0]}'s {name} is "
                                     f"{fmt(found[1])}; re-render it with `simreal pose dataset`")
        self.data = data
        self.n_train = len(data) - holdout
        self.images = torch.from_numpy(data.images)
        self.position = torch.from_numpy(data.position.astype(np.float32))
        self.quat = torch.from_numpy(data.quat.astype(np.float32))
        settings = data.settings
        m = cfg["model"]
        try:
            self.net_config = PoseNetConfig(cameras=data.images.shape[1], height=data.images.shape[2],
                                            width=data.images.shape[3], channels=tuple(m["channels"]),
                                            strides=tuple(m["strides"]), kernels=tuple(m["kernels"]),
                                            hidden=int(m["hidden"]), position_scale=float(m["position_scale"]),
                                            presence=bool(m["presence"]), rotation=str(m["rotation"]))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model: {exc}") from None
        self.render = {"cameras": list(settings["cameras"]), "height": int(settings["height"]),
                       "width": int(settings["width"]), "antialias": int(settings.get("antialias", 4)),
                       "zoom": float(settings["zoom"])}
        seed = int(cfg["run"]["seed"])
        torch.manual_seed(seed)
        self.net = PoseNet(self.net_config).to(self.device)
        o = cfg["optim"]
        if o["schedule"] not in SCHEDULES:
            raise ConfigError(f"optim.schedule: expected one of {', '.join(SCHEDULES)}, got {o['schedule']!r}")
        self.loss_kind = o.get("loss", "squared")  # configs saved before optim.loss trained the squared loss
        if self.loss_kind not in LOSSES:
            raise ConfigError(f"optim.loss: expected one of {', '.join(LOSSES)}, got {self.loss_kind!r}")
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=float(o["lr"]), weight_decay=float(o["weight_decay"]))
        ema = o.get("ema", 0.0)  # configs saved before optim.ema: no average
        if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 <= ema < 1.0:
            raise ConfigError(f"optim.ema: expected a decay from 0 (off) up to but not including 1, got {ema!r}")
        self.average = WeightAverage(self.net, ema) if ema > 0 else None
        self.rng = make_rng(seed, "pose-train", "batches")  # minibatches and their image shifts
        self.shift = cfg["data"].get("augment_shift", 0)  # older configs: no augmentation
        most = min(self.net_config.height, self.net_config.width) // 4
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or not 0 <= self.shift <= most:
            raise ConfigError(f"data.augment_shift: expected a whole number of pixels from 0 to {most}, "
                              f"got {self.shift!r}")
        self.step = 0
        if run.resume and run.latest_checkpoint() is not None:
            self._restore(run.load_latest_good_checkpoint()[0])
        self.logger = Logger(run.path, resume_step=self.step if run.resume else None,
                             tensorboard=bool(cfg["run"]["tensorboard"]))

    # ------------------------------------------------------------ state
    def _restore(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.average is not None:
            if "average" not in state:
                raise ConfigError("optim.ema: the checkpoint to resume has no weight average (it was trained "
                                  "without optim.ema); resume with the run's own config")
            self.average.load_state_dict(state["average"])
        self.step = int(state["step"])
        restore_generator(self.rng, state["batch_rng"])
        restore_global_rng(state["global_rng"])

    def checkpoint(self) -> None:
        state = {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                 "batch_rng": generator_state(self.rng), "global_rng": capture_global_rng(),
                 "net": self.net_config.to_dict()}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        check_state_dict({"model": state["model"], "optimizer": state["optimizer"]["state"],
                          "average": state.get("average", {})}, f"pose checkpoint at step {self.step}", self.run)
        self.run.save_checkpoint(state, self.step, keep=int(self.cfg["run"]["keep_checkpoints"]))

    def export(self, metrics: dict | None = None) -> pathlib.Path:
        info = {"step": self.step, "randomization": self.data.settings.get("randomization"),
                "dataset": str(self.cfg["data"]["path"]), "holdout": metrics or {}}
        return save_estimator(self.run.path / EXPORT_NAME, self.exported_net, self.render, info)

    @property
    def exported_net(self) -> PoseNet:
        """The weights that held-out evaluation and the export use: the average with ``optim.ema``."""
        return self.net if self.average is None else self.average.net

    def lr_at(self, step: int) -> float:
        o = self.cfg["optim"]
        if o["schedule"] == "cosine":
            return float(o["lr"]) * 0.5 * (1.0 + math.cos(math.pi * min(step / self.total_steps, 1.0)))
        return float(o["lr"]) * 0.5 ** (step // max(int(o["lr_halving_steps"]), 1))

    # ------------------------------------------------------------ loops
    @torch.no_grad()
    def evaluate_holdout(self, batch_size: int = 256, net: PoseNet | None = None) -> dict:
        """Median and 90th percentile errors on the held-out samples (of ``exported_net`` unless given)."""
        if self.n_train == len(self.data):
            return {}
        net = self.exported_net if net is None else net
        was_training = net.training
        net.eval()
        positions, quats = [], []
        for start in range(self.n_train, len(self.data), batch_size):
            images = self.images[start:min(start + batch_size, len(self.data))].to(self.device)
            p, q = net(images)
            positions.append(p.cpu().numpy())
            quats.append(q.cpu().numpy())
        net.train(was_training)
        pos_mm, rot_deg = pose_errors(np.concatenate(positions), np.concatenate(quats),
                                      self.data.position[self.n_train:], self.data.quat[self.n_train:])
        return summarize(pos_mm, rot_deg)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(self.rng.integers(0, self.n_train, self.batch_size))
        images = self.images[idx]
        if self.shift:
            n, cams = images.shape[:2]
            offsets = torch.from_numpy(self.rng.integers(-self.shift, self.shift + 1, (n * cams, 2)))
            images = shift_images(images.flatten(0, 1), offsets).reshape(images.shape)
        return (images.to(self.device), self.position[idx].to(self.device), self.quat[idx].to(self.device))

    def train(self, max_seconds: float | None = None) -> dict[str, float]:
        """Train to ``run.steps`` (or until max_seconds pass); returns the last logged metrics."""
        from tqdm import tqdm

        r, o = self.cfg["run"], self.cfg["optim"]
        scale, weight = float(self.cfg["model"]["position_scale"]), float(o["rotation_weight"])
        self.net.train()
        last: dict[str, float] = {}
        window = {"loss": 0.0, "position": 0.0, "orientation": 0.0, "n": 0}
        t0 = t_log = time.perf_counter()
        saved_at = -1
        with tqdm(total=self.total_steps, initial=self.step, desc="pose train", unit="batch",
                  disable=not self.progress) as bar:
            while self.step < self.total_steps:
                if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                    break
                for group in self.opt.param_groups:
                    group["lr"] = self.lr_at(self.step)
                images, position, quat = self._batch()
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    pred_pos, pred_quat = self.net(images)
                loss, parts = pose_loss(pred_pos, pred_quat, position, quat, scale, weight, self.loss_kind)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                grads = [p.grad for p in self.net.parameters() if p.grad is not None]
                # loss, its parts and the gradient norm in one sync, checked before the step touches the weights
                values = fetch({"loss": loss, "position": parts["position"], "orientation": parts["orientation"],
                                "grad_norm": torch.nn.utils.get_total_norm(grads)})
                if not all(map(math.isfinite, values.values())):
                    check_scalars({"loss": values["loss"], "gradient norm": values["grad_norm"]},
                                  f"pose training step {self.step + 1}", self.run)
                self.opt.step()
                if self.average is not None:
                    self.average.update(self.net)
                self.step += 1
                bar.update(1)
                window["loss"] += values["loss"]
                window["position"] += values["position"]
                window["orientation"] += values["orientation"]
                window["n"] += 1
                if self.step % int(r["log_every"]) == 0 or self.step == self.total_steps:
                    n = window["n"]
                    with torch.no_grad():
                        pos_mm, rot_deg = pose_errors(pred_pos.cpu().numpy(), pred_quat.cpu().numpy(),
                                                      position.cpu().numpy(), quat.cpu().numpy())
                    now = time.perf_counter()
                    last = {"train/loss": window["loss"] / n, "train/position_loss": window["position"] / n,
                            "train/orientation_loss": window["orientation"] / n,
                            "train/position_mm_median": float(np.median(pos_mm)),
                            "train/rotation_deg_median": float(np.median(rot_deg)),
                            "train/lr": self.lr_at(self.step - 1),
                            "time/samples_per_s": n * self.batch_size / max(now - t_log, 1e-9)}
                    t_log = now
                    self.logger.scalars(self.step, last)
                    bar.set_postfix(loss=f"{last['train/loss']:.3f}", mm=f"{last['train/position_mm_median']:.1f}",
                                    deg=f"{last['train/rotation_deg_median']:.1f}")
                    window = {"loss": 0.0, "position": 0.0, "orientation": 0.0, "n": 0}
                if self.step % int(r["eval_every"]) == 0 or self.step == self.total_steps:
                    held = self.evaluate_holdout()
                    if held:
                        metrics = {"eval/position_mm_median": held["position_mm"]["median"],
                                   "eval/position_mm_p90": held["position_mm"]["p90"],
                                   "eval/rotation_deg_median": held["rotation_deg"]["median"],
                                   "eval/rotation_deg_p90": held["rotation_deg"]["p90"]}
                        if self.average is not None:
                            raw = self.evaluate_holdout(net=self.net)
                            metrics.update({"eval_raw/position_mm_median": raw["position_mm"]["median"],
                                            "eval_raw/rotation_deg_median": raw["rotation_deg"]["median"]})
                        self.logger.scalars(self.step, metrics)
                        last.update(metrics)
                if self.step % int(r["checkpoint_every"]) == 0 or self.step == self.total_steps:
                    self.checkpoint()
                    self.export(self._held(last))
                    saved_at = self.step
        if saved_at != self.step:  # stopped by max_seconds, or nothing left to train
            self.checkpoint()
            self.export(self._held(last))
        self.logger.flush()
        return last

    @staticmethod
    def _held(last: dict) -> dict:
        return {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("eval/")}

    def describe(self) -> str:
        c = self.net_config
        return (f"{c.cameras} cameras at {c.height}x{c.width}, {len(self.data)} samples ({self.n_train} for training), "
                f"{count_parameters(self.net)} parameters, batch {self.batch_size}, device {self.device}, {self.precision}")

    def close(self) -> None:
        self.logger.close()
