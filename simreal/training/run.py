"""Run directories, crash-safe checkpoints and random-state capture.

A run directory holds everything one training run writes::

    RUN_DIR/
      config.yaml              the resolved config (presets and overrides applied)
      checkpoints/step_000012345.pt   the last few checkpoints (atomic writes)
      metrics.jsonl            one JSON line per logged step (see logger.py)
      tb/                      TensorBoard event files
      policy.pt                the exported policy (see export.py)

Checkpoints are plain ``torch.save`` dicts of tensors, numbers, strings,
lists and dicts, written to a temporary file and renamed into place, so a
killed run never leaves a half-written checkpoint. They load with
``torch.load(..., weights_only=True)``: nothing in them can run code.
"""

from __future__ import annotations

import logging
import os
import pathlib
import random
import re
from typing import Any, Mapping

import numpy as np
import torch
import yaml

from simreal.training.config import ConfigError, dump_config, yaml_problem

_CKPT = re.compile(r"^step_(\d+)\.pt$")
log = logging.getLogger(__name__)


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (one line)."""


class RunDir:
    """One training run's folder: config, checkpoints, logs, export.

    ``resume=False`` refuses a folder that already holds checkpoints (so a
    typo never overwrites a run); ``resume=True`` requires its config.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False):
        self.path = pathlib.Path(path)
        self.resume = resume
        self.check(self.path, resume)
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def check(cls, path: str | os.PathLike, resume: bool = False) -> None:
        """What ``RunDir(path, resume)`` would refuse, checked without writing anything."""
        path = pathlib.Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path}: exists and is not a folder; --run-dir names the run's folder "
                              "(choose another path)")
        if resume:
            if not (path / "config.yaml").exists():
                raise RunDirError(f"{path}: nothing to resume (no config.yaml); start the run without --resume")
        elif _checkpoint_files(path / "checkpoints"):
            raise RunDirError(f"{path}: already holds checkpoints; pass --resume to continue it "
                              "or choose another --run-dir")

    # ----------------------------------------------------------------- paths
    @property
    def config_path(self) -> pathlib.Path:
        return self.path / "config.yaml"

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return self.path / "checkpoints"

    @property
    def export_path(self) -> pathlib.Path:
        return self.path / "policy.pt"

    # ---------------------------------------------------------------- config
    def save_config(self, cfg: Mapping) -> None:
        _atomic_write_text(self.config_path, dump_config(cfg))

    def load_config(self) -> dict:
        try:
            cfg = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{yaml_problem(self.config_path, exc)}; the run's saved config is damaged") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"{self.config_path}: cannot read the saved config ({reason})") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{self.config_path}: expected a mapping of config sections, "
                              f"got {type(cfg).__name__}; the run's saved config is damaged")
        return cfg

    # ----------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[pathlib.Path]:
        """Checkpoint files, oldest first."""
        return _checkpoint_files(self.checkpoint_dir)

    def latest_checkpoint(self) -> pathlib.Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, state: Mapping[str, Any], step: int, keep: int = 3) -> pathlib.Path:
        """Write ``state`` as checkpoint ``step`` atomically; keep the newest ``keep``."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"step_{int(step):012d}.pt"
        tmp = path.with_suffix(".pt.tmp")
        with open(tmp, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for old in self.checkpoints()[:-keep] if keep > 0 else []:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> dict:
        """The newest (or the given) checkpoint, loaded with ``weights_only=True`` on the CPU."""
        path = pathlib.Path(path) if path is not None else self.latest_checkpoint()
        if path is None:
            raise RunDirError(f"{self.path}: no checkpoint to resume from")
        return load_weights_only(path)

    def load_latest_good_checkpoint(self) -> tuple[dict, pathlib.Path]:
        """The newest checkpoint that loads, and its path: what a resumed run continues from.

        A newer one that does not load (truncated or damaged, e.g. by a full disk or a copy cut
        short) is renamed to ``step_N.pt.damaged`` (kept for inspection, no longer "the latest") and
        a one-line warning names it and the checkpoint used instead. None loading is a `RunDirError`
        naming the newest one's problem.
        """
        found = self.checkpoints()
        if not found:
            raise RunDirError(f"{self.path}: no checkpoint to resume from")
        problems: list[tuple[pathlib.Path, str]] = []
        for path in reversed(found):
            try:
                state = load_weights_only(path)
            except RunDirError as exc:
                problems.append((path, str(exc)))
                continue
            for bad, reason in problems:
                kept = bad.with_name(bad.name + ".damaged")
                os.replace(bad, kept)
                log.warning("%s; resuming from the older %s instead (the damaged file is kept as %s)",
                            reason, path.name, kept.name)
            return state, path
        reason = problems[0][1]
        older = f" (nor do the {len(problems) - 1} older ones)" if len(problems) > 1 else ""
        raise RunDirError(f"{reason}{older}; no checkpoint of {self.path} loads, so the run cannot resume")


def _checkpoint_files(folder: pathlib.Path) -> list[pathlib.Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.match(p.name))]
    return [p for _, p in sorted(found)]


def load_weights_only(path: str | os.PathLike) -> dict:
    """``torch.load(path, weights_only=True)`` with one-line errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunDirError(f"{path}: no such file") from None
    except Exception as exc:  # pickle.UnpicklingError for anything that is not plain data
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"{path}: not a loadable simreal checkpoint ({first})") from None
    if not isinstance(state, dict):
        raise RunDirError(f"{path}: expected a dict checkpoint, got {type(state).__name__}")
    return state


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ RNG state
def generator_state(rng: np.random.Generator) -> dict:
    """A numpy Generator's state as plain data (safe for weights_only loading)."""
    return rng.bit_generator.state


def restore_generator(rng: np.random.Generator, state: Mapping) -> None:
    rng.bit_generator.state = dict(state)


def capture_global_rng() -> dict:
    """Python, numpy-global and torch RNG states (CPU, and CUDA when present)."""
    np_state = np.random.get_state()
    out = {
        "python": list(_tuple_to_list(random.getstate())),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_global_rng(state: Mapping) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["key"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuple_to_list(value):
    return [_tuple_to_list(v) for v in value] if isinstance(value, tuple) else value


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for but CUDA is not available here")
    return device


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CUDA with bf16, or a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # private probes, present in torch 2.x; without them, assume no
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:
            return False
    return False


def pick_precision(name: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` (a bfloat16 autocast of the heavy layers; weights stay float32).

    ``auto``: bf16 where the device computes it natively (1.6x the pose CNN's training steps/s on
    one core of an AVX512-BF16 CPU), else fp32. An explicit ``bf16`` on other hardware is emulated: correct, slower.
    """
    if name not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name
