"""Stopping on NaN and inf: the one error every trainer raises, and the cheap checks behind it.

A trainer that meets a non-finite number stops with `NonFiniteError`, one line
naming what went non-finite and where::

    PPO update 12 (env step 24576): loss 'value_loss' is nan; the last finite checkpoint is
    runs/hand/checkpoints/step_000000024064.pt

It raises *before* the bad number reaches the optimizer, a checkpoint or an
export, so the newest checkpoint on disk is the last finite one and
``policy.pt`` is never overwritten with NaN weights. The checks:

* `check_scalars`: named losses and gradient norms the trainer already fetched
  (for its logs) or fetches once (`fetch`), so no extra device sync per step;
* `all_finite` / `check_observations`: one vectorized ``np.isfinite`` per
  batch on the hot path; only when it fails is the batch searched for the key,
  env copy and element to name (and the randomizer values of that episode);
* `check_state_dict`: every floating tensor of a (nested) state dict, before a
  checkpoint or an export is written, and when an export is loaded.

`PhysicsDiverged` is the simulator's own refusal (dm_control's
``PhysicsError``), raised by the randomization wrapper with the episode's
randomizer values.

Importing this module does not import torch (the randomization wrapper uses it).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np


class NonFiniteError(RuntimeError):
    """A loss, gradient, observation, reward or weight is NaN or inf (one line: what, and where)."""


class PhysicsDiverged(NonFiniteError):
    """The simulation became invalid (NaN, inf or huge accelerations): names the episode's randomizer values."""


# ------------------------------------------------------------------ formatting
def fmt(value: Any) -> str:
    """A number in a few significant digits (``nan``, ``inf``, ``-inf`` as such)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def format_values(values: Mapping[str, Any], per_name: int = 4) -> str:
    """``name=value, ...`` compactly: lists show their first ``per_name`` values, then how many in all
    (and how many of them are non-finite, when any are)."""
    parts = []
    for name, value in values.items():
        arr = np.asarray(value, dtype=float).reshape(-1) if _numeric(value) else None
        if arr is None:
            parts.append(f"{name}={value}")
        elif np.ndim(value) == 0:
            parts.append(f"{name}={fmt(arr[0])}")
        else:
            shown = ", ".join(fmt(v) for v in arr[:per_name])
            more = ""
            if arr.size > per_name:
                bad = int((~np.isfinite(arr)).sum())
                more = f", ... {arr.size} values" + (f", {bad} non-finite" if bad else "")
            parts.append(f"{name}=[{shown}{more}]")
    return ", ".join(parts) if parts else "none"


def _numeric(value: Any) -> bool:
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def describe(value: Any) -> str:
    """What a non-finite scalar or array holds: ``nan``, ``inf``, or e.g. ``nan (3 of 24 values non-finite)``."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().float().cpu().numpy()
    arr = np.asarray(value, dtype=float)
    if arr.size == 1:
        return fmt(arr.reshape(-1)[0])
    bad = ~np.isfinite(arr)
    first = fmt(arr[bad][0]) if bad.any() else "finite"
    return f"{first} ({int(bad.sum())} of {arr.size} values non-finite)"


def checkpoint_note(checkpoints: Any) -> str:
    """``; the last finite checkpoint is PATH`` for a run dir (anything with ``latest_checkpoint()``),
    ``; no checkpoint was written yet`` when it has none, ``""`` without a run dir."""
    if checkpoints is None:
        return ""
    last = checkpoints.latest_checkpoint()
    return f"; the last finite checkpoint is {last}" if last is not None else "; no checkpoint was written yet"


# ------------------------------------------------------------------ scalars
def fetch(values: Mapping[str, Any]) -> dict[str, float]:
    """Named 0-d tensors as floats in one device sync (instead of one ``.item()`` each)."""
    import torch

    names = list(values)
    if not names:
        return {}
    numbers = torch.stack([values[n].detach().float().reshape(()) for n in names]).tolist()
    return dict(zip(names, numbers))


def check_scalars(values: Mapping[str, float], where: str, checkpoints: Any = None) -> None:
    """Raise `NonFiniteError` naming the first non-finite of ``values`` (python floats: losses, grad norms)."""
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"{where}: {name} is {fmt(value)}{checkpoint_note(checkpoints)}")


# ------------------------------------------------------------------ arrays
def _floating(array: np.ndarray) -> bool:
    return array.dtype.kind == "f"


def all_finite(*arrays: Any) -> bool:
    """Whether every value of these numpy arrays is finite: one vectorized ``isfinite`` each (integer
    and boolean arrays, such as uint8 images, are skipped)."""
    for a in arrays:
        a = np.asarray(a)
        if _floating(a) and not np.isfinite(a).all():
            return False
    return True


def first_non_finite(array: Any) -> tuple[tuple[int, ...], float] | None:
    """(index, value) of the first non-finite entry of ``array``, or None."""
    a = np.asarray(array)
    if not _floating(a):
        return None
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return index, float(a[index])


def check_observations(obs: Mapping[str, Any], where: str, what: str = "observation",
                       randomization: Callable[[int], Mapping[str, Any]] | None = None,
                       checkpoints: Any = None, copies: Sequence[int] | None = None) -> None:
    """Raise `NonFiniteError` for the first key of a batched observation dict (leading dim: env copies)
    holding a NaN or inf, naming the key, the copy, the element and, when ``randomization(copy)`` gives
    them, the randomizer values of that copy's episode. ``copies``: the env copy of each row, when the
    batch holds only some."""
    for key, array in obs.items():
        found = first_non_finite(array)
        if found is None:
            continue
        index, value = found
        copy = index[0] if len(index) else 0
        copy = int(copies[copy]) if copies is not None else copy
        rest = index[1:]
        element = f" (element {rest[0] if len(rest) == 1 else rest})" if rest else ""
        message = f"{where}: {what} {key!r} of env {copy} is {fmt(value)}{element}"
        if randomization is not None:
            values = randomization(copy)
            if values:
                message += f"; that episode's randomization: {format_values(values)}"
        raise NonFiniteError(message + checkpoint_note(checkpoints))


def check_rewards(reward: Any, where: str, checkpoints: Any = None) -> None:
    """Raise `NonFiniteError` when the batched rewards (one per env copy) hold a NaN or inf."""
    found = first_non_finite(reward)
    if found is not None:
        index, value = found
        copy = index[0] if index else 0
        raise NonFiniteError(f"{where}: reward of env {copy} is {fmt(value)}{checkpoint_note(checkpoints)}")


# ------------------------------------------------------------------ state dicts
def _tensors(state: Any, tensor_type: type, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(name, tensor) of every floating tensor in nested mappings and lists (names joined by ``/``)."""
    if isinstance(state, tensor_type):
        if state.is_floating_point():
            yield prefix, state
    elif isinstance(state, Mapping):
        for key, value in state.items():
            yield from _tensors(value, tensor_type, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from _tensors(value, tensor_type, f"{prefix}/{i}" if prefix else str(i))


def non_finite_tensor(state: Any) -> tuple[str, str] | None:
    """(name, what it holds) of the first floating tensor in ``state`` with a NaN or inf, or None."""
    import torch

    for name, tensor in _tensors(state, torch.Tensor):
        if not bool(torch.isfinite(tensor).all()):
            return name, describe(tensor)
    return None


def check_state_dict(state: Any, where: str, checkpoints: Any = None) -> None:
    """Raise `NonFiniteError` naming the first tensor of a (nested) state dict that holds a NaN or inf."""
    found = non_finite_tensor(state)
    if found is not None:
        name, held = found
        raise NonFiniteError(f"{where}: tensor {name!r} holds {held}{checkpoint_note(checkpoints)}")
